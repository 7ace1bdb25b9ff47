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
 */
import * as arrow from 'apache-arrow';
import { encodeBitmap, unionRows } from '../format/bitmap.js';
import { blake3Hex } from '../format/checksum.js';
import type { Row } from '../format/logrecord.js';
import { encodeParquet } from '../format/parquet.js';
import type { TableSchema } from '../format/schema.js';
import { keyOf, recordBatchToRows, rowsToRecordBatch } from '../format/schema.js';
import type { EncodedValue } from '../format/values.js';
import { decodeValue, encodeValue } from '../format/values.js';
import type { FailpointHook } from '../store/failpoints.js';
import type { ObjectStore } from '../store/types.js';
import type { FileCache } from './files.js';
import type { ColumnStats, DataFileEntry, DeletionRef, Manifest } from './manifest.js';
import { bitmapKey, dataFileKey } from './manifest.js';
import { cmp } from './read.js';

export interface WriteContext {
  readonly store: ObjectStore;
  readonly files: FileCache;
  readonly failpoints: FailpointHook;
  readonly newId: () => string;
  readonly rowGroupRows: number;
}

const STAT_TYPES = new Set(['int32', 'int64', 'float32', 'float64', 'bool', 'utf8', 'timestamp', 'date']);

/** Min/max/null count of each scalar column, computed from rows. Pure. */
export function columnStats(schema: TableSchema, rows: readonly Row[]): Record<string, ColumnStats> {
  const out: Record<string, ColumnStats> = {};
  for (const c of schema.columns) {
    if (typeof c.type !== 'string' || !STAT_TYPES.has(c.type)) continue;
    let min: unknown;
    let max: unknown;
    let nulls = 0;
    for (const r of rows) {
      const v = r[c.name];
      if (v === null || v === undefined) {
        nulls++;
        continue;
      }
      if (typeof v === 'number' && Number.isNaN(v)) continue;
      if (min === undefined || cmp(v, min) < 0) min = v;
      if (max === undefined || cmp(v, max) > 0) max = v;
    }
    out[c.name] = {
      ...(min === undefined ? {} : { min: encodeValue(min) }),
      ...(max === undefined ? {} : { max: encodeValue(max) }),
      nullCount: nulls,
    };
  }
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
  const fileId = ctx.newId();
  const batch = rowsToRecordBatch(schema, rows, { _id: ids, _seq: seqs });
  const bytes = encodeParquet(new arrow.Table(batch), {
    rowGroupRows: ctx.rowGroupRows,
    keyValueMetadata: { 'floe.table': tableId, 'floe.schemaVersion': String(schemaVersion) },
  });
  const key = dataFileKey(tableId, fileId);
  const contentHash = await blake3Hex(bytes);
  await ctx.failpoints.hit(`${failpointPrefix}.data.put.before`, { key });
  await ctx.store.put(key, bytes);
  await ctx.failpoints.hit(`${failpointPrefix}.data.put.after`, { key });
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
  const keyVals = (r: Row): EncodedValue[] => (primaryKey ?? []).map((k) => encodeValue(r[k]));
  return {
    id: fileId,
    key,
    size: bytes.length,
    rows: rows.length,
    contentHash,
    minId: String(minId),
    maxId: String(maxId),
    minSeq: Number(minSeq),
    maxSeq: Number(maxSeq),
    keyMin: primaryKey ? keyVals(rows[0]!) : null,
    keyMax: primaryKey ? keyVals(rows[rows.length - 1]!) : null,
    stats: columnStats(schema, rows),
    deletes: null,
    schemaVersion,
  };
}

/** Sorted probe set of encoded keys with its range. */
export interface KeyProbe {
  readonly keys: ReadonlySet<string>;
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
