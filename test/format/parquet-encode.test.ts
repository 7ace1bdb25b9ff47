// The data-file encoder off the calling thread: the worker pool gives the
// same bytes as the in-thread encoder, hashes them, survives encoding errors
// and serves concurrent requests; plus the dictionary heuristic it is given.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { blake3HexSync } from '../../src/format/checksum.js';
import { encodeOffThread, encoderThreadMemory, stopEncoderThreads } from '../../src/format/parquet-encode.js';
import { ParquetFile, encodeParquet, encodeParquetFile, encodePrepared, mostlyDistinct, prepareParquet } from '../../src/format/parquet.js';
import { isFloeError } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory.js';
import { allTypesTable, columnValues, plain } from './fixtures.js';

function deep(v: unknown): unknown {
  return Array.isArray(v) ? v.map(deep) : plain(v);
}

async function readAll(bytes: Uint8Array): Promise<arrow.Table> {
  const store = new MemoryStore();
  await store.put('f.parquet', bytes);
  const file = await ParquetFile.open(store, 'f.parquet');
  const batches: arrow.RecordBatch[] = [];
  for (let g = 0; g < file.rowGroups.length; g++) batches.push(await file.readRowGroup(g));
  return new arrow.Table(batches);
}

void describe('off-thread Parquet encoding', () => {
  void it('a large table encoded on a worker thread has the bytes of the in-thread encoder, and its hash', async () => {
    const table = allTypesTable(6000, 7);
    const options = { rowGroupRows: 1500, keyValueMetadata: { 'floe.table': 't1' } };
    const here = encodeParquet(table, options);
    const there = await encodeParquetFile(table, options);
    assert.deepEqual(there.bytes, here);
    assert.equal(there.contentHash, blake3HexSync(here));
    const back = await readAll(there.bytes);
    assert.equal(back.numRows, 6000);
    for (const f of table.schema.fields) assert.deepEqual(deep(columnValues(back, f.name)), deep(columnValues(table, f.name)), f.name);
  });

  void it('a small table is encoded in-thread with the same result shape', async () => {
    const table = allTypesTable(50, 3);
    const f = await encodeParquetFile(table);
    assert.deepEqual(f.bytes, encodeParquet(table));
    assert.equal(f.contentHash, blake3HexSync(f.bytes));
  });

  void it('concurrent requests each get their own file', async () => {
    const tables = [11, 12, 13, 14, 15].map((seed) => allTypesTable(4200 + seed, seed));
    const files = await Promise.all(tables.map((t) => encodeParquetFile(t, { rowGroupRows: 2000 })));
    files.forEach((f, i) => assert.deepEqual(f.bytes, encodeParquet(tables[i]!, { rowGroupRows: 2000 }), `table ${i}`));
  });

  void it('an explicit noDictionary list is honoured and checked', async () => {
    const table = allTypesTable(5000, 5);
    const prepared = prepareParquet(table, { noDictionary: ['s', 'i64'] });
    assert.deepEqual(prepared.plan.noDictionary, ['s', 'i64']);
    const f = await encodePrepared(prepared);
    assert.deepEqual(f.bytes, encodeParquet(table, { noDictionary: ['s', 'i64'] }));
    assert.throws(
      () => prepareParquet(table, { noDictionary: ['nope'] }),
      (err: unknown) => isFloeError(err, 'INVALID_ARGUMENT') && /nope/.test(err.message),
    );
  });

  void it('an encoding failure on the worker is INVALID_ARGUMENT, and the worker keeps serving', async () => {
    const plan = { rowGroupRows: 100, compression: 'zstd' as const, keyValueMetadata: [], noDictionary: [] };
    await assert.rejects(encodeOffThread(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), plan), (err: unknown) => isFloeError(err, 'INVALID_ARGUMENT') && /cannot encode/.test(err.message));
    const table = allTypesTable(4500, 9);
    const f = await encodeParquetFile(table);
    assert.deepEqual(f.bytes, encodeParquet(table));
  });

  void it('each encoder thread reports its parquet-wasm memory', async () => {
    await encodeParquetFile(allTypesTable(4100, 4));
    const sizes = await encoderThreadMemory();
    assert.ok(sizes.length >= 1);
    assert.ok(sizes.every((x) => x !== null && x > 0), JSON.stringify(sizes));
  });

  void it('a thread stopped mid-request fails that request with INVARIANT_VIOLATION; the next request gets a fresh thread', async () => {
    const table = allTypesTable(30_000, 8);
    const pending = encodeParquetFile(table);
    await stopEncoderThreads();
    await assert.rejects(pending, (err: unknown) => isFloeError(err, 'INVARIANT_VIOLATION') && /encoder thread stopped/.test(err.message));
    assert.deepEqual(await encoderThreadMemory(), []);
    const small = allTypesTable(4200, 6);
    assert.deepEqual((await encodeParquetFile(small)).bytes, encodeParquet(small));
    assert.equal((await encoderThreadMemory()).length, 1);
  });

  void it('the IPC buffer handed to the worker is transferred when the view owns it, copied otherwise', async () => {
    const table = allTypesTable(4096, 2);
    const a = prepareParquet(table);
    const whole = a.ipc;
    const expected = encodeParquet(table);
    const padded = new Uint8Array(whole.length + 16);
    padded.set(whole, 8);
    const view = padded.subarray(8, 8 + whole.length);
    const viaView = await encodeOffThread(view, a.plan);
    assert.deepEqual(viaView.bytes, expected);
    assert.equal(padded.byteLength, whole.length + 16, 'a view into a larger buffer is copied, not detached');
    const viaWhole = await encodeOffThread(whole, a.plan);
    assert.deepEqual(viaWhole.bytes, expected);
    assert.equal(whole.byteLength, 0, 'a buffer the view spans is transferred (detached here)');
  });
});

void describe('mostlyDistinct (dictionary heuristic)', () => {
  const of = (values: unknown[]) => mostlyDistinct({ length: values.length, at: (i) => values[i] });

  void it('keeps the default for small samples and all-null columns', () => {
    assert.equal(of([]), false);
    assert.equal(of(Array.from({ length: 63 }, (_, i) => i)), false);
    assert.equal(of(Array.from({ length: 5000 }, () => null)), false);
  });

  void it('more than half distinct values in the sample turns dictionaries off', () => {
    assert.equal(of(Array.from({ length: 64 }, (_, i) => i)), true);
    assert.equal(of(Array.from({ length: 10_000 }, (_, i) => `k${i}`)), true);
    assert.equal(of(Array.from({ length: 10_000 }, (_, i) => `k${i % 10}`)), false);
    // Exactly half distinct is not "more than half".
    assert.equal(of(Array.from({ length: 128 }, (_, i) => i % 64)), false);
  });

  void it('compares bytes by content and Dates by time', () => {
    assert.equal(of(Array.from({ length: 100 }, () => new Uint8Array([1, 2]))), false);
    assert.equal(of(Array.from({ length: 100 }, () => new Date(0))), false);
    assert.equal(of(Array.from({ length: 100 }, (_, i) => new Date(i))), true);
    assert.equal(of(Array.from({ length: 100 }, (_, i) => Uint8Array.of(i))), true);
  });
});
