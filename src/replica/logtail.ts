/**
 * Following a log on an object store incrementally: each poll lists only
 * the keys after the newest chain member already known and reads only the
 * segments written since, so an idle poll costs one LIST whatever the
 * log's length (the first poll, and the rare cases below, scan it whole).
 *
 * Contract and invariants:
 * - The chain is decided by the log's own rules (log/chain.ts
 *   `analyzeLog`, log/replay.ts `scanLog`/`replayChain`, segment decoding):
 *   an incremental poll runs `analyzeLog` over the known tip plus the new
 *   segments, with the tip as the start. That is the same chain a full scan
 *   would walk: a successor always has a higher epoch than its predecessor,
 *   so every candidate is in the listing after the tip, and a durable member
 *   never stops being one (a takeover fences the epochs after the tip it
 *   recovered, so an older writer cannot add a competing successor later).
 * - Truncation: the base object moves before any segment is deleted. When
 *   the listing shows a base beyond the known tip, or a segment vanished
 *   between listing and reading, the poll re-reads the base and anchors the
 *   chain there (or falls back to a full scan when that does not settle).
 *   A reader asking for records older than the first known member gets a
 *   full scan, and LOG_GAP when the log no longer holds them.
 * - Records are returned only from verified chain members, in LSN order,
 *   up to a bound fixed when the read starts. Members are remembered (their
 *   headers) while the log holds them, up to MAX_KNOWN, so readers at
 *   different positions (several followers of one server) do not force
 *   rescans; segment bodies read by a poll are kept for the replay that
 *   follows, within a byte budget, and released once a reader passed them.
 * - Never writes. Polls are serialized within one instance; a missed
 *   truncation costs at most one poll of delay, never a wrong record.
 */
import { FloeError, isFloeError } from '../errors.js';
import { parseBaseKey, readBase } from '../log/base.js';
import type { Slot } from '../log/chain.js';
import { analyzeLog } from '../log/chain.js';
import type { LogEntry } from '../log/replay.js';
import { DEFAULT_READ_CONCURRENCY, forEachLimited, replayChain, scanLog, unsupported } from '../log/replay.js';
import type { SegmentMeta } from '../log/segment.js';
import { decodeSegment, lastLsnOf, parseSegmentKey, segmentKey } from '../log/segment.js';
import type { ObjectStore } from '../store/types.js';

/** Segment bodies kept between a poll and the replay that consumes them. */
const WARM_BUDGET = 32 * 1024 * 1024;
/** Chain members (headers only) remembered at most; reading older ones costs a full scan. */
const MAX_KNOWN = 100_000;

export interface TailRead {
  /** Newest durable LSN when the read started; entries never pass it. */
  readonly bound: number;
  readonly entries: AsyncIterable<LogEntry>;
}

export class LogTail {
  readonly #store: ObjectStore;
  readonly #prefix: string;
  readonly #concurrency: number;
  /** Known chain members, oldest first (empty before the first poll or for an empty log). */
  #chain: SegmentMeta[] = [];
  /** Lowest LSN the log holds, as of the newest base seen (for LOG_GAP). */
  #firstLsn = 1;
  /** Base object epochs the last listing showed; a change means a truncation ran (null: unknown). */
  #bases: string | null = null;
  /** Readable-or-not segments above the tip that are not chain members (immutable: never re-read). */
  #debris = new Map<number, Slot>();
  #warm = new Map<number, Uint8Array>();
  #warmBytes = 0;
  #lock: Promise<unknown> = Promise.resolve();

  constructor(store: ObjectStore, prefix = 'log/', concurrency = DEFAULT_READ_CONCURRENCY) {
    this.#store = store;
    this.#prefix = prefix;
    this.#concurrency = concurrency;
  }

  /** Learn what was written since the last poll; resolves with the newest durable LSN. */
  poll(): Promise<number> {
    return this.#serial(async () => {
      await this.#poll(1);
      this.#forget(0);
      return this.#maxDurable();
    });
  }

  /**
   * The durable records with lsn > since, up to the newest durable LSN at
   * this call. LOG_GAP when the log no longer reaches back to since + 1 (or
   * when a segment still needed is deleted while streaming).
   */
  read(since: number): Promise<TailRead> {
    return this.#serial(async () => {
      await this.#poll(since + 1);
      const first = this.#chain[0];
      // Older than the members we still know (and not known to be truncated): only a full scan can tell.
      if (first && since + 1 >= this.#firstLsn && since + 1 < first.firstLsn) await this.#fullScan(since + 1);
      if (since + 1 < this.#firstLsn) {
        throw new FloeError('LOG_GAP', `records from LSN ${since + 1} were truncated; the log now starts at LSN ${this.#firstLsn} (re-read the checkpoint)`, {
          key: this.#prefix,
          backend: this.#store.location,
        });
      }
      const bound = this.#maxDurable();
      const members = this.#chain.filter((m) => m.recordCount > 0 && lastLsnOf(m) > since);
      // Hand the bodies of these members to the replay (it releases them as it goes).
      const warm = new Map<number, Uint8Array>();
      for (const m of members) {
        const b = this.#warm.get(m.epoch);
        if (b) warm.set(m.epoch, b);
      }
      this.#forget(since);
      return { bound, entries: { [Symbol.asyncIterator]: () => replayChain(this.#store, this.#prefix, members, since + 1, warm, this.#concurrency) } };
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined); // ordering only; `run` carries the outcome to its caller
    return run;
  }

  #maxDurable(): number {
    const tip = this.#chain[this.#chain.length - 1];
    return tip ? lastLsnOf(tip) : this.#firstLsn - 1;
  }

  /**
   * Release the bodies of members wholly at or below `since` (consumed), and
   * forget members the log no longer holds (below its first LSN) or beyond
   * the newest MAX_KNOWN; the tip is always kept. Other readers may still be
   * behind `since`, so members the log holds stay known: reading them again
   * costs their GETs, not a scan of the whole log.
   */
  #forget(since: number): void {
    for (const m of this.#chain) {
      if (lastLsnOf(m) > since) break;
      this.#dropWarm(m.epoch);
    }
    let k = 0;
    while (k < this.#chain.length - 1 && (lastLsnOf(this.#chain[k]!) < this.#firstLsn || this.#chain.length - k > MAX_KNOWN)) k++;
    if (k === 0) return;
    for (const m of this.#chain.slice(0, k)) this.#dropWarm(m.epoch);
    this.#chain = this.#chain.slice(k);
  }

  #dropWarm(epoch: number): void {
    const b = this.#warm.get(epoch);
    if (b) {
      this.#warm.delete(epoch);
      this.#warmBytes -= b.length;
    }
  }

  #keepWarm(epoch: number, bytes: Uint8Array): void {
    if (this.#warm.has(epoch) || this.#warmBytes + bytes.length > WARM_BUDGET) return;
    this.#warm.set(epoch, bytes);
    this.#warmBytes += bytes.length;
  }

  async #fullScan(warmFrom: number): Promise<void> {
    const scan = await scanLog(this.#store, this.#prefix, this.#concurrency, warmFrom);
    this.#chain = [...scan.analysis.chain];
    this.#firstLsn = scan.analysis.firstLsn;
    this.#bases = null; // the scan's listing is not ours: the next poll reads the base once
    this.#debris.clear();
    this.#warm.clear();
    this.#warmBytes = 0;
    for (const [epoch, bytes] of scan.warm) this.#keepWarm(epoch, bytes);
  }

  async #poll(warmFrom: number): Promise<void> {
    const tip = this.#chain[this.#chain.length - 1];
    if (!tip) return this.#fullScan(warmFrom);
    const { epochs, bases } = await this.#listAfter(segmentKey(this.#prefix, tip.epoch));
    const slots: Slot[] = [];
    const fresh: Array<{ epoch: number; bytes: Uint8Array; meta: SegmentMeta }> = [];
    let vanished = false;
    const toRead: number[] = [];
    for (const e of epochs) {
      const known = this.#debris.get(e);
      if (known) slots.push(known);
      else toRead.push(e);
    }
    await forEachLimited(toRead, this.#concurrency, async (epoch) => {
      const key = segmentKey(this.#prefix, epoch);
      let bytes: Uint8Array;
      try {
        bytes = (await this.#store.get(key)).bytes;
      } catch (err) {
        // Deleted between listing and reading: a truncation ran meanwhile (handled below).
        if (isFloeError(err, 'NOT_FOUND')) {
          vanished = true;
          return;
        }
        throw err;
      }
      const d = decodeSegment(bytes, epoch);
      if (d.ok) {
        slots.push({ epoch, meta: d.meta });
        fresh.push({ epoch, bytes, meta: d.meta });
        return;
      }
      if (d.unsupported) throw unsupported(this.#store, key, d.problem);
      slots.push({ epoch, meta: null });
    });
    const baseSig = bases.join(',');
    if (vanished || baseSig !== this.#bases) {
      // A truncation ran (base objects changed) or is running: the base in effect decides
      // where the log starts now, and whether it moved past our tip.
      // No base object listed: the log was never truncated (the newest base is never pruned).
      const base = baseSig === '' && !vanished ? null : await readBase(this.#store, this.#prefix);
      if (vanished || (base && base.startEpoch > tip.epoch)) {
        const a = base && !vanished ? analyzeLog(slots, base) : null;
        if (!a || a.baseProblem !== null) return this.#fullScan(warmFrom);
        this.#adopt(a.chain, fresh, slots, warmFrom);
        this.#chain = [...a.chain];
        this.#firstLsn = a.firstLsn;
        this.#bases = baseSig;
        return;
      }
      // The start is at or below our tip, so on the chain we know: its first LSN is the base's.
      this.#firstLsn = base ? base.firstLsn : 1;
      this.#bases = baseSig;
    }
    const a = analyzeLog([{ epoch: tip.epoch, meta: tip }, ...slots], { startEpoch: tip.epoch, firstLsn: tip.firstLsn });
    const grown = a.chain.slice(1);
    this.#adopt(grown, fresh, slots, warmFrom);
    this.#chain.push(...grown);
  }

  /** Keep bodies of new members still wanted; remember non-members above the new tip. */
  #adopt(members: readonly SegmentMeta[], fresh: ReadonlyArray<{ epoch: number; bytes: Uint8Array; meta: SegmentMeta }>, slots: readonly Slot[], warmFrom: number): void {
    const inChain = new Set(members.map((m) => m.epoch));
    for (const f of fresh) if (inChain.has(f.epoch) && f.meta.recordCount > 0 && lastLsnOf(f.meta) >= warmFrom) this.#keepWarm(f.epoch, f.bytes);
    const newTip = members.length > 0 ? members[members.length - 1]!.epoch : (this.#chain[this.#chain.length - 1]?.epoch ?? 0);
    const debris = new Map<number, Slot>();
    for (const s of slots) if (!inChain.has(s.epoch) && s.epoch > newTip) debris.set(s.epoch, s);
    this.#debris = debris;
  }

  /** Segment epochs and base epochs listed after `startAfter` (all pages). */
  async #listAfter(startAfter: string): Promise<{ epochs: number[]; bases: number[] }> {
    const epochs: number[] = [];
    const bases: number[] = [];
    let after = startAfter;
    for (;;) {
      const page = await this.#store.list(this.#prefix, { startAfter: after });
      for (const key of page.keys) {
        const e = parseSegmentKey(this.#prefix, key);
        if (e !== null) epochs.push(e);
        else {
          const b = parseBaseKey(this.#prefix, key);
          if (b !== null) bases.push(b);
        }
      }
      if (!page.more || page.keys.length === 0) return { epochs, bases };
      after = page.keys[page.keys.length - 1]!;
    }
  }
}
