/**
 * Table schemas, row values, primary-key encoding and the Arrow mapping.
 *
 * Pure module: no I/O, no clock, no randomness. Everything here is a
 * function of its arguments, so callers can validate before writing anything.
 *
 * Schema. A `TableSchema` is an ordered list of user columns. Names are
 * non-empty, at most 255 code points, well-formed Unicode without control
 * characters, unique (also ignoring ASCII/Unicode case, because SQL engines
 * that read our files fold case), and never start with `_`: that prefix is
 * reserved for the engine's system columns `_id` and `_seq` (int64, non-null),
 * which live in every data file but never in a `TableSchema`. Schemas returned
 * by this module are deeply frozen; `addColumn` returns a new one.
 *
 * Row values in JavaScript, per column type (`null`/`undefined` mean null and
 * are accepted only for nullable columns; a missing column takes its default,
 * else null; a present `null` never takes the default):
 *   int32      number, integer in [-2^31, 2^31-1]
 *   int64      bigint in [-2^63, 2^63-1]; a safe-integer number is accepted
 *              and converted; fractions and unsafe numbers are rejected
 *   float32    number, rounded to float32 on input (so it round-trips exactly)
 *   float64    number
 *              (NaN is allowed in float columns that are not part of the
 *              primary key; ±Infinity is allowed)
 *   bool       boolean
 *   utf8       string; lone surrogates are rejected (UTF-8 cannot hold them)
 *   binary     Uint8Array (a Buffer is accepted and copied)
 *   timestamp  Date; a bigint of microseconds since the epoch is accepted but
 *              must be a whole number of milliseconds, because rows carry Date
 *              and we never silently drop precision. Stored as microseconds
 *              (Arrow Timestamp MICROSECOND "UTC"); read back as Date (values
 *              written by other tools with sub-millisecond parts are floored).
 *   date       Date at UTC midnight, or a 'YYYY-MM-DD' string; read back as a
 *              Date at UTC midnight. Stored as Arrow DateDay.
 *   list<T>    array whose elements follow T's rules; elements may be null
 *   vector<N>  Float32Array or number[] of exactly N finite numbers (after
 *              float32 rounding); read back as Float32Array
 * Normalized rows are new objects holding copies of every mutable value
 * (Date, Uint8Array, Float32Array, arrays), with keys in schema order.
 *
 * Defaults are stored in `ColumnSpec.default` in their encoded (JSON) form:
 * int32/float numbers (non-finite floats and -0 as the strings "NaN",
 * "Infinity", "-Infinity", "-0"); int64 a decimal string; timestamp a decimal
 * string of microseconds; date an integer number of days since 1970-01-01;
 * binary base64; bool/utf8 as is; list an array of encoded elements; vector an
 * array of numbers (-0 as "-0"). `encodeColumnValue`/`decodeColumnValue` convert.
 *
 * Primary keys. `keyOf` encodes key values as a string of characters
 * U+0000..U+00FF (one character per byte) such that comparing two encodings
 * with `<` (UTF-16 code units, never `localeCompare`) orders them exactly as
 * the key tuples: numbers numerically (-0 equals 0), bigints numerically,
 * Dates by time, booleans false < true, strings by Unicode code point (which
 * is UTF-8 byte order, the order Parquet statistics use), byte arrays
 * lexicographically by unsigned byte, tuples lexicographically. The encoding
 * is injective: equal strings mean equal key tuples. Each component carries a
 * one-character type tag, so values of different JS types never collide.
 */
import * as arrow from 'apache-arrow';
import { FloeError, type ErrorCode } from '../errors.js';

// ---------------------------------------------------------------------------
// Types

export const SCALAR_TYPES = ['int32', 'int64', 'float32', 'float64', 'bool', 'utf8', 'binary', 'timestamp', 'date'] as const;
export type ScalarType = (typeof SCALAR_TYPES)[number];
export type ColumnType = ScalarType | { list: ColumnType } | { vector: number };

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  nullable: boolean;
  /** Encoded form (see module comment); absent means "no default". */
  default?: JsonValue;
}

export interface TableSchema {
  columns: ColumnSpec[];
}

/** One column as a user declares it: a bare type (nullable) or a spec. */
export type ColumnInput = ColumnType | { type: ColumnType; nullable?: boolean; default?: unknown };
export type SchemaInput = Record<string, ColumnInput> | arrow.Schema;
/** A column to add: `nullable` defaults to true; `default` is a row value or its encoded form. */
export interface ColumnSpecInput {
  name: string;
  type: ColumnType;
  nullable?: boolean;
  default?: unknown;
}

/** A row: column name -> JS value as described in the module comment. */
export type Row = Record<string, unknown>;

export const SYSTEM_COLUMNS = ['_id', '_seq'] as const;
export const MAX_COLUMN_NAME_LENGTH = 255;
export const MAX_VECTOR_DIMS = 65536;
/** Deepest list nesting accepted (also stops cyclic type objects). */
export const MAX_TYPE_DEPTH = 8;
export const SCHEMA_JSON_VERSION = 1;

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const MS_PER_DAY = 86_400_000;
/** Largest |ms| a JS Date can hold. */
const MAX_DATE_MS = 8.64e15;

/** A value-level problem; callers turn it into a FloeError naming row and column. */
export class ValueProblem extends Error {
  constructor(
    message: string,
    readonly code: ErrorCode = 'SCHEMA_MISMATCH',
  ) {
    super(message);
    this.name = 'ValueProblem';
  }
}

// ---------------------------------------------------------------------------
// Small helpers shared with the predicate module

export function typeName(t: ColumnType): string {
  if (typeof t === 'string') return t;
  if ('list' in t) return `list<${typeName(t.list)}>`;
  return `vector<${t.vector}>`;
}

export function sameType(a: ColumnType, b: ColumnType): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  if ('list' in a) return 'list' in b && sameType(a.list, b.list);
  return 'vector' in b && a.vector === b.vector;
}

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'undefined':
      return 'undefined';
    case 'number':
      return `number ${Object.is(v, -0) ? '-0' : String(v)}`;
    case 'bigint':
      return `bigint ${v}n`;
    case 'string':
      return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
    case 'boolean':
      return `boolean ${v}`;
    case 'object': {
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'invalid Date' : `Date ${v.toISOString()}`;
      if (Array.isArray(v)) return `array(${v.length})`;
      if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.byteLength} bytes)`;
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto === Object.prototype || proto === null) return 'object';
      const ctor = (v as { constructor?: { name?: unknown } }).constructor;
      return typeof ctor?.name === 'string' ? ctor.name : 'object';
    }
    default:
      return typeof v;
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Own property or undefined: never reads inherited names like `constructor`. */
export function ownValue(o: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(o, name) ? o[name] : undefined;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** True when `s` has an unpaired surrogate (cannot be encoded as UTF-8). */
export function hasLoneSurrogate(s: string): boolean {
  if (!SURROGATE.test(s)) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) i++;
      else return true;
    } else if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

/**
 * Compare strings by Unicode code point (= UTF-8 byte order). JavaScript's
 * `<` compares UTF-16 code units, which disagrees when a surrogate pair
 * meets a character in U+E000..U+FFFF.
 */
export function compareStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Move surrogates above U+E000..U+FFFF so the code-unit order becomes
    // the code-point order.
    if (x >= 0xd800) x += x <= 0xdfff ? 0x2000 : -0x800;
    if (y >= 0xd800) y += y <= 0xdfff ? 0x2000 : -0x800;
    return x < y ? -1 : 1;
  }
  return a.length - b.length === 0 ? 0 : a.length < b.length ? -1 : 1;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function cloneValue(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Date) return new Date(v.getTime());
  if (v instanceof Float32Array) return v.slice();
  if (v instanceof Uint8Array) return v.slice();
  if (Array.isArray(v)) return v.map(cloneValue);
  return v;
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

// ---------------------------------------------------------------------------
// Column types and names

function parseType(t: unknown, depth: number): ColumnType {
  if (typeof t === 'string') {
    if ((SCALAR_TYPES as readonly string[]).includes(t)) return t as ScalarType;
    throw new ValueProblem(`unsupported type ${JSON.stringify(t)} (supported: ${SCALAR_TYPES.join(', ')}, {list: T}, {vector: N})`, 'INVALID_ARGUMENT');
  }
  if (isPlainObject(t)) {
    const keys = Object.keys(t);
    if (keys.length === 1 && keys[0] === 'list') {
      if (depth >= MAX_TYPE_DEPTH) throw new ValueProblem(`list nesting deeper than ${MAX_TYPE_DEPTH}`, 'INVALID_ARGUMENT');
      return { list: parseType(t.list, depth + 1) };
    }
    if (keys.length === 1 && keys[0] === 'vector') {
      const d = t.vector;
      if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > MAX_VECTOR_DIMS) {
        throw new ValueProblem(`vector dimensions must be an integer in 1..${MAX_VECTOR_DIMS}, got ${describeValue(d)}`, 'INVALID_ARGUMENT');
      }
      return { vector: d };
    }
  }
  throw new ValueProblem(`invalid column type ${describeValue(t)}: expected a type name, {list: T} or {vector: N}`, 'INVALID_ARGUMENT');
}

/** Validate a column type written by a user or read from JSON; throws INVALID_ARGUMENT. */
export function parseColumnType(t: unknown, column = '?'): ColumnType {
  try {
    return parseType(t, 0);
  } catch (err) {
    throw wrapProblem(err, `column "${column}"`);
  }
}

/** Throws INVALID_ARGUMENT unless `name` is a valid user column name. */
export function validateColumnName(name: unknown): asserts name is string {
  const bad = (why: string) =>
    new FloeError('INVALID_ARGUMENT', `invalid column name ${typeof name === 'string' ? JSON.stringify(name) : describeValue(name)}: ${why}`);
  if (typeof name !== 'string') throw bad('not a string');
  if (name.length === 0) throw bad('empty');
  if (hasLoneSurrogate(name)) throw bad('contains an unpaired surrogate');
  let points = 0;
  for (const ch of name) {
    points++;
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) throw bad(`control character U+${c.toString(16).padStart(4, '0')}`);
  }
  if (points > MAX_COLUMN_NAME_LENGTH) throw bad(`longer than ${MAX_COLUMN_NAME_LENGTH} characters`);
  if (name.startsWith('_')) throw bad('names starting with "_" are reserved for system columns (_id, _seq)');
}

function wrapProblem(err: unknown, where: string): unknown {
  if (err instanceof ValueProblem) return new FloeError(err.code, `${where}: ${err.message}`);
  return err;
}

// ---------------------------------------------------------------------------
// Values

function parseIsoDate(s: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return undefined;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const dt = new Date(0);
  dt.setUTCFullYear(y, mo - 1, d);
  if (dt.getUTCFullYear() !== y || dt.getUTCMonth() !== mo - 1 || dt.getUTCDate() !== d) return undefined;
  return dt.getTime();
}

function coerceScalar(t: ScalarType, v: unknown): unknown {
  switch (t) {
    case 'int32':
      if (typeof v === 'number' && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX) return v === 0 ? 0 : v;
      throw new ValueProblem(`expected int32 (an integer number in [-2^31, 2^31-1]), got ${describeValue(v)}`);
    case 'int64':
      if (typeof v === 'bigint') {
        if (v >= INT64_MIN && v <= INT64_MAX) return v;
        throw new ValueProblem(`expected int64, got ${describeValue(v)} (out of the signed 64-bit range)`);
      }
      if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
      throw new ValueProblem(
        `expected int64 (a bigint, or a number that is a safe integer), got ${describeValue(v)}` +
          (typeof v === 'number' && Number.isInteger(v) ? ' (beyond Number.MAX_SAFE_INTEGER: pass a bigint)' : ''),
      );
    case 'float32':
      if (typeof v === 'number') return Math.fround(v);
      throw new ValueProblem(`expected float32 (a number), got ${describeValue(v)}`);
    case 'float64':
      if (typeof v === 'number') return v;
      throw new ValueProblem(`expected float64 (a number), got ${describeValue(v)}`);
    case 'bool':
      if (typeof v === 'boolean') return v;
      throw new ValueProblem(`expected bool (a boolean), got ${describeValue(v)}`);
    case 'utf8':
      if (typeof v === 'string') {
        if (hasLoneSurrogate(v)) throw new ValueProblem(`string has an unpaired surrogate and cannot be stored as UTF-8`);
        return v;
      }
      throw new ValueProblem(`expected utf8 (a string), got ${describeValue(v)}`);
    case 'binary':
      if (v instanceof Uint8Array) return new Uint8Array(v);
      throw new ValueProblem(`expected binary (a Uint8Array), got ${describeValue(v)}`);
    case 'timestamp': {
      if (v instanceof Date) {
        const ms = v.getTime();
        if (Number.isNaN(ms)) throw new ValueProblem('expected timestamp, got an invalid Date');
        return new Date(ms);
      }
      if (typeof v === 'bigint') {
        if (v % 1000n !== 0n) {
          throw new ValueProblem(`timestamp ${v}n µs has a sub-millisecond part, which a Date cannot hold; round it to whole milliseconds`);
        }
        const ms = v / 1000n;
        if (ms > BigInt(MAX_DATE_MS) || ms < -BigInt(MAX_DATE_MS)) throw new ValueProblem(`timestamp ${v}n µs is outside the Date range`);
        return new Date(Number(ms));
      }
      throw new ValueProblem(`expected timestamp (a Date, or a bigint of microseconds since the epoch), got ${describeValue(v)}`);
    }
    case 'date': {
      if (v instanceof Date) {
        const ms = v.getTime();
        if (Number.isNaN(ms)) throw new ValueProblem('expected date, got an invalid Date');
        if (ms % MS_PER_DAY !== 0) throw new ValueProblem(`expected date (a Date at UTC midnight or 'YYYY-MM-DD'), got ${describeValue(v)}`);
        return new Date(ms);
      }
      if (typeof v === 'string') {
        const ms = parseIsoDate(v);
        if (ms === undefined) throw new ValueProblem(`expected date as 'YYYY-MM-DD', got ${describeValue(v)}`);
        return new Date(ms);
      }
      throw new ValueProblem(`expected date (a Date at UTC midnight or 'YYYY-MM-DD'), got ${describeValue(v)}`);
    }
  }
}

/**
 * Normalize one non-null value for `type` (a fresh copy; see module comment).
 * Throws ValueProblem. For list elements, null/undefined become null.
 */
export function coerceValue(type: ColumnType, v: unknown): unknown {
  if (typeof type === 'string') return coerceScalar(type, v);
  if ('list' in type) {
    if (!Array.isArray(v)) throw new ValueProblem(`expected ${typeName(type)} (an array), got ${describeValue(v)}`);
    const out: unknown[] = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) {
      const e: unknown = v[i];
      if (e === null || e === undefined) {
        out[i] = null;
        continue;
      }
      try {
        out[i] = coerceValue(type.list, e);
      } catch (err) {
        if (err instanceof ValueProblem) throw new ValueProblem(`element [${i}]: ${err.message}`, err.code);
        throw err;
      }
    }
    return out;
  }
  const dims = type.vector;
  if (!(v instanceof Float32Array) && !Array.isArray(v)) {
    throw new ValueProblem(`expected vector<${dims}> (a Float32Array or number[]), got ${describeValue(v)}`);
  }
  if (v.length !== dims) throw new ValueProblem(`expected vector<${dims}>, got ${v.length} dimensions`);
  const out = new Float32Array(dims);
  for (let i = 0; i < dims; i++) {
    const x: unknown = v[i];
    if (typeof x !== 'number') throw new ValueProblem(`vector element [${i}]: expected a number, got ${describeValue(x)}`);
    const f = Math.fround(x);
    if (!Number.isFinite(f)) throw new ValueProblem(`vector element [${i}] is ${x}: vectors must hold finite float32 values`);
    out[i] = f;
  }
  return out;
}

/** Encode a normalized value of `type` to JSON (see module comment). */
export function encodeColumnValue(type: ColumnType, v: unknown): JsonValue {
  if (v === null || v === undefined) return null;
  if (typeof type !== 'string') {
    if ('list' in type) return (v as unknown[]).map((e) => encodeColumnValue(type.list, e));
    return Array.from(v as Float32Array, (x) => (Object.is(x, -0) ? '-0' : x));
  }
  switch (type) {
    case 'int32':
    case 'bool':
    case 'utf8':
      return v as JsonValue;
    case 'float32':
    case 'float64': {
      const n = v as number;
      if (Object.is(n, -0)) return '-0';
      return Number.isFinite(n) ? n : String(n);
    }
    case 'int64':
      return (v as bigint).toString();
    case 'binary': {
      const b = v as Uint8Array;
      return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
    }
    case 'timestamp':
      return (BigInt((v as Date).getTime()) * 1000n).toString();
    case 'date':
      return Math.floor((v as Date).getTime() / MS_PER_DAY);
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decode the JSON form of a `type` value; throws ValueProblem when malformed. */
export function decodeColumnValue(type: ColumnType, j: unknown): unknown {
  if (j === null || j === undefined) return null;
  const bad = () => new ValueProblem(`${describeValue(j)} is not an encoded ${typeName(type)} value`);
  if (typeof type !== 'string') {
    if (!Array.isArray(j)) throw bad();
    if ('list' in type) return j.map((e) => decodeColumnValue(type.list, e));
    return coerceValue(type, j.map((x: unknown) => (x === '-0' ? -0 : x)));
  }
  switch (type) {
    case 'int32':
    case 'bool':
    case 'utf8':
      return coerceScalar(type, j);
    case 'float32':
    case 'float64':
      if (typeof j === 'string') {
        if (j === 'NaN' || j === 'Infinity' || j === '-Infinity' || j === '-0') return coerceScalar(type, Number(j));
        throw bad();
      }
      if (typeof j !== 'number') throw bad();
      return coerceScalar(type, j);
    case 'int64':
      if (typeof j !== 'string' || !/^-?\d{1,19}$/.test(j)) throw bad();
      return coerceScalar(type, BigInt(j));
    case 'binary':
      if (typeof j !== 'string' || !BASE64.test(j)) throw bad();
      return new Uint8Array(Buffer.from(j, 'base64'));
    case 'timestamp': {
      if (typeof j !== 'string' || !/^-?\d{1,19}$/.test(j)) throw bad();
      return coerceScalar(type, BigInt(j));
    }
    case 'date': {
      if (typeof j !== 'number' || !Number.isInteger(j) || Math.abs(j) > MAX_DATE_MS / MS_PER_DAY) throw bad();
      return new Date(j * MS_PER_DAY);
    }
  }
}

/**
 * A default given by a user: a row value, or (for addColumn callers holding
 * a ColumnSpec) its encoded form. The two forms differ in JS type for every
 * column type where the encoding differs, so trying the row form first and
 * the encoded form second is unambiguous.
 */
function defaultFromInput(type: ColumnType, v: unknown): JsonValue {
  let value: unknown;
  try {
    value = coerceValue(type, v);
  } catch (first) {
    if (!(first instanceof ValueProblem)) throw first;
    try {
      value = decodeColumnValue(type, v);
    } catch (second) {
      if (second instanceof ValueProblem) throw new ValueProblem(`invalid default: ${first.message}`, 'INVALID_ARGUMENT');
      throw second;
    }
  }
  return encodeColumnValue(type, value);
}

/** The default of `spec` as a fresh row value, or null when it has none. */
export function defaultValue(spec: ColumnSpec): unknown {
  return spec.default === undefined || spec.default === null ? null : decodeColumnValue(spec.type, spec.default);
}

// ---------------------------------------------------------------------------
// Schemas

function makeSpec(name: string, type: ColumnType, nullable: unknown, dflt: unknown, hasDefault: boolean): ColumnSpec {
  if (nullable !== undefined && typeof nullable !== 'boolean') {
    throw new FloeError('INVALID_ARGUMENT', `column "${name}": nullable must be a boolean, got ${describeValue(nullable)}`);
  }
  const spec: ColumnSpec = { name, type, nullable: nullable ?? true };
  if (hasDefault && dflt !== undefined && dflt !== null) {
    try {
      spec.default = defaultFromInput(type, dflt);
    } catch (err) {
      throw wrapProblem(err, `column "${name}"`);
    }
  } else if (hasDefault && dflt === null && !spec.nullable) {
    throw new FloeError('INVALID_ARGUMENT', `column "${name}": default null is not allowed on a non-nullable column`);
  }
  return spec;
}

function finishSchema(columns: ColumnSpec[]): TableSchema {
  if (columns.length === 0) throw new FloeError('INVALID_ARGUMENT', 'a schema needs at least one column');
  const seen = new Map<string, string>();
  for (const c of columns) {
    validateColumnName(c.name);
    const folded = c.name.toLowerCase();
    const prev = seen.get(folded);
    if (prev !== undefined) {
      throw new FloeError(
        'INVALID_ARGUMENT',
        prev === c.name ? `duplicate column "${c.name}"` : `columns "${prev}" and "${c.name}" differ only in case, which SQL readers cannot tell apart`,
      );
    }
    seen.set(folded, c.name);
  }
  return deepFreeze({ columns });
}

function isArrowSchema(x: unknown): x is arrow.Schema {
  return x instanceof arrow.Schema || (typeof x === 'object' && x !== null && !isPlainObject(x) && Array.isArray((x as { fields?: unknown }).fields));
}

/** Arrow's own rendering of a type, e.g. `Timestamp<MICROSECOND, UTC>`. */
export function arrowTypeName(t: arrow.DataType): string {
  const f: unknown = Reflect.get(t, 'toString');
  const s: unknown = typeof f === 'function' ? Reflect.apply(f, t, []) : undefined;
  return typeof s === 'string' ? s : (arrow.Type[t.typeId] ?? 'unknown');
}

/** Map an Arrow type to a floe column type, or undefined when unsupported. */
export function columnTypeFromArrow(t: arrow.DataType, depth = 0): ColumnType | undefined {
  switch (t.typeId) {
    case arrow.Type.Int: {
      const it = t as arrow.Int;
      if (!it.isSigned) return undefined;
      return it.bitWidth === 32 ? 'int32' : it.bitWidth === 64 ? 'int64' : undefined;
    }
    case arrow.Type.Float: {
      const p = (t as arrow.Float).precision;
      return p === arrow.Precision.SINGLE ? 'float32' : p === arrow.Precision.DOUBLE ? 'float64' : undefined;
    }
    case arrow.Type.Bool:
      return 'bool';
    case arrow.Type.Utf8:
    case arrow.Type.LargeUtf8:
      return 'utf8';
    case arrow.Type.Binary:
    case arrow.Type.LargeBinary:
      return 'binary';
    case arrow.Type.Timestamp:
      return 'timestamp';
    case arrow.Type.Date:
      return 'date';
    case arrow.Type.List: {
      if (depth >= MAX_TYPE_DEPTH) return undefined;
      const child = (t as arrow.List).children[0];
      const inner = child ? columnTypeFromArrow(child.type as arrow.DataType, depth + 1) : undefined;
      return inner === undefined ? undefined : { list: inner };
    }
    case arrow.Type.FixedSizeList: {
      const fl = t as arrow.FixedSizeList;
      const ct = fl.children[0]?.type as arrow.DataType | undefined;
      if (!ct || ct.typeId !== arrow.Type.Float || (ct as arrow.Float).precision !== arrow.Precision.SINGLE) return undefined;
      return fl.listSize >= 1 && fl.listSize <= MAX_VECTOR_DIMS ? { vector: fl.listSize } : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Validate a user schema. Record form: `{ name: type | { type, nullable?,
 * default? } }` (nullable defaults to true; note that JS orders integer-like
 * keys such as "1" before other keys). Arrow form: every field must map to a
 * supported type, else SCHEMA_MISMATCH naming the column and the Arrow type.
 */
export function normalizeSchema(input: SchemaInput): TableSchema {
  if (isArrowSchema(input)) {
    const columns = input.fields.map((f): ColumnSpec => {
      const name: unknown = f.name;
      validateColumnName(name);
      const type = columnTypeFromArrow(f.type as arrow.DataType);
      if (type === undefined) {
        throw new FloeError('SCHEMA_MISMATCH', `column "${name}": Arrow type ${arrowTypeName(f.type as arrow.DataType)} is not supported (supported: ${SCALAR_TYPES.join(', ')}, List<T>, FixedSizeList<Float32>)`);
      }
      return { name, type, nullable: f.nullable };
    });
    return finishSchema(columns);
  }
  if (!isPlainObject(input)) {
    throw new FloeError('INVALID_ARGUMENT', `a schema must be an object of columns or an Arrow Schema, got ${describeValue(input)}`);
  }
  const columns: ColumnSpec[] = [];
  for (const name of Object.keys(input)) {
    validateColumnName(name);
    const raw: unknown = input[name];
    if (isPlainObject(raw) && Object.hasOwn(raw, 'type')) {
      for (const k of Object.keys(raw)) {
        if (k !== 'type' && k !== 'nullable' && k !== 'default') {
          throw new FloeError('INVALID_ARGUMENT', `column "${name}": unknown option "${k}" (expected type, nullable, default)`);
        }
      }
      const type = parseColumnType(raw.type, name);
      columns.push(makeSpec(name, type, raw.nullable, raw.default, Object.hasOwn(raw, 'default')));
    } else {
      columns.push(makeSpec(name, parseColumnType(raw, name), undefined, undefined, false));
    }
  }
  return finishSchema(columns);
}

/** A new schema with `spec` appended; rejects duplicates and non-nullable columns without a default. */
export function addColumn(schema: TableSchema, spec: ColumnSpecInput): TableSchema {
  if (!isPlainObject(spec)) throw new FloeError('INVALID_ARGUMENT', `addColumn expects a column spec object, got ${describeValue(spec)}`);
  validateColumnName(spec.name);
  const type = parseColumnType(spec.type, spec.name);
  const hasDefault = spec.default !== undefined && spec.default !== null;
  const col = makeSpec(spec.name, type, spec.nullable, spec.default, Object.hasOwn(spec, 'default'));
  if (!col.nullable && !hasDefault) {
    throw new FloeError(
      'INVALID_ARGUMENT',
      `cannot add non-nullable column "${spec.name}" without a default: rows already written have no value for it`,
    );
  }
  return finishSchema([...schema.columns.map((c) => ({ ...c })), col]);
}

/** Stable JSON form for manifests: fixed key order, version tag. */
export function schemaToJson(schema: TableSchema): { version: number; columns: JsonValue[] } {
  return {
    version: SCHEMA_JSON_VERSION,
    columns: schema.columns.map((c) => {
      const o: { [k: string]: JsonValue } = { name: c.name, type: typeToJson(c.type), nullable: c.nullable };
      if (c.default !== undefined && c.default !== null) o.default = c.default;
      return o;
    }),
  };
}

function typeToJson(t: ColumnType): JsonValue {
  if (typeof t === 'string') return t;
  if ('list' in t) return { list: typeToJson(t.list) };
  return { vector: t.vector };
}

/** Parse `schemaToJson` output (object or JSON text); malformed -> CORRUPT, other version -> UNSUPPORTED_VERSION. */
export function schemaFromJson(json: unknown): TableSchema {
  let doc = json;
  if (typeof doc === 'string') {
    try {
      doc = JSON.parse(doc) as unknown;
    } catch (err) {
      throw new FloeError('CORRUPT', 'schema JSON does not parse', { cause: err });
    }
  }
  if (!isPlainObject(doc)) throw new FloeError('CORRUPT', `schema JSON must be an object, got ${describeValue(doc)}`);
  if (doc.version !== SCHEMA_JSON_VERSION) {
    throw new FloeError('UNSUPPORTED_VERSION', `schema JSON version ${describeValue(doc.version)} is not supported (this build reads version ${SCHEMA_JSON_VERSION})`);
  }
  if (!Array.isArray(doc.columns)) throw new FloeError('CORRUPT', 'schema JSON has no columns array');
  try {
    const columns = doc.columns.map((c: unknown, i: number): ColumnSpec => {
      if (!isPlainObject(c)) throw new FloeError('CORRUPT', `schema JSON column ${i} is not an object`);
      const name = c.name;
      validateColumnName(name);
      const type = parseColumnType(c.type, name);
      if (typeof c.nullable !== 'boolean') throw new FloeError('CORRUPT', `schema JSON column "${name}": nullable is not a boolean`);
      const spec: ColumnSpec = { name, type, nullable: c.nullable };
      if (c.default !== undefined && c.default !== null) {
        try {
          // Re-encode so the stored form is canonical and known to decode.
          spec.default = encodeColumnValue(type, decodeColumnValue(type, c.default));
        } catch (err) {
          throw wrapProblem(err, `schema JSON column "${name}" default`);
        }
      } else if (!c.nullable && c.default === null) {
        throw new FloeError('CORRUPT', `schema JSON column "${name}": null default on a non-nullable column`);
      }
      return spec;
    });
    return finishSchema(columns);
  } catch (err) {
    if (err instanceof FloeError && err.code === 'CORRUPT') throw err;
    throw new FloeError('CORRUPT', `schema JSON is invalid: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** The Arrow type floe stores a column type as. */
export function arrowType(t: ColumnType): arrow.DataType {
  if (typeof t !== 'string') {
    if ('list' in t) return new arrow.List(new arrow.Field('item', arrowType(t.list), true));
    return new arrow.FixedSizeList(t.vector, new arrow.Field('item', new arrow.Float32(), false));
  }
  switch (t) {
    case 'int32':
      return new arrow.Int32();
    case 'int64':
      return new arrow.Int64();
    case 'float32':
      return new arrow.Float32();
    case 'float64':
      return new arrow.Float64();
    case 'bool':
      return new arrow.Bool();
    case 'utf8':
      return new arrow.Utf8();
    case 'binary':
      return new arrow.Binary();
    case 'timestamp':
      return new arrow.Timestamp(arrow.TimeUnit.MICROSECOND, 'UTC');
    case 'date':
      return new arrow.DateDay();
  }
}

function systemFields(): arrow.Field[] {
  return SYSTEM_COLUMNS.map((n) => new arrow.Field(n, new arrow.Int64(), false));
}

/** Arrow schema of a table; `system: true` prepends `_id` and `_seq` (int64, non-null). */
export function toArrowSchema(schema: TableSchema, options: { system?: boolean } = {}): arrow.Schema {
  const fields = schema.columns.map((c) => new arrow.Field(c.name, arrowType(c.type), c.nullable));
  return new arrow.Schema(options.system ? [...systemFields(), ...fields] : fields);
}

// ---------------------------------------------------------------------------
// Rows

export interface ValidateOptions {
  /** Primary-key columns: their values must be non-null and not NaN. */
  primaryKey?: readonly string[] | null;
}

const KEYABLE = new Set<ColumnType>(['int32', 'int64', 'float32', 'float64', 'bool', 'utf8', 'binary', 'timestamp', 'date']);

/** Throws INVALID_ARGUMENT unless `primaryKey` names distinct, keyable columns of `schema`. */
export function validatePrimaryKey(schema: TableSchema, primaryKey: readonly string[]): void {
  if (!Array.isArray(primaryKey) || primaryKey.length === 0) {
    throw new FloeError('INVALID_ARGUMENT', 'a primary key must name at least one column');
  }
  const seen = new Set<string>();
  for (const k of primaryKey as readonly unknown[]) {
    if (typeof k !== 'string') throw new FloeError('INVALID_ARGUMENT', `primary key column names must be strings, got ${describeValue(k)}`);
    const col = schema.columns.find((c) => c.name === k);
    if (!col) throw new FloeError('INVALID_ARGUMENT', `primary key column ${JSON.stringify(k)} is not in the schema`);
    if (!KEYABLE.has(col.type)) throw new FloeError('INVALID_ARGUMENT', `primary key column "${k}" has type ${typeName(col.type)}, which cannot be a key`);
    if (seen.has(k)) throw new FloeError('INVALID_ARGUMENT', `primary key column "${k}" is listed twice`);
    seen.add(k);
  }
}

/**
 * Validate and normalize rows (see the module comment for accepted values).
 * Returns new row objects; throws SCHEMA_MISMATCH (wrong type, missing
 * non-null column, unknown column, null/NaN key) or INVALID_ARGUMENT (not a
 * plain object, `_id`/`_seq` given) naming the row index and the column.
 */
export function validateRows(schema: TableSchema, rows: readonly unknown[], options: ValidateOptions = {}): Row[] {
  if (!Array.isArray(rows)) throw new FloeError('INVALID_ARGUMENT', `rows must be an array, got ${describeValue(rows)}`);
  const v = new RowValidator(schema, options);
  const cols = schema.columns;
  const values = new Array<unknown>(cols.length);
  const out: Row[] = new Array<Row>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    v.check(rows[i], i, values);
    const o: Row = {};
    for (let j = 0; j < cols.length; j++) o[cols[j]!.name] = values[j];
    out[i] = o;
  }
  return out;
}

/**
 * The per-row half of `validateRows`, for callers that keep values by
 * column: set up once per schema, then `check` each row. Same rules, same
 * errors (naming the row index given and the column), same normalized values.
 */
export class RowValidator {
  readonly #cols: readonly ColumnSpec[];
  readonly #names: ReadonlySet<string>;
  readonly #isKey: readonly boolean[];
  readonly #defaults: readonly unknown[];
  readonly #scalar: readonly (ScalarType | null)[];
  readonly #surrogates: boolean[];

  constructor(schema: TableSchema, options: ValidateOptions = {}) {
    const pk = options.primaryKey ?? [];
    if (pk.length > 0) validatePrimaryKey(schema, pk);
    this.#cols = schema.columns;
    this.#names = new Set(schema.columns.map((c) => c.name));
    this.#isKey = schema.columns.map((c) => pk.includes(c.name));
    this.#defaults = schema.columns.map((c) => defaultValue(c));
    this.#scalar = schema.columns.map((c) => (typeof c.type === 'string' ? c.type : null));
    // A default is used without passing through check's string test.
    this.#surrogates = this.#defaults.map((d) => typeof d === 'string' && SURROGATE.test(d));
  }

  /**
   * Per column: true when no utf8 value accepted so far held a surrogate
   * pair, so those strings order by code point under plain `<` (UTF-16 code
   * units disagree with code points only at a surrogate).
   */
  codeUnitOrder(): boolean[] {
    return this.#surrogates.map((x) => !x);
  }

  /**
   * Validate `r` (row `i` in messages) and write its normalized value of
   * each schema column, in schema order, to `out[0..columns)`. Returns a
   * rough in-memory size of the values (strings and bytes dominate).
   */
  check(r: unknown, i: number, out: unknown[]): number {
    if (!isPlainObject(r)) throw new FloeError('INVALID_ARGUMENT', `row ${i}: expected a plain object, got ${describeValue(r)}`);
    const cols = this.#cols;
    for (const k in r) {
      if (!Object.hasOwn(r, k) || this.#names.has(k)) continue;
      if (k === '_id' || k === '_seq') {
        throw new FloeError('INVALID_ARGUMENT', `row ${i}: column "${k}" is assigned by the engine and must not be given`);
      }
      throw new FloeError('SCHEMA_MISMATCH', `row ${i}: unknown column ${JSON.stringify(k)} (columns: ${cols.map((c) => c.name).join(', ')})`);
    }
    let bytes = 16;
    for (let j = 0; j < cols.length; j++) {
      const c = cols[j]!;
      const v = Object.hasOwn(r, c.name) ? r[c.name] : undefined;
      let value: unknown;
      const scalar = this.#scalar[j] ?? null;
      if (v === undefined || v === null) {
        if (v === undefined && this.#defaults[j] !== null) {
          value = cloneValue(this.#defaults[j]);
        } else {
          const what = v === null ? 'null' : 'missing';
          if (this.#isKey[j]) throw new FloeError('SCHEMA_MISMATCH', `row ${i}: primary key column "${c.name}" is ${what}`);
          if (!c.nullable) throw new FloeError('SCHEMA_MISMATCH', `row ${i}: column "${c.name}" is non-nullable but ${what}`);
          value = null;
        }
      } else if (scalar === 'utf8' && typeof v === 'string' && !SURROGATE.test(v)) {
        // The common case, without the call: a string with no surrogate at all.
        value = v;
      } else {
        try {
          value = scalar === null ? coerceValue(c.type, v) : coerceScalar(scalar, v);
        } catch (err) {
          throw wrapProblem(err, `row ${i}: column "${c.name}"`);
        }
        if (scalar === 'utf8') this.#surrogates[j] = true;
      }
      if (this.#isKey[j] && typeof value === 'number' && Number.isNaN(value)) {
        throw new FloeError('SCHEMA_MISMATCH', `row ${i}: primary key column "${c.name}" is NaN`);
      }
      out[j] = value;
      if (typeof value === 'string') bytes += value.length + 8;
      else if (value instanceof Uint8Array || value instanceof Float32Array) bytes += value.byteLength + 8;
      else if (Array.isArray(value)) bytes += 16 * value.length + 8;
      else bytes += 8;
    }
    return bytes;
  }
}

// ---------------------------------------------------------------------------
// Primary-key encoding

const TAG_BOOL = '\x01';
const TAG_NUMBER = '\x02';
const TAG_BIGINT = '\x03';
const TAG_DATE = '\x04';
const TAG_STRING = '\x05';
const TAG_BYTES = '\x06';
const END = '\x00\x01';
const ESCAPED_ZERO = '\x00\xff';

const scratch = new DataView(new ArrayBuffer(8));
const utf8 = new TextEncoder();

function scratchChars(n: number, flipAll: boolean): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    let b = scratch.getUint8(i);
    if (flipAll) b ^= 0xff;
    else if (i === 0) b ^= 0x80;
    s += String.fromCharCode(b);
  }
  return s;
}

function encodeInt64(v: bigint): string {
  scratch.setBigInt64(0, v);
  return scratchChars(8, false);
}

function encodeBytes(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!;
    s += x === 0 ? ESCAPED_ZERO : String.fromCharCode(x);
  }
  return s + END;
}

/** One key component as an order-preserving, self-delimiting string. Throws ValueProblem. */
export function encodeKeyPart(v: unknown): string {
  switch (typeof v) {
    case 'boolean':
      return TAG_BOOL + (v ? '\x01' : '\x00');
    case 'number': {
      if (Number.isNaN(v)) throw new ValueProblem('NaN cannot be part of a primary key', 'INVALID_ARGUMENT');
      scratch.setFloat64(0, v === 0 ? 0 : v);
      const negative = (scratch.getUint8(0) & 0x80) !== 0;
      return TAG_NUMBER + scratchChars(8, negative);
    }
    case 'bigint':
      if (v < INT64_MIN || v > INT64_MAX) throw new ValueProblem(`${v}n is outside the int64 range`, 'INVALID_ARGUMENT');
      return TAG_BIGINT + encodeInt64(v);
    case 'string': {
      if (hasLoneSurrogate(v)) throw new ValueProblem('string key has an unpaired surrogate', 'INVALID_ARGUMENT');
      let ascii = true;
      for (let i = 0; i < v.length; i++) {
        const c = v.charCodeAt(i);
        if (c === 0 || c >= 0x80) {
          ascii = false;
          break;
        }
      }
      return TAG_STRING + (ascii ? v + END : encodeBytes(utf8.encode(v)));
    }
    case 'object':
      if (v instanceof Date) {
        const t = v.getTime();
        if (Number.isNaN(t)) throw new ValueProblem('invalid Date in primary key', 'INVALID_ARGUMENT');
        return TAG_DATE + encodeInt64(BigInt(t));
      }
      if (v instanceof Uint8Array) return TAG_BYTES + encodeBytes(v);
      break;
    default:
      break;
  }
  throw new ValueProblem(`${describeValue(v)} cannot be part of a primary key`, 'INVALID_ARGUMENT');
}

/**
 * Order-preserving, injective encoding of `row`'s primary-key values (see
 * the module comment). Compare results with `<`/`>`/`===` or `compareKeys`.
 * Throws INVALID_ARGUMENT for a null, NaN or non-keyable value.
 */
export function keyOf(row: Row, primaryKey: readonly string[]): string {
  let s = '';
  for (const k of primaryKey) {
    const v = ownValue(row, k);
    if (v === null || v === undefined) throw new FloeError('INVALID_ARGUMENT', `primary key column "${k}" is ${v === null ? 'null' : 'missing'}`);
    try {
      s += encodeKeyPart(v);
    } catch (err) {
      throw wrapProblem(err, `primary key column "${k}"`);
    }
  }
  return s;
}

/** Total order on `keyOf` results (plain code-unit order; all code units are < 0x100). */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Keys that occur more than once in `rows`, with the indexes holding them, in first-occurrence order. */
export function findDuplicateKeys(rows: readonly Row[], primaryKey: readonly string[]): { key: string; indexes: number[] }[] {
  const byKey = new Map<string, number[]>();
  for (let i = 0; i < rows.length; i++) {
    const k = keyOf(rows[i]!, primaryKey);
    const list = byKey.get(k);
    if (list) list.push(i);
    else byKey.set(k, [i]);
  }
  const out: { key: string; indexes: number[] }[] = [];
  for (const [key, indexes] of byKey) if (indexes.length > 1) out.push({ key, indexes });
  return out;
}

// ---------------------------------------------------------------------------
// Rows -> Arrow

function validityBitmap(n: number, isNull: (i: number) => boolean): { bitmap: Uint8Array | undefined; nulls: number } {
  let nulls = 0;
  for (let i = 0; i < n; i++) if (isNull(i)) nulls++;
  if (nulls === 0) return { bitmap: undefined, nulls };
  const bitmap = new Uint8Array(((n + 63) >> 6) << 3);
  for (let i = 0; i < n; i++) if (!isNull(i)) bitmap[i >> 3]! |= 1 << (i & 7);
  return { bitmap, nulls };
}

/** Values are normalized (or null); build one Arrow Data of `type`. */
function buildData(type: ColumnType, values: readonly unknown[]): arrow.Data {
  const n = values.length;
  const { bitmap, nulls } = validityBitmap(n, (i) => values[i] === null || values[i] === undefined);
  const base = { length: n, nullCount: nulls, nullBitmap: bitmap };
  if (typeof type !== 'string') {
    if ('list' in type) {
      const offsets = new Int32Array(n + 1);
      const flat: unknown[] = [];
      for (let i = 0; i < n; i++) {
        const v = values[i] as unknown[] | null | undefined;
        if (v) for (const e of v) flat.push(e);
        if (flat.length > INT32_MAX) throw new FloeError('LIMIT_EXCEEDED', 'list column holds more than 2^31-1 elements in one batch');
        offsets[i + 1] = flat.length;
      }
      const child = buildData(type.list, flat);
      return arrow.makeData({ type: arrowType(type) as arrow.List, ...base, valueOffsets: offsets, child });
    }
    const dims = type.vector;
    const floats = new Float32Array(n * dims);
    for (let i = 0; i < n; i++) {
      const v = values[i] as Float32Array | null | undefined;
      if (v) floats.set(v, i * dims);
    }
    const child = arrow.makeData({ type: new arrow.Float32(), length: n * dims, nullCount: 0, data: floats });
    return arrow.makeData({ type: arrowType(type) as arrow.FixedSizeList, ...base, child });
  }
  switch (type) {
    case 'int32':
    case 'date': {
      const a = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) a[i] = type === 'date' ? Math.floor((v as Date).getTime() / MS_PER_DAY) : (v as number);
      }
      return type === 'date'
        ? arrow.makeData({ type: new arrow.DateDay(), ...base, data: a })
        : arrow.makeData({ type: new arrow.Int32(), ...base, data: a });
    }
    case 'int64':
    case 'timestamp': {
      const a = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) a[i] = type === 'timestamp' ? BigInt((v as Date).getTime()) * 1000n : (v as bigint);
      }
      return type === 'timestamp'
        ? arrow.makeData({ type: arrowType(type) as arrow.Timestamp, ...base, data: a })
        : arrow.makeData({ type: new arrow.Int64(), ...base, data: a });
    }
    case 'float32':
    case 'float64': {
      const a = type === 'float32' ? new Float32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) a[i] = v as number;
      }
      return type === 'float32'
        ? arrow.makeData({ type: new arrow.Float32(), ...base, data: a as Float32Array })
        : arrow.makeData({ type: new arrow.Float64(), ...base, data: a as Float64Array });
    }
    case 'bool': {
      const a = new Uint8Array(((n + 63) >> 6) << 3);
      for (let i = 0; i < n; i++) if (values[i] === true) a[i >> 3]! |= 1 << (i & 7);
      return arrow.makeData({ type: new arrow.Bool(), ...base, data: a });
    }
    case 'utf8': {
      const { offsets, bytes } = utf8Column(values);
      return arrow.makeData({ type: new arrow.Utf8(), ...base, valueOffsets: offsets, data: bytes });
    }
    case 'binary': {
      const offsets = new Int32Array(n + 1);
      let total = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) total += (v as Uint8Array).length;
        if (total > INT32_MAX) throw new FloeError('LIMIT_EXCEEDED', `binary column holds more than 2 GiB in one batch; write smaller batches`);
        offsets[i + 1] = total;
      }
      const bytes = new Uint8Array(total);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) bytes.set(v as Uint8Array, offsets[i]);
      }
      return arrow.makeData({ type: new arrow.Binary(), ...base, valueOffsets: offsets, data: bytes });
    }
  }
}

/** Strings joined per UTF-8 conversion in `utf8Column` (one native call per group, not per value). */
const UTF8_GROUP = 64;

/**
 * Arrow's Utf8 buffers for `values` (strings without lone surrogates, or
 * null/undefined): byte offsets and the UTF-8 bytes. Strings are converted
 * in groups joined into one string: a group whose UTF-8 length equals its
 * length is ASCII, so its offsets follow from the string lengths; other
 * groups measure each string. Joining cannot pair surrogates across
 * values, since no value holds a lone one.
 */
function utf8Column(values: readonly unknown[]): { offsets: Int32Array; bytes: Uint8Array } {
  const n = values.length;
  const offsets = new Int32Array(n + 1);
  const groups: string[] = [];
  let total = 0;
  for (let start = 0; start < n; start += UTF8_GROUP) {
    const end = Math.min(n, start + UTF8_GROUP);
    let joined = '';
    for (let i = start; i < end; i++) {
      const v = values[i];
      if (v !== null && v !== undefined) joined += v as string;
    }
    if (Buffer.byteLength(joined, 'utf8') === joined.length) {
      for (let i = start; i < end; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) total += (v as string).length;
        offsets[i + 1] = total;
      }
    } else {
      for (let i = start; i < end; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) total += Buffer.byteLength(v as string, 'utf8');
        offsets[i + 1] = total;
      }
    }
    if (total > INT32_MAX) throw new FloeError('LIMIT_EXCEEDED', 'utf8 column holds more than 2 GiB in one batch; write smaller batches');
    groups.push(joined);
  }
  // Every byte is written below, so the buffer needs no zero fill; a "slow"
  // buffer is never a slice of Node's shared pool. Arrow gets a plain
  // Uint8Array view (Buffer's slice() would not copy).
  const buf = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const g of groups) at += buf.write(g, at, 'utf8');
  if (at !== total) throw new FloeError('INVARIANT_VIOLATION', `utf8 column: wrote ${at} bytes, measured ${total}`);
  return { offsets, bytes: new Uint8Array(buf.buffer, buf.byteOffset, total) };
}

/** Cheap check that `v` is already in normalized form (no copy needed). */
function isNormalized(type: ColumnType, v: unknown): boolean {
  switch (type) {
    case 'int32':
      return typeof v === 'number' && (v | 0) === v;
    case 'int64':
      return typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX;
    case 'float32':
      return typeof v === 'number' && (Math.fround(v) === v || Number.isNaN(v));
    case 'float64':
      return typeof v === 'number';
    case 'bool':
      return typeof v === 'boolean';
    case 'utf8':
      return typeof v === 'string' && !hasLoneSurrogate(v);
    case 'binary':
      return v instanceof Uint8Array;
    case 'timestamp':
      return v instanceof Date && !Number.isNaN(v.getTime());
    case 'date':
      return v instanceof Date && v.getTime() % MS_PER_DAY === 0;
    default:
      if ('vector' in type) {
        if (!(v instanceof Float32Array) || v.length !== type.vector) return false;
        for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
        return true;
      }
      return false;
  }
}

function columnValues(c: ColumnSpec, rows: readonly Row[]): unknown[] {
  const out = new Array<unknown>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const v = ownValue(rows[i]!, c.name);
    if (v === null || v === undefined) {
      if (!c.nullable) throw new FloeError('SCHEMA_MISMATCH', `row ${i}: column "${c.name}" is non-nullable but ${v === null ? 'null' : 'missing'}`);
      out[i] = null;
    } else if (isNormalized(c.type, v)) {
      out[i] = v;
    } else {
      try {
        out[i] = coerceValue(c.type, v);
      } catch (err) {
        throw wrapProblem(err, `row ${i}: column "${c.name}"`);
      }
    }
  }
  return out;
}

/**
 * Normalized values by column (one array per schema column, in schema
 * order, as `RowValidator.check` produces them) to one RecordBatch, like
 * `rowsToRecordBatch`. With `order`, row i of the batch is entry `order[i]`
 * of every column. The values are trusted: nothing is checked again.
 */
export function columnsToRecordBatch(
  schema: TableSchema,
  columns: readonly (readonly unknown[])[],
  length: number,
  system: { _id: BigInt64Array; _seq: BigInt64Array } | null = null,
  order: ArrayLike<number> | null = null,
): arrow.RecordBatch {
  const n = order ? order.length : length;
  const fields: arrow.Field[] = [];
  const children: arrow.Data[] = [];
  if (system) {
    if (system._id.length !== n || system._seq.length !== n) {
      throw new FloeError('INVALID_ARGUMENT', `system columns have ${system._id.length} _id and ${system._seq.length} _seq values for ${n} rows`);
    }
    fields.push(...systemFields());
    children.push(arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: system._id }));
    const seqs = system._seq === system._id ? system._seq.slice() : system._seq;
    children.push(arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: seqs }));
  }
  schema.columns.forEach((c, j) => {
    const col = columns[j];
    if (!col) throw new FloeError('INVALID_ARGUMENT', `no values for column "${c.name}"`);
    fields.push(new arrow.Field(c.name, arrowType(c.type), c.nullable));
    children.push(buildData(c.type, order ? gatherValues(col, order) : col.length === n ? col : col.slice(0, n)));
  });
  return structBatch(fields, children, n);
}

function gatherValues(col: readonly unknown[], order: ArrayLike<number>): unknown[] {
  const out = new Array<unknown>(order.length);
  for (let i = 0; i < order.length; i++) out[i] = col[order[i]!];
  return out;
}

function structBatch(fields: arrow.Field[], children: arrow.Data[], numRows: number): arrow.RecordBatch {
  const schema = new arrow.Schema(fields);
  const data = arrow.makeData({ type: new arrow.Struct(fields), length: numRows, nullCount: 0, children });
  return new arrow.RecordBatch(schema, data);
}

/**
 * Rows (normalized by `validateRows`; other values are coerced or rejected)
 * to one RecordBatch in the schema's column order, preceded by `_id` and
 * `_seq` when `system` is given (both arrays must have one entry per row;
 * they become the batch's buffers without a copy, so do not mutate them
 * afterwards).
 */
export function rowsToRecordBatch(
  schema: TableSchema,
  rows: readonly Row[],
  system: { _id: BigInt64Array; _seq: BigInt64Array } | null = null,
): arrow.RecordBatch {
  const n = rows.length;
  const fields: arrow.Field[] = [];
  const children: arrow.Data[] = [];
  if (system) {
    if (system._id.length !== n || system._seq.length !== n) {
      throw new FloeError('INVALID_ARGUMENT', `system columns have ${system._id.length} _id and ${system._seq.length} _seq values for ${n} rows`);
    }
    fields.push(...systemFields());
    children.push(arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: system._id }));
    // apache-arrow's IPC writer (used on the way to Parquet) emits a broken
    // message when one typed array backs two columns, so never share one.
    const seqs = system._seq === system._id ? system._seq.slice() : system._seq;
    children.push(arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: seqs }));
  }
  for (const c of schema.columns) {
    fields.push(new arrow.Field(c.name, arrowType(c.type), c.nullable));
    children.push(buildData(c.type, columnValues(c, rows)));
  }
  return structBatch(fields, children, n);
}

// ---------------------------------------------------------------------------
// Arrow -> rows

/** Validity test for element `i` of `data` (handles sliced data). */
export function validAt(data: arrow.Data, i: number): boolean {
  const nb = data.nullBitmap;
  if (!nb || nb.length === 0) return true;
  const j = data.offset + i;
  return ((nb[j >> 3]! >> (j & 7)) & 1) === 1;
}

function hasNulls(data: arrow.Data): boolean {
  return data.nullBitmap !== undefined && data.nullBitmap.length > 0 && data.nullCount > 0;
}

function unitToMicros(unit: arrow.TimeUnit, v: bigint): bigint {
  switch (unit) {
    case arrow.TimeUnit.SECOND:
      return v * 1_000_000n;
    case arrow.TimeUnit.MILLISECOND:
      return v * 1000n;
    case arrow.TimeUnit.MICROSECOND:
      return v;
    case arrow.TimeUnit.NANOSECOND:
      return v >= 0n ? v / 1000n : -((-v + 999n) / 1000n);
  }
}

/** Floor division of microseconds to milliseconds, as a Date. */
export function microsToDate(us: bigint): Date {
  const ms = us >= 0n ? us / 1000n : -((-us + 999n) / 1000n);
  return new Date(Number(ms));
}

/**
 * Every element of `data` as row values (null for nulls). Supports the types
 * `columnTypeFromArrow` maps, including Large* and other timestamp/date units
 * written by other tools; throws SCHEMA_MISMATCH otherwise.
 */
export function dataToValues(data: arrow.Data, column = '?'): unknown[] {
  const n = data.length;
  const out = new Array<unknown>(n);
  const t: arrow.DataType = data.type;
  const nullable = hasNulls(data);
  const values = data.values as unknown;
  const each = (f: (i: number) => unknown) => {
    for (let i = 0; i < n; i++) out[i] = nullable && !validAt(data, i) ? null : f(i);
  };
  switch (t.typeId) {
    case arrow.Type.Int: {
      const it = t as arrow.Int;
      if (it.isSigned && it.bitWidth === 32) {
        const a = values as Int32Array;
        each((i) => a[i]);
      } else if (it.isSigned && it.bitWidth === 64) {
        const a = values as BigInt64Array;
        each((i) => a[i]);
      } else break;
      return out;
    }
    case arrow.Type.Float: {
      if ((t as arrow.Float).precision === arrow.Precision.HALF) break;
      const a = values as Float32Array | Float64Array;
      each((i) => a[i]);
      return out;
    }
    case arrow.Type.Bool: {
      const a = values as Uint8Array;
      const off = data.offset;
      each((i) => ((a[(off + i) >> 3]! >> ((off + i) & 7)) & 1) === 1);
      return out;
    }
    case arrow.Type.Utf8:
    case arrow.Type.LargeUtf8:
    case arrow.Type.Binary:
    case arrow.Type.LargeBinary: {
      const offs = data.valueOffsets as Int32Array | BigInt64Array;
      const bytes = values as Uint8Array;
      const text = t.typeId === arrow.Type.Utf8 || t.typeId === arrow.Type.LargeUtf8;
      const dec = new TextDecoder();
      each((i) => {
        const s = bytes.subarray(Number(offs[i]!), Number(offs[i + 1]!));
        return text ? dec.decode(s) : s.slice();
      });
      return out;
    }
    case arrow.Type.Timestamp: {
      const unit = (t as arrow.Timestamp).unit;
      const a = values as BigInt64Array;
      each((i) => microsToDate(unitToMicros(unit, BigInt(a[i]!))));
      return out;
    }
    case arrow.Type.Date: {
      if ((t as arrow.Date_).unit === arrow.DateUnit.DAY) {
        const a = values as Int32Array;
        each((i) => new Date(a[i]! * MS_PER_DAY));
      } else {
        const a = values as BigInt64Array | Float64Array;
        each((i) => new Date(Number(a[i]!)));
      }
      return out;
    }
    case arrow.Type.List: {
      const offs = data.valueOffsets as Int32Array;
      const child = data.children[0];
      if (!child) break;
      const inner = dataToValues(child, column);
      each((i) => inner.slice(offs[i], offs[i + 1]));
      return out;
    }
    case arrow.Type.FixedSizeList: {
      const fl = t as arrow.FixedSizeList;
      const child = data.children[0];
      const ct = fl.children[0]?.type as arrow.DataType | undefined;
      if (!child || !ct) break;
      const size = fl.listSize;
      if (ct.typeId === arrow.Type.Float && (ct as arrow.Float).precision === arrow.Precision.SINGLE && !hasNulls(child)) {
        const a = child.values as Float32Array;
        each((i) => a.slice(i * size, (i + 1) * size));
      } else {
        const inner = dataToValues(child, column);
        each((i) => inner.slice(i * size, (i + 1) * size));
      }
      return out;
    }
    default:
      break;
  }
  throw new FloeError('SCHEMA_MISMATCH', `column "${column}": Arrow type ${arrowTypeName(t)} cannot be read as a floe column`);
}

/** Rows of `batch` (all columns, system columns included when present, or just `columns`). */
export function recordBatchToRows(batch: arrow.RecordBatch, columns?: readonly string[] | null): Row[] {
  const fields = batch.schema.fields;
  let picks: number[];
  if (columns) {
    picks = columns.map((c) => {
      const idx = fields.findIndex((f) => f.name === c);
      if (idx < 0) throw new FloeError('INVALID_ARGUMENT', `column ${JSON.stringify(c)} is not in the batch (has: ${fields.map((f) => f.name).join(', ')})`);
      return idx;
    });
  } else {
    picks = fields.map((_, i) => i);
  }
  const n = batch.numRows;
  const rows: Row[] = new Array<Row>(n);
  for (let i = 0; i < n; i++) rows[i] = {};
  for (const idx of picks) {
    const name = fields[idx]!.name;
    const data = batch.data.children[idx];
    if (!data) throw new FloeError('INVARIANT_VIOLATION', `batch has no data for column "${name}"`);
    const vals = dataToValues(data, name);
    for (let i = 0; i < n; i++) rows[i]![name] = vals[i];
  }
  return rows;
}

function constantData(spec: ColumnSpec, n: number): arrow.Data {
  const d = defaultValue(spec);
  if (d === null && !spec.nullable) {
    throw new FloeError('SCHEMA_MISMATCH', `column "${spec.name}" is missing from the data file and is non-nullable without a default`);
  }
  return buildData(spec.type, new Array<unknown>(n).fill(d));
}

/**
 * `batch` reduced/extended to `columns` (default: `_id`/`_seq` when present,
 * then every schema column), in that order. A schema column absent from the
 * batch (added after the file was written) is filled with its default or
 * null. A present column whose type disagrees with the schema, a requested
 * system column the batch lacks, or an unknown name is an error.
 */
export function projectBatch(batch: arrow.RecordBatch, schema: TableSchema, columns?: readonly string[]): arrow.RecordBatch {
  const fields = batch.schema.fields;
  const wanted = columns ?? [...SYSTEM_COLUMNS.filter((s) => fields.some((f) => f.name === s)), ...schema.columns.map((c) => c.name)];
  const outFields: arrow.Field[] = [];
  const children: arrow.Data[] = [];
  for (const name of wanted) {
    const idx = fields.findIndex((f) => f.name === name);
    const spec = schema.columns.find((c) => c.name === name);
    const isSystem = (SYSTEM_COLUMNS as readonly string[]).includes(name);
    if (!spec && !isSystem) throw new FloeError('INVALID_ARGUMENT', `column ${JSON.stringify(name)} is not in the schema`);
    if (idx >= 0) {
      const f = fields[idx]!;
      const have = columnTypeFromArrow(f.type as arrow.DataType);
      const want: ColumnType = spec ? spec.type : 'int64';
      if (have === undefined || !sameType(have, want)) {
        throw new FloeError('SCHEMA_MISMATCH', `column "${name}" is ${arrowTypeName(f.type as arrow.DataType)} in the data file but ${typeName(want)} in the schema`);
      }
      outFields.push(f);
      children.push(batch.data.children[idx]!);
    } else if (spec) {
      outFields.push(new arrow.Field(name, arrowType(spec.type), spec.nullable));
      children.push(constantData(spec, batch.numRows));
    } else {
      throw new FloeError('SCHEMA_MISMATCH', `system column "${name}" is missing from the batch`);
    }
  }
  return structBatch(outFields, children, batch.numRows);
}
