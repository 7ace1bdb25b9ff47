/**
 * The page reader (src/format/parquet-pages.ts) decodes exactly what the
 * general reader (ParquetFile, hyparquet) decodes: whole column chunks and
 * single pages of floe's own files (every flat type, nulls, dictionary and
 * plain pages, several pages and row groups), and the data pages v2, RLE
 * booleans and snappy of another writer (hyparquet-writer); encodings it does
 * not handle raise Unsupported (the caller's cue to take the general path),
 * never a wrong value. Plus the key search over decoded pages.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { parquetReadObjects } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { encodeParquet, ParquetFile } from '../../src/format/parquet.js';
import type { Decoded } from '../../src/format/parquet-pages.js';
import { PageReader, toArrow, Unsupported } from '../../src/format/parquet-pages.js';
import { dataToValues } from '../../src/format/schema.js';
import { MemoryStore } from '../../src/store/memory.js';
import { searchDecoded } from '../../src/table/read.js';

const KEY = 'tables/x/data/f.parquet';

/** Values of a decoded column in physical form (bytes as hex), nulls as null. */
function valuesOf(d: Decoded): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < d.length; i++) {
    if (d.validity !== null && ((d.validity[i >> 3]! >> (i & 7)) & 1) === 0) {
      out.push(null);
      continue;
    }
    const src = d.indices !== null ? d.dictionary! : d;
    const j = d.indices !== null ? d.indices[i]! : i;
    if (src.kind === 'bytes') out.push(Buffer.from((src.values as Uint8Array).subarray(src.offsets![j], src.offsets![j + 1])).toString('hex'));
    else if (src.kind === 'bool') out.push((((src.values as Uint8Array)[j >> 3]! >> (j & 7)) & 1) === 1);
    else out.push((src.values as Int32Array | BigInt64Array | Float64Array)[j]);
  }
  return out;
}

function floeTable(n: number): arrow.Table {
  const rnd = (i: number, m: number): number => (i * 2654435761) % m;
  const nul = (i: number, k: number): boolean => rnd(i + k, 7) === 0;
  const col = <T>(f: (i: number) => T, k: number): Array<T | null> => Array.from({ length: n }, (_, i) => (nul(i, k) ? null : f(i)));
  return new arrow.Table({
    i32: arrow.vectorFromArray(col((i) => rnd(i, 100000) - 50000, 1), new arrow.Int32()),
    i64: arrow.vectorFromArray(col((i) => BigInt(rnd(i, 1e9)) * 1000n, 2), new arrow.Int64()),
    f32: arrow.vectorFromArray(col((i) => i / 4, 3), new arrow.Float32()),
    f64: arrow.vectorFromArray(col((i) => i / 3, 4), new arrow.Float64()),
    b: arrow.vectorFromArray(col((i) => i % 3 === 0, 5), new arrow.Bool()),
    s: arrow.vectorFromArray(col((i) => `row ${i} ${'x'.repeat(rnd(i, 90))}`, 6), new arrow.Utf8()),
    cat: arrow.vectorFromArray(col((i) => ['red', 'green', 'blue'][i % 3]!, 7), new arrow.Utf8()),
    bin: arrow.vectorFromArray(col((i) => Uint8Array.of(i & 255, (i >> 8) & 255), 8), new arrow.Binary()),
    d: arrow.vectorFromArray(col((i) => i * 86_400_000, 9), new arrow.DateDay()),
    ts: arrow.vectorFromArray(col((i) => 1_600_000_000_000 + i, 10), new arrow.TimestampMicrosecond('UTC')),
    req: arrow.vectorFromArray(Array.from({ length: n }, (_, i) => `k${String(i).padStart(6, '0')}`), new arrow.Utf8()),
  });
}

describe('page reader on floe files', () => {
  it('whole chunks and single pages decode as ParquetFile does', async () => {
    const table = floeTable(9000);
    const store = new MemoryStore();
    const bytes = encodeParquet(table, { rowGroupRows: 4000 });
    await store.put(KEY, bytes);
    const pf = await ParquetFile.open(store, KEY);
    const reader = await PageReader.open(store, KEY, bytes.length);
    assert.equal(reader.numRowGroups, 3);
    const schema = reader.arrowSchema()!;
    let multiPage = 0;
    for (let g = 0; g < reader.numRowGroups; g++) {
      const want = await pf.readRowGroup(g);
      for (const field of schema.fields) {
        const leaf = reader.leaves.get(field.name)!;
        assert.ok(leaf, field.name);
        const chunk = await reader.readChunk(g, leaf);
        const data = toArrow(chunk, field.type as arrow.DataType);
        assert.deepEqual(dataToValues(data, field.name), dataToValues(want.getChild(field.name)!.data[0] as arrow.Data, field.name), `${field.name} in row group ${g}`);
        const bounds = (await reader.pageBounds(g, leaf))!;
        assert.ok(bounds, 'floe writes offset indexes');
        if (bounds.offsets.length > 1) multiPage++;
        const all = valuesOf(chunk);
        for (let p = 0; p < bounds.offsets.length; p++) {
          const page = await reader.page(g, leaf, bounds, p, () => reader.dictionary(g, leaf));
          assert.deepEqual(valuesOf(page), all.slice(bounds.firstRows[p], bounds.firstRows[p + 1]), `${field.name} page ${p} of row group ${g}`);
        }
      }
    }
    assert.ok(multiPage > 0, 'some chunk spans several pages');
  });

  it('finds every key of a sorted key column through page stats and search', async () => {
    const table = floeTable(9000);
    const store = new MemoryStore();
    const bytes = encodeParquet(table, { rowGroupRows: 4000 });
    await store.put(KEY, bytes);
    const reader = await PageReader.open(store, KEY, bytes.length);
    const leaf = reader.leaves.get('req')!;
    for (let g = 0; g < reader.numRowGroups; g++) {
      const stats = (await reader.pageStats(g, leaf))!;
      const bounds = (await reader.pageBounds(g, leaf))!;
      assert.ok(stats.ascending, 'the writer marks sorted pages ascending');
      for (let p = 0; p < bounds.offsets.length; p++) {
        const page = await reader.page(g, leaf, bounds, p, () => reader.dictionary(g, leaf));
        for (let i = 0; i < page.length; i += 97) {
          const key = (page.values as Uint8Array).subarray(page.offsets![i], page.offsets![i + 1]);
          assert.equal(searchDecoded(page, key), i);
        }
        assert.equal(searchDecoded(page, new TextEncoder().encode('k0000005x')), -1);
      }
    }
  });
});

describe('page reader on files of another writer', () => {
  const n = 3000;
  const nullEvery = (k: number) => (i: number) => i % k === 0;
  const ints = Array.from({ length: n }, (_, i) => (nullEvery(5)(i) ? null : i * 3 - 1000));
  const bigs = Array.from({ length: n }, (_, i) => (nullEvery(6)(i) ? null : BigInt(i) * 1_000_000_007n));
  const dbls = Array.from({ length: n }, (_, i) => (nullEvery(7)(i) ? null : i / 7));
  const bools = Array.from({ length: n }, (_, i) => (nullEvery(4)(i) ? null : i % 3 === 0));
  const strs = Array.from({ length: n }, (_, i) => (nullEvery(8)(i) ? null : `s${i % 50}`));
  const plain = Array.from({ length: n }, (_, i) => `value-${i}-${'y'.repeat(i % 13)}`);

  it('decodes data pages v2, RLE booleans, dictionaries and snappy as hyparquet does', async () => {
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'i', data: ints, type: 'INT32', nullable: true },
        { name: 'l', data: bigs, type: 'INT64', nullable: true },
        { name: 'd', data: dbls, type: 'DOUBLE', nullable: true },
        { name: 'b', data: bools, type: 'BOOLEAN', nullable: true },
        { name: 's', data: strs, type: 'STRING', nullable: true },
        { name: 'p', data: plain, type: 'STRING', nullable: false },
      ],
      rowGroupSize: 1000,
      pageSize: 2000,
      codec: 'SNAPPY',
    });
    const bytes = new Uint8Array(buf);
    const store = new MemoryStore();
    await store.put(KEY, bytes);
    const reader = await PageReader.open(store, KEY, bytes.length);
    const rows = await parquetReadObjects({ file: buf });
    const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
    let decoded = 0;
    for (const name of ['i', 'l', 'd', 'b', 's', 'p']) {
      const leaf = reader.leaves.get(name)!;
      const got: unknown[] = [];
      try {
        for (let g = 0; g < reader.numRowGroups; g++) got.push(...valuesOf(await reader.readChunk(g, leaf)));
      } catch (err) {
        assert.ok(err instanceof Unsupported, `${name}: ${String(err)}`);
        continue;
      }
      decoded++;
      const want = rows.map((r) => {
        const v = (r as Record<string, unknown>)[name];
        return typeof v === 'string' ? hex(v) : (v ?? null);
      });
      assert.deepEqual(got, want, name);
    }
    assert.equal(decoded, 6, 'every column of this file is within the page reader');
  });

  it('raises Unsupported, not a wrong value, for encodings it does not decode', async () => {
    const buf = parquetWriteBuffer({
      columnData: [{ name: 'x', data: ints.map((v) => v ?? 0), type: 'INT32', nullable: false, encoding: 'DELTA_BINARY_PACKED' }],
      codec: 'UNCOMPRESSED',
    });
    const bytes = new Uint8Array(buf);
    const store = new MemoryStore();
    await store.put(KEY, bytes);
    const reader = await PageReader.open(store, KEY, bytes.length);
    await assert.rejects(reader.readChunk(0, reader.leaves.get('x')!), (e: unknown) => e instanceof Unsupported);
  });
});

describe('searchDecoded', () => {
  const ints = (vals: number[]): Decoded => ({ kind: 'int32', length: vals.length, nullCount: 0, validity: null, values: Int32Array.from(vals), offsets: null, dictionary: null, indices: null });
  it('finds values in sorted and unsorted pages, and through dictionary indices', () => {
    const sorted = ints([-5, -1, 0, 3, 3, 9, 100]);
    for (const v of [-5, -1, 0, 9, 100]) assert.equal(Int32Array.from([-5, -1, 0, 3, 3, 9, 100])[searchDecoded(sorted, v)], v);
    assert.equal(searchDecoded(sorted, 4), -1);
    const unsorted = ints([7, 2, 9, 1]);
    assert.equal(searchDecoded(unsorted, 9), 2);
    assert.equal(searchDecoded(unsorted, 3), -1);
    const viaDict: Decoded = { kind: 'int32', length: 4, nullCount: 0, validity: null, values: new Uint8Array(0), offsets: null, dictionary: ints([10, 20, 30]), indices: Int32Array.of(2, 0, 1, 0) };
    assert.equal(searchDecoded(viaDict, 20), 2);
    assert.equal(searchDecoded(viaDict, 10), 1);
    assert.equal(searchDecoded(viaDict, 40), -1);
  });
});
