/**
 * The catalog: one small mutable object, `_catalog/current`, that says which
 * manifest of each table is current, how far the log is checkpointed into
 * data files, and where the next `_id` span starts.
 *
 * It is the database's only commit point. Every change that publishes table
 * state (flush, append, schema change, drop) writes its immutable objects
 * first and then moves the catalog by `putIfMatch`; readers that load the
 * catalog therefore switch every table at once. The catalog carries its own
 * strictly increasing `version` (S3 etags repeat for identical bytes, so the
 * etag alone is not an ABA guard; the version makes every write distinct).
 *
 * A lost CAS is retried a bounded number of times with jittered exponential
 * backoff, re-running the caller's `mutate` against the fresh catalog (the
 * caller rebases its change). Opening costs one GET.
 */
import { FloeError, isFloeError } from '../errors.js';
import type { ObjectStore } from '../store/types.js';
import { openJson, sealJson } from '../table/manifest.js';

export const CATALOG_KEY = '_catalog/current';
export const CATALOG_FORMAT = 1;

export interface CatalogTable {
  readonly id: string;
  /** Key of the current manifest. */
  readonly manifest: string;
  readonly version: number;
}

export interface Catalog {
  readonly format: number;
  readonly magic: 'floe';
  readonly version: number;
  /** Log records with lsn <= checkpointLsn are in data files. */
  readonly checkpointLsn: number;
  /** First `_id` not yet reserved by anyone (decimal bigint). */
  readonly nextRowId: string;
  readonly tables: Readonly<Record<string, CatalogTable>>;
  /**
   * Log writer generation allowed to checkpoint (flush). A writer claims it
   * right after claiming the log, so a fenced (zombie) writer's flush fails
   * with FENCED instead of publishing a checkpoint.
   */
  readonly writer: number;
  readonly updatedAt: number;
  /**
   * The newest multi-table commits, oldest first (absent = none). Each is
   * written by the very CAS that publishes its commit, so a commit and its
   * history entry become durable together with no extra PUT; older entries
   * are moved out to `_history/` batches in the background (db/history.ts).
   */
  readonly commits?: readonly CatalogCommit[];
}

/** A multi-table commit as recorded in the catalog (and later in a `_history/` batch). */
export interface CatalogCommit {
  /** The commit id: the ULID of its recovery intent. */
  readonly id: string;
  /** Writer kind (see intent.ts WRITER_KINDS). */
  readonly writer: string;
  readonly at: number;
  /** Tables this commit changed. */
  readonly changed: readonly string[];
  /** The catalog's whole table map right after the commit. */
  readonly tables: Readonly<Record<string, CatalogTable>>;
}

export interface CatalogState {
  readonly catalog: Catalog;
  readonly etag: string;
}

export function emptyCatalog(now: number): Catalog {
  return { format: CATALOG_FORMAT, magic: 'floe', version: 1, checkpointLsn: 0, nextRowId: '1', tables: {}, writer: 0, updatedAt: now };
}

export function decodeCatalog(bytes: Uint8Array, location: string): Catalog {
  let c: Partial<Catalog>;
  try {
    c = openJson(bytes, CATALOG_KEY) as Partial<Catalog>;
  } catch (cause) {
    if (isFloeError(cause, 'CORRUPT')) {
      throw new FloeError('NOT_A_DATABASE', `${location} holds a ${CATALOG_KEY} that is not a floe catalog`, { cause });
    }
    throw cause;
  }
  if (c.magic !== 'floe' || typeof c.format !== 'number' || typeof c.version !== 'number') {
    throw new FloeError('NOT_A_DATABASE', `${location} holds a ${CATALOG_KEY} that is not a floe catalog`);
  }
  if (c.format > CATALOG_FORMAT) {
    throw new FloeError(
      'UNSUPPORTED_VERSION',
      `${location} was written by a newer floe (catalog format ${c.format}, this floe reads up to ${CATALOG_FORMAT}); upgrade floe`,
    );
  }
  return c as Catalog;
}

export async function readCatalog(store: ObjectStore): Promise<CatalogState | null> {
  try {
    const { bytes, etag } = await store.get(CATALOG_KEY);
    return { catalog: decodeCatalog(bytes, store.location), etag };
  } catch (err) {
    if (isFloeError(err, 'NOT_FOUND')) return null;
    throw err;
  }
}

/**
 * Create the catalog of a new database, or return the existing one.
 * Refuses a location that holds other objects but no catalog.
 */
export async function createOrReadCatalog(store: ObjectStore, now: number): Promise<CatalogState> {
  const existing = await readCatalog(store);
  if (existing) return existing;
  const page = await store.list('', { limit: 1 });
  if (page.keys.length > 0) {
    throw new FloeError(
      'NOT_A_DATABASE',
      `${store.location} is not empty and holds no floe database (found "${page.keys[0]}"); choose an empty location`,
    );
  }
  const catalog = emptyCatalog(now);
  try {
    const { etag } = await store.putIfAbsent(CATALOG_KEY, sealJson(catalog));
    return { catalog, etag };
  } catch (err) {
    // Another process created it first: use theirs.
    if (isFloeError(err, 'ALREADY_EXISTS')) {
      const s = await readCatalog(store);
      if (s) return s;
    }
    throw err;
  }
}

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly random: () => number;
  readonly sleep: (ms: number) => Promise<void>;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 50,
  baseDelayMs: 2,
  maxDelayMs: 200,
  random: Math.random,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** Full-jitter exponential backoff delay for attempt `n` (0-based). Pure. */
export function backoffDelay(n: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, r: number): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(n, 20));
  return Math.floor(r * cap);
}

/**
 * Move the catalog from `state` by `mutate`, retrying lost races against the
 * freshest catalog. `mutate` returns the next catalog (its version is set
 * here) or null to abandon. Returns the published state.
 */
export async function updateCatalog(
  store: ObjectStore,
  state: CatalogState,
  mutate: (current: Catalog, attempt: number) => Promise<Omit<Catalog, 'version' | 'format' | 'magic'> | null>,
  policy: RetryPolicy = DEFAULT_RETRY,
): Promise<CatalogState | null> {
  let cur = state;
  for (let attempt = 0; ; attempt++) {
    const body = await mutate(cur.catalog, attempt);
    if (body === null) return null;
    const next: Catalog = { ...body, format: CATALOG_FORMAT, magic: 'floe', version: cur.catalog.version + 1 };
    try {
      const { etag } = await store.putIfMatch(CATALOG_KEY, sealJson(next), cur.etag);
      return { catalog: next, etag };
    } catch (err) {
      if (!isFloeError(err, 'CAS_CONFLICT')) throw err;
      if (attempt + 1 >= policy.maxAttempts) {
        throw new FloeError('CAS_CONFLICT', `catalog update lost ${policy.maxAttempts} races in a row; try again later`, {
          key: CATALOG_KEY,
          cause: err,
        });
      }
      await policy.sleep(backoffDelay(attempt, policy, policy.random()));
      const fresh = await readCatalog(store);
      if (!fresh) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${store.location}`, { key: CATALOG_KEY });
      cur = fresh;
    }
  }
}
