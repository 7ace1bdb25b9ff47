/**
 * A small HTTP server (node:http) so remote programs and replicas on other
 * machines can read a database and follow its change feed.
 *
 * Routes (GET only):
 *   /health                      { ok, visibleSeq, tables }
 *   /tables                      { tables }
 *   /tables/<name>/get?key=JSON  { row }   (key: a value, or an object for composite keys)
 *   /tables/<name>/scan?where=JSON&columns=a,b&limit=N   { rows }
 *   /changes?since=N[&format=sse] NDJSON, one change per line (or Server-Sent
 *                                Events, `id: seq` + `data: change`), ending at
 *                                the seq visible when the request began
 * Values use floe's tagged JSON (bigint as {"$b": "..."}, etc., format/values.ts).
 *
 * Contract: every parameter is validated before anything is read — table
 * names against floe's name rule and the catalog, seqs and limits as bounded
 * integers, `where` and `key` as JSON that the table layer then validates
 * against the schema — so nothing from a request reaches the store
 * unchecked. Every failure is a JSON `{ error: { code, message } }` with a
 * 4xx status for bad requests (401 bad token, 400 bad parameter, 404 unknown
 * table or route, 410 LOG_GAP) and 5xx otherwise. A failure after a change
 * stream has started is sent as a final `{ error }` line. The server only
 * reads; it never writes to the store. All change streams share one
 * incremental log follower (replica/logtail.ts), so a poll costs the server
 * one LIST plus the new segments, not a scan of the whole log.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Change, Database } from '../db/database.js';
import { validateTableName } from '../db/database.js';
import { FloeError, isFloeError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import { recordBatchToRows } from '../format/schema.js';
import { decodeValue, encodeRow } from '../format/values.js';
import type { LogSource } from '../replica/source.js';
import { changeToWire, storeSource } from '../replica/source.js';

export interface ServerOptions {
  /** Require `Authorization: Bearer <token>` on every route but /health. */
  readonly token?: string;
  /** Largest scan limit accepted (default 10,000; also the default limit). */
  readonly maxLimit?: number;
}

export interface FloeServer {
  readonly server: http.Server;
  /** Listen (default 127.0.0.1, an ephemeral port); resolves with the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

const MAX_PARAM_CHARS = 64 * 1024;

export function createServer(db: Database, options: ServerOptions = {}): FloeServer {
  const maxLimit = options.maxLimit ?? 10_000;
  // One incremental log follower shared by every /changes request: a poll
  // lists only what was written since the previous one, so followers polling
  // an idle database do not make the server rescan its whole log.
  const feed = storeSource(db.store);
  const token = options.token === undefined ? null : Buffer.from(options.token);
  if (token && token.length === 0) throw new FloeError('INVALID_ARGUMENT', 'createServer: token must not be empty');
  const server = http.createServer((req, res) => {
    handle(db, feed, req, res, token, maxLimit).catch((err: unknown) => {
      // Last resort: the handler failed after headers went out; end the response.
      if (!res.headersSent) sendError(res, err);
      else res.end();
    });
  });
  return {
    server,
    listen: (port = 0, host = '127.0.0.1') =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const a = server.address() as AddressInfo;
          resolve(`http://${host}:${a.port}`);
        });
      }),
    close: () =>
      new Promise((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

async function handle(db: Database, feed: LogSource, req: http.IncomingMessage, res: http.ServerResponse, token: Buffer | null, maxLimit: number): Promise<void> {
  try {
    if (req.method !== 'GET') throw new HttpError(405, 'INVALID_ARGUMENT', `method ${req.method ?? '?'} not allowed; this server only reads (GET)`);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter((p) => p !== '');
    if (parts.length === 1 && parts[0] === 'health') {
      sendJson(res, 200, { ok: true, visibleSeq: db.visibleSeq });
      return;
    }
    checkToken(req, token);
    if (parts.length === 1 && parts[0] === 'tables') {
      sendJson(res, 200, { tables: db.listTables() });
      return;
    }
    if (parts.length === 1 && parts[0] === 'changes') {
      await streamChanges(db, feed, url, res);
      return;
    }
    if (parts.length === 3 && parts[0] === 'tables') {
      const name = decodeURIComponent(parts[1]!);
      validateTableName(name);
      if (!db.listTables().includes(name)) throw new HttpError(404, 'NOT_FOUND', `no table "${name}"`);
      const table = await db.table(name);
      if (parts[2] === 'get') {
        const key = jsonParam(url, 'key', true);
        const row = await table.get(key);
        sendJson(res, 200, { row: row ? encodeRow(row) : null });
        return;
      }
      if (parts[2] === 'scan') {
        const where = jsonParam(url, 'where', false);
        if (where !== undefined && (where === null || typeof where !== 'object')) throw new FloeError('INVALID_ARGUMENT', 'where must be a JSON object');
        const colsRaw = url.searchParams.get('columns');
        const columns = colsRaw === null ? undefined : colsRaw.split(',').filter((c) => c !== '');
        const limit = intParam(url, 'limit', 0, maxLimit) ?? maxLimit;
        const rows: unknown[] = [];
        for await (const b of table.scan({ where: where as never, columns, limit })) for (const r of recordBatchToRows(b)) rows.push(encodeRow(r));
        sendJson(res, 200, { rows });
        return;
      }
    }
    throw new HttpError(404, 'NOT_FOUND', `no route ${url.pathname}`);
  } catch (err) {
    if (res.headersSent) throw err;
    sendError(res, err);
  }
}

async function streamChanges(db: Database, feed: LogSource, url: URL, res: http.ServerResponse): Promise<void> {
  const since = intParam(url, 'since', 0, Number.MAX_SAFE_INTEGER) ?? 0;
  const format = url.searchParams.get('format') ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'sse') throw new FloeError('INVALID_ARGUMENT', `query parameter "format" must be ndjson or sse`);
  const sse = format === 'sse';
  // Bounded by the seq visible now (every change up to it is durable in the log);
  // a follower that is up to date costs no log read at all.
  const until = db.visibleSeq;
  const iter = since >= until ? noChanges() : upTo(feed.stream(since), until);
  // Pull the first change before answering, so a LOG_GAP is a 410, not a broken stream.
  let first = await iter.next();
  res.writeHead(200, {
    'content-type': sse ? 'text/event-stream' : 'application/x-ndjson',
    'cache-control': 'no-store',
    'x-floe-visible-seq': String(until),
  });
  const frame = (json: string, seq: number | null): string => (sse ? `${seq === null ? 'event: error\n' : `id: ${seq}\n`}data: ${json}\n\n` : `${json}\n`);
  try {
    while (!first.done) {
      if (!res.write(frame(JSON.stringify(changeToWire(first.value)), first.value.seq))) await new Promise((r) => res.once('drain', r));
      first = await iter.next();
    }
  } catch (err) {
    res.write(frame(JSON.stringify(errorBody(err).body), null));
  }
  res.end();
}

/** An empty change stream. */
async function* noChanges(): AsyncGenerator<Change> {}

/** The changes of `source` up to seq `until` (inclusive). */
async function* upTo(source: AsyncIterable<Change>, until: number): AsyncGenerator<Change> {
  for await (const c of source) {
    if (c.seq > until) return;
    yield c;
  }
}

class HttpError extends FloeError {
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

function checkToken(req: http.IncomingMessage, token: Buffer | null): void {
  if (!token) return;
  const h = req.headers.authorization ?? '';
  const m = /^Bearer (.+)$/.exec(h);
  const given = Buffer.from(m?.[1] ?? '');
  if (given.length !== token.length || !timingSafeEqual(given, token)) {
    throw new HttpError(401, 'INVALID_ARGUMENT', 'missing or wrong bearer token');
  }
}

function jsonParam(url: URL, name: string, required: boolean): unknown {
  const raw = url.searchParams.get(name);
  if (raw === null) {
    if (required) throw new FloeError('INVALID_ARGUMENT', `query parameter "${name}" is required`);
    return undefined;
  }
  if (raw.length > MAX_PARAM_CHARS) throw new FloeError('INVALID_ARGUMENT', `query parameter "${name}" is longer than ${MAX_PARAM_CHARS} characters`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw) as unknown;
  } catch (cause) {
    throw new FloeError('INVALID_ARGUMENT', `query parameter "${name}" is not valid JSON`, { cause });
  }
  try {
    return untag(parsed, 0);
  } catch (cause) {
    throw new FloeError('INVALID_ARGUMENT', `query parameter "${name}" holds a malformed tagged value`, { cause });
  }
}

const TAGS = new Set(['$b', '$d', '$u', '$f', '$n']);

/**
 * Tagged values (floe's JSON for bigint, dates, bytes: format/values.ts)
 * anywhere in a parameter become the values they encode, so an int64 or
 * binary key can be given exactly. Depth is bounded.
 */
export function untag(v: unknown, depth: number): unknown {
  if (depth > 32) throw new FloeError('INVALID_ARGUMENT', 'parameter nests deeper than 32 levels');
  if (Array.isArray(v)) return v.map((x) => untag(x, depth + 1));
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 1 && TAGS.has(keys[0]!)) return decodeValue(v);
    return Object.fromEntries(keys.map((k) => [k, untag((v as Record<string, unknown>)[k], depth + 1)]));
  }
  return v;
}

/** Parse an integer parameter (decimal digits only). */
export function intParam(url: URL, name: string, min: number, max: number): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null) return undefined;
  if (!/^[0-9]{1,16}$/.test(raw)) throw new FloeError('INVALID_ARGUMENT', `query parameter "${name}" must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}`);
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new FloeError('INVALID_ARGUMENT', `query parameter "${name}" must be in [${min}, ${max}], got ${raw}`);
  return v;
}

/** HTTP status for a FloeError code. */
export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'INVALID_ARGUMENT':
    case 'SCHEMA_MISMATCH':
      return 400;
    case 'NOT_FOUND':
    case 'NOT_A_DATABASE':
      return 404;
    case 'LOG_GAP':
      return 410;
    case 'LIMIT_EXCEEDED':
      return 413;
    case 'CLOSED':
    case 'STORAGE_UNAVAILABLE':
    case 'TIMEOUT':
      return 503;
    default:
      return 500;
  }
}

function errorBody(err: unknown): { status: number; body: { error: { code: string; message: string } } } {
  if (err instanceof HttpError) return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  if (isFloeError(err)) return { status: statusOf(err.code), body: { error: { code: err.code, message: err.message } } };
  return { status: 500, body: { error: { code: 'INVARIANT_VIOLATION', message: err instanceof Error ? err.message : String(err) } } };
}

function sendError(res: http.ServerResponse, err: unknown): void {
  const { status, body } = errorBody(err);
  sendJson(res, status, body);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
