/**
 * Garbage collection of table objects nobody can read.
 *
 * Every object under `tables/<id>/` carries a ULID in its name (data files,
 * bitmaps, manifests), so its age is known without a HEAD. An object is
 * garbage when no published manifest version of a live table references it
 * (orphans of lost commit races, crashes before a catalog CAS, or objects of
 * a dropped table) AND it is older than the grace period — the grace keeps
 * in-flight commits (written, not yet published) and readers on an older
 * snapshot safe. Deciding is pure (`planGc`); deleting is idempotent, so a
 * crash mid-GC is finished by the next run.
 *
 * Cost: one LIST page per 1000 objects under `tables/`, one GET per
 * manifest version not already cached, one DELETE per garbage object.
 */
import { decodeTime, isValid } from 'ulid';
import { isFloeError } from '../errors.js';
import type { ObjectStore } from '../store/types.js';
import { listAll } from '../store/list.js';
import type { Manifest } from '../table/manifest.js';

const ULID_RE = /[0-9A-HJKMNP-TV-Z]{26}/g;

/** Creation time (ms) encoded in the last ULID of a key, or null. */
export function keyTime(key: string): number | null {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const ids = name.match(ULID_RE);
  const last = ids?.[ids.length - 1];
  if (!last || !isValid(last)) return null;
  return decodeTime(last);
}

/**
 * Which keys to delete: under a table prefix, not reachable, with a known
 * age older than `graceMs`. Keys without a ULID are never deleted. Pure.
 */
export function planGc(keys: Iterable<string>, reachable: ReadonlySet<string>, now: number, graceMs: number): string[] {
  const out: string[] = [];
  for (const k of keys) {
    if (!k.startsWith('tables/') || reachable.has(k)) continue;
    const t = keyTime(k);
    if (t === null || now - t < graceMs) continue;
    out.push(k);
  }
  return out;
}

/** Keys a manifest version references: itself, its data files and bitmaps. */
export function manifestReferences(m: Manifest, key: string, into: Set<string>): void {
  into.add(key);
  for (const f of m.files) {
    into.add(f.key);
    if (f.deletes) into.add(f.deletes.key);
  }
}

export interface GcResult {
  readonly scanned: number;
  readonly deleted: string[];
}

/**
 * Which published versions keep their data files and bitmaps alive. The
 * current version always does; with no retention given, every version does
 * (time travel to any version keeps working). With `versions`, the newest
 * that many; with `ms`, every version that was still current less than `ms`
 * ago (its successor is younger than that) — a reader holding such a
 * snapshot keeps working. A version kept by either rule is kept. Manifests
 * themselves (small) are always kept so the chain stays walkable; a
 * checkout of an expired version fails NOT_FOUND on its first file read.
 */
export interface VersionRetention {
  readonly versions?: number;
  readonly ms?: number;
}

/** Is the version at `index` (0 = current) with successor created at `successorAt` retained? Pure. */
export function retainedVersion(index: number, successorAt: number | null, now: number, retention: VersionRetention | undefined): boolean {
  if (index === 0 || retention === undefined) return true;
  if (retention.versions !== undefined && index < retention.versions) return true;
  if (retention.ms !== undefined && successorAt !== null && now - successorAt < retention.ms) return true;
  return false;
}

/**
 * Does a multi-table commit made at `at` keep its snapshot (the manifests
 * its history entry names, and their files) for `db.checkout`? Under the
 * default (no retention) every commit does; with `ms`, commits younger than
 * that; a `versions` count alone keeps no commit snapshot beyond the
 * versions it keeps anyway. Pure.
 */
export function retainedSnapshot(at: number, now: number, retention: VersionRetention | undefined): boolean {
  if (retention === undefined) return true;
  return retention.ms !== undefined && now - at < retention.ms;
}

/** A commit's snapshot: when it was made and the manifest of every table in it. */
export interface HistorySnapshot {
  readonly at: number;
  readonly manifests: readonly string[];
}

export async function collectGarbage(
  store: ObjectStore,
  currentManifests: readonly string[],
  readManifest: (key: string) => Promise<Manifest>,
  now: number,
  graceMs: number,
  retention?: VersionRetention,
  snapshots: readonly HistorySnapshot[] = [],
): Promise<GcResult> {
  const reachable = new Set<string>();
  // Snapshots of retained commits (history checkouts), including tables dropped since.
  const whole = new Set<string>();
  for (const s of snapshots) {
    if (!retainedSnapshot(s.at, now, retention)) continue;
    for (const key of s.manifests) {
      if (whole.has(key)) continue;
      whole.add(key);
      try {
        manifestReferences(await readManifest(key), key, reachable);
      } catch (err) {
        // Collected by an earlier gc under a shorter retention: nothing left to keep.
        if (!isFloeError(err, 'NOT_FOUND')) throw err;
      }
    }
  }
  for (const head of currentManifests) {
    let key: string | null = head;
    let index = 0;
    let successorAt: number | null = null;
    while (key) {
      const m = await readManifest(key);
      if (retainedVersion(index, successorAt, now, retention)) manifestReferences(m, key, reachable);
      else reachable.add(key);
      successorAt = m.createdAt;
      index++;
      key = m.parent;
    }
  }
  const keys: string[] = [];
  for await (const k of listAll(store, 'tables/')) keys.push(k);
  const deleted = planGc(keys, reachable, now, graceMs);
  for (const k of deleted) await store.delete(k);
  return { scanned: keys.length, deleted };
}
