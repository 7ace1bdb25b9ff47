/**
 * The log's decisions, as pure functions over segment headers: which
 * segments form the durable log, what is void, what must be kept as a
 * guard, and what truncation may delete. No I/O; exhaustively tested.
 *
 * The durable log is a chain of segments linked by `prevEpoch`:
 *
 * - Start: with a base (base.ts), the segment at base.startEpoch, which
 *   must be readable and hold base.firstLsn (else the log is CORRUPT:
 *   fail closed); everything below the base is dead and ignored. Without a
 *   base (never truncated), the genesis segment (prevEpoch 0) with the
 *   highest (generation, epoch), or an empty log if there is none.
 * - Step: the successor of chain member `c` is, among readable non-void
 *   segments `s` with `s.prevEpoch = c.epoch`, `s.generation >=
 *   c.generation` and `s.firstLsn = c.firstLsn + c.recordCount`, the one
 *   with the highest (generation, epoch).
 * - The chain ends where no successor exists: at a missing, torn, corrupt or
 *   non-continuing segment. Nothing after that point is part of the log,
 *   even if later segments are intact.
 *
 * A segment whose `prevEpoch` is below `epoch - 1` skips the epochs between.
 * Writers only skip epochs that hold an object (torn debris, an older
 * writer's leftovers, their own failed writes, VOID markers), never a free
 * one, and never write an epoch twice. VOID-flagged segments only occupy an
 * epoch; they are never chain members.
 *
 * Guards: a FENCE segment (a writer taking over) at epoch f continuing
 * epoch p is the first epoch an older writer still running would have to
 * win to acknowledge anything more. The objects in (p, f] are kept, even
 * after truncation passed them, so that such a writer, however late it
 * wakes up, collides there and learns it was fenced. Guards of the last
 * GUARD_GENERATIONS generations are kept; older ones are collected.
 */
import type { LogBase } from './base.js';
import type { SegmentMeta } from './segment.js';
import { FLAG_FENCE, FLAG_VOID, lastLsnOf } from './segment.js';

/** One listed segment: its header when readable and verified, else null. */
export interface Slot {
  readonly epoch: number;
  readonly meta: SegmentMeta | null;
}

/** The end of the chain: the next segment continues from here. */
export interface ChainTip {
  /** Epoch of the last chain member (0 for an empty log). */
  readonly epoch: number;
  /** Generation of the last chain member (0 for an empty log). */
  readonly generation: number;
  /** LSN the next record gets. */
  readonly nextLsn: number;
}

export const EMPTY_TIP: ChainTip = { epoch: 0, generation: 0, nextLsn: 1 };

/** How many recent writer generations keep their fence guards. */
export const GUARD_GENERATIONS = 16;

export interface LogAnalysis {
  /** Chain members, oldest first. */
  readonly chain: SegmentMeta[];
  /** Present epochs that are not chain members (dead ones below the base included), ascending. */
  readonly voids: number[];
  /** Present epochs that must not be deleted (see the module comment). */
  readonly guards: Set<number>;
  readonly tip: ChainTip;
  /** Lowest LSN still held (tip.nextLsn when the chain holds no records). */
  readonly firstLsn: number;
  /** Highest durable LSN (0 when none). */
  readonly maxDurableLsn: number;
  /** Highest epoch present, readable or not (0 when none). */
  readonly maxEpoch: number;
  /** Highest generation of any readable segment (0 when none). */
  readonly maxGeneration: number;
  /**
   * Set when the base names a start that cannot be used: 'missing' (a
   * listing older than the base: list again), 'unreadable' or 'mismatch'
   * (the log is damaged: fail closed).
   */
  readonly baseProblem: 'missing' | 'unreadable' | 'mismatch' | null;
}

/** True when `next` directly continues `prev` in the chain. */
export function continues(prev: ChainTip, next: SegmentMeta): boolean {
  return (
    (next.flags & FLAG_VOID) === 0 &&
    next.prevEpoch === prev.epoch &&
    next.epoch > prev.epoch &&
    next.generation >= prev.generation &&
    next.firstLsn === prev.nextLsn
  );
}

export function tipOf(meta: SegmentMeta): ChainTip {
  return { epoch: meta.epoch, generation: meta.generation, nextLsn: meta.firstLsn + meta.recordCount };
}

/** Higher (generation, epoch) wins. */
function better(a: SegmentMeta, b: SegmentMeta): SegmentMeta {
  if (a.generation !== b.generation) return a.generation > b.generation ? a : b;
  return a.epoch >= b.epoch ? a : b;
}

/** Present epochs guarded by the fences of recent generations. */
export function guardEpochs(slots: readonly Slot[], maxGeneration: number): Set<number> {
  const present = slots.map((s) => s.epoch).sort((a, b) => a - b);
  const guards = new Set<number>();
  for (const s of slots) {
    const m = s.meta;
    // Generation 1 had no predecessor to guard against.
    if (!m || (m.flags & FLAG_FENCE) === 0 || m.generation <= 1 || m.generation <= maxGeneration - GUARD_GENERATIONS) continue;
    for (const e of present) if (e > m.prevEpoch && e <= m.epoch) guards.add(e);
  }
  return guards;
}

/** Compute the durable chain from every listed segment (any order) and the base, if any. */
export function analyzeLog(slots: readonly Slot[], base: LogBase | null = null): LogAnalysis {
  const sorted = [...slots].sort((a, b) => a.epoch - b.epoch);
  const maxEpoch = sorted.length ? sorted[sorted.length - 1]!.epoch : 0;
  const maxGeneration = sorted.reduce((g, s) => Math.max(g, s.meta?.generation ?? 0), 0);
  const guards = guardEpochs(sorted, maxGeneration);
  const result = (chain: SegmentMeta[], baseProblem: LogAnalysis['baseProblem'] = null): LogAnalysis => {
    const members = new Set(chain.map((m) => m.epoch));
    const last = chain[chain.length - 1];
    const tip = last ? tipOf(last) : EMPTY_TIP;
    return {
      chain,
      voids: sorted.filter((s) => !members.has(s.epoch)).map((s) => s.epoch),
      guards,
      tip,
      firstLsn: chain[0]?.firstLsn ?? tip.nextLsn,
      maxDurableLsn: tip.nextLsn - 1,
      maxEpoch,
      maxGeneration,
      baseProblem,
    };
  };
  let start: SegmentMeta | null = null;
  const byPrev = new Map<number, SegmentMeta[]>();
  for (const s of sorted) {
    const m = s.meta;
    if (!m || (m.flags & FLAG_VOID) !== 0) continue;
    if (base && m.epoch < base.startEpoch) continue; // dead
    if (!base && m.prevEpoch === 0) start = start ? better(start, m) : m;
    const list = byPrev.get(m.prevEpoch);
    if (list) list.push(m);
    else byPrev.set(m.prevEpoch, [m]);
  }
  if (base) {
    const at = sorted.find((s) => s.epoch === base.startEpoch);
    if (!at) return result([], 'missing');
    if (!at.meta || (at.meta.flags & FLAG_VOID) !== 0) return result([], 'unreadable');
    if (at.meta.firstLsn !== base.firstLsn) return result([], 'mismatch');
    start = at.meta;
  }
  if (!start) return result([]);
  const chain: SegmentMeta[] = [start];
  let tip = tipOf(start);
  for (;;) {
    let next: SegmentMeta | null = null;
    for (const s of byPrev.get(tip.epoch) ?? []) {
      if (continues(tip, s)) next = next ? better(next, s) : s;
    }
    if (!next) break;
    chain.push(next);
    tip = tipOf(next);
  }
  return result(chain);
}

/** The smallest epoch at or above `from` that is not in `occupied`. */
export function firstFreeEpoch(from: number, occupied: ReadonlySet<number>): number {
  let e = from;
  while (occupied.has(e)) e++;
  return e;
}

export interface TruncationPlan {
  /** The base to write first (null: the start does not move). */
  readonly base: LogBase | null;
  /** Then delete these epochs (ascending): everything below the start that is not a guard. */
  readonly deletions: number[];
  /** Chain members that fall below the start (a prefix of the chain). */
  readonly chainDeleted: number;
  /** Lowest LSN still held afterwards. */
  readonly firstLsn: number;
}

/**
 * What `truncateThrough(throughLsn)` does: the longest chain prefix whose
 * records are all <= throughLsn falls below the new start, never the last
 * member (it carries the epoch and LSN the next writer continues from). The
 * base moves to the first kept member; then every present epoch below it
 * (those members, voids, dead leftovers) is deleted except guards.
 */
export function planTruncation(
  chain: readonly SegmentMeta[],
  voids: readonly number[],
  guards: ReadonlySet<number>,
  throughLsn: number,
): TruncationPlan {
  let k = 0;
  while (k < chain.length - 1 && lastLsnOf(chain[k]!) <= throughLsn) k++;
  const start = chain[k];
  if (!start) return { base: null, deletions: [], chainDeleted: 0, firstLsn: 1 };
  const below = [...chain.slice(0, k).map((m) => m.epoch), ...voids.filter((v) => v < start.epoch)];
  return {
    base: k > 0 ? { startEpoch: start.epoch, firstLsn: start.firstLsn } : null,
    deletions: [...new Set(below)].filter((e) => !guards.has(e)).sort((a, b) => a - b),
    chainDeleted: k,
    firstLsn: start.firstLsn,
  };
}
