/**
 * Reads through the page reader: `get` and `scan` equal an in-memory model
 * of the table over random sequences of bulk appends, upserts, deletes,
 * flushes and added columns (several files per table, several row groups
 * and pages per file, deletion bitmaps, memtable shadowing, nulls in every
 * type, list and vector columns that take the general path), with the
 * database's caches and with a tiny decoded-page cache that must evict on
 * almost every lookup and never exceed its byte budget. Also: damage in a
 * data page is CORRUPT for get and scan, and composite keys (general path)
 * read the same rows.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parquetMetadata } from 'hyparquet';
import { open } from '../../src/db/database.js';
import { FloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import { recordBatchToRows } from '../../src/format/schema.js';
import { MemoryStore } from '../../src/store/memory.js';
import { FileCache } from '../../src/table/files.js';
import { getByKey, scanView } from '../../src/table/read.js';
import type { TableView } from '../../src/table/view.js';

const RUNS = Number(process.env.FLOE_READ_RUNS ?? 6);
const TINY_CACHE = 96 * 1024;

type KeyType = 'utf8' | 'int64' | 'int32';

function keyOfN(type: KeyType, n: number): unknown {
  if (type === 'int64') return BigInt(n * 7 - 500);
  if (type === 'int32') return n * 3 - 100;
  // Long keys (several key pages per row group), some non-ASCII.
  return `${'κ'.repeat(n % 3)}key-${String(n).padStart(4, '0')}-${'x'.repeat(300)}`;
}

function schemaFor(keyType: KeyType): Record<string, unknown> {
  return {
    k: { type: keyType, nullable: false },
    i32: 'int32',
    i64: 'int64',
    f32: 'float32',
    f64: 'float64',
    b: 'bool',
    s: 'utf8',
    cat: 'utf8',
    bin: 'binary',
    ts: 'timestamp',
    d: 'date',
    pad: 'utf8',
    tags: { list: 'utf8' },
    vec: { vector: 2 },
  };
}

const nullable = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(arb, { freq: 5, nil: null });

const valuesArb = fc.record({
  i32: nullable(fc.integer({ min: -2_000_000_000, max: 2_000_000_000 })),
  i64: nullable(fc.bigInt({ min: -(1n << 62n), max: 1n << 62n })),
  f32: nullable(fc.integer({ min: -1e6, max: 1e6 }).map((x) => Math.fround(x / 8))),
  f64: nullable(fc.double({ noNaN: true, min: -1e12, max: 1e12 })),
  b: nullable(fc.boolean()),
  s: nullable(fc.string({ maxLength: 12 })),
  cat: nullable(fc.constantFrom('alpha', 'beta', 'gamma')),
  bin: nullable(fc.uint8Array({ maxLength: 6 })),
  ts: nullable(fc.integer({ min: 0, max: 2_000_000_000 }).map((s) => new Date(s * 1000 + 123))),
  d: nullable(fc.integer({ min: -1000, max: 30000 }).map((day) => new Date(day * 86_400_000))),
  pad: nullable(fc.integer({ min: 0, max: 900 }).map((n) => 'p'.repeat(n))),
  tags: nullable(fc.array(nullable(fc.constantFrom('x', 'y', 'zz')), { maxLength: 3 })),
  vec: nullable(fc.tuple(fc.integer({ min: -100, max: 100 }), fc.integer({ min: -100, max: 100 })).map(([a, b]) => Float32Array.of(a / 4, b / 4))),
});

type Op =
  | { kind: 'append' | 'upsert'; rows: Array<{ n: number; v: Record<string, unknown>; extra: number | null }> }
  | { kind: 'delete'; keys: number[] }
  | { kind: 'flush' }
  | { kind: 'addColumn'; withDefault: boolean };

const UNIVERSE = 260;
const rowsArb = fc.array(fc.record({ n: fc.integer({ min: 0, max: UNIVERSE - 1 }), v: valuesArb, extra: nullable(fc.integer({ min: -5, max: 5 })) }), { minLength: 1, maxLength: 220 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('append' as const), rows: rowsArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('upsert' as const), rows: rowsArb.map((r) => r.slice(0, 40)) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), keys: fc.array(fc.integer({ min: 0, max: UNIVERSE - 1 }), { maxLength: 60 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('addColumn' as const), withDefault: fc.boolean() }) },
);

/** Plain JSON-able form for comparisons (bigint, Date, typed arrays spelled out). */
function canon(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Date) return `D${v.getTime()}`;
  if (v instanceof Uint8Array) return `B${Array.from(v).join(',')}`;
  if (v instanceof Float32Array) return `F${Array.from(v).join(',')}`;
  if (Array.isArray(v)) return v.map(canon);
  if (typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) o[k] = canon((v as Record<string, unknown>)[k]);
    return o;
  }
  return v;
}

function viewOf(t: unknown): Promise<TableView> {
  return (t as { viewOf: () => Promise<TableView> }).viewOf();
}

async function runModel(keyType: KeyType, ops: Op[]): Promise<void> {
  const store = new MemoryStore();
  const db = await open(store, { rowGroupRows: 120, autoCompact: false });
  try {
    const t = await db.createTable('t', schemaFor(keyType) as never, { primaryKey: 'k' });
    const model = new Map<number, Row>();
    const extras: Array<{ name: string; dflt: number | null }> = [];
    for (const op of ops) {
      if (op.kind === 'append' || op.kind === 'upsert') {
        const rows: Row[] = op.rows.map((r) => {
          const row: Row = { k: keyOfN(keyType, r.n), ...r.v };
          for (const x of extras) row[x.name] = r.extra;
          return row;
        });
        if (op.kind === 'append') await t.append(rows);
        else await t.upsert(rows);
        for (let i = 0; i < rows.length; i++) model.set(op.rows[i]!.n, rows[i]!);
      } else if (op.kind === 'delete') {
        await t.delete(op.keys.map((n) => keyOfN(keyType, n)));
        for (const n of op.keys) model.delete(n);
      } else if (op.kind === 'flush') {
        await db.flush();
      } else if (op.kind === 'addColumn') {
        // Rows still in the memtable would not take the new column's default.
        await db.flush();
        const name = `extra${extras.length}`;
        const dflt = op.withDefault ? 42 : null;
        await t.addColumn(op.withDefault ? { name, type: 'int32', default: dflt } : { name, type: 'int32' });
        extras.push({ name, dflt });
        for (const row of model.values()) row[name] = dflt;
      }
    }
    const view = await viewOf(t);
    const tiny: TableView = { ...view, files: new FileCache(view.store, { cacheBytes: TINY_CACHE }) };
    const order = Array.from({ length: UNIVERSE }, (_, n) => n).sort(() => 0.5 - Math.random());
    for (const n of order) {
      const key = keyOfN(keyType, n);
      const want = model.get(n) ?? null;
      const got = await t.get(key);
      assert.deepEqual(canon(got), canon(want), `get(${n}) through the database`);
      const viaTiny = await getByKey(tiny, { k: key });
      assert.deepEqual(canon(viaTiny), canon(want), `get(${n}) with a ${TINY_CACHE}-byte page cache`);
      assert.ok(tiny.files.pages.bytes <= TINY_CACHE, `page cache holds ${tiny.files.pages.bytes} bytes`);
    }
    // A narrower projection, system columns included.
    for (const n of order.slice(0, 20)) {
      const got = await t.get(keyOfN(keyType, n), { columns: ['_id', 'pad', 'k'] });
      const want = model.get(n);
      assert.equal(got === null, want === undefined, `get(${n}, columns) presence`);
      if (got && want) {
        assert.equal(typeof got._id, 'bigint');
        assert.deepEqual(canon({ pad: got.pad, k: got.k }), canon({ pad: want.pad, k: want.k }));
      }
    }
    const scanned: Row[] = [];
    for await (const b of scanView(tiny)) scanned.push(...recordBatchToRows(b));
    const wantRows = [...model.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => canon(r));
    const byKey = new Map(scanned.map((r) => [JSON.stringify(canon(r.k)), canon(r)]));
    assert.equal(scanned.length, model.size, 'scan row count');
    assert.deepEqual(
      [...model.entries()].sort((a, b) => a[0] - b[0]).map(([n]) => byKey.get(JSON.stringify(canon(keyOfN(keyType, n))))),
      wantRows,
      'scan rows',
    );
    // A filtered, limited scan through the database.
    const some = await t.scan({ where: { cat: 'beta' }, columns: ['k', 'cat'] }).toArray();
    assert.equal(some.length, [...model.values()].filter((r) => r.cat === 'beta').length);
  } finally {
    await db.close();
  }
}

describe('get and scan through the page reader equal a model', () => {
  for (const keyType of ['utf8', 'int64', 'int32'] as const) {
    it(`${keyType} keys: appends, upserts, deletes, flushes, added columns, nulls`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 7 }), async (ops) => {
          await runModel(keyType, [...ops, { kind: 'flush' }]);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

describe('page reader edge cases', () => {
  it('damage inside a data page is CORRUPT for get and scan', async () => {
    const store = new MemoryStore();
    const db = await open(store, { autoCompact: false });
    const t = await db.createTable('t', { k: { type: 'int64', nullable: false }, v: 'utf8' }, { primaryKey: 'k' });
    await t.append(Array.from({ length: 2000 }, (_, i) => ({ k: BigInt(i), v: `value ${i} `.repeat(5) })));
    const [file] = await t.dataFiles();
    await db.close();
    const { bytes } = await store.get(file!.key);
    const bad = new Uint8Array(bytes);
    // A byte inside the first data page of column v.
    const meta = parquetMetadata(bad.buffer.slice(0)).row_groups[0]!.columns.find((c) => c.meta_data?.path_in_schema[0] === 'v')!.meta_data!;
    const at = Number(meta.data_page_offset) + 40;
    bad[at] = bad[at]! ^ 0x40;
    await store.put(file!.key, bad);
    const ro = await open(store, { readOnly: true });
    const rt = await ro.table('t');
    const isCorrupt = (e: unknown): boolean => e instanceof FloeError && e.code === 'CORRUPT' && e.message.includes(file!.key);
    // Whichever rows the damaged page holds, some lookup decodes it.
    let corrupt = 0;
    for (let i = 0; i < 2000; i += 10) {
      try {
        await rt.get(BigInt(i));
      } catch (e) {
        assert.ok(isCorrupt(e), String(e));
        corrupt++;
      }
    }
    assert.ok(corrupt > 0, 'some lookup hit the damaged bytes');
    await assert.rejects(rt.scan().toArray(), isCorrupt);
    await ro.close();
  });

  it('composite keys take the general path and read the same rows', async () => {
    const db = await open(new MemoryStore(), { autoCompact: false, rowGroupRows: 64 });
    const t = await db.createTable('t', { a: { type: 'utf8', nullable: false }, b: { type: 'int32', nullable: false }, v: 'float64' }, { primaryKey: ['a', 'b'] });
    const rows = Array.from({ length: 500 }, (_, i) => ({ a: `g${i % 7}`, b: i, v: i / 3 }));
    await t.append(rows);
    await t.delete([{ a: 'g3', b: 3 }]);
    await db.flush();
    for (const r of rows) {
      const got = await t.get({ a: r.a, b: r.b });
      if (r.b === 3) assert.equal(got, null);
      else assert.deepEqual(got, r);
    }
    assert.equal(await t.get({ a: 'g0', b: 1 }), null);
    await db.close();
  });
});
