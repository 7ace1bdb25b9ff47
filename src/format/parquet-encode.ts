/**
 * The byte-producing half of the data-file writer: Arrow IPC stream in,
 * finished floe data file out (Parquet from parquet-wasm, then floe's
 * checksum trailer inserted in front of the footer; src/format/parquet.ts
 * describes the layout and is the public API).
 *
 * Contract. `encodeIpc` is a pure function of its inputs: the same IPC bytes
 * and plan give the same output bytes, on any thread (recovery relies on
 * this when it re-encodes a file to compare it with one already written).
 * It holds no state besides parquet-wasm's module, whose linear memory grows
 * to the largest file encoded and never shrinks.
 *
 * Off-thread encoding. Large files are encoded by a small pool of worker
 * threads (`encodeOffThread`), so the caller's thread can validate and build
 * the next file meanwhile. Workers start on first use, are unreferenced
 * while idle (they never keep a process alive) and are replaced if one dies;
 * a request to a dying worker fails with INVARIANT_VIOLATION, an encoding
 * error with INVALID_ARGUMENT, like the in-thread path. Nothing here touches
 * a store, so a crash leaves nothing behind.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { parquetMetadata, readOffsetIndex } from 'hyparquet';
import { FloeError } from '../errors.js';
import { blake3HexSync, crc32c } from './checksum.js';

type ParquetWasm = typeof import('parquet-wasm');

/** Footer key marking a file that carries floe's checksum trailer. */
export const INTEGRITY_KEY = 'floe.integrity';
export const INTEGRITY_VALUE = 'crc32c-extents/1';
export const TRAILER_MAGIC = new TextEncoder().encode('FLOE.EXT');
export const TRAILER_VERSION = 1;
/** count + version + crc + magic */
export const TRAILER_FIXED = 4 + 4 + 4 + TRAILER_MAGIC.length;
/** Longest checksummed extent. */
export const MAX_EXTENT = 1 << 20;
/** Target uncompressed size of one data page. */
export const DATA_PAGE_BYTES = 64 * 1024;

export type ParquetCompression = 'zstd' | 'snappy' | 'none';

/** Everything the encoder needs besides the data (plain data: it crosses threads). */
export interface EncodePlan {
  readonly rowGroupRows: number;
  readonly compression: ParquetCompression;
  /** Footer key/value pairs, the integrity key included. */
  readonly keyValueMetadata: ReadonlyArray<readonly [string, string]>;
  /** Columns written without dictionary pages. */
  readonly noDictionary: readonly string[];
}

export interface EncodedFile {
  readonly bytes: Uint8Array;
  /** BLAKE3-256 hex of `bytes` (what manifests record). */
  readonly contentHash: string;
}

// parquet-wasm's Node build compiles and instantiates its WASM synchronously
// when required, so it is loaded on first use only: readers never need it.
const requireCjs = createRequire(import.meta.url);
let wasm: ParquetWasm | undefined;
function parquetWasm(): ParquetWasm {
  wasm ??= requireCjs('parquet-wasm') as ParquetWasm;
  return wasm;
}

/** Size of this thread's parquet-wasm linear memory, or null when it was never loaded. */
export function encoderMemoryBytes(): number | null {
  if (!wasm) return null;
  // The d.ts names WebAssembly.Memory, which lib ES2023 lacks: read it structurally.
  return (wasm.wasmMemory() as unknown as { buffer: ArrayBuffer }).buffer.byteLength;
}

/**
 * Encode one Arrow IPC stream as a floe data file. Throws whatever
 * parquet-wasm throws (callers wrap it with the object's context).
 */
export function encodeIpc(ipc: Uint8Array, plan: EncodePlan): Uint8Array {
  const pw = parquetWasm();
  // Each builder call consumes the builder (Rust by-value self): always reassign.
  let props = new pw.WriterPropertiesBuilder()
    .setCompression(
      plan.compression === 'zstd' ? pw.Compression.ZSTD : plan.compression === 'snappy' ? pw.Compression.SNAPPY : pw.Compression.UNCOMPRESSED,
    )
    .setMaxRowGroupSize(plan.rowGroupRows)
    // Small data pages make point reads cheap: a lookup fetches and
    // decompresses one page per column, not a megabyte of them. Measured on
    // 50k rows: one-row read 96 ms at 1 MiB pages, 17 ms at 64 KiB, for +5%
    // file size.
    .setDataPageSizeLimit(DATA_PAGE_BYTES)
    .setStatisticsEnabled(pw.EnabledStatistics.Page)
    .setKeyValueMetadata(new Map(plan.keyValueMetadata));
  for (const name of plan.noDictionary) props = props.setColumnDictionaryEnabled(name, false);
  const table = pw.Table.fromIPCStream(ipc);
  return addTrailer(pw.writeParquet(table, props.build()));
}

/** Insert the checksum trailer in front of the footer of a freshly written file. */
function addTrailer(raw: Uint8Array): Uint8Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const footerLength = view.getUint32(raw.length - 8, true);
  const dataEnd = raw.length - 8 - footerLength;
  const md = parquetMetadata(raw);

  const cuts = new Set<number>([0, 4, dataEnd]);
  const cut = (offset: bigint | number | undefined, length?: bigint | number): void => {
    if (offset === undefined) return;
    const start = Number(offset);
    if (start >= 0 && start <= dataEnd) cuts.add(start);
    if (length !== undefined) {
      const end = start + Number(length);
      if (end >= 0 && end <= dataEnd) cuts.add(end);
    }
  };
  for (const rg of md.row_groups) {
    for (const chunk of rg.columns) {
      const meta = chunk.meta_data;
      if (meta) {
        const start = meta.dictionary_page_offset ?? meta.data_page_offset;
        cut(start, meta.total_compressed_size);
        cut(meta.data_page_offset);
        cut(meta.bloom_filter_offset, meta.bloom_filter_length);
      }
      cut(chunk.column_index_offset, chunk.column_index_length);
      if (chunk.offset_index_offset !== undefined && chunk.offset_index_length !== undefined) {
        const at = Number(chunk.offset_index_offset);
        cut(at, chunk.offset_index_length);
        const index = readOffsetIndex({ view: new DataView(raw.buffer, raw.byteOffset + at, chunk.offset_index_length), offset: 0 });
        for (const page of index.page_locations) cut(page.offset, page.compressed_page_size);
      }
    }
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  const lengths: number[] = [];
  for (let i = 1; i < sorted.length; i++) {
    let len = (sorted[i] as number) - (sorted[i - 1] as number);
    while (len > MAX_EXTENT) {
      lengths.push(MAX_EXTENT);
      len -= MAX_EXTENT;
    }
    if (len > 0) lengths.push(len);
  }

  const trailerLength = lengths.length * 8 + TRAILER_FIXED;
  const out = new Uint8Array(raw.length + trailerLength);
  out.set(raw.subarray(0, dataEnd), 0);
  const tv = new DataView(out.buffer, dataEnd, trailerLength);
  let at = 0;
  let pos = 0;
  for (const len of lengths) {
    tv.setUint32(pos, len, true);
    tv.setUint32(pos + 4, crc32c(raw.subarray(at, at + len)), true);
    at += len;
    pos += 8;
  }
  tv.setUint32(pos, lengths.length, true);
  tv.setUint32(pos + 4, TRAILER_VERSION, true);
  const covered = crc32c(raw.subarray(dataEnd), crc32c(out.subarray(dataEnd, dataEnd + pos + 8)));
  tv.setUint32(pos + 8, covered, true);
  out.set(TRAILER_MAGIC, dataEnd + pos + 12);
  out.set(raw.subarray(dataEnd), dataEnd + trailerLength);
  return out;
}

// ---------------------------------------------------------------------------
// The worker pool

/** Message to a worker. */
export type EncodeRequest =
  | { readonly id: number; readonly ipc: Uint8Array; readonly plan: EncodePlan }
  /** How large the thread's parquet-wasm memory is (diagnostics). */
  | { readonly id: number; readonly memory: true };

/** Message from a worker. */
export type EncodeReply =
  | { readonly id: number; readonly ok: true; readonly bytes: Uint8Array }
  | { readonly id: number; readonly ok: true; readonly memoryBytes: number | null }
  | { readonly id: number; readonly ok: false; readonly message: string };

interface Pending {
  resolve: (reply: EncodeReply & { ok: true }) => void;
  reject: (err: unknown) => void;
}

class EncoderWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #dead: Error | null = null;

  constructor(onExit: (w: EncoderWorker) => void) {
    this.#worker = new Worker(new URL('./parquet-worker.js', import.meta.url));
    this.#worker.unref();
    this.#worker.on('message', (m: EncodeReply) => {
      const p = this.#pending.get(m.id);
      if (!p) return; // a reply to nobody cannot happen: ids are unique per worker
      this.#pending.delete(m.id);
      if (this.#pending.size === 0) this.#worker.unref();
      if (m.ok) p.resolve(m);
      else p.reject(new FloeError('INVALID_ARGUMENT', `cannot encode table as Parquet: ${m.message}`));
    });
    const fail = (err: Error): void => {
      this.#dead ??= err;
      for (const p of this.#pending.values()) {
        p.reject(new FloeError('INVARIANT_VIOLATION', `the Parquet encoder thread stopped: ${err.message}`, { cause: err }));
      }
      this.#pending.clear();
      onExit(this);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
  }

  get load(): number {
    return this.#pending.size;
  }

  get dead(): boolean {
    return this.#dead !== null;
  }

  async encode(id: number, ipc: Uint8Array, plan: EncodePlan): Promise<EncodedFile> {
    // Hand the bytes over without a copy when the view spans its whole buffer.
    const own = ipc.byteOffset === 0 && ipc.byteLength === ipc.buffer.byteLength && ipc.buffer instanceof ArrayBuffer;
    const data = own ? ipc : ipc.slice();
    const reply = await this.#request({ id, ipc: data, plan }, [data.buffer as ArrayBuffer]);
    if (!('bytes' in reply)) throw new FloeError('INVARIANT_VIOLATION', 'the Parquet encoder thread answered a file request with no bytes');
    // The hash is computed here, not on the encoder thread: encoding is the
    // longer stage of an append's pipeline, so it gets the least work.
    return { bytes: reply.bytes, contentHash: blake3HexSync(reply.bytes) };
  }

  /** Terminate the thread; requests in flight fail (see the 'exit' handler). */
  async stop(): Promise<void> {
    await this.#worker.terminate();
  }

  async memoryBytes(id: number): Promise<number | null> {
    const reply = await this.#request({ id, memory: true }, []);
    return 'memoryBytes' in reply ? reply.memoryBytes : null;
  }

  #request(msg: EncodeRequest, transfer: ArrayBuffer[]): Promise<EncodeReply & { ok: true }> {
    return new Promise((resolve, reject) => {
      if (this.#dead) {
        reject(new FloeError('INVARIANT_VIOLATION', `the Parquet encoder thread stopped: ${this.#dead.message}`, { cause: this.#dead }));
        return;
      }
      this.#pending.set(msg.id, { resolve, reject });
      // A pending request keeps the process alive until its reply arrives.
      this.#worker.ref();
      this.#worker.postMessage(msg, transfer);
    });
  }
}

let workers: EncoderWorker[] = [];
let nextId = 1;

/** Encoder threads in the pool (one per core beyond the first, at least one, at most two). */
export const ENCODER_THREADS = Math.max(1, Math.min(2, os.availableParallelism() - 1));

/**
 * `encodeIpc` on a pool thread, plus the content hash. The IPC buffer is
 * transferred (the caller must not use it afterwards) when `ipc` spans its
 * whole buffer, else copied.
 */
export function encodeOffThread(ipc: Uint8Array, plan: EncodePlan): Promise<EncodedFile> {
  workers = workers.filter((w) => !w.dead);
  let w = workers.find((x) => x.load === 0);
  if (!w && workers.length < ENCODER_THREADS) {
    w = new EncoderWorker((gone) => {
      workers = workers.filter((x) => x !== gone);
    });
    workers.push(w);
  }
  w ??= workers.reduce((a, b) => (b.load < a.load ? b : a));
  return w.encode(nextId++, ipc, plan);
}

/** parquet-wasm memory of each live encoder thread, in bytes (null: never loaded there). Diagnostics. */
export function encoderThreadMemory(): Promise<Array<number | null>> {
  return Promise.all(workers.filter((w) => !w.dead).map((w) => w.memoryBytes(nextId++)));
}

/**
 * Stop every encoder thread, returning its memory (parquet-wasm's never
 * shrinks) to the system. Encodes in flight fail with INVARIANT_VIOLATION;
 * the next one starts a fresh thread.
 */
export async function stopEncoderThreads(): Promise<void> {
  const all = workers;
  workers = [];
  await Promise.all(all.map((w) => w.stop()));
}
