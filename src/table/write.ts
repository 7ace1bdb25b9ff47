/**
 * Building what a table commit publishes: immutable data files from rows,
 * and the deletion bitmaps that mask older versions of the keys a commit
 * rewrites or deletes.
 *
 * Every object written here is immutable and uniquely named (ULIDs), so a
 * crash or a lost commit race leaves only unreferenced garbage that GC
 * removes after a grace period; nothing here is visible until the catalog
 * CAS publishes a manifest that names it. Writing the same data file again
 * under a new name is harmless.
 *
 * Masking: for a set of primary keys, find every live row of those keys in
 * the table's existing files — pruning by the manifest's key ranges and the
 * row groups' min/max, then reading only the key columns — and produce a new
 * bitmap per touched file (old bitmap ∪ new positions).
 *
 * Bulk staging (`stageFiles`, behind append and load) is a two-stage
 * pipeline: this thread validates, sorts and serializes a chunk while an
 * encoder thread turns the previous one into Parquet; a chunk's file is put
 * as soon as it is encoded. When the call returns or throws, no write of it
 * is still running; memory holds the chunk being filled plus at most two
 * serialized ones (and, for keyed tables, every key written so far).
 */
import * as arrow from 'apache-arrow';
import { encodeBitmap, unionRows } from '../format/bitmap.js';
import type { Row } from '../format/logrecord.js';
import type { PreparedParquet } from '../format/parquet.js';
import { encodePrepared, mostlyDistinct, prepareParquet } from '../format/parquet.js';
import type { ColumnType, TableSchema } from '../format/schema.js';
import { columnsToRecordBatch, compareStrings, encodeKeyPart, keyOf, recordBatchToRows, RowValidator, rowsToRecordBatch } from '../format/schema.js';
import type { EncodedValue } from '../format/values.js';
import { decodeValue, encodeValue } from '../format/values.js';
import type { FailpointHook } from '../store/failpoints.js';
import type { ObjectStore } from '../store/types.js';
import type { FileCache } from './files.js';
import type { ColumnStats, DataFileEntry, DeletionRef, Manifest } from './manifest.js';
import { bitmapKey, dataFileKey } from './manifest.js';

export interface WriteContext {
  readonly store: ObjectStore;
  readonly files: FileCache;
  readonly failpoints: FailpointHook;
  readonly newId: () => string;
  readonly rowGroupRows: number;
}

const STAT_TYPES = new Set<ColumnType>(['int32', 'int64', 'float32', 'float64', 'bool', 'utf8', 'timestamp', 'date']);

/** Min/max/null count of each scalar column, computed from rows. Pure. */
export function columnStats(schema: TableSchema, rows: readonly Row[]): Record<string, ColumnStats> {
  return columnStatsOf(
    schema,
    schema.columns.map((c) => rows.map((r) => r[c.name])),
  );
}

/**
 * Min/max/null count of each scalar column from its values (one array per
 * schema column, in schema order; null or undefined is null). NaN counts as
 * neither null nor a bound. Strings order by code point, numbers, bigints,
 * booleans and Dates by value, as `cmp` in read.ts does. Pure.
 */
export function columnStatsOf(
  schema: TableSchema,
  columns: readonly (readonly unknown[])[],
  /** Per column: its strings may be compared with `<` (none holds a surrogate; see RowValidator.codeUnitOrder). */
  codeUnitOrder: readonly boolean[] = [],
): Record<string, ColumnStats> {
  const out: Record<string, ColumnStats> = {};
  schema.columns.forEach((c, j) => {
    if (!STAT_TYPES.has(c.type)) return;
    const values = columns[j] ?? [];
    let nulls = 0;
    let min: unknown;
    let max: unknown;
    if (c.type === 'utf8' && codeUnitOrder[j] === true) {
      let lo: string | undefined;
      let hi: string | undefined;
      for (let i = 0; i < values.length; i++) {
        const v = values[i] as string | null | undefined;
        if (v === null || v === undefined) {
          nulls++;
          continue;
        }
        if (lo === undefined || v < lo) lo = v;
        if (hi === undefined || v > hi) hi = v;
      }
      min = lo;
      max = hi;
    } else if (c.type === 'utf8') {
      let lo: string | undefined;
      let hi: string | undefined;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          nulls++;
          continue;
        }
        const sv = v as string;
        if (lo === undefined || hi === undefined) {
          lo = hi = sv;
          continue;
        }
        if (sv !== lo && compareStrings(sv, lo) < 0) lo = sv;
        else if (sv !== hi && compareStrings(sv, hi) > 0) hi = sv;
      }
      min = lo;
      max = hi;
    } else if (c.type === 'timestamp' || c.type === 'date') {
      let lo: Date | undefined;
      let hi: Date | undefined;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          nulls++;
          continue;
        }
        const d = v as Date;
        if (lo === undefined || d.getTime() < lo.getTime()) lo = d;
        if (hi === undefined || d.getTime() > hi.getTime()) hi = d;
      }
      min = lo;
      max = hi;
    } else {
      // numbers, bigints and booleans all order correctly under < and >.
      let lo: number | bigint | boolean | undefined;
      let hi: number | bigint | boolean | undefined;
      for (let i = 0; i < values.length; i++) {
        const v = values[i] as number | bigint | boolean | null | undefined;
        if (v === null || v === undefined) {
          nulls++;
          continue;
        }
        if (typeof v === 'number' && Number.isNaN(v)) continue;
        if (lo === undefined || v < lo) lo = v;
        if (hi === undefined || v > hi) hi = v;
      }
      min = lo;
      max = hi;
    }
    out[c.name] = {
      ...(min === undefined ? {} : { min: encodeValue(min) }),
      ...(max === undefined ? {} : { max: encodeValue(max) }),
      nullCount: nulls,
    };
  });
  return out;
}

/**
 * Write one data file holding `rows` (already validated and, for keyed
 * tables, sorted by key) with their `_id`s and `_seq`s.
 */
export async function writeDataFile(
  ctx: WriteContext,
  tableId: string,
  schema: TableSchema,
  schemaVersion: number,
  primaryKey: readonly string[] | null,
  rows: readonly Row[],
  ids: BigInt64Array,
  seqs: BigInt64Array,
  failpointPrefix: string,
): Promise<DataFileEntry> {
  const batch = rowsToRecordBatch(schema, rows, { _id: ids, _seq: seqs });
  const keyVals = (r: Row): EncodedValue[] => (primaryKey ?? []).map((k) => encodeValue(r[k]));
  return putDataFile(ctx, tableId, schemaVersion, prepareDataFile(ctx, tableId, schemaVersion, batch, undefined), {
    ids,
    seqs,
    keyMin: primaryKey ? keyVals(rows[0]!) : null,
    keyMax: primaryKey ? keyVals(rows[rows.length - 1]!) : null,
    stats: columnStats(schema, rows),
    failpointPrefix,
  });
}

interface FileFacts {
  readonly ids: BigInt64Array;
  readonly seqs: BigInt64Array;
  readonly keyMin: EncodedValue[] | null;
  readonly keyMax: EncodedValue[] | null;
  readonly stats: Record<string, ColumnStats>;
  readonly failpointPrefix: string;
}

/** Serialize `batch` for the encoder (synchronous: the batch can be dropped right after). */
function prepareDataFile(ctx: WriteContext, tableId: string, schemaVersion: number, batch: arrow.RecordBatch, noDictionary: readonly string[] | undefined): PreparedParquet {
  return prepareParquet(new arrow.Table(batch), {
    rowGroupRows: ctx.rowGroupRows,
    keyValueMetadata: { 'floe.table': tableId, 'floe.schemaVersion': String(schemaVersion) },
    ...(noDictionary ? { noDictionary } : {}),
  });
}

/** Encode a prepared file (off the calling thread when large), put it under a fresh key, and describe it. */
async function putDataFile(ctx: WriteContext, tableId: string, schemaVersion: number, prepared: PreparedParquet, f: FileFacts): Promise<DataFileEntry> {
  const fileId = ctx.newId();
  const { bytes, contentHash } = await encodePrepared(prepared);
  const key = dataFileKey(tableId, fileId);
  await ctx.failpoints.hit(`${f.failpointPrefix}.data.put.before`, { key });
  await ctx.store.put(key, bytes);
  await ctx.failpoints.hit(`${f.failpointPrefix}.data.put.after`, { key });
  const { ids, seqs } = f;
  let minId = ids[0]!;
  let maxId = ids[0]!;
  let minSeq = seqs[0]!;
  let maxSeq = seqs[0]!;
  for (let i = 1; i < ids.length; i++) {
    if (ids[i]! < minId) minId = ids[i]!;
    if (ids[i]! > maxId) maxId = ids[i]!;
    if (seqs[i]! < minSeq) minSeq = seqs[i]!;
    if (seqs[i]! > maxSeq) maxSeq = seqs[i]!;
  }
  return {
    id: fileId,
    key,
    size: bytes.length,
    rows: ids.length,
    contentHash,
    minId: String(minId),
    maxId: String(maxId),
    minSeq: Number(minSeq),
    maxSeq: Number(maxSeq),
    keyMin: f.keyMin,
    keyMax: f.keyMax,
    stats: f.stats,
    deletes: null,
    schemaVersion,
  };
}

/** A set of encoded keys (`keyOf`) with its range. */
export interface KeyProbe {
  readonly keys: { has(key: string): boolean; readonly size: number };
  readonly min: string;
  readonly max: string;
}

export function makeProbe(keys: Iterable<string>): KeyProbe | null {
  const set = new Set(keys);
  if (set.size === 0) return null;
  let min: string | undefined;
  let max: string | undefined;
  for (const k of set) {
    if (min === undefined || k < min) min = k;
    if (max === undefined || k > max) max = k;
  }
  return { keys: set, min: min!, max: max! };
}

/** Positions (row indexes) of live rows of `file` whose key is in the probe. */
export async function findKeyRows(
  files: FileCache,
  file: DataFileEntry,
  primaryKey: readonly string[],
  probe: KeyProbe,
): Promise<number[]> {
  const pk = primaryKey as string[];
  if (file.keyMin && file.keyMax) {
    const lo = keyOf(Object.fromEntries(pk.map((c, i) => [c, decodeKeyValue(file.keyMin![i])])), pk);
    const hi = keyOf(Object.fromEntries(pk.map((c, i) => [c, decodeKeyValue(file.keyMax![i])])), pk);
    if (hi < probe.min || lo > probe.max) return [];
  }
  const pf = await files.file(file);
  const deleted = await files.deleted(file);
  const found: number[] = [];
  for (let g = 0; g < pf.rowGroups.length; g++) {
    const rg = pf.rowGroups[g]!;
    const rows = recordBatchToRows(await pf.readRowGroup(g, pk), pk);
    for (let i = 0; i < rows.length; i++) {
      const pos = rg.firstRow + i;
      if (deleted?.has(pos)) continue;
      if (probe.keys.has(keyOf(rows[i]!, pk))) found.push(pos);
    }
  }
  return found;
}

function decodeKeyValue(v: EncodedValue | undefined): unknown {
  return decodeValue(v ?? null);
}

/**
 * Write a new bitmap for `file`: its current masked rows plus `positions`.
 * Returns the reference the manifest will carry.
 */
export async function writeBitmap(
  ctx: WriteContext,
  tableId: string,
  file: DataFileEntry,
  positions: readonly number[],
  failpointPrefix: string,
): Promise<DeletionRef> {
  const prev = await ctx.files.deleted(file);
  const rows = unionRows(prev ?? [], positions);
  const key = bitmapKey(tableId, file.id, ctx.newId());
  const version = Date.now();
  await ctx.failpoints.hit(`${failpointPrefix}.bitmap.put.before`, { key });
  await ctx.store.put(key, encodeBitmap({ fileId: file.id, version, sealed: false, rows }));
  await ctx.failpoints.hit(`${failpointPrefix}.bitmap.put.after`, { key });
  return { key, count: rows.size };
}

/**
 * Masks for a commit that supersedes `probe`'s keys: for every file of
 * `manifest` (except `exclude`), the positions to add. `memo` caches per-file
 * results across commit retries (files are immutable).
 */
export async function planMasks(
  files: FileCache,
  manifest: Manifest,
  primaryKey: readonly string[],
  probe: KeyProbe,
  exclude: ReadonlySet<string>,
  memo: Map<string, number[]>,
): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const f of manifest.files) {
    if (exclude.has(f.id)) continue;
    const memoKey = `${f.id}|${f.deletes?.key ?? ''}`;
    let pos = memo.get(memoKey);
    if (!pos) {
      pos = await findKeyRows(files, f, primaryKey, probe);
      memo.set(memoKey, pos);
    }
    if (pos.length > 0) out.set(f.id, pos);
  }
  return out;
}

/**
 * Bitmaps masking the rows of `manifest` superseded by `probe`'s keys: plan
 * the positions (memoized per file across commit retries), write one new
 * bitmap per touched file (memoized per base bitmap, so a retry against an
 * unchanged file reuses its object). Returns fileId -> new bitmap ref.
 */
export async function supersede(
  ctx: WriteContext,
  tableId: string,
  manifest: Manifest,
  primaryKey: readonly string[],
  probe: KeyProbe,
  exclude: ReadonlySet<string>,
  memo: { readonly positions: Map<string, number[]>; readonly bitmaps: Map<string, DeletionRef> },
  failpointPrefix: string,
): Promise<Map<string, DeletionRef>> {
  const deletes = new Map<string, DeletionRef>();
  const masks = await planMasks(ctx.files, manifest, primaryKey, probe, exclude, memo.positions);
  for (const [fileId, pos] of masks) {
    const f = manifest.files.find((x) => x.id === fileId)!;
    const key = `${fileId}|${f.deletes?.key ?? ''}`;
    let ref = memo.bitmaps.get(key);
    if (!ref) {
      ref = await writeBitmap(ctx, tableId, f, pos, failpointPrefix);
      memo.bitmaps.set(key, ref);
    }
    deletes.set(fileId, ref);
  }
  return deletes;
}

export interface StageTarget {
  readonly tableId: string;
  readonly schema: TableSchema;
  readonly schemaVersion: number;
  readonly primaryKey: readonly string[] | null;
}

export interface StageLimits {
  /** At most this many rows per data file. */
  readonly rowsPerFile: number;
  /** At most about this many bytes of row data per data file. */
  readonly bytesPerFile: number;
}

export interface StagedFiles {
  /** New data files, with bitmaps for rows superseded later in the same input. */
  readonly files: DataFileEntry[];
  /** Every key written (keyed tables), for masking older versions at commit. */
  readonly probe: KeyProbe | null;
  readonly rows: number;
}

/**
 * Stream rows into immutable data files of one table, chunk by chunk, in
 * bounded memory: each chunk (≤ `rowsPerFile` rows and ≈`bytesPerFile`
 * bytes) is validated row by row as it arrives (kept by column, not as row
 * objects), deduplicated by key (last wins), sorted by key, given `_id`s
 * from `reserveIds` and `seq` as `_seq`, and written. Rows of earlier chunks
 * superseded by later ones are masked (found in memory: every key written so
 * far is remembered with its file and position, which the returned probe
 * needs anyway). Nothing is published: a failure leaves only unreferenced
 * files. `rowError` rewrites a validation error of the chunk starting at
 * input row `base`.
 *
 * Pipelining: while a chunk is encoded (on an encoder thread) and put, the
 * next one is read and validated; at most `MAX_FILES_IN_FLIGHT` chunks are
 * between "cut" and "durable" at once, which with the chunk being filled
 * bounds memory to a few chunks.
 */
export async function stageFiles(
  ctx: WriteContext,
  target: StageTarget,
  rows: Iterable<Row> | AsyncIterable<Row>,
  seq: bigint,
  reserveIds: (n: number) => Promise<bigint>,
  limits: StageLimits,
  failpointPrefix: string,
  rowError: (err: unknown, base: number) => unknown,
): Promise<StagedFiles> {
  const { schema } = target;
  const pk = target.primaryKey;
  let validator: RowValidator;
  try {
    validator = new RowValidator(schema, { primaryKey: pk ?? undefined });
  } catch (err) {
    throw rowError(err, 0);
  }
  const width = schema.columns.length;
  const keyColumns = pk ? pk.map((k) => schema.columns.findIndex((c) => c.name === k)) : null;
  const fresh = (): unknown[][] => Array.from({ length: width }, () => []);

  // The chunk being filled, by column.
  let columns = fresh();
  let filled = 0;
  let filledBytes = 0;
  let rowBase = 0;
  const scratch = new Array<unknown>(width);

  // Keyed tables: every key written so far -> its ordinal in this append's
  // output (file f's rows are ordinals fileStarts[f] ..).
  const written = new Map<string, number>();
  const fileStarts: number[] = [];
  let ordinals = 0;
  const selfMasks = new Map<number, number[]>();
  let minKey: string | undefined;
  let maxKey: string | undefined;

  const entries: DataFileEntry[] = [];
  const inFlight: Promise<void>[] = [];
  // Failures of in-flight writes, kept (not dropped) until the next step rethrows the first.
  const failures: unknown[] = [];
  let total = 0;

  /** Record a file's outcome; its own function, so the pending job references nothing else. */
  const track = (job: Promise<DataFileEntry>, fileIndex: number): Promise<void> =>
    job.then(
      (entry) => {
        entries[fileIndex] = entry;
      },
      (err: unknown) => {
        failures.push(err);
      },
    );

  /**
   * Turn the filled chunk into a data file being written. Only the
   * serialized form (and a few small arrays) outlives this call while the
   * encoder works: the chunk's values and Arrow buffers become garbage.
   */
  const startFile = async (): Promise<{ job: Promise<void> }> => {
    const chunk = columns;
    const count = filled;
    columns = fresh();
    filled = 0;
    filledBytes = 0;
    rowBase += count;

    let values: unknown[][] = chunk;
    let keys: string[] | null = null;
    if (keyColumns) {
      const sorted = sortedSurvivors(chunk, count, keyColumns);
      keys = sorted.keys;
      if (sorted.order) {
        const order = sorted.order;
        values = chunk.map((col) => {
          const out = new Array<unknown>(order.length);
          for (let i = 0; i < order.length; i++) out[i] = col[order[i]!];
          return out;
        });
      }
    }
    const n = keys ? keys.length : count;
    // Ask for the ids now (it may cost a catalog write) and build meanwhile.
    const firstId = reserveIds(n);
    // Deliberately ignored here: `await firstId` below rethrows a failure;
    // this only keeps it from being reported as unhandled when the build
    // throws first (then the build's error is the one the append reports).
    firstId.catch(() => undefined);
    const fileIndex = fileStarts.length;
    fileStarts.push(ordinals);
    if (keys) {
      for (let p = 0; p < n; p++) {
        const k = keys[p]!;
        const prev = written.get(k);
        if (prev !== undefined) addMask(prev);
        written.set(k, ordinals + p);
      }
      if (minKey === undefined || keys[0]! < minKey) minKey = keys[0]!;
      if (maxKey === undefined || keys[n - 1]! > maxKey) maxKey = keys[n - 1]!;
    }
    ordinals += n;
    total += n;

    const ids = new BigInt64Array(n);
    const seqs = new BigInt64Array(n).fill(seq);
    const keyAt = (p: number): EncodedValue[] | null => (keyColumns ? keyColumns.map((j) => encodeValue(values[j]![p])) : null);
    // `_id` is distinct by construction; `_seq` is one value per append.
    const noDictionary = ['_id', ...schema.columns.filter((c, j) => dictionaryUseless(c.type, values[j]!)).map((c) => c.name)];
    const stats = columnStatsOf(schema, values, validator.codeUnitOrder());
    // `ids` backs the batch's _id column; it is filled below, before the
    // batch is serialized, and never touched after.
    const batch = columnsToRecordBatch(schema, values, n, { _id: ids, _seq: seqs });
    const first = await firstId;
    for (let i = 0; i < n; i++) ids[i] = first + BigInt(i);
    const facts: FileFacts = { ids, seqs, keyMin: keyAt(0), keyMax: keyAt(n - 1), stats, failpointPrefix };
    const prepared = prepareDataFile(ctx, target.tableId, target.schemaVersion, batch, noDictionary);
    return { job: track(putDataFile(ctx, target.tableId, target.schemaVersion, prepared, facts), fileIndex) };
  };

  const cut = async (): Promise<void> => {
    if (filled === 0) return;
    const { job } = await startFile();
    inFlight.push(job);
    while (inFlight.length >= MAX_FILES_IN_FLIGHT) await inFlight.shift();
    if (failures.length > 0) throw failures[0];
  };

  const addMask = (ordinal: number): void => {
    let f = fileStarts.length - 1;
    while (fileStarts[f]! > ordinal) f--;
    const list = selfMasks.get(f);
    if (list) list.push(ordinal - fileStarts[f]!);
    else selfMasks.set(f, [ordinal - fileStarts[f]!]);
  };

  /** Take one input row; true when the chunk is full. */
  const take = (r: Row): boolean => {
    try {
      filledBytes += validator.check(r, filled, scratch);
    } catch (err) {
      throw rowError(err, rowBase);
    }
    for (let j = 0; j < width; j++) columns[j]!.push(scratch[j]);
    filled++;
    return filled >= limits.rowsPerFile || filledBytes >= limits.bytesPerFile;
  };
  try {
    // Every YIELD_ROWS rows, let the event loop run (finished encodings
    // start their puts; other work of the process gets a turn).
    let sinceYield = 0;
    if (Symbol.asyncIterator in rows) {
      for await (const r of rows) {
        if (take(r)) await cut();
        else if (++sinceYield === YIELD_ROWS) {
          sinceYield = 0;
          await yieldToEventLoop();
        }
      }
    } else {
      for (const r of rows) {
        if (take(r)) await cut();
        else if (++sinceYield === YIELD_ROWS) {
          sinceYield = 0;
          await yieldToEventLoop();
        }
      }
    }
    await cut();
  } finally {
    // Whatever happens, no write of this call is still running when it
    // returns. (Jobs never reject: `track` records failures. If the input
    // already failed, that error wins; a file write failing meanwhile only
    // leaves garbage, as the failed append itself does.)
    await Promise.all(inFlight);
  }
  if (failures.length > 0) throw failures[0];

  const files: DataFileEntry[] = [];
  for (let f = 0; f < entries.length; f++) {
    const entry = entries[f]!;
    const pos = selfMasks.get(f);
    files.push(pos ? { ...entry, deletes: await writeBitmap(ctx, target.tableId, entry, pos, failpointPrefix) } : entry);
  }
  const probe: KeyProbe | null = written.size > 0 ? { keys: written, min: minKey!, max: maxKey! } : null;
  return { files, probe, rows: total };
}

const YIELD_ROWS = 8192;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Chunks cut but not yet durable, per append (encoding on a thread, or being put). */
const MAX_FILES_IN_FLIGHT = 2;

/**
 * The rows of a chunk that survive "last wins" by key, in key order:
 * `keys[p]` is the encoded key of output row p and `order[p]` its index in
 * the chunk (null when that is p itself: keys unique and already sorted).
 */
function sortedSurvivors(columns: readonly (readonly unknown[])[], count: number, keyColumns: readonly number[]): { keys: string[]; order: Int32Array | null } {
  const all = new Array<string>(count);
  const single = keyColumns.length === 1 ? columns[keyColumns[0]!]! : null;
  for (let i = 0; i < count; i++) {
    if (single) all[i] = encodeKeyPart(single[i]);
    else {
      let k = '';
      for (const j of keyColumns) k += encodeKeyPart(columns[j]![i]);
      all[i] = k;
    }
  }
  const last = new Map<string, number>();
  for (let i = 0; i < count; i++) last.set(all[i]!, i);
  let idx: number[];
  if (last.size === count) {
    let ascending = true;
    for (let i = 1; i < count && ascending; i++) ascending = all[i - 1]! < all[i]!;
    if (ascending) return { keys: all, order: null };
    idx = Array.from({ length: count }, (_, i) => i);
  } else {
    idx = [...last.values()];
  }
  idx.sort((a, b) => {
    const x = all[a]!;
    const y = all[b]!;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const order = Int32Array.from(idx);
  const keys = new Array<string>(order.length);
  for (let p = 0; p < order.length; p++) keys[p] = all[order[p]!]!;
  return { keys, order };
}

const DICTIONARY_TYPES = new Set<ColumnType>(['int32', 'int64', 'float32', 'float64', 'utf8', 'binary', 'timestamp', 'date']);

/** True when a flat column's values are mostly distinct, so a dictionary would not pay (see encodeParquet). */
function dictionaryUseless(type: ColumnType, values: readonly unknown[]): boolean {
  if (!DICTIONARY_TYPES.has(type)) return false;
  return mostlyDistinct({ length: values.length, at: (i) => values[i] });
}

/** Keep the last row of each primary key, in first-appearance order of the survivors. */
export function lastWinsByKey(rows: readonly Row[], pk: readonly string[]): Row[] {
  const byKey = new Map<string, Row>();
  for (const r of rows) {
    const k = keyOf(r, pk);
    byKey.delete(k);
    byKey.set(k, r);
  }
  return byKey.size === rows.length ? (rows as Row[]) : [...byKey.values()];
}
