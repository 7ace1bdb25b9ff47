// Schemas, row validation, key encoding and the Arrow mapping: every
// rejection path by hand, and round trips / key order by property.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { isFloeError, type ErrorCode } from '../../src/errors.js';
import type { ColumnType, Row, SchemaInput, TableSchema } from '../../src/format/schema.js';
import {
  addColumn,
  compareBytes,
  compareStrings,
  decodeColumnValue,
  encodeColumnValue,
  findDuplicateKeys,
  keyOf,
  normalizeSchema,
  projectBatch,
  recordBatchToRows,
  rowsToRecordBatch,
  schemaFromJson,
  schemaToJson,
  toArrowSchema,
  validateRows,
} from '../../src/format/schema.js';
import { columnTypeArb, KEYABLE, normalized, RUNS, schemaAndRowsArb, schemaArb, stringArb, valueArb } from './schema-arbitraries.js';

function throwsCode(fn: () => unknown, code: ErrorCode, ...fragments: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isFloeError(e, code), `expected ${code}, got ${String(e)}`);
    for (const f of fragments) {
      if (typeof f === 'string') assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
      else assert.match(e.message, f);
    }
    return true;
  });
}

const ALL: TableSchema = normalizeSchema({
  i32: 'int32',
  i64: 'int64',
  f32: 'float32',
  f64: 'float64',
  b: 'bool',
  s: 'utf8',
  bin: 'binary',
  ts: 'timestamp',
  d: 'date',
  tags: { list: 'utf8' },
  nested: { list: { list: 'int64' } },
  vec: { vector: 3 },
});

void describe('normalizeSchema', () => {
  void it('accepts the record form with bare types (nullable) and specs', () => {
    const s = normalizeSchema({ a: 'int32', b: { type: 'utf8', nullable: false }, c: { type: { vector: 4 } }, d: { type: 'int64', default: 7 } });
    assert.deepEqual(s.columns, [
      { name: 'a', type: 'int32', nullable: true },
      { name: 'b', type: 'utf8', nullable: false },
      { name: 'c', type: { vector: 4 }, nullable: true },
      { name: 'd', type: 'int64', nullable: true, default: '7' },
    ]);
    assert.ok(Object.isFrozen(s) && Object.isFrozen(s.columns) && Object.isFrozen(s.columns[0]));
  });

  void it('encodes defaults of every type and decodes them back', () => {
    const s = normalizeSchema({
      a: { type: 'int64', default: 5n },
      b: { type: 'timestamp', default: new Date(1500) },
      c: { type: 'date', default: '2024-02-29' },
      d: { type: 'binary', default: new Uint8Array([0, 255]) },
      e: { type: 'float64', default: Number.NaN },
      f: { type: 'float32', default: -0 },
      g: { type: { list: 'int64' }, default: [1n, null] },
      h: { type: { vector: 2 }, default: [0.5, 1] },
      i: { type: 'bool', default: false, nullable: false },
      j: { type: 'utf8', default: '' },
    });
    const byName = Object.fromEntries(s.columns.map((c) => [c.name, c.default]));
    assert.deepEqual(byName, {
      a: '5',
      b: '1500000',
      c: 19782,
      d: 'AP8=',
      e: 'NaN',
      f: '-0',
      g: ['1', null],
      h: [0.5, 1],
      i: false,
      j: '',
    });
    const [row] = validateRows(s, [{}]);
    assert.deepEqual(row, {
      a: 5n,
      b: new Date(1500),
      c: new Date('2024-02-29T00:00:00Z'),
      d: new Uint8Array([0, 255]),
      e: Number.NaN,
      f: -0,
      g: [1n, null],
      h: new Float32Array([0.5, 1]),
      i: false,
      j: '',
    });
  });

  void it('accepts encoded defaults too (what a stored ColumnSpec holds)', () => {
    const s = normalizeSchema({ a: { type: 'int64', default: '5' }, b: { type: 'date', default: 3 }, c: { type: 'binary', default: 'AP8=' } });
    assert.deepEqual(
      s.columns.map((c) => c.default),
      ['5', 3, 'AP8='],
    );
  });

  void it('drops a null default on a nullable column and rejects it on a non-nullable one', () => {
    assert.equal(normalizeSchema({ a: { type: 'int32', default: null } }).columns[0]!.default, undefined);
    throwsCode(() => normalizeSchema({ a: { type: 'int32', nullable: false, default: null } }), 'INVALID_ARGUMENT', '"a"');
  });

  const badNames: [string, string][] = [
    ['', 'empty'],
    ['_id', 'reserved'],
    ['_x', 'reserved'],
    ['a\u0000', 'control'],
    ['a\nb', 'control'],
    ['a\u0085', 'control'],
    ['a\u007f', 'control'],
    ['x'.repeat(256), 'longer than 255'],
    ['\uD800', 'surrogate'],
  ];
  for (const [name, why] of badNames) {
    void it(`rejects column name ${JSON.stringify(name.slice(0, 10))} (${why})`, () => {
      throwsCode(() => normalizeSchema({ [name]: 'int32' }), 'INVALID_ARGUMENT', why);
    });
  }

  void it('accepts names up to 255 code points, astral characters counting once', () => {
    normalizeSchema({ ['x'.repeat(255)]: 'int32' });
    normalizeSchema({ ['\u{1F600}'.repeat(255)]: 'int32' });
    normalizeSchema({ 'with space': 'int32', 'ünï': 'utf8', 'a_b': 'bool' });
  });

  void it('rejects duplicate names, also differing only in case', () => {
    throwsCode(() => normalizeSchema({ Name: 'int32', name: 'utf8' }), 'INVALID_ARGUMENT', 'Name', 'name');
    const dup = new arrow.Schema([new arrow.Field('a', new arrow.Int32()), new arrow.Field('a', new arrow.Utf8())]);
    throwsCode(() => normalizeSchema(dup), 'INVALID_ARGUMENT', 'duplicate column "a"');
  });

  void it('rejects empty schemas and non-objects', () => {
    throwsCode(() => normalizeSchema({}), 'INVALID_ARGUMENT', 'at least one column');
    throwsCode(() => normalizeSchema(new arrow.Schema([])), 'INVALID_ARGUMENT', 'at least one column');
    for (const bad of [null, undefined, 42, 'int32', [], ['a'], new Date()]) {
      throwsCode(() => normalizeSchema(bad as never), 'INVALID_ARGUMENT');
    }
  });

  const badTypes: [unknown, string][] = [
    ['int8', 'unsupported type'],
    ['string', 'unsupported type'],
    [{ vector: 0 }, '1..65536'],
    [{ vector: 65537 }, '1..65536'],
    [{ vector: 1.5 }, '1..65536'],
    [{ vector: '3' }, '1..65536'],
    [{ list: 'nope' }, 'unsupported type'],
    [{ list: 'int32', extra: 1 }, 'invalid column type'],
    [{}, 'invalid column type'],
    [42, 'invalid column type'],
    [null, 'invalid column type'],
    [{ list: { list: { list: { list: { list: { list: { list: { list: { list: 'int32' } } } } } } } } }, 'nesting deeper'],
  ];
  for (const [t, why] of badTypes) {
    void it(`rejects column type ${JSON.stringify(t)}`, () => {
      throwsCode(() => normalizeSchema({ col: t as ColumnType }), 'INVALID_ARGUMENT', '"col"', why);
      throwsCode(() => normalizeSchema({ col: { type: t as ColumnType } }), 'INVALID_ARGUMENT', '"col"', why);
    });
  }

  void it('accepts vector dims at the bounds and deep-enough lists', () => {
    normalizeSchema({ a: { vector: 1 }, b: { vector: 65536 }, c: { list: { list: { list: { vector: 2 } } } } });
  });

  void it('rejects a cyclic type object instead of recursing forever', () => {
    const t: { list: unknown } = { list: null };
    t.list = t;
    throwsCode(() => normalizeSchema({ a: t as ColumnType }), 'INVALID_ARGUMENT', 'nesting');
  });

  void it('rejects unknown spec options, non-boolean nullable and invalid defaults', () => {
    throwsCode(() => normalizeSchema({ a: { type: 'int32', nulable: false } as never }), 'INVALID_ARGUMENT', '"a"', 'nulable');
    throwsCode(() => normalizeSchema({ a: { type: 'int32', nullable: 'yes' } as never }), 'INVALID_ARGUMENT', '"a"', 'nullable');
    const badDefaults: [ColumnType, unknown][] = [
      ['int32', 1.5],
      ['int32', 2 ** 31],
      ['int64', 1.5],
      ['int64', '1.5'],
      ['utf8', 5],
      ['bool', 'true'],
      ['date', new Date(1)],
      ['date', '2023-02-29'],
      ['timestamp', 'yesterday'],
      ['binary', 'not base64!'],
      [{ vector: 2 }, [1, 2, 3]],
      [{ vector: 2 }, [1, Number.NaN]],
      [{ list: 'int32' }, [1, 'x']],
    ];
    for (const [type, d] of badDefaults) {
      throwsCode(() => normalizeSchema({ col: { type, default: d } }), 'INVALID_ARGUMENT', '"col"', 'default');
    }
  });

  void it('maps every supported Arrow type and names the column of an unsupported one', () => {
    const s = normalizeSchema(
      new arrow.Schema([
        new arrow.Field('a', new arrow.Int32(), false),
        new arrow.Field('b', new arrow.Int64(), true),
        new arrow.Field('c', new arrow.Float32(), true),
        new arrow.Field('d', new arrow.Float64(), true),
        new arrow.Field('e', new arrow.Bool(), true),
        new arrow.Field('f', new arrow.Utf8(), true),
        new arrow.Field('g', new arrow.LargeUtf8(), true),
        new arrow.Field('h', new arrow.Binary(), true),
        new arrow.Field('i', new arrow.Timestamp(arrow.TimeUnit.MILLISECOND), true),
        new arrow.Field('j', new arrow.DateMillisecond(), true),
        new arrow.Field('k', new arrow.List(new arrow.Field('item', new arrow.Int32())), true),
        new arrow.Field('l', new arrow.FixedSizeList(8, new arrow.Field('item', new arrow.Float32())), true),
      ]),
    );
    assert.deepEqual(
      s.columns.map((c) => [c.name, c.type, c.nullable]),
      [
        ['a', 'int32', false],
        ['b', 'int64', true],
        ['c', 'float32', true],
        ['d', 'float64', true],
        ['e', 'bool', true],
        ['f', 'utf8', true],
        ['g', 'utf8', true],
        ['h', 'binary', true],
        ['i', 'timestamp', true],
        ['j', 'date', true],
        ['k', { list: 'int32' }, true],
        ['l', { vector: 8 }, true],
      ],
    );
    const unsupported: [arrow.DataType, string][] = [
      [new arrow.Int8(), 'Int8'],
      [new arrow.Uint32(), 'Uint32'],
      [new arrow.Float16(), 'Float16'],
      [new arrow.Decimal(2, 10, 128), 'Decimal'],
      [new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32()), 'Dictionary'],
      [new arrow.Struct([new arrow.Field('x', new arrow.Int32())]), 'Struct'],
      [new arrow.FixedSizeList(2, new arrow.Field('item', new arrow.Int32())), 'FixedSizeList'],
      [new arrow.List(new arrow.Field('item', new arrow.Uint8())), 'List'],
      [new arrow.TimeMillisecond(), 'Time'],
    ];
    for (const [t, name] of unsupported) {
      throwsCode(() => normalizeSchema(new arrow.Schema([new arrow.Field('ok', new arrow.Int32()), new arrow.Field('bad', t)])), 'SCHEMA_MISMATCH', '"bad"', name);
    }
    throwsCode(() => normalizeSchema(new arrow.Schema([new arrow.Field('_id', new arrow.Int64())])), 'INVALID_ARGUMENT', 'reserved');
  });
});

void describe('toArrowSchema', () => {
  void it('uses Timestamp(µs, UTC), DateDay, FixedSizeList<Float32> with non-null children, and prepends system columns', () => {
    const a = toArrowSchema(ALL, { system: true });
    assert.deepEqual(
      a.fields.slice(0, 2).map((f) => [f.name, String(f.type), f.nullable]),
      [
        ['_id', 'Int64', false],
        ['_seq', 'Int64', false],
      ],
    );
    const byName = new Map(a.fields.map((f) => [f.name, f]));
    const ts = byName.get('ts')!.type as arrow.Timestamp;
    assert.equal(ts.unit, arrow.TimeUnit.MICROSECOND);
    assert.equal(ts.timezone, 'UTC');
    assert.equal((byName.get('d')!.type as arrow.DateDay).unit, arrow.DateUnit.DAY);
    const vec = byName.get('vec')!.type as arrow.FixedSizeList;
    assert.equal(vec.listSize, 3);
    assert.equal(vec.children[0]!.nullable, false);
    assert.equal(String(vec.children[0]!.type), 'Float32');
    assert.equal(toArrowSchema(ALL).fields.length, ALL.columns.length);
  });

  void it('maps back to the same schema (without defaults) by property', () => {
    fc.assert(
      fc.property(schemaArb, (s) => {
        assert.deepEqual(normalizeSchema(toArrowSchema(s)), s);
      }),
      { numRuns: RUNS },
    );
  });
});

void describe('schemaToJson / schemaFromJson', () => {
  const withDefaults = schemaArb.chain((s) =>
    fc
      .tuple(...s.columns.map((c) => fc.option(valueArb(c.type), { nil: undefined })))
      .map((defaults) =>
        normalizeSchema(
          Object.fromEntries(
            s.columns.map((c, i) => [c.name, defaults[i] === undefined ? { type: c.type, nullable: c.nullable } : { type: c.type, nullable: c.nullable, default: defaults[i] }]),
          ),
        ),
      ),
  );

  void it('round-trips every schema (defaults included) through objects and JSON text, stably', () => {
    fc.assert(
      fc.property(withDefaults, (s) => {
        const j = schemaToJson(s);
        const text = JSON.stringify(j);
        assert.deepEqual(schemaFromJson(j), s);
        assert.deepEqual(schemaFromJson(text), s);
        assert.equal(JSON.stringify(schemaToJson(schemaFromJson(text))), text);
        // Defaults decode to the normalized value of what the user gave.
        for (const c of s.columns) {
          if (c.default === undefined) continue;
          const back = decodeColumnValue(c.type, c.default);
          assert.deepEqual(encodeColumnValue(c.type, back), c.default);
        }
      }),
      { numRuns: RUNS },
    );
  });

  void it('has a fixed shape', () => {
    assert.deepEqual(schemaToJson(normalizeSchema({ a: { type: 'int64', nullable: false, default: 1n }, b: { list: 'utf8' } })), {
      version: 1,
      columns: [
        { name: 'a', type: 'int64', nullable: false, default: '1' },
        { name: 'b', type: { list: 'utf8' }, nullable: true },
      ],
    });
  });

  void it('reports malformed documents as CORRUPT and other versions as UNSUPPORTED_VERSION', () => {
    throwsCode(() => schemaFromJson('{nope'), 'CORRUPT');
    throwsCode(() => schemaFromJson(42), 'CORRUPT');
    throwsCode(() => schemaFromJson({ version: 2, columns: [] }), 'UNSUPPORTED_VERSION', '2');
    throwsCode(() => schemaFromJson({ version: 1 }), 'CORRUPT', 'columns');
    throwsCode(() => schemaFromJson({ version: 1, columns: [] }), 'CORRUPT', 'at least one column');
    throwsCode(() => schemaFromJson({ version: 1, columns: [7] }), 'CORRUPT');
    throwsCode(() => schemaFromJson({ version: 1, columns: [{ name: 'a', type: 'int9', nullable: true }] }), 'CORRUPT', 'int9');
    throwsCode(() => schemaFromJson({ version: 1, columns: [{ name: 'a', type: 'int32' }] }), 'CORRUPT', 'nullable');
    throwsCode(() => schemaFromJson({ version: 1, columns: [{ name: '_a', type: 'int32', nullable: true }] }), 'CORRUPT', 'reserved');
    throwsCode(() => schemaFromJson({ version: 1, columns: [{ name: 'a', type: 'int64', nullable: true, default: 5 }] }), 'CORRUPT', 'default');
    throwsCode(() => schemaFromJson({ version: 1, columns: [{ name: 'a', type: 'int64', nullable: false, default: null }] }), 'CORRUPT');
  });
});

void describe('addColumn', () => {
  const base = normalizeSchema({ a: 'int32' });
  void it('appends nullable columns and columns with defaults', () => {
    const s1 = addColumn(base, { name: 'b', type: 'utf8' });
    assert.deepEqual(s1.columns[1], { name: 'b', type: 'utf8', nullable: true });
    const s2 = addColumn(s1, { name: 'c', type: 'int64', nullable: false, default: 3 });
    assert.deepEqual(s2.columns[2], { name: 'c', type: 'int64', nullable: false, default: '3' });
    const s3 = addColumn(s2, { name: 'd', type: 'date', nullable: false, default: 0 });
    assert.deepEqual(s3.columns[3], { name: 'd', type: 'date', nullable: false, default: 0 });
    assert.equal(base.columns.length, 1, 'the input schema is unchanged');
  });
  void it('rejects non-nullable without default, duplicates (any case), bad names and types', () => {
    throwsCode(() => addColumn(base, { name: 'b', type: 'int32', nullable: false }), 'INVALID_ARGUMENT', '"b"', 'default');
    throwsCode(() => addColumn(base, { name: 'b', type: 'int32', nullable: false, default: null }), 'INVALID_ARGUMENT', '"b"');
    throwsCode(() => addColumn(base, { name: 'a', type: 'utf8' }), 'INVALID_ARGUMENT', 'duplicate column "a"');
    throwsCode(() => addColumn(base, { name: 'A', type: 'utf8' }), 'INVALID_ARGUMENT', 'case');
    throwsCode(() => addColumn(base, { name: '_seq', type: 'int64' }), 'INVALID_ARGUMENT', 'reserved');
    throwsCode(() => addColumn(base, { name: 'v', type: { vector: 0 } }), 'INVALID_ARGUMENT', '"v"');
    throwsCode(() => addColumn(base, { name: 'v', type: 'int32', default: 'x' }), 'INVALID_ARGUMENT', '"v"', 'default');
  });
});

void describe('validateRows', () => {
  const good: Row = {
    i32: -7,
    i64: 12,
    f32: 0.1,
    f64: Number.NaN,
    b: true,
    s: 'héllo \u{1F600}',
    bin: Buffer.from([1, 2]),
    ts: 1_700_000_000_123_000n,
    d: '2024-02-29',
    tags: ['a', null],
    nested: [[1, 2n], null, []],
    vec: [1, 2.5, -3],
  };

  void it('normalizes every type into fresh values', () => {
    const input = structuredClone(good);
    input.bin = Buffer.from([1, 2]);
    const [row] = validateRows(ALL, [input]);
    assert.deepEqual(row, {
      i32: -7,
      i64: 12n,
      f32: Math.fround(0.1),
      f64: Number.NaN,
      b: true,
      s: 'héllo \u{1F600}',
      bin: new Uint8Array([1, 2]),
      ts: new Date(1_700_000_000_123),
      d: new Date(Date.UTC(2024, 1, 29)),
      tags: ['a', null],
      nested: [[1n, 2n], null, []],
      vec: new Float32Array([1, 2.5, -3]),
    });
    assert.equal(Object.getPrototypeOf(row.bin), Uint8Array.prototype, 'Buffer copied to a plain Uint8Array');
    assert.deepEqual(Object.keys(row), ALL.columns.map((c) => c.name), 'keys in schema order');
    // Mutating the caller's objects afterwards does not reach the normalized row.
    (input.tags as unknown[])[0] = 'changed';
    (input.bin as Buffer)[0] = 99;
    const dt = new Date(0);
    const [r2] = validateRows(ALL, [{ ts: dt }]);
    dt.setTime(5);
    assert.equal((r2!.ts as Date).getTime(), 0);
    assert.deepEqual(row.tags, ['a', null]);
    assert.deepEqual(row.bin, new Uint8Array([1, 2]));
  });

  void it('fills missing nullable columns with null and missing defaulted columns with a fresh default', () => {
    const s = normalizeSchema({ a: 'int32', b: { type: { list: 'int32' }, nullable: false, default: [1] }, c: { type: 'utf8', default: 'x' } });
    const rows = validateRows(s, [{}, { a: undefined, c: null }]);
    assert.deepEqual(rows, [
      { a: null, b: [1], c: 'x' },
      { a: null, b: [1], c: null },
    ]);
    assert.notEqual(rows[0]!.b, rows[1]!.b, 'each row gets its own copy of a mutable default');
  });

  type Case = [string, Row, ErrorCode, string[]];
  const cases: Case[] = [
    ['int32 fraction', { i32: 1.5 }, 'SCHEMA_MISMATCH', ['row 0', '"i32"', 'int32', '1.5']],
    ['int32 overflow', { i32: 2 ** 31 }, 'SCHEMA_MISMATCH', ['"i32"']],
    ['int32 bigint', { i32: 1n }, 'SCHEMA_MISMATCH', ['"i32"', 'bigint']],
    ['int32 string', { i32: '1' }, 'SCHEMA_MISMATCH', ['"i32"', 'string']],
    ['int64 fraction', { i64: 0.5 }, 'SCHEMA_MISMATCH', ['"i64"', '0.5']],
    ['int64 unsafe number', { i64: 2 ** 53 }, 'SCHEMA_MISMATCH', ['"i64"', 'safe']],
    ['int64 out of range', { i64: 1n << 63n }, 'SCHEMA_MISMATCH', ['"i64"', 'range']],
    ['int64 NaN', { i64: Number.NaN }, 'SCHEMA_MISMATCH', ['"i64"']],
    ['float string', { f64: '1' }, 'SCHEMA_MISMATCH', ['"f64"']],
    ['float bigint', { f32: 1n }, 'SCHEMA_MISMATCH', ['"f32"']],
    ['bool number', { b: 1 }, 'SCHEMA_MISMATCH', ['"b"', 'boolean']],
    ['utf8 number', { s: 1 }, 'SCHEMA_MISMATCH', ['"s"']],
    ['utf8 lone surrogate', { s: 'a\uD800b' }, 'SCHEMA_MISMATCH', ['"s"', 'surrogate']],
    ['binary array', { bin: [1, 2] }, 'SCHEMA_MISMATCH', ['"bin"', 'Uint8Array']],
    ['binary Int8Array', { bin: new Int8Array(2) }, 'SCHEMA_MISMATCH', ['"bin"']],
    ['timestamp number', { ts: 5 }, 'SCHEMA_MISMATCH', ['"ts"', 'Date']],
    ['timestamp invalid Date', { ts: new Date(Number.NaN) }, 'SCHEMA_MISMATCH', ['"ts"', 'invalid']],
    ['timestamp sub-ms', { ts: 1500n }, 'SCHEMA_MISMATCH', ['"ts"', 'millisecond']],
    ['timestamp string', { ts: '2024-01-01' }, 'SCHEMA_MISMATCH', ['"ts"']],
    ['date not midnight', { d: new Date(1) }, 'SCHEMA_MISMATCH', ['"d"', 'midnight']],
    ['date bad string', { d: '2024-13-01' }, 'SCHEMA_MISMATCH', ['"d"', 'YYYY-MM-DD']],
    ['date Feb 30', { d: '2023-02-30' }, 'SCHEMA_MISMATCH', ['"d"']],
    ['date with time', { d: '2023-02-01T00:00:00Z' }, 'SCHEMA_MISMATCH', ['"d"']],
    ['list not array', { tags: 'a' }, 'SCHEMA_MISMATCH', ['"tags"', 'array']],
    ['list bad element', { tags: ['a', 3] }, 'SCHEMA_MISMATCH', ['"tags"', 'element [1]']],
    ['nested bad element', { nested: [[1], [2, 'x']] }, 'SCHEMA_MISMATCH', ['"nested"', 'element [1]', 'element [1]']],
    ['vector too short', { vec: [1, 2] }, 'SCHEMA_MISMATCH', ['"vec"', '2 dimensions']],
    ['vector too long', { vec: new Float32Array(4) }, 'SCHEMA_MISMATCH', ['"vec"']],
    ['vector NaN', { vec: [1, Number.NaN, 2] }, 'SCHEMA_MISMATCH', ['"vec"', 'finite']],
    ['vector Infinity', { vec: [1, Infinity, 2] }, 'SCHEMA_MISMATCH', ['"vec"', 'finite']],
    ['vector float32 overflow', { vec: [1, 1e39, 2] }, 'SCHEMA_MISMATCH', ['"vec"', 'finite']],
    ['vector Float64Array', { vec: new Float64Array(3) }, 'SCHEMA_MISMATCH', ['"vec"']],
    ['vector non-number', { vec: [1, '2', 3] }, 'SCHEMA_MISMATCH', ['"vec"']],
    ['unknown column', { nope: 1 }, 'SCHEMA_MISMATCH', ['row 0', 'unknown column "nope"']],
    ['unknown column even if undefined', { nope: undefined }, 'SCHEMA_MISMATCH', ['"nope"']],
    ['user _id', { _id: 1n }, 'INVALID_ARGUMENT', ['"_id"', 'engine']],
    ['user _seq', { _seq: 1n }, 'INVALID_ARGUMENT', ['"_seq"', 'engine']],
  ];
  for (const [what, row, code, fragments] of cases) {
    void it(`rejects ${what}`, () => {
      throwsCode(() => validateRows(ALL, [{}, row]), code, 'row 1', ...fragments.map((f) => (f === 'row 0' ? 'row 1' : f)));
    });
  }

  void it('rejects rows that are not plain objects, and a non-array', () => {
    class R {
      i32 = 1;
    }
    for (const bad of [null, undefined, 5, 'row', [1], new Date(), new R(), new Map()]) {
      throwsCode(() => validateRows(ALL, [bad]), 'INVALID_ARGUMENT', 'row 0', 'plain object');
    }
    throwsCode(() => validateRows(ALL, {} as never), 'INVALID_ARGUMENT', 'array');
    assert.deepEqual(validateRows(normalizeSchema({ a: 'int32' }), [Object.assign(Object.create(null) as Row, { a: 1 })]), [{ a: 1 }]);
  });

  void it('requires non-nullable columns, naming row and column', () => {
    const s = normalizeSchema({ a: { type: 'int32', nullable: false }, b: 'int32' });
    throwsCode(() => validateRows(s, [{ a: 1 }, { b: 2 }]), 'SCHEMA_MISMATCH', 'row 1', '"a"', 'missing');
    throwsCode(() => validateRows(s, [{ a: null }]), 'SCHEMA_MISMATCH', 'row 0', '"a"', 'null');
    const withDefault = normalizeSchema({ a: { type: 'int32', nullable: false, default: 3 } });
    throwsCode(() => validateRows(withDefault, [{ a: null }]), 'SCHEMA_MISMATCH', '"a"', 'null');
    assert.deepEqual(validateRows(withDefault, [{}]), [{ a: 3 }]);
  });

  void it('never reads inherited properties as column values', () => {
    const s = normalizeSchema(
      Object.fromEntries([
        ['constructor', 'utf8'],
        ['toString', { type: 'int32', nullable: false, default: 1 }],
        ['valueOf', 'int32'],
      ]) as SchemaInput,
    );
    assert.deepEqual(validateRows(s, [{}]), [{ constructor: null, toString: 1, valueOf: null }]);
    assert.deepEqual(validateRows(s, [{ constructor: 'x' }]), [{ constructor: 'x', toString: 1, valueOf: null }]);
  });

  void it('checks primary-key values: present, non-null, not NaN', () => {
    const s = normalizeSchema({ k: 'float64', k2: 'utf8', v: 'float64' });
    const pk = { primaryKey: ['k', 'k2'] };
    assert.deepEqual(validateRows(s, [{ k: 1, k2: 'a', v: Number.NaN }], pk), [{ k: 1, k2: 'a', v: Number.NaN }]);
    throwsCode(() => validateRows(s, [{ k: Number.NaN, k2: 'a' }], pk), 'SCHEMA_MISMATCH', 'row 0', 'primary key', '"k"', 'NaN');
    throwsCode(() => validateRows(s, [{ k: 1 }], pk), 'SCHEMA_MISMATCH', 'primary key', '"k2"', 'missing');
    throwsCode(() => validateRows(s, [{ k: null, k2: 'a' }], pk), 'SCHEMA_MISMATCH', 'primary key', '"k"', 'null');
    throwsCode(() => validateRows(s, [], { primaryKey: ['zz'] }), 'INVALID_ARGUMENT', '"zz"');
    throwsCode(() => validateRows(s, [], { primaryKey: ['k', 'k'] }), 'INVALID_ARGUMENT', 'twice');
    assert.deepEqual(validateRows(s, [{ k2: null }], { primaryKey: [] }), [{ k: null, k2: null, v: null }], 'an empty key is no key');
    throwsCode(() => validateRows(ALL, [], { primaryKey: ['vec'] }), 'INVALID_ARGUMENT', '"vec"', 'cannot be a key');
    throwsCode(() => validateRows(ALL, [], { primaryKey: ['tags'] }), 'INVALID_ARGUMENT', '"tags"');
    assert.deepEqual(validateRows(s, [], { primaryKey: null }), []);
  });

  void it('accepts every generated value and normalizes it as specified (property)', () => {
    fc.assert(
      fc.property(schemaAndRowsArb(), ({ schema, rows }) => {
        const out = validateRows(schema, rows);
        assert.equal(out.length, rows.length);
        out.forEach((r, i) => {
          for (const c of schema.columns) assert.deepEqual(r[c.name], normalized(c.type, rows[i]![c.name]), `row ${i} column ${c.name}`);
        });
      }),
      { numRuns: RUNS },
    );
  });
});

void describe('rowsToRecordBatch / recordBatchToRows', () => {
  void it('round-trips every type, nulls included, with and without system columns, sliced and through IPC (property)', () => {
    fc.assert(
      fc.property(schemaAndRowsArb(), fc.nat(), fc.nat(), ({ schema, rows }, a, b) => {
        const valid = validateRows(schema, rows);
        const plain = rowsToRecordBatch(schema, valid, null);
        assert.equal(plain.numRows, valid.length);
        assert.deepEqual(recordBatchToRows(plain), valid);
        const ids = BigInt64Array.from(valid, (_, i) => BigInt(i) * 3n - 5n);
        const seqs = BigInt64Array.from(valid, (_, i) => BigInt(i + 100));
        const sys = rowsToRecordBatch(schema, valid, { _id: ids, _seq: seqs });
        assert.deepEqual(sys.schema.fields.map((f) => f.name), ['_id', '_seq', ...schema.columns.map((c) => c.name)]);
        const back = recordBatchToRows(sys);
        back.forEach((r, i) => {
          assert.deepEqual(r, { _id: ids[i], _seq: seqs[i], ...valid[i] });
        });
        // Slices (non-zero offsets in every buffer).
        const lo = valid.length === 0 ? 0 : a % valid.length;
        const hi = lo + (valid.length === 0 ? 0 : b % (valid.length - lo + 1));
        assert.deepEqual(recordBatchToRows(sys.slice(lo, hi)), back.slice(lo, hi));
        // Arrow IPC round trip proves the buffers are well-formed Arrow.
        const table = arrow.tableFromIPC(arrow.tableToIPC(new arrow.Table([sys])));
        const rowsBack = table.batches.flatMap((bt) => recordBatchToRows(bt));
        assert.deepEqual(rowsBack, back);
        // Column selection.
        const pick = schema.columns.map((c) => c.name).reverse();
        assert.deepEqual(recordBatchToRows(sys, pick), valid.map((r) => Object.fromEntries(pick.map((n) => [n, r[n]]))));
      }),
      { numRuns: RUNS },
    );
  });

  void it('survives Arrow IPC when one array is passed as both _id and _seq', () => {
    // apache-arrow's IPC writer breaks when one typed array backs two columns.
    const s = normalizeSchema({ a: { type: 'int32', nullable: false } });
    const ids = BigInt64Array.from([0n, 1n]);
    const batch = rowsToRecordBatch(s, [{ a: 0 }, { a: 7 }], { _id: ids, _seq: ids });
    const back = arrow.tableFromIPC(arrow.tableToIPC(new arrow.Table([batch]))).batches.flatMap((b) => recordBatchToRows(b));
    assert.deepEqual(back, [
      { _id: 0n, _seq: 0n, a: 0 },
      { _id: 1n, _seq: 1n, a: 7 },
    ]);
  });

  void it('coerces unnormalized values and rejects bad ones, naming row and column', () => {
    const s = normalizeSchema({ a: 'int64', b: { type: 'utf8', nullable: false } });
    const batch = rowsToRecordBatch(s, [{ a: 5, b: 'x' }], null);
    assert.deepEqual(recordBatchToRows(batch), [{ a: 5n, b: 'x' }]);
    throwsCode(() => rowsToRecordBatch(s, [{ a: 1n, b: 'x' }, { a: 1.5, b: 'y' }], null), 'SCHEMA_MISMATCH', 'row 1', '"a"');
    throwsCode(() => rowsToRecordBatch(s, [{ a: 1n }], null), 'SCHEMA_MISMATCH', 'row 0', '"b"', 'non-nullable');
    throwsCode(
      () => rowsToRecordBatch(s, [{ a: 1n, b: 'x' }], { _id: new BigInt64Array(2), _seq: new BigInt64Array(1) }),
      'INVALID_ARGUMENT',
      '_id',
    );
  });

  void it('marks field nullability from the schema and builds empty batches', () => {
    const s = normalizeSchema({ a: { type: 'int32', nullable: false }, b: 'utf8' });
    const batch = rowsToRecordBatch(s, [], null);
    assert.equal(batch.numRows, 0);
    assert.deepEqual(batch.schema.fields.map((f) => f.nullable), [false, true]);
    assert.deepEqual(recordBatchToRows(batch), []);
  });

  void it('reads foreign encodings: other timestamp units, DateMillisecond, LargeUtf8, and rejects unknown types', () => {
    const us = -1_500n;
    const fields = [
      new arrow.Field('ns', new arrow.Timestamp(arrow.TimeUnit.NANOSECOND)),
      new arrow.Field('s', new arrow.Timestamp(arrow.TimeUnit.SECOND)),
      new arrow.Field('us', new arrow.Timestamp(arrow.TimeUnit.MICROSECOND)),
      new arrow.Field('dm', new arrow.DateMillisecond()),
      new arrow.Field('lu', new arrow.LargeUtf8()),
    ];
    const children = [
      arrow.makeData({ type: fields[0]!.type as arrow.Timestamp, length: 1, nullCount: 0, data: new BigInt64Array([1_999_999n]) }),
      arrow.makeData({ type: fields[1]!.type as arrow.Timestamp, length: 1, nullCount: 0, data: new BigInt64Array([-2n]) }),
      arrow.makeData({ type: fields[2]!.type as arrow.Timestamp, length: 1, nullCount: 0, data: new BigInt64Array([us]) }),
      arrow.makeData({ type: new arrow.DateMillisecond(), length: 1, nullCount: 0, data: new BigInt64Array([86_400_000n]) }),
      arrow.vectorFromArray(['wide'], new arrow.LargeUtf8()).data[0]!,
    ];
    const batch = new arrow.RecordBatch(
      new arrow.Schema(fields),
      arrow.makeData({ type: new arrow.Struct(fields), length: 1, nullCount: 0, children }),
    );
    assert.deepEqual(recordBatchToRows(batch), [
      { ns: new Date(1), s: new Date(-2000), us: new Date(-2), dm: new Date(86_400_000), lu: 'wide' },
    ]);
    const uf = new arrow.Field('u', new arrow.Uint16(), true);
    const odd = new arrow.RecordBatch(
      new arrow.Schema([uf]),
      arrow.makeData({
        type: new arrow.Struct([uf]),
        length: 1,
        nullCount: 0,
        children: [arrow.makeData({ type: new arrow.Uint16(), length: 1, nullCount: 0, data: new Uint16Array([1]) })],
      }),
    );
    throwsCode(() => recordBatchToRows(odd), 'SCHEMA_MISMATCH', '"u"', 'Uint16');
    throwsCode(() => recordBatchToRows(batch, ['nope']), 'INVALID_ARGUMENT', '"nope"');
  });
});

void describe('projectBatch', () => {
  const v1 = normalizeSchema({ a: 'int32' });
  const v2 = addColumn(addColumn(addColumn(v1, { name: 'b', type: 'utf8' }), { name: 'c', type: { list: 'int64' }, nullable: false, default: [7n] }), {
    name: 'd',
    type: 'timestamp',
    default: new Date(5),
  });
  const old = rowsToRecordBatch(v1, [{ a: 1 }, { a: null }, { a: 3 }], { _id: new BigInt64Array([1n, 2n, 3n]), _seq: new BigInt64Array([9n, 9n, 9n]) });

  void it('fills columns added after the file was written with their default or null', () => {
    const p = projectBatch(old, v2);
    assert.deepEqual(p.schema.fields.map((f) => f.name), ['_id', '_seq', 'a', 'b', 'c', 'd']);
    assert.deepEqual(recordBatchToRows(p), [
      { _id: 1n, _seq: 9n, a: 1, b: null, c: [7n], d: new Date(5) },
      { _id: 2n, _seq: 9n, a: null, b: null, c: [7n], d: new Date(5) },
      { _id: 3n, _seq: 9n, a: 3, b: null, c: [7n], d: new Date(5) },
    ]);
    assert.deepEqual(recordBatchToRows(projectBatch(old.slice(1), v2, ['d', '_id'])), [
      { d: new Date(5), _id: 2n },
      { d: new Date(5), _id: 3n },
    ]);
    assert.deepEqual(recordBatchToRows(projectBatch(old, v2, ['a'])), [{ a: 1 }, { a: null }, { a: 3 }]);
  });

  void it('rejects unknown columns, missing system columns and type disagreements', () => {
    throwsCode(() => projectBatch(old, v2, ['zz']), 'INVALID_ARGUMENT', '"zz"');
    throwsCode(() => projectBatch(rowsToRecordBatch(v1, [{ a: 1 }], null), v2, ['_seq']), 'SCHEMA_MISMATCH', '_seq');
    const other = normalizeSchema({ a: 'utf8' });
    throwsCode(() => projectBatch(old, other, ['a']), 'SCHEMA_MISMATCH', '"a"', 'Int32', 'utf8');
    const strict = normalizeSchema({ a: 'int32', z: { type: 'int32', nullable: false } });
    throwsCode(() => projectBatch(old, strict), 'SCHEMA_MISMATCH', '"z"');
  });
});

// ---------------------------------------------------------------------------
// Keys

/** Reference order on normalized key values of the same type. */
function compareValue(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  if (typeof a === 'string' && typeof b === 'string') {
    return Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  }
  if (a instanceof Date && b instanceof Date) return Math.sign(a.getTime() - b.getTime());
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Math.sign(Buffer.compare(a, b));
  throw new Error('incomparable');
}

function compareTuple(cols: string[], a: Row, b: Row): number {
  for (const c of cols) {
    const r = compareValue(a[c], b[c]);
    if (r !== 0) return r;
  }
  return 0;
}

const keySchemaAndRows = fc
  .array(fc.constantFrom(...KEYABLE), { minLength: 1, maxLength: 3 })
  .chain((types) => {
    const schema = normalizeSchema(Object.fromEntries(types.map((t, i) => [`k${i}`, { type: t, nullable: false }])));
    const row = fc.tuple(...types.map((t) => valueArb(t, { nan: false })));
    return fc.array(row, { minLength: 0, maxLength: 30 }).map((tuples) => ({
      schema,
      pk: types.map((_, i) => `k${i}`),
      rows: validateRows(
        schema,
        tuples.map((vals) => Object.fromEntries(vals.map((v, i) => [`k${i}`, v]))),
      ),
    }));
  });

void describe('keyOf', () => {
  void it('orders like the key tuples and is injective (property)', () => {
    fc.assert(
      fc.property(keySchemaAndRows, ({ pk, rows }) => {
        const keys = rows.map((r) => keyOf(r, pk));
        for (let i = 0; i < rows.length; i++) {
          for (let j = 0; j < rows.length; j++) {
            const byValue = compareTuple(pk, rows[i]!, rows[j]!);
            const byKey = keys[i]! < keys[j]! ? -1 : keys[i]! > keys[j]! ? 1 : 0;
            assert.equal(byKey, byValue, `rows ${i} and ${j}`);
          }
        }
        for (const k of keys) for (let i = 0; i < k.length; i++) assert.ok(k.charCodeAt(i) < 0x100);
      }),
      { numRuns: RUNS },
    );
  });

  void it('sorting by keyOf equals sorting by values (property)', () => {
    fc.assert(
      fc.property(keySchemaAndRows, ({ pk, rows }) => {
        const byKey = [...rows].sort((a, b) => {
          const ka = keyOf(a, pk);
          const kb = keyOf(b, pk);
          return ka < kb ? -1 : ka > kb ? 1 : 0;
        });
        const byValue = [...rows].sort((a, b) => compareTuple(pk, a, b));
        assert.deepEqual(byKey.map((r) => keyOf(r, pk)), byValue.map((r) => keyOf(r, pk)));
      }),
      { numRuns: RUNS },
    );
  });

  void it('orders strings by code point, not UTF-16 unit, and handles NUL and prefixes', () => {
    const order = ['', '\u0000', '\u0000\u0000', '\u0000a', 'a', 'a\u0000', 'a\u0000\u0000', 'a\u0001', 'ab', 'é', '\uE000', '\uFFFF', '\u{10000}', '\u{10FFFF}'];
    const keys = order.map((s) => keyOf({ k: s }, ['k']));
    for (let i = 1; i < keys.length; i++) assert.ok(keys[i - 1]! < keys[i]!, `${JSON.stringify(order[i - 1])} < ${JSON.stringify(order[i])}`);
    // Composite: the first column's boundary is unambiguous.
    assert.notEqual(keyOf({ a: 'a', b: 'bc' }, ['a', 'b']), keyOf({ a: 'ab', b: 'c' }, ['a', 'b']));
    assert.ok(keyOf({ a: 'a', b: 'z' }, ['a', 'b']) < keyOf({ a: 'a\u0000', b: '' }, ['a', 'b']));
    assert.ok(keyOf({ a: new Uint8Array([1]), b: 9 }, ['a', 'b']) < keyOf({ a: new Uint8Array([1, 0]), b: 0 }, ['a', 'b']));
  });

  void it('orders numbers across the float range and treats -0 as 0', () => {
    const nums = [-Infinity, -1e300, -1, -Number.MIN_VALUE, 0, Number.MIN_VALUE, 1, 2 ** 53, 1e300, Infinity];
    const keys = nums.map((n) => keyOf({ k: n }, ['k']));
    for (let i = 1; i < keys.length; i++) assert.ok(keys[i - 1]! < keys[i]!);
    assert.equal(keyOf({ k: -0 }, ['k']), keyOf({ k: 0 }, ['k']));
    const big = [-(1n << 63n), -1n, 0n, 1n, (1n << 63n) - 1n].map((n) => keyOf({ k: n }, ['k']));
    for (let i = 1; i < big.length; i++) assert.ok(big[i - 1]! < big[i]!);
    assert.ok(keyOf({ k: false }, ['k']) < keyOf({ k: true }, ['k']));
    assert.ok(keyOf({ k: new Date(-1) }, ['k']) < keyOf({ k: new Date(0) }, ['k']));
  });

  void it('keeps values of different JS types apart', () => {
    const vals: unknown[] = [1, 1n, '1', true, new Date(1), new Uint8Array([1])];
    assert.equal(new Set(vals.map((v) => keyOf({ k: v }, ['k']))).size, vals.length);
  });

  void it('rejects null, missing, NaN and non-keyable values', () => {
    throwsCode(() => keyOf({ k: null }, ['k']), 'INVALID_ARGUMENT', '"k"', 'null');
    throwsCode(() => keyOf({}, ['k']), 'INVALID_ARGUMENT', '"k"', 'missing');
    throwsCode(() => keyOf({ k: Number.NaN }, ['k']), 'INVALID_ARGUMENT', '"k"', 'NaN');
    throwsCode(() => keyOf({ k: new Float32Array(2) }, ['k']), 'INVALID_ARGUMENT', '"k"');
    throwsCode(() => keyOf({ k: [1] }, ['k']), 'INVALID_ARGUMENT', '"k"');
    throwsCode(() => keyOf({ k: new Date(Number.NaN) }, ['k']), 'INVALID_ARGUMENT', '"k"');
    throwsCode(() => keyOf({ k: 1n << 64n }, ['k']), 'INVALID_ARGUMENT', '"k"');
    throwsCode(() => keyOf({ k: '\uDC00' }, ['k']), 'INVALID_ARGUMENT', '"k"');
    throwsCode(() => keyOf({}, ['constructor']), 'INVALID_ARGUMENT', 'missing');
  });

  void it('findDuplicateKeys lists repeated keys with their row indexes', () => {
    const rows: Row[] = [{ a: 1, b: 'x' }, { a: 2, b: 'x' }, { a: 1, b: 'x' }, { a: 1, b: 'y' }, { a: 1, b: 'x' }, { a: 2, b: 'x' }];
    const dups = findDuplicateKeys(rows, ['a', 'b']);
    assert.deepEqual(
      dups.map((d) => d.indexes),
      [
        [0, 2, 4],
        [1, 5],
      ],
    );
    assert.equal(dups[0]!.key, keyOf({ a: 1, b: 'x' }, ['a', 'b']));
    assert.deepEqual(findDuplicateKeys([{ a: 1 }, { a: 2 }], ['a']), []);
  });
});

void describe('string and byte order helpers', () => {
  void it('compareStrings agrees with UTF-8 byte order (property)', () => {
    fc.assert(
      fc.property(stringArb, stringArb, (a, b) => {
        assert.equal(Math.sign(compareStrings(a, b)), Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))));
        assert.equal(compareStrings(a, b), -compareStrings(b, a) || 0);
      }),
      { numRuns: RUNS * 4 },
    );
  });
  void it('compareBytes agrees with Buffer.compare (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5, max: 2 }), fc.uint8Array({ maxLength: 5, max: 2 }), (a, b) => {
        assert.equal(compareBytes(a, b), Buffer.compare(a, b));
      }),
      { numRuns: RUNS * 4 },
    );
  });
  void it('column type arbitrary covers nested types (sanity)', () => {
    const seen = fc.sample(columnTypeArb, 200).map((t) => (typeof t === 'string' ? 'scalar' : 'list' in t ? 'list' : 'vector'));
    assert.ok(seen.includes('scalar') && seen.includes('list') && seen.includes('vector'));
  });
});
