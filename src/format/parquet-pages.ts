/**
 * A page-level reader for floe's data files, for the read path: point
 * lookups fetch and decode single pages, scans decode whole column chunks
 * straight into Arrow buffers (no per-value JavaScript objects).
 *
 * Contract
 * - Reads the same files as `ParquetFile` (src/format/parquet.ts) and holds
 *   them to the same integrity rule: when a file carries floe's checksum
 *   trailer (or declares `floe.integrity`), the trailer CRC is checked on
 *   open and every byte decoded comes from whole extents whose CRC32C has
 *   been checked (once per reader); any mismatch is `CORRUPT` naming the key.
 *   Files without either are read unverified, as ParquetFile does.
 * - Decodes only flat columns (top-level, not repeated) of the physical
 *   types floe writes — BOOLEAN, INT32, INT64, FLOAT, DOUBLE, BYTE_ARRAY —
 *   in data pages v1/v2 with PLAIN, PLAIN_DICTIONARY/RLE_DICTIONARY (and RLE
 *   for booleans). Anything else (lists, vectors, other encodings) raises
 *   `Unsupported`, a plain marker the caller answers by taking ParquetFile's
 *   general path; it never escapes to users.
 * - Decoded values are dense per row: row i of a page or chunk is slot i,
 *   nulls included (zero / empty in the value buffers, cleared in the
 *   validity bitmap, Arrow's layout).
 * - A reader is immutable after open except for its memo of verified
 *   extents and parsed page indexes; it caches no page bytes (the caller's
 *   page cache and the store's cache decorator do that).
 * - zstd pages are decompressed by zstd compiled to WebAssembly
 *   (@foxglove/wasm-zstd), loaded once per process before the first open,
 *   into one reused scratch buffer; other codecs by hyparquet-compressors.
 *   Decoding copies every value out of the decompressed page, so no decoded
 *   structure aliases that buffer.
 */
import { createRequire } from 'node:module';
import * as arrow from 'apache-arrow';
import type { ColumnChunk, ColumnMetaData, CompressionCodec, FileMetaData, PageHeader, SchemaElement } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { readRleBitPackedHybrid } from 'hyparquet/src/encoding.js';
import { deserializeTCompactProtocol } from 'hyparquet/src/thrift.js';
import { compressors } from 'hyparquet-compressors';
import { FloeError, isFloeError } from '../errors.js';
import type { ObjectStore } from '../store/types.js';
import { crc32c } from './checksum.js';
import { DEFAULT_FOOTER_HINT, readCheckedFooter } from './parquet.js';

// ---------------------------------------------------------------------------
// zstd (WASM)

/** The Emscripten module of @foxglove/wasm-zstd (its C wrapper returns -1 on failure). */
interface ZstdModule {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(ptr: number): void;
  _decompress(dst: number, dstCapacity: number, src: number, srcSize: number): number;
  ready: Promise<unknown>;
}
const requireCjs = createRequire(import.meta.url);
let zstd: ZstdModule | undefined;
let zstdLoading: Promise<void> | undefined;
/** Scratch buffers in WASM memory, reused by every call (grown on demand). */
let zIn = 0;
let zInCap = 0;
let zOut = 0;
let zOutCap = 0;

/** Resolves once the WASM zstd decoder is usable (idempotent). */
export function loadZstd(): Promise<void> {
  zstdLoading ??= (async () => {
    // The package's factory, not its wrapper: the wrapper copies every
    // result out of WASM memory and allocates per call.
    const factory = requireCjs('@foxglove/wasm-zstd/dist/wasm-zstd.js') as () => Promise<ZstdModule>;
    const mod = await factory();
    await mod.ready;
    zstd = mod;
  })().catch((err: unknown) => {
    // Let a later open try again rather than fail forever.
    zstdLoading = undefined;
    throw err;
  });
  return zstdLoading;
}

function zstdDecompress(input: Uint8Array, size: number): Uint8Array {
  const z = zstd;
  if (!z) throw new Error('zstd decoder not loaded (call loadZstd first)');
  if (input.length > zInCap) {
    if (zIn) z._free(zIn);
    zInCap = Math.max(input.length, 2 * zInCap, 1 << 16);
    zIn = z._malloc(zInCap);
  }
  if (size > zOutCap) {
    if (zOut) z._free(zOut);
    zOutCap = Math.max(size, 2 * zOutCap, 1 << 17);
    zOut = z._malloc(zOutCap);
  }
  if (!zIn || !zOut) throw new Error('WASM zstd is out of memory');
  // HEAPU8 is replaced when WASM memory grows: read it after allocating.
  z.HEAPU8.set(input, zIn);
  const got = z._decompress(zOut, size, zIn, input.length);
  if (got !== size) throw new Error(got < 0 ? 'zstd frame is damaged' : `zstd frame holds ${got} bytes, header says ${size}`);
  return z.HEAPU8.subarray(zOut, zOut + size);
}

/**
 * `input` decompressed to exactly `size` bytes; throws a plain Error on
 * damage. The result may be a view of a scratch buffer that the next call
 * overwrites: decode it before decompressing anything else.
 */
export function decompress(codec: CompressionCodec, input: Uint8Array, size: number): Uint8Array {
  if (codec === 'UNCOMPRESSED') {
    if (input.length !== size) throw new Error(`uncompressed page is ${input.length} bytes, header says ${size}`);
    return input;
  }
  if (size === 0) return new Uint8Array(0);
  if (codec === 'ZSTD') return zstdDecompress(input, size);
  const fn = compressors[codec];
  if (!fn) throw new Unsupported(`compression ${codec}`);
  const out = fn(input, size);
  if (out.length !== size) throw new Error(`${codec} page decompressed to ${out.length} bytes, header says ${size}`);
  return out;
}

// ---------------------------------------------------------------------------
// Public types

/** Raised for layouts this reader leaves to ParquetFile; never shown to users. */
export class Unsupported extends Error {
  constructor(what: string) {
    super(`not handled by the page reader: ${what}`);
    this.name = 'Unsupported';
  }
}

export type LeafKind = 'bool' | 'int32' | 'int64' | 'float' | 'double' | 'bytes';

/** A flat top-level column of the file. */
export interface Leaf {
  readonly name: string;
  readonly kind: LeafKind;
  /** 1 when the column is nullable (OPTIONAL), else 0. */
  readonly maxDef: number;
  /** Index of the column chunk within each row group. */
  readonly chunk: number;
  readonly element: SchemaElement;
}

/** Dense decoded values of consecutive rows of one column (Arrow layout). */
export interface Decoded {
  readonly kind: LeafKind;
  readonly length: number;
  readonly nullCount: number;
  /** Bit i set when row i is valid; null when no row is null. */
  readonly validity: Uint8Array | null;
  /** int32: Int32Array, int64: BigInt64Array, float: Float32Array, double: Float64Array, bool: packed bits, bytes: data. */
  readonly values: Int32Array | BigInt64Array | Float32Array | Float64Array | Uint8Array;
  /** bytes only: row i is values[offsets[i], offsets[i + 1]). */
  readonly offsets: Int32Array | null;
  /**
   * Dictionary-encoded page kept as such (point reads only): row i is entry
   * `indices[i]` of `dictionary`, and `values`/`offsets` are empty.
   */
  readonly dictionary: Decoded | null;
  readonly indices: Int32Array | null;
}

export interface PageBounds {
  /** Row of the file's row group where each page starts, plus the group's row count at the end. */
  readonly firstRows: Int32Array;
  readonly offsets: Float64Array;
  readonly sizes: Int32Array;
}

/** Page-level min/max of a column (raw physical values), from the ColumnIndex. */
export interface PageStats {
  readonly nullPages: readonly boolean[];
  readonly min: readonly RawValue[];
  readonly max: readonly RawValue[];
  readonly ascending: boolean;
}

export type RawValue = Uint8Array | number | bigint | boolean;

/** Approximate bytes a decoded column holds (for byte-bounded caches). */
export function decodedBytes(d: Decoded): number {
  // Whole backing buffers: `values` may be a view of a larger one.
  return 64 + d.values.buffer.byteLength + (d.offsets?.buffer.byteLength ?? 0) + (d.validity?.buffer.byteLength ?? 0) + (d.indices?.buffer.byteLength ?? 0);
}

// ---------------------------------------------------------------------------
// Opening

export class PageReader {
  readonly #store: ObjectStore;
  readonly key: string;
  readonly size: number;
  readonly metadata: FileMetaData;
  /** Flat top-level columns by name (nested ones are absent). */
  readonly leaves: ReadonlyMap<string, Leaf>;
  /** Top-level column names, flat or not. */
  readonly columns: ReadonlySet<string>;
  /** First row of each row group, plus the file's row count at the end. */
  readonly groupStarts: Float64Array;
  readonly #tail: Uint8Array;
  readonly #tailStart: number;
  readonly #dataEnd: number;
  readonly #extentStarts: Float64Array | null;
  readonly #extentCrcs: Uint32Array | null;
  readonly #verified: Uint8Array | null;
  readonly #pageBounds = new Map<number, PageBounds | null>();
  readonly #pageStats = new Map<number, PageStats | null>();
  readonly #chunkStats = new Map<number, { min: RawValue; max: RawValue } | null>();
  #arrowSchema: arrow.Schema | null | undefined;

  private constructor(
    store: ObjectStore,
    key: string,
    size: number,
    s: {
      metadata: FileMetaData;
      tail: Uint8Array;
      tailStart: number;
      dataEnd: number;
      extentStarts: Float64Array | null;
      extentCrcs: Uint32Array | null;
    },
  ) {
    this.#store = store;
    this.key = key;
    this.size = size;
    this.metadata = s.metadata;
    this.#tail = s.tail;
    this.#tailStart = s.tailStart;
    this.#dataEnd = s.dataEnd;
    this.#extentStarts = s.extentStarts;
    this.#extentCrcs = s.extentCrcs;
    this.#verified = s.extentCrcs ? new Uint8Array(s.extentCrcs.length) : null;

    const leaves = new Map<string, Leaf>();
    const columns = new Set<string>();
    const schema = s.metadata.schema;
    const root = schema[0];
    // Map each top-level field to its leaf, walking the flattened schema.
    let at = 1;
    const flatLeaf = new Map<string, SchemaElement>();
    for (let i = 0; i < (root?.num_children ?? 0); i++) {
      const e = schema[at];
      if (!e) throw this.#corrupt('schema ends early');
      columns.add(e.name);
      if (!e.num_children && e.repetition_type !== 'REPEATED') flatLeaf.set(e.name, e);
      at = skipSubtree(schema, at);
    }
    const first = s.metadata.row_groups[0];
    if (first) {
      first.columns.forEach((c, i) => {
        const path = c.meta_data?.path_in_schema;
        if (!path || path.length !== 1) return;
        const name = path[0]!;
        const e = flatLeaf.get(name);
        if (!e) return;
        const kind = leafKind(e);
        if (kind) leaves.set(name, { name, kind, maxDef: e.repetition_type === 'OPTIONAL' ? 1 : 0, chunk: i, element: e });
      });
    }
    this.leaves = leaves;
    this.columns = columns;
    const starts = new Float64Array(s.metadata.row_groups.length + 1);
    let row = 0;
    s.metadata.row_groups.forEach((rg, g) => {
      starts[g] = row;
      row += Number(rg.num_rows);
      // Every row group must list the leaves at the same positions.
      for (const leaf of leaves.values()) {
        const p = rg.columns[leaf.chunk]?.meta_data?.path_in_schema;
        if (!p || p.length !== 1 || p[0] !== leaf.name) throw this.#corrupt(`row group ${g} does not hold column ${leaf.name} at chunk ${leaf.chunk}`);
      }
    });
    starts[s.metadata.row_groups.length] = row;
    this.groupStarts = starts;
  }

  get backend(): string {
    return this.#store.location;
  }

  get numRowGroups(): number {
    return this.metadata.row_groups.length;
  }

  /** Open a data file by reading its tail (one range request when it fits in `footerHint`). */
  static async open(store: ObjectStore, key: string, size: number, footerHint = DEFAULT_FOOTER_HINT): Promise<PageReader> {
    try {
      await loadZstd();
    } catch (err) {
      throw new FloeError('INVARIANT_VIOLATION', `cannot load the WASM zstd decoder (@foxglove/wasm-zstd): ${errorText(err)}`, { key, cause: err });
    }
    const { metadata, tail, tailStart, dataEnd, extents } = await readCheckedFooter(store, key, size, footerHint);
    return new PageReader(store, key, size, { metadata, tail, tailStart, dataEnd, extentStarts: extents?.starts ?? null, extentCrcs: extents?.crcs ?? null });
  }

  #corrupt(why: string, cause?: unknown): FloeError {
    return new FloeError('CORRUPT', `data file ${why}`, { key: this.key, backend: this.#store.location, cause });
  }

  /** The Arrow schema embedded by the writer (`ARROW:schema`), or null when the file has none. Memoized. */
  arrowSchema(): arrow.Schema | null {
    if (this.#arrowSchema !== undefined) return this.#arrowSchema;
    const b64 = this.metadata.key_value_metadata?.find((kv) => kv.key === 'ARROW:schema')?.value;
    if (b64 === undefined) {
      this.#arrowSchema = null;
      return null;
    }
    try {
      const msg = Buffer.from(b64, 'base64');
      // A schema message plus the end-of-stream marker is a valid IPC stream.
      const stream = new Uint8Array(msg.length + 8);
      stream.set(msg, 0);
      stream.set([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], msg.length);
      this.#arrowSchema = arrow.tableFromIPC(stream).schema;
    } catch (err) {
      throw this.#corrupt(`has an unreadable Arrow schema: ${errorText(err)}`, err);
    }
    return this.#arrowSchema;
  }

  chunk(g: number, leaf: Leaf): { chunk: ColumnChunk; meta: ColumnMetaData } {
    const chunk = this.metadata.row_groups[g]?.columns[leaf.chunk];
    const meta = chunk?.meta_data;
    if (!chunk || !meta) throw this.#corrupt(`row group ${g} has no metadata for column ${leaf.name}`);
    return { chunk, meta };
  }

  /** Verified bytes [start, end) of the data region (whole extents are fetched and checked). */
  async bytes(start: number, end: number): Promise<Uint8Array> {
    if (!(start >= 0 && end >= start && end <= this.#dataEnd)) {
      throw this.#corrupt(`metadata points at bytes [${start}, ${end}) outside its data region`);
    }
    let from = start;
    let to = end;
    let first = 0;
    let last = -1;
    const starts = this.#extentStarts;
    if (starts && end > start) {
      first = extentAt(starts, start);
      last = extentAt(starts, end - 1);
      from = starts[first] as number;
      to = starts[last + 1] as number;
    }
    let got: Uint8Array;
    if (from >= this.#tailStart) {
      got = this.#tail.subarray(from - this.#tailStart, to - this.#tailStart);
    } else {
      got = await this.#store.getRange(this.key, from, to - from);
      if (got.length !== to - from) throw this.#corrupt(`is shorter than its footer says (read ${got.length} of ${to - from} bytes at ${from})`);
    }
    const crcs = this.#extentCrcs;
    const verified = this.#verified;
    if (starts && crcs && verified) {
      for (let i = first; i <= last; i++) {
        if (verified[i]) continue;
        const s = (starts[i] as number) - from;
        const e = (starts[i + 1] as number) - from;
        if (crc32c(got.subarray(s, e)) !== crcs[i]) throw this.#corrupt(`bytes [${s + from}, ${e + from}) are damaged (crc32c mismatch)`);
        verified[i] = 1;
      }
    }
    return got.subarray(start - from, end - from);
  }

  /** Page bounds already parsed (undefined: call `pageBounds`). */
  knownPageBounds(g: number, leaf: Leaf): PageBounds | null | undefined {
    return this.#pageBounds.get(g * 65536 + leaf.chunk);
  }

  /** Page stats already parsed (undefined: call `pageStats`). */
  knownPageStats(g: number, leaf: Leaf): PageStats | null | undefined {
    return this.#pageStats.get(g * 65536 + leaf.chunk);
  }

  /** Page locations of a column chunk (OffsetIndex), or null when the writer wrote none. */
  async pageBounds(g: number, leaf: Leaf): Promise<PageBounds | null> {
    const id = g * 65536 + leaf.chunk;
    const known = this.#pageBounds.get(id);
    if (known !== undefined) return known;
    const { chunk } = this.chunk(g, leaf);
    let out: PageBounds | null = null;
    if (chunk.offset_index_offset !== undefined && chunk.offset_index_length !== undefined) {
      const at = Number(chunk.offset_index_offset);
      const raw = await this.bytes(at, at + chunk.offset_index_length);
      out = this.#guard(`offset index of column ${leaf.name} in row group ${g}`, () => {
        const t = deserializeTCompactProtocol({ view: new DataView(raw.buffer, raw.byteOffset, raw.byteLength), offset: 0 });
        const locs = t.field_1 as Array<{ field_1: bigint; field_2: number; field_3: bigint }>;
        const rows = Number(this.metadata.row_groups[g]!.num_rows);
        const firstRows = new Int32Array(locs.length + 1);
        const offsets = new Float64Array(locs.length);
        const sizes = new Int32Array(locs.length);
        locs.forEach((l, i) => {
          firstRows[i] = Number(l.field_3);
          offsets[i] = Number(l.field_1);
          sizes[i] = l.field_2;
          if (i > 0 && (firstRows[i]) < (firstRows[i - 1] as number)) throw new Error('page rows go backwards');
        });
        firstRows[locs.length] = rows;
        if (locs.length === 0 || firstRows[0] !== 0 || (firstRows[locs.length - 1] as number) > rows) throw new Error('pages do not cover the row group');
        return { firstRows, offsets, sizes };
      });
    }
    this.#pageBounds.set(id, out);
    return out;
  }

  /** Page-level min/max (ColumnIndex) of a column chunk, or null when absent. */
  async pageStats(g: number, leaf: Leaf): Promise<PageStats | null> {
    const id = g * 65536 + leaf.chunk;
    const known = this.#pageStats.get(id);
    if (known !== undefined) return known;
    const { chunk } = this.chunk(g, leaf);
    let out: PageStats | null = null;
    if (chunk.column_index_offset !== undefined && chunk.column_index_length !== undefined) {
      const at = Number(chunk.column_index_offset);
      const raw = await this.bytes(at, at + chunk.column_index_length);
      out = this.#guard(`column index of column ${leaf.name} in row group ${g}`, () => {
        const t = deserializeTCompactProtocol({ view: new DataView(raw.buffer, raw.byteOffset, raw.byteLength), offset: 0 });
        const nullPages = t.field_1 as boolean[];
        const mins = (t.field_2 as Uint8Array[]).map((v) => rawValue(leaf.kind, v));
        const maxs = (t.field_3 as Uint8Array[]).map((v) => rawValue(leaf.kind, v));
        if (mins.length !== nullPages.length || maxs.length !== nullPages.length) throw new Error('column index lists disagree in length');
        return { nullPages, min: mins, max: maxs, ascending: t.field_4 === 1 };
      });
    }
    this.#pageStats.set(id, out);
    return out;
  }

  /** Chunk-level min/max of a column in a row group, raw, when the footer has them (memoized). */
  chunkStats(g: number, leaf: Leaf): { min: RawValue; max: RawValue } | null {
    const id = g * 65536 + leaf.chunk;
    let out = this.#chunkStats.get(id);
    if (out === undefined) {
      const st = this.chunk(g, leaf).meta.statistics;
      const min = st?.min_value;
      const max = st?.max_value;
      out = min === undefined || max === undefined || min instanceof Date || max instanceof Date || typeof min === 'string' || typeof max === 'string' ? null : { min, max };
      this.#chunkStats.set(id, out);
    }
    return out;
  }

  /** The decoded dictionary of a column chunk, or null when it has none. */
  async dictionary(g: number, leaf: Leaf): Promise<Decoded | null> {
    const { meta } = this.chunk(g, leaf);
    if (meta.dictionary_page_offset === undefined) return null;
    const start = Number(meta.dictionary_page_offset);
    const end = Number(meta.data_page_offset);
    if (!(end > start)) throw this.#corrupt(`column ${leaf.name} in row group ${g}: dictionary page is not before the data pages`);
    const bytes = await this.bytes(start, end);
    return this.#guard(`dictionary of column ${leaf.name} in row group ${g}`, () => {
      const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
      const header = parquetHeader(reader);
      if (header.type !== 'DICTIONARY_PAGE' || !header.dictionary_page_header) throw new Error(`expected a dictionary page, found ${header.type}`);
      const body = bytes.subarray(reader.offset, reader.offset + header.compressed_page_size);
      return decodeDictionary(leaf, header, decompress(meta.codec, body, header.uncompressed_page_size));
    });
  }

  /** Rows of page `p` of a chunk (needs its page bounds), decoded. */
  async page(g: number, leaf: Leaf, bounds: PageBounds, p: number, dict: () => Promise<Decoded | null>): Promise<Decoded> {
    const offset = bounds.offsets[p];
    const size = bounds.sizes[p];
    if (offset === undefined || size === undefined) throw new FloeError('INVALID_ARGUMENT', `page ${p} does not exist`, { key: this.key });
    const rows = (bounds.firstRows[p + 1] as number) - (bounds.firstRows[p] as number);
    const bytes = await this.bytes(offset, offset + size);
    const { meta } = this.chunk(g, leaf);
    const where = `page ${p} of column ${leaf.name} in row group ${g}`;
    const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
    const h = this.#guard(where, () => parquetHeader(reader));
    const d = pageEncoding(h) === 'dict' ? await dict() : null;
    return this.#guard(where, () => {
      const body = bytes.subarray(reader.offset, reader.offset + h.compressed_page_size);
      if (body.length !== h.compressed_page_size) throw new Error('page runs past its recorded size');
      const out = new ColumnBuilder(leaf, rows, true);
      out.page(h, body, meta.codec, d);
      return out.finish();
    });
  }

  /** Every row of a column chunk, decoded (one range read of the chunk). */
  async readChunk(g: number, leaf: Leaf): Promise<Decoded> {
    return this.decodeChunk(g, leaf, await this.chunkBytes(g, leaf));
  }

  /** The verified bytes of a whole column chunk (for prefetching ahead of decoding). */
  chunkBytes(g: number, leaf: Leaf): Promise<Uint8Array> {
    const { meta } = this.chunk(g, leaf);
    const start = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
    return this.bytes(start, start + Number(meta.total_compressed_size));
  }

  /**
   * The verified bytes of several column chunks of row group g, read as few
   * ranges as possible: chunks whose gap is small (at most 64 KiB, or a
   * quarter of the bytes wanted) share one request.
   */
  async chunksBytes(g: number, leaves: readonly Leaf[]): Promise<Uint8Array[]> {
    const spans = leaves.map((leaf, i) => {
      const { meta } = this.chunk(g, leaf);
      const start = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
      return { i, start, end: start + Number(meta.total_compressed_size) };
    });
    const wanted = spans.reduce((a, x) => a + (x.end - x.start), 0);
    const maxGap = Math.max(64 * 1024, wanted / 4);
    spans.sort((a, b) => a.start - b.start);
    const out = new Array<Uint8Array>(leaves.length);
    const reads: Promise<void>[] = [];
    for (let k = 0; k < spans.length; ) {
      let j = k + 1;
      let end = spans[k]!.end;
      while (j < spans.length && spans[j]!.start - end <= maxGap) {
        end = Math.max(end, spans[j]!.end);
        j++;
      }
      const group = spans.slice(k, j);
      const from = group[0]!.start;
      reads.push(
        this.bytes(from, end).then((b) => {
          for (const x of group) out[x.i] = b.subarray(x.start - from, x.end - from);
        }),
      );
      k = j;
    }
    await Promise.all(reads);
    return out;
  }

  /** Decode a column chunk from its bytes (as `chunkBytes` returns them). */
  decodeChunk(g: number, leaf: Leaf, bytes: Uint8Array): Decoded {
    const { meta } = this.chunk(g, leaf);
    const rows = Number(this.metadata.row_groups[g]!.num_rows);
    return this.#guard(`column ${leaf.name} in row group ${g}`, () => {
      const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
      // Uncompressed size bounds the bytes of PLAIN pages (dictionary pages may need more).
      const out = new ColumnBuilder(leaf, rows, false, Number(meta.total_uncompressed_size));
      let dict: Decoded | null = null;
      while (out.filled < rows) {
        if (reader.offset >= bytes.length) throw new Error(`column chunk ends after ${out.filled} of ${rows} rows`);
        const h = parquetHeader(reader);
        const body = bytes.subarray(reader.offset, reader.offset + h.compressed_page_size);
        if (body.length !== h.compressed_page_size) throw new Error('page runs past the end of its column chunk');
        reader.offset += h.compressed_page_size;
        if (h.type === 'DICTIONARY_PAGE') {
          dict = decodeDictionary(leaf, h, decompress(meta.codec, body, h.uncompressed_page_size));
        } else if (h.type === 'DATA_PAGE' || h.type === 'DATA_PAGE_V2') {
          out.page(h, body, meta.codec, dict);
        }
        // Index pages (unused by writers) are skipped.
      }
      return out.finish();
    });
  }

  /** Run a decoding step; damage becomes CORRUPT naming the file, Unsupported passes through. */
  #guard<T>(where: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof Unsupported || isFloeError(err)) throw err;
      throw this.#corrupt(`cannot be decoded (${where}): ${errorText(err)}`, err);
    }
  }
}

function skipSubtree(schema: SchemaElement[], at: number): number {
  const e = schema[at];
  let next = at + 1;
  for (let i = 0; i < (e?.num_children ?? 0); i++) next = skipSubtree(schema, next);
  return next;
}

function leafKind(e: SchemaElement): LeafKind | null {
  switch (e.type) {
    case 'BOOLEAN':
      return 'bool';
    case 'INT32':
      return 'int32';
    case 'INT64':
      return 'int64';
    case 'FLOAT':
      return 'float';
    case 'DOUBLE':
      return 'double';
    case 'BYTE_ARRAY':
      return 'bytes';
    default:
      return null;
  }
}

function rawValue(kind: LeafKind, v: Uint8Array): RawValue {
  const view = new DataView(v.buffer, v.byteOffset, v.byteLength);
  switch (kind) {
    case 'bytes':
      return v;
    case 'int32':
      return view.getInt32(0, true);
    case 'int64':
      return view.getBigInt64(0, true);
    case 'float':
      return view.getFloat32(0, true);
    case 'double':
      return view.getFloat64(0, true);
    case 'bool':
      return v[0] === 1;
  }
}

/** Order of raw values of one physical type (bytes: unsigned lexicographic, Parquet's order). */
export function compareRaw(a: RawValue, b: RawValue): number {
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    // A loop beats a native call for the short values keys usually are.
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const x = a[i]!;
      const y = b[i]!;
      if (x !== y) return x < y ? -1 : 1;
    }
    return a.length - b.length;
  }
  if (typeof a === 'boolean' || typeof b === 'boolean') return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

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

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function pageEncoding(h: PageHeader): 'plain' | 'dict' | 'rle' {
  const enc = h.data_page_header?.encoding ?? h.data_page_header_v2?.encoding;
  if (enc === 'PLAIN') return 'plain';
  if (enc === 'PLAIN_DICTIONARY' || enc === 'RLE_DICTIONARY') return 'dict';
  if (enc === 'RLE') return 'rle';
  throw new Unsupported(`page encoding ${String(enc)}`);
}

// ---------------------------------------------------------------------------
// Decoding

function widthOf(kind: LeafKind): number {
  return kind === 'int64' || kind === 'double' ? 8 : kind === 'bool' ? 0 : 4;
}

function decodeDictionary(leaf: Leaf, h: PageHeader, body: Uint8Array): Decoded {
  const dh = h.dictionary_page_header;
  if (!dh) throw new Error('dictionary page without its header');
  if (dh.encoding !== 'PLAIN' && dh.encoding !== 'PLAIN_DICTIONARY') throw new Unsupported(`dictionary encoding ${dh.encoding}`);
  const out = new ColumnBuilder({ ...leaf, maxDef: 0 }, dh.num_values);
  out.plain(body, 0, dh.num_values, null);
  out.filled = dh.num_values;
  return out.finish();
}

/** Accumulates decoded pages of one column into dense Arrow-layout buffers. */
class ColumnBuilder {
  filled = 0;
  nullCount = 0;
  readonly #kind: LeafKind;
  readonly #maxDef: number;
  readonly #rows: number;
  readonly #width: number;
  #validity: Uint8Array | null = null;
  /** Fixed-width values (or packed bits) for all rows. */
  readonly #fixed: Uint8Array;
  readonly #offsets: Int32Array | null;
  #data: Uint8Array;
  #dataLen = 0;
  /** Keep a dictionary-encoded page as indices (a builder for one page only). */
  readonly #keepDict: boolean;
  #dict: Decoded | null = null;
  #indices: Int32Array | null = null;

  constructor(leaf: Pick<Leaf, 'kind' | 'maxDef'>, rows: number, keepDict = false, bytesHint = rows * 8) {
    this.#keepDict = keepDict;
    this.#kind = leaf.kind;
    this.#maxDef = leaf.maxDef;
    this.#rows = rows;
    this.#width = widthOf(leaf.kind);
    if (leaf.kind === 'bytes') {
      this.#fixed = new Uint8Array(0);
      this.#offsets = new Int32Array(rows + 1);
      this.#data = new Uint8Array(keepDict ? 0 : Math.max(64, bytesHint));
    } else {
      this.#fixed = new Uint8Array(leaf.kind === 'bool' ? (rows + 7) >> 3 : rows * this.#width);
      this.#offsets = null;
      this.#data = this.#fixed;
    }
  }

  /** Decode one data page (v1 or v2) given its still-compressed body. */
  page(h: PageHeader, body: Uint8Array, codec: CompressionCodec, dict: Decoded | null): void {
    let count: number;
    let defs: Uint8Array | null = null;
    let values: Uint8Array;
    let at = 0;
    if (h.type === 'DATA_PAGE' && h.data_page_header) {
      const dh = h.data_page_header;
      count = dh.num_values;
      values = decompress(codec, body, h.uncompressed_page_size);
      if (this.#maxDef > 0) {
        if (dh.definition_level_encoding !== 'RLE') throw new Unsupported(`definition levels encoded ${dh.definition_level_encoding}`);
        defs = new Uint8Array(count);
        const r = { view: new DataView(values.buffer, values.byteOffset, values.byteLength), offset: 0 };
        readRleBitPackedHybrid(r, 1, defs);
        at = r.offset;
      }
    } else if (h.type === 'DATA_PAGE_V2' && h.data_page_header_v2) {
      const dh = h.data_page_header_v2;
      count = dh.num_values;
      if (dh.num_rows !== count) throw new Unsupported('repeated values in a flat column');
      const levels = dh.repetition_levels_byte_length + dh.definition_levels_byte_length;
      if (dh.repetition_levels_byte_length !== 0) throw new Unsupported('repetition levels in a flat column');
      if (this.#maxDef > 0 && dh.definition_levels_byte_length > 0) {
        defs = new Uint8Array(count);
        const r = { view: new DataView(body.buffer, body.byteOffset, body.byteLength), offset: 0 };
        readRleBitPackedHybrid(r, 1, defs, dh.definition_levels_byte_length);
      } else if (this.#maxDef > 0 && dh.num_nulls > 0) {
        throw new Error('nulls counted but no definition levels stored');
      }
      const rest = body.subarray(levels);
      values = dh.is_compressed ? decompress(codec, rest, h.uncompressed_page_size - levels) : rest;
    } else {
      throw new Unsupported(`page type ${h.type}`);
    }
    if (this.filled + count > this.#rows) throw new Error(`pages hold more than the ${this.#rows} rows expected`);
    let nonNull = count;
    if (defs) {
      nonNull = 0;
      for (let i = 0; i < count; i++) nonNull += defs[i] as number;
      if (nonNull !== count) this.#startValidity();
      else defs = null;
    }
    this.#valid(defs, count);
    const enc = pageEncoding(h);
    if (enc === 'plain') {
      this.plain(values, at, nonNull, defs);
    } else if (enc === 'dict') {
      if (!dict) throw new Error('dictionary-encoded page without a dictionary page');
      const width = values[at] as number;
      if (width > 32) throw new Error(`dictionary index width ${width}`);
      const idx = new Int32Array(nonNull);
      if (nonNull > 0) {
        const r = { view: new DataView(values.buffer, values.byteOffset, values.byteLength), offset: at + 1 };
        readRleBitPackedHybrid(r, width, idx, values.length - at - 1);
      }
      if (this.#keepDict) this.#keepIndices(dict, idx, defs);
      else this.#fromDict(dict, idx, defs);
    } else {
      if (this.#kind !== 'bool') throw new Unsupported('RLE-encoded values other than booleans');
      const bits = new Uint8Array(nonNull);
      const r = { view: new DataView(values.buffer, values.byteOffset, values.byteLength), offset: at };
      readRleBitPackedHybrid(r, 1, bits);
      this.#bools((i) => bits[i] === 1, nonNull, defs);
    }
    this.filled += count;
  }

  /** The data buffer, with room for `more` bytes past what it holds. */
  #reserve(more: number): Uint8Array {
    const need = this.#dataLen + more;
    if (need > 0x7fffffff) throw new Error('more than 2 GiB of bytes in one column chunk');
    if (need > this.#data.length) {
      const next = new Uint8Array(Math.min(0x7fffffff, Math.max(need, this.#data.length * 2)));
      next.set(this.#data.subarray(0, this.#dataLen));
      this.#data = next;
    }
    return this.#data;
  }

  /** First null seen: every row decoded so far was valid. */
  #startValidity(): void {
    if (this.#validity) return;
    const v = new Uint8Array((this.#rows + 7) >> 3);
    for (let i = 0; i < this.filled; i++) v[i >> 3] = (v[i >> 3] as number) | (1 << (i & 7));
    this.#validity = v;
  }

  /** Record validity of `count` rows starting at `filled`. */
  #valid(defs: Uint8Array | null, count: number): void {
    const v = this.#validity;
    if (!v) return;
    const base = this.filled;
    for (let i = 0; i < count; i++) {
      if (defs === null || defs[i] === 1) {
        const r = base + i;
        v[r >> 3] = (v[r >> 3] as number) | (1 << (r & 7));
      } else {
        this.nullCount++;
      }
    }
  }

  /** PLAIN values: `n` non-null values at `at`, spread over rows per `defs` (null: every row valid). */
  plain(src: Uint8Array, at: number, n: number, defs: Uint8Array | null): void {
    const count = defs ? defs.length : n;
    const base = this.filled;
    switch (this.#kind) {
      case 'bytes': {
        const offs = this.#offsets!;
        const end = src.length;
        // The values' bytes are at most what is left of the page.
        const data = this.#reserve(end - at);
        const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
        const sv = new DataView(src.buffer, src.byteOffset, src.byteLength);
        let pos = at;
        let len = this.#dataLen;
        for (let i = 0; i < count; i++) {
          const r = base + i;
          if (defs !== null && defs[i] !== 1) {
            offs[r + 1] = len;
            continue;
          }
          if (pos + 4 > end) throw new Error('byte array runs past its page');
          const l = src[pos]! | (src[pos + 1]! << 8) | (src[pos + 2]! << 16) | (src[pos + 3]! << 24);
          pos += 4;
          const stop = pos + l;
          if (l < 0 || stop > end) throw new Error('byte array runs past its page');
          if (l > 64) {
            data.set(src.subarray(pos, stop), len);
            len += l;
            pos = stop;
          } else {
            // Short values: four bytes at a time (unaligned DataView access), then the rest.
            for (; pos + 4 <= stop; pos += 4, len += 4) dv.setUint32(len, sv.getUint32(pos, true), true);
            while (pos < stop) data[len++] = src[pos++]!;
          }
          offs[r + 1] = len;
        }
        this.#dataLen = len;
        return;
      }
      case 'bool': {
        if (at + ((n + 7) >> 3) > src.length) throw new Error('boolean values run past their page');
        this.#bools((i) => ((src[at + (i >> 3)]! >> (i & 7)) & 1) === 1, n, defs);
        return;
      }
      default: {
        const w = this.#width;
        if (at + n * w > src.length) throw new Error(`${n} values of ${w} bytes run past their page`);
        if (defs === null) {
          this.#fixed.set(src.subarray(at, at + n * w), base * w);
        } else {
          let k = at;
          for (let i = 0; i < count; i++) {
            if (defs[i] !== 1) continue;
            const o = (base + i) * w;
            for (let b = 0; b < w; b++) this.#fixed[o + b] = src[k + b]!;
            k += w;
          }
        }
      }
    }
  }

  #bools(bit: (i: number) => boolean, n: number, defs: Uint8Array | null): void {
    const count = defs ? defs.length : n;
    const out = this.#fixed;
    const base = this.filled;
    let k = 0;
    for (let i = 0; i < count; i++) {
      if (defs !== null && defs[i] !== 1) continue;
      if (bit(k++)) {
        const r = base + i;
        out[r >> 3] = (out[r >> 3] as number) | (1 << (r & 7));
      }
    }
  }

  #keepIndices(dict: Decoded, idx: Int32Array, defs: Uint8Array | null): void {
    if (this.filled !== 0 || this.#indices) throw new Error('a dictionary page kept as indices must be the only page');
    const size = dict.length;
    const count = defs ? defs.length : idx.length;
    const out = new Int32Array(count);
    let k = 0;
    for (let i = 0; i < count; i++) {
      if (defs !== null && defs[i] !== 1) {
        out[i] = -1;
        continue;
      }
      const j = idx[k++] as number;
      if (j < 0 || j >= size) throw new Error(`dictionary index ${j} out of ${size}`);
      out[i] = j;
    }
    this.#indices = out;
    this.#dict = dict;
  }

  #fromDict(dict: Decoded, idx: Int32Array, defs: Uint8Array | null): void {
    const count = defs ? defs.length : idx.length;
    const base = this.filled;
    const size = dict.length;
    for (let k = 0; k < idx.length; k++) if ((idx[k] as number) >= size || (idx[k] as number) < 0) throw new Error(`dictionary index ${idx[k]} out of ${size}`);
    switch (this.#kind) {
      case 'bytes': {
        const doffs = dict.offsets!;
        const dvals = dict.values as Uint8Array;
        const offs = this.#offsets!;
        let need = 0;
        for (let k = 0; k < idx.length; k++) need += doffs[idx[k]! + 1]! - doffs[idx[k]!]!;
        const data = this.#reserve(need);
        let len = this.#dataLen;
        let k = 0;
        for (let i = 0; i < count; i++) {
          if (defs !== null && defs[i] !== 1) {
            offs[base + i + 1] = len;
            continue;
          }
          const j = idx[k++]!;
          let s = doffs[j]!;
          const e = doffs[j + 1]!;
          if (e - s > 32) {
            data.set(dvals.subarray(s, e), len);
            len += e - s;
          } else {
            while (s < e) data[len++] = dvals[s++]!;
          }
          offs[base + i + 1] = len;
        }
        this.#dataLen = len;
        return;
      }
      case 'bool': {
        const dv = dict.values as Uint8Array;
        this.#bools((k) => ((dv[(idx[k] as number) >> 3]! >> ((idx[k] as number) & 7)) & 1) === 1, idx.length, defs);
        return;
      }
      default: {
        const w = this.#width;
        const dv = dict.values;
        const db = new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength);
        const out = this.#fixed;
        let k = 0;
        for (let i = 0; i < count; i++) {
          if (defs !== null && defs[i] !== 1) continue;
          const s = (idx[k++] as number) * w;
          const o = (base + i) * w;
          for (let b = 0; b < w; b++) out[o + b] = db[s + b]!;
        }
      }
    }
  }

  finish(): Decoded {
    if (this.filled !== this.#rows) throw new Error(`decoded ${this.filled} of ${this.#rows} rows`);
    const validity = this.nullCount > 0 ? this.#validity : null;
    let values: Decoded['values'];
    const buf = this.#fixed;
    switch (this.#kind) {
      case 'bytes':
        // A view, not a copy: the spare capacity is at most what the last growth doubled.
        values = this.#data.subarray(0, this.#dataLen);
        break;
      case 'bool':
        values = buf;
        break;
      case 'int32':
        values = new Int32Array(buf.buffer, buf.byteOffset, this.#rows);
        break;
      case 'int64':
        values = new BigInt64Array(buf.buffer, buf.byteOffset, this.#rows);
        break;
      case 'float':
        values = new Float32Array(buf.buffer, buf.byteOffset, this.#rows);
        break;
      case 'double':
        values = new Float64Array(buf.buffer, buf.byteOffset, this.#rows);
        break;
    }
    if (this.#indices) {
      const values = new Uint8Array(0);
      return { kind: this.#kind, length: this.#rows, nullCount: this.nullCount, validity, values, offsets: null, dictionary: this.#dict, indices: this.#indices };
    }
    return { kind: this.#kind, length: this.#rows, nullCount: this.nullCount, validity, values, offsets: this.#offsets, dictionary: null, indices: null };
  }
}

// ---------------------------------------------------------------------------
// Arrow

/**
 * Decoded column as Arrow Data of `type` (the file's Arrow field type).
 * Throws Unsupported when the physical kind does not fit the type.
 */
/** True when values of this physical kind become Arrow `type` without conversion. */
export function fitsArrow(kind: LeafKind, type: arrow.DataType): boolean {
  const t = type.typeId;
  return (
    (kind === 'bytes' && (t === arrow.Type.Utf8 || t === arrow.Type.Binary)) ||
    (kind === 'int64' && ((t === arrow.Type.Int && (type as arrow.Int).bitWidth === 64) || (t === arrow.Type.Timestamp && (type as arrow.Timestamp).unit === arrow.TimeUnit.MICROSECOND))) ||
    (kind === 'int32' && ((t === arrow.Type.Int && (type as arrow.Int).bitWidth === 32) || (t === arrow.Type.Date && (type as arrow.DateDay).unit === arrow.DateUnit.DAY))) ||
    (kind === 'float' && t === arrow.Type.Float && (type as arrow.Float).precision === arrow.Precision.SINGLE) ||
    (kind === 'double' && t === arrow.Type.Float && (type as arrow.Float).precision === arrow.Precision.DOUBLE) ||
    (kind === 'bool' && t === arrow.Type.Bool)
  );
}

export function toArrow(d: Decoded, type: arrow.DataType): arrow.Data {
  if (d.indices) throw new Unsupported('dictionary indices as Arrow');
  const length = d.length;
  const nullCount = d.nullCount;
  const nullBitmap = d.validity ?? undefined;
  if (!fitsArrow(d.kind, type)) throw new Unsupported(`${d.kind} values as Arrow type id ${type.typeId}`);
  if (d.kind === 'bytes') {
    return arrow.makeData({ type: type as arrow.Utf8, length, nullCount, nullBitmap, valueOffsets: d.offsets!, data: d.values as Uint8Array });
  }
  return arrow.makeData({ type: type as arrow.Int32, length, nullCount, nullBitmap, data: d.values as Int32Array });
}
