/**
 * Compaction of one table: merge small files and drop masked rows.
 *
 * Contract: the selected files' live rows (their deletion bitmaps applied)
 * are rewritten into new data files — sorted by primary key (keyed tables)
 * or by `_id` — keeping every row's `_id` and `_seq`, and ONE manifest
 * version published by the catalog CAS removes the old files and adds the
 * new ones. Nothing is visible before that CAS; a crash leaves unpublished
 * files that GC collects after its grace period.
 *
 * Concurrent tombstone writers: a mutation that lands a bitmap on a selected
 * file after we read it is carried over — in the commit attempt, the rows
 * newly masked in the current manifest are mapped by `_id` to their
 * positions in the new files and masked there, so no delete is lost. A
 * mutation that publishes after us finds its targets by `_id` in the new
 * files (see mutate.ts). If another compaction removed a selected file
 * first, this one gives up (CAS_CONFLICT): never two copies of a row.
 *
 * The replaced files stay on the store: readers of older snapshots keep
 * working until GC, with a version-retention window, collects files only
 * expired versions reference (src/db/gc.ts).
 */
import { FloeError } from '../errors.js';
import type { Row } from '../format/logrecord.js';
import { keyOf, recordBatchToRows } from '../format/schema.js';
import type { DataFileEntry, DeletionRef, Manifest } from './manifest.js';
import type { ManifestEdit, TableHost } from './table.js';
import type { TableView } from './view.js';
import type { WriteContext } from './write.js';
import { scanView } from './read.js';
import type { FileCache } from './files.js';
import { writeBitmap, writeDataFile } from './write.js';

/**
 * When a table is compacted in the background (`open(..., { autoCompact })`):
 * after a commit leaves it with at least `minSmallFiles` files under
 * `smallFileRows` rows, or a file with at least `deletedFraction` of its rows
 * masked. Each background run rewrites at most `maxRows` rows (the smallest
 * files first), so memory stays bounded; the next commit triggers the rest.
 */
export interface AutoCompactPolicy {
  readonly minSmallFiles: number;
  readonly smallFileRows: number;
  readonly deletedFraction: number;
  readonly maxRows: number;
}

export const DEFAULT_AUTO_COMPACT: AutoCompactPolicy = { minSmallFiles: 8, smallFileRows: 32 * 1024, deletedFraction: 0.3, maxRows: 1_000_000 };

/** Is a background compaction of `m` due under `p`? Pure. */
export function compactionDue(m: Manifest, p: AutoCompactPolicy): boolean {
  let small = 0;
  for (const f of m.files) {
    if (f.rows < p.smallFileRows) small++;
    if (f.rows > 0 && (f.deletes?.count ?? 0) / f.rows >= p.deletedFraction) return true;
  }
  return small >= p.minSmallFiles;
}

/** The options a background run of `p` compacts with. Pure. */
export function autoCompactOptions(p: AutoCompactPolicy): CompactOptions {
  return { smallFileRows: p.smallFileRows, deletedFraction: p.deletedFraction, maxRows: p.maxRows };
}

export interface CompactOptions {
  /** Files with fewer rows than this are merged (default 256k). */
  readonly smallFileRows?: number;
  /** Files with at least this fraction of rows masked are rewritten (default 0.1). */
  readonly deletedFraction?: number;
  /** Rows per output file (default 1,000,000). */
  readonly rowsPerFile?: number;
  /** At most this many rows are rewritten per call, smallest files first (default: no limit). */
  readonly maxRows?: number;
}

export interface CompactResult {
  readonly filesRemoved: number;
  readonly filesAdded: number;
  readonly rowsWritten: number;
  readonly rowsDropped: number;
  readonly version: number;
}

/**
 * Which files to rewrite: files with at least `deletedFraction` masked, and
 * the small files when there are two or more; at most `maxRows` rows in
 * all, the smallest files first (a single file over the cap is never
 * picked by size alone). Pure.
 */
export function pickFiles(m: Manifest, o: Required<CompactOptions>): DataFileEntry[] {
  const small = m.files.filter((f) => f.rows < o.smallFileRows);
  const dirty = m.files.filter((f) => f.rows > 0 && (f.deletes?.count ?? 0) / f.rows >= o.deletedFraction);
  const cands = [...new Set<DataFileEntry>([...dirty, ...(small.length >= 2 ? small : [])])].sort((a, b) => a.rows - b.rows);
  const pick = new Set<DataFileEntry>();
  let rows = 0;
  for (const f of cands) {
    if (rows + f.rows > o.maxRows) break;
    pick.add(f);
    rows += f.rows;
  }
  // Merging one small file alone gains nothing; a dirty file alone still drops its masked rows.
  if (pick.size === 1 && !dirty.includes([...pick][0]!)) return [];
  return m.files.filter((f) => pick.has(f));
}

async function positionsToIds(files: FileCache, f: DataFileEntry): Promise<BigInt64Array> {
  const pf = await files.file(f);
  const out = new BigInt64Array(f.rows);
  for (let g = 0; g < pf.rowGroups.length; g++) {
    const rg = pf.rowGroups[g]!;
    const arr = (await pf.readRowGroup(g, ['_id'])).getChild('_id')!.toArray() as BigInt64Array;
    out.set(arr, rg.firstRow);
  }
  return out;
}

/** Check and default compaction options. Pure. */
export function compactOptions(name: string, options: CompactOptions): Required<CompactOptions> {
  const o: Required<CompactOptions> = {
    smallFileRows: options.smallFileRows ?? 256 * 1024,
    deletedFraction: options.deletedFraction ?? 0.1,
    rowsPerFile: options.rowsPerFile ?? 1_000_000,
    maxRows: options.maxRows ?? Number.MAX_SAFE_INTEGER,
  };
  if (!(o.rowsPerFile >= 1) || !(o.deletedFraction > 0) || !(o.smallFileRows >= 0) || !(o.maxRows >= 1)) throw new FloeError('INVALID_ARGUMENT', `compact of "${name}": bad options`);
  return o;
}

/**
 * A compaction whose new files are written but not published: `edit(cur)`
 * turns it into the manifest edit against `cur` (the manifest current at
 * commit time), carrying over tombstones that landed since the plan's read.
 */
export interface PreparedCompaction {
  readonly filesRemoved: number;
  readonly filesAdded: number;
  readonly rowsWritten: number;
  readonly rowsDropped: number;
  edit(cur: Manifest): Promise<ManifestEdit>;
}

/** Write the compacted files of `view` (its manifest's files only); null when nothing qualifies. */
export async function prepareCompaction(ctx: WriteContext, name: string, tableId: string, view: TableView, o: Required<CompactOptions>): Promise<PreparedCompaction | null> {
  const picked = pickFiles(view.manifest, o);
  if (picked.length === 0) return null;
  const readDeletes = new Map(picked.map((f) => [f.id, f.deletes?.key ?? null]));
  const sub = { ...view, manifest: { ...view.manifest, files: picked }, mem: [] };
  const userCols = view.schema.columns.map((c) => c.name);
  const rows: Row[] = [];
  for await (const b of scanView(sub, { columns: ['_id', '_seq', ...userCols] })) for (const r of recordBatchToRows(b)) rows.push(r);
  const pk = view.primaryKey;
  if (pk) {
    const keyed = rows.map((r) => ({ k: keyOf(r, pk), r }));
    keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
    for (let i = 0; i < keyed.length; i++) rows[i] = keyed[i]!.r;
  } else {
    rows.sort((a, b) => ((a._id as bigint) < (b._id as bigint) ? -1 : 1));
  }
  const added: DataFileEntry[] = [];
  const where = new Map<bigint, { file: number; pos: number }>();
  for (let start = 0; start < rows.length; start += o.rowsPerFile) {
    const chunk = rows.slice(start, start + o.rowsPerFile);
    const ids = BigInt64Array.from(chunk, (r) => r._id as bigint);
    const seqs = BigInt64Array.from(chunk, (r) => r._seq as bigint);
    const data = chunk.map((r) => Object.fromEntries(userCols.map((c) => [c, r[c]])));
    added.push(await writeDataFile(ctx, tableId, view.schema, view.manifest.schemaVersion, pk, data, ids, seqs, 'compact'));
    for (let i = 0; i < ids.length; i++) where.set(ids[i]!, { file: added.length - 1, pos: i });
  }
  const posIds = new Map<string, BigInt64Array>();
  const edit = async (cur: Manifest): Promise<ManifestEdit> => {
    const extra = new Map<number, number[]>();
    for (const f of picked) {
      const now = cur.files.find((x) => x.id === f.id);
      if (!now) throw new FloeError('CAS_CONFLICT', `compact of "${name}": file ${f.key} was replaced by a concurrent compaction; run compact again`, { key: f.key });
      if ((now.deletes?.key ?? null) === readDeletes.get(f.id)) continue;
      // Tombstones that landed after our read: carry them over by `_id`.
      const before = await ctx.files.deleted(f);
      const after = await ctx.files.deleted(now);
      let ids = posIds.get(f.id);
      if (!ids) posIds.set(f.id, (ids = await positionsToIds(ctx.files, f)));
      for (const pos of after ?? []) {
        if (before?.has(pos)) continue;
        const w = where.get(ids[pos]!);
        if (!w) continue;
        extra.set(w.file, [...(extra.get(w.file) ?? []), w.pos]);
      }
    }
    const addFiles: DataFileEntry[] = [];
    for (let i = 0; i < added.length; i++) {
      const pos = extra.get(i);
      let ref: DeletionRef | null = null;
      if (pos) ref = await writeBitmap(ctx, tableId, added[i]!, pos, 'compact');
      addFiles.push(ref ? { ...added[i]!, deletes: ref } : added[i]!);
    }
    return { removeFiles: new Set(picked.map((f) => f.id)), addFiles };
  };
  const before = picked.reduce((n, f) => n + f.rows, 0);
  return { filesRemoved: picked.length, filesAdded: added.length, rowsWritten: rows.length, rowsDropped: before - rows.length, edit };
}

export async function compactTable(host: TableHost, name: string, tableId: string, options: CompactOptions = {}): Promise<CompactResult> {
  const o = compactOptions(name, options);
  const view = await host.view(name);
  const prep = await prepareCompaction(host.writeCtx, name, tableId, view, o);
  if (!prep) return { filesRemoved: 0, filesAdded: 0, rowsWritten: 0, rowsDropped: 0, version: view.manifest.version };
  const m = await host.publish(name, 'compact', (cur) => prep.edit(cur));
  return { filesRemoved: prep.filesRemoved, filesAdded: prep.filesAdded, rowsWritten: prep.rowsWritten, rowsDropped: prep.rowsDropped, version: m.version };
}
