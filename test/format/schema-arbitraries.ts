// fast-check generators for schemas, row values and rows, shared by the
// schema and predicate tests. Values come in every accepted input form
// (e.g. int64 as bigint or safe number, date as Date or 'YYYY-MM-DD').
import fc from 'fast-check';
import type { ColumnType, Row, ScalarType, TableSchema } from '../../src/format/schema.js';
import { normalizeSchema } from '../../src/format/schema.js';

/** Property-test runs; raise with FLOE_TORTURE_ROUNDS for long runs. */
export const RUNS = Number(process.env.FLOE_TORTURE_ROUNDS ?? 150);

export const SCALARS: readonly ScalarType[] = ['int32', 'int64', 'float32', 'float64', 'bool', 'utf8', 'binary', 'timestamp', 'date'];
export const KEYABLE: readonly ScalarType[] = ['int32', 'int64', 'float32', 'float64', 'bool', 'utf8', 'binary', 'timestamp', 'date'];

const MS_PER_DAY = 86_400_000;
const MAX_MS = 8.64e15;

export const columnTypeArb: fc.Arbitrary<ColumnType> = fc.letrec<{ t: ColumnType }>((tie) => ({
  t: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...SCALARS),
    fc.constantFrom(...SCALARS),
    fc.constantFrom(...SCALARS),
    tie('t').map((t) => ({ list: t })),
    fc.integer({ min: 1, max: 6 }).map((n) => ({ vector: n })),
  ),
})).t;

/** Strings with awkward code points: NUL, surrogate pairs, U+E000..U+FFFF, combining marks. */
export const stringArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', 'a', 'b', 'ab', 'a\u0000', '\u0000', '\uFFFF', '\uE000', '\u{10000}', '\u{1F600}', 'é', 'e\u0301', 'Z'),
  fc.string({ unit: fc.constantFrom('a', 'b', '\u0000', '\uFFFF', '\u{10000}', 'é'), maxLength: 4 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
);

const int32Arb = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.integer());
const int64Arb = fc.oneof(fc.bigInt({ min: -3n, max: 3n }), fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }));
const msArb = fc.oneof(fc.integer({ min: -3, max: 3 }).map((n) => n * 1000), fc.integer({ min: -MAX_MS, max: MAX_MS }));
const dayArb = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.integer({ min: -100_000_000, max: 100_000_000 }));

/** A non-null value for `t` in one of its accepted input forms. */
export function valueArb(t: ColumnType, opts: { nan?: boolean } = {}): fc.Arbitrary<unknown> {
  const nan = opts.nan ?? true;
  if (typeof t !== 'string') {
    if ('list' in t) return fc.array(fc.option(valueArb(t.list, opts), { nil: null, freq: 4 }), { maxLength: 4 });
    const dims = t.vector;
    const el = fc.oneof(fc.integer({ min: -2, max: 2 }), fc.float({ noNaN: true, noDefaultInfinity: true }));
    return fc.oneof(
      fc.array(el, { minLength: dims, maxLength: dims }),
      fc.array(el, { minLength: dims, maxLength: dims }).map((a) => Float32Array.from(a)),
    );
  }
  switch (t) {
    case 'int32':
      return int32Arb;
    case 'int64':
      return fc.oneof(int64Arb, fc.integer({ min: -3, max: 3 }), fc.maxSafeInteger());
    case 'float32':
      return fc.oneof(fc.integer({ min: -3, max: 3 }), fc.float({ noNaN: !nan }), fc.double({ noNaN: !nan, min: -1e30, max: 1e30 }));
    case 'float64':
      return fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double({ noNaN: !nan }), fc.constantFrom(0.5, -0, 0));
    case 'bool':
      return fc.boolean();
    case 'utf8':
      return stringArb;
    case 'binary':
      return fc.oneof(
        fc.uint8Array({ maxLength: 6, min: 0, max: 3 }),
        fc.uint8Array({ maxLength: 6 }),
        fc.uint8Array({ maxLength: 4 }).map((b) => Buffer.from(b)),
      );
    case 'timestamp':
      return fc.oneof(
        msArb.map((ms) => new Date(ms)),
        msArb.map((ms) => BigInt(ms) * 1000n),
      );
    case 'date':
      return fc.oneof(
        dayArb.map((d) => new Date(d * MS_PER_DAY)),
        fc.integer({ min: -719_528, max: 2_932_896 }).map((d) => new Date(d * MS_PER_DAY).toISOString().slice(0, 10)),
      );
  }
}

/** Normalized form of a value produced by `valueArb` (what validateRows returns). */
export function normalized(t: ColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof t !== 'string') {
    if ('list' in t) return (v as unknown[]).map((e) => normalized(t.list, e));
    return Float32Array.from(v as ArrayLike<number>);
  }
  switch (t) {
    case 'int32':
    case 'float64':
    case 'bool':
    case 'utf8':
      return t === 'int32' && v === 0 ? 0 : v;
    case 'int64':
      return BigInt(v as number | bigint);
    case 'float32':
      return Math.fround(v as number);
    case 'binary':
      return new Uint8Array(v as Uint8Array);
    case 'timestamp':
      return v instanceof Date ? new Date(v.getTime()) : new Date(Number((v as bigint) / 1000n));
    case 'date':
      return v instanceof Date ? new Date(v.getTime()) : new Date(`${v as string}T00:00:00Z`);
  }
}

const nameArb = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9 é]{0,7}$/);

export interface GeneratedSchema {
  schema: TableSchema;
}

/** A random valid schema (no defaults; the default tests build their own). */
export const schemaArb: fc.Arbitrary<TableSchema> = fc
  .uniqueArray(fc.record({ name: nameArb, type: columnTypeArb, nullable: fc.boolean() }), {
    minLength: 1,
    maxLength: 6,
    selector: (c) => c.name.toLowerCase(),
  })
  .map((cols) => normalizeSchema(Object.fromEntries(cols.map((c) => [c.name, { type: c.type, nullable: c.nullable }]))));

/** Raw rows for `schema` (nullable columns sometimes null or absent). */
export function rowsArb(schema: TableSchema, opts: { maxRows?: number; nan?: boolean } = {}): fc.Arbitrary<Row[]> {
  const rowArb = fc.tuple(
    ...schema.columns.map((c) =>
      c.nullable ? fc.oneof({ weight: 4, arbitrary: valueArb(c.type, opts) }, { weight: 1, arbitrary: fc.constantFrom(null, undefined) }) : valueArb(c.type, opts),
    ),
  );
  return fc.array(rowArb, { maxLength: opts.maxRows ?? 12 }).map((tuples) =>
    tuples.map((vals) => {
      const r: Row = {};
      schema.columns.forEach((c, i) => {
        if (vals[i] !== undefined) r[c.name] = vals[i];
      });
      return r;
    }),
  );
}

/** Schema and rows together. */
export const schemaAndRowsArb = (opts: { maxRows?: number; nan?: boolean } = {}): fc.Arbitrary<{ schema: TableSchema; rows: Row[] }> =>
  schemaArb.chain((schema) => rowsArb(schema, opts).map((rows) => ({ schema, rows })));
