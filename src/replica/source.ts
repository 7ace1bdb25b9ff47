/**
 * Log sources: where a replica (or any change-feed consumer) reads the
 * committed changes of a database, behind one interface.
 *
 * Contract of every source:
 * - `stream(since)` yields the changes with seq > since in seq order, whole
 *   seqs only, and ENDS at a bound fixed when the stream starts (the seq
 *   visible or durable at that instant), so draining terminates however fast
 *   writes keep arriving.
 * - When the log no longer reaches back to `since + 1` it fails with
 *   FloeError LOG_GAP (before yielding anything, or mid-stream if a
 *   truncation races the read); the consumer must rebase on a newer snapshot.
 * - `latestSeq()` is the newest seq the source could deliver now.
 * Sources never write; reading the same range twice yields the same changes.
 */
import type { Change, Database } from '../db/database.js';
import { changesOfRecord } from '../db/database.js';
import { readCatalog } from '../db/catalog.js';
import { ERROR_CODES, FloeError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import { decodeLogRecord } from '../format/logrecord.js';
import { decodeRow, encodeRow } from '../format/values.js';
import type { ObjectStore } from '../store/types.js';
import { decodeManifest } from '../table/manifest.js';
import { LogTail } from './logtail.js';

export interface LogSource {
  /** What the source reads, for messages. */
  readonly name: string;
  stream(since: number): AsyncIterable<Change>;
  latestSeq(): Promise<number>;
  close(): Promise<void>;
}

const LOG_PREFIX = 'log/';

/** Changes of a database in this process, bounded by its visible seq when the stream starts. */
export function inProcessSource(db: Database): LogSource {
  return {
    name: `in-process ${db.store.location}`,
    stream: (since) => ({ [Symbol.asyncIterator]: () => db.changes({ since, until: db.visibleSeq }) }),
    latestSeq: () => Promise.resolve(db.visibleSeq),
    close: () => Promise.resolve(),
  };
}

/**
 * Tails the log on an object store (a local directory, or S3 from another
 * machine) through a LogTail: each stream polls incrementally (one LIST
 * after the newest segment already known, plus one GET per new segment)
 * and ends at the durable seq that poll saw. Table ids are mapped to names
 * through the catalog, re-read when a record names a table not seen before.
 */
export function storeSource(store: ObjectStore): LogSource & { readonly tail: LogTail } {
  const tail = new LogTail(store, LOG_PREFIX);
  const tables = new Map<string, { name: string; pk: readonly string[] | null }>();
  const learnTables = async (): Promise<void> => {
    const cat = await readCatalog(store);
    if (!cat) throw new FloeError('NOT_A_DATABASE', `no floe database at ${store.location}`);
    for (const [name, e] of Object.entries(cat.catalog.tables)) {
      if (tables.get(e.id)?.name === name) continue;
      const { bytes } = await store.get(e.manifest);
      tables.set(e.id, { name, pk: decodeManifest(bytes, e.manifest).primaryKey });
    }
  };
  async function* run(since: number): AsyncGenerator<Change> {
    const { bound, entries } = await tail.read(since);
    for await (const { lsn, record } of entries) {
      if (lsn > bound) return;
      const writes = decodeLogRecord(record, lsn);
      if (writes.some((w) => !tables.has(w.table))) await learnTables();
      yield* changesOfRecord(writes, lsn, tables);
    }
  }
  return {
    name: `log on ${store.location}`,
    tail,
    stream: (since) => ({ [Symbol.asyncIterator]: () => run(since) }),
    latestSeq: () => tail.poll(),
    close: () => Promise.resolve(),
  };
}

// ---- the wire form of a change (NDJSON lines, shared with src/server) ------

export interface WireChange {
  seq: number;
  table: string;
  op: 'upsert' | 'delete';
  key: Record<string, unknown>;
  row: Record<string, unknown> | null;
  id: string | null;
}

export function changeToWire(c: Change): WireChange {
  return { seq: c.seq, table: c.table, op: c.op, key: encodeRow(c.key), row: c.row ? encodeRow(c.row) : null, id: c.id === null ? null : c.id.toString() };
}

export function changeFromWire(w: unknown, where: string): Change {
  if (w === null || typeof w !== 'object') throw new FloeError('CORRUPT', `${where}: a change line is not an object`);
  const o = w as Record<string, unknown>;
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1 || typeof o.table !== 'string' || (o.op !== 'upsert' && o.op !== 'delete')) {
    throw new FloeError('CORRUPT', `${where}: malformed change ${JSON.stringify(w).slice(0, 120)}`);
  }
  return {
    seq: o.seq,
    table: o.table,
    op: o.op,
    key: decodeRow(o.key),
    row: o.row === null || o.row === undefined ? null : decodeRow(o.row),
    id: typeof o.id === 'string' ? BigInt(o.id) : null,
  };
}

/**
 * Follows a floe server (src/server) over HTTP: `GET /changes?since=N`
 * streams NDJSON (or SSE with `format: 'sse'`; an error arrives as a data
 * line holding `{ error }`) that ends at the server's visible seq when the request
 * began. A server error (JSON `{ error: { code, message } }`, as the status
 * body or as the last line of a stream) becomes a FloeError with that code.
 */
export function httpSource(baseUrl: string, options: { token?: string; format?: 'ndjson' | 'sse' } = {}): LogSource {
  const sse = options.format === 'sse';
  const base = baseUrl.replace(/\/+$/, '');
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const request = async (path: string): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { headers });
    } catch (cause) {
      throw new FloeError('STORAGE_UNAVAILABLE', `cannot reach floe server ${base}${path}`, { cause, backend: base });
    }
    if (!res.ok) {
      const text = await res.text();
      throw remoteError(text, `${base}${path} answered ${res.status}`);
    }
    return res;
  };
  async function* run(since: number): AsyncGenerator<Change> {
    const res = await request(`/changes?since=${since}${sse ? '&format=sse' : ''}`);
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = '';
    const where = `${base}/changes`;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const payload = sse ? (line.startsWith('data: ') ? line.slice(6) : '') : line;
        if (payload.trim() === '') continue; // blank separators, and SSE id:/event: lines
        yield lineToChange(payload, where);
      }
    }
    buf += decoder.decode();
    const rest = sse ? (buf.startsWith('data: ') ? buf.slice(6) : '') : buf;
    if (rest.trim() !== '') yield lineToChange(rest, where);
  }
  return {
    name: `floe server ${base}`,
    stream: (since) => ({ [Symbol.asyncIterator]: () => run(since) }),
    latestSeq: async () => {
      const body = (await (await request('/health')).json()) as { visibleSeq?: unknown };
      if (typeof body.visibleSeq !== 'number') throw new FloeError('CORRUPT', `${base}/health has no visibleSeq`);
      return body.visibleSeq;
    },
    close: () => Promise.resolve(),
  };
}

function lineToChange(line: string, where: string): Change {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (cause) {
    throw new FloeError('CORRUPT', `${where}: a line of the change stream is not JSON`, { cause, backend: where });
  }
  if (parsed !== null && typeof parsed === 'object' && 'error' in parsed) throw remoteError(line, where);
  return changeFromWire(parsed, where);
}

function remoteError(body: string, where: string): FloeError {
  let code: ErrorCode = 'STORAGE_UNAVAILABLE';
  let message = body.slice(0, 200);
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
    if (e && typeof e.code === 'string' && isKnownCode(e.code)) code = e.code;
    if (e && typeof e.message === 'string') message = e.message;
  } catch (cause) {
    return new FloeError('STORAGE_UNAVAILABLE', `${where}: ${message}`, { cause, backend: where });
  }
  return new FloeError(code, `${where}: ${message}`, { backend: where });
}

function isKnownCode(c: string): c is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(c);
}
