/**
 * Commit history kept in the catalog's ring and moved to `_history/`
 * batches (src/db/history.ts):
 * - spillPlan, exhaustively against its definition on small rings;
 * - a commit costs 2 + 2T PUTs and no LIST (the history entry rides on the
 *   catalog CAS);
 * - many commits: the ring stays bounded, history() lists every commit once,
 *   newest first, with `limit`; checkout of a spilled commit travels back;
 * - a spill crashed between its batch PUT and its catalog CAS loses and
 *   doubles nothing, and the next spill finishes it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readCatalog } from '../../src/db/catalog.js';
import { open } from '../../src/db/database.js';
import type { RingLimits } from '../../src/db/history.js';
import { DEFAULT_RING, spillPlan } from '../../src/db/history.js';
import { isFloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { listKeys } from '../../src/store/list.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';

const schema = { k: { type: 'utf8', nullable: false }, v: 'int64' } as const;
const rows = (prefix: string, n: number, v: number): Row[] => Array.from({ length: n }, (_, i) => ({ k: `${prefix}${i}`, v: BigInt(v) }));

/** The definition: the smallest cut (keeping >= 1 entry) that brings the ring within half of both bounds. */
function reference(sizes: readonly number[], l: RingLimits): number {
  const sum = (a: readonly number[]): number => a.reduce((x, y) => x + y, 0);
  if (sizes.length <= l.maxEntries && sum(sizes) <= l.maxBytes) return 0;
  for (let cut = 0; cut < sizes.length - 1; cut++) {
    const rest = sizes.slice(cut);
    if (rest.length <= l.maxEntries / 2 && sum(rest) <= l.maxBytes / 2) return cut;
  }
  return Math.max(0, sizes.length - 1);
}

describe('spillPlan', () => {
  it('matches its definition on every ring of up to 7 entries of sizes 1..4, for several bounds', () => {
    let cases = 0;
    for (const l of [
      { maxEntries: 2, maxBytes: 4 },
      { maxEntries: 3, maxBytes: 6 },
      { maxEntries: 4, maxBytes: 100 },
      { maxEntries: 100, maxBytes: 7 },
      { maxEntries: 5, maxBytes: 9 },
    ]) {
      const walk = (sizes: number[]): void => {
        const got = spillPlan(sizes, l);
        assert.equal(got, reference(sizes, l), `${JSON.stringify(sizes)} ${JSON.stringify(l)}`);
        assert.ok(got === 0 || got < sizes.length, 'the newest entry always stays');
        cases++;
        if (sizes.length < 7) for (const s of [1, 2, 3, 4]) walk([...sizes, s]);
      };
      walk([]);
    }
    assert.ok(cases > 20_000);
  });

  it('leaves a ring within bounds alone and cuts an oversized one to half', () => {
    assert.equal(spillPlan(new Array<number>(32).fill(100)), 0);
    assert.equal(spillPlan(new Array<number>(33).fill(100)), 33 - DEFAULT_RING.maxEntries / 2);
    assert.equal(spillPlan([DEFAULT_RING.maxBytes + 1]), 0, 'a single huge entry stays (nothing older to move)');
    assert.equal(spillPlan([10, DEFAULT_RING.maxBytes]), 1);
  });
});

describe('history in the catalog', () => {
  it('a two-table load costs 2 + 2T PUTs and no LIST: its history entry rides on the catalog CAS', async () => {
    const metrics = new MetricsStore(new MemoryStore());
    const db = await open(metrics);
    await db.createTable('a', schema, { primaryKey: 'k' });
    await db.createTable('b', schema);
    await db.load({ a: rows('a', 3, 1), b: rows('b', 3, 1) });
    metrics.reset();
    // New keys: no older row to mask, so no deletion bitmap is written.
    const r = await db.load({ a: rows('a2-', 3, 2), b: rows('b', 3, 2) });
    assert.equal(metrics.writes(), 2 + 2 * 2, JSON.stringify(metrics.snapshot()));
    assert.equal(metrics.requests('list'), 0);
    const h = await db.history({ limit: 1 });
    assert.equal(h[0]?.id, r.commitId, 'the commit is in history as soon as it is published');
    await db.close();
  });

  it('many commits: the ring stays bounded, history lists each commit once newest first, checkout reaches spilled commits', async () => {
    const inner = new MemoryStore();
    const db = await open(inner);
    await db.createTable('a', schema, { primaryKey: 'k' });
    await db.createTable('b', schema);
    const ids: string[] = [];
    const n = DEFAULT_RING.maxEntries * 2 + 5;
    for (let i = 0; i < n; i++) ids.push((await db.load({ a: rows('a', 2, i), b: rows(`b${i}-`, 1, i) })).commitId);
    await db.close();
    const cat = (await readCatalog(inner))!.catalog;
    assert.ok((cat.commits?.length ?? 0) <= DEFAULT_RING.maxEntries, `ring of ${cat.commits?.length}`);
    assert.ok((await listKeys(inner, '_history/')).some((k) => k.endsWith('.b.json')), 'old entries were moved to batches');

    const ro = await open(inner, { readOnly: true });
    const all = await ro.history({ limit: 10_000 });
    assert.deepEqual(
      all.map((e) => e.id),
      [...ids].reverse(),
    );
    const five = await ro.history({ limit: 5 });
    assert.deepEqual(
      five.map((e) => e.id),
      [...ids].reverse().slice(0, 5),
    );
    const oldest = await ro.checkout(ids[0]!);
    const a = await oldest.table('a').scan().toArray();
    assert.deepEqual(
      a.map((r) => r.v),
      [0n, 0n],
    );
    assert.equal((await oldest.table('b').scan().toArray()).length, 1);
    const mid = await ro.checkout(ids[10]!);
    assert.equal((await mid.table('b').scan().toArray()).length, 11);
    await assert.rejects(ro.checkout('01ARZ3NDEKTSV4RRFFQ69G5FAV'), (err) => isFloeError(err, 'NOT_FOUND'));
    await ro.close();
  });

  it('a spill crashed after its batch PUT: nothing lost or doubled, and the next spill completes it', async () => {
    const inner = new MemoryStore();
    const fp = new Failpoints();
    const db = await open(new FaultyStore(inner, fp), { failpoints: fp });
    await db.createTable('a', schema, { primaryKey: 'k' });
    fp.arm('history.spill.after', { type: 'crash' }, { times: 1 });
    const ids: string[] = [];
    for (let i = 0; i <= DEFAULT_RING.maxEntries; i++) ids.push((await db.load({ a: rows('a', 1, i) })).commitId);
    await assert.rejects(db.close(), (err) => isFloeError(err, 'INJECTED_CRASH'), 'close reports the failed background spill');
    assert.equal(fp.count('history.spill.after'), 1);
    const cat = (await readCatalog(inner))!.catalog;
    assert.equal(cat.commits?.length, ids.length, 'the crashed spill removed nothing from the ring');
    assert.equal((await listKeys(inner, '_history/')).filter((k) => k.endsWith('.b.json')).length, 1, 'but its batch is written');

    const ro = await open(inner, { readOnly: true });
    assert.deepEqual(
      (await ro.history({ limit: 1000 })).map((e) => e.id),
      [...ids].reverse(),
      'an entry in both places is listed once',
    );
    await ro.close();

    const again = await open(inner);
    ids.push((await again.load({ a: rows('a', 1, 99) })).commitId);
    await again.close();
    const after = (await readCatalog(inner))!.catalog;
    assert.ok((after.commits?.length ?? 0) <= DEFAULT_RING.maxEntries / 2 + 1, `ring of ${after.commits?.length} after the retried spill`);
    const ro2 = await open(inner, { readOnly: true });
    assert.deepEqual(
      (await ro2.history({ limit: 1000 })).map((e) => e.id),
      [...ids].reverse(),
    );
    await ro2.close();
  });
});

describe('gc and history snapshots', () => {
  it('keeps what a checkout of a commit reads, even of a table dropped since, until its retention expires', async () => {
    const inner = new MemoryStore();
    let now = Date.now();
    const db = await open(inner, { now: () => now });
    await db.createTable('a', schema, { primaryKey: 'k' });
    await db.createTable('b', schema);
    const c1 = (await db.load({ a: rows('a', 2, 1), b: rows('b', 3, 1) })).commitId;
    await db.dropTable('b');
    now += 10_000;
    await db.gc({ graceMs: 0 });
    const snap = await db.checkout(c1);
    assert.equal((await snap.table('b').scan().toArray()).length, 3, 'default retention keeps every commit snapshot');
    await db.gc({ graceMs: 0, retainMs: 60_000 });
    assert.equal((await (await db.checkout(c1)).table('b').scan().toArray()).length, 3, 'within retainMs');
    now += 120_000;
    const r = await db.gc({ graceMs: 0, retainMs: 60_000 });
    assert.ok(r.deleted.length > 0);
    await db.close();
    // A fresh reader (this process's caches still hold what gc deleted).
    const ro = await open(inner, { readOnly: true });
    await assert.rejects(
      (await ro.checkout(c1)).table('b').scan().toArray(),
      (err) => isFloeError(err, 'NOT_FOUND') && /gc collected it/.test(err.message),
    );
    assert.equal((await (await ro.checkout(c1)).table('a').scan().toArray()).length, 2, 'a live table at that version is still current');
    await ro.close();
  });
});
