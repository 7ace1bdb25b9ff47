/**
 * Compaction: merging small files and dropping masked rows keeps the
 * visible table and every row's `_id`/`_seq`; tombstones that land while a
 * compaction runs are carried over; a mutation whose intent predates a
 * compaction re-resolves its `_id`s in the new files; replaced files stay
 * readable for older snapshots until GC's version retention expires them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open } from '../../src/db/database.js';
import { isFloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import { retainedVersion } from '../../src/db/gc.js';
import { Failpoints } from '../../src/store/failpoints.js';
import type { FailpointHook } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { listKeys } from '../../src/store/list.js';
import { compactionDue, pickFiles } from '../../src/table/compact.js';

const schema = { k: { type: 'int64', nullable: false }, v: 'utf8', n: { type: 'int64', nullable: false } } as const;
const big = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

async function seeded(files = 4, per = 25, pk = true): Promise<MemoryStore> {
  const store = new MemoryStore();
  const db = await open(store);
  const t = await db.createTable('t', schema, pk ? { primaryKey: 'k' } : {});
  for (let f = 0; f < files; f++) {
    const rows: Row[] = [];
    for (let i = 0; i < per; i++) rows.push({ k: BigInt(f * per + i), v: `r${f * per + i}`, n: BigInt(i % 5) });
    await t.append(rows);
  }
  await db.close();
  return store;
}

async function snapshot(t: { scan(o: object): { toArray(): Promise<Row[]> } }): Promise<string> {
  const rows = await t.scan({ columns: ['_id', '_seq', 'k', 'v', 'n'] }).toArray();
  rows.sort((a, b) => Number((a._id as bigint) - (b._id as bigint)));
  return JSON.stringify(rows, big);
}

describe('compact', () => {
  for (const pk of [true, false]) {
    it(`merges small files and drops masked rows, keeping _id and _seq (${pk ? 'keyed' : 'keyless'})`, async () => {
      const store = await seeded(4, 25, pk);
      const db = await open(store);
      const t = await db.table('t');
      await t.deleteWhere({ n: 1n });
      const before = await snapshot(t);
      const r = await t.compact();
      assert.equal(r.filesRemoved, 4);
      assert.equal(r.filesAdded, 1);
      assert.equal(r.rowsDropped, 20);
      assert.equal(r.rowsWritten, 80);
      assert.equal(await snapshot(t), before);
      const st = await t.stats();
      assert.equal(st.files, 1);
      assert.equal(st.deletedRows, 0);
      assert.equal((await t.compact()).filesRemoved, 0, 'nothing left to compact');
      if (pk) assert.deepEqual(await t.get(42n), { k: 42n, v: 'r42', n: 2n });
      await db.close();
    });
  }

  it('pickFiles: small files only in groups of two or more, plus files with many masked rows', () => {
    const f = (id: string, rows: number, deleted = 0) => ({ id, rows, deletes: deleted ? { key: id, count: deleted } : null }) as never;
    const m = (files: unknown[]) => ({ files }) as never;
    const o = { smallFileRows: 100, deletedFraction: 0.1, rowsPerFile: 1000, maxRows: Number.MAX_SAFE_INTEGER };
    assert.deepEqual(pickFiles(m([f('a', 10)]), o), []);
    assert.deepEqual((pickFiles(m([f('a', 10), f('b', 500), f('c', 20)]), o) as Array<{ id: string }>).map((x) => x.id), ['a', 'c']);
    assert.deepEqual((pickFiles(m([f('a', 500, 60), f('b', 500, 10)]), o) as Array<{ id: string }>).map((x) => x.id), ['a']);
    // maxRows: smallest first, manifest order kept; a lone small file is not worth a rewrite.
    const capped = { ...o, maxRows: 35 };
    assert.deepEqual((pickFiles(m([f('a', 30), f('b', 10), f('c', 20), f('d', 5)]), capped) as Array<{ id: string }>).map((x) => x.id), ['b', 'c', 'd']);
    assert.deepEqual(pickFiles(m([f('a', 30), f('b', 40)]), capped), []);
    assert.deepEqual((pickFiles(m([f('a', 30, 5), f('b', 40)]), capped) as Array<{ id: string }>).map((x) => x.id), ['a'], 'a dirty file alone is still rewritten');
  });

  it('compactionDue: enough small files, or one file with enough masked rows', () => {
    const f = (rows: number, deleted = 0) => ({ id: 'x', rows, deletes: deleted ? { key: 'x', count: deleted } : null }) as never;
    const m = (files: unknown[]) => ({ files }) as never;
    const p = { minSmallFiles: 3, smallFileRows: 100, deletedFraction: 0.5, maxRows: 1000 };
    assert.equal(compactionDue(m([f(10), f(10)]), p), false);
    assert.equal(compactionDue(m([f(10), f(10), f(99)]), p), true);
    assert.equal(compactionDue(m([f(10), f(10), f(100)]), p), false);
    assert.equal(compactionDue(m([f(1000, 499)]), p), false);
    assert.equal(compactionDue(m([f(1000, 500)]), p), true);
    assert.equal(compactionDue(m([]), p), false);
  });

  it('a tombstone published while compaction runs is carried into the new file', async () => {
    const store = await seeded();
    const other = await open(store, { logWriter: false });
    let fired = false;
    const hook: FailpointHook = {
      hit: async (name) => {
        if (name === 'compact.data.put.after' && !fired) {
          fired = true;
          await (await other.table('t')).deleteWhere({ n: 3n });
        }
      },
    };
    const db = await open(store, { failpoints: hook });
    const t = await db.table('t');
    await t.compact();
    assert.ok(fired);
    assert.equal(await t.count({ n: 3n }), 0, 'the concurrent delete was not lost');
    assert.equal(await t.count(), 80);
    await other.close();
    await db.close();
  });

  it('compaction first, then the stale intent: rows found by _id, deleted exactly once', async () => {
    const store = await seeded();
    const fp = new Failpoints().arm('mutate.doc.create.after', { type: 'crash' });
    const crashed = await open(new FaultyStore(store, fp), { failpoints: fp });
    await assert.rejects((await crashed.table('t')).updateWhere({ n: 4n }, { v: 'u' }), (e) => isFloeError(e, 'INJECTED_CRASH'));
    // compact directly on the store bytes, hiding the mutation doc meanwhile so open does not recover it first
    const docs = await listKeys(store, 'mutations/');
    const saved = new Map<string, Uint8Array>();
    for (const k of docs) saved.set(k, (await store.get(k)).bytes);
    for (const k of docs) await store.delete(k);
    const db = await open(store);
    const t = await db.table('t');
    const c = await t.compact();
    assert.equal(c.filesRemoved, 4);
    for (const [k, b] of saved) await store.put(k, b);
    const r = await db.recoverMutations();
    assert.equal(r.resumed.length, 1);
    assert.equal(await t.count({ v: 'u' }), 20);
    assert.equal(await t.count(), 100);
    assert.deepEqual(await t.get(4n), { k: 4n, v: 'u', n: 4n });
    await db.close();
  });

  it('older snapshots keep reading replaced files until version retention expires them', async () => {
    const store = await seeded();
    const db = await open(store);
    const t = await db.table('t');
    const v0 = (await t.stats()).version;
    const old = await t.checkout(v0);
    await t.compact();
    const kept = await db.gc({ graceMs: 0 });
    assert.equal(kept.deleted.length, 0, 'default GC keeps every version');
    assert.equal((await old.scan().toArray()).length, 100);
    const within = await db.gc({ graceMs: 0, retainMs: 3_600_000 });
    assert.equal(within.deleted.length, 0, 'the old version was current moments ago');
    const expired = await db.gc({ graceMs: 0, retainVersions: 1 });
    assert.equal(expired.deleted.filter((k) => k.endsWith('.parquet')).length, 4, 'the four replaced files');
    assert.equal(await t.count(), 100);
    await db.close();
    const db2 = await open(store); // fresh caches: the expired version's files are gone
    await assert.rejects(async () => (await (await db2.table('t')).checkout(v0)).scan().toArray(), (e) => isFloeError(e, 'NOT_FOUND'));
    assert.equal(await (await db2.table('t')).count(), 100);
    await db2.close();
  });

  it('retainedVersion decides by index and by successor age', () => {
    assert.equal(retainedVersion(0, null, 1000, { versions: 1 }), true);
    assert.equal(retainedVersion(5, 0, 1000, undefined), true);
    assert.equal(retainedVersion(1, 900, 1000, { versions: 1 }), false);
    assert.equal(retainedVersion(1, 900, 1000, { versions: 2 }), true);
    assert.equal(retainedVersion(1, 900, 1000, { ms: 200 }), true);
    assert.equal(retainedVersion(1, 700, 1000, { ms: 200 }), false);
  });
});

describe('background compaction (autoCompact)', () => {
  const appendFiles = async (t: { append(rows: Row[]): Promise<unknown> }, files: number, per: number, first = 0): Promise<void> => {
    for (let f = 0; f < files; f++) {
      const rows: Row[] = [];
      for (let i = 0; i < per; i++) rows.push({ k: BigInt(first + f * per + i), v: `r${first + f * per + i}`, n: BigInt(i % 5) });
      await t.append(rows);
    }
  };

  it('merges small files after the commit that makes them enough, keeping every row, _id and _seq', async () => {
    const store = new MemoryStore();
    const db = await open(store, { autoCompact: { minSmallFiles: 4 } });
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    await appendFiles(t, 3, 10);
    await db._internals.settled();
    assert.equal((await t.stats()).files, 3, 'below the threshold: left alone');
    const before = await snapshot(t);
    await appendFiles(t, 1, 10, 1000); // the 4th small file
    const want = JSON.parse(before) as unknown[];
    await db._internals.settled();
    assert.equal((await t.stats()).files, 1);
    const after = JSON.parse(await snapshot(t)) as unknown[];
    assert.equal(after.length, want.length + 10);
    assert.deepEqual(after.slice(0, want.length), want, 'rows, _id and _seq kept');
    assert.ok((await t.versions()).some((v) => v.operation === 'compact'));
    await db.close();
  });

  it('drops masked rows of a file once enough of it is deleted; off when autoCompact is false', async () => {
    for (const auto of [true, false]) {
      const store = new MemoryStore();
      const db = await open(store, { autoCompact: auto ? { deletedFraction: 0.5 } : false });
      const t = await db.createTable('t', schema, { primaryKey: 'k' });
      await appendFiles(t, 1, 40);
      await t.deleteWhere({ n: 0n });
      await t.deleteWhere({ n: 1n });
      await db._internals.settled();
      assert.equal((await t.stats()).deletedRows, 16, 'two of five groups deleted: under half');
      await t.deleteWhere({ n: 2n });
      await db._internals.settled();
      const st = await t.stats();
      assert.equal(st.rows, 16);
      assert.equal(st.deletedRows, auto ? 0 : 24, auto ? 'compacted: masked rows dropped' : 'no background compaction');
      await db.close();
    }
  });

  it('rejects a bad policy before opening anything', async () => {
    const store = new MemoryStore();
    await assert.rejects(open(store, { autoCompact: { minSmallFiles: 0 } }), (err) => isFloeError(err, 'INVALID_ARGUMENT') && /minSmallFiles/.test(err.message));
    await assert.rejects(open(store, { autoCompact: { nope: 1 } as never }), (err) => isFloeError(err, 'INVALID_ARGUMENT') && /nope/.test(err.message));
    assert.deepEqual(await listKeys(store, ''), [], 'nothing was created');
  });
});
