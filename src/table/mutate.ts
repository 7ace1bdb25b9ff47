/**
 * Running set-oriented DELETE and UPDATE: the I/O around the pure state
 * machine of ./mutation.ts, with every durable step behind a failpoint.
 *
 * deleteWhere / updateWhere:
 * 1. Flush this process's memtable for the table (TableHost.prepareAppend:
 *    rows still in the memtable are in no data file, so they could not be
 *    targeted), then take a snapshot and resolve the predicate to the target
 *    `_id`s — at most `maxTargets` (LIMIT_EXCEEDED above it: rewrite the table
 *    instead). Bad input (unknown columns, values that do not fit `set`, an
 *    update that would give two live rows one primary key) fails here,
 *    before anything is written.
 * 2. Update only: the new row images go to an Arrow IPC payload sidecar whose
 *    BLAKE3 the state document records. The intent also fixes the new data
 *    file's id, its `_id` span and its `_seq`, so rebuilding the file from
 *    the payload after a crash yields byte-identical bytes under the same key.
 * 3. The state document is created (`intent`). Update: the data file is
 *    written and the document moves to `appended`, recording the file entry.
 * 4. Tombstone + publish: ONE manifest version, published by the catalog CAS
 *    (the database's only commit point, retried with bounded jittered
 *    backoff; CAS_CONFLICT after the budget), carries new immutable deletion
 *    bitmaps (old ∪ target rows) for every touched file and, for an update,
 *    the new data file. Targets are located on every attempt in the freshest
 *    manifest: files are pruned by their `_id` range, candidates' `_id`
 *    columns are scanned. Compaction carries `_id` through, so a target whose
 *    file was compacted away ("sealed") is simply found in its new file. A
 *    target already masked or gone (deleted by someone else) is skipped: a
 *    row is never deleted twice, and the update's image of a skipped target
 *    is masked in the same commit, so it is never resurrected.
 * 5. `complete` (with counts), then the document and payload are collected.
 *
 * Idempotency: the published version's operation is `delete:<id>` or
 * `update:<id>`; before publishing, the manifest chain back to the intent's
 * base version is probed for it, so a replay after a crash between the
 * catalog CAS and the `complete` write does nothing twice. Persisted
 * progress = the state document: a replay from `appended` skips the file
 * build. Two processes driving one mutation is safe: each document change
 * is a CAS with a version that grows by one, and the catalog CAS lets
 * exactly one publish through.
 *
 * Crash leftovers: a payload without a document, or a data file/bitmaps
 * that were never published — unreferenced garbage collected by GC after
 * its grace period.
 *
 * Semantics under concurrency (serializable): a mutation's effect is
 * computed on its snapshot, so it may publish only if no other commit
 * changed what it read and writes. At publish, if any target is already
 * masked or gone (deleted, updated, or replaced by an upsert or a keyed
 * append of the same key since the snapshot) — or, for an update that sets
 * primary-key columns, if rows were added since the snapshot at all — the
 * mutation is aborted (state `aborted`, nothing published, its update file
 * left as GC garbage) and deleteWhere / updateWhere start over on a fresh
 * snapshot (bounded, jittered; CAS_CONFLICT after MUTATION_RESTARTS). A
 * mutation that publishes therefore wrote only rows no concurrent commit
 * touched, and the final state equals a serial order of the acknowledged
 * operations (first committer wins; the other re-reads). Compaction does
 * not conflict: it carries `_id`s, and targets are found in its new files.
 *
 * Errors: bad input fails before anything is written. Once the intent is
 * durable, a later failure (CAS_CONFLICT after the publish budget and
 * PUBLISH_ATTEMPTS backoffs, storage errors) leaves the mutation pending:
 * the next `db.recover()` / read-write open finishes it.
 */
import * as arrow from 'apache-arrow';
import { decodeTime, isValid, ulid } from 'ulid';
import { listAll } from '../store/list.js';
import { FloeError, isFloeError } from '../errors.js';
import type { Row } from '../format/logrecord.js';
import { keyOf, recordBatchToRows, rowsToRecordBatch, validateRows, coerceValue, ValueProblem } from '../format/schema.js';
import type { DataFileEntry, DeletionRef, Manifest } from './manifest.js';
import { dataFileKey, decodeManifest } from './manifest.js';
import { blake3Hex } from '../format/checksum.js';
import type { TableSchema } from '../format/schema.js';
import type { ObjectStore } from '../store/types.js';
import { advance } from './mutation.js';
import type { MutationDoc } from './mutation-store.js';
import { MUTATION_DOC_FORMAT, MUTATIONS_PREFIX, MutationStore } from './mutation-store.js';
import type { PredicateInput } from './predicate.js';
import { bindPredicate } from './predicate.js';
import { scanView, SYSTEM_COLUMNS } from './read.js';
import type { TableHost } from './table.js';
import type { FileCache } from './files.js';
import type { TableView } from './view.js';
import { writeBitmap, writeDataFile } from './write.js';

export interface MutateOptions {
  /** Most rows one mutation may target (default 1,000,000). */
  readonly maxTargets?: number;
}

export interface MutationResult {
  readonly id: string;
  /** Rows matched on the snapshot. */
  readonly matched: number;
  /** Rows this mutation masked (deleted, or replaced by their new image). */
  readonly applied: number;
  /**
   * Always 0: a mutation whose targets another commit changed first is
   * aborted and started over instead of skipping them (kept for callers of
   * earlier versions).
   */
  readonly skipped: number;
  readonly version: number;
}

const DEFAULT_MAX_TARGETS = 1_000_000;
/** A payload without a state document is collected after this long (its writer crashed before the intent). */
export const ORPHAN_PAYLOAD_GRACE_MS = 60 * 60 * 1000;

function mutationStore(host: TableHost): MutationStore {
  return new MutationStore(host.writeCtx.store, host.writeCtx.failpoints);
}

async function resolveTargets(
  host: TableHost,
  name: string,
  tableId: string,
  where: PredicateInput,
  columns: readonly string[],
  options: MutateOptions,
  validate: (rows: Row[], view: TableView) => Promise<void> = async () => undefined,
): Promise<{ seq: number; manifest: Manifest; rows: Row[]; view: TableView }> {
  const cap = options.maxTargets ?? DEFAULT_MAX_TARGETS;
  if (!Number.isSafeInteger(cap) || cap < 0) throw new FloeError('INVALID_ARGUMENT', 'maxTargets must be a non-negative integer');
  const collect = async (view: TableView): Promise<Row[]> => {
    const rows: Row[] = [];
    for await (const b of scanView(view, { where, columns: ['_id', ...columns] })) {
      for (const r of recordBatchToRows(b)) {
        rows.push(r);
        if (rows.length > cap) {
          throw new FloeError(
            'LIMIT_EXCEEDED',
            `mutation of "${name}" matches more than maxTargets=${cap} rows; raise maxTargets, or rewrite the table (scan + append into a new table) for changes this large`,
          );
        }
      }
    }
    return rows;
  };
  // Unknown columns / type mismatches fail before anything (even the memtable flush) is written.
  const first = await host.view(name);
  bindPredicate(where, first.schema);
  if (first.mem.some((m) => m.size > 0)) {
    // The flush below writes a data file: check the mutation against the
    // unflushed view first, so bad input still writes nothing.
    await validate(await collect(first), first);
  }
  const seq = await host.prepareAppend(tableId);
  const view = await host.view(name);
  if (view.mem.some((m) => m.size > 0)) {
    throw new FloeError('INVARIANT_VIOLATION', `mutation of "${name}": the memtable still holds rows after the flush`);
  }
  const rows = await collect(view);
  await validate(rows, view);
  return { seq, manifest: view.manifest, rows, view };
}

function baseDoc(kind: 'delete' | 'update', name: string, tableId: string, now: number, manifest: Manifest, seq: number, targets: bigint[]): MutationDoc {
  return {
    format: MUTATION_DOC_FORMAT,
    id: ulid(now),
    kind,
    state: 'intent',
    version: 1,
    table: name,
    tableId,
    createdAt: now,
    baseVersion: manifest.version,
    targets: targets.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(String),
    payload: null,
    fileId: null,
    firstId: null,
    seq,
    file: null,
    applied: null,
    skipped: null,
  };
}

export async function deleteWhere(host: TableHost, name: string, tableId: string, where: PredicateInput, options: MutateOptions = {}): Promise<MutationResult> {
  return restartOnConflict(`deleteWhere on "${name}"`, async () => {
    const { seq, manifest, rows } = await resolveTargets(host, name, tableId, where, [], options);
    if (rows.length === 0) return { id: '', matched: 0, applied: 0, skipped: 0, version: manifest.version };
    const doc = baseDoc('delete', name, tableId, Date.now(), manifest, seq, rows.map((r) => r._id as bigint));
    const ms = mutationStore(host);
    await ms.create(doc);
    return drive(host, ms, doc.id, rows.length);
  });
}

export async function updateWhere(
  host: TableHost,
  name: string,
  tableId: string,
  where: PredicateInput,
  set: Readonly<Record<string, unknown>>,
  options: MutateOptions = {},
): Promise<MutationResult> {
  if (set === null || typeof set !== 'object' || Array.isArray(set)) throw new FloeError('INVALID_ARGUMENT', `updateWhere on "${name}": set must be an object of column -> value`);
  const view0 = await host.view(name);
  const schema = view0.schema;
  const setCols = Object.keys(set);
  if (setCols.length === 0) throw new FloeError('INVALID_ARGUMENT', `updateWhere on "${name}": set names no column`);
  const coerced: Row = {};
  for (const c of setCols) {
    if ((SYSTEM_COLUMNS as readonly string[]).includes(c)) throw new FloeError('INVALID_ARGUMENT', `updateWhere on "${name}": system column "${c}" cannot be set`);
    const spec = schema.columns.find((x) => x.name === c);
    if (!spec) throw new FloeError('INVALID_ARGUMENT', `updateWhere on "${name}": unknown column "${c}" (columns: ${schema.columns.map((x) => x.name).join(', ')})`);
    const v = set[c];
    if (v === null || v === undefined) {
      if (!spec.nullable) throw new FloeError('SCHEMA_MISMATCH', `updateWhere on "${name}": column "${c}" is not nullable`);
      coerced[c] = null;
      continue;
    }
    try {
      coerced[c] = coerceValue(spec.type, v);
    } catch (err) {
      if (err instanceof ValueProblem) throw new FloeError('SCHEMA_MISMATCH', `updateWhere on "${name}": set.${c}: ${err.message}`, { cause: err });
      throw err;
    }
  }
  bindPredicate(where, schema);
  const userCols = schema.columns.map((c) => c.name);
  type Image = { src: bigint; row: Row };
  /** New row images of `rows`, validated; throws on bad values or primary-key collisions. */
  const imagesOf = async (rows: Row[], view: TableView): Promise<Image[]> => {
    const pk = view.primaryKey;
    let images: Image[] = rows.map((r) => {
      const img: Row = {};
      for (const c of userCols) img[c] = c in coerced ? coerced[c] : r[c];
      return { src: r._id as bigint, row: img };
    });
    const valid = validateRows(schema, images.map((x) => x.row), { primaryKey: pk ?? undefined });
    images = images.map((x, i) => ({ src: x.src, row: valid[i]! }));
    if (!pk) return images;
    const keyed = images.map((x) => ({ ...x, k: keyOf(x.row, pk) }));
    if (setCols.some((c) => pk.includes(c))) {
      const seen = new Set<string>();
      for (const x of keyed) {
        if (seen.has(x.k)) throw new FloeError('INVALID_ARGUMENT', `updateWhere on "${name}": the update gives two rows the primary key ${showKey(x.row, pk)}`);
        seen.add(x.k);
      }
      const targets = new Set(images.map((x) => x.src));
      for await (const b of scanView(view, { columns: ['_id', ...pk] })) {
        for (const r of recordBatchToRows(b)) {
          if (!targets.has(r._id as bigint) && seen.has(keyOf(r, pk))) {
            throw new FloeError('INVALID_ARGUMENT', `updateWhere on "${name}": the update gives a row the primary key ${showKey(r, pk)}, which another row already has`);
          }
        }
      }
    }
    keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
    return keyed.map((x) => ({ src: x.src, row: x.row }));
  };
  const setsKey = (pk: readonly string[] | null): boolean => pk !== null && setCols.some((c) => pk.includes(c));
  return restartOnConflict(`updateWhere on "${name}"`, async () => {
    let images: Image[] = [];
    const { seq, manifest, rows, view } = await resolveTargets(host, name, tableId, where, userCols, options, async (rs, v) => {
      images = await imagesOf(rs, v);
    });
    if (rows.length === 0) return { id: '', matched: 0, applied: 0, skipped: 0, version: manifest.version };
    const now = Date.now();
    const doc0 = baseDoc('update', name, tableId, now, manifest, seq, images.map((x) => x.src));
    const firstId = await host.reserveIds(images.length);
    const ms = mutationStore(host);
    const srcIds = BigInt64Array.from(images, (x) => x.src);
    const batch = rowsToRecordBatch(schema, images.map((x) => x.row), { _id: srcIds, _seq: new BigInt64Array(images.length).fill(BigInt(seq)) });
    const payload = await ms.putPayload(doc0.id, new arrow.Table(batch));
    const doc: MutationDoc = { ...doc0, payload, fileId: ulid(now), firstId: String(firstId), setsKey: setsKey(view.primaryKey) };
    await ms.create(doc);
    return drive(host, ms, doc.id, rows.length);
  });
}

const showKey = (r: Row, pk: readonly string[]): string => `(${pk.map((c) => String(r[c])).join(', ')})`;

class DocRace extends Error {}

/** A concurrent commit touched what this mutation read: abort it (nothing published). */
class Conflict extends Error {}

/** Thrown by `drive` when the mutation ended `aborted`; its caller may start over. */
export class MutationAborted extends Error {
  constructor(
    readonly id: string,
    readonly reason: string,
  ) {
    super(`mutation ${id} aborted: ${reason}`);
  }
}

/** How many times deleteWhere / updateWhere start over after a conflict. */
export const MUTATION_RESTARTS = 8;

/** Run `attempt` until it is not aborted by a conflict (bounded, jittered backoff). */
async function restartOnConflict(what: string, attempt: () => Promise<MutationResult>): Promise<MutationResult> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof MutationAborted)) throw err;
      if (i + 1 >= MUTATION_RESTARTS) {
        throw new FloeError('CAS_CONFLICT', `${what}: concurrent commits kept changing its target rows (${MUTATION_RESTARTS} attempts, nothing applied); retry later. Last: ${err.reason}`, { cause: err });
      }
      const ms = Math.min(1000, 10 * 2 ** i) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, ms));
    }
  }
}

/**
 * Drive mutation `id` from its durable state to the end. Returns null when
 * the document is gone (another process finished and collected it).
 */
export async function drive(host: TableHost, ms: MutationStore, id: string, matched = -1): Promise<MutationResult> {
  const fp = host.writeCtx.failpoints;
  for (let attempt = 0; attempt < 64; attempt++) {
    const got = await ms.read(id);
    if (!got) return { id, matched, applied: 0, skipped: 0, version: 0 };
    let { doc, etag } = got;
    const cas = async (next: MutationDoc, point: string): Promise<void> => {
      try {
        etag = await ms.update(doc, etag, next, point);
        doc = next;
      } catch (err) {
        if (isFloeError(err, 'CAS_CONFLICT')) throw new DocRace(); // another driver moved it: re-read
        throw err;
      }
    };
    try {
      if (doc.state === 'aborted') {
        await ms.remove(id);
        throw new MutationAborted(id, doc.reason ?? 'a concurrent commit changed its targets');
      }
      if (doc.state === 'complete') {
        await fp.hit('mutate.collect.before', { key: id });
        await ms.remove(id);
        return { id, matched: matched < 0 ? doc.targets.length : matched, applied: doc.applied ?? 0, skipped: doc.skipped ?? 0, version: 0 };
      }
      if (doc.kind === 'update') {
        const tbl = await ms.readPayload(doc.payload!);
        if (doc.state === 'intent') {
          const view = await host.view(doc.table);
          const userCols = view.schema.columns.map((c) => c.name);
          const rows = tbl.batches.flatMap((b) => recordBatchToRows(b, userCols));
          const first = BigInt(doc.firstId!);
          const ids = BigInt64Array.from(rows, (_, i) => first + BigInt(i));
          const seqs = new BigInt64Array(rows.length).fill(BigInt(doc.seq));
          const file = await buildFile(host, doc, view.schema, view.manifest.schemaVersion, view.primaryKey, rows, ids, seqs);
          await cas(advance(doc, 'appended', { file }), 'appended');
        }
      }
      let r: { applied: number; skipped: number; version: number };
      try {
        r = await publishWithBackoff(host, doc);
      } catch (err) {
        if (!(err instanceof Conflict)) throw err;
        await cas(advance(doc, 'aborted', { reason: err.message }), 'aborted');
        await fp.hit('mutate.collect.before', { key: id });
        await ms.remove(id);
        throw new MutationAborted(id, err.message);
      }
      await fp.hit('mutate.publish.after', { key: id });
      await cas(advance(doc, 'complete', { applied: r.applied, skipped: r.skipped }), 'complete');
      await fp.hit('mutate.collect.before', { key: id });
      await ms.remove(id);
      return { id, matched: matched < 0 ? doc.targets.length : matched, applied: r.applied, skipped: r.skipped, version: r.version };
    } catch (err) {
      if (err instanceof DocRace) continue;
      throw err;
    }
  }
  throw new FloeError('CAS_CONFLICT', `mutation ${id}: its state document kept changing underneath (64 attempts)`, { key: id });
}

/**
 * The update's data file under its fixed key. If an earlier attempt already
 * wrote it (puts are atomic: the object is whole), those bytes are kept and
 * the entry is rebuilt over them — the Parquet encoder's key-value metadata
 * order is not stable between calls, so re-encoding could change bytes.
 */
async function buildFile(
  host: TableHost,
  doc: MutationDoc,
  schema: TableSchema,
  schemaVersion: number,
  pk: readonly string[] | null,
  rows: readonly Row[],
  ids: BigInt64Array,
  seqs: BigInt64Array,
): Promise<DataFileEntry> {
  const ctx = host.writeCtx;
  const key = dataFileKey(doc.tableId, doc.fileId!);
  const existing = await ctx.store.head(key);
  if (!existing) return writeDataFile({ ...ctx, newId: () => doc.fileId! }, doc.tableId, schema, schemaVersion, pk, rows, ids, seqs, 'mutate');
  const bytes = (await ctx.store.get(key)).bytes;
  const dryStore = { put: async (): Promise<{ etag: string }> => ({ etag: '' }) } as unknown as ObjectStore;
  const entry = await writeDataFile({ ...ctx, store: dryStore, newId: () => doc.fileId! }, doc.tableId, schema, schemaVersion, pk, rows, ids, seqs, 'mutate.replay');
  return { ...entry, size: bytes.length, contentHash: await blake3Hex(bytes) };
}

/**
 * The catalog CAS retries within its own budget; when a heavily contended
 * table exhausts it, back off (bounded exponential, jittered) and run the
 * whole tombstone phase again — every attempt re-resolves the targets in
 * the newest layout. After the last attempt CAS_CONFLICT reaches the
 * caller; the intent stays durable and recovery finishes it later.
 */
export const PUBLISH_ATTEMPTS = 5;
async function publishWithBackoff(host: TableHost, doc: MutationDoc): Promise<{ applied: number; skipped: number; version: number }> {
  for (let i = 0; ; i++) {
    try {
      return await publishEffect(host, doc);
    } catch (err) {
      if (!isFloeError(err, 'CAS_CONFLICT') || i + 1 >= PUBLISH_ATTEMPTS) throw err;
      const ms = Math.min(2000, 20 * 2 ** i) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, ms));
    }
  }
}

class AlreadyPublished extends Error {}

/**
 * Positions in `f` of those `ids` it holds: one pass over the file's `_id`
 * column (per row group) against a set of the candidates — memory grows with
 * the targets, not the file. Cached per (file, candidates) for the life of
 * one mutation (data files are immutable).
 */
async function findIds(files: FileCache, f: DataFileEntry, ids: ReadonlySet<bigint>, memo: Map<string, Map<bigint, number>>): Promise<Map<bigint, number>> {
  const memoKey = `${f.key}|${ids.size}`;
  let m = memo.get(memoKey);
  if (m) return m;
  m = new Map();
  const pf = await files.file(f);
  for (let g = 0; g < pf.rowGroups.length && m.size < ids.size; g++) {
    const rg = pf.rowGroups[g]!;
    const arr = (await pf.readRowGroup(g, ['_id'])).getChild('_id')!.toArray() as BigInt64Array;
    for (let i = 0; i < arr.length; i++) if (ids.has(arr[i]!)) m.set(arr[i]!, rg.firstRow + i);
  }
  memo.set(memoKey, m);
  return m;
}

/**
 * Locate `_id`s in `manifest`: file id -> positions to mask, plus the ids
 * already masked or absent (deleted by someone else, or compacted away).
 * Files are pruned by their `_id` range; only candidates' `_id` columns are read.
 */
export async function locateIds(
  files: FileCache,
  manifest: Manifest,
  ids: readonly bigint[],
  memo: Map<string, Map<bigint, number>>,
): Promise<{ masks: Map<string, number[]>; gone: bigint[] }> {
  const masks = new Map<string, number[]>();
  const pending = new Set(ids);
  const gone: bigint[] = [];
  for (const f of manifest.files) {
    if (pending.size === 0) break;
    const lo = BigInt(f.minId);
    const hi = BigInt(f.maxId);
    const cand = new Set<bigint>();
    for (const id of pending) if (id >= lo && id <= hi) cand.add(id);
    if (cand.size === 0) continue;
    const found = await findIds(files, f, cand, memo);
    if (found.size === 0) continue;
    const del = await files.deleted(f);
    const pos: number[] = [];
    for (const [id, p] of found) {
      // An `_id` lives in one file at a time (compaction removes the old file in the same commit).
      pending.delete(id);
      if (del?.has(p)) gone.push(id); // masked already: removed by another commit, skip
      else pos.push(p);
    }
    if (pos.length > 0) masks.set(f.id, pos);
  }
  for (const id of pending) gone.push(id); // in no file: removed and compacted away
  return { masks, gone };
}

/** Operations that never add rows (so an update setting primary keys need not re-check keys past them). */
const ADDS_NO_ROWS = (op: string): boolean => op === 'compact' || op === 'add-column' || op.startsWith('delete:');

async function publishEffect(host: TableHost, doc: MutationDoc): Promise<{ applied: number; skipped: number; version: number }> {
  const op = `${doc.kind}:${doc.id}`;
  const ctx = host.writeCtx;
  const targets = doc.targets.map((s) => BigInt(s));
  const memo = new Map<string, Map<bigint, number>>();
  const bitmapMemo = new Map<string, DeletionRef>();
  const chain = new Map<string, Manifest>();
  let applied = 0;
  try {
    const m = await host.publish(doc.table, op, async (cur) => {
      const since = await operationsSince(host, doc, cur, chain);
      if (since.includes(op) || (doc.fileId && cur.files.some((f) => f.id === doc.fileId))) throw new AlreadyPublished();
      const { masks, gone } = await locateIds(ctx.files, cur, targets, memo);
      if (gone.length > 0) {
        throw new Conflict(`${gone.length} of its ${targets.length} target rows were changed or removed by a concurrent commit after its snapshot (version ${doc.baseVersion})`);
      }
      const adding = since.filter((o) => !ADDS_NO_ROWS(o));
      if (doc.kind === 'update' && doc.setsKey && adding.length > 0) {
        throw new Conflict(`it sets primary-key columns and rows were added since its snapshot (by "${adding[0]}"), so its new keys could collide`);
      }
      // One new bitmap per touched file; independent objects, so written at once.
      const deletes = new Map<string, DeletionRef>(
        await Promise.all(
          [...masks].map(async ([fileId, pos]): Promise<[string, DeletionRef]> => {
            const f = cur.files.find((x) => x.id === fileId)!;
            const mk = `${fileId}|${f.deletes?.key ?? ''}|${pos.length}`;
            let ref = bitmapMemo.get(mk);
            if (!ref) {
              ref = await writeBitmap(ctx, doc.tableId, f, pos, 'mutate');
              bitmapMemo.set(mk, ref);
            }
            return [fileId, ref];
          }),
        ),
      );
      applied = targets.length;
      const addFiles: DataFileEntry[] = doc.kind === 'update' ? [doc.file!] : [];
      await ctx.failpoints.hit('mutate.publish.before', { key: doc.id });
      return { addFiles, deletes };
    });
    return { applied, skipped: 0, version: m.version };
  } catch (err) {
    if (err instanceof AlreadyPublished) return { applied: doc.targets.length, skipped: 0, version: 0 };
    throw err;
  }
}

/**
 * Operations of the versions published after the intent's base version, up
 * to `cur` (the manifest this commit attempt builds on, so never stale),
 * newest first. Walks the parent chain; manifests are immutable, so `memo`
 * keeps them across attempts. Also the idempotency probe: a replay after a
 * crash between the catalog CAS and `complete` finds its own operation here.
 */
async function operationsSince(host: TableHost, doc: MutationDoc, cur: Manifest, memo: Map<string, Manifest>): Promise<string[]> {
  const ops: string[] = [];
  if (cur.version <= doc.baseVersion) return ops;
  ops.push(cur.operation);
  let key = cur.parent;
  let version = cur.version - 1;
  while (key && version > doc.baseVersion) {
    let m = memo.get(key);
    if (!m) {
      m = decodeManifest((await host.writeCtx.store.get(key)).bytes, key);
      memo.set(key, m);
    }
    ops.push(m.operation);
    key = m.parent;
    version = m.version - 1;
  }
  return ops;
}

/** Payloads with no state document (a crash between the payload PUT and the intent) older than `graceMs`. */
async function collectOrphanPayloads(ms: MutationStore, now: number, graceMs = ORPHAN_PAYLOAD_GRACE_MS): Promise<void> {
  const keys: string[] = [];
  for await (const k of listAll(ms.store, MUTATIONS_PREFIX)) keys.push(k);
  const docs = new Set(keys.filter((k) => k.endsWith('.json')).map((k) => k.slice(0, -5)));
  for (const k of keys) {
    if (!k.endsWith('.arrow') || docs.has(k.slice(0, -6))) continue;
    const id = k.slice(MUTATIONS_PREFIX.length, -6);
    if (!isValid(id) || now - decodeTime(id) < graceMs) continue; // young: its intent may still be on the way
    await ms.store.delete(k);
  }
}

/**
 * Resume every unfinished mutation, oldest first. Mutations of tables that
 * no longer exist are collected. A mutation whose document or payload is
 * CORRUPT is left untouched (never applied) and reported, so one damaged
 * object cannot stop a database from opening. Safe to run from several
 * processes at once.
 */
export async function recoverMutations(
  host: TableHost,
  tableExists: (name: string) => Promise<boolean>,
): Promise<{ resumed: string[]; corrupt: Array<{ id: string; error: FloeError }> }> {
  const ms = mutationStore(host);
  const resumed: string[] = [];
  const corrupt: Array<{ id: string; error: FloeError }> = [];
  await collectOrphanPayloads(ms, Date.now());
  for (const id of await ms.list()) {
    try {
      const got = await ms.read(id);
      if (!got) continue;
      if (!(await tableExists(got.doc.table))) {
        await ms.remove(id);
        continue;
      }
      try {
        await drive(host, ms, id);
      } catch (err) {
        // Its caller is gone (or will start over itself): an abort is an outcome, not a failure.
        if (!(err instanceof MutationAborted)) throw err;
      }
      resumed.push(id);
    } catch (err) {
      if (isFloeError(err, 'CORRUPT')) {
        corrupt.push({ id, error: err });
        continue; // reported to the caller; the mutation stays unapplied for an operator to inspect
      }
      throw err;
    }
  }
  return { resumed, corrupt };
}
