/**
 * The log's decisions, as pure functions over segment headers: which
 * segments form the durable log, where a new writer fences, which segments
 * may be deleted and in what order. No I/O; exhaustively tested.
 *
 * The durable log is a chain of segments linked by `prevEpoch`:
 *
 * - Start: among readable segments whose `prevEpoch` is below the lowest
 *   epoch present (0 for a genesis segment, or a predecessor already deleted
 *   by truncation), the one with the highest (generation, epoch).
 * - Step: the successor of chain member `c` is, among readable segments `s`
 *   with `s.prevEpoch = c.epoch`, `s.generation >= c.generation` and
 *   `s.firstLsn = c.firstLsn + c.recordCount`, the one with the highest
 *   (generation, epoch).
 * - The chain ends where no successor exists: at a missing, torn, corrupt or
 *   non-continuing segment. Nothing after that point is part of the log,
 *   even if later segments are intact.
 *
 * A segment whose `prevEpoch` is below `epoch - 1` skips the epochs between:
 * those are void (a torn tail a new writer superseded, a failed group's
 * epoch, an older writer's leftovers). Writers only ever skip epochs that
 * are occupied by an object, and such an object is deleted only once a
 * durable chain member skips it (`superseded`), so a skipped epoch can never
 * become free again for a newer writer to fence at behind an older writer's
 * back.
 *
 * Present segments that are not chain members are "voids". Truncation
 * deletes superseded voids below the first retained chain member before it
 * deletes any chain member, and chain members oldest first, never the last
 * one; so at every moment (also after a crash mid-way, or seen by a reader
 * listing concurrently) the start rule still finds the same chain suffix.
 */
import type { SegmentMeta } from './segment.js';
import { lastLsnOf } from './segment.js';

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

export interface LogAnalysis {
  /** Chain members, oldest first. */
  readonly chain: SegmentMeta[];
  /** Present epochs that are not chain members, ascending. */
  readonly voids: number[];
  readonly tip: ChainTip;
  /** Lowest LSN still held (tip.nextLsn when the chain holds no records). */
  readonly firstLsn: number;
  /** Highest durable LSN (0 when none). */
  readonly maxDurableLsn: number;
  /** Highest epoch present, readable or not (0 when none). */
  readonly maxEpoch: number;
  /**
   * Epoch of an unreadable lowest segment above epoch 1: the log's LSN base
   * is unknown and nothing can be trusted (fail closed). Null otherwise.
   */
  readonly corruptFront: number | null;
}

/** True when `next` directly continues `prev` in the chain. */
export function continues(prev: ChainTip, next: SegmentMeta): boolean {
  return next.prevEpoch === prev.epoch && next.epoch > prev.epoch && next.generation >= prev.generation && next.firstLsn === prev.nextLsn;
}

export function tipOf(meta: SegmentMeta): ChainTip {
  return { epoch: meta.epoch, generation: meta.generation, nextLsn: meta.firstLsn + meta.recordCount };
}

/** Higher (generation, epoch) wins. */
function better(a: SegmentMeta, b: SegmentMeta): SegmentMeta {
  if (a.generation !== b.generation) return a.generation > b.generation ? a : b;
  return a.epoch >= b.epoch ? a : b;
}

/** Compute the durable chain from every listed segment (sorted or not). */
export function analyzeLog(slots: readonly Slot[]): LogAnalysis {
  const sorted = [...slots].sort((a, b) => a.epoch - b.epoch);
  const maxEpoch = sorted.length ? sorted[sorted.length - 1]!.epoch : 0;
  const empty = (corruptFront: number | null): LogAnalysis => ({
    chain: [],
    voids: sorted.map((s) => s.epoch),
    tip: EMPTY_TIP,
    firstLsn: 1,
    maxDurableLsn: 0,
    maxEpoch,
    corruptFront,
  });
  if (sorted.length === 0) return empty(null);
  const minEpoch = sorted[0]!.epoch;
  let start: SegmentMeta | null = null;
  const byPrev = new Map<number, SegmentMeta[]>();
  for (const s of sorted) {
    if (!s.meta) continue;
    if (s.meta.prevEpoch < minEpoch) start = start ? better(start, s.meta) : s.meta;
    const list = byPrev.get(s.meta.prevEpoch);
    if (list) list.push(s.meta);
    else byPrev.set(s.meta.prevEpoch, [s.meta]);
  }
  if (!start) {
    // No readable segment can begin the chain, so the lowest one is
    // unreadable. At epoch 1 it was the very first segment (nothing was ever
    // truncated) and the durable log is empty; above 1, records before it were
    // truncated and the LSN base is lost.
    return empty(minEpoch === 1 ? null : minEpoch);
  }
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
  const members = new Set(chain.map((m) => m.epoch));
  return {
    chain,
    voids: sorted.filter((s) => !members.has(s.epoch)).map((s) => s.epoch),
    tip,
    firstLsn: start.firstLsn,
    maxDurableLsn: tip.nextLsn - 1,
    maxEpoch,
    corruptFront: null,
  };
}

/** The smallest epoch above `after` that is not in `occupied`. */
export function nextFreeEpoch(after: number, occupied: ReadonlySet<number>): number {
  let e = after + 1;
  while (occupied.has(e)) e++;
  return e;
}

/**
 * Voids that a durable chain member skips (prevEpoch < void < epoch). Only
 * these may be deleted: a void above the tip may still be what keeps a
 * skipping writer's next epoch from being taken by someone else.
 */
export function supersededVoids(chain: readonly SegmentMeta[], voids: readonly number[]): number[] {
  // Consecutive members' spans (prevEpoch, epoch) tile the range from the
  // first member's prevEpoch to the tip, so one range test suffices.
  const first = chain[0];
  const last = chain[chain.length - 1];
  if (!first || !last) return [];
  const members = new Set(chain.map((m) => m.epoch));
  return voids.filter((v) => first.prevEpoch < v && v < last.epoch && !members.has(v));
}

export interface TruncationPlan {
  /** Epochs to delete, in this order: superseded voids, then chain members oldest first. */
  readonly deletions: number[];
  /** Chain members deleted (a prefix of the chain). */
  readonly chainDeleted: number;
  /** Lowest LSN still held afterwards. */
  readonly firstLsn: number;
}

/**
 * What `truncateThrough(throughLsn)` deletes: the longest chain prefix whose
 * records are all <= throughLsn, never the last member (it carries the epoch
 * and LSN the next writer continues from); plus, first, every superseded
 * void below the first retained member.
 */
export function planTruncation(chain: readonly SegmentMeta[], voids: readonly number[], throughLsn: number): TruncationPlan {
  let k = 0;
  while (k < chain.length - 1 && lastLsnOf(chain[k]!) <= throughLsn) k++;
  const retained = chain[k];
  if (!retained) return { deletions: [], chainDeleted: 0, firstLsn: 1 };
  const dead = supersededVoids(chain, voids)
    .filter((v) => v < retained.epoch)
    .sort((a, b) => a - b);
  return {
    deletions: [...dead, ...chain.slice(0, k).map((m) => m.epoch)],
    chainDeleted: k,
    firstLsn: retained.firstLsn,
  };
}
