/**
 * The `where` language: a small typed predicate AST, its binding to a table
 * schema, evaluation over rows and Arrow batches, and pruning by statistics.
 *
 * Pure module: no I/O. Binding validates everything up front (unknown
 * column -> INVALID_ARGUMENT, value of the wrong type -> SCHEMA_MISMATCH), so
 * evaluation never throws on well-formed input.
 *
 * Null semantics (SQL three-valued logic). A comparison, `in` or `between`
 * whose column value is null is UNKNOWN, and so is one on a float NaN (NaN
 * behaves like null in comparisons, but `isNull` is false for it). `not`
 * keeps UNKNOWN unknown, `and`/`or` are Kleene's, and a row matches only when
 * the whole predicate is TRUE. So `lt(x, 5)` and `not(lt(x, 5))` are both
 * false for a row where x is null. `isNull`/`isNotNull` are never unknown.
 * `in` with an empty list is FALSE for every row (null included), so its
 * negation is TRUE for every row. Binding rewrites the tree into negation
 * normal form (negations pushed into the leaves, e.g. not(lt) = ge,
 * not(between) = lt low or gt high); under the rules above that rewrite is
 * exact, and afterwards UNKNOWN can be treated as false at each leaf because
 * `and`/`or` are monotone.
 *
 * Ordering: numbers numerically, int64 and timestamps exactly (bigint
 * microseconds), dates by day, false < true, strings by Unicode code point
 * (UTF-8 byte order, as Parquet statistics are ordered). Values of float32
 * columns are rounded to float32 at binding, like the stored values.
 *
 * Types: `_id` and `_seq` are int64 columns. binary, list and vector columns
 * accept only isNull/isNotNull. A column missing from a row or batch (data
 * written before `addColumn`) reads as the column's default, else null.
 *
 * Pruning (`mayMatch`) is conservative: it says false only when min/max/null
 * counts prove no row can match; unknown statistics mean "may match". It is
 * sound whether string statistics were ordered by code point or by UTF-16
 * code unit, because it does not range-prune on string constants containing
 * code units >= U+D800 (the only place those two orders differ).
 */
import * as arrow from 'apache-arrow';
import { FloeError } from '../errors.js';
import type { ColumnType, Row, TableSchema } from '../format/schema.js';
import {
  coerceValue,
  compareBytes,
  compareStrings,
  dataToValues,
  defaultValue,
  describeValue,
  isPlainObject,
  keyOf,
  ownValue,
  typeName,
  validAt,
  ValueProblem,
} from '../format/schema.js';

// ---------------------------------------------------------------------------
// AST

export type Scalar = number | bigint | string | boolean | Date | Uint8Array;
export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

export type Predicate =
  | { op: CompareOp; column: string; value: Scalar }
  | { op: 'in'; column: string; values: Scalar[] }
  | { op: 'between'; column: string; low: Scalar; high: Scalar }
  | { op: 'isNull' | 'isNotNull'; column: string }
  | { op: 'and' | 'or'; args: Predicate[] }
  | { op: 'not'; arg: Predicate };

/**
 * `{ col: value, ... }`: AND of `eq`; a null value means `isNull`, an array
 * means `in`. An object whose `op` is an operator name is read as an AST
 * node, so test a column named "op" with `where.eq('op', ...)`.
 */
export type WhereShorthand = { [column: string]: Scalar | null | readonly Scalar[] };
export type PredicateInput = Predicate | WhereShorthand;

export const MAX_PREDICATE_DEPTH = 128;

export const where = {
  eq: (column: string, value: Scalar): Predicate => ({ op: 'eq', column, value }),
  ne: (column: string, value: Scalar): Predicate => ({ op: 'ne', column, value }),
  lt: (column: string, value: Scalar): Predicate => ({ op: 'lt', column, value }),
  le: (column: string, value: Scalar): Predicate => ({ op: 'le', column, value }),
  gt: (column: string, value: Scalar): Predicate => ({ op: 'gt', column, value }),
  ge: (column: string, value: Scalar): Predicate => ({ op: 'ge', column, value }),
  in: (column: string, values: readonly Scalar[]): Predicate => ({ op: 'in', column, values: [...values] }),
  between: (column: string, low: Scalar, high: Scalar): Predicate => ({ op: 'between', column, low, high }),
  isNull: (column: string): Predicate => ({ op: 'isNull', column }),
  isNotNull: (column: string): Predicate => ({ op: 'isNotNull', column }),
  and: (...args: Predicate[]): Predicate => ({ op: 'and', args }),
  or: (...args: Predicate[]): Predicate => ({ op: 'or', args }),
  not: (arg: Predicate): Predicate => ({ op: 'not', arg }),
} as const;

const COMPARE_OPS = new Set<string>(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);
const NODE_KEYS: Record<string, readonly string[]> = {
  eq: ['op', 'column', 'value'],
  ne: ['op', 'column', 'value'],
  lt: ['op', 'column', 'value'],
  le: ['op', 'column', 'value'],
  gt: ['op', 'column', 'value'],
  ge: ['op', 'column', 'value'],
  in: ['op', 'column', 'values'],
  between: ['op', 'column', 'low', 'high'],
  isNull: ['op', 'column'],
  isNotNull: ['op', 'column'],
  and: ['op', 'args'],
  or: ['op', 'args'],
  not: ['op', 'arg'],
};

function invalid(msg: string): FloeError {
  return new FloeError('INVALID_ARGUMENT', `where: ${msg}`);
}

function isAstNode(x: Record<string, unknown>): boolean {
  return Object.hasOwn(x, 'op') && typeof x.op === 'string' && Object.hasOwn(NODE_KEYS, x.op);
}

function checkColumn(c: unknown, op: string): string {
  if (typeof c !== 'string' || c.length === 0) throw invalid(`"${op}" needs a column name, got ${describeValue(c)}`);
  return c;
}

function checkValue(v: unknown, op: string, column: string): Scalar {
  if (v === undefined) throw invalid(`"${op}" on column "${column}" has no value`);
  return v as Scalar;
}

function copyNode(x: unknown, depth: number): Predicate {
  if (depth > MAX_PREDICATE_DEPTH) throw invalid(`nested deeper than ${MAX_PREDICATE_DEPTH} levels`);
  if (!isPlainObject(x)) throw invalid(`expected a predicate object, got ${describeValue(x)}`);
  if (!isAstNode(x)) return shorthand(x);
  const op = x.op as string;
  const allowed = NODE_KEYS[op]!;
  for (const k of Object.keys(x)) {
    if (!allowed.includes(k)) throw invalid(`"${op}" node has unexpected key "${k}" (expected ${allowed.join(', ')})`);
  }
  if (COMPARE_OPS.has(op)) {
    const column = checkColumn(x.column, op);
    return { op: op as CompareOp, column, value: checkValue(x.value, op, column) };
  }
  switch (op) {
    case 'in': {
      const column = checkColumn(x.column, op);
      if (!Array.isArray(x.values)) throw invalid(`"in" on column "${column}" needs a values array, got ${describeValue(x.values)}`);
      return { op, column, values: (x.values as unknown[]).map((v) => checkValue(v, op, column)) };
    }
    case 'between': {
      const column = checkColumn(x.column, op);
      return { op, column, low: checkValue(x.low, op, column), high: checkValue(x.high, op, column) };
    }
    case 'isNull':
    case 'isNotNull':
      return { op, column: checkColumn(x.column, op) };
    case 'and':
    case 'or':
      if (!Array.isArray(x.args)) throw invalid(`"${op}" needs an args array, got ${describeValue(x.args)}`);
      return { op, args: (x.args as unknown[]).map((a) => copyNode(a, depth + 1)) };
    default:
      return { op: 'not', arg: copyNode(x.arg, depth + 1) };
  }
}

function shorthand(x: Record<string, unknown>): Predicate {
  const keys = Object.keys(x);
  if (keys.length === 0) throw invalid('empty object: name at least one column (use where.and() to match every row)');
  const parts: Predicate[] = keys.map((column) => {
    const v = x[column];
    if (v === undefined) throw invalid(`column "${column}" is undefined`);
    if (v === null) return { op: 'isNull', column };
    if (Array.isArray(v)) return { op: 'in', column, values: (v as unknown[]).map((e) => checkValue(e, 'in', column)) };
    return { op: 'eq', column, value: v as Scalar };
  });
  return parts.length === 1 ? parts[0]! : { op: 'and', args: parts };
}

/** Validate the structure of a `where` (AST or shorthand) and return a fresh AST. Throws INVALID_ARGUMENT. */
export function toPredicate(input: unknown): Predicate {
  return copyNode(input, 0);
}

// ---------------------------------------------------------------------------
// Binding

/** Comparable form of a value: number (int32/float/date days/bool 0-1), bigint (int64/timestamp µs), string. */
type Cmp = number | bigint | string;
type Kind = 'num' | 'big' | 'ts' | 'date' | 'bool' | 'str' | 'opaque';

export interface BoundColumn {
  readonly name: string;
  readonly type: ColumnType;
  readonly kind: Kind;
  /** Row value used when the column is absent (default or null). */
  readonly missing: unknown;
}

export type BoundNode =
  | { readonly k: 'const'; readonly value: boolean }
  | {
      readonly k: 'cmp';
      readonly op: CompareOp;
      readonly col: BoundColumn;
      readonly value: Cmp;
      /** UTF-8 bytes of a string constant, for the batch fast path. */
      readonly bytes: Uint8Array | null;
      /** False when range pruning on this constant is not safe (see module comment). */
      readonly rangeSafe: boolean;
      /** Row-form value for point lookups; undefined when no stored row can equal it. */
      readonly keyValue: unknown;
    }
  | {
      readonly k: 'in';
      readonly negated: boolean;
      readonly col: BoundColumn;
      readonly values: readonly Cmp[];
      readonly set: ReadonlySet<Cmp>;
      readonly rangeSafe: boolean;
      readonly keyValues: readonly unknown[];
    }
  | { readonly k: 'null'; readonly negated: boolean; readonly col: BoundColumn }
  | { readonly k: 'and' | 'or'; readonly args: readonly BoundNode[] };

export interface BoundPredicate {
  /** The predicate in negation normal form. */
  readonly root: BoundNode;
  /** Columns the predicate reads, in first-use order. */
  readonly columns: readonly string[];
}

const MS_PER_DAY = 86_400_000;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const SYSTEM_TYPE: ColumnType = 'int64';
const utf8 = new TextEncoder();

function kindOf(t: ColumnType): Kind {
  if (typeof t !== 'string') return 'opaque';
  switch (t) {
    case 'int32':
    case 'float32':
    case 'float64':
      return 'num';
    case 'int64':
      return 'big';
    case 'timestamp':
      return 'ts';
    case 'date':
      return 'date';
    case 'bool':
      return 'bool';
    case 'utf8':
      return 'str';
    case 'binary':
      return 'opaque';
  }
}

/** Comparable form of a row value, or null when it is null/NaN/not of the column's kind. */
function rowCmp(kind: Kind, v: unknown): Cmp | null {
  switch (kind) {
    case 'num':
      return typeof v === 'number' && !Number.isNaN(v) ? v : null;
    case 'big':
      if (typeof v === 'bigint') return v;
      return typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : null;
    case 'ts':
      if (v instanceof Date) {
        const t = v.getTime();
        return Number.isNaN(t) ? null : BigInt(t) * 1000n;
      }
      return typeof v === 'bigint' ? v : null;
    case 'date':
      if (v instanceof Date) {
        const t = v.getTime();
        return Number.isNaN(t) ? null : Math.floor(t / MS_PER_DAY);
      }
      return null;
    case 'bool':
      return typeof v === 'boolean' ? (v ? 1 : 0) : null;
    case 'str':
      return typeof v === 'string' ? v : null;
    case 'opaque':
      return null;
  }
}

function compare(kind: Kind, a: Cmp, b: Cmp): number {
  if (kind === 'str') return compareStrings(a as string, b as string);
  return a < b ? -1 : a > b ? 1 : 0;
}

function hasHighUnits(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0xd800) return true;
  return false;
}

interface BoundValue {
  cmp: Cmp;
  keyValue: unknown;
  rangeSafe: boolean;
}

function bindValue(col: BoundColumn, v: Scalar, op: string): BoundValue {
  const what = `column "${col.name}" (${typeName(col.type)})`;
  if ((v as unknown) === null || (v as unknown) === undefined) {
    throw invalid(`"${op}" on ${what} compares with null, which never matches; use isNull/isNotNull`);
  }
  if (typeof v === 'number' && Number.isNaN(v)) throw invalid(`"${op}" on ${what}: NaN is not a valid comparison value`);
  if (col.kind === 'opaque') {
    throw new FloeError('SCHEMA_MISMATCH', `where: "${op}" is not supported on ${what}; only isNull/isNotNull apply`);
  }
  if (col.kind === 'ts') {
    if (typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX) {
      return { cmp: v, keyValue: v % 1000n === 0n ? new Date(Number(v / 1000n)) : undefined, rangeSafe: true };
    }
    if (v instanceof Date && !Number.isNaN(v.getTime())) {
      return { cmp: BigInt(v.getTime()) * 1000n, keyValue: new Date(v.getTime()), rangeSafe: true };
    }
    throw new FloeError('SCHEMA_MISMATCH', `where: "${op}" on ${what}: expected a Date or bigint microseconds, got ${describeValue(v)}`);
  }
  let value: unknown;
  try {
    value = coerceValue(col.type, v);
  } catch (err) {
    if (err instanceof ValueProblem) throw new FloeError('SCHEMA_MISMATCH', `where: "${op}" on ${what}: ${err.message}`);
    throw err;
  }
  const cmp = rowCmp(col.kind, value);
  if (cmp === null) throw new FloeError('INVARIANT_VIOLATION', `where: value ${describeValue(v)} for ${what} has no comparable form`);
  return { cmp, keyValue: value, rangeSafe: typeof cmp !== 'string' || !hasHighUnits(cmp) };
}

function lookupColumn(schema: TableSchema, name: string, cache: Map<string, BoundColumn>): BoundColumn {
  const hit = cache.get(name);
  if (hit) return hit;
  let col: BoundColumn;
  if (name === '_id' || name === '_seq') {
    col = { name, type: SYSTEM_TYPE, kind: 'big', missing: null };
  } else {
    const spec = schema.columns.find((c) => c.name === name);
    if (!spec) {
      throw invalid(`unknown column ${JSON.stringify(name)} (columns: ${[...schema.columns.map((c) => c.name), '_id', '_seq'].join(', ')})`);
    }
    col = { name, type: spec.type, kind: kindOf(spec.type), missing: defaultValue(spec) };
  }
  cache.set(name, col);
  return col;
}

const NEGATED: Record<CompareOp, CompareOp> = { eq: 'ne', ne: 'eq', lt: 'ge', ge: 'lt', le: 'gt', gt: 'le' };

function junction(k: 'and' | 'or', args: BoundNode[]): BoundNode {
  // `and`: a false argument decides, true arguments drop out; dually for `or`.
  const decisive = k === 'or';
  const kept: BoundNode[] = [];
  for (const a of args) {
    if (a.k === 'const') {
      if (a.value === decisive) return a;
      continue;
    }
    if (a.k === k) kept.push(...a.args);
    else kept.push(a);
  }
  if (kept.length === 0) return { k: 'const', value: !decisive };
  return kept.length === 1 ? kept[0]! : { k, args: kept };
}

function compile(p: Predicate, negate: boolean, schema: TableSchema, cache: Map<string, BoundColumn>, used: string[]): BoundNode {
  const col = (name: string): BoundColumn => {
    const c = lookupColumn(schema, name, cache);
    if (!used.includes(name)) used.push(name);
    return c;
  };
  const cmpNode = (op: CompareOp, c: BoundColumn, v: Scalar, shownOp: string): BoundNode => {
    const b = bindValue(c, v, shownOp);
    return {
      k: 'cmp',
      op,
      col: c,
      value: b.cmp,
      bytes: typeof b.cmp === 'string' ? utf8.encode(b.cmp) : null,
      rangeSafe: b.rangeSafe,
      keyValue: b.keyValue,
    };
  };
  switch (p.op) {
    case 'eq':
    case 'ne':
    case 'lt':
    case 'le':
    case 'gt':
    case 'ge':
      return cmpNode(negate ? NEGATED[p.op] : p.op, col(p.column), p.value, p.op);
    case 'in': {
      const c = col(p.column);
      const bound = p.values.map((v) => bindValue(c, v, 'in'));
      if (bound.length === 0) return { k: 'const', value: negate };
      const values = bound.map((b) => b.cmp);
      return {
        k: 'in',
        negated: negate,
        col: c,
        values,
        set: new Set(values),
        rangeSafe: bound.every((b) => b.rangeSafe),
        keyValues: bound.map((b) => b.keyValue),
      };
    }
    case 'between': {
      const c = col(p.column);
      return negate
        ? junction('or', [cmpNode('lt', c, p.low, 'between'), cmpNode('gt', c, p.high, 'between')])
        : junction('and', [cmpNode('ge', c, p.low, 'between'), cmpNode('le', c, p.high, 'between')]);
    }
    case 'isNull':
    case 'isNotNull':
      return { k: 'null', negated: (p.op === 'isNotNull') !== negate, col: col(p.column) };
    case 'and':
    case 'or': {
      const k = (p.op === 'and') !== negate ? 'and' : 'or';
      return junction(k, p.args.map((a) => compile(a, negate, schema, cache, used)));
    }
    case 'not':
      return compile(p.arg, !negate, schema, cache, used);
  }
}

/**
 * Check a `where` against `schema` and compile it. Unknown column ->
 * INVALID_ARGUMENT; a value that does not fit the column's type, or a
 * comparison on binary/list/vector -> SCHEMA_MISMATCH; null or NaN values ->
 * INVALID_ARGUMENT.
 */
export function bindPredicate(p: PredicateInput, schema: TableSchema): BoundPredicate {
  const ast = toPredicate(p);
  const used: string[] = [];
  const root = compile(ast, false, schema, new Map(), used);
  return { root, columns: used };
}

// ---------------------------------------------------------------------------
// Row evaluation

function testCmp(op: CompareOp, r: number): boolean {
  switch (op) {
    case 'eq':
      return r === 0;
    case 'ne':
      return r !== 0;
    case 'lt':
      return r < 0;
    case 'le':
      return r <= 0;
    case 'gt':
      return r > 0;
    case 'ge':
      return r >= 0;
  }
}

function leafOnValue(node: Exclude<BoundNode, { k: 'const' | 'and' | 'or' }>, v: unknown): boolean {
  if (node.k === 'null') return (v === null || v === undefined) !== node.negated;
  const c = rowCmp(node.col.kind, v);
  if (c === null) return false;
  if (node.k === 'cmp') return testCmp(node.op, compare(node.col.kind, c, node.value));
  return node.set.has(c) !== node.negated;
}

function evalNode(node: BoundNode, row: Row): boolean {
  switch (node.k) {
    case 'const':
      return node.value;
    case 'and':
      for (const a of node.args) if (!evalNode(a, row)) return false;
      return true;
    case 'or':
      for (const a of node.args) if (evalNode(a, row)) return true;
      return false;
    default: {
      const v = Object.hasOwn(row, node.col.name) ? ownValue(row, node.col.name) : node.col.missing;
      return leafOnValue(node, v);
    }
  }
}

/** Does `row` (row values as `validateRows`/`recordBatchToRows` produce them) match? */
export function evalRow(bound: BoundPredicate, row: Row): boolean {
  return evalNode(bound.root, row);
}

// ---------------------------------------------------------------------------
// Batch evaluation

type Leaf = Exclude<BoundNode, { k: 'const' | 'and' | 'or' }>;

/** A per-element test on comparable values, with NaN treated as unknown. */
function valueTest(node: Leaf): (x: Cmp) => boolean {
  if (node.k === 'in') {
    const set = node.set;
    return node.negated ? (x) => x === x && !set.has(x) : (x) => set.has(x);
  }
  if (node.k !== 'cmp') throw new FloeError('INVARIANT_VIOLATION', 'valueTest on a null test');
  const v = node.value;
  switch (node.op) {
    case 'eq':
      return (x) => x === v;
    case 'ne':
      return (x) => x === x && x !== v;
    case 'lt':
      return (x) => x < v;
    case 'le':
      return (x) => x <= v;
    case 'gt':
      return (x) => x > v;
    case 'ge':
      return (x) => x >= v;
  }
}

function fillNullTest(node: Extract<BoundNode, { k: 'null' }>, data: arrow.Data, out: Uint8Array): void {
  const hasNulls = data.nullBitmap !== undefined && data.nullBitmap.length > 0 && data.nullCount > 0;
  for (let i = 0; i < out.length; i++) {
    const isNull = hasNulls && !validAt(data, i);
    out[i] = isNull !== node.negated ? 1 : 0;
  }
}

function typedFast(node: Leaf, data: arrow.Data): ((i: number) => Cmp) | null {
  const t: arrow.DataType = data.type;
  const kind = node.col.kind;
  const values = data.values as unknown;
  switch (t.typeId) {
    case arrow.Type.Int: {
      const it = t as arrow.Int;
      if (kind === 'num' && it.isSigned && it.bitWidth === 32) {
        const a = values as Int32Array;
        return (i) => a[i]!;
      }
      if (kind === 'big' && it.isSigned && it.bitWidth === 64) {
        const a = values as BigInt64Array;
        return (i) => a[i]!;
      }
      return null;
    }
    case arrow.Type.Float: {
      if (kind !== 'num' || (t as arrow.Float).precision === arrow.Precision.HALF) return null;
      const a = values as Float32Array | Float64Array;
      return (i) => a[i]!;
    }
    case arrow.Type.Timestamp: {
      if (kind !== 'ts' || (t as arrow.Timestamp).unit !== arrow.TimeUnit.MICROSECOND) return null;
      const a = values as BigInt64Array;
      return (i) => a[i]!;
    }
    case arrow.Type.Date: {
      if (kind !== 'date' || (t as arrow.Date_).unit !== arrow.DateUnit.DAY) return null;
      const a = values as Int32Array;
      return (i) => a[i]!;
    }
    case arrow.Type.Bool: {
      if (kind !== 'bool') return null;
      const a = values as Uint8Array;
      const off = data.offset;
      return (i) => (a[(off + i) >> 3]! >> ((off + i) & 7)) & 1;
    }
    default:
      return null;
  }
}

function fillLeaf(node: Leaf, data: arrow.Data, out: Uint8Array, name: string): void {
  if (node.k === 'null') {
    fillNullTest(node, data, out);
    return;
  }
  const n = out.length;
  const hasNulls = data.nullBitmap !== undefined && data.nullBitmap.length > 0 && data.nullCount > 0;
  const get = typedFast(node, data);
  if (get) {
    const test = valueTest(node);
    for (let i = 0; i < n; i++) out[i] = (!hasNulls || validAt(data, i)) && test(get(i)) ? 1 : 0;
    return;
  }
  if (node.k === 'cmp' && node.bytes && data.type.typeId === arrow.Type.Utf8) {
    // Compare UTF-8 bytes in place: byte order is code-point order.
    const offs = data.valueOffsets as Int32Array;
    const bytes = data.values as Uint8Array;
    const want = node.bytes;
    const op = node.op;
    for (let i = 0; i < n; i++) {
      if (hasNulls && !validAt(data, i)) {
        out[i] = 0;
        continue;
      }
      out[i] = testCmp(op, compareBytes(bytes.subarray(offs[i], offs[i + 1]), want)) ? 1 : 0;
    }
    return;
  }
  const vals = dataToValues(data, name);
  for (let i = 0; i < n; i++) out[i] = leafOnValue(node, vals[i]) ? 1 : 0;
}

function evalBatchNode(node: BoundNode, batch: arrow.RecordBatch, n: number): Uint8Array {
  switch (node.k) {
    case 'const':
      return new Uint8Array(n).fill(node.value ? 1 : 0);
    case 'and':
    case 'or': {
      const acc = evalBatchNode(node.args[0]!, batch, n);
      for (let j = 1; j < node.args.length; j++) {
        const m = evalBatchNode(node.args[j]!, batch, n);
        if (node.k === 'and') for (let i = 0; i < n; i++) acc[i]! &= m[i]!;
        else for (let i = 0; i < n; i++) acc[i]! |= m[i]!;
      }
      return acc;
    }
    default: {
      const out = new Uint8Array(n);
      const idx = batch.schema.fields.findIndex((f) => f.name === node.col.name);
      const data = idx < 0 ? undefined : batch.data.children[idx];
      if (!data) {
        out.fill(leafOnValue(node, node.col.missing) ? 1 : 0);
        return out;
      }
      fillLeaf(node, data, out, node.col.name);
      return out;
    }
  }
}

/** One byte per row of `batch`: 1 where the predicate is TRUE, else 0. Reads column vectors directly. */
export function evalBatch(bound: BoundPredicate, batch: arrow.RecordBatch): Uint8Array {
  return evalBatchNode(bound.root, batch, batch.numRows);
}

// ---------------------------------------------------------------------------
// Pruning

export interface ColumnStatistics {
  min?: unknown;
  max?: unknown;
  nullCount?: number;
  rowCount?: number;
}
export type StatsLookup = (column: string) => ColumnStatistics | undefined;

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * A statistic in comparable form, or undefined when it cannot be used.
 * Accepted forms (those of Arrow's `Vector.get()`, of decoded manifest
 * values, and of raw Parquet statistics):
 *   int32/float  number (a bigint if exactly representable)
 *   int64        bigint, or a safe-integer number
 *   timestamp    bigint µs; Date (a max is widened by 999 µs, as Dates drop
 *                microseconds); number of epoch ms, possibly fractional (widened
 *                by its floating-point error)
 *   date         Date, or number of epoch ms
 *   bool         boolean or 0/1
 *   utf8         string, or valid UTF-8 bytes; a string holding U+FFFD is
 *                ignored, since it may be a lossy decoding of truncated bytes
 */
function statCmp(kind: Kind, v: unknown, isMax: boolean): Cmp | undefined {
  if (v === null || v === undefined) return undefined;
  switch (kind) {
    case 'num':
      if (typeof v === 'number') return Number.isNaN(v) ? undefined : v;
      if (typeof v === 'bigint' && BigInt(Number(v)) === v) return Number(v);
      return undefined;
    case 'big':
      if (typeof v === 'bigint') return v;
      return typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : undefined;
    case 'ts':
      if (typeof v === 'bigint') return v;
      if (v instanceof Date && !Number.isNaN(v.getTime())) return BigInt(v.getTime()) * 1000n + (isMax ? 999n : 0n);
      if (typeof v === 'number' && Number.isFinite(v)) {
        const us = v * 1000;
        const slack = Math.ceil(Math.abs(us) * 2 ** -48) + 1;
        return BigInt(isMax ? Math.ceil(us) + slack : Math.floor(us) - slack);
      }
      return undefined;
    case 'date':
      if (v instanceof Date) v = v.getTime();
      return typeof v === 'number' && Number.isFinite(v) ? Math.floor(v / MS_PER_DAY) : undefined;
    case 'bool':
      if (typeof v === 'boolean') return v ? 1 : 0;
      return v === 0 || v === 1 ? v : undefined;
    case 'str':
      if (typeof v === 'string') return v.includes('\uFFFD') ? undefined : v;
      if (v instanceof Uint8Array) {
        try {
          return utf8Strict.decode(v);
        } catch (err) {
          // Truncated or non-UTF-8 statistics carry no usable bound; say "unknown".
          void err;
          return undefined;
        }
      }
      return undefined;
    case 'opaque':
      return undefined;
  }
}

function leafMayMatch(node: Leaf, stats: StatsLookup): boolean {
  const s = stats(node.col.name);
  if (!s) return true;
  const rows = typeof s.rowCount === 'number' ? s.rowCount : undefined;
  const nulls = typeof s.nullCount === 'number' ? s.nullCount : undefined;
  if (rows === 0) return false;
  const allNull = rows !== undefined && nulls !== undefined && nulls >= rows;
  if (node.k === 'null') return node.negated ? !allNull : nulls !== 0;
  if (allNull) return false;
  const kind = node.col.kind;
  const min = statCmp(kind, s.min, false);
  const max = statCmp(kind, s.max, true);
  const constant = min !== undefined && max !== undefined && compare(kind, min, max) === 0 ? min : undefined;
  const below = (v: Cmp) => min !== undefined && compare(kind, v, min) < 0;
  const above = (v: Cmp) => max !== undefined && compare(kind, v, max) > 0;
  if (node.k === 'in') {
    if (node.negated) return constant === undefined || !node.set.has(constant);
    if (!node.rangeSafe) return true;
    return node.values.some((v) => !below(v) && !above(v));
  }
  const v = node.value;
  if (node.op === 'ne') return constant === undefined || compare(kind, constant, v) !== 0;
  if (!node.rangeSafe) return true;
  switch (node.op) {
    case 'eq':
      return !below(v) && !above(v);
    case 'lt':
      return min === undefined || compare(kind, min, v) < 0;
    case 'le':
      return min === undefined || compare(kind, min, v) <= 0;
    case 'gt':
      return max === undefined || compare(kind, max, v) > 0;
    case 'ge':
      return max === undefined || compare(kind, max, v) >= 0;
  }
}

function mayMatchNode(node: BoundNode, stats: StatsLookup): boolean {
  switch (node.k) {
    case 'const':
      return node.value;
    case 'and':
      return node.args.every((a) => mayMatchNode(a, stats));
    case 'or':
      return node.args.some((a) => mayMatchNode(a, stats));
    default:
      return leafMayMatch(node, stats);
  }
}

/**
 * False only when the statistics prove that no row of the file / row group
 * can match. `stats(column)` returns min/max (non-null, non-NaN values),
 * null count and row count, or undefined when unknown.
 */
export function mayMatch(bound: BoundPredicate, stats: StatsLookup): boolean {
  return mayMatchNode(bound.root, stats);
}

// ---------------------------------------------------------------------------
// Point lookups

type Assignment = Map<string, { cmp: Cmp; value: unknown }>;
const unconstrained = (): Assignment => new Map();

function merge(a: Assignment, b: Assignment): Assignment | null {
  const out = new Map(a);
  for (const [k, v] of b) {
    const prev = out.get(k);
    if (prev === undefined) out.set(k, v);
    else if (prev.cmp !== v.cmp) return null;
  }
  return out;
}

function points(node: BoundNode, pk: ReadonlySet<string>, limit: number): Assignment[] | null {
  switch (node.k) {
    case 'const':
      return node.value ? [unconstrained()] : [];
    case 'and': {
      let acc: Assignment[] = [unconstrained()];
      for (const a of node.args) {
        const next = points(a, pk, limit);
        if (next === null) return null;
        const combined: Assignment[] = [];
        for (const x of acc) {
          for (const y of next) {
            const m = merge(x, y);
            if (m) combined.push(m);
            if (combined.length > limit) return null;
          }
        }
        acc = combined;
      }
      return acc;
    }
    case 'or': {
      const acc: Assignment[] = [];
      for (const a of node.args) {
        const next = points(a, pk, limit);
        if (next === null) return null;
        acc.push(...next);
        if (acc.length > limit) return null;
      }
      return acc;
    }
    case 'cmp':
      if (node.op !== 'eq' || !pk.has(node.col.name)) return [unconstrained()];
      return node.keyValue === undefined ? [] : [new Map([[node.col.name, { cmp: node.value, value: node.keyValue }]])];
    case 'in': {
      if (node.negated || !pk.has(node.col.name)) return [unconstrained()];
      const out: Assignment[] = [];
      node.values.forEach((cmp, i) => {
        const value = node.keyValues[i];
        if (value !== undefined) out.push(new Map([[node.col.name, { cmp, value }]]));
      });
      return out;
    }
    case 'null':
      return [unconstrained()];
  }
}

/**
 * When the predicate pins every primary-key column to finitely many values,
 * the distinct key rows (`{ col: value }`, row-form values usable with
 * `keyOf`) that every matching row must have, sorted by `keyOf`; otherwise
 * null. An empty array means no row can match. This is a superset: the
 * caller still evaluates the predicate on the rows it finds.
 */
export function keyPoints(bound: BoundPredicate, primaryKey: readonly string[], limit = 1024): Row[] | null {
  if (primaryKey.length === 0) return null;
  const pts = points(bound.root, new Set(primaryKey), limit);
  if (pts === null) return null;
  const byKey = new Map<string, Row>();
  for (const a of pts) {
    if (!primaryKey.every((k) => a.has(k))) return null;
    const row: Row = {};
    for (const k of primaryKey) row[k] = a.get(k)!.value;
    byKey.set(keyOf(row, primaryKey), row);
  }
  return [...byKey.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).map((e) => e[1]);
}

/** The one key row a `where` pins (a point lookup), or null when it does not pin exactly one. */
export function keyEqualities(bound: BoundPredicate, primaryKey: readonly string[]): Row | null {
  const pts = keyPoints(bound, primaryKey, 16);
  return pts !== null && pts.length === 1 ? pts[0]! : null;
}
