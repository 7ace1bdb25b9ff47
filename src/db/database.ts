/**
 * A floe database: the catalog of tables, the write-ahead log, the
 * memtables, flushing, and the commit point every table change goes
 * through.
 *
 * Durability and visibility:
 * - A point write (upsert/delete/transaction) is one log record. It is
 *   durable when the log acknowledges it (group commit), and only then is it
 *   applied to the memtable; `visibleSeq` advances after the apply, so a
 *   reader never sees a seq whose data is absent.
 * - A flush freezes the memtables, writes their rows as data files and the
 *   bitmaps that mask older versions, and publishes every touched table plus
 *   the new log checkpoint in ONE catalog CAS. Only after that CAS does it
 *   truncate the log through the checkpoint. A crash anywhere before the CAS
 *   leaves unreferenced objects (collected by `gc`) and the log intact; a
 *   crash after it leaves log segments that replay skips.
 * - A bulk append publishes its files by catalog CAS too; its rows are
 *   ordered at the log checkpoint current when it commits.
 *
 * Opening read-write claims the log writer (a second writer fences the
 * first) and replays the log past the catalog checkpoint into memtables.
 * Opening read-only claims nothing and writes nothing: it reads the catalog
 * and replays the log tail into private memtables, so it sees every write
 * acknowledged before it opened (or last refreshed).
 */
import { ulid } from 'ulid';
import { FloeError, asError, isFloeError } from '../errors.js';
import type { Row, TableWrite } from '../format/logrecord.js';
import { decodeLogRecord, encodeLogRecord } from '../format/logrecord.js';
import type { SchemaInput, TableSchema } from '../format/schema.js';
import { defaultValue, keyOf, normalizeSchema, schemaFromJson, schemaToJson } from '../format/schema.js';
import type { LogWriter } from '../log/index.js';
import { openLogWriter, readLog } from '../log/index.js';
import type { FailpointHook } from '../store/failpoints.js';
import { NO_FAILPOINTS } from '../store/failpoints.js';
import type { ObjectStore } from '../store/types.js';
import { CachedStore } from '../store/cache.js';
import { openStore } from '../store/uri.js';
import { FileCache } from '../table/files.js';
import type { DataFileEntry, DeletionRef, Manifest } from '../table/manifest.js';
import { MANIFEST_FORMAT, decodeManifest, encodeManifest, manifestKey, nextManifest } from '../table/manifest.js';
import { Memtable } from '../table/memtable.js';
import type { AppendInput, ManifestEdit, TableHost } from '../table/table.js';
import { Table } from '../table/table.js';
import type { TableView } from '../table/view.js';
import type { WriteContext } from '../table/write.js';
import { makeProbe, supersede, writeDataFile } from '../table/write.js';
import type { Catalog, CatalogState, RetryPolicy } from './catalog.js';
import { DEFAULT_RETRY, createOrReadCatalog, readCatalog, updateCatalog } from './catalog.js';
import type { GcResult } from './gc.js';
import type { HistoryEntry, Snapshot } from './history.js';
import { checkoutCommit, listHistory } from './history.js';
import type { CommitResult, CompactTablesResult, LoadOptions, TableAlteration } from './multitable.js';
import { alterTables as alterTablesImpl, compactTables as compactTablesImpl, dropTables, load as loadTables } from './multitable.js';
import type { AutoCompactPolicy, CompactOptions } from '../table/compact.js';
import { DEFAULT_AUTO_COMPACT, autoCompactOptions, compactTable, compactionDue } from '../table/compact.js';
import type { IntentReport, RecoverOptions } from './recovery.js';
import { pendingRecovery, recover as recoverIntents } from './recovery.js';
import { collectGarbage } from './gc.js';
import { recoverMutations as recoverMutationsImpl } from '../table/mutate.js';

export interface OpenOptions {
  /** Open without claiming the log writer; writes are refused. */
  readonly readOnly?: boolean;
  /**
   * Claim the log writer for point writes (default true). With false, the
   * process may still create tables and bulk-append (many such processes can
   * share a database), while point writes are refused; reads see the log
   * tail as a read-only open does.
   */
  readonly logWriter?: boolean;
  /** Flush when memtables hold this many bytes (default 64 MiB). Writers wait at twice this. */
  readonly memtableBytes?: number;
  /** Bytes of data-file cache (default 64 MiB; a quarter raw byte ranges, the rest decoded pages; 0 disables). */
  readonly cacheBytes?: number;
  /** Rows per Parquet row group (default 16,384). */
  readonly rowGroupRows?: number;
  /** How stale the in-memory catalog may get before a read re-reads it (default 1000 ms). */
  readonly catalogMaxAgeMs?: number;
  /** Log tuning (group size, delay, durability) passed to the log writer. */
  readonly log?: Record<string, unknown>;
  /** Failpoints for crash tests. */
  readonly failpoints?: FailpointHook;
  /** Injected clock (ms since epoch). */
  readonly now?: () => number;
  /** Catalog retry policy (tests inject randomness and sleep). */
  readonly retry?: RetryPolicy;
  /** S3 credentials when the URI is s3:// and the environment has none. */
  readonly s3Credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * Keep log records a flush has checkpointed, for change-feed consumers and
   * replicas that lag: the newest `minSeqs` seqs, and records committed less
   * than `maxAgeMs` ago. A low-water mark: a later flush truncates them.
   */
  readonly logRetention?: LogRetention;
  /**
   * Background compaction after commits (default on for read-write opens):
   * `false` turns it off; an object overrides parts of the policy (see
   * AutoCompactPolicy: minSmallFiles 8, smallFileRows 32,768,
   * deletedFraction 0.3, maxRows 1,000,000 per run).
   */
  readonly autoCompact?: boolean | Partial<AutoCompactPolicy>;
}

export interface LogRetention {
  readonly minSeqs?: number;
  readonly maxAgeMs?: number;
}

/** One committed change as the change feed reports it. */
export interface Change {
  readonly seq: number;
  /** Table name (as of the reader's catalog). */
  readonly table: string;
  readonly op: 'upsert' | 'delete';
  /** Primary-key columns of the row; `{ _id }` for tables without a key. */
  readonly key: Row;
  /** The row written (user columns); null for a delete. */
  readonly row: Row | null;
  /** `_id` of an upserted row; null for a delete. */
  readonly id: bigint | null;
}

/**
 * The changes of one decoded log record, given table id -> { name, primary
 * key } (writes to tables not in the map were dropped and are skipped).
 */
export function changesOfRecord(writes: readonly TableWrite[], seq: number, tables: ReadonlyMap<string, { name: string; pk: readonly string[] | null }>): Change[] {
  const out: Change[] = [];
  for (const w of writes) {
    const t = tables.get(w.table);
    if (!t) continue;
    if (w.kind === 'upsert') {
      w.rows.forEach((row, i) => {
        const id = w.ids[i]!;
        const key: Row = t.pk ? Object.fromEntries(t.pk.map((c) => [c, row[c]])) : { _id: id };
        out.push({ seq, table: t.name, op: 'upsert', key, row, id });
      });
    } else {
      for (const k of w.keys) out.push({ seq, table: t.name, op: 'delete', key: k, row: null, id: null });
    }
  }
  return out;
}

/**
 * How far a flush at `checkpoint` may truncate the log under `retention`:
 * never past the checkpoint, keeping the newest `minSeqs` seqs below
 * `latestSeq` and every seq committed after `now - maxAgeMs` (`marks` are
 * (seq, time) samples, oldest first: every seq <= mark.seq was committed by
 * mark.at). Pure.
 */
export function retentionMark(checkpoint: number, latestSeq: number, retention: LogRetention, marks: ReadonlyArray<{ seq: number; at: number }>, now: number): number {
  let through = checkpoint;
  if (retention.minSeqs !== undefined) through = Math.min(through, latestSeq - retention.minSeqs);
  if (retention.maxAgeMs !== undefined) {
    let aged = 0;
    for (const m of marks) if (m.at <= now - retention.maxAgeMs) aged = Math.max(aged, m.seq);
    through = Math.min(through, aged);
  }
  return Math.max(0, through);
}

export interface CreateTableOptions {
  readonly primaryKey?: string | readonly string[];
}

/**
 * The engine surface that modules layered on a database (multi-table
 * commits and recovery, mutations, replicas, the server) build on. Not part
 * of the public API: names may change between versions.
 */
export interface DbInternals {
  readonly store: ObjectStore;
  readonly failpoints: FailpointHook;
  readonly writeCtx: WriteContext;
  readonly files: FileCache;
  readonly readOnly: boolean;
  /** The log writer, when this process holds it. */
  readonly log: LogWriter | null;
  now(): number;
  newId(): string;
  /** The catalog state last read or written by this process. */
  catalog(): CatalogState;
  /** Re-read the catalog from the store. */
  refreshCatalog(): Promise<CatalogState>;
  /**
   * Move the catalog by CAS with bounded retry, serialized with this
   * process's other catalog changes; `mutate` runs against the freshest
   * catalog on each attempt and may throw to abandon.
   */
  casCatalog(mutate: (cat: Catalog, attempt: number) => Promise<Omit<Catalog, 'version' | 'format' | 'magic'> | null>): Promise<CatalogState>;
  /** A manifest by key (cached; manifests are immutable). */
  manifest(key: string): Promise<Manifest>;
  /** Write a manifest create-only under a fresh unique key; returns the key. */
  putManifest(m: Manifest, operation: string): Promise<string>;
  /** A consistent view of a table (with memtables when `withMem`). */
  view(name: string, withMem: boolean): Promise<TableView>;
  /** A view of the table state named by a catalog entry (no memtable). */
  viewOfManifest(name: string, manifestKey: string): Promise<TableView>;
  /** Flush memtables (log writer only; no-op otherwise). */
  flush(): Promise<void>;
  /** First `_id` of a freshly reserved span of n ids. */
  reserveIds(n: number): Promise<bigint>;
  /** Remember a manifest this process wrote under `key` (saves a GET later). */
  cacheManifest(key: string, m: Manifest): void;
  /**
   * Run `task` after the current operation, off its path (maintenance such
   * as moving history out of the catalog). Tasks run one at a time; close()
   * waits for them and reports the first failure.
   */
  background(what: string, task: () => Promise<unknown>): void;
  /** Resolves when every background task queued so far has run. */
  settled(): Promise<void>;
  /**
   * Run `fn` while no background compaction of this process runs (and
   * start none meanwhile): a multi-table commit fixes every table's expected
   * version up front, so a compaction published in between would make it
   * fail CAS_CONFLICT. Other processes' commits can still do that.
   */
  withoutCompaction<T>(fn: () => Promise<T>): Promise<T>;
}

interface TableMem {
  active: Memtable;
  frozen: Memtable | null;
}

const ID_SPAN = 1n << 16n;
const LOG_PREFIX = 'log/';

export class Database {
  readonly store: ObjectStore;
  readonly readOnly: boolean;
  readonly #ownsStore: boolean;
  readonly #fp: FailpointHook;
  readonly #now: () => number;
  readonly #retry: RetryPolicy;
  readonly #memtableBytes: number;
  readonly #catalogMaxAgeMs: number;
  readonly #files: FileCache;
  readonly #writeCtx: WriteContext;
  #log: LogWriter | null;
  #catalog: CatalogState;
  #catalogReadAt: number;
  readonly #manifests = new Map<string, Manifest>();
  readonly #mem = new Map<string, TableMem>();
  #visibleSeq = 0;
  #ids = { next: 0n, end: 0n };
  #catalogLock: Promise<unknown> = Promise.resolve();
  #flushing: Promise<void> | null = null;
  #backgroundError: unknown = null;
  #maintenance: Promise<void> = Promise.resolve();
  #maintenanceError: FloeError | null = null;
  #closed = false;
  readonly #host: TableHost;
  readonly #retention: LogRetention;
  readonly #autoCompact: AutoCompactPolicy | null;
  readonly #compactQueued = new Set<string>();
  /** Held by a background compaction run and by multi-table commits (see DbInternals.withoutCompaction). */
  #tableLock: Promise<unknown> = Promise.resolve();
  /** (seq, time) samples for age-based log retention; pruned as the log is truncated. */
  #retentionMarks: Array<{ seq: number; at: number }> = [];

  private constructor(
    store: ObjectStore,
    ownsStore: boolean,
    catalog: CatalogState,
    log: LogWriter | null,
    options: OpenOptions,
  ) {
    this.store = store;
    this.#ownsStore = ownsStore;
    this.readOnly = options.readOnly === true;
    this.#fp = options.failpoints ?? NO_FAILPOINTS;
    this.#now = options.now ?? Date.now;
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#memtableBytes = options.memtableBytes ?? 64 * 1024 * 1024;
    this.#catalogMaxAgeMs = options.catalogMaxAgeMs ?? 1000;
    this.#retention = checkRetention(options.logRetention);
    this.#autoCompact = autoCompactPolicy(options.autoCompact, this.readOnly);
    // Data-file reads go through a read-through cache of immutable ranges,
    // so repeated point reads and scans of hot files skip the store.
    const cacheBytes = options.cacheBytes ?? 64 * 1024 * 1024;
    // One budget: a quarter for raw byte ranges (footers, bitmaps, pages the
    // page reader does not decode), the rest for decoded pages.
    const rangeBytes = Math.floor(cacheBytes / 4);
    this.#files = new FileCache(rangeBytes > 0 ? new CachedStore(store, { maxBytes: rangeBytes }) : store, { cacheBytes: cacheBytes - rangeBytes });
    this.#writeCtx = {
      store,
      files: this.#files,
      failpoints: this.#fp,
      newId: () => ulid(this.#now()),
      rowGroupRows: options.rowGroupRows ?? 16_384,
    };
    this.#log = log;
    this.#catalog = catalog;
    this.#catalogReadAt = this.#now();
    this.#host = this.#makeHost();
  }

  /** Open (creating if absent, unless read-only) the database at `uri` or on `store`. */
  static async open(target: string | ObjectStore, options: OpenOptions = {}): Promise<Database> {
    // Bad options fail before anything is opened or claimed.
    checkRetention(options.logRetention);
    autoCompactPolicy(options.autoCompact, false);
    const owns = typeof target === 'string';
    let store: ObjectStore;
    try {
      store = typeof target === 'string' ? await openStore(target, { s3Credentials: options.s3Credentials, create: !options.readOnly }) : target;
    } catch (err) {
      if (options.readOnly && isFloeError(err, 'NOT_FOUND')) {
        throw new FloeError('NOT_A_DATABASE', `no floe database at ${typeof target === 'string' ? target : target.location} (a read-only open never creates one)`, { cause: err });
      }
      throw err;
    }
    try {
      const now = options.now ?? Date.now;
      let catalog: CatalogState | null;
      if (options.readOnly) {
        catalog = await readCatalog(store);
        if (!catalog) {
          throw new FloeError('NOT_A_DATABASE', `no floe database at ${store.location} (a read-only open never creates one)`);
        }
      } else {
        catalog = await createOrReadCatalog(store, now());
      }
      const log = options.readOnly || options.logWriter === false
        ? null
        : await openLogWriter(store, { ...(options.log ?? {}), prefix: LOG_PREFIX, failpoints: options.failpoints });
      const db = new Database(store, owns, catalog, log, options);
      if (log) await db.#claimWriter(log.generation);
      // Multi-table commit intents left by crashed writers (src/db/recovery.ts).
      if (!db.readOnly) await recoverIntents(db._internals, { mode: 'full' });
      await db.#replayLog();
      // Unfinished set-oriented mutations, oldest first (src/table/mutate.ts).
      if (!db.readOnly) await db.recoverMutations();
      return db;
    } catch (err) {
      if (owns) await store.close();
      throw err;
    }
  }

  // ---------------------------------------------------------------- catalog

  /** Names of the tables, sorted. */
  listTables(): string[] {
    return Object.keys(this.#catalog.catalog.tables).sort();
  }

  /** Highest log seq applied and visible to reads. */
  get visibleSeq(): number {
    return this.#visibleSeq;
  }

  async createTable(name: string, schema: SchemaInput, options: CreateTableOptions = {}): Promise<Table> {
    this.#writable('createTable');
    validateTableName(name);
    const normalized = normalizeSchema(schema);
    const pk = options.primaryKey === undefined ? null : typeof options.primaryKey === 'string' ? [options.primaryKey] : [...options.primaryKey];
    if (pk) {
      if (pk.length === 0) throw new FloeError('INVALID_ARGUMENT', `createTable "${name}": primaryKey must name at least one column`);
      for (const k of pk) {
        const c = normalized.columns.find((x) => x.name === k);
        if (!c) throw new FloeError('INVALID_ARGUMENT', `createTable "${name}": primary key column "${k}" is not in the schema`);
        if (typeof c.type !== 'string' || c.type === 'float32' || c.type === 'float64') {
          throw new FloeError('INVALID_ARGUMENT', `createTable "${name}": primary key column "${k}" has type ${JSON.stringify(c.type)}, which cannot be a key`);
        }
      }
      if (new Set(pk).size !== pk.length) throw new FloeError('INVALID_ARGUMENT', `createTable "${name}": duplicate primary key column`);
    }
    const tableId = ulid(this.#now());
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      tableId,
      name,
      version: 1,
      parent: null,
      schema: schemaToJson(normalized),
      schemaVersion: 1,
      primaryKey: pk,
      files: [],
      createdAt: this.#now(),
      operation: 'create',
    };
    const key = manifestKey(tableId, 1, ulid(this.#now()));
    await this.#withCatalog(async () => {
      if (this.#catalog.catalog.tables[name]) throw new FloeError('ALREADY_EXISTS', `table "${name}" already exists`);
      await this.#fp.hit('create.manifest.put.before', { key });
      await this.store.putIfAbsent(key, encodeManifest(manifest));
      this.#manifests.set(key, manifest);
      await this.#casCatalog(async (cat) => {
        if (cat.tables[name]) throw new FloeError('ALREADY_EXISTS', `table "${name}" already exists`);
        return { ...cat, tables: { ...cat.tables, [name]: { id: tableId, manifest: key, version: 1 } }, updatedAt: this.#now() };
      });
    });
    return new Table(name, tableId, this.#host);
  }

  /** A handle on an existing table; NOT_FOUND if there is none. */
  async table(name: string): Promise<Table> {
    await this.#freshCatalog();
    const e = this.#catalog.catalog.tables[name];
    if (!e) {
      throw new FloeError('NOT_FOUND', `no table "${name}" in ${this.store.location} (tables: ${this.listTables().join(', ') || 'none'})`);
    }
    return new Table(name, e.id, this.#host);
  }

  /** Remove a table from the catalog; its files are collected by gc. */
  async dropTable(name: string): Promise<void> {
    this.#writable('dropTable');
    const id = (await this._internals.refreshCatalog()).catalog.tables[name]?.id;
    if (!id) throw new FloeError('NOT_FOUND', `no table "${name}" to drop`);
    // Through the multi-table commit protocol (intent, catalog CAS, history entry).
    await dropTables(this._internals, [name]);
    this.#mem.delete(id);
  }

  /**
   * Atomic bulk load into several tables: every table's rows become visible
   * in one catalog CAS, or none do (crash-safe through a recovery intent).
   */
  async load(inputs: Readonly<Record<string, AppendInput>>, options: LoadOptions = {}): Promise<CommitResult> {
    this.#writable('load');
    return loadTables(this._internals, inputs, options);
  }

  /**
   * Schema changes of several tables in one atomic commit, e.g.
   * `alterTables({ a: { addColumns: [{ name: 'c', type: 'utf8' }] } })`.
   */
  async alterTables(changes: Readonly<Record<string, TableAlteration>>): Promise<CommitResult> {
    this.#writable('alterTables');
    return alterTablesImpl(this._internals, changes);
  }

  /** Compact several tables in one atomic commit (as `t.compact` each). */
  async compactTables(names: readonly string[], options: CompactOptions = {}): Promise<CompactTablesResult> {
    this.#writable('compactTables');
    return compactTablesImpl(this._internals, names, options);
  }

  /** Multi-table commits and recovery decisions, newest first. */
  async history(options: { limit?: number } = {}): Promise<HistoryEntry[]> {
    if (this.#closed) throw new FloeError('CLOSED', 'history: the database is closed');
    return listHistory(this._internals, options.limit ?? 100);
  }

  /** A read-only snapshot of every table as of a multi-table commit (an id from `history()`). */
  async checkout(commitId: string): Promise<Snapshot> {
    if (this.#closed) throw new FloeError('CLOSED', 'checkout: the database is closed');
    return checkoutCommit(this._internals, commitId);
  }

  /** Recover pending multi-table commit intents now (a read-write open already did). */
  async recover(options: RecoverOptions = {}): Promise<IntentReport[]> {
    this.#writable('recover');
    const reports = await recoverIntents(this._internals, options);
    await this.recoverMutations();
    return reports;
  }

  /**
   * Resume unfinished updateWhere/deleteWhere mutations, oldest first (also
   * run by a read-write open and by recover()). CORRUPT ones are reported,
   * never applied.
   */
  async recoverMutations(): Promise<{ resumed: string[]; corrupt: Array<{ id: string; error: FloeError }> }> {
    this.#writable('recoverMutations');
    // Re-read the catalog before concluding a table is gone (another process may have created it).
    return recoverMutationsImpl(this.#host, async (name) => (await this._internals.refreshCatalog()).catalog.tables[name] !== undefined);
  }

  /** Pending multi-table commit intents and what recovery would decide; changes nothing. */
  async pendingRecovery(): Promise<IntentReport[]> {
    if (this.#closed) throw new FloeError('CLOSED', 'pendingRecovery: the database is closed');
    return pendingRecovery(this._internals);
  }

  /** Re-read the catalog (and, read-only, the log tail) to see other processes' commits. */
  async refresh(): Promise<void> {
    const fresh = await readCatalog(this.store);
    if (!fresh) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${this.store.location}`);
    const advanced = fresh.catalog.checkpointLsn !== this.#catalog.catalog.checkpointLsn;
    if (fresh.catalog.version >= this.#catalog.catalog.version) this.#catalog = fresh;
    this.#catalogReadAt = this.#now();
    if (!this.#log && advanced) {
      this.#mem.clear();
      this.#visibleSeq = 0;
    }
    if (!this.#log) await this.#replayLog();
  }

  // ---------------------------------------------------------------- writes

  /**
   * Run `fn` with a transaction: every write it stages is committed as ONE
   * log record when `fn` resolves (all or nothing, also on replay). If `fn`
   * throws, nothing is written.
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    this.#writable('transaction');
    const tx = new Transaction(this);
    const result = await fn(tx);
    const writes = await tx.close();
    if (writes.length > 0) await this.#commitWrites(writes);
    return result;
  }

  /**
   * The committed changes with seq > `since`, in seq order, up to the seq
   * visible when called (`until`), so iterating ends even while writes go
   * on. Fails with LOG_GAP, naming the lowest seq the log still holds, when
   * the log no longer reaches back to `since + 1`.
   */
  async *changes(options: { since?: number; until?: number } = {}): AsyncGenerator<Change> {
    const since = options.since ?? 0;
    const until = options.until ?? this.#visibleSeq;
    if (!Number.isSafeInteger(since) || since < 0) throw new FloeError('INVALID_ARGUMENT', `changes: since must be a non-negative integer, got ${String(since)}`);
    if (!Number.isSafeInteger(until) || until < 0) throw new FloeError('INVALID_ARGUMENT', `changes: until must be a non-negative integer, got ${String(until)}`);
    if (this.#closed) throw new FloeError('CLOSED', 'changes: the database is closed');
    if (until <= since) return;
    // readLog's LOG_GAP names the lowest seq (= LSN) the log still holds.
    const snap = await readLog(this.store, { prefix: LOG_PREFIX, fromLsn: since + 1 });
    const tables = new Map<string, { name: string; pk: readonly string[] | null }>();
    for (const [name, e] of Object.entries(this.#catalog.catalog.tables)) tables.set(e.id, { name, pk: (await this.#manifest(e.manifest)).primaryKey });
    for await (const { lsn, record } of snap.entries) {
      if (lsn > until) return;
      for (const c of changesOfRecord(decodeLogRecord(record, lsn), lsn, tables)) yield c;
    }
  }

  /** Flush memtables to data files and checkpoint the log. */
  async flush(): Promise<void> {
    this.#writable('flush');
    if (!this.#log) return; // nothing of ours to flush: the log writer owns the memtables
    // Wait out a running flush, then flush what arrived since.
    while (this.#flushing) await this.#flushing.catch(() => undefined);
    this.#throwBackground();
    await this.#startFlush();
  }

  /**
   * Delete table objects that no published version references and that are
   * older than `graceMs` (default one hour): orphans of crashes and lost
   * races, and the objects of dropped tables.
   */
  async gc(options: { graceMs?: number; retainVersions?: number; retainMs?: number } = {}): Promise<GcResult> {
    this.#writable('gc');
    const graceMs = options.graceMs ?? 60 * 60 * 1000;
    if (!Number.isFinite(graceMs) || graceMs < 0) throw new FloeError('INVALID_ARGUMENT', 'gc: graceMs must be a non-negative number');
    const fresh = await readCatalog(this.store);
    if (!fresh) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${this.store.location}`);
    const heads = Object.values(fresh.catalog.tables).map((e) => e.manifest);
    // Version retention (compaction's replaced files): see VersionRetention in gc.ts; default keeps every version.
    const { retainVersions, retainMs } = options;
    for (const [k, v] of [['retainVersions', retainVersions], ['retainMs', retainMs]] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw new FloeError('INVALID_ARGUMENT', `gc: ${k} must be a positive integer`);
    }
    const retention = retainVersions === undefined && retainMs === undefined ? undefined : { versions: retainVersions, ms: retainMs };
    // Every commit snapshot that history can check out (history lists; gc lists anyway).
    const snapshots = (await listHistory(this._internals, Number.MAX_SAFE_INTEGER)).flatMap((e) =>
      e.kind === 'commit' ? [{ at: e.at, manifests: Object.values(e.tables).map((t) => t.manifest) }] : [],
    );
    return collectGarbage(this.store, heads, (k) => this.#manifest(k), this.#now(), graceMs, retention, snapshots);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#maintenance;
    try {
      if (!this.readOnly && this.#log) {
        while (this.#flushing) await this.#flushing.catch(() => undefined);
        if (!this.#backgroundError) await this.#startFlush();
        await this.#log.close();
      }
    } finally {
      this.#closed = true;
      if (this.#ownsStore) await this.store.close();
    }
    this.#throwBackground();
    if (this.#maintenanceError) throw this.#maintenanceError;
  }

  // ---------------------------------------------------------------- internals

  #writable(what: string): void {
    if (this.#closed) throw new FloeError('CLOSED', `${what}: the database is closed`);
    if (this.readOnly) throw new FloeError('INVALID_ARGUMENT', `${what}: the database was opened readOnly`);
  }

  #throwBackground(): void {
    if (this.#backgroundError) {
      const e = this.#backgroundError;
      this.#backgroundError = null;
      throw new FloeError('STORAGE_UNAVAILABLE', 'a background flush failed; the log still holds every acknowledged write', { cause: e });
    }
  }

  /** Serialize catalog changes made by this process (CAS still guards against others). */
  async #withCatalog<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.#catalogLock;
    let release!: () => void;
    this.#catalogLock = new Promise<void>((r) => (release = r));
    try {
      await prev.catch(() => undefined);
      return await fn();
    } finally {
      release();
    }
  }

  async #casCatalog(mutate: (cat: Catalog, attempt: number) => Promise<Omit<Catalog, 'version' | 'format' | 'magic'> | null>): Promise<void> {
    const st = await updateCatalog(
      this.store,
      this.#catalog,
      async (cat, attempt) => {
        const next = await mutate(cat, attempt);
        await this.#fp.hit('catalog.cas.before');
        return next;
      },
      this.#retry,
    );
    if (st) {
      const before = this.#catalog.catalog.tables;
      this.#catalog = st;
      this.#catalogReadAt = this.#now();
      for (const [name, e] of Object.entries(st.catalog.tables)) if (before[name]?.manifest !== e.manifest) this.#maybeCompact(name);
    }
    await this.#fp.hit('catalog.cas.after');
  }

  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.#tableLock;
    let release!: () => void;
    this.#tableLock = new Promise<void>((r) => (release = r));
    try {
      await prev.catch(() => undefined);
      return await fn();
    } finally {
      release();
    }
  }

  /** After a commit changed `name`: compact it in the background if the policy says so. */
  #maybeCompact(name: string): void {
    const policy = this.#autoCompact;
    if (!policy || this.#compactQueued.has(name)) return;
    this.#compactQueued.add(name);
    this._internals.background(`compaction of "${name}"`, async () => {
      this.#compactQueued.delete(name);
      const e = this.#catalog.catalog.tables[name];
      if (!e || !compactionDue(await this.#manifest(e.manifest), policy)) return;
      try {
        await this.#exclusive(() => compactTable(this.#host, name, e.id, autoCompactOptions(policy)));
      } catch (err) {
        // A concurrent commit replaced a picked file or the table went away: the next commit re-checks.
        if (isFloeError(err, 'CAS_CONFLICT') || isFloeError(err, 'NOT_FOUND')) return;
        throw err;
      }
    });
  }

  /** Record our log generation in the catalog; older writers' flushes then fail FENCED. */
  async #claimWriter(generation: number): Promise<void> {
    await this.#withCatalog(() =>
      this.#casCatalog(async (cat) => {
        if (cat.writer > generation) {
          throw new FloeError('FENCED', `a newer writer (generation ${cat.writer}) has opened ${this.store.location}; this one (generation ${generation}) is fenced`);
        }
        return { ...cat, writer: generation, updatedAt: this.#now() };
      }),
    );
  }

  async #freshCatalog(): Promise<void> {
    if (this.#now() - this.#catalogReadAt <= this.#catalogMaxAgeMs) return;
    const fresh = await readCatalog(this.store);
    if (!fresh) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${this.store.location}`);
    this.#catalogReadAt = this.#now();
    if (fresh.catalog.version <= this.#catalog.catalog.version) return;
    if (!this.#log && fresh.catalog.checkpointLsn !== this.#catalog.catalog.checkpointLsn) {
      this.#catalog = fresh;
      this.#mem.clear();
      this.#visibleSeq = 0;
      await this.#replayLog();
      return;
    }
    this.#catalog = fresh;
  }

  async #manifest(key: string): Promise<Manifest> {
    let m = this.#manifests.get(key);
    if (!m) {
      const { bytes } = await this.store.get(key);
      m = decodeManifest(bytes, key);
      this.#manifests.set(key, m);
      if (this.#manifests.size > 4096) this.#manifests.delete(this.#manifests.keys().next().value!);
    }
    return m;
  }

  #memOf(tableId: string): TableMem {
    let t = this.#mem.get(tableId);
    if (!t) {
      t = { active: new Memtable(), frozen: null };
      this.#mem.set(tableId, t);
    }
    return t;
  }

  #tableIdIndex(): Map<string, { name: string; pk: string[] | null }> {
    const out = new Map<string, { name: string; pk: string[] | null }>();
    for (const [name, e] of Object.entries(this.#catalog.catalog.tables)) out.set(e.id, { name, pk: null });
    return out;
  }

  /** Replay the log past the checkpoint (or past what is already applied) into memtables. */
  async #replayLog(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const from = Math.max(this.#catalog.catalog.checkpointLsn, this.#visibleSeq) + 1;
      try {
        const tables = await this.#keyedTables();
        if (this.#log) {
          for await (const { lsn, record } of this.#log.replay(from)) this.#apply(decodeLogRecord(record, lsn), lsn, tables);
        } else {
          const { entries } = await readLog(this.store, { prefix: LOG_PREFIX, fromLsn: from });
          for await (const { lsn, record } of entries) this.#apply(decodeLogRecord(record, lsn), lsn, tables);
        }
        return;
      } catch (err) {
        // A read-only replay can race the writer's truncation: re-read the
        // catalog (whose checkpoint moved past the truncated segments) and retry.
        if (!this.#log && isFloeError(err, 'LOG_GAP', 'NOT_FOUND') && attempt < 5) {
          const fresh = await readCatalog(this.store);
          if (fresh) this.#catalog = fresh;
          this.#mem.clear();
          this.#visibleSeq = 0;
          continue;
        }
        throw err;
      }
    }
  }

  async #keyedTables(): Promise<Map<string, string[] | null>> {
    const out = new Map<string, string[] | null>();
    for (const e of Object.values(this.#catalog.catalog.tables)) out.set(e.id, (await this.#manifest(e.manifest)).primaryKey);
    return out;
  }

  #apply(writes: readonly TableWrite[], seq: number, tables: Map<string, string[] | null>): void {
    for (const w of writes) {
      if (!tables.has(w.table)) continue; // the table was dropped
      const pk = tables.get(w.table) ?? null;
      const mem = this.#memOf(w.table).active;
      if (w.kind === 'upsert') {
        const bytes = estimateBytes(w.rows);
        w.rows.forEach((row, i) => {
          const id = w.ids[i]!;
          mem.apply({ key: pk ? keyOf(row, pk) : keyOfId(id), seq, id, row, bytes });
        });
      } else {
        for (const k of w.keys) mem.apply({ key: keyOf(k, pk!), seq, id: 0n, row: null, bytes: 64 });
      }
    }
    if (seq > this.#visibleSeq) this.#visibleSeq = seq;
  }

  async #commitWrites(writes: TableWrite[]): Promise<number> {
    this.#writable('write');
    const log = this.#log;
    if (!log) {
      throw new FloeError('INVALID_ARGUMENT', `point writes need the log writer; this database was opened with logWriter: false (bulk append still works)`);
    }
    // Backpressure: wait (do not fail) while flushing falls behind.
    while (this.#memBytes() >= 2 * this.#memtableBytes && this.#flushing) {
      await this.#flushing.catch(() => undefined);
      this.#throwBackground();
    }
    const record = encodeLogRecord(writes);
    const { lsn } = await log.append(record);
    this.#apply(writes, lsn, await this.#keyedTables());
    if (this.#memBytes() >= this.#memtableBytes && !this.#flushing) {
      this.#startFlush().catch((err: unknown) => {
        this.#backgroundError = err;
      });
    }
    return lsn;
  }

  #memBytes(): number {
    let n = 0;
    for (const t of this.#mem.values()) n += t.active.bytes + (t.frozen?.bytes ?? 0);
    return n;
  }

  async #reserveIds(n: number): Promise<bigint> {
    const need = BigInt(n);
    if (this.#ids.next + need > this.#ids.end) {
      const span = need > ID_SPAN ? need : ID_SPAN;
      let first = 0n;
      await this.#withCatalog(() =>
        this.#casCatalog(async (cat) => {
          first = BigInt(cat.nextRowId);
          return { ...cat, nextRowId: String(first + span), updatedAt: this.#now() };
        }),
      );
      this.#ids = { next: first, end: first + span };
    }
    const first = this.#ids.next;
    this.#ids.next += need;
    return first;
  }

  #startFlush(): Promise<void> {
    const p = this.#flushOnce().finally(() => {
      if (this.#flushing === p) this.#flushing = null;
    });
    this.#flushing = p;
    return p;
  }

  /** One flush: freeze, write files and masks, publish with the checkpoint, truncate the log. */
  async #flushOnce(): Promise<void> {
    const checkpoint = this.#visibleSeq;
    const frozen: Array<{ name: string; id: string; mem: Memtable }> = [];
    for (const [name, e] of Object.entries(this.#catalog.catalog.tables)) {
      const t = this.#mem.get(e.id);
      if (!t || t.active.size === 0) continue;
      t.frozen = t.active;
      t.active = new Memtable();
      frozen.push({ name, id: e.id, mem: t.frozen });
    }
    if (checkpoint <= this.#catalog.catalog.checkpointLsn && frozen.length === 0) return;
    try {
      const prepared: Array<{ name: string; id: string; file: DataFileEntry | null; probe: ReturnType<typeof makeProbe> }> = [];
      for (const f of frozen) {
        const view = await this.#viewOf(f.name, false);
        const snap = f.mem.snapshot();
        const entries = snap.entries();
        const live = entries.filter((e) => e.row !== null);
        let file: DataFileEntry | null = null;
        if (live.length > 0) {
          const rows = live.map((e) => fillMissing(view.schema, e.row!));
          file = await writeDataFile(
            this.#writeCtx,
            f.id,
            view.schema,
            view.manifest.schemaVersion,
            view.primaryKey,
            rows,
            BigInt64Array.from(live, (e) => e.id),
            BigInt64Array.from(live, (e) => BigInt(e.seq)),
            'flush',
          );
        }
        const probe = view.primaryKey ? makeProbe(entries.map((e) => e.key)) : null;
        prepared.push({ name: f.name, id: f.id, file, probe });
      }
      const memo = { positions: new Map<string, number[]>(), bitmaps: new Map<string, DeletionRef>() };
      await this.#withCatalog(() =>
        this.#casCatalog(async (cat) => {
          if (cat.writer !== this.#log!.generation) {
            throw new FloeError('FENCED', `flush refused: writer generation ${this.#log!.generation} was fenced by generation ${cat.writer}`);
          }
          const tables = { ...cat.tables };
          for (const p of prepared) {
            const entry = cat.tables[p.name];
            if (!entry || entry.id !== p.id) continue; // dropped meanwhile
            const cur = await this.#manifest(entry.manifest);
            const exclude = new Set(p.file ? [p.file.id] : []);
            const deletes =
              p.probe && cur.primaryKey
                ? await supersede(this.#writeCtx, p.id, cur, cur.primaryKey, p.probe, exclude, memo, 'flush')
                : new Map<string, DeletionRef>();
            if (!p.file && deletes.size === 0) continue;
            const next = nextManifest(cur, entry.manifest, {
              operation: 'flush',
              addFiles: p.file ? [p.file] : [],
              deletes,
              now: this.#now(),
            });
            tables[p.name] = { id: p.id, manifest: await this.#putManifest(next, 'flush'), version: next.version };
          }
          return { ...cat, tables, checkpointLsn: Math.max(cat.checkpointLsn, checkpoint), updatedAt: this.#now() };
        }),
      );
    } catch (err) {
      // Unfreeze: the frozen rows go back under the active ones (newer wins by seq).
      for (const f of frozen) {
        const t = this.#mem.get(f.id);
        if (!t || t.frozen !== f.mem) continue;
        const merged = t.frozen;
        for (const e of t.active.versions()) merged.apply(e);
        t.active = merged;
        t.frozen = null;
      }
      throw err;
    }
    for (const f of frozen) {
      const t = this.#mem.get(f.id);
      if (t && t.frozen === f.mem) t.frozen = null;
    }
    await this.#fp.hit('flush.truncate.before');
    const now = this.#now();
    this.#retentionMarks.push({ seq: checkpoint, at: now });
    const through = retentionMark(checkpoint, this.#visibleSeq, this.#retention, this.#retentionMarks, now);
    this.#retentionMarks = this.#retentionMarks.filter((m) => m.seq > through);
    if (through > 0) await this.#log!.truncateThrough(through);
  }

  async #putManifest(m: Manifest, op: string): Promise<string> {
    const key = manifestKey(m.tableId, m.version, ulid(this.#now()));
    await this.#fp.hit(`${op}.manifest.put.before`, { key });
    await this.store.putIfAbsent(key, encodeManifest(m));
    this.#manifests.set(key, m);
    await this.#fp.hit(`${op}.manifest.put.after`, { key });
    return key;
  }

  async #viewOf(name: string, withMem: boolean): Promise<TableView> {
    const e = this.#catalog.catalog.tables[name];
    if (!e) throw new FloeError('NOT_FOUND', `no table "${name}" in ${this.store.location}`);
    const manifest = await this.#manifest(e.manifest);
    const t = withMem ? this.#mem.get(e.id) : undefined;
    const mem = t ? [t.active.snapshot(), ...(t.frozen ? [t.frozen.snapshot()] : [])] : [];
    return {
      store: this.store,
      files: this.#files,
      name,
      manifest,
      manifestKey: e.manifest,
      schema: schemaOf(manifest),
      primaryKey: manifest.primaryKey,
      mem,
      seq: this.#visibleSeq,
    };
  }

  /** A view of one published manifest with no memtable: a historical snapshot. */
  #historicalView(name: string, key: string, m: Manifest): TableView {
    return {
      store: this.store,
      files: this.#files,
      name,
      manifest: m,
      manifestKey: key,
      schema: schemaOf(m),
      primaryKey: m.primaryKey,
      mem: [],
      seq: 0,
    };
  }

  async #history(name: string, limit: number): Promise<Manifest[]> {
    const e = this.#catalog.catalog.tables[name];
    if (!e) throw new FloeError('NOT_FOUND', `no table "${name}"`);
    const out: Manifest[] = [];
    let key: string | null = e.manifest;
    while (key && out.length < limit) {
      const m = await this.#manifest(key);
      out.push(m);
      key = m.parent;
    }
    return out;
  }

  #makeHost(): TableHost {
    return {
      readOnly: this.readOnly,
      writeCtx: this.#writeCtx,
      view: async (name) => {
        if (this.#closed) throw new FloeError('CLOSED', `read of "${name}": the database is closed`);
        await this.#freshCatalog();
        return this.#viewOf(name, true);
      },
      viewAt: async (name, version) => {
        const e = this.#catalog.catalog.tables[name];
        if (!e) throw new FloeError('NOT_FOUND', `no table "${name}"`);
        const cur = await this.#manifest(e.manifest);
        if (!Number.isInteger(version) || version < 1 || version > cur.version) {
          throw new FloeError('NOT_FOUND', `table "${name}" has no version ${version} (current: ${cur.version})`);
        }
        let key: string | null = e.manifest;
        let m = cur;
        while (m.version > version && key) {
          key = m.parent;
          if (!key) break;
          m = await this.#manifest(key);
        }
        if (m.version !== version || !key) throw new FloeError('NOT_FOUND', `table "${name}" version ${version} is no longer retained`);
        return this.#historicalView(name, key, m);
      },
      history: (name, limit) => this.#history(name, limit),
      commitWrites: (writes) => this.#commitWrites(writes),
      reserveIds: (n) => this.#reserveIds(n),
      publish: (name, operation, build) =>
        this.#withCatalog(async () => {
          let published: Manifest | null = null;
          await this.#casCatalog(async (cat) => {
            const entry = cat.tables[name];
            if (!entry) throw new FloeError('NOT_FOUND', `no table "${name}" (dropped?)`);
            const cur = await this.#manifest(entry.manifest);
            const edit: ManifestEdit = await build(cur);
            const next = nextManifest(cur, entry.manifest, { ...edit, operation, now: this.#now() });
            const key = await this.#putManifest(next, operation);
            published = next;
            return { ...cat, tables: { ...cat.tables, [name]: { id: entry.id, manifest: key, version: next.version } }, updatedAt: this.#now() };
          });
          return published!;
        }),
      prepareAppend: async (tableId) => {
        const t = this.#mem.get(tableId);
        if (this.#log && t && (t.active.size > 0 || t.frozen)) await this.flush();
        return this.#catalog.catalog.checkpointLsn;
      },
      memtableStats: (tableId) => {
        const t = this.#mem.get(tableId);
        if (!t) return { rows: 0, bytes: 0 };
        return { rows: t.active.size + (t.frozen?.size ?? 0), bytes: t.active.bytes + (t.frozen?.bytes ?? 0) };
      },
    };
  }

  /** Internal: used by Transaction. */
  _table(name: string): Promise<Table> {
    return this.table(name);
  }

  /** Internal engine surface for layered modules (see DbInternals). */
  get _internals(): DbInternals {
    return {
      store: this.store,
      failpoints: this.#fp,
      writeCtx: this.#writeCtx,
      files: this.#files,
      readOnly: this.readOnly,
      log: this.#log,
      now: () => this.#now(),
      newId: () => ulid(this.#now()),
      catalog: () => this.#catalog,
      refreshCatalog: async () => {
        const fresh = await readCatalog(this.store);
        if (!fresh) throw new FloeError('NOT_A_DATABASE', `catalog vanished from ${this.store.location}`);
        if (fresh.catalog.version >= this.#catalog.catalog.version) this.#catalog = fresh;
        this.#catalogReadAt = this.#now();
        return this.#catalog;
      },
      casCatalog: async (mutate) => {
        await this.#withCatalog(() => this.#casCatalog(mutate));
        return this.#catalog;
      },
      manifest: (key) => this.#manifest(key),
      putManifest: (m, op) => this.#putManifest(m, op),
      view: (name, withMem) => this.#viewOf(name, withMem),
      viewOfManifest: async (name, key) => this.#historicalView(name, key, await this.#manifest(key)),
      flush: () => (this.#log && !this.readOnly ? this.flush() : Promise.resolve()),
      reserveIds: (n) => this.#reserveIds(n),
      cacheManifest: (key, m) => void this.#manifests.set(key, m),
      settled: () => this.#maintenance,
      withoutCompaction: (fn) => this.#exclusive(fn),
      background: (what, task) => {
        this.#maintenance = this.#maintenance.then(async () => {
          // Start after the caller's current step has returned to its caller.
          await new Promise((r) => setImmediate(r));
          if (this.#closed) return;
          try {
            await task();
            this.#maintenanceError = null; // a later run made up for an earlier failure
          } catch (err) {
            // Kept for close(), which reports it; the task is retried when next due.
            this.#maintenanceError = new FloeError(isFloeError(err) ? err.code : 'STORAGE_UNAVAILABLE', `background ${what} failed: ${asError(err).message}`, { cause: err });
          }
        });
      },
    };
  }
}

/** Stages writes to several tables; committed as one log record. */
export class Transaction {
  #writes: TableWrite[] = [];
  #open = true;
  constructor(private readonly db: Database) {}

  table(name: string): { upsert(rows: readonly Row[] | Row): Promise<void>; delete(keys: unknown): Promise<void> } {
    return {
      upsert: async (rows) => {
        this.#check();
        const w = await (await this.db._table(name)).prepareUpsert(Array.isArray(rows) ? (rows as Row[]) : [rows as Row]);
        if (w) this.#writes.push(w);
      },
      delete: async (keys) => {
        this.#check();
        const w = await (await this.db._table(name)).prepareDelete(Array.isArray(keys) ? (keys as unknown[]) : [keys]);
        if (w) this.#writes.push(w);
      },
    };
  }

  #check(): void {
    if (!this.#open) throw new FloeError('CLOSED', 'the transaction has already committed');
  }

  /** Internal: end staging and hand the writes over. */
  async close(): Promise<TableWrite[]> {
    this.#open = false;
    return this.#writes;
  }
}

function autoCompactPolicy(o: OpenOptions['autoCompact'], readOnly: boolean): AutoCompactPolicy | null {
  if (readOnly || o === false) return null;
  if (o === undefined || o === true) return DEFAULT_AUTO_COMPACT;
  if (o === null || typeof o !== 'object') throw new FloeError('INVALID_ARGUMENT', `autoCompact must be a boolean or a policy object, got ${String(o)}`);
  const p = { ...DEFAULT_AUTO_COMPACT, ...o };
  for (const [k, v] of Object.entries(p)) {
    if (!(k in DEFAULT_AUTO_COMPACT)) throw new FloeError('INVALID_ARGUMENT', `autoCompact: unknown option "${k}" (${Object.keys(DEFAULT_AUTO_COMPACT).join(', ')})`);
    const ok = k === 'deletedFraction' ? typeof v === 'number' && v > 0 && v <= 1 : typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
    if (!ok) throw new FloeError('INVALID_ARGUMENT', `autoCompact.${k}: bad value ${String(v)}`);
  }
  return p;
}

function checkRetention(r: LogRetention | undefined): LogRetention {
  if (r === undefined) return {};
  for (const [k, v] of Object.entries(r)) {
    if (k !== 'minSeqs' && k !== 'maxAgeMs') throw new FloeError('INVALID_ARGUMENT', `logRetention: unknown option "${k}" (minSeqs, maxAgeMs)`);
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new FloeError('INVALID_ARGUMENT', `logRetention.${k} must be a non-negative integer, got ${String(v)}`);
    }
  }
  return r;
}

/** Parsed schemas by manifest (manifests are immutable and cached): a read does not re-parse one. */
const schemas = new WeakMap<Manifest, TableSchema>();

function schemaOf(m: Manifest): TableSchema {
  let s = schemas.get(m);
  if (!s) schemas.set(m, (s = schemaFromJson(m.schema)));
  return s;
}

function keyOfId(id: bigint): string {
  return id.toString(36).padStart(13, '0');
}

function estimateBytes(rows: readonly Row[]): number {
  // A rough per-row cost: JSON size of the first row plus object overhead.
  if (rows.length === 0) return 0;
  let n = 64;
  for (const v of Object.values(rows[0]!)) n += typeof v === 'string' ? v.length * 2 + 16 : 16;
  return n;
}

function fillMissing(schema: TableSchema, row: Row): Row {
  let out: Row | null = null;
  for (const c of schema.columns) {
    if (row[c.name] === undefined) {
      out ??= { ...row };
      out[c.name] = c.default === undefined ? null : defaultValue(c);
    }
  }
  return out ?? row;
}

const TABLE_NAME_RE = /^[A-Za-z][A-Za-z0-9_]{0,127}$/;

export function validateTableName(name: string): void {
  if (typeof name !== 'string' || !TABLE_NAME_RE.test(name)) {
    throw new FloeError('INVALID_ARGUMENT', `invalid table name ${JSON.stringify(name)}: use 1-128 of [A-Za-z0-9_], starting with a letter`);
  }
}

/** `floe.open(uri, options)`. */
export function open(target: string | ObjectStore, options: OpenOptions = {}): Promise<Database> {
  return Database.open(target, options);
}
