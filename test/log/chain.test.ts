// The chain rules (pure): which segments form the durable log, where a new
// writer fences, what may be deleted and in which order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Slot } from '../../src/log/chain.js';
import { EMPTY_TIP, GUARD_GENERATIONS, analyzeLog, continues, firstFreeEpoch, guardEpochs, planTruncation } from '../../src/log/chain.js';
import { FLAG_FENCE, FLAG_VOID } from '../../src/log/segment.js';
import type { SegmentMeta } from '../../src/log/segment.js';

/** A readable segment. */
const seg = (epoch: number, prevEpoch: number, firstLsn: number, recordCount: number, generation = 1, flags = 0): Slot => ({
  epoch,
  meta: { epoch, prevEpoch, firstLsn, recordCount, generation, flags },
});
/** An unreadable (torn, corrupt) segment. */
const bad = (epoch: number): Slot => ({ epoch, meta: null });

/** A straight chain of `n` segments from `epoch0`, each with `per` records. */
function straight(n: number, per = 2, epoch0 = 1, lsn0 = 1, generation = 1): Slot[] {
  const out: Slot[] = [];
  for (let i = 0; i < n; i++) out.push(seg(epoch0 + i, i === 0 ? epoch0 - 1 : epoch0 + i - 1, lsn0 + i * per, per, generation));
  return out;
}

const epochs = (metas: readonly SegmentMeta[]): number[] => metas.map((m) => m.epoch);

void describe('analyzeLog', () => {
  void it('an empty listing is an empty log', () => {
    const a = analyzeLog([]);
    assert.deepEqual(a.chain, []);
    assert.deepEqual(a.tip, EMPTY_TIP);
    assert.equal(a.maxDurableLsn, 0);
    assert.equal(a.firstLsn, 1);
    assert.equal(a.baseProblem, null);
  });

  void it('follows a straight chain, whatever the listing order', () => {
    const slots = straight(5, 3);
    const a = analyzeLog([...slots].reverse());
    assert.deepEqual(epochs(a.chain), [1, 2, 3, 4, 5]);
    assert.equal(a.maxDurableLsn, 15);
    assert.deepEqual(a.tip, { epoch: 5, generation: 1, nextLsn: 16 });
    assert.deepEqual(a.voids, []);
    assert.equal(a.maxEpoch, 5);
  });

  void it('stops at a missing segment even when later ones are intact (pipelined crash)', () => {
    const slots = straight(6).filter((s) => s.epoch !== 4);
    const a = analyzeLog(slots);
    assert.deepEqual(epochs(a.chain), [1, 2, 3]);
    assert.equal(a.maxDurableLsn, 6);
    assert.deepEqual(a.voids, [5, 6]);
  });

  void it('stops at the first unreadable segment; nothing after it counts', () => {
    for (let k = 2; k <= 5; k++) {
      const slots = straight(5).map((s) => (s.epoch === k ? bad(k) : s));
      const a = analyzeLog(slots);
      assert.deepEqual(epochs(a.chain), Array.from({ length: k - 1 }, (_, i) => i + 1));
      assert.equal(a.maxDurableLsn, (k - 1) * 2);
    }
  });

  void it('an unreadable first-ever segment leaves an empty log; a genesis fence after it starts the chain', () => {
    assert.deepEqual(analyzeLog([bad(1), ...straight(3).slice(1)]).chain, []);
    const a = analyzeLog([bad(1), seg(2, 0, 1, 0, 2), seg(3, 2, 1, 4, 2)]);
    assert.deepEqual(epochs(a.chain), [2, 3]);
    assert.equal(a.maxDurableLsn, 4);
    assert.deepEqual(a.voids, [1]);
  });

  void it('with a base, starts exactly there and ignores everything below it', () => {
    const slots = [seg(3, 2, 1, 1, 9), bad(4), ...straight(4, 5, 10, 101)];
    const a = analyzeLog(slots, { startEpoch: 10, firstLsn: 101 });
    assert.deepEqual(epochs(a.chain), [10, 11, 12, 13]);
    assert.equal(a.firstLsn, 101);
    assert.equal(a.maxDurableLsn, 120);
    assert.deepEqual(a.voids, [3, 4], 'dead segments below the base are reported for collection');
    // A late write below the base (an old writer waking up) changes nothing.
    const late = analyzeLog([...slots, seg(9, 8, 1, 50, 99)], { startEpoch: 10, firstLsn: 101 });
    assert.deepEqual(epochs(late.chain), [10, 11, 12, 13]);
  });

  void it('fails closed when the base names an unreadable or different segment, and asks for a rescan when it is missing', () => {
    const rest = straight(3, 2, 6, 11);
    assert.equal(analyzeLog([bad(5), ...rest], { startEpoch: 5, firstLsn: 9 }).baseProblem, 'unreadable');
    assert.equal(analyzeLog([seg(5, 4, 9, 2), ...rest], { startEpoch: 5, firstLsn: 8 }).baseProblem, 'mismatch');
    assert.equal(analyzeLog([seg(5, 4, 9, 2, 1, FLAG_VOID), ...rest], { startEpoch: 5, firstLsn: 9 }).baseProblem, 'unreadable');
    assert.equal(analyzeLog(rest, { startEpoch: 5, firstLsn: 9 }).baseProblem, 'missing');
    const ok = analyzeLog([seg(5, 4, 9, 2), ...rest], { startEpoch: 5, firstLsn: 9 });
    assert.equal(ok.baseProblem, null);
    assert.deepEqual(epochs(ok.chain), [5, 6, 7, 8]);
  });

  void it('VOID segments occupy their epoch but never join the chain', () => {
    // A void that would otherwise continue the chain perfectly.
    const a = analyzeLog([...straight(2), seg(3, 2, 5, 0, 1, FLAG_VOID), seg(4, 3, 5, 1)]);
    assert.deepEqual(epochs(a.chain), [1, 2]);
    assert.deepEqual(a.voids, [3, 4]);
    const b = analyzeLog([...straight(2), seg(3, 2, 5, 0, 1, FLAG_VOID), seg(4, 2, 5, 1)]);
    assert.deepEqual(epochs(b.chain), [1, 2, 4], 'a segment skipping the void continues');
    assert.equal(analyzeLog([seg(1, 0, 1, 0, 1, FLAG_VOID)]).chain.length, 0, 'a void is no genesis');
  });

  void it('a fence that skips epochs voids them, and replay honours it', () => {
    // 1..3 durable, 4 torn, 5 an orphan behind it, 6 the new writer's fence.
    const slots = [...straight(3), bad(4), seg(5, 4, 7, 2), seg(6, 3, 7, 0, 2, FLAG_FENCE), seg(7, 6, 7, 3, 2)];
    const a = analyzeLog(slots);
    assert.deepEqual(epochs(a.chain), [1, 2, 3, 6, 7]);
    assert.deepEqual(a.voids, [4, 5]);
    assert.equal(a.maxDurableLsn, 9);
    assert.deepEqual([...a.guards].sort(), [4, 5, 6], 'the fence and the epochs it skips are guards');
  });

  void it('rejects a successor with a broken LSN link or an older generation', () => {
    assert.deepEqual(epochs(analyzeLog([...straight(2), seg(3, 2, 6, 1)]).chain), [1, 2]);
    assert.deepEqual(epochs(analyzeLog([...straight(2, 2, 1, 1, 2), seg(3, 2, 5, 1, 1)]).chain), [1, 2]);
    assert.deepEqual(epochs(analyzeLog([...straight(2, 2, 1, 1, 1), seg(3, 2, 5, 1, 2)]).chain), [1, 2, 3]);
  });

  void it('an older writer’s pipelined segment after a newer fence does not continue it', () => {
    // Old writer (gen 1): 1, 2 durable; its 3 lost; its 4 (prev 3) landed.
    // New writer (gen 2) fenced at 3 (prev 2, no records).
    const a = analyzeLog([...straight(2), seg(3, 2, 5, 0, 2, FLAG_FENCE), seg(4, 3, 7, 2, 1)]);
    assert.deepEqual(epochs(a.chain), [1, 2, 3]);
    assert.deepEqual(a.voids, [4]);
  });

  void it('among several successors, the highest (generation, epoch) wins', () => {
    const base = straight(2);
    // Same generation: a failed write's epoch 3 voided by a later skip segment 5.
    let a = analyzeLog([...base, seg(3, 2, 5, 0), seg(5, 2, 5, 1)]);
    assert.deepEqual(epochs(a.chain), [1, 2, 5]);
    // A newer generation beats a higher epoch.
    a = analyzeLog([...base, seg(3, 2, 5, 1, 3), seg(5, 2, 5, 1, 2)]);
    assert.deepEqual(epochs(a.chain), [1, 2, 3]);
  });

  void it('once the base moved, every state the deletions pass through reads as the same chain', () => {
    // Chain 1, 2, 4 (gen 2, skipping void 3 of gen 1), 5, 6.
    const slots = [...straight(2), seg(3, 2, 5, 1, 1), seg(4, 2, 5, 1, 2), seg(5, 4, 6, 1, 2), seg(6, 5, 7, 1, 2)];
    const full = analyzeLog(slots);
    assert.deepEqual(epochs(full.chain), [1, 2, 4, 5, 6]);
    const plan = planTruncation(full.chain, full.voids, full.guards, 5);
    assert.deepEqual(plan.base, { startEpoch: 5, firstLsn: 6 });
    assert.deepEqual(plan.deletions, [1, 2, 3, 4]);
    for (let mask = 0; mask < 16; mask++) {
      const gone = new Set(plan.deletions.filter((_, i) => (mask >> i) & 1));
      const a = analyzeLog(
        slots.filter((s) => !gone.has(s.epoch)),
        plan.base,
      );
      assert.deepEqual(epochs(a.chain), [5, 6], `after deleting ${[...gone].join(',')}`);
      assert.equal(a.maxDurableLsn, 7);
    }
  });

  void it('property: with a base, deleting below it and adding debris above the tip never changes the chain', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.nat(),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.record({ gap: fc.integer({ min: 1, max: 3 }), readable: fc.boolean() }), { maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (n, cut, counts, debris, keepBelow) => {
          const slots: Slot[] = [];
          let lsn = 1;
          for (let i = 0; i < n; i++) {
            const c = counts[i % counts.length]!;
            slots.push(seg(i + 1, i, lsn, c));
            lsn += c;
          }
          const k = cut % n; // the base: keep at least one member
          const start = slots[k]!.meta!;
          const base = k > 0 ? { startEpoch: start.epoch, firstLsn: start.firstLsn } : null;
          // Some members below the base survive (deletes not done yet).
          const survivors = new Set(keepBelow.map((x) => x % Math.max(1, k)));
          const kept = slots.filter((s, i) => i >= k || survivors.has(i));
          let e = n;
          for (const d of debris) {
            e += d.gap + 1; // always leave a gap before debris
            kept.push(d.readable ? seg(e, e - 1, lsn + 7, 1) : bad(e));
          }
          const a = analyzeLog(kept, base);
          assert.deepEqual(
            epochs(a.chain),
            slots.slice(k).map((s) => s.epoch),
          );
          assert.equal(a.maxDurableLsn, lsn - 1);
          assert.equal(a.firstLsn, start.firstLsn);
        },
      ),
      { numRuns: 300 },
    );
  });
});

void describe('continues', () => {
  void it('checks epoch link, LSN link and generation order', () => {
    const tip = { epoch: 4, generation: 2, nextLsn: 10 };
    const m = { epoch: 5, prevEpoch: 4, firstLsn: 10, recordCount: 1, generation: 2, flags: 0 };
    assert.equal(continues(tip, m), true);
    assert.equal(continues(tip, { ...m, epoch: 9 }), true);
    assert.equal(continues(tip, { ...m, generation: 3 }), true);
    assert.equal(continues(tip, { ...m, generation: 1 }), false);
    assert.equal(continues(tip, { ...m, prevEpoch: 3 }), false);
    assert.equal(continues(tip, { ...m, firstLsn: 11 }), false);
    assert.equal(continues(EMPTY_TIP, { ...m, prevEpoch: 0, firstLsn: 1 }), true);
  });
});

void describe('firstFreeEpoch', () => {
  void it('returns the smallest unoccupied epoch from the given one', () => {
    assert.equal(firstFreeEpoch(1, new Set()), 1);
    assert.equal(firstFreeEpoch(4, new Set([4, 5, 7])), 6);
    assert.equal(firstFreeEpoch(4, new Set([1, 2, 3])), 4);
  });
});

void describe('guardEpochs', () => {
  void it('keeps the objects each recent fence skipped, and the fence itself', () => {
    const slots = [...straight(3), bad(4), seg(5, 3, 7, 0, 2, FLAG_FENCE), seg(6, 5, 7, 1, 2), seg(8, 6, 8, 0, 3, FLAG_FENCE), seg(7, 6, 9, 1, 1, FLAG_VOID)];
    assert.deepEqual([...guardEpochs(slots, 3)].sort((a, b) => a - b), [4, 5, 7, 8]);
  });

  void it(`drops the guards of fences ${GUARD_GENERATIONS} or more generations old`, () => {
    const slots = [seg(1, 0, 1, 0, 2, FLAG_FENCE), seg(2, 1, 1, 0, 3, FLAG_FENCE)];
    assert.deepEqual([...guardEpochs(slots, 3)].sort(), [1, 2]);
    assert.deepEqual([...guardEpochs(slots, 2 + GUARD_GENERATIONS)], [2]);
    assert.deepEqual([...guardEpochs(slots, 3 + GUARD_GENERATIONS)], []);
    assert.deepEqual([...guardEpochs([seg(1, 0, 1, 0, 1, FLAG_FENCE)], 1)], [], 'generation 1 had no predecessor');
  });
});

void describe('planTruncation', () => {
  const metas = (slots: Slot[]): SegmentMeta[] => slots.map((s) => s.meta!);
  const none = new Set<number>();

  void it('moves the base past the chain prefix wholly at or below the checkpoint, never past the last member', () => {
    const chain = metas(straight(4, 10)); // LSNs 1-10, 11-20, 21-30, 31-40
    assert.deepEqual(planTruncation(chain, [], none, 0), { base: null, deletions: [], chainDeleted: 0, firstLsn: 1 });
    assert.deepEqual(planTruncation(chain, [], none, 9).deletions, []);
    assert.deepEqual(planTruncation(chain, [], none, 10), { base: { startEpoch: 2, firstLsn: 11 }, deletions: [1], chainDeleted: 1, firstLsn: 11 });
    assert.deepEqual(planTruncation(chain, [], none, 25).deletions, [1, 2]);
    const all = planTruncation(chain, [], none, 40);
    assert.deepEqual(all.deletions, [1, 2, 3]);
    assert.deepEqual(all.base, { startEpoch: 4, firstLsn: 31 });
    assert.equal(all.chainDeleted, 3);
  });

  void it('takes empty members (fences) along with the prefix', () => {
    const chain = metas([seg(1, 0, 1, 5), seg(2, 1, 6, 0, 2), seg(3, 2, 6, 0, 3), seg(4, 3, 6, 2, 3)]);
    assert.deepEqual(planTruncation(chain, [], none, 5).deletions, [1, 2, 3]);
    assert.equal(planTruncation(chain, [], none, 5).firstLsn, 6);
  });

  void it('deletes voids and dead segments below the new start, keeps guards and everything above', () => {
    const chain = metas([seg(1, 0, 1, 2), seg(2, 1, 3, 2), seg(5, 2, 5, 0, 2, FLAG_FENCE), seg(6, 5, 5, 2, 2), seg(8, 6, 7, 2, 2)]);
    const voids = [3, 4, 7, 9];
    const guards = new Set([3, 4, 5]);
    assert.deepEqual(planTruncation(chain, voids, guards, 2).deletions, [1]);
    assert.deepEqual(planTruncation(chain, voids, guards, 4).deletions, [1, 2]);
    assert.deepEqual(planTruncation(chain, voids, guards, 6).deletions, [1, 2, 6, 7]);
    assert.deepEqual(planTruncation(chain, voids, none, 6).deletions, [1, 2, 3, 4, 5, 6, 7]);
    assert.ok(!planTruncation(chain, voids, none, 99).deletions.includes(9), 'nothing above the start');
    // Nothing to advance, but dead leftovers below the current start go.
    assert.deepEqual(planTruncation(chain.slice(2), [1, 3, 7], guards, 0), { base: null, deletions: [1], chainDeleted: 0, firstLsn: 5 });
  });
});
