/**
 * Reads over a TableView: scan, point get, count.
 *
 * A scan visits data files in manifest order, skips files and row groups
 * whose min/max statistics prove the predicate false, reads only the
 * columns it needs from the row groups it keeps, drops rows masked by the
 * file's deletion bitmap or shadowed by a newer memtable entry of the same
 * primary key, applies the predicate, and yields Arrow RecordBatches; then
 * it yields the live memtable rows. Memory is bounded by one row group plus
 * the memtable snapshot — never the table.
 *
 * A point get looks at the memtable first (where a delete is authoritative),
 * then at the files whose key range holds the key, newest first; masking
 * guarantees at most one live version across files.
 */
import * as arrow from 'apache-arrow';
import { FloeError } from '../errors.js';
import type { Row } from '../format/logrecord.js';
import { compareStrings, keyOf, projectBatch, recordBatchToRows, rowsToRecordBatch } from '../format/schema.js';
import { decodeValue } from '../format/values.js';
import type { DataFileEntry } from './manifest.js';
import type { MemEntry } from './memtable.js';
import type { BoundPredicate, Predicate, PredicateInput } from './predicate.js';
import { bindPredicate, evalBatch, evalRow, mayMatch, toPredicate } from './predicate.js';
import type { TableView } from './view.js';
import { memEntries, memLookup, memShadows } from './view.js';

export const SYSTEM_COLUMNS = ['_id', '_seq'] as const;

export interface ScanOptions {
  /** Row filter: a predicate, or `{ column: value }` shorthand (AND of equalities). */
  readonly where?: PredicateInput;
  /** Columns to return (default: every user column). `_id` and `_seq` may be named. */
  readonly columns?: readonly string[];
  /** Stop after this many rows. */
  readonly limit?: number;
}

interface Plan {
  readonly bound: BoundPredicate | null;
  readonly out: string[];
  /** Columns to read from files: output + predicate + primary key. */
  readonly read: string[];
  readonly limit: number;
}

function predicateColumns(p: Predicate, into: Set<string>): Set<string> {
  switch (p.op) {
    case 'and':
    case 'or':
      for (const a of p.args) predicateColumns(a, into);
      break;
    case 'not':
      predicateColumns(p.arg, into);
      break;
    default:
      into.add(p.column);
  }
  return into;
}

export function planScan(view: TableView, options: ScanOptions = {}): Plan {
  const userCols = view.schema.columns.map((c) => c.name);
  const known = new Set<string>([...userCols, ...SYSTEM_COLUMNS]);
  const out = options.columns ? [...options.columns] : userCols;
  if (out.length === 0) throw new FloeError('INVALID_ARGUMENT', `scan of "${view.name}": columns must not be empty`);
  for (const c of out) {
    if (!known.has(c)) {
      throw new FloeError('INVALID_ARGUMENT', `scan of "${view.name}": unknown column "${c}" (columns: ${userCols.join(', ')})`);
    }
  }
  if (new Set(out).size !== out.length) throw new FloeError('INVALID_ARGUMENT', `scan of "${view.name}": duplicate column`);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  if (!(limit >= 0) || (Number.isFinite(limit) && !Number.isInteger(limit))) {
    throw new FloeError('INVALID_ARGUMENT', `scan of "${view.name}": limit must be a non-negative integer`);
  }
  let bound: BoundPredicate | null = null;
  const read = new Set<string>(out);
  if (options.where !== undefined) {
    const p = toPredicate(options.where);
    bound = bindPredicate(p, view.schema);
    predicateColumns(p, read);
  }
  for (const k of view.primaryKey ?? []) read.add(k);
  return { bound, out, read: [...read], limit };
}

/** Decoded manifest-level statistics lookup for pruning. */
function fileStats(f: DataFileEntry) {
  return (column: string) => {
    if (column === '_id') return { min: BigInt(f.minId), max: BigInt(f.maxId), nullCount: 0, rowCount: f.rows };
    if (column === '_seq') return { min: BigInt(f.minSeq), max: BigInt(f.maxSeq), nullCount: 0, rowCount: f.rows };
    const s = f.stats[column];
    if (!s) return undefined;
    return {
      min: s.min === undefined ? undefined : decodeValue(s.min),
      max: s.max === undefined ? undefined : decodeValue(s.max),
      nullCount: s.nullCount,
      rowCount: f.rows,
    };
  };
}

/**
 * Project a batch to `columns`, in that order. (apache-arrow's own
 * `RecordBatch.select` keeps the original field order and drops the wrong
 * children in 18.x; `selectAt` with explicit indexes is correct.)
 */
export function selectColumns(batch: arrow.RecordBatch, columns: readonly string[]): arrow.RecordBatch {
  const names = batch.schema.fields.map((f) => f.name);
  const idx = columns.map((c) => {
    const i = names.indexOf(c);
    if (i < 0) throw new FloeError('INVARIANT_VIOLATION', `column ${c} missing from batch (has ${names.join(', ')})`);
    return i;
  });
  if (idx.length === names.length && idx.every((v, i) => v === i)) return batch;
  return batch.selectAt(idx);
}

/** Keep rows where mask[i] is 1; project to `columns`. */
export function filterBatch(batch: arrow.RecordBatch, mask: Uint8Array | null, columns: readonly string[]): arrow.RecordBatch {
  const projected = selectColumns(batch, columns);
  if (mask === null || mask.every((m) => m === 1)) return projected;
  const idx: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) idx.push(i);
  if (idx.length === 0) return projected.slice(0, 0);
  const vectors: Record<string, arrow.Vector> = {};
  for (const f of projected.schema.fields) {
    const v = projected.getChild(f.name)!;
    vectors[f.name] = arrow.vectorFromArray(
      idx.map((i) => v.get(i) as unknown),
      f.type as arrow.DataType,
    );
  }
  const out = new arrow.Table(vectors).batches;
  if (out.length !== 1) throw new FloeError('INVARIANT_VIOLATION', `filtered batch came out in ${out.length} chunks`);
  // keep the projected schema (nullability, metadata)
  return new arrow.RecordBatch(projected.schema, out[0]!.data);
}

function keyFromRow(view: TableView, row: Row): string {
  return keyOf(row, view.primaryKey as string[]);
}

/** The scan itself: an async generator of record batches. */
export async function* scanView(view: TableView, options: ScanOptions = {}): AsyncGenerator<arrow.RecordBatch> {
  const plan = planScan(view, options);
  let left = plan.limit;
  if (left === 0) return;
  const pk = view.primaryKey;
  const shadowing = pk !== null && view.mem.some((m) => m.size > 0);

  for (const f of view.manifest.files) {
    if (plan.bound && !mayMatch(plan.bound, fileStats(f))) continue;
    if (f.deletes && f.deletes.count >= f.rows) continue;
    const pf = await view.files.file(f);
    const deleted = await view.files.deleted(f);
    for (let g = 0; g < pf.rowGroups.length; g++) {
      const rg = pf.rowGroups[g]!;
      if (plan.bound && !mayMatch(plan.bound, (c) => ({ ...rg.columns[c], rowCount: rg.numRows }))) continue;
      const available = plan.read.filter((c) => pf.schema.fields.some((x) => x.name === c));
      let batch = await pf.readRowGroup(g, available);
      if (available.length !== plan.read.length) batch = projectBatch(batch, view.schema, plan.read);
      const n = batch.numRows;
      let mask: Uint8Array | null = null;
      const drop = (i: number) => {
        mask ??= new Uint8Array(n).fill(1);
        mask[i] = 0;
      };
      if (deleted && deleted.size > 0) {
        for (let i = 0; i < n; i++) if (deleted.has(rg.firstRow + i)) drop(i);
      }
      if (shadowing) {
        const keyRows = recordBatchToRows(batch, pk);
        for (let i = 0; i < n; i++) if (memShadows(view, keyFromRow(view, keyRows[i]!))) drop(i);
      }
      if (plan.bound) {
        const m = evalBatch(plan.bound, batch);
        for (let i = 0; i < n; i++) if (!m[i]) drop(i);
      }
      let out = filterBatch(batch, mask, plan.out);
      if (out.numRows === 0) continue;
      if (out.numRows > left) out = out.slice(0, left);
      left -= out.numRows;
      yield out;
      if (left <= 0) return;
    }
  }

  const live: MemEntry[] = [];
  for (const e of memEntries(view)) {
    if (e.row === null) continue;
    if (plan.bound && !evalRow(plan.bound, withSystem(e))) continue;
    live.push(e);
    if (live.length >= left) break;
  }
  const CHUNK = 8192;
  for (let i = 0; i < live.length; i += CHUNK) {
    const part = live.slice(i, i + CHUNK);
    const batch = memBatch(view, part);
    yield selectColumns(batch, plan.out);
  }
}

function withSystem(e: MemEntry): Row {
  return { ...e.row, _id: e.id, _seq: BigInt(e.seq) };
}

export function memBatch(view: TableView, entries: readonly MemEntry[]): arrow.RecordBatch {
  return rowsToRecordBatch(
    view.schema,
    entries.map((e) => e.row!),
    { _id: BigInt64Array.from(entries, (e) => e.id), _seq: BigInt64Array.from(entries, (e) => BigInt(e.seq)) },
  );
}

/** Point lookup by primary key; null when absent or deleted. */
export async function getByKey(view: TableView, keyRow: Row, columns?: readonly string[]): Promise<Row | null> {
  const pk = view.primaryKey;
  if (!pk) throw new FloeError('INVALID_ARGUMENT', `table "${view.name}" has no primary key; use scan({ where })`);
  const plan = planScan(view, { columns });
  const key = keyOf(keyRow, pk);
  const e = memLookup(view, key);
  if (e) return e.row === null ? null : pick(withSystem(e), plan.out);

  const candidates = view.manifest.files
    .filter((f) => {
      if (!f.keyMin || !f.keyMax) return true;
      const lo = keyOf(rowOf(pk, f.keyMin), pk);
      const hi = keyOf(rowOf(pk, f.keyMax), pk);
      return lo <= key && key <= hi;
    })
    .sort((a, b) => b.maxSeq - a.maxSeq);
  const first = pk[0]!;
  const probe = keyRow[first];
  for (const f of candidates) {
    const pf = await view.files.file(f);
    const deleted = await view.files.deleted(f);
    for (let g = 0; g < pf.rowGroups.length; g++) {
      const rg = pf.rowGroups[g]!;
      const st = rg.columns[first];
      if (st && st.min !== undefined && st.max !== undefined && (cmp(probe, st.min) < 0 || cmp(probe, st.max) > 0)) continue;
      const index = await view.files.keyIndex(f, g, async () => {
        const keys = recordBatchToRows(await pf.readRowGroup(g, pk as string[]), pk);
        const m = new Map<string, number>();
        for (let j = 0; j < keys.length; j++) m.set(keyOf(keys[j]!, pk), j);
        return m;
      });
      const i = index.get(key);
      if (i === undefined || deleted?.has(rg.firstRow + i)) continue;
      const cols = plan.out.filter((c) => pf.schema.fields.some((x) => x.name === c));
      // Only the pages holding this row (offset index), not the row group.
      let batch = await pf.readRows(rg.firstRow + i, rg.firstRow + i + 1, cols);
      if (cols.length !== plan.out.length) batch = projectBatch(batch, view.schema, plan.out);
      return recordBatchToRows(batch, plan.out)[0] ?? null;
    }
  }
  return null;
}

function rowOf(pk: readonly string[], values: readonly unknown[]): Row {
  const r: Row = {};
  pk.forEach((c, i) => (r[c] = decodeValue(values[i])));
  return r;
}

function pick(row: Row, cols: readonly string[]): Row {
  const out: Row = {};
  for (const c of cols) out[c] = row[c] ?? null;
  return out;
}

/** Total order over the scalar values floe stores (same-typed operands). */
export function cmp(a: unknown, b: unknown): number {
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    const x = BigInt(a as bigint | number);
    const y = BigInt(b as bigint | number);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  // Strings order by code point (UTF-8 byte order), as Parquet statistics do.
  return compareStrings(String(a), String(b));
}

/** Rows matching a scan, counted without materializing output columns. */
export async function countView(view: TableView, where?: PredicateInput): Promise<number> {
  let n = 0;
  const first = view.primaryKey?.[0] ?? view.schema.columns[0]!.name;
  for await (const b of scanView(view, { where, columns: [first] })) n += b.numRows;
  return n;
}
