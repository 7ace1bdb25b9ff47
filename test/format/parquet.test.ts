// Data files: encodeParquet + ParquetFile over an ObjectStore. Round trips of
// every promised type, statistics, projection, request counts, and damage
// (not Parquet, truncated, flipped bits) surfacing as CORRUPT.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { isFloeError } from '../../src/errors.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';
import { INTEGRITY_KEY, ParquetFile, compareStat, encodeParquet, parquetFooterStats } from '../../src/format/parquet.js';
import type { ColumnStats } from '../../src/format/parquet.js';
import { ALL_TYPES_SCHEMA, allTypesTable, allTypesValues, columnValues, describeFields, plain, rng, tableOf } from './fixtures.js';

const KEY = 'tables/t1/data/f1.parquet';

async function stored(bytes: Uint8Array, key = KEY): Promise<MetricsStore> {
  const store = new MetricsStore(new MemoryStore());
  await store.put(key, bytes);
  store.reset();
  return store;
}

async function rejectsWith(p: Promise<unknown>, code: string, key?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isFloeError(err), `expected FloeError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (key !== undefined) {
      assert.equal(err.key, key);
      assert.ok(err.message.includes(key), err.message);
    }
    return true;
  });
}

/** Expected min/max/nullCount of one flat column over rows [start, end). */
function expectedStats(values: unknown[], type: arrow.DataType): ColumnStats {
  let min: unknown;
  let max: unknown;
  let nulls = 0;
  for (const v of values) {
    if (v === null) {
      nulls++;
      continue;
    }
    if (typeof v === 'number' && Number.isNaN(v)) continue;
    if (min === undefined || compareStat(v, min) < 0 || (v === 0 && Object.is(v, -0) && min === 0)) min = v;
    if (max === undefined || compareStat(v, max) > 0) max = v;
  }
  const out: ColumnStats = { nullCount: nulls };
  if (min !== undefined) {
    // Parquet writes -0 as the min and +0 as the max of a zero bound.
    out.min = arrow.DataType.isFloat(type) && min === 0 ? -0 : min;
    out.max = arrow.DataType.isFloat(type) && max === 0 ? 0 : max;
  }
  return out;
}

void describe('encodeParquet + ParquetFile', () => {
  void it('round-trips every column type, nulls, unicode, large binary, lists and vectors, across row groups', async () => {
    const n = 1000;
    const table = allTypesTable(n, 7, 300); // several input batches
    const bytes = encodeParquet(table, { rowGroupRows: 256, keyValueMetadata: { 'floe.table': 't1', empty: '' } });
    const store = await stored(bytes);
    const pf = await ParquetFile.open(store, KEY, { size: bytes.length });
    assert.equal(pf.numRows, n);
    assert.equal(pf.checksummed, true);
    assert.deepEqual(describeFields(pf.schema.fields), describeFields(ALL_TYPES_SCHEMA.fields));
    assert.equal(pf.keyValueMetadata['floe.table'], 't1');
    assert.equal(pf.keyValueMetadata.empty, '');
    assert.equal(pf.keyValueMetadata['ARROW:schema'], undefined);
    assert.deepEqual(
      pf.rowGroups.map((g) => [g.firstRow, g.numRows]),
      [
        [0, 256],
        [256, 256],
        [512, 256],
        [768, 232],
      ],
    );
    for (const [i, g] of pf.rowGroups.entries()) {
      const batch = await pf.readRowGroup(i);
      assert.equal(batch.numRows, g.numRows);
      assert.deepEqual(describeFields(batch.schema.fields), describeFields(ALL_TYPES_SCHEMA.fields));
      for (const f of ALL_TYPES_SCHEMA.fields) {
        assert.deepStrictEqual(columnValues(batch, f.name), columnValues(table, f.name, g.firstRow, g.firstRow + g.numRows), `column ${f.name} rg ${i}`);
      }
    }
  });

  void it('keeps exact microsecond timestamps, 64-bit extremes, -0, NaN and infinities', async () => {
    const schema = new arrow.Schema([
      new arrow.Field('ts', new arrow.Timestamp(arrow.TimeUnit.MICROSECOND, 'UTC'), true),
      new arrow.Field('i64', new arrow.Int64(), true),
      new arrow.Field('f64', new arrow.Float64(), true),
      new arrow.Field('f32', new arrow.Float32(), true),
    ]);
    const cols = {
      ts: [1700000000123456n, -1n, 0n, 253402300799999999n, null],
      i64: [9223372036854775807n, -9223372036854775808n, 0n, -1n, null],
      f64: [-0, NaN, Infinity, -Infinity, null],
      f32: [Math.fround(0.1), -0, NaN, 3.4028234663852886e38, null],
    };
    const pf = await ParquetFile.open(await stored(encodeParquet(tableOf(schema, cols))), KEY);
    const batch = await pf.readRowGroup(0);
    const ts = batch.getChild('ts')?.data[0]?.values as BigInt64Array;
    assert.deepEqual([...ts.subarray(0, 4)], cols.ts.slice(0, 4));
    assert.deepStrictEqual(columnValues(batch, 'i64'), cols.i64);
    assert.deepStrictEqual(columnValues(batch, 'f64'), cols.f64);
    assert.deepStrictEqual(columnValues(batch, 'f32'), cols.f32);
  });

  void it('round-trips a multi-megabyte binary value and an empty table', async () => {
    const big = Uint8Array.from({ length: 3_000_000 }, (_, i) => (i * 7919) & 0xff);
    const schema = new arrow.Schema([new arrow.Field('bin', new arrow.Binary(), true), new arrow.Field('s', new arrow.Utf8(), false)]);
    const pf = await ParquetFile.open(await stored(encodeParquet(tableOf(schema, { bin: [big, null, new Uint8Array(0)], s: ['', 'x', '∑'] }))), KEY);
    const batch = await pf.readRowGroup(0);
    assert.deepStrictEqual(columnValues(batch, 'bin'), [plain(big), null, '0x']);
    assert.deepStrictEqual(columnValues(batch, 's'), ['', 'x', '∑']);

    const empty = await ParquetFile.open(await stored(encodeParquet(new arrow.Table(ALL_TYPES_SCHEMA))), KEY);
    assert.equal(empty.numRows, 0);
    assert.equal(empty.rowGroups.length, 0);
    assert.deepEqual(describeFields(empty.schema.fields), describeFields(ALL_TYPES_SCHEMA.fields));
    assert.equal((await empty.readRows(0, 0)).numRows, 0);
  });

  void it('writes correct statistics per row group and per file', async () => {
    const n = 900;
    const values = allTypesValues(n, 3);
    const table = tableOf(ALL_TYPES_SCHEMA, values);
    const pf = await ParquetFile.open(await stored(encodeParquet(table, { rowGroupRows: 200 })), KEY);
    assert.equal(pf.rowGroups.length, 5);
    const flat = ['_id', '_seq', 'i32', 'i64', 'f32', 'f64', 'b', 'ts', 'd'];
    for (const g of pf.rowGroups) {
      for (const name of flat) {
        const field = ALL_TYPES_SCHEMA.fields.find((f) => f.name === name) as arrow.Field;
        const type = field.type as arrow.DataType;
        // the same JS representation as Vector.get(): ts/d in epoch ms
        const vals = columnValues(table, name, g.firstRow, g.firstRow + g.numRows);
        assert.deepStrictEqual(g.columns[name], expectedStats(vals, type), `stats of ${name} at row ${g.firstRow}`);
      }
      // strings: bounds (long values are stored truncated), exact null count
      const strs = (values.s ?? []).slice(g.firstRow, g.firstRow + g.numRows);
      const s = g.columns.s as ColumnStats;
      assert.equal(s.nullCount, strs.filter((v) => v === null).length);
      for (const v of strs) {
        if (v === null) continue;
        assert.ok(compareStat(s.min, v) <= 0 && compareStat(v, s.max) <= 0, `string ${JSON.stringify(v)} within bounds`);
      }
      // binary and nested columns carry no bounds
      assert.equal(g.columns.bin?.min, undefined);
      assert.deepEqual(g.columns.l, {});
      assert.deepEqual(g.columns.v, {});
    }
    const file = parquetFooterStats(pf, ['_id', 'i32', 'ts', 's', 'bin']);
    const ids = (values._id ?? []) as bigint[];
    assert.deepEqual(file._id, { min: ids[0], max: ids[n - 1], nullCount: 0 });
    assert.deepStrictEqual(file.i32, expectedStats(columnValues(table, 'i32'), new arrow.Int32()));
    assert.deepStrictEqual(file.ts, expectedStats(columnValues(table, 'ts'), new arrow.Timestamp(arrow.TimeUnit.MICROSECOND)));
    assert.equal(file.bin?.min, undefined);
    assert.equal(file.s?.nullCount, (values.s ?? []).filter((v) => v === null).length);
  });

  void it('reads only the requested columns, in the requested order, with few requests', async () => {
    const table = allTypesTable(2000, 5);
    const bytes = encodeParquet(table, { rowGroupRows: 500 });
    const store = await stored(bytes);
    const pf = await ParquetFile.open(store, KEY, { size: bytes.length });
    assert.equal(store.requests(), 1);
    store.reset();
    const batch = await pf.readRowGroup(2, ['i32', '_id']);
    assert.deepEqual(
      batch.schema.fields.map((f) => f.name),
      ['i32', '_id'],
    );
    assert.deepStrictEqual(columnValues(batch, '_id'), columnValues(table, '_id', 1000, 1500));
    assert.deepStrictEqual(columnValues(batch, 'i32'), columnValues(table, 'i32', 1000, 1500));
    // two small chunks: at most one request each, and far fewer bytes than the file
    assert.ok(store.requests('getRange') <= 2, `getRange requests: ${store.requests('getRange')}`);
    assert.equal(store.requests('head') + store.requests('get'), 0);
    assert.ok(store.snapshot().getRange.bytesRead < bytes.length / 10, `read ${store.snapshot().getRange.bytesRead} of ${bytes.length}`);

    await rejectsWith(pf.readRowGroup(1, []), 'INVALID_ARGUMENT', KEY);
    await rejectsWith(pf.readRowGroup(4), 'INVALID_ARGUMENT', KEY);
    await rejectsWith(pf.readRowGroup(0, ['nope']), 'INVALID_ARGUMENT', KEY);
  });

  void it('readRows returns any row range across row groups', async () => {
    const table = allTypesTable(1200, 9);
    const bytes = encodeParquet(table, { rowGroupRows: 300 });
    const store = await stored(bytes);
    const pf = await ParquetFile.open(store, KEY, { size: bytes.length });
    for (const [a, b] of [
      [0, 1],
      [299, 301],
      [517, 518],
      [250, 950],
      [1199, 1200],
      [0, 1200],
      [600, 600],
    ] as const) {
      const batch = await pf.readRows(a, b, ['_id', 's', 'll', 'v']);
      assert.equal(batch.numRows, b - a);
      for (const name of ['_id', 's', 'll', 'v']) assert.deepStrictEqual(columnValues(batch, name), columnValues(table, name, a, b), `${name} [${a},${b})`);
    }
    await rejectsWith(pf.readRows(5, 4), 'INVALID_ARGUMENT', KEY);
    await rejectsWith(pf.readRows(0, 1201), 'INVALID_ARGUMENT', KEY);
  });

  void it('a point lookup fetches one page per column, without a dictionary page for mostly-distinct columns', async () => {
    const n = 60_000;
    const schema = new arrow.Schema([
      new arrow.Field('_id', new arrow.Int64(), false),
      new arrow.Field('name', new arrow.Utf8(), false),
      new arrow.Field('kind', new arrow.Utf8(), false),
    ]);
    const r = rng(4);
    const word = (): string => Array.from({ length: 8 + Math.floor(r() * 40) }, () => String.fromCharCode(97 + Math.floor(r() * 26))).join('');
    const cols = {
      _id: Array.from({ length: n }, (_, i) => BigInt(i)),
      name: Array.from({ length: n }, (_, i) => `${word()}-${i}`),
      kind: Array.from({ length: n }, (_, i) => ['lib', 'bin', 'doc'][i % 3] as string),
    };
    const bytes = encodeParquet(tableOf(schema, cols));
    const store = await stored(bytes);
    const pf = await ParquetFile.open(store, KEY, { size: bytes.length });
    for (const row of [0, 31_337, n - 1]) {
      store.reset();
      const batch = await pf.readRows(row, row + 1, ['_id', 'name', 'kind']);
      assert.deepStrictEqual(columnValues(batch, 'name'), [cols.name[row]]);
      assert.deepStrictEqual(columnValues(batch, '_id'), [BigInt(row)]);
      assert.deepStrictEqual(columnValues(batch, 'kind'), [cols.kind[row]]);
      // at most one range per column: the pages holding the row, no dictionary page before them
      assert.ok(store.requests('getRange') <= 3, `getRange requests: ${store.requests('getRange')}`);
      store.reset();
      await pf.readRows(row, row + 1, ['_id']);
      // one ~1 MiB (uncompressed) page of _id; a dictionary of 60,000 distinct int64s alone would be 480 KB
      assert.ok(store.snapshot().getRange.bytesRead < 64 * 1024, `read ${store.snapshot().getRange.bytesRead} bytes of _id`);
    }
  });

  void it('opens with one range request when the size is known, HEAD + range otherwise, two when the footer is bigger', async () => {
    const bytes = encodeParquet(allTypesTable(300, 2), { rowGroupRows: 100 });
    const store = await stored(bytes);
    await ParquetFile.open(store, KEY, { size: bytes.length });
    assert.deepEqual([store.requests('getRange'), store.requests()], [1, 1]);
    store.reset();
    await ParquetFile.open(store, KEY);
    assert.deepEqual([store.requests('head'), store.requests('getRange'), store.requests()], [1, 1, 2]);
    store.reset();
    const small = await ParquetFile.open(store, KEY, { size: bytes.length, footerHint: 64 });
    assert.deepEqual([store.requests('getRange'), store.requests()], [2, 2]);
    assert.equal(small.numRows, 300);

    // many columns and row groups: the footer alone exceeds the default 64 KiB hint
    const wide = new arrow.Schema(Array.from({ length: 60 }, (_, i) => new arrow.Field(`c${i}`, new arrow.Int64(), true)));
    const cols = Object.fromEntries(wide.fields.map((f) => [f.name, Array.from({ length: 2000 }, (_, r) => BigInt(r))]));
    const wideBytes = encodeParquet(tableOf(wide, cols), { rowGroupRows: 100 });
    const wideStore = await stored(wideBytes);
    const wf = await ParquetFile.open(wideStore, KEY, { size: wideBytes.length });
    assert.equal(wf.rowGroups.length, 20);
    assert.ok(wideBytes.length > 64 * 1024);
    assert.equal(wideStore.requests('getRange'), 2);
    assert.equal(wideStore.requests(), 2);
  });

  void it('NOT_FOUND for a missing object, with or without a known size', async () => {
    const store = await stored(encodeParquet(allTypesTable(10)));
    await rejectsWith(ParquetFile.open(store, 'missing/x.parquet'), 'NOT_FOUND', 'missing/x.parquet');
    await rejectsWith(ParquetFile.open(store, 'missing/x.parquet', { size: 5000 }), 'NOT_FOUND', 'missing/x.parquet');
  });

  void it('a failing store surfaces its own error, not CORRUPT', async () => {
    const bytes = encodeParquet(allTypesTable(200), { rowGroupRows: 50 });
    const fp = new Failpoints();
    const store = new FaultyStore(new MemoryStore(), fp);
    await store.put(KEY, bytes);
    const pf = await ParquetFile.open(store, KEY, { size: bytes.length, footerHint: 1024 });
    fp.arm('store.getRange.before', { type: 'error', code: 'STORAGE_UNAVAILABLE' });
    await rejectsWith(pf.readRowGroup(0), 'STORAGE_UNAVAILABLE');
    fp.disarm();
    assert.equal((await pf.readRowGroup(0)).numRows, 50);
  });

  void it('CORRUPT, naming the key, for objects that are not Parquet or are truncated', async () => {
    const bytes = encodeParquet(allTypesTable(400, 4), { rowGroupRows: 100 });
    const notParquet = await stored(new TextEncoder().encode('{"this": "is json, not parquet"}'));
    await rejectsWith(ParquetFile.open(notParquet, KEY), 'CORRUPT', KEY);
    await rejectsWith(ParquetFile.open(await stored(new Uint8Array([0x50, 0x41, 0x52, 0x31])), KEY), 'CORRUPT', KEY);
    // every truncation of the tail region, and a spread of shorter prefixes
    const cuts = new Set<number>();
    for (let k = 1; k <= 4096 && k < bytes.length; k++) cuts.add(bytes.length - k);
    for (let len = 0; len < bytes.length; len += 997) cuts.add(len);
    for (const len of cuts) {
      const store = await stored(bytes.subarray(0, len));
      await assert.rejects(
        (async () => {
          const pf = await ParquetFile.open(store, KEY);
          for (let i = 0; i < pf.rowGroups.length; i++) await pf.readRowGroup(i);
        })(),
        (err: unknown) => isFloeError(err, 'CORRUPT') && err.key === KEY,
        `prefix of ${len} bytes`,
      );
    }
    // the object is shorter than the size the caller (a manifest) knows
    await rejectsWith(ParquetFile.open(await stored(bytes.subarray(0, bytes.length - 10)), KEY, { size: bytes.length }), 'CORRUPT', KEY);
  });

  void it('single-bit flips in the footer and checksum trailer are CORRUPT on open (every bit with FLOE_TORTURE_ROUNDS>1)', async () => {
    const bytes = encodeParquet(allTypesTable(120, 8), { rowGroupRows: 40 });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const footerStart = bytes.length - 8 - view.getUint32(bytes.length - 8, true);
    const count = view.getUint32(footerStart - 20, true);
    const trailerStart = footerStart - 20 - count * 8;
    const copy = bytes.slice();
    const store = new MemoryStore();
    let checked = 0;
    const everyBit = Number(process.env.FLOE_TORTURE_ROUNDS ?? 1) > 1;
    for (let at = trailerStart; at < bytes.length; at++) {
      for (let bit = 0; bit < 8; bit++) {
        if (!everyBit && bit !== at % 8 && bit !== (at + 3) % 8) continue;
        copy[at] = (bytes[at] as number) ^ (1 << bit);
        await store.put(KEY, copy);
        await assert.rejects(ParquetFile.open(store, KEY, { size: copy.length }), (err: unknown) => isFloeError(err, 'CORRUPT') && err.key === KEY, `bit ${bit} of byte ${at}`);
        checked++;
      }
      copy[at] = bytes[at] as number;
    }
    assert.ok(checked > 2 * 1000, `checked ${checked} flips`);
  });

  void it('flipped bits in the data region are CORRUPT on read, never wrong values', async () => {
    const values = allTypesValues(150, 11);
    values.bin = (values.bin ?? []).map((v) => (v === null ? null : (v as Uint8Array).subarray(0, 16)));
    const table = tableOf(ALL_TYPES_SCHEMA, values);
    const bytes = encodeParquet(table, { rowGroupRows: 50, compression: 'none' });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const footerStart = bytes.length - 8 - view.getUint32(bytes.length - 8, true);
    const trailerStart = footerStart - 20 - view.getUint32(footerStart - 20, true) * 8;
    // quick default: ~400 flips spread over the region; FLOE_TORTURE_ROUNDS>1 flips every byte
    const stride = Number(process.env.FLOE_TORTURE_ROUNDS ?? 1) > 1 ? 1 : Math.max(1, Math.floor(trailerStart / 400));
    const expected = ALL_TYPES_SCHEMA.fields.map((f) => columnValues(table, f.name));
    const store = new MemoryStore();
    const copy = bytes.slice();
    let corrupt = 0;
    let intact = 0;
    // bytes 0-3 are the leading magic, which no reader looks at
    for (let at = 4; at < trailerStart; at += stride) {
      copy[at] = (bytes[at] as number) ^ (1 << (at % 8));
      await store.put(KEY, copy);
      try {
        // size known and a tiny hint: the data region is read by range, as on S3
        const pf = await ParquetFile.open(store, KEY, { size: copy.length, footerHint: 16 });
        const whole = await pf.readRows(0, pf.numRows);
        ALL_TYPES_SCHEMA.fields.forEach((f, i) => assert.deepStrictEqual(columnValues(whole, f.name), expected[i], `flip at ${at}`));
        for (let i = 0; i < pf.rowGroups.length; i++) await pf.readRowGroup(i);
        intact++; // the flip hit bytes no read needs (the page statistics index)
      } catch (err) {
        assert.ok(isFloeError(err, 'CORRUPT') && err.key === KEY, `flip at ${at}: ${String(err)}`);
        corrupt++;
      }
      copy[at] = bytes[at] as number;
    }
    assert.ok(corrupt > 0.8 * (corrupt + intact), `corrupt ${corrupt}, unnoticed ${intact}`);
  });

  void it('rejects tables it cannot store faithfully, before writing anything', () => {
    const bad = (type: arrow.DataType): void => {
      const t = new arrow.Table({ x: arrow.vectorFromArray([], type) });
      assert.throws(() => encodeParquet(t), (err: unknown) => isFloeError(err, 'INVALID_ARGUMENT'));
    };
    bad(new arrow.Int8());
    bad(new arrow.Uint32());
    bad(new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32()));
    bad(new arrow.Timestamp(arrow.TimeUnit.MILLISECOND, 'UTC'));
    bad(new arrow.Timestamp(arrow.TimeUnit.MICROSECOND));
    bad(new arrow.Timestamp(arrow.TimeUnit.MICROSECOND, 'Europe/Paris'));
    bad(new arrow.DateMillisecond());
    bad(new arrow.List(new arrow.Field('item', new arrow.Uint8())));
    const ok = allTypesTable(3);
    for (const key of ['ARROW:schema', INTEGRITY_KEY]) {
      assert.throws(() => encodeParquet(ok, { keyValueMetadata: { [key]: 'x' } }), (err: unknown) => isFloeError(err, 'INVALID_ARGUMENT'));
    }
    for (const rowGroupRows of [0, -1, 1.5, NaN]) {
      assert.throws(() => encodeParquet(ok, { rowGroupRows }), (err: unknown) => isFloeError(err, 'INVALID_ARGUMENT'));
    }
    assert.throws(() => encodeParquet(ok, { compression: 'lz4' as 'zstd' }), (err: unknown) => isFloeError(err, 'INVALID_ARGUMENT'));
  });

  void it('writes the same values with every compression', async () => {
    const table = allTypesTable(300, 12);
    for (const compression of ['zstd', 'snappy', 'none'] as const) {
      const pf = await ParquetFile.open(await stored(encodeParquet(table, { compression, rowGroupRows: 128 })), KEY);
      const got = await pf.readRows(0, 300);
      for (const f of ALL_TYPES_SCHEMA.fields) assert.deepStrictEqual(columnValues(got, f.name), columnValues(table, f.name), `${compression} ${f.name}`);
    }
  });

  void it('concurrent reads of one file agree with sequential reads', async () => {
    const table = allTypesTable(800, 13);
    const bytes = encodeParquet(table, { rowGroupRows: 100 });
    const pf = await ParquetFile.open(await stored(bytes), KEY, { size: bytes.length, footerHint: 256 });
    const batches = await Promise.all(pf.rowGroups.map((_, i) => pf.readRowGroup(i, ['_id', 's', 'v'])));
    for (const [i, b] of batches.entries()) {
      const g = pf.rowGroups[i] as { firstRow: number; numRows: number };
      assert.deepStrictEqual(columnValues(b, 's'), columnValues(table, 's', g.firstRow, g.firstRow + g.numRows));
    }
  });
});

void describe('encodeParquet: all-null booleans (apache-arrow IPC quirk)', () => {
  void it('round-trips a bool column and a list<bool> whose values are all null', async () => {
    const table = new arrow.Table({
      b: arrow.vectorFromArray([null, null, null], new arrow.Bool()),
      l: arrow.vectorFromArray([null, [null], []], new arrow.List(new arrow.Field('item', new arrow.Bool(), true))),
    });
    const store = new MemoryStore();
    const bytes = encodeParquet(table);
    await store.put('t.parquet', bytes);
    const pf = await ParquetFile.open(store, 't.parquet', { size: bytes.length });
    const batch = await pf.readRowGroup(0);
    assert.equal(batch.numRows, 3);
    assert.deepEqual([0, 1, 2].map((i) => batch.getChild('b')!.get(i) as unknown), [null, null, null]);
    const l = batch.getChild('l')!;
    assert.equal(l.get(0), null);
    assert.deepEqual([...(l.get(1) as arrow.Vector)], [null]);
    assert.deepEqual([...(l.get(2) as arrow.Vector)], []);
  });
});
