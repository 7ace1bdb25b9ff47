// The chain rules (pure): which segments form the durable log, where a new
// writer fences, what may be deleted and in which order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Slot } from '../../src/log/chain.js';
import { EMPTY_TIP, analyzeLog, continues, nextFreeEpoch, planTruncation, supersededVoids } from '../../src/log/chain.js';
import type { SegmentMeta } from '../../src/log/segment.js';

/** A readable segment. */
const seg = (epoch: number, prevEpoch: number, firstLsn: number, recordCount: number, generation = 1): Slot => ({
  epoch,
  meta: { epoch, prevEpoch, firstLsn, recordCount, generation, flags: 0 },
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
    assert.equal(a.corruptFront, null);
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

  void it('fails closed when the oldest segment of a truncated log is unreadable', () => {
    const a = analyzeLog([bad(5), ...straight(3, 2, 6, 11)]);
    assert.equal(a.corruptFront, 5);
    assert.deepEqual(a.chain, []);
  });

  void it('starts a truncated log at its oldest surviving member', () => {
    const a = analyzeLog(straight(4, 5, 10, 101));
    assert.deepEqual(epochs(a.chain), [10, 11, 12, 13]);
    assert.equal(a.firstLsn, 101);
    assert.equal(a.maxDurableLsn, 120);
  });

  void it('a fence that skips epochs voids them, and replay honours it', () => {
    // 1..3 durable, 4 torn, 5 an orphan behind it, 6 the new writer's fence.
    const slots = [...straight(3), bad(4), seg(5, 4, 7, 2), seg(6, 3, 7, 0, 2), seg(7, 6, 7, 3, 2)];
    const a = analyzeLog(slots);
    assert.deepEqual(epochs(a.chain), [1, 2, 3, 6, 7]);
    assert.deepEqual(a.voids, [4, 5]);
    assert.equal(a.maxDurableLsn, 9);
    assert.deepEqual(supersededVoids(a.chain, a.voids), [4, 5]);
  });

  void it('rejects a successor with a broken LSN link or an older generation', () => {
    assert.deepEqual(epochs(analyzeLog([...straight(2), seg(3, 2, 6, 1)]).chain), [1, 2]);
    assert.deepEqual(epochs(analyzeLog([...straight(2, 2, 1, 1, 2), seg(3, 2, 5, 1, 1)]).chain), [1, 2]);
    assert.deepEqual(epochs(analyzeLog([...straight(2, 2, 1, 1, 1), seg(3, 2, 5, 1, 2)]).chain), [1, 2, 3]);
  });

  void it('an older writer’s pipelined segment after a newer fence does not continue it', () => {
    // Old writer (gen 1): 1, 2 durable; its 3 lost; its 4 (prev 3) landed.
    // New writer (gen 2) fenced at 3 (prev 2, no records).
    const a = analyzeLog([...straight(2), seg(3, 2, 5, 0, 2), seg(4, 3, 7, 2, 1)]);
    assert.deepEqual(epochs(a.chain), [1, 2, 3]);
    assert.deepEqual(a.voids, [4]);
    assert.deepEqual(supersededVoids(a.chain, a.voids), [], 'a void above the tip is not yet superseded');
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

  void it('every state a truncation passes through reads as the same chain suffix', () => {
    // Chain 1, 2, 4 (gen 2, skipping void 3 of gen 1), 5, 6. Truncating
    // through 4 deletes the void first, then 1, 2, 4 (a reader whose listing
    // went stale rescans, so it sees one of these states, never a mix).
    const slots = [...straight(2), seg(3, 2, 5, 1, 1), seg(4, 2, 5, 1, 2), seg(5, 4, 6, 1, 2), seg(6, 5, 7, 1, 2)];
    const full = analyzeLog(slots);
    assert.deepEqual(epochs(full.chain), [1, 2, 4, 5, 6]);
    const plan = planTruncation(full.chain, full.voids, 5);
    assert.deepEqual(plan.deletions, [3, 1, 2, 4]);
    for (let k = 0; k <= plan.deletions.length; k++) {
      const gone = new Set(plan.deletions.slice(0, k));
      const a = analyzeLog(slots.filter((s) => !gone.has(s.epoch)));
      assert.deepEqual(epochs(a.chain), [1, 2, 4, 5, 6].filter((e) => !gone.has(e)), `after ${k} deletions`);
      assert.equal(a.maxDurableLsn, 7);
    }
  });

  void it('property: deleting a chain prefix and adding debris above the tip never changes the rest', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.nat(),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.record({ gap: fc.integer({ min: 1, max: 3 }), readable: fc.boolean() }), { maxLength: 5 }),
        (n, cut, counts, debris) => {
          const slots: Slot[] = [];
          let lsn = 1;
          for (let i = 0; i < n; i++) {
            const c = counts[i % counts.length]!;
            slots.push(seg(i + 1, i, lsn, c));
            lsn += c;
          }
          const k = cut % n; // keep at least one member
          const kept = slots.slice(k);
          let e = n;
          for (const d of debris) {
            e += d.gap + 1; // always leave a gap before debris
            kept.push(d.readable ? seg(e, e - 1, lsn + 7, 1) : bad(e));
          }
          const a = analyzeLog(kept);
          assert.deepEqual(epochs(a.chain), slots.slice(k).map((s) => s.epoch));
          assert.equal(a.maxDurableLsn, lsn - 1);
          assert.equal(a.firstLsn, slots[k]!.meta!.firstLsn);
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

void describe('nextFreeEpoch', () => {
  void it('returns the smallest unoccupied epoch above the given one', () => {
    assert.equal(nextFreeEpoch(0, new Set()), 1);
    assert.equal(nextFreeEpoch(3, new Set([4, 5, 7])), 6);
    assert.equal(nextFreeEpoch(3, new Set([1, 2, 3])), 4);
  });
});

void describe('planTruncation', () => {
  const metas = (slots: Slot[]): SegmentMeta[] => slots.map((s) => s.meta!);

  void it('deletes the chain prefix wholly at or below the checkpoint, never the last member', () => {
    const chain = metas(straight(4, 10)); // LSNs 1-10, 11-20, 21-30, 31-40
    assert.deepEqual(planTruncation(chain, [], 0).deletions, []);
    assert.deepEqual(planTruncation(chain, [], 9).deletions, []);
    assert.deepEqual(planTruncation(chain, [], 10).deletions, [1]);
    assert.deepEqual(planTruncation(chain, [], 25).deletions, [1, 2]);
    const all = planTruncation(chain, [], 40);
    assert.deepEqual(all.deletions, [1, 2, 3]);
    assert.equal(all.firstLsn, 31);
    assert.equal(all.chainDeleted, 3);
  });

  void it('deletes empty members (fences) along with the prefix', () => {
    const chain = metas([seg(1, 0, 1, 5), seg(2, 1, 6, 0, 2), seg(3, 2, 6, 0, 3), seg(4, 3, 6, 2, 3)]);
    assert.deepEqual(planTruncation(chain, [], 5).deletions, [1, 2, 3]);
    assert.equal(planTruncation(chain, [], 5).firstLsn, 6);
  });

  void it('deletes superseded voids below the first kept member first, then members oldest first', () => {
    const chain = metas([seg(1, 0, 1, 2), seg(2, 1, 3, 2), seg(5, 2, 5, 0, 2), seg(6, 5, 5, 2, 2), seg(8, 6, 7, 2, 2)]);
    const voids = [3, 4, 7, 9];
    assert.deepEqual(planTruncation(chain, voids, 2).deletions, [1]);
    assert.deepEqual(planTruncation(chain, voids, 4).deletions, [3, 4, 1, 2, 5]);
    assert.deepEqual(planTruncation(chain, voids, 6).deletions, [3, 4, 7, 1, 2, 5, 6]);
    assert.ok(!planTruncation(chain, voids, 99).deletions.includes(9), 'a void above the tip is never deleted');
  });

  void it('property: after any prefix of the deletions, the chain reads as the same suffix', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ records: fc.integer({ min: 0, max: 3 }), voidsBefore: fc.integer({ min: 0, max: 2 }) }), { minLength: 1, maxLength: 12 }),
        fc.nat(),
        fc.nat(),
        (shape, cpSeed, stopSeed) => {
          const slots: Slot[] = [];
          const voids: number[] = [];
          let epoch = 0;
          let lsn = 1;
          let prev = 0;
          shape.forEach((s, i) => {
            if (i > 0) {
              for (let v = 0; v < s.voidsBefore; v++) {
                epoch++;
                voids.push(epoch);
                slots.push(v % 2 ? bad(epoch) : seg(epoch, prev, lsn, 1, 1));
              }
            }
            epoch++;
            slots.push(seg(epoch, prev, lsn, s.records, 2));
            prev = epoch;
            lsn += s.records;
          });
          const before = analyzeLog(slots);
          assert.equal(before.chain.length, shape.length);
          const checkpoint = cpSeed % lsn;
          const plan = planTruncation(before.chain, before.voids, checkpoint);
          const stop = stopSeed % (plan.deletions.length + 1);
          const gone = new Set(plan.deletions.slice(0, stop));
          const after = analyzeLog(slots.filter((s) => !gone.has(s.epoch)));
          const expected = epochs(before.chain).filter((e) => !gone.has(e));
          assert.deepEqual(epochs(after.chain), expected);
          assert.equal(after.maxDurableLsn, before.maxDurableLsn);
        },
      ),
      { numRuns: 500 },
    );
  });
});
