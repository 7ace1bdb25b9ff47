/**
 * The bulk write path (src/table/write.ts): column statistics against an
 * independent oracle; appends streamed in several chunks (duplicate keys
 * within and across chunks, every input form) equal an in-memory model;
 * files of a large append read the same through DuckDB; a bad row or a
 * failed put in a later chunk publishes nothing and leaves no write running.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import fc from 'fast-check';
import * as arrow from 'apache-arrow';
import { open } from '../../src/db/database.js';
import { isFloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import type { ColumnType, TableSchema } from '../../src/format/schema.js';
import { normalizeSchema } from '../../src/format/schema.js';
import { decodeValue } from '../../src/format/values.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { columnStats, columnStatsOf } from '../../src/table/write.js';
import { normalized, rowsArb, schemaArb } from '../format/schema-arbitraries.js';

const RUNS = Number(process.env.FLOE_TORTURE_ROUNDS ?? 40);

/** Code-point order of strings, computed the slow and obvious way. */
function codePoints(s: string): number[] {
  return [...s].map((c) => c.codePointAt(0)!);
}
function cmpPoints(a: string, b: string): number {
  const x = codePoints(a);
  const y = codePoints(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** Oracle: sort the non-null, non-NaN values and take the ends. */
function oracle(type: ColumnType, values: unknown[]): { min?: unknown; max?: unknown; nullCount: number } {
  const present = values.filter((v) => v !== null && v !== undefined && !(typeof v === 'number' && Number.isNaN(v)));
  const nullCount = values.filter((v) => v === null || v === undefined).length;
  const key = (v: unknown): number | bigint => (v instanceof Date ? v.getTime() : typeof v === 'boolean' ? Number(v) : (v as number | bigint));
  const sorted = [...present].sort((a, b) => {
    if (type === 'utf8') return cmpPoints(a as string, b as string);
    const x = key(a);
    const y = key(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
  if (sorted.length === 0) return { nullCount };
  return { min: sorted[0], max: sorted[sorted.length - 1], nullCount };
}

const statValue = (type: ColumnType): fc.Arbitrary<unknown> => {
  switch (type) {
    case 'int32':
      return fc.integer({ min: -5, max: 5 });
    case 'int64':
      return fc.bigInt({ min: -5n, max: 5n });
    case 'float64':
      return fc.oneof(fc.double(), fc.constantFrom(-0, 0, Number.NaN, Infinity, -Infinity));
    case 'bool':
      return fc.boolean();
    case 'timestamp':
      return fc.integer({ min: -5000, max: 5000 }).map((ms) => new Date(ms));
    default:
      return fc.oneof(
        fc.constantFrom('', 'a', 'ab', '\uE000', '\uFFFF', '\u{10000}', '\u{1F600}', 'é', 'z'),
        fc.string({ unit: fc.constantFrom('a', '\uE000', '\u{10000}', 'é', '\u0000'), maxLength: 4 }),
      );
  }
};

void describe('column statistics', () => {
  for (const type of ['int32', 'int64', 'float64', 'bool', 'utf8', 'timestamp'] as const) {
    void it(`${type}: min/max/null count equal a sort-based oracle (code-point order for strings)`, () => {
      const schema = normalizeSchema({ c: type });
      fc.assert(
        fc.property(fc.array(fc.option(statValue(type), { nil: null, freq: 4 }), { maxLength: 40 }), (values) => {
          const got = columnStatsOf(schema, [values]).c!;
          const want = oracle(type, values);
          assert.equal(got.nullCount, want.nullCount);
          const dec = (v: unknown): unknown => (v === undefined ? undefined : decodeValue(v));
          const same = (a: unknown, b: unknown): boolean =>
            a instanceof Date && b instanceof Date ? a.getTime() === b.getTime() : Object.is(a, b) || (a === 0 && b === 0);
          assert.ok(same(dec(got.min), want.min), `min ${String(dec(got.min))} vs ${String(want.min)}`);
          assert.ok(same(dec(got.max), want.max), `max ${String(dec(got.max))} vs ${String(want.max)}`);
          assert.deepEqual(columnStats(schema, values.map((c) => ({ c }))), columnStatsOf(schema, [values]));
        }),
        { numRuns: RUNS * 5 },
      );
    });
  }
});

void describe('string statistics by code unit', () => {
  void it('plain < is used only where it agrees with code points (no surrogates)', () => {
    const schema = normalizeSchema({ c: 'utf8' });
    fc.assert(
      fc.property(fc.array(fc.option(fc.string({ unit: fc.constantFrom('a', 'b', '\uE000', '\uFFFF', 'é', '\u0000'), maxLength: 4 }), { nil: null }), { maxLength: 30 }), (values) => {
        assert.deepEqual(columnStatsOf(schema, [values], [true]), columnStatsOf(schema, [values], [false]));
      }),
      { numRuns: RUNS * 5 },
    );
  });

  void it('an append whose strings hold surrogate pairs records code-point bounds', async () => {
    const db = await open(new MemoryStore());
    const t = await db.createTable('t', { k: { type: 'int64', nullable: false }, s: 'utf8', d: { type: 'utf8', default: '\u{10001}' } }, { primaryKey: 'k' });
    // In UTF-16 code units U+E000 sorts after U+10000 (D800 DC00); by code point (Parquet's order) it is before.
    await t.append([{ k: 1n, s: '\uE000', d: '\uE000' }, { k: 2n, s: '\u{10000}', d: '\uE001' }, { k: 3n, s: 'a', d: 'a' }]);
    await t.append([{ k: 4n, s: 'b', d: '\uE002' }, { k: 5n, s: 'c' }]);
    const view = await db._internals.view('t', false);
    const [first, second] = view.manifest.files;
    assert.deepEqual(first!.stats.s, { min: 'a', max: '\u{10000}', nullCount: 0 });
    assert.deepEqual(first!.stats.d, { min: 'a', max: '\uE001', nullCount: 0 });
    // The default (a surrogate pair) fills row 5: code-point order again.
    assert.deepEqual(second!.stats.d, { min: '\uE002', max: '\u{10001}', nullCount: 0 });
    await db.close();
  });
});

type Input = 'array' | 'generator' | 'async' | 'arrow';

function asInput(rows: Row[], form: Input): Parameters<import('../../src/table/table.js').Table['append']>[0] {
  switch (form) {
    case 'array':
      return rows;
    case 'generator':
      return (function* () {
        yield* rows;
      })();
    case 'async':
      return (async function* () {
        for (const r of rows) yield await Promise.resolve(r);
      })();
    case 'arrow': {
      const k = arrow.vectorFromArray(rows.map((r) => r.k as bigint), new arrow.Int64());
      const v = arrow.vectorFromArray(rows.map((r) => (r.v as string | null) ?? null), new arrow.Utf8());
      return new arrow.Table({ k, v });
    }
  }
}

const sortRows = (rows: Row[]): Row[] => [...rows].sort((a, b) => (a.k as bigint) < (b.k as bigint) ? -1 : (a.k as bigint) > (b.k as bigint) ? 1 : 0);

void describe('append in chunks', () => {
  void it('keyed: last row of each key wins within and across chunks, for every input form (model)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 30n }), fc.option(fc.constantFrom('', 'x', 'é', '日本', '\u{1F600}', 'long '.repeat(20)), { nil: null })), { maxLength: 80 }),
        fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 30n }), fc.constantFrom('old', 'older')), { maxLength: 20 }),
        fc.integer({ min: 1, max: 25 }),
        fc.constantFrom<Input>('array', 'generator', 'async', 'arrow'),
        async (pairs, existing, rowsPerFile, form) => {
          const db = await open(new MemoryStore());
          const t = await db.createTable('t', { k: { type: 'int64', nullable: false }, v: 'utf8' }, { primaryKey: 'k' });
          const model = new Map<bigint, Row>();
          if (existing.length > 0) {
            await t.append(existing.map(([k, v]) => ({ k, v })));
            for (const [k, v] of existing) model.set(k, { k, v });
          }
          const rows = pairs.map(([k, v]) => ({ k, v }));
          const before = (await t.stats()).version;
          const res = await t.append(asInput(rows, form), { rowsPerFile });
          for (const r of rows) model.set(r.k, r);
          // rows written: the distinct keys of each chunk of rowsPerFile input rows
          let written = 0;
          for (let i = 0; i < rows.length; i += rowsPerFile) written += new Set(rows.slice(i, i + rowsPerFile).map((r) => r.k)).size;
          assert.equal(res.rows, written);
          const got = await t.scan({ columns: ['k', 'v'] }).toArray();
          assert.deepStrictEqual(sortRows(got), sortRows([...model.values()]));
          const st = await t.stats();
          assert.equal(st.rows, model.size);
          if (rows.length > 0) assert.equal(st.version, before + 1, 'one append = one version');
          for (const r of sortRows([...model.values()]).slice(0, 3)) assert.deepStrictEqual(await t.get(r.k), r);
          await db.close();
        },
      ),
      { numRuns: RUNS },
    );
  });

  void it('keyless: every row lands once, in input order within each file', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 5n }), fc.option(fc.string({ maxLength: 5 }), { nil: null })), { maxLength: 60 }),
        fc.integer({ min: 1, max: 20 }),
        fc.constantFrom<Input>('array', 'generator', 'async', 'arrow'),
        async (pairs, rowsPerFile, form) => {
          const db = await open(new MemoryStore());
          const t = await db.createTable('t', { k: { type: 'int64', nullable: false }, v: 'utf8' });
          const rows = pairs.map(([k, v]) => ({ k, v }));
          const res = await t.append(asInput(rows, form), { rowsPerFile });
          assert.equal(res.rows, rows.length);
          const got = await t.scan({ columns: ['_id', 'k', 'v'] }).toArray();
          got.sort((a, b) => ((a._id as bigint) < (b._id as bigint) ? -1 : 1));
          assert.deepStrictEqual(
            got.map(({ k, v }) => ({ k, v })),
            rows,
          );
          const files = await t.dataFiles();
          assert.equal(files.length, Math.ceil(rows.length / rowsPerFile));
          await db.close();
        },
      ),
      { numRuns: RUNS },
    );
  });

  void it('a bad row in a later chunk names its input position, and publishes nothing', async () => {
    const db = await open(new MemoryStore());
    const t = await db.createTable('t', { k: { type: 'int64', nullable: false }, v: 'utf8' }, { primaryKey: 'k' });
    await t.append([{ k: 1n, v: 'keep' }]);
    const before = await t.stats();
    function* rows(): Generator<Row> {
      for (let i = 0; i < 25_000; i++) yield i === 23_456 ? { k: BigInt(i), v: 42 } : { k: BigInt(i), v: `v${i}` };
    }
    await assert.rejects(t.append(rows(), { rowsPerFile: 5000 }), (err: unknown) => {
      assert.ok(isFloeError(err, 'SCHEMA_MISMATCH'));
      // (table.ts's offsetRowError repeats the code prefix: "SCHEMA_MISMATCH: SCHEMA_MISMATCH: row ...")
      assert.match(err.message, /: row 3456: column "v": expected utf8 \(a string\), got number 42 \(row indexes are relative to input row 20000\)$/);
      return true;
    });
    const afterStats = await t.stats();
    assert.equal(afterStats.version, before.version);
    assert.deepStrictEqual(await t.scan({ columns: ['k', 'v'] }).toArray(), [{ k: 1n, v: 'keep' }]);
    await db.close();
  });

  void it('a failed data-file put in a later chunk fails the append, publishes nothing, and no write is left running', async () => {
    const store = new MemoryStore();
    const fp = new Failpoints().arm('append.data.put.before', { type: 'error', code: 'STORAGE_UNAVAILABLE', message: 'injected' }, { skip: 2, times: 1 });
    const db = await open(new FaultyStore(store, fp), { failpoints: fp });
    const t = await db.createTable('t', { k: { type: 'int64', nullable: false }, v: 'utf8' }, { primaryKey: 'k' });
    const rows = Array.from({ length: 30_000 }, (_, i) => ({ k: BigInt(i), v: `v${i % 97}` }));
    await assert.rejects(t.append(rows, { rowsPerFile: 5000 }), (err: unknown) => isFloeError(err, 'INJECTED_FAULT', 'STORAGE_UNAVAILABLE'));
    assert.equal((await t.stats()).rows, 0);
    const puts = fp.count('append.data.put.before');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fp.count('append.data.put.before'), puts, 'no data-file write starts after append rejected');
    // The same append succeeds afterwards.
    await t.append(rows, { rowsPerFile: 5000 });
    assert.equal((await t.stats()).rows, 30_000);
    await db.close();
  });
});

void describe('append files through DuckDB', () => {
  let dir = '';
  let duck: DuckDBInstance;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'floe-write-'));
    duck = await DuckDBInstance.create(':memory:');
  });
  after(async () => {
    duck.closeSync();
    await rm(dir, { recursive: true, force: true });
  });

  /** One canonical form for values from floe and from DuckDB. */
  const canon = (v: unknown): unknown => {
    if (v === null || v === undefined) return null;
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : v === 0 ? 0 : v;
    if (v instanceof Date) return { ms: v.getTime() };
    if (v instanceof Float32Array) return Array.from(v, canon);
    if (v instanceof Uint8Array) return `0x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
    if (Array.isArray(v)) return v.map(canon);
    return v;
  };

  void it('random schemas and rows: an append in several files reads back the same through scan and DuckDB', async () => {
    const con = await duck.connect();
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          schemaArb.chain((schema: TableSchema) => rowsArb(schema, { maxRows: 40 }).map((rows) => ({ schema, rows }))),
          fc.integer({ min: 1, max: 15 }),
          async ({ schema, rows }, rowsPerFile) => {
            const at = join(dir, `prop-${run++}`);
            const db = await open(at);
            try {
              const input = Object.fromEntries(schema.columns.map((c) => [c.name, { type: c.type, nullable: c.nullable }]));
              const t = await db.createTable('t', input);
              await t.append(rows, { rowsPerFile });
              const want = rows.map((r) => schema.columns.map((c) => canon(normalized(c.type, r[c.name]))));
              const scanned = await t.scan({ columns: ['_id', ...schema.columns.map((c) => c.name)] }).toArray();
              scanned.sort((a, b) => ((a._id as bigint) < (b._id as bigint) ? -1 : 1));
              assert.deepStrictEqual(scanned.map((r) => schema.columns.map((c) => canon(r[c.name]))), want);
              const files = await t.dataFiles();
              assert.equal(files.length, Math.ceil(rows.length / rowsPerFile));
              if (files.length === 0) return;
              const cols = schema.columns.map((c) => `"${c.name.replaceAll('"', '""')}"`).join(', ');
              const got = (await con.runAndReadAll(`SELECT ${cols} FROM read_parquet([${files.map((f) => `'${f.location}'`).join(', ')}]) ORDER BY _id`)).getRowObjectsJS();
              assert.deepStrictEqual(got.map((r) => schema.columns.map((c) => canon(r[c.name]))), want);
            } finally {
              await db.close();
              await rm(at, { recursive: true, force: true });
            }
          },
        ),
        { numRuns: Math.max(10, Math.round(RUNS / 2)) },
      );
    } finally {
      con.closeSync();
    }
  });

  void it('a large keyed append (files encoded on the worker thread) reads the same through DuckDB and scan', async () => {
    const db = await open(dir);
    const schema = {
      k: { type: 'utf8', nullable: false },
      n: 'int64',
      f: 'float64',
      b: 'bool',
      ts: 'timestamp',
      tags: { list: 'utf8' },
      vec: { vector: 3 },
    } as const;
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    const words = ['', 'alpha', 'é', '日本語', '\u{1F600}', 'x'.repeat(200)];
    const rows: Row[] = [];
    for (let i = 0; i < 24_000; i++) {
      rows.push({
        k: `key-${(i * 7919) % 24_000}-${words[i % words.length]}`,
        n: i % 11 === 0 ? null : BigInt(i * 3 - 5000),
        f: i % 13 === 0 ? null : i / 7,
        b: i % 5 === 0 ? null : i % 2 === 0,
        ts: new Date(1_700_000_000_000 + i * 1000),
        tags: i % 9 === 0 ? null : [words[i % 6]!, words[(i + 1) % 6]!],
        vec: Float32Array.of(i, -i, 0.5),
      });
    }
    await t.append(rows, { rowsPerFile: 6000 });
    const files = await t.dataFiles();
    assert.equal(files.length, 4);
    assert.ok(files.every((f) => f.rows === 6000 && f.deletedRows === 0));
    const con = await duck.connect();
    try {
      const list = files.map((f) => `'${f.location}'`).join(', ');
      const got = (await con.runAndReadAll(`SELECT k, n, f, b, epoch_ms(ts) AS ts, tags, vec FROM read_parquet([${list}]) ORDER BY k`)).getRowObjectsJS();
      const want = (await t.scan({ columns: ['k', 'n', 'f', 'b', 'ts', 'tags', 'vec'] }).toArray()).sort((a, b) => Buffer.compare(Buffer.from(a.k as string), Buffer.from(b.k as string)));
      assert.equal(got.length, 24_000);
      assert.equal(want.length, 24_000);
      for (let i = 0; i < want.length; i += 997) {
        const w = want[i]!;
        const g = got[i]!;
        assert.equal(g.k, w.k);
        assert.equal(g.n, w.n);
        assert.equal(g.f, w.f);
        assert.equal(g.b, w.b);
        assert.equal(Number(g.ts), (w.ts as Date).getTime());
        assert.deepEqual(g.tags, w.tags);
        assert.deepEqual(g.vec, Array.from(w.vec as Float32Array));
      }
      const keys = got.map((r) => r.k as string);
      assert.equal(new Set(keys).size, keys.length);
      // Dictionary pages only where values repeat: never for _id or the distinct key.
      const meta = (await con.runAndReadAll(`SELECT path_in_schema AS p, dictionary_page_offset AS d FROM parquet_metadata('${files[0]!.location}')`)).getRowObjectsJS();
      const dict = (p: string): boolean => meta.filter((m) => m.p === p).every((m) => m.d !== null);
      assert.equal(dict('_id'), false, '_id');
      assert.equal(dict('k'), false, 'k');
      assert.equal(dict('_seq'), true, '_seq');
    } finally {
      con.closeSync();
    }
    await db.close();
  });
});
