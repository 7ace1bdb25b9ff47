/**
 * A read replica: a base snapshot of a database read from its store, plus a
 * tail of the changes committed after it, followed from a log source.
 *
 * State and invariants:
 * - The base is the catalog at checkpoint B (every table's manifest: data
 *   files and deletion bitmaps holding exactly the writes with seq <= B).
 * - The tail holds, per table and primary key, the changes with seq > B (a
 *   row, or a tombstone for a delete) in a Memtable: an older seq never
 *   overwrites a newer one. Reads are the engine's own memtable-over-files
 *   reads, so a tail delete is authoritative over the base.
 * - The changes of one seq are applied together, synchronously, and only
 *   then does `visibleSeq` move to it: a reader never sees half a
 *   transaction nor a seq whose data is absent.
 * - A rebase moves to a newer catalog B' (never an older one). Tail entries
 *   at or below B' are in the new base's files (deletes as masked rows,
 *   bulk changes such as appends, deleteWhere and updateWhere as files and
 *   bitmaps), so reads of the new state ignore them: nothing is resurrected
 *   and nothing a bulk change removed reappears. Entries above B' stay, so
 *   nothing is lost.
 * - The swap costs readers O(1): the new state is built beside the old one
 *   (changed manifests fetched; footers of new files and new deletion
 *   bitmaps loaded, yielding between objects) and shares the old tail, with
 *   B' as a seq floor below which reads ignore entries. It is installed with one
 *   assignment, and readers take the state object once per read, so they
 *   never mix two states. Afterwards the dead entries are pruned by copying
 *   the live ones into a fresh tail in bounded chunks with yields between
 *   them (nothing to copy when the new base holds every applied seq), then
 *   installing that (same contents for every read) the same way.
 *   A plain `rebase()` makes readers wait while the new state is built.
 * - Every advance first checks the catalog (a HEAD, then a GET only when
 *   its etag changed): bulk commits publish a catalog version without a log
 *   record, so a moved catalog is hot-swapped to before the tail is applied.
 *   A change to a table the base does not know (created after the check)
 *   triggers the same swap first; a seq the new base already holds is skipped.
 * - A hot swap that takes longer than its timeout fails with TIMEOUT and
 *   leaves the old state in place.
 * - advance, rebase, hot swap and pruning are serialized (one at a time);
 *   reads run concurrently with all of them. Nothing here writes to the
 *   store and nothing is durable: a replica that dies is simply reopened.
 */
import type { Change, Database } from '../db/database.js';
import type { CatalogState } from '../db/catalog.js';
import { CATALOG_KEY, readCatalog } from '../db/catalog.js';
import { FloeError, isFloeError } from '../errors.js';
import type { TableSchema } from '../format/schema.js';
import { keyOf, schemaFromJson } from '../format/schema.js';
import type { ObjectStore } from '../store/types.js';
import { openStore } from '../store/uri.js';
import { FileCache } from '../table/files.js';
import type { Manifest } from '../table/manifest.js';
import { decodeManifest } from '../table/manifest.js';
import type { MemEntry, MemSnapshot } from '../table/memtable.js';
import { Memtable } from '../table/memtable.js';
import { ReadonlyTable } from '../table/table.js';
import type { TableView } from '../table/view.js';
import type { LogSource } from './source.js';
import { inProcessSource, storeSource } from './source.js';

export interface ReplicaOptions {
  /** Where the tail comes from (default: the store's log, or in-process for a Database). */
  readonly source?: LogSource;
  /** Hot-swap rebase timeout (default 30 s). */
  readonly rebaseTimeoutMs?: number;
  /** Injected clock (ms). */
  readonly now?: () => number;
  readonly s3Credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export interface ReplicaStats {
  readonly baseSeq: number;
  readonly visibleSeq: number;
  /** Entries in the tail (keys changed since the base, across tables). */
  readonly tailLength: number;
  /** Newest seq the source reports (asked by `stats()`). */
  readonly latestSeq: number;
  readonly lagSeqs: number;
  /** How old the replica's freshness point is: every change committed before it is applied. */
  readonly lagMs: number;
  readonly rebases: number;
  readonly gapsRecovered: number;
  /** Version of the catalog the base was read from. */
  readonly catalogVersion: number;
}

interface TableState {
  readonly name: string;
  readonly id: string;
  readonly manifest: Manifest;
  readonly manifestKey: string;
  readonly schema: TableSchema;
  readonly pk: readonly string[] | null;
  readonly tail: Memtable;
  /** Tail entries with seq <= floor are in the base files: reads ignore them (0: the tail holds none). */
  readonly floor: number;
}

interface State {
  readonly catalogVersion: number;
  readonly baseSeq: number;
  visibleSeq: number;
  readonly tables: Map<string, TableState>;
}

export class Replica {
  readonly store: ObjectStore;
  readonly source: LogSource;
  readonly #ownsStore: boolean;
  readonly #files: FileCache;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  #state: State;
  #lock: Promise<unknown> = Promise.resolve();
  #gate: Promise<unknown> | null = null;
  #latestSeq = 0;
  #freshAt: number;
  #rebases = 0;
  #gaps = 0;
  #closed = false;
  /** Etag of the catalog last read: an unchanged HEAD means no catalog move. */
  #catalogEtag: string;

  private constructor(store: ObjectStore, owns: boolean, source: LogSource, state: State, etag: string, options: ReplicaOptions) {
    this.store = store;
    this.#ownsStore = owns;
    this.source = source;
    this.#files = new FileCache(store);
    this.#now = options.now ?? Date.now;
    this.#timeoutMs = options.rebaseTimeoutMs ?? 30_000;
    this.#state = state;
    this.#catalogEtag = etag;
    this.#latestSeq = state.visibleSeq;
    this.#freshAt = this.#now();
  }

  static async open(target: string | ObjectStore | Database, options: ReplicaOptions = {}): Promise<Replica> {
    let store: ObjectStore;
    let owns = false;
    let source = options.source;
    if (typeof target === 'string') {
      store = await openStore(target, { s3Credentials: options.s3Credentials });
      owns = true;
    } else if ('_internals' in target) {
      store = target.store;
      source ??= inProcessSource(target);
    } else {
      store = target;
    }
    try {
      const r0 = source ?? storeSource(store);
      const cat = await readCatalog(store);
      if (!cat) throw new FloeError('NOT_A_DATABASE', `no floe database at ${store.location}`);
      const state = await buildState(store, cat, null, null);
      return new Replica(store, owns, r0, state, cat.etag, options);
    } catch (err) {
      if (owns) await store.close();
      throw err;
    }
  }

  get visibleSeq(): number {
    return this.#state.visibleSeq;
  }
  get baseSeq(): number {
    return this.#state.baseSeq;
  }

  listTables(): string[] {
    return [...this.#state.tables.keys()].sort();
  }

  /** A read handle on a table; each read sees one consistent replica state. */
  table(name: string): ReadonlyTable {
    return new ReadonlyTable(name, async () => {
      this.#open();
      if (this.#gate) await this.#gate.catch(() => undefined); // the rebase's own caller sees its error
      return this.#view(name);
    });
  }

  #view(name: string): TableView {
    const st = this.#state;
    const t = st.tables.get(name);
    if (!t) throw new FloeError('NOT_FOUND', `no table "${name}" in replica of ${this.store.location} (tables: ${this.listTables().join(', ') || 'none'})`);
    const snap = t.tail.snapshot(st.visibleSeq);
    return {
      store: this.store,
      files: this.#files,
      name,
      manifest: t.manifest,
      manifestKey: t.manifestKey,
      schema: t.schema,
      primaryKey: t.pk,
      mem: [t.floor > 0 ? aboveFloor(snap, t.floor) : snap],
      seq: st.visibleSeq,
    };
  }

  /** Catalog version of the current base. */
  get catalogVersion(): number {
    return this.#state.catalogVersion;
  }

  /**
   * Follow the catalog (bulk commits) and apply every change the source
   * holds now (up to its bound). LOG_GAP when the log moved past us.
   */
  advance(): Promise<number> {
    return this.#serial(() => this.#advance());
  }

  /**
   * Follow the source; on LOG_GAP, hot-swap to a fresh base (which covers
   * the truncated records) and follow again. Returns the applied count.
   */
  advanceOrRecover(): Promise<number> {
    return this.#serial(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.#advance();
        } catch (err) {
          if (!isFloeError(err, 'LOG_GAP') || attempt >= 5) throw err;
          this.#gaps++;
          await this.#swap(true, this.#timeoutMs, null);
          await this.#pruneTails();
        }
      }
    });
  }

  /** Move to the newest base; readers wait while it is built. */
  rebase(): Promise<void> {
    return this.#serial(async () => {
      const p = this.#swap(false, this.#timeoutMs, null);
      this.#gate = p;
      try {
        await p;
      } finally {
        this.#gate = null;
      }
      await this.#pruneTails();
    });
  }

  /**
   * Build the newest base beside the current state and swap atomically, then
   * prune the tail in chunks; TIMEOUT (building took longer than `timeoutMs`)
   * leaves the old state.
   */
  rebaseHotSwap(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.#serial(async () => {
      await this.#swap(true, options.timeoutMs ?? this.#timeoutMs, null);
      await this.#pruneTails();
    });
  }

  /** Figures about the replica; asks the source for its newest seq (one poll of the log for a store source). */
  async stats(): Promise<ReplicaStats> {
    this.#latestSeq = Math.max(this.#latestSeq, await this.source.latestSeq());
    const st = this.#state;
    let tail = 0;
    for (const t of st.tables.values()) tail += t.floor > 0 ? liveEntries(t) : t.tail.size;
    return {
      baseSeq: st.baseSeq,
      visibleSeq: st.visibleSeq,
      tailLength: tail,
      latestSeq: this.#latestSeq,
      lagSeqs: Math.max(0, this.#latestSeq - st.visibleSeq),
      lagMs: Math.max(0, this.#now() - this.#freshAt),
      rebases: this.#rebases,
      gapsRecovered: this.#gaps,
      catalogVersion: st.catalogVersion,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#lock.catch(() => undefined); // its caller got the error
    await this.source.close();
    if (this.#ownsStore) await this.store.close();
  }

  #open(): void {
    if (this.#closed) throw new FloeError('CLOSED', `replica of ${this.store.location} is closed`);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    this.#open();
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined); // ordering only; `run` carries the outcome to its caller
    return run;
  }

  async #advance(): Promise<number> {
    const startedAt = this.#now();
    await this.#followCatalog();
    let applied = 0;
    let group: Change[] = [];
    const flushGroup = async (): Promise<void> => {
      if (group.length === 0) return;
      const g = group;
      group = [];
      applied += await this.#applyGroup(g);
    };
    for await (const c of this.source.stream(this.#state.visibleSeq)) {
      if (group.length > 0 && c.seq !== group[0]!.seq) await flushGroup();
      if (c.seq <= this.#state.visibleSeq) continue; // already applied (a source may resend)
      group.push(c);
    }
    await flushGroup();
    this.#freshAt = startedAt;
    this.#latestSeq = Math.max(this.#latestSeq, this.#state.visibleSeq);
    return applied;
  }

  /**
   * Bulk commits (append, load, deleteWhere/updateWhere, compaction, schema
   * changes) and flushes move the catalog without a log record. One HEAD
   * tells whether it moved since we last read it; if so, hot-swap to it.
   * Its checkpoint covers every point write the bulk commit could have
   * overtaken (the engine flushes before publishing), so the tail applied
   * afterwards continues exactly where the new base ends.
   */
  async #followCatalog(): Promise<void> {
    const info = await this.store.head(CATALOG_KEY);
    if (!info) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${this.store.location}`, { key: CATALOG_KEY, backend: this.store.location });
    if (info.etag === this.#catalogEtag) return;
    const cat = await readCatalog(this.store);
    if (!cat) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${this.store.location}`, { key: CATALOG_KEY, backend: this.store.location });
    await this.#swap(true, this.#timeoutMs, cat);
    await this.#pruneTails();
  }

  /** Apply the changes of one seq; returns how many were applied. */
  async #applyGroup(changes: readonly Change[]): Promise<number> {
    const seq = changes[0]!.seq;
    if (changes.some((c) => !this.#state.tables.has(c.table))) {
      // A table our base does not know (created after it): move to the newest
      // catalog first, which knows every table created so far, files of bulk
      // commits to it included. Its checkpoint may already hold this seq.
      await this.#swap(true, this.#timeoutMs, null);
      await this.#pruneTails();
      if (seq <= this.#state.visibleSeq) return 0;
    }
    const st = this.#state;
    let n = 0;
    for (const c of changes) {
      const t = st.tables.get(c.table);
      if (!t) continue; // dropped since: nothing to show
      const key = t.pk ? keyOf(c.key, t.pk) : keyOfId(c.id ?? 0n);
      t.tail.apply({ key, seq, id: c.id ?? 0n, row: c.op === 'upsert' ? c.row : null, bytes: 64 });
      n++;
    }
    if (seq > st.visibleSeq) st.visibleSeq = seq;
    return n;
  }

  /**
   * Build the state of the newest catalog (or `given`) beside the current
   * one and install it with one assignment. An older or equal catalog
   * changes nothing.
   */
  async #swap(hot: boolean, timeoutMs: number, given: CatalogState | null): Promise<void> {
    const deadline = this.#now() + timeoutMs;
    const timeout = (what: string): FloeError =>
      new FloeError('TIMEOUT', `hot-swap rebase of replica ${this.store.location} exceeded ${timeoutMs} ms ${what}; the old state stays`, { backend: this.store.location });
    const cat = given ?? (await readCatalog(this.store));
    if (!cat) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${this.store.location}`, { key: CATALOG_KEY, backend: this.store.location });
    if (this.#now() > deadline) throw timeout('reading the catalog');
    const old = this.#state;
    if (cat.catalog.version <= old.catalogVersion) {
      this.#catalogEtag = cat.etag;
      return; // not newer than ours: nothing to gain
    }
    const next = await buildState(this.store, cat, old, hot ? { files: this.#files, deadline, now: this.#now } : null);
    if (this.#now() > deadline) throw timeout('building the new state');
    if (this.#state !== old) throw new FloeError('INVARIANT_VIOLATION', `replica of ${this.store.location}: state changed during a serialized rebase`);
    this.#state = next;
    this.#catalogEtag = cat.etag;
    this.#rebases++;
  }

  /**
   * Drop tail entries at or below each table's floor: copy the live ones
   * into a fresh Memtable, yielding to readers every PRUNE_CHUNK entries,
   * then install a state with the fresh tails (reads see the same rows
   * before and after). Serialized with advance, so no change is applied
   * while copying and none can be lost.
   */
  async #pruneTails(): Promise<void> {
    const st = this.#state;
    const fresh = new Map<string, TableState>();
    let n = 0;
    for (const t of st.tables.values()) {
      if (t.floor === 0) continue;
      const tail = new Memtable();
      // The usual case after a flush: the base holds everything applied, so nothing is copied.
      if (t.tail.maxSeq > t.floor) {
        for (const e of t.tail.versions()) {
          if (e.seq > t.floor) tail.apply(e);
          if (++n % PRUNE_CHUNK === 0) await yieldToReaders();
        }
      }
      fresh.set(t.name, { ...t, tail, floor: 0 });
    }
    if (fresh.size === 0) return;
    if (this.#state !== st) throw new FloeError('INVARIANT_VIOLATION', `replica of ${this.store.location}: state changed while its tail was pruned`);
    const tables = new Map<string, TableState>();
    for (const [name, t] of st.tables) tables.set(name, fresh.get(name) ?? t);
    this.#state = { catalogVersion: st.catalogVersion, baseSeq: st.baseSeq, visibleSeq: st.visibleSeq, tables };
  }
}

/** Tail entries visited between yields while pruning (about a millisecond of work on this machine). */
const PRUNE_CHUNK = 1024;

function yieldToReaders(): Promise<void> {
  return new Promise((res) => setImmediate(res));
}

/** A tail snapshot that hides entries at or below `floor` (they are in the base files). */
function aboveFloor(snap: MemSnapshot, floor: number): MemSnapshot {
  // Versions are in seq order, so when the newest one within the bound is at
  // or below the floor, every one is: the key has no live tail entry.
  const get = (key: string): MemEntry | undefined => {
    const e = snap.get(key);
    return e && e.seq > floor ? e : undefined;
  };
  let cached: MemEntry[] | null = null;
  return {
    maxSeq: snap.maxSeq,
    size: snap.size,
    get,
    has: (key) => get(key) !== undefined,
    entries: () => (cached ??= snap.entries().filter((e) => e.seq > floor)),
  };
}

function liveEntries(t: TableState): number {
  let n = 0;
  for (const e of t.tail.snapshot().entries()) if (e.seq > t.floor) n++;
  return n;
}

async function buildState(
  store: ObjectStore,
  cat: CatalogState,
  old: State | null,
  warm: { files: FileCache; deadline: number; now: () => number } | null,
): Promise<State> {
  const base = cat.catalog.checkpointLsn;
  const tables = new Map<string, TableState>();
  for (const [name, e] of Object.entries(cat.catalog.tables)) {
    const prev = old?.tables.get(name);
    const same = prev && prev.id === e.id ? prev : null;
    // Manifests are immutable: an unchanged key needs no GET.
    const m = same && same.manifestKey === e.manifest ? same.manifest : await fetchManifest(store, e.manifest);
    // The new state shares the table's tail; the new checkpoint is its floor.
    tables.set(name, same ? tableState(name, e.id, m, e.manifest, same.tail, Math.max(base, same.floor)) : tableState(name, e.id, m, e.manifest, new Memtable(), 0));
    if (warm) {
      // Load what reads of the new files need first, while readers still use the
      // old state: footers of new files and new deletion bitmaps. Decoding is
      // CPU work on this thread: yield between objects.
      const hadFiles = new Set(prev?.manifest.files.map((f) => f.key) ?? []);
      const hadDeletes = new Set(prev?.manifest.files.map((f) => f.deletes?.key ?? '') ?? []);
      for (const f of m.files) {
        if (warm.now() > warm.deadline) throw new FloeError('TIMEOUT', `hot-swap rebase of replica ${store.location} ran out of time loading ${f.key}`, { key: f.key, backend: store.location });
        if (!hadFiles.has(f.key)) {
          await warm.files.file(f);
          await yieldToReaders();
        }
        if (f.deletes && !hadDeletes.has(f.deletes.key)) {
          await warm.files.deleted(f);
          await yieldToReaders();
        }
      }
    }
  }
  const visibleSeq = Math.max(base, old?.visibleSeq ?? 0);
  return { catalogVersion: cat.catalog.version, baseSeq: base, visibleSeq, tables };
}

function tableState(name: string, id: string, m: Manifest, key: string, tail: Memtable, floor: number): TableState {
  // A table the base does not know yet has an empty tail: no floor needed.
  return { name, id, manifest: m, manifestKey: key, schema: schemaFromJson(m.schema), pk: m.primaryKey, tail, floor: tail.size === 0 ? 0 : floor };
}

async function fetchManifest(store: ObjectStore, key: string): Promise<Manifest> {
  const { bytes } = await store.get(key);
  return decodeManifest(bytes, key);
}

function keyOfId(id: bigint): string {
  return id.toString(36).padStart(13, '0');
}

/** `floe.replica(uri | store | db, options)`: open a replica at the newest base. */
export function replica(target: string | ObjectStore | Database, options: ReplicaOptions = {}): Promise<Replica> {
  return Replica.open(target, options);
}
