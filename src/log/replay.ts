/**
 * Reading the log: recovery scans and replay. Never writes.
 *
 * `scanLog` reads the base (base.ts), lists the prefix once, reads every
 * segment (bounded concurrency), verifies every checksum and hands the
 * headers to the pure chain analysis (chain.ts). A segment that vanishes
 * between the listing and its read was deleted by a concurrent truncation:
 * the scan starts over (so does a base naming a start the listing lacks).
 * A segment written by a newer format version stops the scan with
 * UNSUPPORTED_VERSION rather than being mistaken for damage.
 *
 * `readLog` is the read-only entry point for any number of readers and
 * replicas: it claims nothing and reports the durable prefix
 * (`maxDurableLsn`) before streaming it. Replay re-verifies each segment it
 * yields; if a segment of the prefix disappeared meanwhile (truncation) it
 * fails with LOG_GAP, if it no longer verifies, with CORRUPT. Nothing after
 * a gap or a bad segment is ever returned.
 */
import { FloeError, isFloeError } from '../errors.js';
import { validatePrefix } from '../store/keys.js';
import { listAll } from '../store/list.js';
import type { ObjectStore } from '../store/types.js';
import type { LogBase } from './base.js';
import { readBase } from './base.js';
import type { LogAnalysis, Slot } from './chain.js';
import { analyzeLog } from './chain.js';
import type { SegmentMeta } from './segment.js';
import { decodeSegment, lastLsnOf, parseSegmentKey, segmentKey } from './segment.js';

export interface LogEntry {
  readonly lsn: number;
  readonly record: Uint8Array;
}

export const DEFAULT_PREFIX = 'log/';
export const DEFAULT_READ_CONCURRENCY = 16;
/** Segment bodies a scan keeps for the replay that usually follows it. */
export const WARM_BYTES = 64 * 1024 * 1024;

export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || prefix === '' || !prefix.endsWith('/')) {
    throw new FloeError('INVALID_ARGUMENT', `log prefix must be a non-empty string ending in "/", got ${JSON.stringify(prefix)}`, { backend: 'log' });
  }
  validatePrefix(prefix, 'log');
  return prefix;
}

export function checkLsn(name: string, lsn: unknown, min: number): number {
  if (typeof lsn !== 'number' || !Number.isSafeInteger(lsn) || lsn < min) {
    throw new FloeError('INVALID_ARGUMENT', `${name} must be a safe integer >= ${min}, got ${String(lsn)}`, { backend: 'log' });
  }
  return lsn;
}

export interface ScanResult {
  readonly base: LogBase | null;
  readonly slots: Slot[];
  readonly analysis: LogAnalysis;
  /** Verified bodies of segments with records, kept within WARM_BYTES. */
  readonly warm: Map<number, Uint8Array>;
  /** Why each unreadable segment was rejected (for messages and tests). */
  readonly problems: Map<number, string>;
}

/** Run `fn` over `items` with at most `limit` calls in flight; first error wins. */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed = true; // stop the other workers from starting more work
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Read one segment; null when it is gone. */
async function fetchSegment(store: ObjectStore, key: string): Promise<Uint8Array | null> {
  try {
    return (await store.get(key)).bytes;
  } catch (err) {
    // Deleted between listing and reading (concurrent truncation): absent.
    if (isFloeError(err, 'NOT_FOUND')) return null;
    throw err;
  }
}

export function unsupported(store: ObjectStore, key: string, problem: string): FloeError {
  return new FloeError('UNSUPPORTED_VERSION', `log segment written by a newer floe: ${problem}; upgrade floe to open this log`, {
    key,
    backend: store.location,
  });
}

const MAX_SCANS = 8;

/**
 * List and verify every segment under `prefix`, and compute the durable
 * chain. If a listed segment vanished before it could be read, a truncation
 * or cleanup ran meanwhile and the listing is not a consistent picture: list
 * again (deletions only ever move the log's front forward, so this settles).
 */
export async function scanLog(store: ObjectStore, prefix: string, concurrency: number, warmFromLsn = 1): Promise<ScanResult> {
  for (let attempt = 1; ; attempt++) {
    const scan = await scanOnce(store, prefix, concurrency, warmFromLsn);
    if (scan && scan.analysis.baseProblem === null) return scan;
    if (attempt >= MAX_SCANS) {
      if (scan && scan.base) {
        throw new FloeError(
          'CORRUPT',
          `the log base names epoch ${scan.base.startEpoch} as the start, but no such segment exists; restore it or rebuild the log from the last checkpoint`,
          { key: segmentKey(prefix, scan.base.startEpoch), backend: store.location },
        );
      }
      throw new FloeError('STORAGE_UNAVAILABLE', `log segments kept disappearing during ${MAX_SCANS} recovery scans; retry later`, {
        key: prefix,
        backend: store.location,
      });
    }
  }
}

async function scanOnce(store: ObjectStore, prefix: string, concurrency: number, warmFromLsn: number): Promise<ScanResult | null> {
  // The base first: a truncation moves it before deleting, so a listing taken
  // after it never lacks the start it names (unless truncated again: rescan).
  const base = await readBase(store, prefix);
  const epochs: number[] = [];
  for await (const key of listAll(store, prefix)) {
    const epoch = parseSegmentKey(prefix, key);
    if (epoch !== null) epochs.push(epoch);
  }
  const found = new Map<number, Slot>();
  const problems = new Map<number, string>();
  const bodies = new Map<number, Uint8Array>();
  let warmBytes = 0;
  let vanished = false;
  await forEachLimited(epochs, concurrency, async (epoch) => {
    if (vanished) return;
    const key = segmentKey(prefix, epoch);
    const bytes = await fetchSegment(store, key);
    if (!bytes) {
      vanished = true;
      return;
    }
    const d = decodeSegment(bytes, epoch);
    if (d.ok) {
      found.set(epoch, { epoch, meta: d.meta });
      if (d.meta.recordCount > 0 && lastLsnOf(d.meta) >= warmFromLsn && warmBytes + bytes.length <= WARM_BYTES) {
        bodies.set(epoch, bytes);
        warmBytes += bytes.length;
      }
      return;
    }
    if (d.unsupported) throw unsupported(store, key, d.problem);
    found.set(epoch, { epoch, meta: null });
    problems.set(epoch, d.problem);
  });
  if (vanished) return null;
  const slots = [...found.values()].sort((a, b) => a.epoch - b.epoch);
  const analysis = analyzeLog(slots, base);
  if (analysis.baseProblem === 'missing') return { base, slots, analysis, warm: new Map(), problems };
  if (analysis.baseProblem !== null && base) {
    const key = segmentKey(prefix, base.startEpoch);
    throw new FloeError(
      'CORRUPT',
      `the segment the log starts at (epoch ${base.startEpoch}, LSN ${base.firstLsn}) is ${analysis.baseProblem === 'mismatch' ? 'not the one the base names' : `unreadable (${problems.get(base.startEpoch) ?? 'a void marker'})`}; restore this object or rebuild the log from the last checkpoint`,
      { key, backend: store.location },
    );
  }
  const members = new Set(analysis.chain.map((m) => m.epoch));
  for (const e of bodies.keys()) if (!members.has(e)) bodies.delete(e);
  return { base, slots, analysis, warm: bodies, problems };
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );

/**
 * Stream the records of `chain` with lsn >= fromLsn, reading a few segments
 * ahead. `warm` bodies are used (and released) instead of reading again.
 */
export async function* replayChain(
  store: ObjectStore,
  prefix: string,
  chain: readonly SegmentMeta[],
  fromLsn: number,
  warm: Map<number, Uint8Array>,
  readAhead: number,
): AsyncGenerator<LogEntry> {
  const todo = chain.filter((m) => m.recordCount > 0 && lastLsnOf(m) >= fromLsn);
  const load = async (m: SegmentMeta): Promise<Uint8Array> => {
    const cached = warm.get(m.epoch);
    if (cached) {
      warm.delete(m.epoch);
      return cached;
    }
    const key = segmentKey(prefix, m.epoch);
    const bytes = await fetchSegment(store, key);
    if (!bytes) {
      throw new FloeError('LOG_GAP', `log segment epoch ${m.epoch} (LSN ${m.firstLsn}..${lastLsnOf(m)}) was deleted during replay (truncated past a checkpoint); re-read the checkpoint and replay from there`, {
        key,
        backend: store.location,
      });
    }
    return bytes;
  };
  // Each read is wrapped so a failed read-ahead never becomes an unhandled rejection.
  const ahead: Array<Promise<Settled<Uint8Array>>> = [];
  let queued = 0;
  const fill = (): void => {
    while (queued < todo.length && ahead.length < readAhead) ahead.push(settle(load(todo[queued++]!)));
  };
  for (const m of todo) {
    fill();
    const got = await ahead.shift()!;
    if (!got.ok) throw got.error;
    const key = segmentKey(prefix, m.epoch);
    const d = decodeSegment(got.value, m.epoch);
    if (!d.ok) {
      if (d.unsupported) throw unsupported(store, key, d.problem);
      throw new FloeError('CORRUPT', `log segment epoch ${m.epoch} no longer verifies (${d.problem})`, { key, backend: store.location });
    }
    const h = d.meta;
    if (h.generation !== m.generation || h.prevEpoch !== m.prevEpoch || h.firstLsn !== m.firstLsn || h.recordCount !== m.recordCount) {
      throw new FloeError('CORRUPT', `log segment epoch ${m.epoch} changed since recovery read it`, { key, backend: store.location });
    }
    for (let i = 0; i < d.records.length; i++) {
      const lsn = h.firstLsn + i;
      if (lsn >= fromLsn) yield { lsn, record: d.records[i]! };
    }
  }
}

export interface ReadLogOptions {
  /** Where the log lives (default 'log/'). */
  readonly prefix?: string;
  /** First LSN wanted (default 1). */
  readonly fromLsn?: number;
  /** Segment reads in flight at once (default 16). */
  readonly readConcurrency?: number;
}

export interface LogSnapshot {
  /** Highest durable LSN at the time of the scan (0 for an empty log). */
  readonly maxDurableLsn: number;
  /** Lowest LSN the log still holds. */
  readonly firstLsn: number;
  /** The durable records with lsn >= fromLsn, in LSN order, streamed. */
  readonly entries: AsyncIterable<LogEntry>;
}

/**
 * Read-only view of the log for readers and replicas: claims nothing, writes
 * nothing. Fails with LOG_GAP when `fromLsn` is below what the log still
 * holds (it was truncated past a checkpoint the caller has not seen).
 */
export async function readLog(store: ObjectStore, options: ReadLogOptions = {}): Promise<LogSnapshot> {
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const fromLsn = checkLsn('fromLsn', options.fromLsn ?? 1, 1);
  const concurrency = checkCount('readConcurrency', options.readConcurrency ?? DEFAULT_READ_CONCURRENCY, 1, 1024);
  const scan = await scanLog(store, prefix, concurrency, fromLsn);
  const { analysis } = scan;
  if (fromLsn < analysis.firstLsn) {
    throw new FloeError(
      'LOG_GAP',
      `records from LSN ${fromLsn} were truncated; the log now starts at LSN ${analysis.firstLsn} (re-read the checkpoint)`,
      { key: prefix, backend: store.location },
    );
  }
  const chain = analysis.chain;
  return {
    maxDurableLsn: analysis.maxDurableLsn,
    firstLsn: analysis.firstLsn,
    entries: { [Symbol.asyncIterator]: () => replayChain(store, prefix, chain, fromLsn, scan.warm, concurrency) },
  };
}

export function checkCount(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new FloeError('INVALID_ARGUMENT', `${name} must be an integer in [${min}, ${max}], got ${String(v)}`, { backend: 'log' });
  }
  return v;
}
