/**
 * The log writer: group commit, fencing and failure repair over any
 * ObjectStore.
 *
 * Protocol (chain.ts defines the chain and its start; segment.ts the bytes;
 * base.ts the start after truncation):
 *
 * 1. Claim. Opening for write claims the next writer generation g
 *    (claim.ts: a create-only object per generation).
 * 2. Recover. Read the base, list the segments once, read and verify all of
 *    them, and compute the durable chain and its tip (epoch t, next LSN n).
 * 3. Fence. Write an empty FENCE segment {g, prev t, firstLsn n} with
 *    putIfAbsent at the smallest epoch f above t that the listing did not
 *    show occupied. Any older writer can only acknowledge more records by
 *    winning epoch f (it never skips a free epoch, see 4), so once the fence
 *    is durable it cannot: its write at f collides, it reads the segment
 *    there, sees a newer generation and fails FENCED. If f was taken
 *    meanwhile by a segment continuing the chain (an older writer still
 *    appending, whose records may have been acknowledged), that segment
 *    joins the chain; since such a writer would win every later race too,
 *    we then write empty VOID "block" segments with putIfAbsent, in
 *    parallel, at every free epoch from t+1 to a window above the highest
 *    epoch listed (the window grows 4x per round until we win one); each
 *    epoch goes to exactly one of us, the older writer stops at the first
 *    one we won, we read what it won below, and the fence goes above the
 *    window. A newer generation anywhere means we lost: FENCED. Nothing is
 *    deleted at open: the fence's prevEpoch skips (voids) the torn, orphaned
 *    or blocked segments between t and f, and the objects in (t, f] are
 *    guards, kept so that an older writer however late still collides
 *    there (chain.ts). Old claims are pruned.
 * 4. Group commit. `append` queues the record. Whenever fewer than
 *    `maxInFlight` segment writes are in flight, the queued records (up to
 *    `maxGroupRecords`/`maxGroupBytes`) are sealed into one segment and
 *    written with one putIfAbsent at the next epoch: above every epoch this
 *    writer ever tried (an epoch is never written twice, so a deleted one
 *    is never reused), skipping only epochs known to hold an object (never
 *    a free one). An idle log therefore writes a lone record at once, and
 *    records arriving during a write ride together in the next one. After
 *    a write completes, the next group is sealed one event-loop turn later
 *    (not a timer), so the committers just acknowledged join it with their
 *    next records instead of splitting into alternating halves. With
 *    `maxInFlight > 1`, `maxDelayMs` lets a partly filled group wait that
 *    long for company before taking a free slot while another write is in
 *    flight (never on an idle log). LSNs are given at sealing, in
 *    append-call order.
 * 5. Acknowledge. Writes may complete out of order; a group is acknowledged
 *    only when it and every earlier group are durable, so an acknowledged
 *    LSN always lies on the chain (a pipelined later segment is never
 *    acknowledged, nor replayed, while an earlier one is missing).
 * 6. Repair. When a write fails, sending stops and every write in flight
 *    settles. Groups are then taken in epoch order; durable ones that still
 *    continue the tip are acknowledged. Every failed write's epoch is
 *    settled before the writer moves past it: if it failed with
 *    ALREADY_EXISTS we read what is there; otherwise (its fate unknown) we
 *    write a VOID marker there with putIfAbsent. Our own bytes there mean
 *    the group is durable after all (acknowledged if it continues the tip);
 *    a newer generation means FENCED (every waiter gets it); our marker
 *    means the group can never land: its waiters get the error (outcome
 *    'not-durable'); someone else's object means it did not land. If the
 *    epoch cannot be settled (the marker write fails too), every waiter
 *    gets an error with outcome 'unknown' and the writer stops (CLOSED);
 *    the next open decides from what is stored. Records of groups that are
 *    not at fault go back to the head of the queue (renumbered, in call
 *    order) and are written above every epoch tried so far.
 * 7. Truncate. `truncateThrough(lsn)` writes a new base (base.ts) naming
 *    the first chain member holding an LSN above lsn (never past the last
 *    member), then deletes everything below it except guards, then the older
 *    bases. Each step is idempotent; a crash part-way leaves dead segments
 *    below the base, ignored by readers and collected by the next
 *    truncation.
 *
 * Durability: with `durability: 'full'` (default) `append` resolves only
 * after its segment is durable in the store. `'none'` resolves at once with
 * the LSN the record will get: acknowledged records can be lost in a crash
 * (unsafe; for bulk loads that can be redone). A failed write then stops the
 * writer; later appends and `close()` report the failure.
 *
 * Failpoints: log.claim.before/after, log.segment.put.before/after (context
 * kind 'fence' | 'block' | 'group' | 'void', epoch), log.base.put.before/after,
 * log.truncate.delete.before/after.
 */
import type { ErrorCode, FloeErrorOptions } from '../errors.js';
import { FloeError, asError, isFloeError } from '../errors.js';
import type { FailpointHook } from '../store/failpoints.js';
import { NO_FAILPOINTS } from '../store/failpoints.js';
import type { ObjectStore } from '../store/types.js';
import type { ChainTip, LogAnalysis, Slot } from './chain.js';
import { analyzeLog, continues, firstFreeEpoch, planTruncation, tipOf } from './chain.js';
import type { LogBase } from './base.js';
import { pruneBases, writeBase } from './base.js';
import { claimGeneration, listClaims, pruneClaims } from './claim.js';
import type { LogEntry } from './replay.js';
import { DEFAULT_PREFIX, DEFAULT_READ_CONCURRENCY, checkCount, checkLsn, checkPrefix, forEachLimited, replayChain, scanLog, unsupported } from './replay.js';
import type { SegmentMeta } from './segment.js';
import { FLAG_FENCE, FLAG_VOID, decodeSegment, encodeSegment, lastLsnOf, parseSegmentKey, segmentKey } from './segment.js';

export type Durability = 'full' | 'none';

export interface LogWriterOptions {
  /** Where the log's objects live (default 'log/'); must end in '/'. */
  readonly prefix?: string;
  /** Most records in one segment (default 10000). */
  readonly maxGroupRecords?: number;
  /** Most record bytes in one segment (default 8 MiB); a larger single record goes alone. */
  readonly maxGroupBytes?: number;
  /** With maxInFlight > 1: how long a partial group may wait for company while a write is in flight (default 0). */
  readonly maxDelayMs?: number;
  /** Segment writes in flight at once (default 1); acknowledgements stay in epoch order. */
  readonly maxInFlight?: number;
  /** 'full' (default): resolve when durable. 'none': resolve at once (unsafe). */
  readonly durability?: Durability;
  /** Largest record accepted (default 4 MiB). */
  readonly maxRecordBytes?: number;
  readonly failpoints?: FailpointHook | undefined;
  /** Segment reads in flight during recovery and replay (default 16). */
  readonly readConcurrency?: number;
  /** Clock in ms (default Date.now): delay timing and the claim's timestamp. */
  readonly now?: () => number;
}

interface Config {
  readonly prefix: string;
  readonly maxGroupRecords: number;
  readonly maxGroupBytes: number;
  readonly maxDelayMs: number;
  readonly maxInFlight: number;
  readonly durability: Durability;
  readonly maxRecordBytes: number;
  readonly failpoints: FailpointHook;
  readonly readConcurrency: number;
  readonly now: () => number;
}

const MiB = 1024 * 1024;
const OPTION_NAMES = new Set([
  'prefix',
  'maxGroupRecords',
  'maxGroupBytes',
  'maxDelayMs',
  'maxInFlight',
  'durability',
  'maxRecordBytes',
  'failpoints',
  'readConcurrency',
  'now',
]);
const MAX_FENCE_ATTEMPTS = 64;

function invalid(message: string): FloeError {
  return new FloeError('INVALID_ARGUMENT', message, { backend: 'log' });
}

/** Validate and default the options. Pure. */
export function normalizeOptions(o: LogWriterOptions = {}): Config {
  if (typeof o !== 'object' || o === null) throw invalid('log writer options must be an object');
  for (const k of Object.keys(o)) if (!OPTION_NAMES.has(k)) throw invalid(`unknown log writer option ${JSON.stringify(k)}`);
  const durability = o.durability ?? 'full';
  if (durability !== 'full' && durability !== 'none') throw invalid(`durability must be 'full' or 'none', got ${String(durability)}`);
  const maxDelayMs = o.maxDelayMs ?? 0;
  if (typeof maxDelayMs !== 'number' || !Number.isFinite(maxDelayMs) || maxDelayMs < 0 || maxDelayMs > 60_000) {
    throw invalid(`maxDelayMs must be a number in [0, 60000], got ${String(maxDelayMs)}`);
  }
  const failpoints = o.failpoints ?? NO_FAILPOINTS;
  if (typeof failpoints.hit !== 'function') throw invalid('failpoints must have a hit() method');
  const now = o.now ?? Date.now;
  if (typeof now !== 'function') throw invalid('now must be a function');
  return {
    prefix: checkPrefix(o.prefix ?? DEFAULT_PREFIX),
    maxGroupRecords: checkCount('maxGroupRecords', o.maxGroupRecords ?? 10_000, 1, 1_000_000),
    maxGroupBytes: checkCount('maxGroupBytes', o.maxGroupBytes ?? 8 * MiB, 1, 1024 * MiB),
    maxDelayMs,
    maxInFlight: checkCount('maxInFlight', o.maxInFlight ?? 1, 1, 64),
    durability,
    maxRecordBytes: checkCount('maxRecordBytes', o.maxRecordBytes ?? 4 * MiB, 1, 1024 * MiB),
    failpoints,
    readConcurrency: checkCount('readConcurrency', o.readConcurrency ?? DEFAULT_READ_CONCURRENCY, 1, 1024),
    now,
  };
}

export interface AppendResult {
  readonly lsn: number;
}

export interface BatchResult {
  readonly firstLsn: number;
  readonly lastLsn: number;
}

/**
 * Why an append's promise was rejected after the record was queued.
 * `outcome` says what the caller may assume: 'not-durable' (the record is
 * not in the log and never will be) or 'unknown' (the write's fate could not
 * be settled; reopen the log and look).
 */
export class LogAppendError extends FloeError {
  readonly outcome: 'not-durable' | 'unknown';
  constructor(code: ErrorCode, message: string, outcome: 'not-durable' | 'unknown', options: FloeErrorOptions = {}) {
    super(code, message, options);
    this.name = 'LogAppendError';
    this.outcome = outcome;
  }
}

export type LogWriterState = 'open' | 'closing' | 'closed' | 'fenced' | 'failed';

export interface LogWriterStats {
  readonly generation: number;
  readonly state: LogWriterState;
  /** Segment objects this writer made durable (fence, groups, void markers). */
  readonly segmentsWritten: number;
  /** Commit groups acknowledged. */
  readonly groupsWritten: number;
  /** Records acknowledged. */
  readonly recordsWritten: number;
  readonly meanRecordsPerGroup: number;
  readonly maxRecordsPerGroup: number;
  /** Segment bytes made durable. */
  readonly bytesWritten: number;
  /** Segment writes that failed (each triggers a repair). */
  readonly failedWrites: number;
  /** Highest durable LSN. */
  readonly durableLsn: number;
  /** Lowest LSN the log still holds. */
  readonly firstLsn: number;
  /** Chain segments the log holds. */
  readonly segments: number;
  readonly pendingRecords: number;
  readonly inFlight: number;
}

export interface LogWriter {
  /** This writer's generation; a higher one fences it. */
  readonly generation: number;
  /** Highest LSN handed to a caller: durable with 'full', assigned with 'none'. */
  readonly lastLsn: number;
  /** Highest LSN known durable. */
  readonly durableLsn: number;
  /** Lowest LSN the log still holds. */
  readonly firstLsn: number;
  readonly state: LogWriterState;
  /** Append one record; resolves with its LSN once durable (see durability). */
  append(record: Uint8Array): Promise<AppendResult>;
  /** Append several records atomically: all in one segment, consecutive LSNs. */
  appendBatch(records: readonly Uint8Array[]): Promise<BatchResult>;
  /** Every durable record with lsn >= fromLsn, in order. LOG_GAP if fromLsn was truncated. */
  replay(fromLsn: number): AsyncIterable<LogEntry>;
  /** Delete segments wholly at or below `lsn` (a checkpoint). Idempotent, crash-safe. */
  truncateThrough(lsn: number): Promise<void>;
  /** Flush queued appends, then refuse new ones (CLOSED). Idempotent. Does not close the store. */
  close(): Promise<void>;
  stats(): LogWriterStats;
}

interface Entry {
  readonly records: readonly Uint8Array[];
  readonly bytes: number;
  readonly arrived: number;
  readonly resolve: (firstLsn: number) => void;
  readonly reject: (err: unknown) => void;
}

interface Group {
  readonly meta: SegmentMeta;
  readonly key: string;
  readonly bytes: Uint8Array;
  readonly entries: readonly Entry[];
  state: 'writing' | 'ok' | 'failed';
  error: unknown;
  done: Promise<void>;
}

type Sighting = 'mine' | 'newer' | 'other' | 'missing';

const noop = (): void => {};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

function codeOf(err: unknown): ErrorCode {
  return err instanceof FloeError ? err.code : 'STORAGE_UNAVAILABLE';
}

async function putSegment(
  store: ObjectStore,
  failpoints: FailpointHook,
  key: string,
  meta: SegmentMeta,
  bytes: Uint8Array,
  kind: 'fence' | 'block' | 'group' | 'void',
): Promise<void> {
  const ctx = { key, epoch: meta.epoch, kind };
  await failpoints.hit('log.segment.put.before', ctx);
  await store.putIfAbsent(key, bytes);
  await failpoints.hit('log.segment.put.after', ctx);
}

class GroupCommitLog implements LogWriter {
  readonly generation: number;
  readonly #store: ObjectStore;
  readonly #cfg: Config;
  #state: LogWriterState = 'open';
  #stopError: LogAppendError | null = null;
  /** Durable chain members; the live ones start at #chainHead. */
  #chain: SegmentMeta[];
  #chainHead = 0;
  /** Durable tip (acknowledged). */
  #tip: ChainTip;
  /** Tip including sealed groups in flight. */
  #spec: ChainTip;
  /** Epochs at or above #nextEpoch known to hold an object: never written, skipped. */
  readonly #occupied: Set<number>;
  /** Next epoch to write: above every epoch this writer ever attempted. */
  #nextEpoch: number;
  /** Present non-chain epochs (void, dead, orphaned), deleted once below the base. */
  readonly #voids: Set<number>;
  /** Present epochs never to delete (fence guards, chain.ts). */
  readonly #guards: Set<number>;
  #pending: Entry[] = [];
  #head = 0;
  #pendingRecords = 0;
  #pendingBytes = 0;
  #inflight: Group[] = [];
  #repair: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** A pump is scheduled for the next event-loop turn (see #pumpAfterTurn). */
  #turn = false;
  #idle: Array<() => void> = [];
  #truncation: Promise<void> = Promise.resolve();
  /** Segment bodies read during recovery, handed to the first replay (then dropped). */
  #warm: Map<number, Uint8Array>;
  #lostError: LogAppendError | null = null;
  #segmentsWritten = 1; // the fence
  #groupsWritten = 0;
  #recordsWritten = 0;
  #maxGroup = 0;
  #bytesWritten: number;
  #failedWrites = 0;

  constructor(
    store: ObjectStore,
    cfg: Config,
    generation: number,
    chain: SegmentMeta[],
    voids: Set<number>,
    guards: Set<number>,
    occupied: Set<number>,
    nextEpoch: number,
    warm: Map<number, Uint8Array>,
    fenceBytes: number,
  ) {
    this.#store = store;
    this.#cfg = cfg;
    this.generation = generation;
    this.#chain = chain;
    this.#tip = tipOf(chain[chain.length - 1]!);
    this.#spec = this.#tip;
    this.#voids = voids;
    this.#guards = guards;
    this.#occupied = occupied;
    this.#nextEpoch = nextEpoch;
    this.#warm = warm;
    this.#bytesWritten = fenceBytes;
  }

  get state(): LogWriterState {
    return this.#state;
  }

  get durableLsn(): number {
    return this.#tip.nextLsn - 1;
  }

  get lastLsn(): number {
    return this.#cfg.durability === 'none' ? this.#spec.nextLsn - 1 + this.#pendingRecords : this.durableLsn;
  }

  get firstLsn(): number {
    return this.#chain[this.#chainHead]!.firstLsn;
  }

  // ------------------------------------------------------------------ appends

  #refusal(): FloeError | null {
    switch (this.#state) {
      case 'open':
        return null;
      case 'closing':
      case 'closed':
        return new FloeError('CLOSED', 'log writer is closed', { backend: this.#store.location });
      case 'fenced':
        return new FloeError('FENCED', `log writer generation ${this.generation} was fenced by a newer writer; reopen to write`, {
          backend: this.#store.location,
          cause: this.#stopError,
        });
      case 'failed':
        return new FloeError('CLOSED', `log writer stopped after a failed write (${this.#stopError?.message ?? 'unknown'}); reopen the log to recover`, {
          backend: this.#store.location,
          cause: this.#stopError,
        });
    }
  }

  #checkRecord(record: unknown, index: number | null): asserts record is Uint8Array {
    const what = index === null ? 'record' : `record ${index}`;
    if (!(record instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array`);
    if (record.length === 0) throw invalid(`${what} is empty; log records must hold at least one byte`);
    if (record.length > this.#cfg.maxRecordBytes) {
      throw new FloeError('LIMIT_EXCEEDED', `${what} of ${record.length} bytes exceeds maxRecordBytes ${this.#cfg.maxRecordBytes}`, { backend: 'log' });
    }
  }

  append(record: Uint8Array): Promise<AppendResult> {
    try {
      this.#checkRecord(record, null);
      const refused = this.#refusal();
      if (refused) throw refused;
    } catch (err) {
      return Promise.reject(asError(err));
    }
    return this.#enqueue([record.slice()], record.length).then((lsn) => ({ lsn }));
  }

  appendBatch(batch: readonly Uint8Array[]): Promise<BatchResult> {
    try {
      if (!Array.isArray(batch) || batch.length === 0) throw invalid('appendBatch needs a non-empty array of records');
      const records: readonly unknown[] = batch;
      let bytes = 0;
      const copies = records.map((r, i) => {
        this.#checkRecord(r, i);
        bytes += r.length;
        return r;
      });
      if (records.length > this.#cfg.maxGroupRecords || (records.length > 1 && bytes > this.#cfg.maxGroupBytes)) {
        throw new FloeError(
          'LIMIT_EXCEEDED',
          `a batch of ${records.length} records / ${bytes} bytes does not fit one segment (maxGroupRecords ${this.#cfg.maxGroupRecords}, maxGroupBytes ${this.#cfg.maxGroupBytes})`,
          { backend: 'log' },
        );
      }
      const refused = this.#refusal();
      if (refused) throw refused;
      const n = records.length;
      return this.#enqueue(
        copies.map((r) => r.slice()),
        bytes,
      ).then((firstLsn) => ({ firstLsn, lastLsn: firstLsn + n - 1 }));
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  #enqueue(records: Uint8Array[], bytes: number): Promise<number> {
    const arrived = this.#cfg.maxDelayMs > 0 ? this.#cfg.now() : 0;
    if (this.#cfg.durability === 'none') {
      const lsn = this.#spec.nextLsn + this.#pendingRecords;
      this.#push({ records, bytes, arrived, resolve: noop, reject: noop });
      this.#pump();
      return Promise.resolve(lsn);
    }
    return new Promise<number>((resolve, reject) => {
      this.#push({ records, bytes, arrived, resolve, reject });
      this.#pump();
    });
  }

  #push(e: Entry): void {
    this.#pending.push(e);
    this.#pendingRecords += e.records.length;
    this.#pendingBytes += e.bytes;
  }

  /** Seal and send groups while pipeline slots are free. */
  #pump(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#repair || this.#turn || (this.#state !== 'open' && this.#state !== 'closing')) return;
    const cfg = this.#cfg;
    while (this.#inflight.length < cfg.maxInFlight && this.#pendingRecords > 0) {
      if (cfg.maxDelayMs > 0 && this.#inflight.length > 0 && this.#state === 'open' && this.#pendingRecords < cfg.maxGroupRecords && this.#pendingBytes < cfg.maxGroupBytes) {
        const wait = this.#pending[this.#head]!.arrived + cfg.maxDelayMs - cfg.now();
        if (wait > 0) {
          this.#timer = setTimeout(() => {
            this.#timer = null;
            this.#pump();
          }, Math.ceil(wait));
          return;
        }
      }
      this.#send(this.#seal());
    }
  }

  #seal(): Group {
    const cfg = this.#cfg;
    const epoch = this.#allocate();
    const entries: Entry[] = [];
    const records: Uint8Array[] = [];
    let bytes = 0;
    while (this.#head < this.#pending.length) {
      const e = this.#pending[this.#head]!;
      if (entries.length > 0 && (records.length + e.records.length > cfg.maxGroupRecords || bytes + e.bytes > cfg.maxGroupBytes)) break;
      entries.push(e);
      for (const r of e.records) records.push(r);
      bytes += e.bytes;
      this.#head++;
    }
    if (this.#head === this.#pending.length) {
      this.#pending = [];
      this.#head = 0;
    } else if (this.#head > 4096) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
    this.#pendingRecords -= records.length;
    this.#pendingBytes -= bytes;
    const meta: SegmentMeta = {
      generation: this.generation,
      epoch,
      prevEpoch: this.#spec.epoch,
      firstLsn: this.#spec.nextLsn,
      recordCount: records.length,
      flags: 0,
    };
    this.#spec = tipOf(meta);
    return {
      meta,
      key: segmentKey(cfg.prefix, epoch),
      bytes: encodeSegment(meta, records),
      entries,
      state: 'writing',
      error: null,
      done: Promise.resolve(),
    };
  }

  /** The next epoch to write: never one attempted before, never one known taken. */
  #allocate(): number {
    const e = firstFreeEpoch(this.#nextEpoch, this.#occupied);
    for (let x = this.#nextEpoch; x <= e; x++) this.#occupied.delete(x);
    this.#nextEpoch = e + 1;
    return e;
  }

  #send(g: Group): void {
    this.#inflight.push(g);
    g.done = putSegment(this.#store, this.#cfg.failpoints, g.key, g.meta, g.bytes, 'group')
      .then(
        () => {
          g.state = 'ok';
        },
        (err: unknown) => {
          g.state = 'failed';
          g.error = err;
          this.#failedWrites++;
        },
      )
      .then(() => this.#afterWrite());
  }

  /** A write settled: acknowledge the durable prefix, or start a repair. */
  #afterWrite(): void {
    if (this.#repair) return; // the repair waits for every write itself
    if (this.#inflight.some((g) => g.state === 'failed')) {
      this.#startRepair();
      return;
    }
    let acked = false;
    while (this.#inflight.length > 0 && this.#inflight[0]!.state === 'ok') {
      this.#ack(this.#inflight.shift()!);
      acked = true;
    }
    if (acked) this.#pumpAfterTurn();
    else this.#pump();
    this.#checkIdle();
  }

  /**
   * Seal the next group one event-loop turn after an acknowledgement, not at
   * once: the committers just released append their next records in their
   * continuations, and they join the group instead of waiting for the one
   * after it. Not a timer: one turn, and only right after a write completed.
   */
  #pumpAfterTurn(): void {
    if (this.#turn) return;
    this.#turn = true;
    setImmediate(() => {
      this.#turn = false;
      this.#pump();
      this.#checkIdle();
    });
  }

  #ackMeta(meta: SegmentMeta, bytes: number): void {
    this.#chain.push(meta);
    this.#tip = tipOf(meta);
    this.#segmentsWritten++;
    this.#bytesWritten += bytes;
  }

  #ack(g: Group): void {
    this.#ackMeta(g.meta, g.bytes.length);
    this.#groupsWritten++;
    this.#recordsWritten += g.meta.recordCount;
    if (g.meta.recordCount > this.#maxGroup) this.#maxGroup = g.meta.recordCount;
    let lsn = g.meta.firstLsn;
    for (const e of g.entries) {
      e.resolve(lsn);
      lsn += e.records.length;
    }
  }

  // ------------------------------------------------------------------ repair

  #startRepair(): void {
    this.#repair = this.#runRepair()
      .catch((err: unknown) => {
        // Only reached on a bug in the repair itself; stop rather than guess.
        this.#halt('failed', new LogAppendError('INVARIANT_VIOLATION', 'log repair failed unexpectedly', 'unknown', { cause: err, backend: this.#store.location }));
      })
      .finally(() => {
        this.#repair = null;
        this.#pump();
        this.#checkIdle();
      });
  }

  async #runRepair(): Promise<void> {
    await Promise.all(this.#inflight.map((g) => g.done));
    const groups = this.#inflight;
    this.#inflight = [];
    const requeue: Entry[] = [];
    let dropped = false;
    for (const g of groups) {
      if (this.#stopError) {
        for (const e of g.entries) e.reject(this.#stopError);
        continue;
      }
      const next = continues(this.#tip, g.meta);
      if (g.state === 'ok') {
        if (next) this.#ack(g);
        else {
          // Durable, but behind a group that did not make it: an orphan.
          this.#voids.add(g.meta.epoch);
          requeue.push(...g.entries);
        }
        continue;
      }
      let fate: 'landed' | 'blocked' | 'other';
      try {
        fate = await this.#settle(g);
      } catch (err) {
        const stop =
          err instanceof LogAppendError
            ? err
            : new LogAppendError(
                codeOf(err),
                `log segment write for epoch ${g.meta.epoch} failed and settling it failed too; the records may or may not be durable; the writer stopped, reopen the log to find out`,
                'unknown',
                { key: g.key, backend: this.#store.location, cause: new AggregateError([g.error, err], 'write failed, then reading its epoch failed') },
              );
        this.#halt(stop.code === 'FENCED' ? 'fenced' : 'failed', stop);
        for (const e of g.entries) e.reject(this.#stopError);
        continue;
      }
      if (fate === 'landed' && next) {
        this.#ack(g);
        continue;
      }
      this.#voids.add(g.meta.epoch);
      if (fate === 'blocked' && next) {
        dropped = true;
        const err = new LogAppendError(
          codeOf(g.error),
          `log segment write for epoch ${g.meta.epoch} (LSN ${g.meta.firstLsn}..${lastLsnOf(g.meta)}) failed; nothing of it is durable, and its epoch was blocked so it never will be`,
          'not-durable',
          { key: g.key, backend: this.#store.location, cause: g.error },
        );
        for (const e of g.entries) e.reject(err);
        if (this.#cfg.durability === 'none') this.#lostError = err;
      } else {
        // Its epoch holds someone else's object, or it sits behind a failed
        // group: its records were never at fault; write them again.
        requeue.push(...g.entries);
      }
    }
    this.#spec = this.#tip;
    if (this.#stopError) {
      for (const e of requeue) e.reject(this.#stopError);
      return;
    }
    if (dropped && this.#cfg.durability === 'none') {
      // LSNs already handed out for later records are now wrong: stop.
      for (const e of requeue) e.reject(this.#lostError);
      this.#halt('failed', this.#lostError!);
      return;
    }
    if (requeue.length > 0) {
      this.#pending = [...requeue, ...this.#pending.slice(this.#head)];
      this.#head = 0;
      this.#pendingRecords = 0;
      this.#pendingBytes = 0;
      for (const e of this.#pending) {
        this.#pendingRecords += e.records.length;
        this.#pendingBytes += e.bytes;
      }
    }
  }

  /** Read what sits at `epoch` and compare it with the bytes we tried to write. */
  async #sighting(epoch: number, mine: Uint8Array): Promise<Sighting> {
    const key = segmentKey(this.#cfg.prefix, epoch);
    let bytes: Uint8Array;
    try {
      bytes = (await this.#store.get(key)).bytes;
    } catch (err) {
      // Present a moment ago, gone now.
      if (isFloeError(err, 'NOT_FOUND')) return 'missing';
      throw err;
    }
    if (sameBytes(bytes, mine)) return 'mine';
    const d = decodeSegment(bytes, epoch);
    if (!d.ok) return d.unsupported ? 'newer' : 'other';
    return d.meta.generation > this.generation ? 'newer' : 'other';
  }

  #fenced(epoch: number): LogAppendError {
    return new LogAppendError('FENCED', `log writer generation ${this.generation} was fenced: a newer writer holds epoch ${epoch}; records not written`, 'not-durable', {
      key: segmentKey(this.#cfg.prefix, epoch),
      backend: this.#store.location,
    });
  }

  /**
   * Settle the epoch of failed group `g` so that it holds something final
   * before the writer moves past it (it never writes that epoch again and
   * never leaves a free epoch behind): 'landed' (g's own bytes are there),
   * 'blocked' (our VOID marker is there now: g can never land) or 'other'
   * (someone else's object is there: g did not land). Throws FENCED, or an
   * error when the epoch's content cannot be settled.
   */
  async #settle(g: Group): Promise<'landed' | 'blocked' | 'other'> {
    const epoch = g.meta.epoch;
    const meta: SegmentMeta = { generation: this.generation, epoch, prevEpoch: epoch - 1, firstLsn: 1, recordCount: 0, flags: FLAG_VOID };
    const marker = encodeSegment(meta, []);
    let block = !isFloeError(g.error, 'ALREADY_EXISTS');
    for (let attempt = 0; attempt < 4; attempt++) {
      if (block) {
        try {
          await putSegment(this.#store, this.#cfg.failpoints, g.key, meta, marker, 'void');
          this.#segmentsWritten++;
          this.#bytesWritten += marker.length;
          return 'blocked';
        } catch (err) {
          if (!isFloeError(err, 'ALREADY_EXISTS')) {
            throw new LogAppendError(
              codeOf(g.error),
              `log segment write for epoch ${epoch} (LSN ${g.meta.firstLsn}..${lastLsnOf(g.meta)}) failed and its outcome is unknown: the records may or may not be durable; the writer stopped, reopen the log to find out`,
              'unknown',
              { key: g.key, backend: this.#store.location, cause: new AggregateError([g.error, err], 'write failed, then blocking its epoch failed') },
            );
          }
        }
      }
      const seen = await this.#sighting(epoch, g.bytes);
      if (seen === 'mine') return 'landed';
      if (seen === 'newer') throw this.#fenced(epoch);
      if (seen === 'other') return 'other';
      block = true; // it vanished: occupy it ourselves
    }
    throw new LogAppendError('STORAGE_UNAVAILABLE', `epoch ${epoch} keeps appearing and vanishing; the writer stopped`, 'unknown', {
      key: g.key,
      backend: this.#store.location,
      cause: g.error,
    });
  }

  #halt(state: 'fenced' | 'failed', err: LogAppendError): void {
    if (this.#stopError) return;
    this.#stopError = err;
    this.#state = state;
    for (let i = this.#head; i < this.#pending.length; i++) this.#pending[i]!.reject(err);
    this.#pending = [];
    this.#head = 0;
    this.#pendingRecords = 0;
    this.#pendingBytes = 0;
    if (this.#cfg.durability === 'none') this.#lostError ??= err;
  }

  #checkIdle(): void {
    if (this.#pendingRecords > 0 || this.#inflight.length > 0 || this.#repair || this.#turn) return;
    const waiters = this.#idle;
    this.#idle = [];
    for (const w of waiters) w();
  }

  // ------------------------------------------------------------------ reads, truncation, close

  replay(fromLsn: number): AsyncIterable<LogEntry> {
    checkLsn('fromLsn', fromLsn, 1);
    const chain = this.#chain.slice(this.#chainHead);
    const first = chain[0]!.firstLsn;
    if (fromLsn < first) {
      throw new FloeError('LOG_GAP', `records from LSN ${fromLsn} were truncated; the log starts at LSN ${first}`, {
        key: this.#cfg.prefix,
        backend: this.#store.location,
      });
    }
    const { prefix, readConcurrency } = this.#cfg;
    const warm = this.#warm;
    this.#warm = new Map();
    return { [Symbol.asyncIterator]: () => replayChain(this.#store, prefix, chain, fromLsn, warm, readConcurrency) };
  }

  truncateThrough(lsn: number): Promise<void> {
    try {
      checkLsn('lsn', lsn, 0);
      if (this.#state !== 'open' && this.#state !== 'closing') {
        throw this.#refusal() ?? new FloeError('CLOSED', 'log writer is closed', { backend: this.#store.location });
      }
      if (lsn > this.durableLsn) throw invalid(`cannot truncate through LSN ${lsn}: only LSNs up to ${this.durableLsn} are durable`);
    } catch (err) {
      return Promise.reject(asError(err));
    }
    const run = this.#truncation.then(() => this.#truncate(lsn));
    // The chain only orders truncations; each caller gets its own outcome from `run`.
    this.#truncation = run.then(noop, noop);
    return run;
  }

  async #truncate(lsn: number): Promise<void> {
    const { prefix, failpoints } = this.#cfg;
    const chain = this.#chain.slice(this.#chainHead);
    const plan = planTruncation(chain, [...this.#voids], this.#guards, lsn);
    if (plan.base) {
      await writeBase(this.#store, prefix, plan.base, failpoints);
      // Below the base now: dead, whether or not the deletes get done.
      for (const m of chain.slice(0, plan.chainDeleted)) {
        this.#voids.add(m.epoch);
        this.#warm.delete(m.epoch);
      }
      this.#chainHead += plan.chainDeleted;
    }
    for (const epoch of plan.deletions) {
      const key = segmentKey(prefix, epoch);
      await failpoints.hit('log.truncate.delete.before', { key, epoch });
      await this.#store.delete(key);
      await failpoints.hit('log.truncate.delete.after', { key, epoch });
      this.#voids.delete(epoch);
    }
    if (plan.base) await pruneBases(this.#store, prefix, plan.base.startEpoch);
    if (this.#chainHead > 1024 && this.#chainHead * 2 > this.#chain.length) {
      this.#chain = this.#chain.slice(this.#chainHead);
      this.#chainHead = 0;
    }
  }

  async close(): Promise<void> {
    if (this.#state === 'open') this.#state = 'closing';
    this.#pump();
    await new Promise<void>((resolve) => {
      this.#idle.push(resolve);
      this.#checkIdle();
    });
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#state === 'closing') this.#state = 'closed';
    await this.#truncation;
    if (this.#lostError) {
      throw new FloeError('CLOSED', `log writer (durability 'none') lost acknowledged records: ${this.#lostError.message}`, {
        backend: this.#store.location,
        cause: this.#lostError,
      });
    }
  }

  stats(): LogWriterStats {
    return {
      generation: this.generation,
      state: this.#state,
      segmentsWritten: this.#segmentsWritten,
      groupsWritten: this.#groupsWritten,
      recordsWritten: this.#recordsWritten,
      meanRecordsPerGroup: this.#groupsWritten === 0 ? 0 : this.#recordsWritten / this.#groupsWritten,
      maxRecordsPerGroup: this.#maxGroup,
      bytesWritten: this.#bytesWritten,
      failedWrites: this.#failedWrites,
      durableLsn: this.durableLsn,
      firstLsn: this.firstLsn,
      segments: this.#chain.length - this.#chainHead,
      pendingRecords: this.#pendingRecords,
      inFlight: this.#inflight.length,
    };
  }
}

interface FenceState {
  readonly base: LogBase | null;
  slots: Map<number, Slot>;
  analysis: LogAnalysis;
  occupied: Set<number>;
}

const FIRST_BLOCK_WINDOW = 8;
const BLOCKS_IN_FLIGHT = 64;

/** Segment epochs listed above `after`, ascending. */
async function listEpochsAfter(store: ObjectStore, prefix: string, after: number): Promise<number[]> {
  const out: number[] = [];
  let startAfter = segmentKey(prefix, after);
  for (;;) {
    const page = await store.list(prefix, { startAfter });
    for (const key of page.keys) {
      const e = parseSegmentKey(prefix, key);
      if (e !== null) out.push(e);
    }
    const last = page.keys[page.keys.length - 1];
    if (!page.more || last === undefined) return out;
    startAfter = last;
  }
}
const MAX_BLOCK_WINDOW = 4096;

/**
 * Read what took `epoch` after our listing: null if it vanished again.
 * FENCED when a writer of our generation or newer wrote it.
 */
async function readTaken(store: ObjectStore, prefix: string, epoch: number, generation: number): Promise<Slot | null> {
  const key = segmentKey(prefix, epoch);
  let got: Uint8Array;
  try {
    got = (await store.get(key)).bytes;
  } catch (err) {
    if (isFloeError(err, 'NOT_FOUND')) return null;
    throw err;
  }
  const d = decodeSegment(got, epoch);
  if (!d.ok && d.unsupported) throw unsupported(store, key, d.problem);
  if (d.ok && d.meta.generation >= generation) {
    throw new FloeError('FENCED', `a newer log writer (generation ${d.meta.generation}) took over while generation ${generation} was opening`, {
      key,
      backend: store.location,
    });
  }
  return { epoch, meta: d.ok ? d.meta : null };
}

/**
 * Make the fence segment durable (step 3 of the protocol). Normally one
 * putIfAbsent at the first free epoch above the tip. If that epoch was
 * taken by a segment continuing the chain, an older writer is still
 * appending and would keep winning that race; then we block a window of
 * free epochs ahead of everything seen, in parallel, with empty VOID
 * segments (never chain members). The older writer can acknowledge nothing
 * at or beyond the first epoch we win (its write there collides with our
 * newer generation); we read what it won below that, and fence above the
 * window, so the fence's guard range covers the epoch that stops it. The
 * window grows until we win an epoch.
 */
async function placeFence(store: ObjectStore, cfg: Config, generation: number, st: FenceState): Promise<{ fence: SegmentMeta; fenceBytes: number }> {
  const { prefix, failpoints } = cfg;
  const note = (slot: Slot): void => {
    st.slots.set(slot.epoch, slot);
    st.occupied.add(slot.epoch);
  };
  let window = 0;
  for (let round = 0; round < MAX_FENCE_ATTEMPTS; round++) {
    const tip = st.analysis.tip;
    if (window === 0) {
      const epoch = firstFreeEpoch(tip.epoch + 1, st.occupied);
      const meta: SegmentMeta = { generation, epoch, prevEpoch: tip.epoch, firstLsn: tip.nextLsn, recordCount: 0, flags: FLAG_FENCE };
      const bytes = encodeSegment(meta, []);
      try {
        await putSegment(store, failpoints, segmentKey(prefix, epoch), meta, bytes, 'fence');
        return { fence: meta, fenceBytes: bytes.length };
      } catch (err) {
        if (!isFloeError(err, 'ALREADY_EXISTS')) throw err;
      }
      // Taken after our listing: by an older writer's segment (maybe
      // acknowledged: it joins the chain), by debris (void), or by a newer
      // writer (we lost).
      const slot = await readTaken(store, prefix, epoch, generation);
      if (!slot) continue; // gone again: try the same epoch once more
      note(slot);
      st.analysis = analyzeLog([...st.slots.values()], st.base);
      if (st.analysis.tip.epoch !== tip.epoch) window = FIRST_BLOCK_WINDOW; // an older writer is live
      continue;
    }
    // Where is the older writer now? One listing of what is new, so the
    // window starts just above its current position.
    const fresh = (await listEpochsAfter(store, prefix, st.analysis.maxEpoch)).filter((e) => !st.occupied.has(e));
    const hi = fresh.reduce((m, e) => Math.max(m, e), st.analysis.maxEpoch) + window;
    const seen = new Set(fresh);
    const targets: number[] = [];
    for (let e = tip.epoch + 1; e <= hi; e++) if (!st.occupied.has(e) && !seen.has(e)) targets.push(e);
    // Blocks first, all at once (the race is now); then read what the older
    // writer won.
    let won = false;
    const lost: number[] = [];
    await forEachLimited(targets, BLOCKS_IN_FLIGHT, async (epoch) => {
      const meta: SegmentMeta = { generation, epoch, prevEpoch: epoch - 1, firstLsn: 1, recordCount: 0, flags: FLAG_VOID };
      try {
        await putSegment(store, failpoints, segmentKey(prefix, epoch), meta, encodeSegment(meta, []), 'block');
        note({ epoch, meta });
        won = true;
      } catch (err) {
        if (!isFloeError(err, 'ALREADY_EXISTS')) throw err;
        lost.push(epoch);
      }
    });
    await forEachLimited([...fresh, ...lost], cfg.readConcurrency, async (epoch) => {
      const slot = await readTaken(store, prefix, epoch, generation);
      if (slot) note(slot);
    });
    st.analysis = analyzeLog([...st.slots.values()], st.base);
    window = won ? 0 : Math.min(window * 4, MAX_BLOCK_WINDOW);
  }
  throw new FloeError('CAS_CONFLICT', `could not place a fence segment after ${MAX_FENCE_ATTEMPTS} rounds; other writers keep writing`, {
    key: prefix,
    backend: store.location,
  });
}

/**
 * Open the log for writing: claim a generation, recover, fence. Resolves
 * once this process is the log's writer.
 */
export async function openLogWriter(store: ObjectStore, options: LogWriterOptions = {}): Promise<LogWriter> {
  const cfg = normalizeOptions(options);
  const { prefix, failpoints } = cfg;
  let generation = await claimGeneration(store, prefix, { failpoints, now: cfg.now });
  const scan = await scanLog(store, prefix, cfg.readConcurrency);
  const slots: Slot[] = scan.slots;
  const newest = Math.max(0, ...slots.map((s) => s.meta?.generation ?? 0));
  if (newest >= generation) {
    const claims = await listClaims(store, prefix);
    if ((claims[claims.length - 1] ?? 0) > generation) {
      throw new FloeError('FENCED', `a newer log writer (generation ${newest}) opened while this one (generation ${generation}) was opening`, {
        key: prefix,
        backend: store.location,
      });
    }
    // Segments carry a generation no claim object records (claims were
    // removed by hand): claim above them so fencing still holds.
    generation = await claimGeneration(store, prefix, { failpoints, now: cfg.now, atLeast: newest + 1 });
  }
  const st: FenceState = {
    base: scan.base,
    slots: new Map(slots.map((s) => [s.epoch, s])),
    analysis: scan.analysis,
    occupied: new Set(slots.map((s) => s.epoch)),
  };
  const { fence, fenceBytes } = await placeFence(store, cfg, generation, st);
  // Nothing is deleted here: skipped epochs stay occupied (an older writer
  // still running must collide in them), and dead ones go at truncation.
  st.slots.set(fence.epoch, { epoch: fence.epoch, meta: fence });
  const analysis = analyzeLog([...st.slots.values()], st.base);
  const last = analysis.chain[analysis.chain.length - 1];
  if (last?.epoch !== fence.epoch) {
    throw new FloeError('INVARIANT_VIOLATION', `the fence at epoch ${fence.epoch} does not end the chain it continues`, { key: prefix, backend: store.location });
  }
  await pruneClaims(store, prefix, generation);
  const above = new Set([...st.occupied].filter((e) => e > fence.epoch));
  const members = new Set(analysis.chain.map((m) => m.epoch));
  const warm = new Map([...scan.warm].filter(([e]) => members.has(e)));
  return new GroupCommitLog(store, cfg, generation, [...analysis.chain], new Set(analysis.voids), analysis.guards, above, fence.epoch + 1, warm, fenceBytes);
}
