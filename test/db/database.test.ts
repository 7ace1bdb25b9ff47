import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isFloeError } from '../../src/errors.js';
import { open } from '../../src/db/database.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';
import { LocalStore } from '../../src/store/local.js';

const schema = {
  package: { type: 'utf8', nullable: false },
  section: 'utf8',
  size: 'int64',
  score: 'float64',
} as const;

function pkg(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { package: `p${String(i).padStart(5, '0')}`, section: i % 2 ? 'libs' : 'utils', size: BigInt(i * 10), score: i / 2, ...extra };
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    assert.ok(isFloeError(err), `expected FloeError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return;
  }
  assert.fail(`expected ${code}`);
}

describe('database: tables, point writes, flush, reopen', () => {
  it('creates a table, upserts, reads back before and after flush and reopen', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    const t = await db.createTable('packages', schema, { primaryKey: 'package' });
    await t.upsert([pkg(1), pkg(2), pkg(3)]);
    assert.deepEqual(await t.get('p00002'), pkg(2));
    assert.equal(await t.count(), 3);
    await t.upsert(pkg(2, { section: 'changed' }));
    await t.delete('p00003');
    assert.equal((await t.get('p00002'))?.section, 'changed');
    assert.equal(await t.get('p00003'), null);
    await db.flush();
    assert.equal((await t.get('p00002'))?.section, 'changed');
    assert.equal(await t.get('p00003'), null);
    assert.equal(await t.count(), 2);
    await t.upsert(pkg(1, { section: 'again' }));
    await db.close();

    const db2 = await open(store);
    const t2 = await db2.table('packages');
    assert.equal((await t2.get('p00001'))?.section, 'again');
    assert.equal(await t2.count(), 2);
    const rows = await t2.scan({ where: { section: 'changed' } }).toArray();
    assert.deepEqual(rows.map((r) => r.package), ['p00002']);
    await db2.close();
  });

  it('replays acknowledged writes after a crash without close', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    for (let i = 0; i < 50; i++) await t.upsert(pkg(i));
    await db.flush();
    for (let i = 50; i < 80; i++) await t.upsert(pkg(i));
    await t.delete(['p00001', 'p00060']);
    // no close: simulate the process dying; a new writer fences the old one
    const db2 = await open(store);
    const t2 = await db2.table('t');
    assert.equal(await t2.count(), 78);
    assert.equal(await t2.get('p00060'), null);
    assert.deepEqual(await t2.get('p00070'), pkg(70));
    await db2.close();
  });

  it('bulk append writes Parquet and masks older versions of keys', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    await t.append(Array.from({ length: 1000 }, (_, i) => pkg(i)));
    const r = await t.append([pkg(5, { section: 'v2' }), pkg(5000)], { rowsPerFile: 1 });
    assert.equal(r.rows, 2);
    assert.equal(await t.count(), 1001);
    assert.equal((await t.get('p00005'))?.section, 'v2');
    const s = await t.stats();
    assert.equal(s.files, 3);
    assert.equal(s.deletedRows, 1);
    await db.close();
  });

  it('scan supports where, columns, limit, and pruning', async () => {
    const db = await open(new MemoryStore());
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    await t.append(Array.from({ length: 500 }, (_, i) => pkg(i)));
    const rows = await t
      .scan({ where: { op: 'and', args: [{ op: 'ge', column: 'size', value: 100n }, { op: 'lt', column: 'size', value: 200n }] }, columns: ['package', 'size'] })
      .toArray();
    assert.equal(rows.length, 10);
    assert.deepEqual(Object.keys(rows[0]!), ['package', 'size']);
    assert.equal((await t.scan({ limit: 7 }).toArray()).length, 7);
    await expectCode(async () => t.scan({ columns: ['nope'] }).toArray(), 'INVALID_ARGUMENT');
    await db.close();
  });

  it('versions and checkout give historical snapshots', async () => {
    const db = await open(new MemoryStore());
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    await t.append([pkg(1)]);
    await t.append([pkg(2)]);
    const v = await t.versions();
    assert.deepEqual(v.map((x) => x.version), [3, 2, 1]);
    const old = await t.checkout(2);
    assert.equal(await old.count(), 1);
    assert.equal(await t.count(), 2);
    await expectCode(t.checkout(9), 'NOT_FOUND');
    await db.close();
  });

  it('transactions commit writes to several tables as one record', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    await db.createTable('a', schema, { primaryKey: 'package' });
    await db.createTable('b', schema, { primaryKey: 'package' });
    await db.transaction(async (tx) => {
      await tx.table('a').upsert(pkg(1));
      await tx.table('b').upsert(pkg(2));
    });
    // several writes to one key in one transaction: the last wins, also after replay
    await db.transaction(async (tx) => {
      await tx.table('a').upsert(pkg(7));
      await tx.table('a').delete('p00007');
      await tx.table('b').delete('p00008');
      await tx.table('b').upsert(pkg(8, { section: 'last' }));
    });
    assert.equal(await (await db.table('a')).get('p00007'), null);
    assert.equal((await (await db.table('b')).get('p00008'))?.section, 'last');
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.table('a').upsert(pkg(3));
        throw new Error('abort');
      }),
      /abort/,
    );
    const db2 = await open(store);
    assert.equal(await (await db2.table('a')).count(), 1);
    assert.equal(await (await db2.table('b')).count(), 2);
    assert.equal(await (await db2.table('a')).get('p00007'), null);
    assert.equal((await (await db2.table('b')).get('p00008'))?.section, 'last');
    await db2.close();
  });

  it('bad input fails with typed errors and writes nothing', async () => {
    const store = new MetricsStore(new MemoryStore());
    const db = await open(store);
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    const before = store.writes();
    await expectCode(t.upsert([{ package: 'x', size: 'big' }]), 'SCHEMA_MISMATCH');
    await expectCode(t.upsert([{ package: 'x', nope: 1 }]), 'SCHEMA_MISMATCH');
    await expectCode(t.upsert([{ section: 'no key' }]), 'SCHEMA_MISMATCH');
    await expectCode(t.append([pkg(1), { package: 'y', size: 1.5 }]), 'SCHEMA_MISMATCH');
    assert.equal(store.writes(), before);
    await expectCode(db.createTable('t', schema), 'ALREADY_EXISTS');
    await expectCode(db.createTable('bad name', schema), 'INVALID_ARGUMENT');
    await expectCode(db.table('missing'), 'NOT_FOUND');
    await db.close();
    await expectCode(t.upsert(pkg(1)), 'CLOSED');
  });

  it('opening a non-floe location fails clearly; read-only never creates', async () => {
    const store = new MemoryStore();
    await expectCode(open(store, { readOnly: true }), 'NOT_A_DATABASE');
    await store.put('something/else', new Uint8Array([1]));
    await expectCode(open(store), 'NOT_A_DATABASE');
  });

  it('a read-only open sees flushed and unflushed acknowledged writes', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    await t.upsert([pkg(1), pkg(2)]);
    await db.flush();
    await t.upsert(pkg(3));
    const ro = await open(store, { readOnly: true });
    const rt = await ro.table('t');
    assert.equal(await rt.count(), 3);
    await expectCode(rt.upsert(pkg(4)), 'INVALID_ARGUMENT');
    await ro.close();
    await db.close();
  });

  it('opening a table costs at most 2 GETs and no LIST', async () => {
    const mem = new MemoryStore();
    const db = await open(mem);
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    await t.append([pkg(1)]);
    await db.close();
    const m = new MetricsStore(mem);
    const ro = await open(m, { readOnly: true });
    m.reset();
    await ro.table('t');
    await (await ro.table('t')).stats();
    assert.ok(m.requests('get') <= 2, `GETs: ${m.requests('get')}`);
    assert.equal(m.requests('list'), 0);
    await ro.close();
  });

  it('addColumn without rewriting files', async () => {
    const db = await open(new MemoryStore());
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    await t.append([pkg(1)]);
    await t.addColumn({ name: 'extra', type: 'int32' });
    await t.upsert({ ...pkg(2), extra: 7 });
    const rows = await t.scan({ columns: ['package', 'extra'] }).toArray();
    rows.sort((a, b) => String(a.package).localeCompare(String(b.package)));
    assert.deepEqual(rows, [
      { package: 'p00001', extra: null },
      { package: 'p00002', extra: 7 },
    ]);
    await db.flush();
    assert.equal((await t.get('p00002'))?.extra, 7);
    await db.close();
  });

  it('a catalog written by a newer floe is refused with UNSUPPORTED_VERSION', async () => {
    const store = new MemoryStore();
    const db = await open(store);
    await db.close();
    const { bytes } = await store.get('_catalog/current');
    const text = new TextDecoder().decode(bytes);
    const body = JSON.parse(text.slice(0, text.lastIndexOf('\ncrc32c='))) as Record<string, unknown>;
    const { sealJson } = await import('../../src/table/manifest.js');
    await store.put('_catalog/current', sealJson({ ...body, format: 99 }));
    await expectCode(open(store), 'UNSUPPORTED_VERSION');
    await expectCode(open(store, { readOnly: true }), 'UNSUPPORTED_VERSION');
    await store.put('_catalog/current', new TextEncoder().encode('{"hello":"world"}'));
    await expectCode(open(store), 'NOT_A_DATABASE');
  });

  it('rejects float and unknown primary-key columns and null keys; NaN is fine outside the key', async () => {
    const db = await open(new MemoryStore());
    await expectCode(db.createTable('f', { k: 'float64' }, { primaryKey: 'k' }), 'INVALID_ARGUMENT');
    await expectCode(db.createTable('m', { k: 'int64' }, { primaryKey: 'missing' }), 'INVALID_ARGUMENT');
    const ok = await db.createTable('ok', { k: 'int64', v: 'float64' }, { primaryKey: 'k' });
    await expectCode(ok.upsert({ k: null, v: 1 }), 'SCHEMA_MISMATCH');
    await ok.upsert({ k: 1n, v: Number.NaN }); // NaN is fine outside the key
    assert.ok(Number.isNaN((await ok.get(1n))?.v));
    await db.close();
  });

  it('dropTable removes the table; gc collects unreferenced objects after the grace period only', async () => {
    const store = new MemoryStore();
    let now = Date.now();
    const db = await open(store, { now: () => now });
    const keep = await db.createTable('keep', schema, { primaryKey: 'package' });
    const gone = await db.createTable('gone', schema, { primaryKey: 'package' });
    await keep.append([pkg(1)]);
    await gone.append([pkg(2)]);
    // an orphan data file, as a crash before a commit would leave
    await store.put(`tables/orphan/data/${'01' + 'A'.repeat(24)}.parquet`, new Uint8Array([1]));
    await db.dropTable('gone');
    await expectCode(db.table('gone'), 'NOT_FOUND');
    assert.deepEqual(db.listTables(), ['keep']);
    const early = await db.gc({ graceMs: 60_000 });
    assert.ok(early.deleted.every((k) => k.startsWith('tables/orphan/')), early.deleted.join(','));
    now += 120_000;
    const late = await db.gc({ graceMs: 60_000 });
    assert.ok(late.deleted.length >= 3, late.deleted.join(','));
    assert.ok(late.deleted.every((k) => !k.includes(keep.tableId)));
    assert.equal(await keep.count(), 1);
    assert.deepEqual(await keep.get('p00001'), pkg(1));
    await db.close();
    const again = await open(store);
    assert.equal(await (await again.table('keep')).count(), 1);
    await again.close();
  });

  it('writers wait (never fail) while a flush falls behind, and go on when it completes', async () => {
    const { Failpoints } = await import('../../src/store/failpoints.js');
    const fp = new Failpoints();
    const db = await open(new MemoryStore(), { memtableBytes: 2048, failpoints: fp });
    const t = await db.createTable('t', schema, { primaryKey: 'package' });
    fp.arm('flush.data.put.before', { type: 'hang' });
    const tick = (ms: number): Promise<'waiting'> => new Promise((r) => setTimeout(() => r('waiting'), ms));
    let held: Promise<unknown> | null = null;
    let i = 0;
    for (; i < 500 && !held; i++) {
      const p = t.upsert(pkg(i));
      if ((await Promise.race([p.then(() => 'done' as const), tick(300)])) === 'waiting') held = p;
    }
    assert.ok(held, 'no writer was ever held back although the flush hung');
    assert.ok(fp.count('flush.data.put.before') >= 1, 'a background flush had started');
    fp.disarm('flush.data.put.before');
    await held;
    assert.equal(await t.count(), i);
    await db.close();
  });

  it('works on a local directory', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-db-'));
    try {
      const db = await open(await LocalStore.open(dir));
      const t = await db.createTable('t', schema, { primaryKey: 'package' });
      await t.upsert([pkg(1), pkg(2)]);
      await db.close();
      const db2 = await open(dir);
      assert.equal(await (await db2.table('t')).count(), 2);
      await db2.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
