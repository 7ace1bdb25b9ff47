/**
 * Reads over a TableView: scan, point get, count.
 *
 * A scan visits data files in manifest order, skips files and row groups
 * whose min/max statistics prove the predicate false, reads only the
 * columns it needs from the row groups it keeps, drops rows masked by the
 * file's deletion bitmap or shadowed by a newer memtable entry of the same
 * primary key, applies the predicate, and yields Arrow RecordBatches; then
 * it yields the live memtable rows. Column chunks of flat columns are
 * decoded by the page reader straight into Arrow buffers (one coalesced
 * range read per row group, the next two row groups prefetched); other
 * layouts go through ParquetFile. Memory is bounded by a few row groups plus
 * the memtable snapshot — never the table.
 *
 * A point get looks at the memtable first (where a delete is authoritative),
 * then at the files whose key range holds the key, newest first; masking
 * guarantees at most one live version across files. In a file, the key
 * column's page index (min/max per page) picks the page that can hold the
 * key, the decoded page is searched, and each output column reads the one
 * page holding the row. Decoded pages stay in the FileCache's byte-bounded
 * page cache, so a warm get runs without I/O or awaits; a cold get probes
 * every unopened candidate file at once and fetches a row's pages in
 * parallel. Composite keys, nested columns and encodings the page reader
 * does not decode take the general path (ParquetFile) with the same result.
 * Nothing here writes; a failed read leaves nothing cached.
 */
import * as arrow from 'apache-arrow';
import { FloeError } from '../errors.js';
import type { Row } from '../format/logrecord.js';
import type { RoaringBitmap32 } from '../format/bitmap.js';
import type { Decoded, Leaf, LeafKind, PageBounds, PageReader, PageStats, RawValue } from '../format/parquet-pages.js';
import { compareRaw, decodedBytes, fitsArrow, toArrow, Unsupported } from '../format/parquet-pages.js';
import type { ColumnSpec, ColumnType } from '../format/schema.js';
import {
  arrowTypeName,
  columnTypeFromArrow,
  compareStrings,
  defaultValue,
  keyOf,
  microsToDate,
  projectBatch,
  recordBatchToRows,
  rowsToRecordBatch,
  sameType,
  typeName,
} from '../format/schema.js';
import { decodeValue } from '../format/values.js';
import type { FileCache, OpenedFile } from './files.js';
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

interface ScanColumns {
  /** Columns of plan.read the file holds, in plan order. */
  readonly leaves: Leaf[];
  readonly fields: arrow.Field[];
  readonly schema: arrow.Schema;
}

const scanColumnsMemo = new WeakMap<PageReader, Map<string, ScanColumns | null>>();

/** The file's columns among `read` when the page reader decodes them all to Arrow; else null. */
function scanColumns(reader: PageReader, read: readonly string[]): ScanColumns | null {
  let memo = scanColumnsMemo.get(reader);
  if (!memo) {
    memo = new Map();
    scanColumnsMemo.set(reader, memo);
  }
  const id = read.join('\u0000');
  let out = memo.get(id);
  if (out !== undefined) return out;
  out = null;
  const arrowSchema = reader.arrowSchema();
  if (arrowSchema) {
    const leaves: Leaf[] = [];
    const fields: arrow.Field[] = [];
    let ok = true;
    for (const c of read) {
      if (!reader.columns.has(c)) continue;
      const leaf = reader.leaves.get(c);
      const field = arrowSchema.fields.find((x) => x.name === c);
      if (!leaf || !field || !fitsArrow(leaf.kind, field.type as arrow.DataType)) {
        ok = false;
        break;
      }
      leaves.push(leaf);
      fields.push(field);
    }
    if (ok && fields.length > 0) out = { leaves, fields, schema: new arrow.Schema(fields, arrowSchema.metadata) };
  }
  memo.set(id, out);
  return out;
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
  let kept = 0;
  for (let i = 0; i < mask.length; i++) kept += mask[i] ? 1 : 0;
  if (kept === 0) return projected.slice(0, 0);
  const idx = new Int32Array(kept);
  for (let i = 0, j = 0; i < mask.length; i++) if (mask[i]) idx[j++] = i;
  const children = projected.schema.fields.map((_, i) => takeData(projected.data.children[i] as arrow.Data, idx));
  // Keep the projected schema (nullability, metadata).
  return new arrow.RecordBatch(projected.schema, arrow.makeData({ type: new arrow.Struct(projected.schema.fields), length: kept, nullCount: 0, children }));
}

/** Rows `idx` (ascending or not) of one column, copied into fresh buffers. */
export function takeData(d: arrow.Data, idx: Int32Array): arrow.Data {
  const n = idx.length;
  const off = d.offset;
  const type = d.type;
  const bits = d.nullBitmap;
  let nullBitmap: Uint8Array | undefined;
  let nullCount = 0;
  if (bits && bits.length > 0 && d.nullCount > 0) {
    nullBitmap = new Uint8Array((n + 7) >> 3);
    for (let j = 0; j < n; j++) {
      const r = off + idx[j]!;
      if ((bits[r >> 3]! >> (r & 7)) & 1) nullBitmap[j >> 3] = nullBitmap[j >> 3]! | (1 << (j & 7));
      else nullCount++;
    }
    if (nullCount === 0) nullBitmap = undefined;
  }
  switch (type.typeId) {
    case arrow.Type.Int:
    case arrow.Type.Float:
    case arrow.Type.Date:
    case arrow.Type.Timestamp: {
      const src = d.values as Int32Array | BigInt64Array | Float32Array | Float64Array;
      const out = new (src.constructor as new (n: number) => typeof src)(n);
      for (let j = 0; j < n; j++) out[j] = src[off + idx[j]!]!;
      return arrow.makeData({ type: type as arrow.Int32, length: n, nullCount, nullBitmap, data: out as Int32Array });
    }
    case arrow.Type.Bool: {
      const src = d.values as Uint8Array;
      const out = new Uint8Array((n + 7) >> 3);
      for (let j = 0; j < n; j++) {
        const r = off + idx[j]!;
        if ((src[r >> 3]! >> (r & 7)) & 1) out[j >> 3] = out[j >> 3]! | (1 << (j & 7));
      }
      return arrow.makeData({ type: type as arrow.Bool, length: n, nullCount, nullBitmap, data: out });
    }
    case arrow.Type.Utf8:
    case arrow.Type.Binary: {
      const offs = d.valueOffsets as Int32Array;
      const src = d.values as Uint8Array;
      const valueOffsets = new Int32Array(n + 1);
      let total = 0;
      for (let j = 0; j < n; j++) {
        const r = off + idx[j]!;
        total += offs[r + 1]! - offs[r]!;
        valueOffsets[j + 1] = total;
      }
      const data = new Uint8Array(total);
      for (let j = 0; j < n; j++) {
        const r = off + idx[j]!;
        data.set(src.subarray(offs[r], offs[r + 1]), valueOffsets[j]);
      }
      return arrow.makeData({ type: type as arrow.Utf8, length: n, nullCount, nullBitmap, valueOffsets, data });
    }
    case arrow.Type.List: {
      const offs = d.valueOffsets as Int32Array;
      const valueOffsets = new Int32Array(n + 1);
      let total = 0;
      for (let j = 0; j < n; j++) {
        const r = off + idx[j]!;
        total += offs[r + 1]! - offs[r]!;
        valueOffsets[j + 1] = total;
      }
      const inner = new Int32Array(total);
      for (let j = 0, k = 0; j < n; j++) {
        const r = off + idx[j]!;
        for (let e = offs[r]!; e < offs[r + 1]!; e++) inner[k++] = e;
      }
      const child = takeData(d.children[0]!, inner);
      return arrow.makeData({ type: type as arrow.List, length: n, nullCount, nullBitmap, valueOffsets, child });
    }
    case arrow.Type.FixedSizeList: {
      const size = (type as arrow.FixedSizeList).listSize;
      const inner = new Int32Array(n * size);
      for (let j = 0; j < n; j++) {
        const r = off + idx[j]!;
        for (let e = 0; e < size; e++) inner[j * size + e] = r * size + e;
      }
      const child = takeData(d.children[0]!, inner);
      return arrow.makeData({ type: type as arrow.FixedSizeList, length: n, nullCount, nullBitmap, child });
    }
    default:
      throw new FloeError('INVARIANT_VIOLATION', `cannot filter a column of Arrow type ${String(type.typeId)}`);
  }
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

  // Per row group: project, mask (deletes, memtable shadowing, predicate), yield.
  // `left` is how many rows the limit still allows; returns false once it is reached.
  function* emit(batch: arrow.RecordBatch, firstRow: number, deleted: RoaringBitmap32 | null): Generator<arrow.RecordBatch, boolean> {
    const n = batch.numRows;
    let mask: Uint8Array | null = null;
    const drop = (i: number) => {
      mask ??= new Uint8Array(n).fill(1);
      mask[i] = 0;
    };
    if (deleted && deleted.size > 0 && deleted.rangeCardinality(firstRow, firstRow + n) > 0) {
      for (let i = 0; i < n; i++) if (deleted.has(firstRow + i)) drop(i);
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
    if (out.numRows === 0) return true;
    if (out.numRows > left) out = out.slice(0, left);
    left -= out.numRows;
    yield out;
    return left > 0;
  }

  for (const f of view.manifest.files) {
    if (plan.bound && !mayMatch(plan.bound, fileStats(f))) continue;
    if (f.deletes && f.deletes.count >= f.rows) continue;
    const deleted = await view.files.deleted(f);
    const file = await view.files.open(f);
    const cols = scanColumns(file.reader, plan.read);
    if (cols === null) {
      // Layouts the page reader does not decode (lists, vectors, foreign files).
      const pf = await view.files.file(f);
      for (let g = 0; g < pf.rowGroups.length; g++) {
        const rg = pf.rowGroups[g]!;
        if (plan.bound && !mayMatch(plan.bound, (c) => ({ ...rg.columns[c], rowCount: rg.numRows }))) continue;
        const available = plan.read.filter((c) => pf.schema.fields.some((x) => x.name === c));
        let batch = await pf.readRowGroup(g, available);
        if (available.length !== plan.read.length) batch = projectBatch(batch, view.schema, plan.read);
        if (!(yield* emit(batch, rg.firstRow, deleted))) return;
      }
      continue;
    }
    const reader = file.reader;
    // Row-group statistics (for pruning) come from ParquetFile's decoded footer.
    const pf = plan.bound ? await view.files.file(f) : null;
    const groups: number[] = [];
    for (let g = 0; g < reader.numRowGroups; g++) {
      const rg = pf?.rowGroups[g];
      if (rg && plan.bound && !mayMatch(plan.bound, (c) => ({ ...rg.columns[c], rowCount: rg.numRows }))) continue;
      groups.push(g);
    }
    // The bytes of the next PREFETCH row groups are fetched while this one decodes.
    const PREFETCH = 2;
    const fetch = (k: number): Promise<Uint8Array[]> | null => (k < groups.length ? reader.chunksBytes(groups[k]!, cols.leaves) : null);
    const ahead: Array<Promise<Uint8Array[]> | null> = [];
    for (let k = 0; k < PREFETCH; k++) ahead.push(fetch(k));
    try {
      for (let k = 0; k < groups.length; k++) {
        const g = groups[k]!;
        const bytes = await ahead.shift()!;
        ahead.push(fetch(k + PREFETCH));
        let batch: arrow.RecordBatch;
        try {
          const children = cols.leaves.map((leaf, i) => toArrow(reader.decodeChunk(g, leaf, bytes[i]!), cols.fields[i]!.type as arrow.DataType));
          const rows = (reader.groupStarts[g + 1] as number) - (reader.groupStarts[g] as number);
          batch = new arrow.RecordBatch(cols.schema, arrow.makeData({ type: new arrow.Struct(cols.fields), length: rows, nullCount: 0, children }));
        } catch (err) {
          if (!(err instanceof Unsupported)) throw err;
          batch = await (await view.files.file(f)).readRowGroup(g, cols.fields.map((x) => x.name));
        }
        if (cols.fields.length !== plan.read.length) batch = projectBatch(batch, view.schema, plan.read);
        if (!(yield* emit(batch, reader.groupStarts[g] as number, deleted))) return;
      }
    } finally {
      // A scan stopped early (limit, consumer break, error) leaves prefetches
      // behind; nobody needs their bytes, and a failure of them is not this scan's.
      for (const p of ahead) if (p) p.catch(() => undefined);
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
  const plan = getPlan(view, columns);
  const key = keyOf(keyRow, pk);
  const e = memLookup(view, key);
  if (e) return e.row === null ? null : pick(withSystem(e), plan.out);

  const probe = keyRow[pk[0]!];
  let probeBytes: Uint8Array | undefined;
  const cands: Candidate[] = [];
  for (const c of candidateFiles(view, pk)) if (c.lo === null || c.hi === null || (c.lo <= key && key <= c.hi)) cands.push(c);

  /** Where the key is in one file: a file row (-1: absent), or SLOW for the general path. */
  const probeFile = async (f: DataFileEntry): Promise<{ at: number | typeof SLOW; file: OpenedFile; deleted: RoaringBitmap32 | null }> => {
    const [deleted, file] = await Promise.all([view.files.readyDeleted(f) ?? view.files.deleted(f), view.files.opened(f) ?? view.files.open(f)]);
    const kc = pk.length === 1 ? keyColumn(file, pk[0]!, probe) : null;
    if (kc === null) return { at: SLOW, file, deleted };
    const raw = kc.utf8 ? (probeBytes ??= utf8.encode(probe as string)) : (probe as RawValue);
    try {
      return { at: await locateKey(view.files, file, kc.leaf, raw), file, deleted };
    } catch (err) {
      if (!(err instanceof Unsupported)) throw err;
      return { at: SLOW, file, deleted };
    }
  };

  // Files not opened yet (a cold cache) are probed all at once, so their
  // footers and key pages are fetched in parallel; the answer is still the
  // newest file's. Probes of files an earlier answer makes moot are left to
  // finish (they warm the caches); their failures are not this lookup's.
  let started: Array<Promise<Awaited<ReturnType<typeof probeFile>>> | undefined> | null = null;
  try {
    for (let i = 0; i < cands.length; i++) {
      const f = cands[i]!.f;
      // Warm: everything cached, no await at all.
      const warmFile = started === null ? view.files.opened(f) : undefined;
      const warmDeleted = warmFile ? view.files.readyDeleted(f) : undefined;
      if (warmFile && warmDeleted !== undefined) {
        let at: number | undefined;
        let row: Row | undefined;
        try {
          const kc = pk.length === 1 ? keyColumn(warmFile, pk[0]!, probe) : null;
          at = kc === null ? undefined : locateKeySync(view.files, warmFile, kc.leaf, kc.utf8 ? (probeBytes ??= utf8.encode(probe as string)) : (probe as RawValue));
          if (at !== undefined && at >= 0 && !warmDeleted?.has(at)) row = readRowSync(view, warmFile, at, plan.out);
        } catch (err) {
          // A layout the page cache cannot number: the paths below handle it.
          if (!(err instanceof Unsupported)) throw err;
          at = undefined;
        }
        if (at !== undefined) {
          if (at < 0 || warmDeleted?.has(at)) continue;
          return row ?? (await readRow(view, f, warmFile, at, plan.out));
        }
      }
      let r: Awaited<ReturnType<typeof probeFile>>;
      if (started === null && view.files.opened(f) === undefined && cands.length > 1) {
        started = cands.map((c, j) => (j >= i && view.files.opened(c.f) === undefined ? probeFile(c.f) : undefined));
      }
      const early = started?.[i];
      if (early) {
        started![i] = undefined;
        r = await early;
      } else {
        r = await probeFile(f);
      }
      if (r.at === SLOW) {
        const row = await getFromFileSlow(view, f, key, probe, plan.out, r.deleted);
        if (row === SKIP) continue;
        return row;
      }
      if (r.at < 0 || r.deleted?.has(r.at)) continue;
      return await readRow(view, f, r.file, r.at, plan.out);
    }
    return null;
  } finally {
    if (started) for (const p of started) if (p) p.catch(() => undefined);
  }
}

const SLOW = Symbol('general path');
const SKIP = Symbol('not in this file');

/** The general lookup in one file (ParquetFile + a key Map per row group), for layouts the page reader leaves alone. */
async function getFromFileSlow(
  view: TableView,
  f: DataFileEntry,
  key: string,
  probe: unknown,
  out: readonly string[],
  deleted: RoaringBitmap32 | null,
): Promise<Row | null | typeof SKIP> {
  const pk = view.primaryKey!;
  const first = pk[0]!;
  const pf = await view.files.file(f);
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
    const cols = out.filter((c) => pf.schema.fields.some((x) => x.name === c));
    // Only the pages holding this row (offset index), not the row group.
    let batch = await pf.readRows(rg.firstRow + i, rg.firstRow + i + 1, cols);
    if (cols.length !== out.length) batch = projectBatch(batch, view.schema, out);
    return recordBatchToRows(batch, out)[0] ?? null;
  }
  return SKIP;
}

interface Candidate {
  readonly f: DataFileEntry;
  /** Encoded key range of the file (null: unknown, the file is always a candidate). */
  readonly lo: string | null;
  readonly hi: string | null;
}

const candidatesMemo = new WeakMap<object, Candidate[]>();

/** The manifest's files, newest first, with their key ranges encoded once per manifest. */
function candidateFiles(view: TableView, pk: readonly string[]): Candidate[] {
  let list = candidatesMemo.get(view.manifest);
  if (!list) {
    list = view.manifest.files
      .map((f) => ({
        f,
        lo: f.keyMin ? keyOf(rowOf(pk, f.keyMin), pk) : null,
        hi: f.keyMax ? keyOf(rowOf(pk, f.keyMax), pk) : null,
      }))
      .sort((a, b) => b.f.maxSeq - a.f.maxSeq);
    candidatesMemo.set(view.manifest, list);
  }
  return list;
}

/** The default plan (every user column) per manifest: schema and key derive from it. */
const planMemo = new WeakMap<object, Plan>();

function getPlan(view: TableView, columns: readonly string[] | undefined): Plan {
  if (columns !== undefined) return planScan(view, { columns });
  let plan = planMemo.get(view.manifest);
  if (!plan) {
    plan = planScan(view, {});
    planMemo.set(view.manifest, plan);
  }
  return plan;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

const keyColumnMemo = new WeakMap<OpenedFile, Map<string, { leaf: Leaf; utf8: boolean; type: 'bytes' | 'bigint' | 'number' } | null>>();

/**
 * How the file stores a single-column key: its leaf and the probe's physical
 * form (UTF-8 bytes, raw bytes, bigint, number); null when the key type or
 * the file needs the general path.
 */
function keyColumn(file: OpenedFile, column: string, probe: unknown): { leaf: Leaf; utf8: boolean } | null {
  let memo = keyColumnMemo.get(file);
  if (!memo) {
    memo = new Map();
    keyColumnMemo.set(file, memo);
  }
  let k = memo.get(column);
  if (k === undefined) {
    k = null;
    const leaf = file.reader.leaves.get(column);
    const field = file.reader.arrowSchema()?.fields.find((x) => x.name === column);
    if (leaf && field) {
      const t = field.type as arrow.DataType;
      if (leaf.kind === 'bytes' && arrow.DataType.isUtf8(t)) k = { leaf, utf8: true, type: 'bytes' };
      else if (leaf.kind === 'bytes' && arrow.DataType.isBinary(t)) k = { leaf, utf8: false, type: 'bytes' };
      else if (leaf.kind === 'int64' && arrow.DataType.isInt(t)) k = { leaf, utf8: false, type: 'bigint' };
      else if (leaf.kind === 'int32' && arrow.DataType.isInt(t)) k = { leaf, utf8: false, type: 'number' };
    }
    memo.set(column, k);
  }
  if (k === null) return null;
  const ok = k.type === 'bytes' ? (k.utf8 ? typeof probe === 'string' : probe instanceof Uint8Array) : typeof probe === k.type;
  return ok ? k : null;
}

/** Sortedness of decoded key pages (computed once per page object). */
const sortedMemo = new WeakMap<Decoded, boolean>();

/** Pages of a chunk whose min/max admit `probe` (binary search when the index says pages ascend). */
function pagesFor(stats: PageStats, probe: RawValue): number[] {
  const n = stats.min.length;
  const out: number[] = [];
  let p = 0;
  if (stats.ascending) {
    // First page whose max is >= probe.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (stats.nullPages[mid] || compareRaw(stats.max[mid]!, probe) < 0) lo = mid + 1;
      else hi = mid;
    }
    p = lo;
  }
  for (; p < n; p++) {
    if (stats.nullPages[p]) continue;
    if (compareRaw(stats.min[p]!, probe) > 0) {
      if (stats.ascending) break;
      continue;
    }
    if (compareRaw(stats.max[p]!, probe) < 0) continue;
    out.push(p);
  }
  return out;
}

function groupMayHold(reader: PageReader, g: number, leaf: Leaf, probe: RawValue): boolean {
  const cs = reader.chunkStats(g, leaf);
  return !cs || (compareRaw(probe, cs.min) >= 0 && compareRaw(probe, cs.max) <= 0);
}

/**
 * File row holding `probe` in the key column, or -1. Uses the column index
 * (page min/max) to pick the pages that may hold it, then searches the
 * decoded page (binary search when the page is sorted, as floe writes it).
 */
async function locateKey(files: FileCache, file: OpenedFile, leaf: Leaf, probe: RawValue): Promise<number> {
  const reader = file.reader;
  for (let g = 0; g < reader.numRowGroups; g++) {
    if (!groupMayHold(reader, g, leaf, probe)) continue;
    const stats = reader.knownPageStats(g, leaf) ?? (await reader.pageStats(g, leaf));
    const bounds = reader.knownPageBounds(g, leaf) ?? (await reader.pageBounds(g, leaf));
    if (!stats || !bounds || stats.min.length !== bounds.offsets.length) {
      const i = searchDecoded(await chunkOf(files, file, g, leaf), probe);
      if (i >= 0) return (reader.groupStarts[g] as number) + i;
      continue;
    }
    for (const p of pagesFor(stats, probe)) {
      const i = searchDecoded(await pageOf(files, file, g, leaf, bounds, p), probe);
      if (i >= 0) return (reader.groupStarts[g] as number) + (bounds.firstRows[p] as number) + i;
    }
  }
  return -1;
}

/** `locateKey` from cached structures only; undefined when something it needs is not cached. */
function locateKeySync(files: FileCache, file: OpenedFile, leaf: Leaf, probe: RawValue): number | undefined {
  const reader = file.reader;
  for (let g = 0; g < reader.numRowGroups; g++) {
    if (!groupMayHold(reader, g, leaf, probe)) continue;
    const stats = reader.knownPageStats(g, leaf);
    const bounds = reader.knownPageBounds(g, leaf);
    if (stats === undefined || bounds === undefined) return undefined;
    if (!stats || !bounds || stats.min.length !== bounds.offsets.length) {
      const d = files.peek<Decoded>(file, slotOf(g, leaf.chunk, ALL));
      if (!d) return undefined;
      const i = searchDecoded(d, probe);
      if (i >= 0) return (reader.groupStarts[g] as number) + i;
      continue;
    }
    for (const p of pagesFor(stats, probe)) {
      const d = files.peek<Decoded>(file, slotOf(g, leaf.chunk, p));
      if (!d) return undefined;
      const i = searchDecoded(d, probe);
      if (i >= 0) return (reader.groupStarts[g] as number) + (bounds.firstRows[p] as number) + i;
    }
  }
  return -1;
}

/** Cache slot of page p of chunk `chunk` in row group g (DICT and ALL are special pages). */
const DICT = 65535;
const ALL = 65534;
function slotOf(g: number, chunk: number, p: number): number {
  if (chunk >= 4096 || p > DICT || g >= 1 << 20) throw new Unsupported('more pages, chunks or row groups than the page cache numbers');
  return (g * 4096 + chunk) * 65536 + p;
}

function pageOf(files: FileCache, file: OpenedFile, g: number, leaf: Leaf, bounds: PageBounds, p: number): Promise<Decoded> | Decoded {
  const id = slotOf(g, leaf.chunk, p);
  return (
    files.peek<Decoded>(file, id) ??
    files.load(file, id, async () => {
      // A chunk with a dictionary: fetch it alongside the page rather than after.
      const dict = file.reader.chunk(g, leaf).meta.dictionary_page_offset !== undefined ? dictOf(files, file, g, leaf) : null;
      try {
        const d = await file.reader.page(g, leaf, bounds, p, () => dict ?? Promise.resolve(null));
        return { value: d, bytes: decodedBytes(d) };
      } finally {
        // A PLAIN page (dictionary fallback) never awaits the dictionary; its failure then is not this read's.
        if (dict) dict.catch(() => undefined);
      }
    })
  );
}

async function dictOf(files: FileCache, file: OpenedFile, g: number, leaf: Leaf): Promise<Decoded | null> {
  const d = await files.load(file, slotOf(g, leaf.chunk, DICT), async () => {
    const d = await file.reader.dictionary(g, leaf);
    return { value: d ?? NO_DICT, bytes: d ? decodedBytes(d) : 16 };
  });
  return d === NO_DICT ? null : d;
}
const NO_DICT: Decoded = { kind: 'int32', length: 0, nullCount: 0, validity: null, values: new Int32Array(0), offsets: null, dictionary: null, indices: null };

function chunkOf(files: FileCache, file: OpenedFile, g: number, leaf: Leaf): Promise<Decoded> | Decoded {
  const id = slotOf(g, leaf.chunk, ALL);
  return (
    files.peek<Decoded>(file, id) ??
    files.load(file, id, async () => {
      const d = await file.reader.readChunk(g, leaf);
      return { value: d, bytes: decodedBytes(d) };
    })
  );
}

/** Index of `probe` among the decoded values, or -1. */
export function searchDecoded(d: Decoded, probe: RawValue): number {
  if (d.indices !== null) {
    const j = searchDecoded(d.dictionary!, probe);
    if (j < 0) return -1;
    return d.indices.indexOf(j);
  }
  let sorted = sortedMemo.get(d);
  if (sorted === undefined) {
    sorted = d.validity === null && isSorted(d);
    sortedMemo.set(d, sorted);
  }
  const n = d.length;
  if (sorted) {
    let lo = 0;
    let hi = n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = compareAt(d, mid, probe);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
  for (let i = 0; i < n; i++) {
    if (d.validity !== null && ((d.validity[i >> 3]! >> (i & 7)) & 1) === 0) continue;
    if (compareAt(d, i, probe) === 0) return i;
  }
  return -1;
}

function isSorted(d: Decoded): boolean {
  if (d.kind === 'bytes') {
    const offs = d.offsets!;
    const v = d.values as Uint8Array;
    for (let i = 1; i < d.length; i++) {
      if (compareSpans(v, offs[i - 1]!, offs[i]!, v, offs[i]!, offs[i + 1]!) > 0) return false;
    }
    return true;
  }
  if (d.kind === 'bool') return false;
  const v = d.values as Int32Array | BigInt64Array | Float64Array;
  for (let i = 1; i < d.length; i++) if (!(v[i - 1]! <= v[i]!)) return false;
  return true;
}

/** Sign of (value i) - probe. */
function compareAt(d: Decoded, i: number, probe: RawValue): number {
  if (d.kind === 'bytes') {
    const offs = d.offsets!;
    const p = probe as Uint8Array;
    return compareSpans(d.values as Uint8Array, offs[i]!, offs[i + 1]!, p, 0, p.length);
  }
  const v = (d.values as Int32Array | BigInt64Array)[i]!;
  return v < (probe as number | bigint) ? -1 : v > (probe as number | bigint) ? 1 : 0;
}

function compareSpans(a: Uint8Array, as: number, ae: number, b: Uint8Array, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  for (let k = 0; k < n; k++) {
    const x = a[as + k]!;
    const y = b[bs + k]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return ae - as - (be - bs);
}

type ColumnPlan =
  | { readonly how: 'page'; readonly leaf: Leaf; readonly value: ValueAt }
  | { readonly how: 'default'; readonly spec: ColumnSpec }
  | { readonly how: 'slow' };

/** How to read each output column of `out` from this file (memoized per `out` array, which the plan memo keeps stable). */
function columnPlans(view: TableView, file: OpenedFile, out: readonly string[]): ColumnPlan[] {
  let plans = file.memo.get(out) as ColumnPlan[] | undefined;
  if (!plans) {
    plans = out.map((name) => columnPlan(view, file.reader, name));
    file.memo.set(out, plans);
  }
  return plans;
}

function columnPlan(view: TableView, reader: PageReader, name: string): ColumnPlan {
  const spec = view.schema.columns.find((c) => c.name === name);
  const isSystem = (SYSTEM_COLUMNS as readonly string[]).includes(name);
  if (!spec && !isSystem) throw new FloeError('INVALID_ARGUMENT', `column ${JSON.stringify(name)} is not in the schema`);
  const field = reader.arrowSchema()?.fields.find((x) => x.name === name);
  if (!reader.columns.has(name)) {
    if (!spec) throw new FloeError('SCHEMA_MISMATCH', `system column "${name}" is missing from the batch`);
    if (defaultValue(spec) === null && !spec.nullable) {
      throw new FloeError('SCHEMA_MISMATCH', `column "${spec.name}" is missing from the data file and is non-nullable without a default`);
    }
    return { how: 'default', spec };
  }
  if (!field) return { how: 'slow' };
  const type = field.type as arrow.DataType;
  const have = columnTypeFromArrow(type);
  const want: ColumnType = spec ? spec.type : 'int64';
  if (have === undefined || !sameType(have, want)) {
    throw new FloeError('SCHEMA_MISMATCH', `column "${name}" is ${arrowTypeName(type)} in the data file but ${typeName(want)} in the schema`);
  }
  const leaf = reader.leaves.get(name);
  const value = leaf ? valueOf(leaf.kind, type) : undefined;
  return leaf && value ? { how: 'page', leaf, value } : { how: 'slow' };
}

/** `readRow` from cached pages only; undefined when some column's page is not cached. */
function readRowSync(view: TableView, file: OpenedFile, at: number, out: readonly string[]): Row | undefined {
  const reader = file.reader;
  const plans = columnPlans(view, file, out);
  const starts = reader.groupStarts;
  let g = 0;
  while ((starts[g + 1] as number) <= at) g++;
  const inGroup = at - (starts[g] as number);
  const row: Row = {};
  for (let c = 0; c < out.length; c++) {
    const name = out[c]!;
    const plan = plans[c]!;
    if (plan.how === 'default') {
      row[name] = defaultValue(plan.spec);
      continue;
    }
    if (plan.how === 'slow') return undefined;
    const bounds = reader.knownPageBounds(g, plan.leaf);
    if (!bounds) return undefined;
    const p = pageAt(bounds.firstRows, inGroup);
    const d = view.files.peek<Decoded>(file, slotOf(g, plan.leaf.chunk, p));
    if (!d) return undefined;
    const i = inGroup - (bounds.firstRows[p] as number);
    if (d.validity !== null && ((d.validity[i >> 3]! >> (i & 7)) & 1) === 0) row[name] = null;
    else if (d.indices !== null) row[name] = plan.value(d.dictionary!, d.indices[i]!);
    else row[name] = plan.value(d, i);
  }
  return row;
}

/**
 * The row at file row `at`, columns `out`, from cached/decoded pages. Cached
 * pages are read synchronously; the pages missing are fetched in parallel.
 */
async function readRow(view: TableView, f: DataFileEntry, file: OpenedFile, at: number, out: readonly string[]): Promise<Row> {
  const reader = file.reader;
  const plans = columnPlans(view, file, out);
  const row: Row = {};
  let g = 0;
  const starts = reader.groupStarts;
  while ((starts[g + 1] as number) <= at) g++;
  const inGroup = at - (starts[g] as number);
  let pending: Array<Promise<void>> | null = null;
  const slow = async (name: string): Promise<void> => {
    const pf = await view.files.file(f);
    const batch = await pf.readRows(at, at + 1, [name]);
    row[name] = recordBatchToRows(batch, [name])[0]![name];
  };
  const set = (name: string, plan: Extract<ColumnPlan, { how: 'page' }>, d: Decoded, i: number): void => {
    if (d.validity !== null && ((d.validity[i >> 3]! >> (i & 7)) & 1) === 0) row[name] = null;
    else if (d.indices !== null) row[name] = plan.value(d.dictionary!, d.indices[i]!);
    else row[name] = plan.value(d, i);
  };
  for (let c = 0; c < out.length; c++) {
    const name = out[c]!;
    const plan = plans[c]!;
    if (plan.how === 'default') {
      row[name] = defaultValue(plan.spec);
      continue;
    }
    if (plan.how === 'slow') {
      (pending ??= []).push(slow(name));
      continue;
    }
    const bounds = reader.knownPageBounds(g, plan.leaf);
    if (bounds) {
      const p = pageAt(bounds.firstRows, inGroup);
      const hit = view.files.peek<Decoded>(file, slotOf(g, plan.leaf.chunk, p));
      if (hit) {
        set(name, plan, hit, inGroup - (bounds.firstRows[p] as number));
        continue;
      }
    }
    (pending ??= []).push(
      (async () => {
        try {
          const b = bounds ?? (await reader.pageBounds(g, plan.leaf));
          if (b) {
            const p = pageAt(b.firstRows, inGroup);
            set(name, plan, await pageOf(view.files, file, g, plan.leaf, b, p), inGroup - (b.firstRows[p] as number));
          } else {
            set(name, plan, await chunkOf(view.files, file, g, plan.leaf), inGroup);
          }
        } catch (err) {
          if (!(err instanceof Unsupported)) throw err;
          await slow(name);
        }
      })(),
    );
  }
  if (pending) await Promise.all(pending);
  // Same key order as `out` whatever order the values arrived in.
  if (pending) {
    const ordered: Row = {};
    for (const name of out) ordered[name] = row[name];
    return ordered;
  }
  return row;
}

/** Index of the page holding row `r` (firstRows ends with the group's row count). */
function pageAt(firstRows: Int32Array, r: number): number {
  let lo = 0;
  let hi = firstRows.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((firstRows[mid] as number) <= r) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

type ValueAt = (d: Decoded, i: number) => unknown;

const MS_PER_DAY = 86_400_000;

/** Row value of slot i, as `recordBatchToRows` would give it, or undefined when the type is not handled here. */
function valueOf(kind: LeafKind, type: arrow.DataType): ValueAt | undefined {
  switch (type.typeId) {
    case arrow.Type.Utf8:
      if (kind !== 'bytes') return undefined;
      return (d, i) => utf8Decoder.decode((d.values as Uint8Array).subarray(d.offsets![i], d.offsets![i + 1]));
    case arrow.Type.Binary:
      if (kind !== 'bytes') return undefined;
      return (d, i) => (d.values as Uint8Array).slice(d.offsets![i], d.offsets![i + 1]);
    case arrow.Type.Int: {
      const bits = (type as arrow.Int).bitWidth;
      if ((kind === 'int32' && bits === 32) || (kind === 'int64' && bits === 64)) return (d, i) => (d.values as Int32Array | BigInt64Array)[i];
      return undefined;
    }
    case arrow.Type.Float: {
      const prec = (type as arrow.Float).precision;
      if ((kind === 'float' && prec === arrow.Precision.SINGLE) || (kind === 'double' && prec === arrow.Precision.DOUBLE)) {
        return (d, i) => (d.values as Float32Array | Float64Array)[i];
      }
      return undefined;
    }
    case arrow.Type.Bool:
      if (kind !== 'bool') return undefined;
      return (d, i) => (((d.values as Uint8Array)[i >> 3]! >> (i & 7)) & 1) === 1;
    case arrow.Type.Timestamp:
      if (kind !== 'int64' || (type as arrow.Timestamp).unit !== arrow.TimeUnit.MICROSECOND) return undefined;
      return (d, i) => microsToDate((d.values as BigInt64Array)[i]!);
    case arrow.Type.Date:
      if (kind !== 'int32' || (type as arrow.DateDay).unit !== arrow.DateUnit.DAY) return undefined;
      return (d, i) => new Date((d.values as Int32Array)[i]! * MS_PER_DAY);
    default:
      return undefined;
  }
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
