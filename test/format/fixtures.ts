// Shared builders for the format tests: a deterministic table holding every
// column type data files promise to round-trip, and value normalisation so
// tables can be compared with assert.deepStrictEqual.
import * as arrow from 'apache-arrow';

/** Small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const F = (name: string, type: arrow.DataType, nullable = true): arrow.Field => new arrow.Field(name, type, nullable);

export const VECTOR_DIM = 4;

export const ALL_TYPES_SCHEMA = new arrow.Schema(
  [
    F('_id', new arrow.Int64(), false),
    F('_seq', new arrow.Int64(), false),
    F('i32', new arrow.Int32()),
    F('i64', new arrow.Int64()),
    F('f32', new arrow.Float32()),
    F('f64', new arrow.Float64()),
    F('b', new arrow.Bool()),
    F('s', new arrow.Utf8()),
    F('bin', new arrow.Binary()),
    F('ts', new arrow.Timestamp(arrow.TimeUnit.MICROSECOND, 'UTC')),
    F('d', new arrow.DateDay()),
    F('l', new arrow.List(F('item', new arrow.Int32()))),
    F('ls', new arrow.List(F('item', new arrow.Utf8()))),
    F('ll', new arrow.List(F('item', new arrow.List(F('item', new arrow.Int64()))))),
    F('v', new arrow.FixedSizeList(VECTOR_DIM, F('item', new arrow.Float32(), false))),
    F('vn', new arrow.FixedSizeList(2, F('item', new arrow.Float64()))),
  ],
  new Map([['fixture', 'all-types']]),
);

const WORDS = ['', 'a', 'héllo', 'naïve café', '日本語テキスト', '🎉🚀 emoji', 'ab\u0000cd', 'Ωmega', 'x'.repeat(300), 'tab\tnew\nline'];

export interface ColumnValues {
  [name: string]: unknown[];
}

/** Plain JS values for `n` rows; null marks a null. `seed` varies the data. */
export function allTypesValues(n: number, seed = 1): ColumnValues {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const maybe = <T>(v: T, p = 0.15): T | null => (r() < p ? null : v);
  const cols: ColumnValues = {
    _id: [], _seq: [], i32: [], i64: [], f32: [], f64: [], b: [], s: [], bin: [], ts: [], d: [], l: [], ls: [], ll: [], v: [], vn: [],
  };
  const push = (k: string, v: unknown): void => {
    (cols[k] as unknown[]).push(v);
  };
  const specialF = [0, -0, NaN, Infinity, -Infinity, 1.5, -3.25, 1e-30, 3.4e38];
  for (let i = 0; i < n; i++) {
    push('_id', BigInt(i) * 7n + 1000n);
    push('_seq', BigInt(Math.floor(i / 10)));
    push('i32', maybe(i % 17 === 0 ? (i % 2 ? 2147483647 : -2147483648) : Math.floor(r() * 2000) - 1000));
    push('i64', maybe(i % 19 === 0 ? (i % 2 ? 9223372036854775807n : -9223372036854775808n) : BigInt(Math.floor(r() * 1e15)) - 500000000000000n));
    push('f32', maybe(Math.fround(i % 5 === 0 ? pick(specialF) : r() * 200 - 100)));
    push('f64', maybe(i % 5 === 0 ? pick(specialF) : r() * 1e6 - 5e5));
    push('b', maybe(r() < 0.5));
    push('s', maybe(pick(WORDS) + (r() < 0.5 ? String(i) : '')));
    const binLen = i % 97 === 0 ? 100_000 : Math.floor(r() * 40);
    push('bin', maybe(Uint8Array.from({ length: binLen }, (_, k) => (k * 31 + i) & 0xff)));
    // microseconds since the epoch, including before 1970
    push('ts', maybe(BigInt(Math.floor(r() * 4e15)) - 1_000_000_000_000_000n));
    push('d', maybe(Math.floor(r() * 40000) - 10000));
    push('l', maybe(Array.from({ length: Math.floor(r() * 4) }, () => maybe(Math.floor(r() * 100), 0.2))));
    push('ls', maybe(Array.from({ length: Math.floor(r() * 3) }, () => maybe(pick(WORDS), 0.2))));
    push(
      'll',
      maybe(Array.from({ length: Math.floor(r() * 3) }, () => maybe(Array.from({ length: Math.floor(r() * 3) }, () => maybe(BigInt(i), 0.2)), 0.2))),
    );
    push('v', maybe(Array.from({ length: VECTOR_DIM }, () => Math.fround(r() * 2 - 1)), 0.1));
    push('vn', maybe([maybe(r()), maybe(r())], 0.1));
  }
  return cols;
}

function validityOf(values: unknown[]): { nullBitmap: Uint8Array; nullCount: number } {
  const nullBitmap = new Uint8Array((values.length + 7) >> 3);
  let nullCount = 0;
  values.forEach((v, i) => {
    if (v === null) nullCount++;
    else nullBitmap[i >> 3] = (nullBitmap[i >> 3] ?? 0) | (1 << (i & 7));
  });
  return { nullBitmap, nullCount };
}

/** Build an Arrow vector of `type` from plain values (timestamps as bigint µs, dates as days). */
export function vectorOf(type: arrow.DataType, values: unknown[]): arrow.Vector {
  if (arrow.DataType.isTimestamp(type)) {
    const data = BigInt64Array.from(values, (v) => (v === null ? 0n : (v as bigint)));
    return arrow.makeVector(arrow.makeData({ type: type, length: values.length, ...validityOf(values), data }));
  }
  if (arrow.DataType.isDate(type)) {
    const data = Int32Array.from(values, (v) => (v === null ? 0 : (v as number)));
    return arrow.makeVector(arrow.makeData({ type: type as arrow.DateDay, length: values.length, ...validityOf(values), data }));
  }
  if (arrow.DataType.isFixedSizeList(type)) {
    // Built by hand: arrow's builder can split a fixed-size list's parent and
    // child across chunks, leaving the first chunk's child short.
    const child = type.children[0] as arrow.Field;
    const size = type.listSize;
    const flat: unknown[] = [];
    for (const v of values) {
      for (let j = 0; j < size; j++) flat.push(v === null ? (child.nullable ? null : 0) : (v as unknown[])[j]);
    }
    const childData = single(vectorOf(child.type as arrow.DataType, flat));
    return arrow.makeVector(arrow.makeData({ type, length: values.length, ...validityOf(values), child: childData }));
  }
  return arrow.vectorFromArray(values, type);
}

function single(v: arrow.Vector): arrow.Data {
  if (v.data.length !== 1) throw new Error(`expected one chunk, got ${v.data.length}`);
  return v.data[0] as arrow.Data;
}

export function tableOf(schema: arrow.Schema, cols: ColumnValues, batchRows?: number): arrow.Table {
  const n = (cols[schema.fields[0]?.name ?? ''] ?? []).length;
  const batches: arrow.RecordBatch[] = [];
  const step = batchRows ?? Math.max(n, 1);
  for (let start = 0; start < n; start += step) {
    const end = Math.min(n, start + step);
    const children = schema.fields.map((f) => single(vectorOf(f.type as arrow.DataType, (cols[f.name] ?? []).slice(start, end))));
    const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length: end - start, nullCount: 0, children });
    batches.push(new arrow.RecordBatch(schema, struct));
  }
  return batches.length ? new arrow.Table(batches) : new arrow.Table(schema);
}

export function allTypesTable(n: number, seed = 1, batchRows?: number): arrow.Table {
  return tableOf(ALL_TYPES_SCHEMA, allTypesValues(n, seed), batchRows);
}

/** A JS value for comparisons: vectors become arrays, bytes become hex strings. */
export function plain(v: unknown): unknown {
  if (v instanceof arrow.Vector) return Array.from({ length: v.length }, (_, i) => plain(v.get(i) as unknown));
  if (v instanceof Uint8Array) return `0x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (v === undefined) return null;
  return v;
}

/** Every value of column `name` in rows [start, end) as plain JS. */
export function columnValues(t: arrow.Table | arrow.RecordBatch, name: string, start = 0, end = t.numRows): unknown[] {
  const vec = t.getChild(name);
  if (!vec) throw new Error(`no column ${name}`);
  const out: unknown[] = [];
  for (let i = start; i < end; i++) out.push(plain(vec.get(i) as unknown));
  return out;
}

/** A field list as strings: name, type and nullability, recursively. */
export function describeFields(fields: readonly arrow.Field[]): string[] {
  return fields.map((f) => {
    const type = f.type as arrow.DataType;
    const kids = type.children?.length ? `<${describeFields(type.children).join(',')}>` : '';
    return `${f.name}:${(type as { toString(): string }).toString()}${kids}:${f.nullable ? 'null' : 'nonnull'}`;
  });
}
