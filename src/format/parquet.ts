/**
 * Data files: plain Parquet that DuckDB, Spark and Trino read, written from
 * Apache Arrow tables and read back over range requests.
 *
 * Writing (`encodeParquet`) goes through parquet-wasm (arrow-rs compiled to
 * WASM): Arrow IPC in, Parquet bytes out, with zstd/snappy compression,
 * chunk and page statistics, offset indexes and the Arrow schema embedded
 * (`ARROW:schema`) so every Arrow type comes back exactly;
 * `encodeParquetFile` gives the same bytes plus their content hash, encoded
 * on a worker thread when the table is large (src/format/parquet-encode.ts
 * holds the encoder and its thread pool). Reading
 * (`ParquetFile`) goes through hyparquet (pure JavaScript) over an
 * ObjectStore: the footer first, then only the column chunks (or pages) of
 * the row groups asked for, decoded straight into Arrow RecordBatches.
 * bench/format.ts has the measurements behind this split; parquet-wasm's own
 * range reader is faster but aborts the process when a range request fails.
 *
 * Integrity. Parquet checksums nothing floe can rely on, and a flipped bit
 * in a data page often decodes into wrong values without an error. So every
 * file floe writes carries a checksum trailer between the last data/index
 * byte and the Parquet footer, where every Parquet reader ignores it:
 *
 *   [0, dataEnd)            "PAR1", column chunks, page indexes (Parquet)
 *   [dataEnd, footerStart)  n x (u32 length, u32 crc32c) extents tiling
 *                           [0, dataEnd) at page boundaries (pieces of at
 *                           most 1 MiB); then u32 n, u32 trailer version,
 *                           u32 crc32c(extents..version ++ footer ++ footer
 *                           length ++ "PAR1"), "FLOE.EXT"
 *   [footerStart, end)      Parquet footer (thrift), u32 length, "PAR1"
 *
 * The footer also carries the key `floe.integrity`. A reader that finds the
 * trailer magic or that key (a single flipped bit cannot remove both) checks
 * the trailer CRC on open and the CRC of every extent before decoding bytes
 * from it, fetching whole extents; any mismatch is `CORRUPT` naming the key.
 * Files without either (written by other tools) are read unverified.
 *
 * A ParquetFile is immutable and caches only the tail it read on open and
 * which extents it has verified; nothing is shared between instances (the
 * store's cache decorator is the place for caching bytes).
 */
import * as arrow from 'apache-arrow';
import { VectorAssembler } from 'apache-arrow/visitor/vectorassembler';
import { parquetMetadata, parquetRead } from 'hyparquet';
import type { AsyncBuffer, ColumnData, FileMetaData, ParquetParsers, SchemaElement, Statistics } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { FloeError, isFloeError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import type { ObjectStore } from '../store/types.js';
import { blake3Hex, crc32c } from './checksum.js';
import type { EncodedFile, EncodePlan, ParquetCompression } from './parquet-encode.js';
import {
  encodeIpc,
  encodeOffThread,
  INTEGRITY_KEY,
  INTEGRITY_VALUE,
  TRAILER_FIXED,
  TRAILER_MAGIC,
  TRAILER_VERSION,
} from './parquet-encode.js';

// ---------------------------------------------------------------------------
// Constants and public types

export const DEFAULT_ROW_GROUP_ROWS = 64 * 1024;
export const DEFAULT_FOOTER_HINT = 64 * 1024;
export { DATA_PAGE_BYTES, INTEGRITY_KEY } from './parquet-encode.js';
export type { ParquetCompression } from './parquet-encode.js';
const ARROW_SCHEMA_KEY = 'ARROW:schema';
const RESERVED_KEYS = new Set([ARROW_SCHEMA_KEY, INTEGRITY_KEY]);
const PAR1 = 0x31524150; // "PAR1" read as a little-endian u32
/** Files of fewer rows are encoded on the calling thread (a round trip to the pool costs more). */
const OFF_THREAD_MIN_ROWS = 4096;

export interface EncodeParquetOptions {
  /** Maximum rows per row group (default 65,536). */
  rowGroupRows?: number;
  /** Page compression (default zstd). */
  compression?: ParquetCompression;
  /** Extra footer key/value pairs. `ARROW:schema` and `floe.integrity` are reserved. */
  keyValueMetadata?: Record<string, string>;
  /**
   * Columns to write without dictionary pages. Default: the flat columns in
   * which a sample of values is mostly distinct (see `mostlyDistinct`).
   */
  noDictionary?: readonly string[];
}

export interface OpenParquetOptions {
  /** Object size when known (e.g. from a manifest): saves the HEAD request. */
  size?: number;
  /** Bytes read from the end of the object on open (default 64 KiB). */
  footerHint?: number;
}

/**
 * Statistics of one column in one row group. `min`/`max` are bounds (every
 * non-null value v has min <= v <= max); long strings are stored truncated,
 * so a string bound need not be a value that occurs. Values use the same
 * JavaScript representation as `arrow.Vector.get()`: number for int32,
 * float32, float64, timestamp (epoch ms, fractional) and date32 (epoch ms);
 * bigint for int64; string; boolean. Absent when the writer stored none
 * (binary and nested columns, or a column chunk with only nulls/NaNs).
 */
export interface ColumnStats {
  min?: unknown;
  max?: unknown;
  nullCount?: number;
}

export interface RowGroupInfo {
  numRows: number;
  /** Index of the group's first row within the file. */
  firstRow: number;
  /** Per top-level column. */
  columns: Record<string, ColumnStats>;
}

/**
 * A failure inside a pure helper that does not know which object it is
 * decoding; the public boundary turns it into a FloeError naming the key.
 */
class FormatError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'FormatError';
  }
}

// ---------------------------------------------------------------------------
// Writing

/**
 * apache-arrow (18.x) writes an all-null boolean array to IPC with an empty
 * values buffer, which parquet-wasm's reader rejects ("Need at least 1 bytes
 * for bitmap"). Patch the IPC assembler once: for such arrays, emit a
 * zero-filled values buffer of the right size instead (the validity bitmap
 * and the recorded null count are unchanged, so readers still see nulls).
 */
function patchBoolAssembler(): void {
  const proto = VectorAssembler.prototype as unknown as { visitBool: (this: unknown, d: arrow.Data) => unknown; __floePatched?: boolean };
  if (proto.__floePatched) return;
  const original = proto.visitBool;
  proto.visitBool = function (this: unknown, d: arrow.Data): unknown {
    if (d.length > 0 && d.nullCount >= d.length) {
      const zeros = new Uint8Array(Math.ceil((d.offset + d.length) / 8));
      const view = Object.create(d, { nullCount: { value: 0 }, values: { value: zeros } }) as arrow.Data;
      return original.call(this, view);
    }
    return original.call(this, d);
  };
  proto.__floePatched = true;
}
patchBoolAssembler();

/** Check `table` and `options`, and settle every encoder setting. Pure. */
function planFor(table: arrow.Table, options: EncodeParquetOptions): EncodePlan {
  const rowGroupRows = options.rowGroupRows ?? DEFAULT_ROW_GROUP_ROWS;
  if (!Number.isSafeInteger(rowGroupRows) || rowGroupRows < 1) {
    throw new FloeError('INVALID_ARGUMENT', `rowGroupRows must be a positive integer, got ${String(rowGroupRows)}`);
  }
  const compression: ParquetCompression = options.compression ?? 'zstd';
  if (compression !== 'zstd' && compression !== 'snappy' && compression !== 'none') {
    throw new FloeError('INVALID_ARGUMENT', `unknown compression ${String(compression)}; use zstd, snappy or none`);
  }
  const kv = new Map<string, string>();
  for (const [k, v] of Object.entries(options.keyValueMetadata ?? {})) {
    if (RESERVED_KEYS.has(k)) throw new FloeError('INVALID_ARGUMENT', `footer key ${k} is reserved`);
    if (typeof v !== 'string') throw new FloeError('INVALID_ARGUMENT', `footer value for ${k} must be a string`);
    kv.set(k, v);
  }
  kv.set(INTEGRITY_KEY, INTEGRITY_VALUE);
  if (table.schema.fields.length === 0) {
    throw new FloeError('INVALID_ARGUMENT', 'a data file needs at least one column');
  }
  const names = new Set<string>();
  for (const f of table.schema.fields) {
    if (names.has(f.name)) throw new FloeError('INVALID_ARGUMENT', `duplicate column name ${f.name}`);
    names.add(f.name);
    try {
      checkWritableType(typeOf(f), f.name);
    } catch (err) {
      if (err instanceof FormatError) throw new FloeError(err.code, err.message, { cause: err });
      throw err;
    }
  }
  let noDictionary: string[];
  if (options.noDictionary) {
    noDictionary = [];
    for (const name of options.noDictionary) {
      if (!names.has(name)) throw new FloeError('INVALID_ARGUMENT', `noDictionary names ${JSON.stringify(name)}, which is not a column`);
      noDictionary.push(name);
    }
  } else {
    // Dictionary pages pay off for repetitive columns; for mostly-distinct
    // ones (ids, names, long text) the writer fills a dictionary page up to
    // its limit before falling back, and every point lookup must fetch it.
    noDictionary = table.schema.fields.filter((f) => isDistinctVector(table.getChild(f.name))).map((f) => f.name);
  }
  return { rowGroupRows, compression, keyValueMetadata: [...kv], noDictionary };
}

/** Serialize `table` as one Parquet data file (bytes ready to `put`), on this thread. */
export function encodeParquet(table: arrow.Table, options: EncodeParquetOptions = {}): Uint8Array {
  const plan = planFor(table, options);
  try {
    return encodeIpc(arrow.tableToIPC(table, 'stream'), plan);
  } catch (err) {
    throw new FloeError('INVALID_ARGUMENT', `cannot encode table as Parquet: ${describeError(err)}`, { cause: err });
  }
}

/**
 * A table checked and serialized for the encoder (Arrow IPC plus settings):
 * once made, the table itself may be dropped.
 */
export interface PreparedParquet {
  readonly ipc: Uint8Array;
  readonly plan: EncodePlan;
  readonly rows: number;
}

/** The synchronous first half of `encodeParquetFile`. */
export function prepareParquet(table: arrow.Table, options: EncodeParquetOptions = {}): PreparedParquet {
  const plan = planFor(table, options);
  try {
    return { ipc: arrow.tableToIPC(table, 'stream'), plan, rows: table.numRows };
  } catch (err) {
    throw new FloeError('INVALID_ARGUMENT', `cannot encode table as Parquet: ${describeError(err)}`, { cause: err });
  }
}

/**
 * The bytes and BLAKE3 content hash of a prepared file, encoded on a worker
 * thread when it is large (the same bytes either way), so the caller can
 * prepare the next file meanwhile. The IPC buffer is handed to the worker:
 * do not use `prepared` afterwards.
 */
export async function encodePrepared(prepared: PreparedParquet): Promise<EncodedFile> {
  if (prepared.rows >= OFF_THREAD_MIN_ROWS) return encodeOffThread(prepared.ipc, prepared.plan);
  let bytes: Uint8Array;
  try {
    bytes = encodeIpc(prepared.ipc, prepared.plan);
  } catch (err) {
    throw new FloeError('INVALID_ARGUMENT', `cannot encode table as Parquet: ${describeError(err)}`, { cause: err });
  }
  return { bytes, contentHash: await blake3Hex(bytes) };
}

/** `encodeParquet` plus the BLAKE3 content hash, via `prepareParquet` and `encodePrepared`. */
export async function encodeParquetFile(table: arrow.Table, options: EncodeParquetOptions = {}): Promise<EncodedFile> {
  return encodePrepared(prepareParquet(table, options));
}

function isDistinctVector(vector: arrow.Vector | null): boolean {
  if (!vector || vector.length === 0) return false;
  const type = vector.type as arrow.DataType;
  if (!isFlatType(type) || arrow.DataType.isBool(type)) return false;
  return mostlyDistinct({ length: vector.length, at: (i) => vector.get(i) as unknown });
}

/**
 * True when a sample of a flat column's values is more than half distinct.
 * Small samples (under 64 non-null values) keep the writer's default. `at`
 * gives value i as a row value or as `arrow.Vector.get` would (either works:
 * both map distinct stored values to distinct JS values).
 */
export function mostlyDistinct(values: { readonly length: number; at(i: number): unknown }): boolean {
  const samples = Math.min(values.length, 2048);
  const step = values.length / samples;
  const seen = new Set<unknown>();
  let nonNull = 0;
  for (let i = 0; i < samples; i++) {
    const v = values.at(Math.floor(i * step));
    if (v === null || v === undefined) continue;
    nonNull++;
    seen.add(
      v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1') : v instanceof Date ? v.getTime() : v,
    );
  }
  return nonNull >= 64 && seen.size * 2 > nonNull;
}

/** Reject types floe does not promise to round-trip (and that peers may misread). */
function checkWritableType(type: arrow.DataType, path: string): void {
  if (isFlatType(type)) {
    if (arrow.DataType.isTimestamp(type)) {
      if (type.unit !== arrow.TimeUnit.MICROSECOND || !isUtcZone(type.timezone)) {
        throw new FormatError('INVALID_ARGUMENT', `column ${path}: timestamps must be microseconds in UTC, got ${typeName(type)}`);
      }
    }
    return;
  }
  if (arrow.DataType.isList(type) || arrow.DataType.isFixedSizeList(type)) {
    const child = type.children[0];
    if (!child) throw new FormatError('INVALID_ARGUMENT', `column ${path}: list without an element type`);
    checkWritableType(typeOf(child), `${path}.${child.name}`);
    return;
  }
  throw new FormatError(
    'INVALID_ARGUMENT',
    `column ${path} has unsupported type ${typeName(type)}; data files hold int32, int64, float32, float64, ` +
      'bool, utf8, binary, timestamp[us, UTC], date32, list<T> and fixed_size_list<T>',
  );
}

function isUtcZone(tz: string | null | undefined): boolean {
  return tz === 'UTC' || tz === '+00:00' || tz === 'Etc/UTC' || tz === 'Z';
}

function isFlatType(type: arrow.DataType): boolean {
  return (
    // Predicates by type id: a schema decoded from IPC has generic classes.
    arrow.DataType.isBool(type) ||
    arrow.DataType.isUtf8(type) ||
    arrow.DataType.isBinary(type) ||
    (arrow.DataType.isDate(type) && type.unit === arrow.DateUnit.DAY) ||
    (arrow.DataType.isTimestamp(type) && type.unit === arrow.TimeUnit.MICROSECOND) ||
    (arrow.DataType.isInt(type) && type.isSigned && (type.bitWidth === 32 || type.bitWidth === 64)) ||
    (arrow.DataType.isFloat(type) && (type.precision === arrow.Precision.SINGLE || type.precision === arrow.Precision.DOUBLE))
  );
}

// ---------------------------------------------------------------------------
// Reading

/** hyparquet decodes logical types through these; floe wants physical values. */
const RAW_PARSERS: Partial<ParquetParsers> = {
  timestampFromMilliseconds: (v: bigint) => v,
  timestampFromMicroseconds: (v: bigint) => v,
  timestampFromNanoseconds: (v: bigint) => v,
  dateFromDays: (v: number) => v,
  stringFromBytes: (v: Uint8Array) => v,
};

export interface Extents {
  /** starts[i] is the offset of extent i; starts[n] is the end of the data region. */
  starts: Float64Array;
  crcs: Uint32Array;
}

/** A data file's footer, read and checked (see ParquetFile.open for the request costs). */
export interface CheckedFooter {
  readonly metadata: FileMetaData;
  /** The bytes read from the end of the file, starting at `tailStart`. */
  readonly tail: Uint8Array;
  readonly tailStart: number;
  /** Where page data ends (the checksum table, or the footer, starts). */
  readonly dataEnd: number;
  /** Per-extent CRCs from the checksum trailer; absent for a file written without one. */
  readonly extents: Extents | undefined;
}

/**
 * Read the tail of a `size`-byte data file (one range of `hint` bytes, one
 * more when footer and checksum table do not fit), verify the checksum
 * trailer's CRC over trailer + footer and parse the footer. Shared by the
 * row-group reader (ParquetFile) and the page reader (parquet-pages.ts).
 */
export async function readCheckedFooter(store: ObjectStore, key: string, size: number, hint: number): Promise<CheckedFooter> {
  const corrupt = (why: string, cause?: unknown): FloeError =>
    new FloeError('CORRUPT', `data file ${why}`, { key, backend: store.location, cause });
  if (!Number.isSafeInteger(size) || size < 12) throw corrupt(`is ${size} bytes, too small to be Parquet`);

  // 1. The tail: footer, and usually the checksum trailer and page indexes.
  let tailStart = size - Math.min(size, hint);
  let tail = await store.getRange(key, tailStart, size - tailStart);
  if (tail.length !== size - tailStart) {
    throw corrupt(`is shorter than its expected ${size} bytes (truncated, or replaced)`);
  }
  const u32 = (at: number): number => readU32(tail, at - tailStart);
  if (u32(size - 4) !== PAR1) throw corrupt('does not end with the Parquet magic "PAR1" (not Parquet, or truncated)');
  const footerLength = u32(size - 8);
  const footerStart = size - 8 - footerLength;
  if (footerStart < 4) throw corrupt(`declares a ${footerLength}-byte footer that does not fit in ${size} bytes`);

  // 2. Whatever of footer + trailer the tail missed, in one more request.
  const more = async (from: number): Promise<void> => {
    if (from >= tailStart) return;
    const head = await store.getRange(key, from, tailStart - from);
    if (head.length !== tailStart - from) throw corrupt('changed size while being read');
    const joined = new Uint8Array(size - from);
    joined.set(head, 0);
    joined.set(tail, tailStart - from);
    tail = joined;
    tailStart = from;
  };
  // The trailer's fixed part sits right before the footer. When it is not
  // in the tail, guess its extent table is no bigger than the footer, so
  // one more request usually covers both.
  const fixedAt = footerStart - TRAILER_FIXED;
  const canHaveTrailer = fixedAt >= 4;
  const needed = canHaveTrailer ? fixedAt : footerStart;
  if (needed < tailStart) await more(Math.max(0, needed - (canHaveTrailer ? footerLength : 0)));

  // 3. The trailer, if any, and its CRC over trailer + footer.
  let extents: Extents | undefined;
  let dataEnd = footerStart;
  const magicAt = footerStart - TRAILER_MAGIC.length;
  const hasMagic = canHaveTrailer && TRAILER_MAGIC.every((b, i) => tail[magicAt - tailStart + i] === b);
  if (hasMagic) {
    const count = u32(fixedAt);
    const version = u32(fixedAt + 4);
    const storedCrc = u32(fixedAt + 8);
    const tableAt = fixedAt - count * 8;
    if (tableAt < 4) throw corrupt(`checksum table of ${count} extents does not fit before the footer`);
    await more(tableAt);
    const trailerBytes = tail.subarray(tableAt - tailStart, fixedAt + 8 - tailStart);
    const actual = crc32c(tail.subarray(footerStart - tailStart), crc32c(trailerBytes));
    if (actual !== storedCrc) throw corrupt('footer or checksum table is damaged (crc32c mismatch)');
    if (version !== TRAILER_VERSION) {
      throw new FloeError('UNSUPPORTED_VERSION', `data file checksum trailer version ${version} is newer than this floe reads; upgrade floe`, {
        key,
        backend: store.location,
      });
    }
    const starts = new Float64Array(count + 1);
    const crcs = new Uint32Array(count);
    let at = 0;
    for (let i = 0; i < count; i++) {
      starts[i] = at;
      at += u32(tableAt + i * 8);
      crcs[i] = u32(tableAt + i * 8 + 4);
    }
    starts[count] = at;
    if (at !== tableAt) throw corrupt(`checksum table covers ${at} bytes, not the ${tableAt} before it`);
    extents = { starts, crcs };
    dataEnd = tableAt;
  }

  // 4. The footer itself.
  let metadata: FileMetaData;
  try {
    metadata = parquetMetadata(tail.subarray(footerStart - tailStart), { parsers: RAW_PARSERS, geoparquet: false });
  } catch (err) {
    throw corrupt(`has an unreadable Parquet footer: ${describeError(err)}`, err);
  }
  const integrity = metadata.key_value_metadata?.find((e) => e.key === INTEGRITY_KEY);
  if ((integrity !== undefined) !== hasMagic) {
    throw corrupt(
      hasMagic
        ? `has a checksum trailer but no ${INTEGRITY_KEY} footer key`
        : `declares ${INTEGRITY_KEY} but its checksum trailer is missing or damaged`,
    );
  }
  if (integrity && integrity.value !== INTEGRITY_VALUE) {
    throw new FloeError('UNSUPPORTED_VERSION', `data file integrity scheme ${integrity.value ?? ''} is not supported; upgrade floe`, {
      key,
      backend: store.location,
    });
  }
  return { metadata, tail, tailStart, dataEnd, extents };
}

export class ParquetFile {
  /** Row groups, in file order. */
  readonly rowGroups: readonly RowGroupInfo[];
  readonly #metadata: FileMetaData;
  readonly #extents: Extents | undefined;
  readonly #verified: Uint8Array | undefined;
  readonly #tail: Uint8Array;
  readonly #tailStart: number;
  readonly #dataEnd: number;

  private constructor(
    readonly store: ObjectStore,
    readonly key: string,
    /** Object size in bytes. */
    readonly size: number,
    readonly numRows: number,
    readonly schema: arrow.Schema,
    /** Footer key/value pairs other than `ARROW:schema`. */
    readonly keyValueMetadata: Readonly<Record<string, string>>,
    /** True when the file carries floe's checksum trailer and every byte read is verified. */
    readonly checksummed: boolean,
    state: {
      metadata: FileMetaData;
      rowGroups: RowGroupInfo[];
      extents: Extents | undefined;
      tail: Uint8Array;
      tailStart: number;
      dataEnd: number;
    },
  ) {
    this.rowGroups = state.rowGroups;
    this.#metadata = state.metadata;
    this.#extents = state.extents;
    this.#verified = state.extents ? new Uint8Array(state.extents.crcs.length) : undefined;
    this.#tail = state.tail;
    this.#tailStart = state.tailStart;
    this.#dataEnd = state.dataEnd;
  }

  /**
   * Open a data file: reads the footer (one range request when `size` is
   * given and the footer and checksum table fit in `footerHint` bytes; a HEAD
   * first otherwise; one more range when they do not fit).
   */
  static async open(store: ObjectStore, key: string, options: OpenParquetOptions = {}): Promise<ParquetFile> {
    const hint = options.footerHint ?? DEFAULT_FOOTER_HINT;
    if (!Number.isSafeInteger(hint) || hint < 12) {
      throw new FloeError('INVALID_ARGUMENT', `footerHint must be an integer >= 12, got ${String(hint)}`, { key });
    }
    let size = options.size;
    if (size === undefined) {
      const info = await store.head(key);
      if (!info) throw new FloeError('NOT_FOUND', 'no such data file', { key, backend: store.location });
      size = info.size;
    } else if (!Number.isSafeInteger(size) || size < 0) {
      throw new FloeError('INVALID_ARGUMENT', `size must be a non-negative integer, got ${String(size)}`, { key });
    }
    const corrupt = (why: string, cause?: unknown): FloeError =>
      new FloeError('CORRUPT', `data file ${why}`, { key, backend: store.location, cause });
    const { metadata, tail, tailStart, dataEnd, extents } = await readCheckedFooter(store, key, size, hint);
    const kv: Record<string, string> = {};
    let arrowSchema: string | undefined;
    for (const { key: k, value } of metadata.key_value_metadata ?? []) {
      if (k === ARROW_SCHEMA_KEY) arrowSchema = value;
      else kv[k] = value ?? '';
    }

    let schema: arrow.Schema;
    try {
      schema = arrowSchema !== undefined ? decodeArrowSchema(arrowSchema) : schemaFromParquet(metadata.schema);
    } catch (err) {
      if (err instanceof FormatError) throw new FloeError(err.code, err.message, { key, backend: store.location, cause: err });
      throw corrupt(`has an unreadable Arrow schema: ${describeError(err)}`, err);
    }

    // 5. Row groups and statistics; the layout must agree with the schema.
    const topLevel = new Set(schema.fields.map((f) => f.name));
    const fieldsByName = new Map(schema.fields.map((f) => [f.name, f]));
    const rowGroups: RowGroupInfo[] = [];
    let firstRow = 0;
    for (const [i, rg] of metadata.row_groups.entries()) {
      const numRows = Number(rg.num_rows);
      const columns: Record<string, ColumnStats> = {};
      for (const chunk of rg.columns) {
        const meta = chunk.meta_data;
        if (!meta || chunk.file_path) throw corrupt(`row group ${i} has a column chunk without inline metadata`);
        const name = meta.path_in_schema[0] ?? '';
        const field = fieldsByName.get(name);
        if (!field) throw corrupt(`row group ${i} has column ${meta.path_in_schema.join('.')} that is not in its schema`);
        const start = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
        const end = start + Number(meta.total_compressed_size);
        if (start < 4 || end > dataEnd) throw corrupt(`row group ${i} column ${name} lies outside the data region`);
        if (meta.path_in_schema.length === 1) columns[name] = statsFor(typeOf(field), meta.statistics);
        else columns[name] ??= {};
      }
      for (const name of topLevel) {
        if (!(name in columns)) throw corrupt(`row group ${i} lacks column ${name}`);
      }
      rowGroups.push({ numRows, firstRow, columns });
      firstRow += numRows;
    }
    const numRows = Number(metadata.num_rows);
    if (firstRow !== numRows) throw corrupt(`row groups hold ${firstRow} rows but the footer says ${numRows}`);

    return new ParquetFile(store, key, size, numRows, schema, kv, extents !== undefined, {
      metadata,
      rowGroups,
      extents,
      tail,
      tailStart,
      dataEnd,
    });
  }

  /** One whole row group, optionally only some (top-level) columns, in the order given. */
  async readRowGroup(index: number, columns?: string[]): Promise<arrow.RecordBatch> {
    const rg = this.rowGroups[index];
    if (!Number.isInteger(index) || rg === undefined) {
      throw new FloeError('INVALID_ARGUMENT', `row group ${String(index)} does not exist (the file has ${this.rowGroups.length})`, {
        key: this.key,
      });
    }
    return this.#read(rg.firstRow, rg.firstRow + rg.numRows, columns, false);
  }

  /**
   * Rows [rowStart, rowEnd) across row groups, fetching only the pages that
   * hold them (offset indexes). For point lookups and small ranges.
   */
  async readRows(rowStart: number, rowEnd: number, columns?: string[]): Promise<arrow.RecordBatch> {
    if (!Number.isSafeInteger(rowStart) || !Number.isSafeInteger(rowEnd) || rowStart < 0 || rowEnd < rowStart || rowEnd > this.numRows) {
      throw new FloeError('INVALID_ARGUMENT', `row range [${rowStart}, ${rowEnd}) is not within [0, ${this.numRows}]`, {
        key: this.key,
      });
    }
    return this.#read(rowStart, rowEnd, columns, true);
  }

  async #read(rowStart: number, rowEnd: number, columns: string[] | undefined, pages: boolean): Promise<arrow.RecordBatch> {
    const fields = this.#project(columns);
    const length = rowEnd - rowStart;
    const pieces = new Map<string, ColumnData[]>(fields.map((f) => [f.name, []]));
    if (length > 0 && fields.length > 0) {
      const file: AsyncBuffer = { byteLength: this.size, slice: (start, end) => this.#slice(start, end ?? this.size) };
      try {
        await parquetRead({
          file,
          metadata: this.#metadata,
          rowStart,
          rowEnd,
          columns: fields.map((f) => f.name),
          compressors,
          parsers: RAW_PARSERS,
          geoparquet: false,
          useOffsetIndex: pages,
          onChunk: (chunk) => pieces.get(chunk.columnName)?.push(chunk),
        });
      } catch (err) {
        if (isFloeError(err)) throw err;
        throw new FloeError('CORRUPT', `data file cannot be decoded: ${describeError(err)}`, {
          key: this.key,
          backend: this.store.location,
          cause: err,
        });
      }
    }
    const children: arrow.Data[] = [];
    for (const field of fields) {
      try {
        const values = gather(pieces.get(field.name) ?? [], rowStart, rowEnd);
        children.push(toArrowData(typeOf(field), field.nullable, values, length, field.name));
      } catch (err) {
        if (err instanceof FormatError) throw new FloeError(err.code, err.message, { key: this.key, backend: this.store.location, cause: err });
        throw err;
      }
    }
    const schema = new arrow.Schema(fields, this.schema.metadata);
    const struct = arrow.makeData({ type: new arrow.Struct(fields), length, nullCount: 0, children });
    return new arrow.RecordBatch(schema, struct);
  }

  #project(columns: string[] | undefined): arrow.Field[] {
    if (columns === undefined) return this.schema.fields;
    // Arrow JS derives a batch's length from its columns, so a batch without
    // columns cannot say how many rows it has: the row counts are in rowGroups.
    if (columns.length === 0) throw new FloeError('INVALID_ARGUMENT', 'select at least one column', { key: this.key });
    const byName = new Map(this.schema.fields.map((f) => [f.name, f]));
    const out: arrow.Field[] = [];
    const seen = new Set<string>();
    for (const c of columns) {
      const f = byName.get(c);
      if (!f) throw new FloeError('INVALID_ARGUMENT', `no column ${c} in data file`, { key: this.key });
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(f);
    }
    return out;
  }

  /** The AsyncBuffer behind every decode: whole extents fetched and verified. */
  async #slice(start: number, end: number): Promise<ArrayBuffer> {
    if (!(start >= 0 && end >= start && end <= this.#dataEnd)) {
      throw new FloeError('CORRUPT', `data file metadata points at bytes [${start}, ${end}) outside its data region`, {
        key: this.key,
        backend: this.store.location,
      });
    }
    let from = start;
    let to = end;
    let first = 0;
    let last = -1;
    const ext = this.#extents;
    if (ext && end > start) {
      first = extentAt(ext.starts, start);
      last = extentAt(ext.starts, end - 1);
      from = ext.starts[first] as number;
      to = ext.starts[last + 1] as number;
    }
    let bytes: Uint8Array;
    if (from >= this.#tailStart) {
      bytes = this.#tail.subarray(from - this.#tailStart, to - this.#tailStart);
    } else {
      bytes = await this.store.getRange(this.key, from, to - from);
      if (bytes.length !== to - from) {
        throw new FloeError('CORRUPT', `data file is shorter than its footer says (read ${bytes.length} of ${to - from} bytes at ${from})`, {
          key: this.key,
          backend: this.store.location,
        });
      }
    }
    if (ext && this.#verified) {
      for (let i = first; i <= last; i++) {
        if (this.#verified[i]) continue;
        const s = (ext.starts[i] as number) - from;
        const e = (ext.starts[i + 1] as number) - from;
        if (crc32c(bytes.subarray(s, e)) !== ext.crcs[i]) {
          throw new FloeError('CORRUPT', `data file bytes [${s + from}, ${e + from}) are damaged (crc32c mismatch)`, {
            key: this.key,
            backend: this.store.location,
          });
        }
        this.#verified[i] = 1;
      }
    }
    return bytes.slice(start - from, end - from).buffer;
  }
}

/**
 * Per-file min/max/null count of `columns` (default: all top-level flat
 * columns) over every row group, for manifests. A bound is absent when any
 * row group lacks it, except that all-null row groups do not count.
 */
export function parquetFooterStats(file: ParquetFile, columns?: string[]): Record<string, ColumnStats> {
  const names = columns ?? file.schema.fields.map((f) => f.name);
  const out: Record<string, ColumnStats> = {};
  for (const name of names) {
    const field = file.schema.fields.find((f) => f.name === name);
    if (!field) throw new FloeError('INVALID_ARGUMENT', `no column ${name} in data file`, { key: file.key });
    let min: unknown;
    let max: unknown;
    let nullCount: number | undefined = 0;
    let minKnown = true;
    let maxKnown = true;
    for (const rg of file.rowGroups) {
      const s = rg.columns[name] ?? {};
      nullCount = nullCount === undefined || s.nullCount === undefined ? undefined : nullCount + s.nullCount;
      const allNull = s.nullCount !== undefined && s.nullCount === rg.numRows;
      if (s.min === undefined) minKnown &&= allNull;
      else if (min === undefined || compareStat(s.min, min) < 0) min = s.min;
      if (s.max === undefined) maxKnown &&= allNull;
      else if (max === undefined || compareStat(s.max, max) > 0) max = s.max;
    }
    const stats: ColumnStats = {};
    if (minKnown && min !== undefined) stats.min = min;
    if (maxKnown && max !== undefined) stats.max = max;
    if (nullCount !== undefined && file.rowGroups.length > 0) stats.nullCount = nullCount;
    out[name] = stats;
  }
  return out;
}

/** Order of statistics values: numbers/bigints numerically, strings by UTF-8 bytes (Parquet's order). */
export function compareStat(a: unknown, b: unknown): number {
  if (typeof a === 'string' && typeof b === 'string') return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  throw new FloeError('INVALID_ARGUMENT', `cannot compare statistics values ${typeof a} and ${typeof b}`);
}

// ---------------------------------------------------------------------------
// Helpers: schema

function decodeArrowSchema(base64: string): arrow.Schema {
  const message = Buffer.from(base64, 'base64');
  // An IPC stream is the schema message followed by an end-of-stream marker.
  const stream = new Uint8Array(message.length + 8);
  stream.set(message, 0);
  stream.set([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], message.length);
  const schema = arrow.tableFromIPC(stream).schema;
  for (const f of schema.fields) checkWritableType(typeOf(f), f.name);
  return schema;
}

/** Arrow schema for a Parquet file without `ARROW:schema` (written by another tool). */
function schemaFromParquet(elements: SchemaElement[]): arrow.Schema {
  let at = 1; // element 0 is the root
  const next = (): SchemaElement => {
    const e = elements[at++];
    if (!e) throw new Error('schema ends early');
    return e;
  };
  const unsupported = (e: SchemaElement): FormatError =>
    new FormatError(
      'INVALID_ARGUMENT',
      `Parquet column ${e.name} (${e.type ?? 'group'} ${e.converted_type ?? ''} ${e.logical_type?.type ?? ''}) has no floe type`,
    );
  const field = (e: SchemaElement): arrow.Field => {
    const nullable = e.repetition_type !== 'REQUIRED';
    if (e.repetition_type === 'REPEATED') throw unsupported(e);
    if (!e.num_children) return new arrow.Field(e.name, leafType(e, unsupported), nullable);
    const isList = e.converted_type === 'LIST' || e.logical_type?.type === 'LIST';
    if (!isList || e.num_children !== 1) throw unsupported(e);
    const repeated = next();
    if (repeated.repetition_type !== 'REPEATED' || repeated.num_children !== 1) throw unsupported(e);
    const element = field(next());
    return new arrow.Field(e.name, new arrow.List(element), nullable);
  };
  const root = elements[0];
  if (!root) throw new Error('empty schema');
  const fields: arrow.Field[] = [];
  for (let i = 0; i < (root.num_children ?? 0); i++) fields.push(field(next()));
  return new arrow.Schema(fields);
}

function leafType(e: SchemaElement, unsupported: (e: SchemaElement) => FormatError): arrow.DataType {
  const logical = e.logical_type;
  switch (e.type) {
    case 'BOOLEAN':
      return new arrow.Bool();
    case 'INT32':
      if (e.converted_type === 'DATE' || logical?.type === 'DATE') return new arrow.DateDay();
      if (!e.converted_type || e.converted_type === 'INT_32') return new arrow.Int32();
      break;
    case 'INT64':
      if (logical?.type === 'TIMESTAMP') {
        if (logical.unit === 'MICROS') return new arrow.Timestamp(arrow.TimeUnit.MICROSECOND, logical.isAdjustedToUTC ? 'UTC' : null);
        break;
      }
      if (e.converted_type === 'TIMESTAMP_MICROS') return new arrow.Timestamp(arrow.TimeUnit.MICROSECOND, 'UTC');
      if (!e.converted_type || e.converted_type === 'INT_64') return new arrow.Int64();
      break;
    case 'FLOAT':
      return new arrow.Float32();
    case 'DOUBLE':
      return new arrow.Float64();
    case 'BYTE_ARRAY':
      if (e.converted_type === 'UTF8' || logical?.type === 'STRING') return new arrow.Utf8();
      if (!e.converted_type && !logical) return new arrow.Binary();
      break;
    default:
      break;
  }
  throw unsupported(e);
}

// ---------------------------------------------------------------------------
// Helpers: statistics

const utf8Lenient = new TextDecoder();

function statsFor(type: arrow.DataType, s: Statistics | undefined): ColumnStats {
  const out: ColumnStats = {};
  if (!s) return out;
  if (s.null_count !== undefined) out.nullCount = Number(s.null_count);
  const min = statValue(type, s.min_value);
  const max = statValue(type, s.max_value);
  if (min !== undefined) out.min = min;
  if (max !== undefined) out.max = max;
  return out;
}

function statValue(type: arrow.DataType, v: unknown): unknown {
  if (v === undefined || v === null) return undefined;
  if (arrow.DataType.isUtf8(type)) return v instanceof Uint8Array ? utf8Lenient.decode(v) : undefined;
  if (arrow.DataType.isBool(type)) return typeof v === 'boolean' ? v : undefined;
  if (arrow.DataType.isTimestamp(type)) {
    if (typeof v !== 'bigint') return undefined;
    return arrow.makeVector(arrow.makeData({ type, length: 1, data: BigInt64Array.of(v) })).get(0);
  }
  if (arrow.DataType.isDate(type)) {
    if (typeof v !== 'number') return undefined;
    return arrow.makeVector(arrow.makeData({ type: new arrow.DateDay(), length: 1, data: Int32Array.of(v) })).get(0);
  }
  if (arrow.DataType.isInt(type)) {
    if (type.bitWidth === 64) return typeof v === 'bigint' ? v : undefined;
    return typeof v === 'number' ? v : undefined;
  }
  if (arrow.DataType.isFloat(type)) return typeof v === 'number' && !Number.isNaN(v) ? v : undefined;
  return undefined; // binary and nested columns: no usable bounds
}

// ---------------------------------------------------------------------------
// Helpers: decoding hyparquet output into Arrow

/** The values of rows [rowStart, rowEnd) of one column from its decoded pieces. */
function gather(pieces: ColumnData[], rowStart: number, rowEnd: number): ArrayLike<unknown> {
  const n = rowEnd - rowStart;
  const only = pieces[0];
  if (pieces.length === 1 && only && only.rowStart === rowStart && only.columnData.length === n) return only.columnData;
  const out = new Array<unknown>(n);
  let filled = 0;
  for (const p of pieces) {
    const from = Math.max(p.rowStart, rowStart);
    const to = Math.min(p.rowStart + p.columnData.length, rowEnd);
    for (let r = from; r < to; r++) out[r - rowStart] = p.columnData[r - p.rowStart];
    if (to > from) filled += to - from;
  }
  if (filled !== n) {
    throw new FormatError('CORRUPT', `decoder returned ${filled} of ${n} rows`);
  }
  return out;
}

function bad(path: string, why: string): FormatError {
  return new FormatError('CORRUPT', `column ${path}: ${why}`);
}

interface Validity {
  nullCount: number;
  nullBitmap: Uint8Array | undefined;
}

function validity(values: ArrayLike<unknown>, n: number, nullable: boolean, path: string): Validity {
  let nullCount = 0;
  for (let i = 0; i < n; i++) if (values[i] === null || values[i] === undefined) nullCount++;
  if (nullCount === 0) return { nullCount, nullBitmap: undefined };
  if (!nullable) throw bad(path, 'null in a non-nullable column');
  const nullBitmap = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) {
    if (values[i] !== null && values[i] !== undefined) setBit(nullBitmap, i);
  }
  return { nullCount, nullBitmap };
}

const utf8Encoder = new TextEncoder();

function toArrowData(type: arrow.DataType, nullable: boolean, values: ArrayLike<unknown>, n: number, path: string): arrow.Data {
  if (values.length !== n) throw bad(path, `expected ${n} values, decoded ${values.length}`);
  const { nullCount, nullBitmap } = validity(values, n, nullable, path);

  if (arrow.DataType.isBool(type)) {
    const data = new Uint8Array((n + 7) >> 3);
    for (let i = 0; i < n; i++) if (values[i] === true) setBit(data, i);
    return arrow.makeData({ type, length: n, nullCount, nullBitmap, data });
  }
  if (arrow.DataType.isInt(type) || arrow.DataType.isDate(type) || arrow.DataType.isTimestamp(type)) {
    const wide = arrow.DataType.isTimestamp(type) || (arrow.DataType.isInt(type) && type.bitWidth === 64);
    if (wide) {
      const data = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v === 'bigint') data[i] = v;
        else if (v !== null && v !== undefined) throw bad(path, `expected a 64-bit integer, decoded ${typeof v}`);
      }
      return arrow.makeData({ type: type as arrow.Int64, length: n, nullCount, nullBitmap, data });
    }
    const data = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v === 'number') data[i] = v;
      else if (v !== null && v !== undefined) throw bad(path, `expected a 32-bit integer, decoded ${typeof v}`);
    }
    return arrow.makeData({ type: type as arrow.Int32, length: n, nullCount, nullBitmap, data });
  }
  if (arrow.DataType.isFloat(type)) {
    const data = type.precision === arrow.Precision.SINGLE ? new Float32Array(n) : new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v === 'number') data[i] = v;
      else if (v !== null && v !== undefined) throw bad(path, `expected a float, decoded ${typeof v}`);
    }
    return arrow.makeData({ type: type as arrow.Float64, length: n, nullCount, nullBitmap, data: data as Float64Array });
  }
  if (arrow.DataType.isUtf8(type) || arrow.DataType.isBinary(type)) {
    const parts = new Array<Uint8Array | undefined>(n);
    const valueOffsets = new Int32Array(n + 1);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      let b: Uint8Array | undefined;
      if (v instanceof Uint8Array) b = v;
      else if (typeof v === 'string') b = utf8Encoder.encode(v);
      else if (v !== null && v !== undefined) throw bad(path, `expected bytes, decoded ${typeof v}`);
      parts[i] = b;
      total += b ? b.length : 0;
      if (total > 0x7fffffff) throw new FormatError('LIMIT_EXCEEDED', `column ${path}: more than 2 GiB of bytes in one batch`);
      valueOffsets[i + 1] = total;
    }
    const data = new Uint8Array(total);
    for (let i = 0; i < n; i++) {
      const b = parts[i];
      if (b) data.set(b, valueOffsets[i]);
    }
    return arrow.makeData({ type: type as arrow.Utf8, length: n, nullCount, nullBitmap, valueOffsets, data });
  }
  if (arrow.DataType.isList(type)) {
    const childField = type.children[0] as arrow.Field;
    const valueOffsets = new Int32Array(n + 1);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (isListValue(v)) total += v.length;
      else if (v !== null && v !== undefined) throw bad(path, `expected a list, decoded ${typeof v}`);
      valueOffsets[i + 1] = total;
    }
    const flat = new Array<unknown>(total);
    for (let i = 0, k = 0; i < n; i++) {
      const v = values[i];
      if (isListValue(v)) for (let j = 0; j < v.length; j++) flat[k++] = v[j];
    }
    const child = toArrowData(typeOf(childField), childField.nullable, flat, total, `${path}.${childField.name}`);
    return arrow.makeData({ type, length: n, nullCount, nullBitmap, valueOffsets, child });
  }
  if (arrow.DataType.isFixedSizeList(type)) {
    const childField = type.children[0] as arrow.Field;
    const size = type.listSize;
    const flat = new Array<unknown>(n * size);
    const filler = childField.nullable ? null : zeroOf(typeOf(childField));
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (isListValue(v)) {
        if (v.length !== size) throw bad(path, `expected ${size} elements, decoded ${v.length}`);
        for (let j = 0; j < size; j++) flat[i * size + j] = v[j];
      } else if (v === null || v === undefined) {
        for (let j = 0; j < size; j++) flat[i * size + j] = filler;
      } else {
        throw bad(path, `expected a list, decoded ${typeof v}`);
      }
    }
    const child = toArrowData(typeOf(childField), childField.nullable, flat, n * size, `${path}.${childField.name}`);
    return arrow.makeData({ type, length: n, nullCount, nullBitmap, child });
  }
  throw new FormatError('INVALID_ARGUMENT', `column ${path}: cannot decode type ${typeName(type)}`);
}

/** A decoded list: an array, or a typed array for lists of required numbers. */
function isListValue(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

/** A placeholder element under a null fixed-size list whose elements are non-nullable. */
function zeroOf(type: arrow.DataType): unknown {
  if (arrow.DataType.isFloat(type) || (arrow.DataType.isInt(type) && type.bitWidth !== 64) || arrow.DataType.isDate(type)) return 0;
  if (arrow.DataType.isInt(type) || arrow.DataType.isTimestamp(type)) return 0n;
  if (arrow.DataType.isBool(type)) return false;
  if (arrow.DataType.isUtf8(type) || arrow.DataType.isBinary(type)) return new Uint8Array(0);
  if (arrow.DataType.isList(type)) return [];
  if (arrow.DataType.isFixedSizeList(type)) {
    const child = type.children[0] as arrow.Field;
    return Array.from({ length: type.listSize }, () => (child.nullable ? null : zeroOf(typeOf(child))));
  }
  return null;
}

// ---------------------------------------------------------------------------
// Helpers: bytes

function setBit(bits: Uint8Array, i: number): void {
  bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7));
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16) | ((bytes[at + 3] as number) << 24)) >>> 0;
}

/** Index of the extent containing byte `offset` (binary search over starts). */
function extentAt(starts: Float64Array, offset: number): number {
  let lo = 0;
  let hi = starts.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] as number) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function typeOf(field: arrow.Field): arrow.DataType {
  return field.type as arrow.DataType;
}

function typeName(type: arrow.DataType): string {
  return (type as { toString(): string }).toString();
}

function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
