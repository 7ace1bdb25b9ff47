// Interop with DuckDB, a reader floe does not control: DuckDB reads data files
// written by encodeParquet (every value and type, row groups, statistics),
// and ParquetFile reads a file DuckDB wrote (no floe checksum trailer).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import type { DuckDBConnection } from '@duckdb/node-api';
import { MemoryStore } from '../../src/store/memory.js';
import { ParquetFile, encodeParquet } from '../../src/format/parquet.js';
import { ALL_TYPES_SCHEMA, allTypesValues, columnValues, plain, tableOf } from './fixtures.js';

let dir = '';
let instance: DuckDBInstance;
let db: DuckDBConnection;

async function rows(sql: string): Promise<Array<Record<string, unknown>>> {
  return (await db.runAndReadAll(sql)).getRowObjectsJS();
}

/** Deep plain form: bytes as hex, nested arrays recursively. */
function deep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(deep);
  return plain(v);
}

void describe('Parquet interop with DuckDB', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'floe-parquet-'));
    instance = await DuckDBInstance.create(':memory:');
    db = await instance.connect();
  });
  after(async () => {
    db.closeSync();
    instance.closeSync();
    await rm(dir, { recursive: true, force: true });
  });

  void it('DuckDB reads every value and type floe wrote, with row groups and statistics', async () => {
    const n = 700;
    const values = allTypesValues(n, 21);
    const table = tableOf(ALL_TYPES_SCHEMA, values);
    for (const compression of ['zstd', 'snappy'] as const) {
      const path = join(dir, `floe-${compression}.parquet`);
      await writeFile(path, encodeParquet(table, { rowGroupRows: 250, compression, keyValueMetadata: { 'floe.table': 't' } }));
      const src = `read_parquet('${path}')`;

      const types = await rows(`DESCRIBE SELECT * FROM ${src}`);
      assert.deepEqual(
        Object.fromEntries(types.map((r) => [r.column_name, r.column_type])),
        {
          _id: 'BIGINT',
          _seq: 'BIGINT',
          i32: 'INTEGER',
          i64: 'BIGINT',
          f32: 'FLOAT',
          f64: 'DOUBLE',
          b: 'BOOLEAN',
          s: 'VARCHAR',
          bin: 'BLOB',
          ts: 'TIMESTAMP WITH TIME ZONE',
          d: 'DATE',
          l: 'INTEGER[]',
          ls: 'VARCHAR[]',
          ll: 'BIGINT[][]',
          // DuckDB has no fixed-size list in Parquet: vectors read as lists
          v: 'FLOAT[]',
          vn: 'DOUBLE[]',
        },
      );

      const got = await rows(
        `SELECT _id, _seq, i32, i64, f32, f64, b, s, bin, epoch_us(ts) AS ts, (d - DATE '1970-01-01')::INTEGER AS d, l, ls, ll, v, vn
         FROM ${src} ORDER BY _id`,
      );
      assert.equal(got.length, n);
      for (const name of Object.keys(values)) {
        const expected = (values[name] ?? []).map(deep);
        const actual = got.map((r) => deep(r[name]));
        assert.deepStrictEqual(actual, expected, `${compression}: column ${name}`);
      }

      const groups = await rows(
        `SELECT row_group_id, row_group_num_rows AS n, stats_min, stats_max, stats_null_count
         FROM parquet_metadata('${path}') WHERE path_in_schema = 'i32' ORDER BY row_group_id`,
      );
      assert.deepEqual(
        groups.map((g) => Number(g.n)),
        [250, 250, 200],
      );
      const pf = await ParquetFile.open(await storeWith(path), 'f.parquet');
      for (const [i, g] of groups.entries()) {
        const ours = pf.rowGroups[i]?.columns.i32;
        assert.equal(String(ours?.min), g.stats_min);
        assert.equal(String(ours?.max), g.stats_max);
        assert.equal(ours?.nullCount, Number(g.stats_null_count));
      }
      const kv = await rows(`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata('${path}')`);
      assert.ok(kv.some((r) => r.k === 'floe.table' && r.v === 't'));
    }
  });

  void it('ParquetFile reads a file DuckDB wrote (no ARROW:schema, no checksum trailer)', async () => {
    const path = join(dir, 'duck.parquet');
    await db.run(`
      COPY (
        SELECT i::BIGINT AS id,
               (i * 3)::INTEGER AS small,
               CASE WHEN i % 7 = 0 THEN NULL ELSE 'row ' || i || ' ü' END AS name,
               i / 4.0 AS ratio,
               i % 2 = 0 AS even,
               TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i * 1001) AS happened,
               DATE '2000-01-01' + i::INTEGER AS day,
               CASE WHEN i % 5 = 0 THEN NULL ELSE [i, i + 1] END AS pair
        FROM range(0, 3000) t(i)
      ) TO '${path}' (FORMAT parquet, ROW_GROUP_SIZE 1000, COMPRESSION zstd)`);
    const pf = await ParquetFile.open(await storeWith(path), 'f.parquet');
    assert.equal(pf.checksummed, false);
    assert.equal(pf.numRows, 3000);
    assert.deepEqual(
      pf.schema.fields.map((f) => `${f.name}:${String(f.type)}`),
      ['id:Int64', 'small:Int32', 'name:Utf8', 'ratio:Float64', 'even:Bool', 'happened:Timestamp<MICROSECOND, UTC>', 'day:Date32<DAY>', 'pair:List<Int64>'],
    );
    const batch = await pf.readRows(0, 3000);
    const expected = await rows(
      `SELECT id, small, name, ratio, even, epoch_us(happened) AS happened, (day - DATE '1970-01-01')::INTEGER AS day, pair FROM read_parquet('${path}') ORDER BY id`,
    );
    const ts = batch.getChild('happened')?.data.flatMap((d) => [...(d.values as BigInt64Array)]) ?? [];
    const days = batch.getChild('day')?.data.flatMap((d) => [...(d.values as Int32Array)]) ?? [];
    for (const name of ['id', 'small', 'name', 'ratio', 'even', 'pair']) {
      assert.deepStrictEqual(columnValues(batch, name), expected.map((r) => deep(r[name])), name);
    }
    assert.deepStrictEqual(ts, expected.map((r) => r.happened));
    assert.deepStrictEqual(days, expected.map((r) => r.day));
    // DuckDB rounds row groups to its own vector size; the statistics still bound each group
    assert.ok(pf.rowGroups.length > 1);
    for (const g of pf.rowGroups) {
      assert.deepEqual(g.columns.id, { min: BigInt(g.firstRow), max: BigInt(g.firstRow + g.numRows - 1), nullCount: 0 });
    }
  });
});

async function storeWith(path: string): Promise<MemoryStore> {
  const store = new MemoryStore();
  await store.put('f.parquet', await readFile(path));
  return store;
}
