/**
 * Change feed, log retention and read replicas in one process: the feed's
 * order and LOG_GAP, the retention mark (pure, exhaustive over a small
 * grid), resurrection after rebase, draining under continuous writes, hot
 * swap under concurrent readers (and readers progressing while the tail is
 * pruned), bulk commits (append, load, deleteWhere, updateWhere, compact,
 * addColumn) reaching a replica on advance without a rebase, the store
 * requests of an idle advance, and a model-based run of random primary
 * writes (point and bulk) and replica operations (advance, rebase, hot swap,
 * gaps injected by log truncation) where every replica read must be one of
 * the primary's states at the replica's visibleSeq, and equal to the
 * primary's current state once the replica has caught up. FLOE_MODEL_RUNS
 * scales the model run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Change, Database } from '../../src/db/database.js';
import { open, retentionMark } from '../../src/db/database.js';
import { isFloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import type { Replica } from '../../src/replica/replica.js';
import { replica } from '../../src/replica/replica.js';
import { inProcessSource, storeSource } from '../../src/replica/source.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';

const RUNS = Number(process.env.FLOE_MODEL_RUNS ?? 15);
const schema = { k: { type: 'utf8', nullable: false }, v: 'int64' } as const;
const kk = (n: number): string => `k${String(n).padStart(3, '0')}`;

async function collect(it: AsyncIterable<Change>): Promise<Change[]> {
  const out: Change[] = [];
  for await (const c of it) out.push(c);
  return out;
}

async function replicaRows(r: Replica, table = 't'): Promise<Map<string, bigint>> {
  const rows = await r.table(table).scan().toArray();
  const m = new Map<string, bigint>();
  for (const row of rows) {
    assert.ok(!m.has(row.k as string), `duplicate key ${String(row.k)} in replica scan`);
    m.set(row.k as string, row.v as bigint);
  }
  return m;
}

describe('change feed', () => {
  it('yields committed changes in seq order with table, op, key and row', async () => {
    const db = await open(new MemoryStore());
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    const kl = await db.createTable('free', { x: 'int32' });
    const s1 = (await t.upsert([{ k: 'a', v: 1n }, { k: 'b', v: 2n }])).seq;
    const s2 = (await t.delete('a')).seq;
    const s3 = (await kl.upsert({ x: 7 })).seq;
    const all = await collect(db.changes({ since: 0 }));
    assert.deepEqual(
      all.map((c) => [c.seq, c.table, c.op, c.key]),
      [
        [s1, 't', 'upsert', { k: 'a' }],
        [s1, 't', 'upsert', { k: 'b' }],
        [s2, 't', 'delete', { k: 'a' }],
        [s3, 'free', 'upsert', { _id: all[3]!.id }],
      ],
    );
    assert.deepEqual(all[1]!.row, { k: 'b', v: 2n });
    assert.equal(all[2]!.row, null);
    assert.deepEqual((await collect(db.changes({ since: s2 }))).map((c) => c.seq), [s3]);
    assert.deepEqual(await collect(db.changes({ since: s3 })), []);
    await db.close();
  });

  it('fails with LOG_GAP naming the lowest seq once the log is truncated, and retention keeps records', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    for (let i = 0; i < 5; i++) await t.upsert({ k: kk(i), v: BigInt(i) });
    await db.flush();
    await t.upsert({ k: 'late', v: 9n });
    await assert.rejects(collect(db.changes({ since: 0 })), (e: unknown) => isFloeError(e, 'LOG_GAP') && /starts at LSN [2-6]\b/.test((e as Error).message));
    assert.equal((await collect(db.changes({ since: 5 }))).length, 1);
    await db.close();

    const store2 = new MemoryStore();
    const kept = await open(store2, { logRetention: { minSeqs: 3 } });
    const t2 = await kept.createTable('t', schema, { primaryKey: 'k' });
    for (let i = 0; i < 6; i++) await t2.upsert({ k: kk(i), v: BigInt(i) });
    await kept.flush();
    // The newest 3 seqs (4, 5, 6) stay readable after the flush; older ones may not.
    assert.deepEqual((await collect(kept.changes({ since: 3 }))).map((c) => c.seq), [4, 5, 6]);
    await kept.close();
  });

  it('rejects bad since/until and bad retention options', async () => {
    const db = await open(new MemoryStore());
    await assert.rejects(collect(db.changes({ since: -1 })), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    await assert.rejects(collect(db.changes({ since: 1.5 })), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    await db.close();
    await assert.rejects(open(new MemoryStore(), { logRetention: { minSeqs: -1 } }), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    await assert.rejects(open(new MemoryStore(), { logRetention: { maxAge: 5 } as never }), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
  });

  it('retentionMark: never past the checkpoint, keeps minSeqs and young records (exhaustive grid)', () => {
    const marks = [
      { seq: 2, at: 100 },
      { seq: 5, at: 200 },
      { seq: 9, at: 300 },
    ];
    for (let checkpoint = 0; checkpoint <= 10; checkpoint++) {
      for (let latest = checkpoint; latest <= 12; latest++) {
        for (const minSeqs of [undefined, 0, 1, 3, 20]) {
          for (const maxAgeMs of [undefined, 0, 50, 150, 1000]) {
            const now = 310;
            const m = retentionMark(checkpoint, latest, { minSeqs, maxAgeMs }, marks, now);
            assert.ok(m >= 0 && m <= checkpoint, 'within [0, checkpoint]');
            if (minSeqs !== undefined) assert.ok(m <= Math.max(0, latest - minSeqs), 'keeps the newest minSeqs');
            if (maxAgeMs !== undefined) {
              for (const mk of marks) if (mk.at > now - maxAgeMs) assert.ok(m < mk.seq || marks.some((o) => o.seq >= m && o.at <= now - maxAgeMs), 'keeps young records');
            }
            if (minSeqs === undefined && maxAgeMs === undefined) assert.equal(m, checkpoint);
          }
        }
      }
    }
    assert.equal(retentionMark(9, 9, { maxAgeMs: 50 }, marks, 310), 5);
    assert.equal(retentionMark(9, 9, { maxAgeMs: 1000 }, marks, 310), 0);
  });
});

describe('replica', () => {
  it('a delete in the tail masks a base row; a rebase past the delete keeps it deleted (no resurrection)', async () => {
    const store = new MemoryStore();
    const db = await open(store, { logRetention: { minSeqs: 1000 } });
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    await t.upsert([{ k: 'gone', v: 1n }, { k: 'stay', v: 2n }]);
    await db.flush(); // base holds "gone"
    const r = await replica(store);
    assert.equal((await r.table('t').get('gone'))?.v, 1n);
    await t.delete('gone');
    await r.advance();
    assert.equal(await r.table('t').get('gone'), null, 'tail delete masks the base row');
    assert.deepEqual([...(await replicaRows(r)).keys()], ['stay']);
    // Rebase before the delete is flushed: the tail entry must survive.
    await r.rebase();
    assert.equal(await r.table('t').get('gone'), null);
    // Flush (the delete is now a masked row in the base) and rebase past it.
    await db.flush();
    await r.rebaseHotSwap();
    assert.equal((await r.stats()).tailLength, 0, 'tail dropped up to the new base');
    assert.equal(await r.table('t').get('gone'), null, 'still deleted after rebase');
    await r.rebase();
    assert.deepEqual([...(await replicaRows(r)).keys()], ['stay']);
    // An upsert after the delete brings it back, exactly once.
    await t.upsert({ k: 'gone', v: 3n });
    await r.advance();
    assert.deepEqual([...(await replicaRows(r)).entries()].sort(), [['gone', 3n], ['stay', 2n]]);
    await r.close();
    await db.close();
  });

  it('draining ends while writes keep coming (in-process and store sources)', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    for (let i = 0; i < 20; i++) await t.upsert({ k: kk(i), v: BigInt(i) });
    for (const source of [inProcessSource(db), storeSource(store)]) {
      const r = await replica(store, { source });
      let stop = false;
      let n = 20;
      const writer = (async () => {
        while (!stop) await t.upsert({ k: kk(n % 50), v: BigInt(n++) });
      })();
      // Each drain must end although the writer never pauses.
      for (let i = 0; i < 5; i++) await r.advance();
      stop = true;
      await writer;
      await r.advance();
      assert.equal(r.visibleSeq, db.visibleSeq);
      const primary = new Map((await t.scan().toArray()).map((row) => [row.k as string, row.v as bigint]));
      assert.deepEqual(await replicaRows(r), primary);
      await r.close();
    }
    await db.close();
  });

  it('readers during a hot swap never block on it and never see a mixed state', async () => {
    const store = new MemoryStore();
    const db = await open(store, { logRetention: { minSeqs: 1_000_000 } });
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    // Every write moves all keys to one generation g: a mixed state shows two generations.
    const gen = async (g: number): Promise<void> => {
      await t.upsert(Array.from({ length: 30 }, (_, i) => ({ k: kk(i), v: BigInt(g) })));
    };
    await gen(0);
    const r = await replica(store);
    for (let g = 1; g <= 6; g++) {
      await gen(g);
      if (g % 2 === 0) await db.flush();
      await r.advance();
      const swap = r.rebaseHotSwap();
      const reads = Array.from({ length: 8 }, async () => {
        const vals = new Set((await r.table('t').scan().toArray()).map((row) => row.v as bigint));
        assert.equal(vals.size, 1, `one generation per read, saw ${[...vals].join(',')}`);
      });
      await Promise.all([swap, ...reads]);
      assert.deepEqual(new Set((await replicaRows(r)).values()), new Set([BigInt(g)]));
    }
    await assert.rejects(r.rebaseHotSwap({ timeoutMs: -1 }), (e: unknown) => isFloeError(e, 'TIMEOUT'));
    assert.deepEqual(new Set((await replicaRows(r)).values()), new Set([6n]), 'a timed-out swap leaves the old state');
    await r.close();
    await db.close();
  });

  it('stats: base seq, tail length, lag in seqs and ms (injected clock)', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    await t.upsert({ k: 'a', v: 1n });
    await db.flush();
    let clock = 1000;
    const r = await replica(db, { now: () => clock });
    await t.upsert({ k: 'b', v: 2n });
    await t.upsert({ k: 'c', v: 3n });
    await r.advance();
    clock = 1250;
    await t.upsert({ k: 'd', v: 4n });
    const st = await r.stats();
    assert.equal(st.baseSeq, 1);
    assert.equal(st.visibleSeq, 3);
    assert.equal(st.tailLength, 2);
    assert.equal(st.latestSeq, 4);
    assert.equal(st.lagSeqs, 1);
    assert.equal(st.lagMs, 250);
    await r.advance();
    assert.equal((await r.stats()).lagSeqs, 0);
    assert.equal((await r.stats()).lagMs, 0);
    await r.close();
    await db.close();
  });

  it('learns a table created after its base', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    await db.createTable('t', schema, { primaryKey: 'k' });
    const r = await replica(store);
    const u = await db.createTable('u', schema, { primaryKey: 'k' });
    await u.upsert({ k: 'x', v: 1n });
    await r.advance();
    assert.equal((await r.table('u').get('x'))?.v, 1n);
    await r.close();
    await db.close();
  });
});

async function primaryRows(db: Database, table = 't'): Promise<Map<string, bigint>> {
  const rows = await (await db.table(table)).scan().toArray();
  return new Map(rows.map((row) => [row.k as string, row.v as bigint]));
}

describe('replica follows bulk commits', () => {
  for (const via of ['store', 'in-process'] as const) {
    it(`append, load, deleteWhere, updateWhere, compact and addColumn reach it on advance, without a rebase (${via} source)`, async () => {
      const store = new MemoryStore();
      const db = await open(store);
      const t = await db.createTable('t', schema, { primaryKey: 'k' });
      await t.upsert([{ k: kk(1), v: 1n }, { k: kk(2), v: 2n }]);
      await db.flush();
      const r = await replica(via === 'store' ? store : db);
      const same = async (what: string): Promise<void> => {
        await r.advance();
        assert.deepEqual(await replicaRows(r), await primaryRows(db), `after ${what}`);
      };
      await t.append([{ k: kk(3), v: 3n }, { k: kk(1), v: 10n }]);
      await same('append (a new key and a newer version of a base key)');
      assert.equal((await r.table('t').get(kk(1)))?.v, 10n);
      // A point write still in the memtable, then a deleteWhere that removes it:
      // the flush before the mutation puts it below the new checkpoint, so the
      // replica's tail entry must not bring it back.
      await t.upsert({ k: kk(4), v: 4n });
      await r.advance();
      assert.equal((await r.table('t').get(kk(4)))?.v, 4n);
      await t.deleteWhere({ k: [kk(4), kk(2)] });
      await same('deleteWhere over a tail row and a base row');
      assert.equal(await r.table('t').get(kk(4)), null, 'no resurrection of a tail row the mutation deleted');
      await t.upsert({ k: kk(5), v: 5n });
      await r.advance();
      await t.updateWhere({ k: [kk(5), kk(3)] }, { v: 99n });
      await same('updateWhere over a tail row and an appended row');
      assert.equal((await r.table('t').get(kk(5)))?.v, 99n, 'the update wins over the older tail entry');
      await t.upsert({ k: kk(6), v: 6n }); // stays in the tail across the next bulk commits
      await db.load({ t: [{ k: kk(7), v: 7n }] });
      await same('db.load');
      await t.compact();
      await same('compact');
      await t.addColumn({ name: 'note', type: 'utf8' });
      await t.upsert({ k: kk(8), v: 8n, note: 'with a note' });
      await same('addColumn and a write using it');
      assert.equal((await r.table('t').get(kk(8)))?.note, 'with a note');
      assert.ok((await r.stats()).catalogVersion > 1);
      assert.equal(r.visibleSeq, db.visibleSeq);
      await r.close();
      await db.close();
    });
  }

  it('a table first met in the log (created after the catalog check) arrives with its bulk-loaded files', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    await db.createTable('t', schema, { primaryKey: 'k' });
    const inner = storeSource(store);
    let interleave: (() => Promise<void>) | null = null;
    // A source that lets the primary commit right after the replica checked the catalog.
    const source = {
      ...inner,
      stream: (since: number): AsyncIterable<Change> => ({
        [Symbol.asyncIterator]: async function* () {
          const run = interleave;
          interleave = null;
          if (run) await run();
          yield* inner.stream(since);
        },
      }),
    };
    const r = await replica(store, { source });
    interleave = async () => {
      const u = await db.createTable('u', schema, { primaryKey: 'k' });
      await u.append([{ k: 'bulk', v: 1n }]);
      await u.upsert({ k: 'point', v: 2n });
    };
    await r.advance();
    // Learning the table moves the replica to the newest catalog: its bulk-loaded
    // file comes with it, and the point write lands on top.
    assert.deepEqual(await replicaRows(r, 'u'), new Map([['bulk', 1n], ['point', 2n]]));
    await r.advance();
    assert.deepEqual(await replicaRows(r, 'u'), new Map([['bulk', 1n], ['point', 2n]]));
    await r.close();
    await db.close();
  });

  it('an idle advance costs one HEAD of the catalog and one LIST of the log, however long the log', async () => {
    const mem = new MemoryStore();
    const db = await open(mem, { logRetention: { minSeqs: 1_000_000 } });
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    const metrics = new MetricsStore(mem);
    const r = await replica(metrics);
    for (const writes of [5, 60, 250]) {
      while (db.visibleSeq < writes) await t.upsert({ k: kk(db.visibleSeq % 40), v: BigInt(db.visibleSeq) });
      await r.advance();
      assert.equal(r.visibleSeq, db.visibleSeq);
      metrics.reset();
      await r.advance();
      const used = Object.fromEntries(Object.entries(metrics.snapshot()).filter(([, c]) => c.requests > 0).map(([op, c]) => [op, c.requests]));
      assert.deepEqual(used, { head: 1, list: 1 }, `idle advance after ${writes} commits`);
    }
    // Two commits since: one more GET per new segment, nothing proportional to the log.
    await t.upsert({ k: 'x', v: 1n });
    await t.upsert({ k: 'y', v: 2n });
    metrics.reset();
    await r.advance();
    assert.equal(metrics.requests('list'), 1);
    assert.equal(metrics.requests('get'), 2);
    assert.equal((await r.table('t').get('y'))?.v, 2n);
    await r.close();
    await db.close();
  });

  it('a swap past a large tail: readers run while the tail is pruned and never go back to an older state', async () => {
    const store = new MemoryStore();
    const db = await open(store, { logRetention: { minSeqs: 1_000_000 } });
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    const N = 30_000;
    const LATE = 5_000;
    const big = (i: number): string => `big${String(i).padStart(6, '0')}`;
    const base = (i: number): string => `base${String(i).padStart(4, '0')}`;
    const late = (i: number): string => `late${String(i).padStart(5, '0')}`;
    await t.append(Array.from({ length: 1000 }, (_, i) => ({ k: base(i), v: 1n })));
    // A source that lets the primary commit right after the replica checked the catalog,
    // so the tail gets writes from above the next checkpoint before the replica swaps.
    const inner = storeSource(store);
    let interleave: (() => Promise<void>) | null = null;
    const source = {
      ...inner,
      stream: (since: number): AsyncIterable<Change> => ({
        [Symbol.asyncIterator]: async function* () {
          const run = interleave;
          interleave = null;
          if (run) await run();
          yield* inner.stream(since);
        },
      }),
    };
    const r = await replica(store, { source });
    for (let i = 0; i < N; i += 1000) await t.upsert(Array.from({ length: 1000 }, (_, j) => ({ k: big(i + j), v: 1n })));
    await r.advance();
    assert.equal((await r.stats()).tailLength, N);
    // One bulk commit moves every key, tail and base alike, to generation 2 (the
    // primary flushes first, so the whole tail falls below the new checkpoint);
    // then point writes above it, which the tail must keep.
    const gen2 = (i: number): bigint => BigInt(1_000_000 + i); // distinct per key: a wrong row shows
    interleave = async () => {
      await t.append([...Array.from({ length: N }, (_, i) => ({ k: big(i), v: gen2(i) })), ...Array.from({ length: 1000 }, (_, i) => ({ k: base(i), v: gen2(N + i) }))]);
      for (let i = 0; i < LATE; i += 1000) await t.upsert(Array.from({ length: 1000 }, (_, j) => ({ k: late(i + j), v: 3n })));
    };
    await r.advance(); // catalog checked first (unchanged), then the late writes arrive in the tail
    assert.equal((await r.stats()).tailLength, N + LATE);
    const genOf = (v: bigint): bigint => (v >= 1_000_000n ? 2n : 1n);
    let done = false;
    let during = 0;
    let newest = 1n;
    const reader = async (w: number): Promise<void> => {
      for (let i = w; !done; i++) {
        // Keys whose old version sits in the tail, keys only in base files, and tail
        // keys above the new checkpoint: once the new state shows anywhere, the old
        // tail entries must not (a mix of the two states), and late keys never change.
        const which = i % 3;
        const k = which === 0 ? big((i * 7919) % N) : which === 1 ? base((i * 31) % 1000) : late((i * 13) % LATE);
        const row = await r.table('t').get(k);
        assert.equal(row?.k, k);
        if (which === 2) assert.equal(row.v, 3n);
        else {
          const g = genOf(row.v as bigint);
          assert.ok(g >= newest, `${k} read generation ${g} after generation ${newest} was seen`);
          newest = g;
        }
        if (!done) during++;
        await new Promise((res) => setImmediate(res));
      }
    };
    const readers = [reader(0), reader(1)];
    await r.advance(); // sees the catalog move: swap, then prune (visits N + LATE, keeps LATE)
    done = true;
    await Promise.all(readers);
    // The prune visits about a thousand entries per chunk with a yield between chunks;
    // the readers get turns at each (a synchronous copy would give them none).
    assert.ok(during >= 5, `reads completed during the swap: ${during}`);
    assert.equal(newest, 2n);
    assert.equal((await r.stats()).tailLength, LATE);
    // Point gets through the new base, across row groups.
    for (let i = 0; i < N; i += 97) assert.equal((await r.table('t').get(big(i)))?.v, gen2(i), big(i));
    for (let i = 0; i < 1000; i += 37) assert.equal((await r.table('t').get(base(i)))?.v, gen2(N + i), base(i));
    const all = await replicaRows(r);
    assert.equal(all.size, N + 1000 + LATE);
    for (let i = 0; i < N; i++) assert.equal(all.get(big(i)), gen2(i));
    for (let i = 0; i < LATE; i++) assert.equal(all.get(late(i)), 3n);
    assert.deepEqual(all, await primaryRows(db));
    await r.close();
    await db.close();
  });
});

type Op =
  | { kind: 'upsert'; rows: Array<[number, number]> }
  | { kind: 'delete'; keys: number[] }
  | { kind: 'tx'; up: [number, number]; del: number }
  | { kind: 'append'; rows: Array<[number, number]> }
  | { kind: 'deleteWhere'; keys: number[] }
  | { kind: 'updateWhere'; keys: number[]; v: number }
  | { kind: 'flush' }
  | { kind: 'advance' }
  | { kind: 'recover' }
  | { kind: 'rebase' }
  | { kind: 'hotswap' }
  | { kind: 'get'; key: number };

const key = fc.integer({ min: 0, max: 15 });
const val = fc.integer({ min: 0, max: 999 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('upsert' as const), rows: fc.array(fc.tuple(key, val), { minLength: 1, maxLength: 4 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), keys: fc.array(key, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tx' as const), up: fc.tuple(key, val), del: key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), rows: fc.array(fc.tuple(key, val), { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteWhere' as const), keys: fc.array(key, { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('updateWhere' as const), keys: fc.array(key, { minLength: 1, maxLength: 4 }), v: val }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'advance' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'recover' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'rebase' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'hotswap' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('get' as const), key }) },
);

const show = (m: ReadonlyMap<string, bigint>): string =>
  [...m]
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join(' ');

async function runModel(ops: Op[], retain: number | null, useStoreSource: boolean): Promise<void> {
  const store = new MemoryStore();
  const db: Database = await open(store, retain === null ? {} : { logRetention: { minSeqs: retain } });
  const t = await db.createTable('t', schema, { primaryKey: 'k' });
  // Every state the primary passed through, with the seq visible then. Bulk
  // commits change the state without a new seq, so one seq can have several
  // states; a replica at seq s must show one of the states recorded at the
  // newest recorded seq <= s (it never mixes two). Ground truth is the
  // primary's own reads; `cur` (the point-write model) is cross-checked.
  const history: Array<{ seq: number; state: Map<string, bigint> }> = [{ seq: 0, state: new Map() }];
  const cur = new Map<string, bigint>();
  const record = async (): Promise<Map<string, bigint>> => {
    const primary = await primaryRows(db);
    history.push({ seq: db.visibleSeq, state: primary });
    return primary;
  };
  const statesAt = (seq: number): Array<Map<string, bigint>> => {
    let at = 0;
    for (const h of history) if (h.seq <= seq) at = Math.max(at, h.seq);
    return history.filter((h) => h.seq === at).map((h) => h.state);
  };
  const follow = (): void => {
    cur.clear();
    for (const [k, v] of history[history.length - 1]!.state) cur.set(k, v);
  };
  const r = await replica(store, useStoreSource ? {} : { source: inProcessSource(db) });
  const check = async (): Promise<void> => {
    assert.ok(r.visibleSeq <= db.visibleSeq);
    const got = await replicaRows(r);
    const states = statesAt(r.visibleSeq);
    assert.ok(
      states.some((st) => show(st) === show(got)),
      `replica at seq ${r.visibleSeq} shows ${show(got)}; the primary had ${states.map(show).join(' | ')}`,
    );
  };
  const caughtUp = async (): Promise<void> => {
    assert.equal(r.visibleSeq, db.visibleSeq, 'caught up with the primary');
    assert.deepEqual(await replicaRows(r), await primaryRows(db), 'replica equals the primary once caught up');
  };
  try {
    for (const op of ops) {
      switch (op.kind) {
        case 'upsert': {
          const rows: Row[] = op.rows.map(([k, v]) => ({ k: kk(k), v: BigInt(v) }));
          await t.upsert(rows);
          for (const row of rows) cur.set(row.k as string, row.v as bigint);
          assert.deepEqual(await record(), cur, 'primary equals the model');
          break;
        }
        case 'delete': {
          await t.delete(op.keys.map(kk));
          for (const k of op.keys) cur.delete(kk(k));
          assert.deepEqual(await record(), cur, 'primary equals the model');
          break;
        }
        case 'tx': {
          await db.transaction(async (tx) => {
            await tx.table('t').upsert({ k: kk(op.up[0]), v: BigInt(op.up[1]) });
            await tx.table('t').delete(kk(op.del));
          });
          await record();
          // Within one transaction the engine keeps the first write of a key; follow the primary.
          follow();
          break;
        }
        case 'append': {
          await t.append(op.rows.map(([k, v]) => ({ k: kk(k), v: BigInt(v) })));
          await record();
          follow(); // the newest row of a key within one append wins
          break;
        }
        case 'deleteWhere': {
          await t.deleteWhere({ k: op.keys.map(kk) });
          for (const k of op.keys) cur.delete(kk(k));
          assert.deepEqual(await record(), cur, 'primary equals the model');
          break;
        }
        case 'updateWhere': {
          await t.updateWhere({ k: op.keys.map(kk) }, { v: BigInt(op.v) });
          for (const k of op.keys) if (cur.has(kk(k))) cur.set(kk(k), BigInt(op.v));
          assert.deepEqual(await record(), cur, 'primary equals the model');
          break;
        }
        case 'flush':
          await db.flush();
          await record();
          break;
        case 'advance':
          try {
            await r.advance();
            await caughtUp();
          } catch (err) {
            // An injected gap: the replica must stay consistent (one of the primary's states).
            if (!isFloeError(err, 'LOG_GAP')) throw err;
          }
          await check();
          break;
        case 'recover':
          await r.advanceOrRecover();
          await caughtUp();
          await check();
          break;
        case 'rebase':
          await r.rebase();
          await check();
          break;
        case 'hotswap':
          await r.rebaseHotSwap();
          await check();
          break;
        case 'get': {
          const got = await r.table('t').get(kk(op.key));
          const want = statesAt(r.visibleSeq).map((st) => st.get(kk(op.key)));
          assert.ok(want.includes(got === null ? undefined : (got.v as bigint)), `get ${kk(op.key)} at seq ${r.visibleSeq}: ${String(got?.v)} not in ${want.map(String).join(',')}`);
          break;
        }
      }
    }
    await r.advanceOrRecover();
    await caughtUp();
  } finally {
    await r.close();
    await db.close();
  }
}

describe('replica model', () => {
  it('replica reads equal the primary at the replica visibleSeq (in-process source, gaps by truncation)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 60 }), (ops) => runModel(ops, null, false)), { numRuns: RUNS });
  });
  it('same with a store-tailing source and log retention', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 60 }), fc.integer({ min: 0, max: 6 }), (ops, keep) => runModel(ops, keep, true)),
      { numRuns: RUNS },
    );
  });
});
