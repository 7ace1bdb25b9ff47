/**
 * A read replica: a base snapshot of a database read from its store, plus a
 * tail of the changes committed after it, followed from a log source.
 *
 * State and invariants:
 * - The base is the catalog at checkpoint B (every table's manifest: data
 *   files and deletion bitmaps holding exactly the writes with seq <= B).
 * - The tail holds, per table and primary key, the newest change with
 *   seq > B (a row, or a tombstone for a delete), in a Memtable: an older seq
 *   never overwrites a newer one. Reads are the engine's own memtable-over-
 *   files reads, so a tail delete is authoritative over the base.
 * - The changes of one seq are applied together, synchronously, and only
 *   then does `visibleSeq` move to it: a reader never sees half a
 *   transaction nor a seq whose data is absent.
 * - A rebase reads a newer catalog B' and keeps only the tail entries with
 *   seq > B'. Entries at or below B' are in the new base's files (deletes
 *   included, as masked rows), so nothing is resurrected; entries above it
 *   stay, so nothing is lost. A base older than the current one is refused.
 * - Hot swap builds the whole new state (manifests fetched, new files'
 *   footers loaded, tail copied) beside the old one and installs it with one
 *   assignment; readers take the state object once per read, so they never
 *   wait and never mix the two. A plain `rebase()` makes readers wait.
 * - advance, rebase and hot swap are serialized; reads run concurrently.
 * Nothing here writes to the store.
 */
import type { Change, Database } from '../db/database.js';
import type { CatalogState } from '../db/catalog.js';
import { readCatalog } from '../db/catalog.js';
import { FloeError, isFloeError } from '../errors.js';
import type { TableSchema } from '../format/schema.js';
import { keyOf, schemaFromJson } from '../format/schema.js';
import type { ObjectStore } from '../store/types.js';
import { openStore } from '../store/uri.js';
import { FileCache } from '../table/files.js';
import type { Manifest } from '../table/manifest.js';
import { decodeManifest } from '../table/manifest.js';
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
}

interface TableState {
  readonly name: string;
  readonly id: string;
  readonly manifest: Manifest;
  readonly manifestKey: string;
  readonly schema: TableSchema;
  readonly pk: readonly string[] | null;
  readonly tail: Memtable;
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

  private constructor(store: ObjectStore, owns: boolean, source: LogSource, state: State, options: ReplicaOptions) {
    this.store = store;
    this.#ownsStore = owns;
    this.source = source;
    this.#files = new FileCache(store);
    this.#now = options.now ?? Date.now;
    this.#timeoutMs = options.rebaseTimeoutMs ?? 30_000;
    this.#state = state;
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
      return new Replica(store, owns, r0, state, options);
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
    return {
      store: this.store,
      files: this.#files,
      name,
      manifest: t.manifest,
      manifestKey: t.manifestKey,
      schema: t.schema,
      primaryKey: t.pk,
      mem: [t.tail.snapshot(st.visibleSeq)],
      seq: st.visibleSeq,
    };
  }

  /** Apply every change the source holds now (up to its bound). LOG_GAP when the log moved past us. */
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
          await this.#rebase(true);
        }
      }
    });
  }

  /** Move to the newest base; readers wait while it is built. */
  rebase(): Promise<void> {
    return this.#serial(async () => {
      const p = this.#rebase(false);
      this.#gate = p;
      try {
        await p;
      } finally {
        this.#gate = null;
      }
    });
  }

  /** Build the newest base beside the current state and swap atomically; TIMEOUT leaves the old state. */
  rebaseHotSwap(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.#serial(() => this.#rebase(true, options.timeoutMs));
  }

  /** Figures about the replica; asks the source for its newest seq (a log listing for a store source). */
  async stats(): Promise<ReplicaStats> {
    this.#latestSeq = Math.max(this.#latestSeq, await this.source.latestSeq());
    const st = this.#state;
    let tail = 0;
    for (const t of st.tables.values()) tail += t.tail.size;
    return {
      baseSeq: st.baseSeq,
      visibleSeq: st.visibleSeq,
      tailLength: tail,
      latestSeq: this.#latestSeq,
      lagSeqs: Math.max(0, this.#latestSeq - st.visibleSeq),
      lagMs: Math.max(0, this.#now() - this.#freshAt),
      rebases: this.#rebases,
      gapsRecovered: this.#gaps,
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
    let applied = 0;
    let group: Change[] = [];
    const flushGroup = async (): Promise<void> => {
      if (group.length === 0) return;
      const g = group;
      group = [];
      await this.#applyGroup(g);
      applied += g.length;
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

  async #applyGroup(changes: readonly Change[]): Promise<void> {
    const seq = changes[0]!.seq;
    // Learn tables created after the base (async) before applying anything (sync).
    for (const c of changes) if (!this.#state.tables.has(c.table)) await this.#learnTable(c.table);
    const st = this.#state;
    for (const c of changes) {
      const t = st.tables.get(c.table);
      if (!t) continue; // dropped since: nothing to show
      const key = t.pk ? keyOf(c.key, t.pk) : keyOfId(c.id ?? 0n);
      t.tail.apply({ key, seq, id: c.id ?? 0n, row: c.op === 'upsert' ? c.row : null, bytes: 64 });
    }
    if (seq > st.visibleSeq) st.visibleSeq = seq;
  }

  /**
   * A table created after the base: every point write to it has a seq above
   * the base (it did not exist at the checkpoint), so it starts with no
   * files and the tail supplies its rows.
   */
  async #learnTable(name: string): Promise<void> {
    const cat = await readCatalog(this.store);
    const e = cat?.catalog.tables[name];
    if (!e) return;
    const m = await fetchManifest(this.store, e.manifest);
    this.#state.tables.set(name, tableState(name, e.id, { ...m, files: [] }, e.manifest, null));
  }

  async #rebase(hot: boolean, timeoutMs = this.#timeoutMs): Promise<void> {
    const deadline = this.#now() + timeoutMs;
    const cat = await readCatalog(this.store);
    if (!cat) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${this.store.location}`);
    const old = this.#state;
    if (cat.catalog.version < old.catalogVersion) return; // an older catalog than ours: nothing to gain
    const next = await buildState(this.store, cat, old, hot ? { files: this.#files, deadline, now: this.#now } : null);
    if (this.#now() > deadline) throw new FloeError('TIMEOUT', `hot-swap rebase of replica ${this.store.location} exceeded ${timeoutMs} ms; the old state stays`);
    this.#state = next;
    this.#rebases++;
  }
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
    const m = await fetchManifest(store, e.manifest);
    const prev = old?.tables.get(name);
    tables.set(name, tableState(name, e.id, m, e.manifest, prev && prev.id === e.id ? { tail: prev.tail, above: base } : null));
    if (warm) {
      const had = new Set(prev?.manifest.files.map((f) => f.key) ?? []);
      for (const f of m.files) {
        if (warm.now() > warm.deadline) throw new FloeError('TIMEOUT', `hot-swap rebase of replica ${store.location} ran out of time loading ${f.key}`);
        if (!had.has(f.key)) {
          await warm.files.file(f);
          // Footer decoding is CPU work on this thread: let waiting reads run between files.
          await new Promise((res) => setImmediate(res));
        }
      }
    }
  }
  const visibleSeq = Math.max(base, old?.visibleSeq ?? 0);
  return { catalogVersion: cat.catalog.version, baseSeq: base, visibleSeq, tables };
}

function tableState(name: string, id: string, m: Manifest, key: string, carry: { tail: Memtable; above: number } | null): TableState {
  const tail = new Memtable();
  if (carry) for (const e of carry.tail.versions()) if (e.seq > carry.above) tail.apply(e);
  return { name, id, manifest: m, manifestKey: key, schema: schemaFromJson(m.schema), pk: m.primaryKey, tail };
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
