/**
 * A table handle: the user-facing API of one named table.
 *
 * Point writes (`upsert`, `delete`) are validated here — bad input fails
 * before anything is written — then handed to the host as one log record;
 * they are durable when the promise resolves. Bulk `append` writes Parquet
 * files and publishes them as one manifest version (one append = one
 * commit). Reads take a TableView from the host and run against it, so each
 * call sees one consistent snapshot.
 *
 * The host (the database, src/db) owns the log, the memtables, the catalog
 * and commit retries; this module decides what to write.
 */
import type * as arrow from 'apache-arrow';
import { FloeError } from '../errors.js';
import type { Row, TableWrite } from '../format/logrecord.js';
import type { ColumnSpec, TableSchema } from '../format/schema.js';
import { addColumn as addColumnToSchema, recordBatchToRows, schemaToJson, validateRows } from '../format/schema.js';
import type { DeletionRef, Manifest } from './manifest.js';
import { liveRows } from './manifest.js';
import type { PredicateInput } from './predicate.js';
import type { ScanOptions } from './read.js';
import { countView, getByKey, scanView } from './read.js';
import type { TableView } from './view.js';
import type { WriteContext } from './write.js';
import { lastWinsByKey, stageFiles, supersede } from './write.js';
import type { CompactOptions, CompactResult } from './compact.js';
import { compactTable } from './compact.js';
import type { MutateOptions, MutationResult } from './mutate.js';
import { deleteWhere as deleteWhereImpl, updateWhere as updateWhereImpl } from './mutate.js';

export interface ManifestEdit {
  readonly addFiles?: readonly import('./manifest.js').DataFileEntry[];
  readonly removeFiles?: ReadonlySet<string>;
  readonly deletes?: ReadonlyMap<string, DeletionRef>;
  readonly schema?: { readonly json: unknown; readonly version: number };
}

/** What a table needs from its database. */
export interface TableHost {
  readonly readOnly: boolean;
  readonly writeCtx: WriteContext;
  /** A fresh consistent view of the table's current state. */
  view(name: string): Promise<TableView>;
  /** A view of a historical version (no memtable). */
  viewAt(name: string, version: number): Promise<TableView>;
  /** Published versions, newest first. */
  history(name: string, limit: number): Promise<Manifest[]>;
  /** Commit point writes as one log record; resolves with its seq when durable and applied. */
  commitWrites(writes: TableWrite[]): Promise<number>;
  /** First `_id` of a freshly reserved span of n ids. */
  reserveIds(n: number): Promise<bigint>;
  /** Publish a new manifest version built from the current one (retried on races). */
  publish(name: string, operation: string, build: (m: Manifest) => Promise<ManifestEdit>): Promise<Manifest>;
  /**
   * Order a bulk append after every point write this process has
   * acknowledged to the table (the log writer flushes the table's memtable
   * first), and return the seq its rows carry: the log checkpoint.
   */
  prepareAppend(tableId: string): Promise<number>;
  memtableStats(tableId: string): { rows: number; bytes: number };
}

/** Input accepted by `append`. */
export type AppendInput =
  | readonly Row[]
  | arrow.Table
  | arrow.RecordBatch
  | Iterable<Row | arrow.RecordBatch>
  | AsyncIterable<Row | arrow.RecordBatch>;

export interface AppendOptions {
  /** At most this many rows per data file (default 1,000,000). */
  readonly rowsPerFile?: number;
  /**
   * At most about this many bytes of row data per data file (default 32 MiB).
   * Each chunk is held as rows, as Arrow and inside the Parquet encoder at
   * once, and the encoder's WASM memory never shrinks, so this bounds peak
   * memory while streaming.
   */
  readonly bytesPerFile?: number;
}

/** Validated chunk limits of an append or load. */
export function appendLimits(options: AppendOptions): { rowsPerFile: number; bytesPerFile: number } {
  const rowsPerFile = options.rowsPerFile ?? 1_000_000;
  const bytesPerFile = options.bytesPerFile ?? 32 * 1024 * 1024;
  if (!Number.isInteger(rowsPerFile) || rowsPerFile < 1) throw new FloeError('INVALID_ARGUMENT', 'rowsPerFile must be a positive integer');
  if (!(bytesPerFile > 0)) throw new FloeError('INVALID_ARGUMENT', 'bytesPerFile must be positive');
  return { rowsPerFile, bytesPerFile };
}

export interface TableStats {
  readonly name: string;
  readonly version: number;
  readonly files: number;
  readonly rows: number;
  readonly deletedRows: number;
  readonly bytes: number;
  readonly memtableRows: number;
  readonly memtableBytes: number;
}

export interface VersionInfo {
  readonly version: number;
  readonly operation: string;
  readonly createdAt: Date;
  readonly rows: number;
  readonly files: number;
}

/** The result of `scan`: an async iterable of record batches, plus helpers. */
export class Scan implements AsyncIterable<arrow.RecordBatch> {
  constructor(readonly open: () => Promise<AsyncGenerator<arrow.RecordBatch>>) {}
  async *[Symbol.asyncIterator](): AsyncGenerator<arrow.RecordBatch> {
    yield* await this.open();
  }
  /** Every matching row as a plain object (bounded inputs only). */
  async toArray(): Promise<Row[]> {
    const out: Row[] = [];
    for await (const b of this) for (const r of recordBatchToRows(b)) out.push(r);
    return out;
  }
}

export class ReadonlyTable {
  constructor(
    readonly name: string,
    protected readonly viewOf: () => Promise<TableView>,
  ) {}

  /** The row with this primary key (a value, or an object for composite keys), or null. */
  async get(key: unknown, options: { columns?: readonly string[] } = {}): Promise<Row | null> {
    const view = await this.viewOf();
    const keyRow = normalizeKeys(view, [key])[0]!;
    return getByKey(view, keyRow, options.columns);
  }

  scan(options: ScanOptions = {}): Scan {
    return new Scan(async () => scanView(await this.viewOf(), options));
  }

  async count(where?: PredicateInput): Promise<number> {
    const view = await this.viewOf();
    if (where === undefined && view.mem.every((m) => m.size === 0)) return liveRows(view.manifest);
    return countView(view, where);
  }

  async schema(): Promise<TableSchema> {
    return (await this.viewOf()).schema;
  }

  /**
   * The Parquet data files of this snapshot, for other engines. Rows listed
   * in `deletedRows` are masked by floe's deletion bitmaps (superseded or
   * deleted); an external reader that wants exactly floe's view filters them.
   */
  async dataFiles(): Promise<Array<{ key: string; location: string; rows: number; deletedRows: number; size: number }>> {
    const view = await this.viewOf();
    const out = [];
    for (const f of view.manifest.files) {
      const location = (await view.store.localPath?.(f.key)) ?? `${view.store.location.replace(/\/$/, '')}/${f.key}`;
      out.push({ key: f.key, location, rows: f.rows, deletedRows: f.deletes?.count ?? 0, size: f.size });
    }
    return out;
  }
}

export class Table extends ReadonlyTable {
  constructor(
    name: string,
    readonly tableId: string,
    private readonly host: TableHost,
  ) {
    super(name, () => host.view(name));
  }

  /** Insert or replace rows by primary key (keyless tables: insert). Durable on resolve. */
  async upsert(rows: readonly Row[] | Row): Promise<{ seq: number }> {
    const w = await this.prepareUpsert(Array.isArray(rows) ? (rows as Row[]) : [rows as Row]);
    if (!w) return { seq: 0 };
    return { seq: await this.host.commitWrites([w]) };
  }

  /** Delete rows by primary key. Durable on resolve; absent keys are fine. */
  async delete(keys: unknown): Promise<{ seq: number }> {
    const w = await this.prepareDelete(Array.isArray(keys) ? (keys as unknown[]) : [keys]);
    if (!w) return { seq: 0 };
    return { seq: await this.host.commitWrites([w]) };
  }

  /** Validate and stage an upsert (used by transactions). */
  async prepareUpsert(rows: readonly Row[]): Promise<TableWrite | null> {
    this.#writable();
    if (!Array.isArray(rows)) throw new FloeError('INVALID_ARGUMENT', `upsert into "${this.name}": rows must be an array`);
    const view = await this.host.view(this.name);
    let valid = validateRows(view.schema, rows as unknown[], { primaryKey: view.primaryKey ?? undefined });
    if (view.primaryKey) valid = lastWins(valid, view.primaryKey);
    if (valid.length === 0) return null;
    const first = await this.host.reserveIds(valid.length);
    const ids = valid.map((_, i) => first + BigInt(i));
    return { table: this.tableId, kind: 'upsert', rows: valid, ids };
  }

  async prepareDelete(keys: readonly unknown[]): Promise<TableWrite | null> {
    this.#writable();
    const view = await this.host.view(this.name);
    if (!view.primaryKey) {
      throw new FloeError('INVALID_ARGUMENT', `table "${this.name}" has no primary key: delete by key needs one (deleteWhere comes with mutations)`);
    }
    const keyRows = normalizeKeys(view, keys);
    if (keyRows.length === 0) return null;
    return { table: this.tableId, kind: 'delete', keys: lastWins(keyRows, view.primaryKey) };
  }

  /**
   * Bulk append: write the input as Parquet data files and publish them as
   * one new manifest version. Streaming inputs are consumed in bounded
   * memory (`rowsPerFile` rows at a time). With a primary key, the newest
   * row of a key wins: older versions (earlier in the input, or already in
   * the table) are masked.
   */
  async append(input: AppendInput, options: AppendOptions = {}): Promise<{ version: number; rows: number }> {
    this.#writable();
    const limits = appendLimits(options);
    const appendSeq = BigInt(await this.host.prepareAppend(this.tableId));
    const view = await this.host.view(this.name);
    const pk = view.primaryKey;
    const ctx = this.host.writeCtx;
    const staged = await stageFiles(
      ctx,
      { tableId: this.tableId, schema: view.schema, schemaVersion: view.manifest.schemaVersion, primaryKey: pk },
      inputRows(input),
      appendSeq,
      (n) => this.host.reserveIds(n),
      limits,
      'append',
      offsetRowError,
    );
    if (staged.files.length === 0) return { version: view.manifest.version, rows: 0 };
    const memo = { positions: new Map<string, number[]>(), bitmaps: new Map<string, DeletionRef>() };
    const newIds = new Set(staged.files.map((f) => f.id));
    const m = await this.host.publish(this.name, 'append', async (cur) => ({
      addFiles: staged.files,
      deletes: pk && staged.probe ? await supersede(ctx, this.tableId, cur, pk, staged.probe, newIds, memo, 'append') : new Map(),
    }));
    return { version: m.version, rows: staged.rows };
  }

  /**
   * Delete every row matching `where` as a crash-safe mutation (see
   * src/table/mutate.ts). Flushes this process's memtable of the table first
   * (when it holds the log), so unflushed point writes are targeted too.
   */
  async deleteWhere(where: PredicateInput, options: MutateOptions = {}): Promise<MutationResult> {
    this.#writable();
    return deleteWhereImpl(this.host, this.name, this.tableId, where, options);
  }

  /** Set columns (`set`: column -> value) on every row matching `where`; crash-safe, as deleteWhere. */
  async updateWhere(where: PredicateInput, set: Readonly<Record<string, unknown>>, options: MutateOptions = {}): Promise<MutationResult> {
    this.#writable();
    return updateWhereImpl(this.host, this.name, this.tableId, where, set, options);
  }

  /** Merge small files and drop masked rows (src/table/compact.ts). */
  async compact(options: CompactOptions = {}): Promise<CompactResult> {
    this.#writable();
    return compactTable(this.host, this.name, this.tableId, options);
  }

  /** Add a nullable column, or one with a default; no data file is rewritten. */
  async addColumn(spec: ColumnSpec | (Omit<ColumnSpec, 'nullable'> & { nullable?: boolean })): Promise<{ version: number }> {
    this.#writable();
    const m = await this.host.publish(this.name, 'add-column', async (cur) => {
      const view = await this.host.view(this.name);
      const next = addColumnToSchema(view.schema, { nullable: true, ...spec });
      return { schema: { json: schemaToJson(next), version: cur.schemaVersion + 1 } };
    });
    return { version: m.version };
  }

  /** Published versions, newest first. */
  async versions(options: { limit?: number } = {}): Promise<VersionInfo[]> {
    const ms = await this.host.history(this.name, options.limit ?? 1000);
    return ms.map((m) => ({
      version: m.version,
      operation: m.operation,
      createdAt: new Date(m.createdAt),
      rows: liveRows(m),
      files: m.files.length,
    }));
  }

  /** A read-only snapshot of an earlier version. */
  async checkout(version: number): Promise<ReadonlyTable> {
    const view = await this.host.viewAt(this.name, version);
    return new ReadonlyTable(this.name, async () => view);
  }

  async stats(): Promise<TableStats> {
    const view = await this.host.view(this.name);
    const m = view.manifest;
    const mem = this.host.memtableStats(this.tableId);
    let deleted = 0;
    let bytes = 0;
    for (const f of m.files) {
      deleted += f.deletes?.count ?? 0;
      bytes += f.size;
    }
    return {
      name: this.name,
      version: m.version,
      files: m.files.length,
      rows: liveRows(m),
      deletedRows: deleted,
      bytes,
      memtableRows: mem.rows,
      memtableBytes: mem.bytes,
    };
  }

  #writable(): void {
    if (this.host.readOnly) {
      throw new FloeError('INVALID_ARGUMENT', `table "${this.name}" belongs to a database opened readOnly; writes are not allowed`);
    }
  }
}

/** Keep the last row of each primary key, in first-appearance order of the survivors. */
export const lastWins = lastWinsByKey;

/** Primary-key arguments (scalars for one-column keys, or objects) to validated key rows. */
export function normalizeKeys(view: TableView, keys: readonly unknown[]): Row[] {
  const pk = view.primaryKey;
  if (!pk) throw new FloeError('INVALID_ARGUMENT', `table "${view.name}" has no primary key`);
  const keySchema: TableSchema = {
    columns: pk.map((k) => ({ ...view.schema.columns.find((c) => c.name === k)!, nullable: false, default: undefined })),
  };
  const rows = keys.map((k, i) => {
    if (k !== null && typeof k === 'object' && !(k instanceof Date) && !(k instanceof Uint8Array) && !Array.isArray(k)) {
      return k as Row;
    }
    if (pk.length !== 1) {
      throw new FloeError('INVALID_ARGUMENT', `key ${i} of "${view.name}": the primary key has ${pk.length} columns (${pk.join(', ')}); pass an object`);
    }
    return { [pk[0]!]: k };
  });
  return validateRows(keySchema, rows);
}

function offsetRowError(err: unknown, base: number): unknown {
  if (base === 0 || !(err instanceof FloeError)) return err;
  return new FloeError(err.code, `${err.detail} (row indexes are relative to input row ${base})`, { cause: err });
}

function isRecordBatch(x: unknown): x is arrow.RecordBatch {
  return typeof x === 'object' && x !== null && 'schema' in x && 'numRows' in x && typeof (x as { getChild?: unknown }).getChild === 'function' && !('batches' in x);
}

/**
 * The rows of an append/load input, streamed (record batches are split into
 * rows): a synchronous iterable when the input is one (arrays, Arrow
 * tables, generators), so bulk paths need not pay a promise per row.
 */
export function inputRows(input: AppendInput): Iterable<Row> | AsyncIterable<Row> {
  if (typeof input === 'object' && input !== null && 'batches' in input && Array.isArray((input as arrow.Table).batches)) {
    return batchRows((input as arrow.Table).batches);
  }
  if (isRecordBatch(input)) return recordBatchToRows(input);
  if (typeof input === 'object' && input !== null && Symbol.asyncIterator in input) return asyncItemRows(input as AsyncIterable<Row | arrow.RecordBatch>);
  if (typeof input === 'object' && input !== null && Symbol.iterator in input) return syncItemRows(input as Iterable<Row | arrow.RecordBatch>);
  throw new FloeError('INVALID_ARGUMENT', 'append input must be rows, an Arrow Table or RecordBatch, or an (async) iterable of them');
}

function* batchRows(batches: readonly arrow.RecordBatch[]): Generator<Row> {
  for (const b of batches) yield* recordBatchToRows(b);
}

function* syncItemRows(items: Iterable<Row | arrow.RecordBatch>): Generator<Row> {
  for (const item of items) {
    if (isRecordBatch(item)) yield* recordBatchToRows(item);
    else yield item;
  }
}

async function* asyncItemRows(items: AsyncIterable<Row | arrow.RecordBatch>): AsyncGenerator<Row> {
  for await (const item of items) {
    if (isRecordBatch(item)) yield* recordBatchToRows(item);
    else yield item;
  }
}
