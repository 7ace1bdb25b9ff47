// Rows kept by column (the bulk-append path): RowValidator output turned into
// a RecordBatch by columnsToRecordBatch reads back as the normalized rows, in
// any order asked for, for random schemas and values (unicode strings in
// ASCII and non-ASCII groups, nulls, empty strings, lists, vectors).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Row, TableSchema } from '../../src/format/schema.js';
import { RowValidator, columnsToRecordBatch, normalizeSchema, recordBatchToRows, rowsToRecordBatch, validateRows } from '../../src/format/schema.js';
import { isFloeError } from '../../src/errors.js';
import { RUNS, normalized, schemaAndRowsArb } from './schema-arbitraries.js';

/** Validate `rows` into columns the way stageFiles does. */
function toColumns(schema: TableSchema, rows: readonly unknown[]): unknown[][] {
  const v = new RowValidator(schema);
  const cols: unknown[][] = schema.columns.map(() => []);
  const scratch = new Array<unknown>(schema.columns.length);
  rows.forEach((r, i) => {
    v.check(r, i, scratch);
    cols.forEach((c, j) => c.push(scratch[j]));
  });
  return cols;
}

function expectedRows(schema: TableSchema, rows: readonly Row[]): Row[] {
  return rows.map((r) => Object.fromEntries(schema.columns.map((c) => [c.name, normalized(c.type, r[c.name])])));
}

void describe('columnsToRecordBatch', () => {
  void it('reads back as the normalized rows (random schemas and values)', () => {
    fc.assert(
      fc.property(schemaAndRowsArb({ maxRows: 150 }), ({ schema, rows }) => {
        const cols = toColumns(schema, rows);
        const batch = columnsToRecordBatch(schema, cols, rows.length);
        assert.deepStrictEqual(recordBatchToRows(batch), expectedRows(schema, rows));
        assert.deepStrictEqual(recordBatchToRows(batch), recordBatchToRows(rowsToRecordBatch(schema, validateRows(schema, rows))));
      }),
      { numRuns: RUNS },
    );
  });

  void it('takes rows in the order given, with system columns', () => {
    fc.assert(
      fc.property(
        schemaAndRowsArb({ maxRows: 80 }).chain(({ schema, rows }) =>
          fc.shuffledSubarray(Array.from({ length: rows.length }, (_, i) => i)).map((order) => ({ schema, rows, order })),
        ),
        ({ schema, rows, order }) => {
          const cols = toColumns(schema, rows);
          const ids = BigInt64Array.from(order, (i) => BigInt(i) * 3n);
          const seqs = new BigInt64Array(order.length).fill(7n);
          const batch = columnsToRecordBatch(schema, cols, rows.length, { _id: ids, _seq: seqs }, Int32Array.from(order));
          const want = expectedRows(schema, rows);
          assert.deepStrictEqual(
            recordBatchToRows(batch),
            order.map((i) => ({ _id: BigInt(i) * 3n, _seq: 7n, ...want[i] })),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  void it('utf8 columns: groups of ASCII, non-ASCII, empty and null values across group boundaries', () => {
    const schema = normalizeSchema({ s: 'utf8', t: { type: 'utf8', nullable: false } });
    const pieces = ['', 'a', 'plain ascii text', 'é', '日本語', '\u{1F600}', 'a\u0000b', '\uFFFF', '\uE000x', 'x'.repeat(1000), 'ü'.repeat(300)];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.option(fc.constantFrom(...pieces), { nil: null }), fc.constantFrom(...pieces)), { minLength: 0, maxLength: 400 }),
        (pairs) => {
          const rows = pairs.map(([s, t]) => ({ s, t }));
          const batch = columnsToRecordBatch(schema, toColumns(schema, rows), rows.length);
          assert.deepStrictEqual(recordBatchToRows(batch), rows);
          const data = batch.getChild('t')!.data[0]!;
          const offsets = data.valueOffsets as Int32Array;
          for (let i = 0; i < rows.length; i++) assert.equal(offsets[i + 1]! - offsets[i]!, Buffer.byteLength(rows[i]!.t));
        },
      ),
      { numRuns: RUNS },
    );
  });

  void it('RowValidator reports bad rows with the index it is given, as validateRows does', () => {
    const schema = normalizeSchema({ k: { type: 'int64', nullable: false }, s: 'utf8' });
    const v = new RowValidator(schema, { primaryKey: ['k'] });
    const out = new Array<unknown>(2);
    const bad: Array<[unknown, RegExp]> = [
      [{ k: 1n, s: 5 }, /^SCHEMA_MISMATCH: row 41: column "s": expected utf8 \(a string\), got number 5$/],
      [{ s: 'x' }, /^SCHEMA_MISMATCH: row 41: primary key column "k" is missing$/],
      [{ k: 1n, extra: 1 }, /^SCHEMA_MISMATCH: row 41: unknown column "extra"/],
      [{ k: 1n, _id: 1n }, /^INVALID_ARGUMENT: row 41: column "_id" is assigned by the engine/],
      [[1, 2], /^INVALID_ARGUMENT: row 41: expected a plain object, got array\(2\)$/],
      [{ k: 1n, s: 'a\uD800' }, /^SCHEMA_MISMATCH: row 41: column "s": string has an unpaired surrogate/],
    ];
    for (const [row, re] of bad) {
      assert.throws(() => v.check(row, 41, out), (err: unknown) => isFloeError(err) && re.test(err.message), String(re));
      const rows = Array.from({ length: 42 }, (_, i) => (i === 41 ? row : { k: BigInt(i) }));
      assert.throws(() => validateRows(schema, rows, { primaryKey: ['k'] }), (err: unknown) => isFloeError(err) && re.test(err.message), String(re));
    }
    assert.equal(v.check({ k: 3, s: 'abc' }, 0, out) > 0, true);
    assert.deepEqual(out, [3n, 'abc']);
  });

  void it('codeUnitOrder turns false for a column once a string with a surrogate pair (or such a default) is seen', () => {
    const schema = normalizeSchema({ a: 'utf8', b: 'utf8', c: { type: 'utf8', default: 'x\u{1F600}' }, n: 'int32' });
    const v = new RowValidator(schema);
    const out = new Array<unknown>(4);
    assert.deepEqual(v.codeUnitOrder(), [true, true, false, true]);
    v.check({ a: '\uE000\uFFFF', b: 'plain', c: 'y', n: 1 }, 0, out);
    assert.deepEqual(v.codeUnitOrder(), [true, true, false, true]);
    v.check({ a: 'ok', b: '\u{10000}', n: 2 }, 1, out);
    assert.deepEqual(v.codeUnitOrder(), [true, false, false, true]);
    v.check({ a: 'ok', b: 'plain', n: 3 }, 2, out);
    assert.deepEqual(v.codeUnitOrder(), [true, false, false, true], 'sticky');
  });
});
