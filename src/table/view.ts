/**
 * A table view: everything a read needs, frozen at one instant — the
 * published manifest, the schema it implies, and the memtable snapshots of
 * writes not yet in data files (newest first). Reads through one view see
 * exactly one consistent state however long they run and whatever commits
 * meanwhile: data files and bitmaps are immutable, and memtable snapshots
 * are copies.
 */
import type { TableSchema } from '../format/schema.js';
import type { ObjectStore } from '../store/types.js';
import type { FileCache } from './files.js';
import type { Manifest } from './manifest.js';
import type { MemEntry, MemSnapshot } from './memtable.js';

export interface TableView {
  readonly store: ObjectStore;
  readonly files: FileCache;
  readonly name: string;
  readonly manifest: Manifest;
  readonly manifestKey: string;
  readonly schema: TableSchema;
  readonly primaryKey: readonly string[] | null;
  /** Memtable snapshots, newest first (active, then the one being flushed). */
  readonly mem: readonly MemSnapshot[];
  /** Highest log seq included in this view. */
  readonly seq: number;
}

/** The newest memtable entry of a key across the view's snapshots. */
export function memLookup(view: TableView, key: string): MemEntry | undefined {
  for (const m of view.mem) {
    const e = m.get(key);
    if (e) return e;
  }
  return undefined;
}

/** Effective memtable entries (newest per key), sorted by key. */
export function memEntries(view: TableView): MemEntry[] {
  if (view.mem.length === 0) return [];
  if (view.mem.length === 1) return [...view.mem[0]!.entries()];
  const merged = new Map<string, MemEntry>();
  for (let i = view.mem.length - 1; i >= 0; i--) for (const e of view.mem[i]!.entries()) merged.set(e.key, e);
  return [...merged.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** True when some memtable snapshot holds the key (so file rows of it are stale). */
export function memShadows(view: TableView, key: string): boolean {
  for (const m of view.mem) if (m.has(key)) return true;
  return false;
}
