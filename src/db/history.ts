/**
 * Commit history and recovery audit entries under `_history/`, and time
 * travel across tables.
 *
 * Every multi-table commit writes `_history/<commit id>.json` (the commit id
 * is the intent's ULID) holding the catalog's whole table -> manifest map
 * right after the commit, so `checkout(id)` can rebuild a read-only
 * snapshot of every table as of that commit. Every recovery decision writes
 * `_history/<commit id>.r-<decision>.json`. Both are written create-only
 * under deterministic keys: writing one twice (a recovery rerun after a
 * crash, two processes recovering at once) leaves exactly one entry.
 *
 * Keys sort by ULID, so a listing is oldest first by intent creation time
 * (for two concurrent commits this can differ from catalog publication
 * order). Listing is only on the read path (`history()`), never on a commit.
 */
import { FloeError, isFloeError } from '../errors.js';
import { listAll } from '../store/list.js';
import type { ObjectStore } from '../store/types.js';
import { openJson, sealJson } from '../table/manifest.js';
import type { ReadonlyTable } from '../table/table.js';
import { ReadonlyTable as ReadonlyTableImpl } from '../table/table.js';
import type { CatalogTable } from './catalog.js';
import type { DbInternals } from './database.js';
import type { ClassificationKind, Decision, RecoveryMode, WriterKind } from './intent.js';

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

export function decodeEntry(bytes: Uint8Array, key: string): HistoryEntry {
  const e = openJson(bytes, key) as Partial<HistoryEntry>;
  if ((e.kind !== 'commit' && e.kind !== 'recovery') || typeof e.id !== 'string' || typeof e.format !== 'number') {
    throw new FloeError('CORRUPT', 'history entry is missing required fields', { key });
  }
  if (e.format > HISTORY_FORMAT) throw new FloeError('UNSUPPORTED_VERSION', `history entry format ${e.format} is newer than this floe supports; upgrade floe`, { key });
  return e as HistoryEntry;
}

/** Commits and recovery decisions, newest first. */
export async function listHistory(store: ObjectStore, limit = 100): Promise<HistoryEntry[]> {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new FloeError('INVALID_ARGUMENT', `history: limit must be a positive integer, got ${String(limit)}`);
  const keys: string[] = [];
  for await (const k of listAll(store, HISTORY_PREFIX)) keys.push(k);
  keys.sort();
  const out: HistoryEntry[] = [];
  for (const k of keys.reverse().slice(0, limit)) {
    const { bytes } = await store.get(k);
    out.push(decodeEntry(bytes, k));
  }
  return out;
}

/** A read-only snapshot of every table as of one commit. */
export interface Snapshot {
  readonly commitId: string;
  readonly at: Date;
  listTables(): string[];
  table(name: string): ReadonlyTable;
}

export async function checkoutCommit(db: DbInternals, commitId: string): Promise<Snapshot> {
  if (typeof commitId !== 'string' || !/^[0-9A-HJKMNP-TV-Z]{26}$/.test(commitId)) {
    throw new FloeError('INVALID_ARGUMENT', `checkout: ${JSON.stringify(commitId)} is not a commit id (a 26-character ULID from db.history())`);
  }
  const key = commitKey(commitId);
  let entry: HistoryEntry;
  try {
    const { bytes } = await db.store.get(key);
    entry = decodeEntry(bytes, key);
  } catch (err) {
    if (isFloeError(err, 'NOT_FOUND')) throw new FloeError('NOT_FOUND', `no commit ${commitId} in ${db.store.location} (see db.history())`, { key, cause: err });
    throw err;
  }
  if (entry.kind !== 'commit') throw new FloeError('CORRUPT', `${key} is not a commit entry`, { key });
  const tables = entry.tables;
  return {
    commitId,
    at: new Date(entry.at),
    listTables: () => Object.keys(tables).sort(),
    table: (name) => {
      const e = tables[name];
      if (!e) throw new FloeError('NOT_FOUND', `commit ${commitId} has no table "${name}" (tables: ${Object.keys(tables).sort().join(', ') || 'none'})`);
      return new ReadonlyTableImpl(name, () => db.viewOfManifest(name, e.manifest));
    },
  };
}
