/**
 * Commit history and recovery audit entries, and time travel across tables.
 *
 * Where a commit's history entry lives:
 * - In the catalog: the CAS that publishes a multi-table commit also
 *   appends its entry (id, writer, time, changed tables, the catalog's whole
 *   table -> manifest map after the commit) to the catalog's `commits` ring.
 *   Commit and history are therefore durable together, and the commit path
 *   pays no extra PUT for history.
 * - In `_history/<last id>.b.json` batches: when the ring outgrows its
 *   bounds (`spillPlan`), a background task writes its oldest entries as one
 *   create-only batch and then removes exactly those ids from the ring by
 *   CAS. A crash between the two leaves an entry in both places; readers
 *   de-duplicate by id, and a rerun rewrites nothing (same key, ALREADY_EXISTS).
 * - `_history/<id>.json`: commits recorded by recovery for intents published
 *   by a floe that predates the ring (kept readable).
 * Every recovery decision writes `_history/<id>.r-<decision>.json`. Entries
 * are create-only under deterministic keys: writing one twice (a recovery
 * rerun after a crash, two processes recovering at once) leaves one entry.
 *
 * Order: by commit id (ULID, the intent's creation time), which for two
 * concurrent commits can differ from catalog publication order. Listing is
 * only on the read path (`history()`, `checkout()` of a spilled commit),
 * never on a commit.
 */
import { FloeError, isFloeError } from '../errors.js';
import { listAll } from '../store/list.js';
import type { ObjectStore } from '../store/types.js';
import { openJson, sealJson } from '../table/manifest.js';
import type { ReadonlyTable } from '../table/table.js';
import { ReadonlyTable as ReadonlyTableImpl } from '../table/table.js';
import type { Catalog, CatalogCommit, CatalogTable } from './catalog.js';
import type { DbInternals } from './database.js';
import type { ClassificationKind, Decision, Intent, RecoveryMode, WriterKind } from './intent.js';

export const HISTORY_PREFIX = '_history/';
export const HISTORY_FORMAT = 1;

export interface CommitEntry {
  readonly format: number;
  readonly kind: 'commit';
  readonly id: string;
  readonly writer: WriterKind;
  readonly at: number;
  /** Tables this commit changed. */
  readonly changed: readonly string[];
  /** The catalog's table map right after the commit. */
  readonly tables: Readonly<Record<string, CatalogTable>>;
}

export interface RecoveryEntry {
  readonly format: number;
  readonly kind: 'recovery';
  /** The intent (commit) id this decision was about. */
  readonly id: string;
  readonly writer: WriterKind | null;
  readonly at: number;
  readonly mode: RecoveryMode;
  readonly decision: Exclude<Decision, 'defer'>;
  readonly tables: ReadonlyArray<{ readonly name: string; readonly classification: ClassificationKind }>;
  readonly note?: string;
}

export type HistoryEntry = CommitEntry | RecoveryEntry;

export function commitKey(id: string): string {
  return `${HISTORY_PREFIX}${id}.json`;
}

export function recoveryKey(id: string, decision: Decision): string {
  return `${HISTORY_PREFIX}${id}.r-${decision}.json`;
}

/** Write an entry create-only; false when it was already there (idempotent rerun). */
export async function putEntryOnce(store: ObjectStore, key: string, entry: HistoryEntry): Promise<boolean> {
  try {
    await store.putIfAbsent(key, sealJson(entry));
    return true;
  } catch (err) {
    if (isFloeError(err, 'ALREADY_EXISTS')) return false;
    throw err;
  }
}

export function batchKey(lastId: string): string {
  return `${HISTORY_PREFIX}${lastId}.b.json`;
}

const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** The ring entry of `intent`'s commit, published with catalog table map `tables`. Pure. */
export function commitOf(intent: Intent, tables: Readonly<Record<string, CatalogTable>>, at: number): CatalogCommit {
  return { id: intent.id, writer: intent.writer, at, changed: intent.tables.map((t) => t.name), tables };
}

/** The catalog ring with `c` appended (idempotent: an id already there is not added twice). Pure. */
export function withCommit(ring: readonly CatalogCommit[] | undefined, c: CatalogCommit): CatalogCommit[] {
  const cur = ring ?? [];
  return cur.some((e) => e.id === c.id) ? [...cur] : [...cur, c];
}

/** Bounds of the catalog's commit ring. */
export interface RingLimits {
  /** Spill when the ring holds more entries than this. */
  readonly maxEntries: number;
  /** Spill when the ring's entries encode to more bytes than this. */
  readonly maxBytes: number;
}

export const DEFAULT_RING: RingLimits = { maxEntries: 32, maxBytes: 64 * 1024 };

/**
 * How many of the oldest ring entries to move to a `_history/` batch, given
 * each entry's encoded size (oldest first). Zero while the ring is within
 * its bounds; otherwise enough to bring it down to half of both bounds (so
 * spills are amortized over many commits), always keeping the newest entry.
 * Pure.
 */
export function spillPlan(sizes: readonly number[], limits: RingLimits = DEFAULT_RING): number {
  let bytes = 0;
  for (const b of sizes) bytes += b;
  if (sizes.length <= limits.maxEntries && bytes <= limits.maxBytes) return 0;
  let cut = 0;
  while (cut < sizes.length - 1 && (sizes.length - cut > limits.maxEntries / 2 || bytes > limits.maxBytes / 2)) {
    bytes -= sizes[cut]!;
    cut++;
  }
  return cut;
}

function entrySize(c: CatalogCommit): number {
  return JSON.stringify(c).length;
}

/** Whether the catalog's ring has outgrown its bounds (a spill is due). */
export function spillDue(cat: Catalog, limits: RingLimits = DEFAULT_RING): boolean {
  return spillPlan((cat.commits ?? []).map(entrySize), limits) > 0;
}

function toEntry(c: CatalogCommit): CommitEntry {
  return { format: HISTORY_FORMAT, kind: 'commit', id: c.id, writer: c.writer as WriterKind, at: c.at, changed: c.changed, tables: c.tables };
}

/**
 * Move the ring's oldest entries to a `_history/` batch: one create-only PUT,
 * then one catalog CAS removing exactly those ids. Returns how many moved.
 * Safe to run in several processes at once and to rerun after a crash.
 */
export async function spillHistory(db: DbInternals, limits: RingLimits = DEFAULT_RING): Promise<number> {
  const ring = (await db.refreshCatalog()).catalog.commits ?? [];
  const cut = spillPlan(ring.map(entrySize), limits);
  if (cut === 0) return 0;
  const moved = ring.slice(0, cut);
  const key = batchKey(moved[moved.length - 1]!.id);
  try {
    await db.store.putIfAbsent(key, sealJson({ format: HISTORY_FORMAT, kind: 'batch', entries: moved.map(toEntry) }));
  } catch (err) {
    // The same oldest entries end the same key: a crashed or concurrent spill wrote it already.
    if (!isFloeError(err, 'ALREADY_EXISTS')) throw err;
  }
  await db.failpoints.hit('history.spill.after', { key });
  const ids = new Set(moved.map((c) => c.id));
  await db.casCatalog(async (c) => {
    const cur = c.commits ?? [];
    const rest = cur.filter((e) => !ids.has(e.id));
    return rest.length === cur.length ? null : { ...c, commits: rest, updatedAt: db.now() };
  });
  return cut;
}

export function decodeEntry(bytes: Uint8Array, key: string): HistoryEntry {
  const e = openJson(bytes, key) as Partial<HistoryEntry>;
  if ((e.kind !== 'commit' && e.kind !== 'recovery') || typeof e.id !== 'string' || typeof e.format !== 'number') {
    throw new FloeError('CORRUPT', 'history entry is missing required fields', { key });
  }
  if (e.format > HISTORY_FORMAT) throw new FloeError('UNSUPPORTED_VERSION', `history entry format ${e.format} is newer than this floe supports; upgrade floe`, { key });
  return e as HistoryEntry;
}

/** The entries of one `_history/` object (a batch holds many). */
export function decodeHistoryObject(bytes: Uint8Array, key: string): HistoryEntry[] {
  if (!key.endsWith('.b.json')) return [decodeEntry(bytes, key)];
  const b = openJson(bytes, key) as { format?: unknown; kind?: unknown; entries?: unknown };
  if (b.kind !== 'batch' || typeof b.format !== 'number' || !Array.isArray(b.entries)) throw new FloeError('CORRUPT', 'history batch is missing required fields', { key });
  if (b.format > HISTORY_FORMAT) throw new FloeError('UNSUPPORTED_VERSION', `history batch format ${b.format} is newer than this floe supports; upgrade floe`, { key });
  return (b.entries as unknown[]).map((e) => {
    const c = e as Partial<CommitEntry>;
    if (c.kind !== 'commit' || typeof c.id !== 'string' || typeof c.tables !== 'object' || c.tables === null) throw new FloeError('CORRUPT', 'history batch holds a malformed entry', { key });
    return c as CommitEntry;
  });
}

/** The id part of a `_history/` key: an upper bound of the ids of the entries it holds. */
function idOfKey(key: string): string {
  return key.slice(HISTORY_PREFIX.length, HISTORY_PREFIX.length + 26);
}

function entryIdentity(e: HistoryEntry): string {
  return e.kind === 'commit' ? `c:${e.id}` : `r:${e.id}:${e.decision}`;
}

/** Newest first by id; for one id, the commit before its recovery decisions. */
function newestFirst(a: HistoryEntry, b: HistoryEntry): number {
  if (a.id !== b.id) return a.id < b.id ? 1 : -1;
  return a.kind === b.kind ? 0 : a.kind === 'commit' ? -1 : 1;
}

/**
 * Commits and recovery decisions, newest first: the catalog's ring plus the
 * `_history/` objects, read newest key first and only as far as needed (a
 * key's id bounds the ids it holds, so reading stops once no unread key can
 * hold an entry among the newest `limit`).
 */
export async function listHistory(db: DbInternals, limit = 100): Promise<HistoryEntry[]> {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new FloeError('INVALID_ARGUMENT', `history: limit must be a positive integer, got ${String(limit)}`);
  const cat = (await db.refreshCatalog()).catalog;
  const seen = new Map<string, HistoryEntry>();
  const add = (e: HistoryEntry): void => {
    const k = entryIdentity(e);
    if (!seen.has(k)) seen.set(k, e);
  };
  for (const c of cat.commits ?? []) add(toEntry(c));
  const keys: string[] = [];
  for await (const k of listAll(db.store, HISTORY_PREFIX)) keys.push(k);
  keys.sort();
  for (let i = keys.length - 1; i >= 0; i--) {
    const k = keys[i]!;
    if (seen.size >= limit) {
      const floor = [...seen.values()].sort(newestFirst)[limit - 1]!.id;
      if (idOfKey(k) < floor) break;
    }
    const { bytes } = await db.store.get(k);
    for (const e of decodeHistoryObject(bytes, k)) add(e);
  }
  return [...seen.values()].sort(newestFirst).slice(0, limit);
}

/** A read-only snapshot of every table as of one commit. */
export interface Snapshot {
  readonly commitId: string;
  readonly at: Date;
  listTables(): string[];
  table(name: string): ReadonlyTable;
}

/** Find a commit's entry: the catalog ring, then its own object, then the batches that may hold it. */
async function findCommit(db: DbInternals, commitId: string): Promise<CommitEntry | null> {
  const inRing = (await db.refreshCatalog()).catalog.commits?.find((c) => c.id === commitId);
  if (inRing) return toEntry(inRing);
  const key = commitKey(commitId);
  try {
    const { bytes } = await db.store.get(key);
    const e = decodeEntry(bytes, key);
    if (e.kind !== 'commit') throw new FloeError('CORRUPT', `${key} is not a commit entry`, { key });
    return e;
  } catch (err) {
    if (!isFloeError(err, 'NOT_FOUND')) throw err;
  }
  // A batch holding the commit ends at an id >= it, so its key sorts after `key`.
  for (let page = await db.store.list(HISTORY_PREFIX, { startAfter: `${HISTORY_PREFIX}${commitId}` }); ; ) {
    for (const k of page.keys) {
      if (!k.endsWith('.b.json')) continue;
      const { bytes } = await db.store.get(k);
      const hit = decodeHistoryObject(bytes, k).find((e) => e.kind === 'commit' && e.id === commitId);
      if (hit) return hit as CommitEntry;
    }
    if (!page.more || page.keys.length === 0) return null;
    page = await db.store.list(HISTORY_PREFIX, { startAfter: page.keys[page.keys.length - 1] });
  }
}

export async function checkoutCommit(db: DbInternals, commitId: string): Promise<Snapshot> {
  if (typeof commitId !== 'string' || !ULID_RE.test(commitId)) {
    throw new FloeError('INVALID_ARGUMENT', `checkout: ${JSON.stringify(commitId)} is not a commit id (a 26-character ULID from db.history())`);
  }
  const entry = await findCommit(db, commitId);
  if (!entry) throw new FloeError('NOT_FOUND', `no commit ${commitId} in ${db.store.location} (see db.history())`, { key: commitKey(commitId) });
  const tables = entry.tables;
  return {
    commitId,
    at: new Date(entry.at),
    listTables: () => Object.keys(tables).sort(),
    table: (name) => {
      const e = tables[name];
      if (!e) throw new FloeError('NOT_FOUND', `commit ${commitId} has no table "${name}" (tables: ${Object.keys(tables).sort().join(', ') || 'none'})`);
      return new ReadonlyTableImpl(name, async () => {
        try {
          return await db.viewOfManifest(name, e.manifest);
        } catch (err) {
          if (!isFloeError(err, 'NOT_FOUND')) throw err;
          throw new FloeError('NOT_FOUND', `commit ${commitId}'s snapshot of table "${name}" is gone: gc collected it after its retention expired`, { key: e.manifest, cause: err });
        }
      });
    },
  };
}
