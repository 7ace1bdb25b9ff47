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
import { keyOf, recordBatchToRows, rowsToRecordBatch, validateRows } from '../format/schema.js';
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

/** Rough in-memory size of a row's values (strings and bytes dominate). */
export function approxRowBytes(row: Row): number {
  let n = 16;
  for (const v of Object.values(row)) {
    if (typeof v === 'string') n += v.length + 8;
    else if (v instanceof Uint8Array || v instanceof Float32Array) n += v.byteLength + 8;
    else if (Array.isArray(v)) n += 16 * v.length + 8;
    else n += 8;
  }
  return n;
}

/**
 * Stream rows into immutable data files of one table, chunk by chunk, in
 * bounded memory: each chunk (≤ `rowsPerFile` rows and ≈`bytesPerFile`
 * bytes) is validated, deduplicated by key (last wins), sorted by key, given
 * `_id`s from `reserveIds` and `seq` as `_seq`, and written. Rows of earlier
 * chunks superseded by later ones are masked. Nothing is published: a
 * failure leaves only unreferenced files. `rowError` rewrites a validation
 * error of the chunk starting at input row `base`.
 */
export async function stageFiles(
  ctx: WriteContext,
  target: StageTarget,
  rows: AsyncIterable<Row>,
  seq: bigint,
  reserveIds: (n: number) => Promise<bigint>,
  limits: StageLimits,
  failpointPrefix: string,
  rowError: (err: unknown, base: number) => unknown,
): Promise<StagedFiles> {
  const pk = target.primaryKey;
  const added: DataFileEntry[] = [];
  const selfMasks = new Map<string, number[]>();
  const allKeys = new Set<string>();
  let total = 0;
  let buf: Row[] = [];
  let bufBytes = 0;
  let rowBase = 0;
  const writeChunk = async (): Promise<void> => {
    if (buf.length === 0) return;
    let valid: Row[];
    try {
      valid = validateRows(target.schema, buf, { primaryKey: pk ?? undefined });
    } catch (err) {
      throw rowError(err, rowBase);
    }
    rowBase += buf.length;
    buf = [];
    bufBytes = 0;
    if (pk) {
      valid = lastWinsByKey(valid, pk);
      const keyed = valid.map((r) => ({ k: keyOf(r, pk), r }));
      keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
      valid = keyed.map((x) => x.r);
      const probe = makeProbe(keyed.map((x) => x.k))!;
      for (const f of added) {
        const pos = await findKeyRows(ctx.files, f, pk, probe);
        if (pos.length) selfMasks.set(f.id, [...(selfMasks.get(f.id) ?? []), ...pos]);
      }
      for (const x of keyed) allKeys.add(x.k);
    }
    const first = await reserveIds(valid.length);
    const ids = BigInt64Array.from(valid, (_, i) => first + BigInt(i));
    const seqs = new BigInt64Array(valid.length).fill(seq);
    added.push(await writeDataFile(ctx, target.tableId, target.schema, target.schemaVersion, pk, valid, ids, seqs, failpointPrefix));
    total += valid.length;
  };
  for await (const r of rows) {
    buf.push(r);
    bufBytes += typeof r === 'object' && r !== null ? approxRowBytes(r) : 16;
    if (buf.length >= limits.rowsPerFile || bufBytes >= limits.bytesPerFile) await writeChunk();
  }
  await writeChunk();
  const files: DataFileEntry[] = [];
  for (const f of added) {
    const pos = selfMasks.get(f.id);
    files.push(pos ? { ...f, deletes: await writeBitmap(ctx, target.tableId, f, pos, failpointPrefix) } : f);
  }
  return { files, probe: pk ? makeProbe(allKeys) : null, rows: total };
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
