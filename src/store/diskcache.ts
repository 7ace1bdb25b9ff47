/**
 * Disk read cache for IMMUTABLE objects of a (remote) store, bounded in bytes:
 * the on-disk sibling of CachedStore, for S3-backed databases whose data
 * files are read again and again across process restarts.
 *
 * Contract:
 * - Same predicate rule as CachedStore (default: `.parquet`, `.seg`,
 *   `.arrow`); every other key passes straight through.
 * - `get` of a cacheable key fills the cache with the whole object (if it is
 *   at most `maxObjectBytes`, default maxBytes/4); `getRange` and `head` are
 *   answered from a cached file and otherwise pass through (a range miss is
 *   one inner getRange and fills nothing). A hit costs zero round trips and
 *   one local read.
 * - Each entry is one file `<sha256(key)>.fc`: magic, a JSON header (key,
 *   etag, size), the bytes, and a CRC32C over header and bytes. A fill is
 *   written to a temp file, fsynced and renamed, so after any crash an
 *   entry is complete or absent; a whole-object hit verifies the CRC, a
 *   range hit checks the size; anything that fails is deleted and treated
 *   as a miss. Temp files left by a crash are removed by `open`.
 * - Writes and deletes through the decorator remove the entry before and
 *   after the inner call and stop in-flight fills of that key, as in
 *   CachedStore. Writes by other processes are not seen: immutable only.
 * - Several processes may share a directory: an entry evicted by another
 *   process reads as a miss. Each process bounds only what it tracks, so
 *   give each process its own directory for a strict bound.
 * - `open` rebuilds the index from the directory, oldest modification first,
 *   and evicts down to maxBytes. Nothing here is needed for correctness:
 *   deleting the directory at any time only costs misses.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { asError, FloeError } from '../errors.js';
import { defaultIsImmutable } from './cache.js';
import type { CacheStats } from './cache.js';
import { validateKey, validateRange } from './keys.js';
import type { GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutResult } from './types.js';

export interface DiskCacheOptions {
  /** Cache directory (created if missing). */
  readonly dir: string;
  /** Upper bound on the bytes of cache files this process tracks. */
  readonly maxBytes: number;
  readonly isImmutable?: (key: string) => boolean;
  /** Objects larger than this are not cached (default maxBytes / 4). */
  readonly maxObjectBytes?: number;
}

export interface DiskCacheStats extends CacheStats {
  /** Fills that failed on the cache directory; those reads were served uncached. */
  readonly fillErrors: number;
  readonly lastFillError: string | undefined;
}

const MAGIC = Buffer.from('FLOEDC1\n', 'latin1');
const SUFFIX = '.fc';
const TMP_MARK = '.tmp-';

interface Header {
  readonly key: string;
  readonly etag: string;
  readonly size: number;
}

interface Entry extends Header {
  readonly file: string;
  /** Offset of the object's bytes in the file. */
  readonly dataOffset: number;
  /** Size of the whole file. */
  readonly fileBytes: number;
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';

/** The bytes of one cache file. */
export function encodeEntry(h: Header, bytes: Uint8Array): Buffer {
  const header = Buffer.from(JSON.stringify(h), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32c(body, crc32c(header)));
  return Buffer.concat([MAGIC, len, header, body, crc]);
}

/** Parse the prefix of a cache file: header and where the data starts; null if malformed. */
export function decodeHeader(buf: Buffer): { header: Header; dataOffset: number } | null {
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  const n = buf.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (buf.length < start + n) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.subarray(start, start + n).toString('utf8'));
  } catch {
    // A malformed header is a corrupt entry; the caller deletes it.
    return null;
  }
  const h = parsed as Partial<Header> | null;
  if (!h || typeof h.key !== 'string' || typeof h.etag !== 'string' || !Number.isSafeInteger(h.size) || h.size! < 0) {
    return null;
  }
  return { header: { key: h.key, etag: h.etag, size: h.size! }, dataOffset: start + n };
}

/** Verify and extract a whole cache file; null if corrupt. */
export function decodeEntry(buf: Buffer): { header: Header; bytes: Uint8Array } | null {
  const d = decodeHeader(buf);
  if (!d) return null;
  const end = d.dataOffset + d.header.size;
  if (buf.length !== end + 4) return null;
  const headerBytes = buf.subarray(MAGIC.length + 4, d.dataOffset);
  const body = buf.subarray(d.dataOffset, end);
  if (crc32c(body, crc32c(headerBytes)) !== buf.readUInt32LE(end)) return null;
  const bytes = new Uint8Array(body.length);
  bytes.set(body);
  return { header: d.header, bytes };
}

export class DiskCachedStore implements ObjectStore {
  readonly kind: string;
  readonly location: string;
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #maxObjectBytes: number;
  readonly #isImmutable: (key: string) => boolean;
  /** key -> entry, LRU order (first = least recent). */
  readonly #index = new Map<string, Entry>();
  /** key -> in-flight fills; a write marks them stale. */
  readonly #fills = new Map<string, { state: { stale: boolean }; promise: Promise<GetResult> }>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #coalesced = 0;
  #bypassed = 0;
  #passthrough = 0;
  #evictions = 0;
  #invalidations = 0;
  #fillErrors = 0;
  #lastFillError: string | undefined;

  private constructor(
    readonly inner: ObjectStore,
    options: DiskCacheOptions,
  ) {
    this.kind = inner.kind;
    this.location = inner.location;
    this.#dir = path.resolve(options.dir);
    this.#maxBytes = options.maxBytes;
    this.#maxObjectBytes = options.maxObjectBytes ?? Math.floor(options.maxBytes / 4);
    this.#isImmutable = options.isImmutable ?? defaultIsImmutable;
  }

  /** Create the directory if needed, drop temp files, index existing entries. */
  static async open(inner: ObjectStore, options: DiskCacheOptions): Promise<DiskCachedStore> {
    for (const [what, v] of [
      ['maxBytes', options.maxBytes],
      ['maxObjectBytes', options.maxObjectBytes ?? 0],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 0) {
        throw new FloeError('INVALID_ARGUMENT', `disk cache ${what} must be a non-negative integer, got ${v}`, {
          backend: inner.location,
        });
      }
    }
    const store = new DiskCachedStore(inner, options);
    await store.#load();
    return store;
  }

  stats(): DiskCacheStats {
    return {
      fillErrors: this.#fillErrors,
      lastFillError: this.#lastFillError,
      hits: this.#hits,
      misses: this.#misses,
      coalesced: this.#coalesced,
      bypassed: this.#bypassed,
      passthrough: this.#passthrough,
      evictions: this.#evictions,
      invalidations: this.#invalidations,
      entries: this.#index.size,
      bytes: this.#bytes,
      maxBytes: this.#maxBytes,
    };
  }

  async get(key: string): Promise<GetResult> {
    validateKey(key, this.kind);
    if (!this.#isImmutable(key)) {
      this.#passthrough++;
      return this.inner.get(key);
    }
    const hit = await this.#readWhole(key);
    if (hit) {
      this.#hits++;
      return hit;
    }
    const flight = this.#fills.get(key);
    if (flight) {
      this.#coalesced++;
      const r = await flight.promise;
      return { bytes: copy(r.bytes), etag: r.etag };
    }
    this.#misses++;
    const state = { stale: false };
    const promise = (async () => {
      try {
        const r = await this.inner.get(key);
        if (r.bytes.length > this.#maxObjectBytes) this.#bypassed++;
        else if (!state.stale) await this.#fillOrRecord(key, r, state);
        return r;
      } finally {
        if (this.#fills.get(key)?.state === state) this.#fills.delete(key);
      }
    })();
    this.#fills.set(key, { state, promise });
    const r = await promise;
    // Everyone gets a private copy: the result is shared among the waiters.
    return { bytes: copy(r.bytes), etag: r.etag };
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateKey(key, this.kind);
    validateRange(offset, length, key, this.kind);
    const e = this.#isImmutable(key) ? this.#index.get(key) : undefined;
    if (e) {
      const bytes = await this.#readRange(e, offset, length);
      if (bytes) {
        this.#hits++;
        return bytes;
      }
    }
    this.#passthrough++;
    return this.inner.getRange(key, offset, length);
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key, this.kind);
    const e = this.#isImmutable(key) ? this.#index.get(key) : undefined;
    if (e) {
      this.#touch(e);
      this.#hits++;
      return { size: e.size, etag: e.etag };
    }
    this.#passthrough++;
    return this.inner.head(key);
  }

  put(key: string, bytes: Uint8Array): Promise<PutResult> {
    return this.#write(key, () => this.inner.put(key, bytes));
  }
  putIfAbsent(key: string, bytes: Uint8Array): Promise<PutResult> {
    return this.#write(key, () => this.inner.putIfAbsent(key, bytes));
  }
  putIfMatch(key: string, bytes: Uint8Array, etag: string): Promise<PutResult> {
    return this.#write(key, () => this.inner.putIfMatch(key, bytes, etag));
  }
  delete(key: string): Promise<void> {
    return this.#write(key, () => this.inner.delete(key));
  }
  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    return this.inner.list(prefix, options);
  }

  /** Closes the inner store; the cache files stay for the next open. */
  async close(): Promise<void> {
    for (const f of this.#fills.values()) f.state.stale = true;
    await Promise.allSettled([...this.#fills.values()].map((f) => f.promise));
    await this.inner.close();
  }

  // ---- internals ---------------------------------------------------------

  #fileOf(key: string): string {
    return path.join(this.#dir, createHash('sha256').update(key, 'utf8').digest('hex') + SUFFIX);
  }

  async #write<T>(key: string, run: () => Promise<T>): Promise<T> {
    validateKey(key, this.kind);
    await this.#invalidate(key);
    try {
      return await run();
    } finally {
      await this.#invalidate(key);
    }
  }

  async #invalidate(key: string): Promise<void> {
    const f = this.#fills.get(key);
    if (f) {
      f.state.stale = true;
      this.#fills.delete(key);
    }
    const e = this.#index.get(key);
    if (e) {
      this.#invalidations++;
      await this.#drop(e);
    } else if (this.#isImmutable(key)) {
      // Another process may have filled it; remove the file regardless.
      await this.#unlink(this.#fileOf(key));
    }
  }

  async #drop(e: Entry): Promise<void> {
    if (this.#index.get(e.key) === e) {
      this.#index.delete(e.key);
      this.#bytes -= e.fileBytes;
    }
    await this.#unlink(e.file);
  }

  async #unlink(file: string): Promise<void> {
    try {
      await fs.unlink(file);
    } catch (err) {
      // Already gone (evicted by another process, or never written): fine.
      if (!isMissing(err)) throw this.#ioError(`cannot remove cache file ${file}`, err);
    }
  }

  #ioError(what: string, err: unknown): FloeError {
    return new FloeError('STORAGE_UNAVAILABLE', `disk cache: ${what}: ${asError(err).message}`, {
      backend: `diskcache ${this.#dir}`,
      cause: err,
    });
  }

  #touch(e: Entry): void {
    this.#index.delete(e.key);
    this.#index.set(e.key, e);
  }

  async #readWhole(key: string): Promise<GetResult | null> {
    const e = this.#index.get(key);
    if (!e) return null;
    let buf: Buffer;
    try {
      buf = await fs.readFile(e.file);
    } catch (err) {
      if (!isMissing(err)) throw this.#ioError(`cannot read ${e.file}`, err);
      await this.#drop(e);
      return null;
    }
    const d = decodeEntry(buf);
    if (!d || d.header.key !== key || d.header.etag !== e.etag) {
      await this.#drop(e);
      return null;
    }
    this.#touch(e);
    return { bytes: d.bytes, etag: d.header.etag };
  }

  async #readRange(e: Entry, offset: number, length: number): Promise<Uint8Array | null> {
    const n = Math.max(0, Math.min(length, e.size - offset));
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(e.file, 'r');
    } catch (err) {
      if (!isMissing(err)) throw this.#ioError(`cannot open ${e.file}`, err);
      await this.#drop(e);
      return null;
    }
    try {
      const st = await fh.stat();
      if (st.size !== e.fileBytes) {
        await this.#drop(e);
        return null;
      }
      const out = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(out, got, n - got, e.dataOffset + offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== n) {
        await this.#drop(e);
        return null;
      }
      this.#touch(e);
      return out;
    } finally {
      await fh.close();
    }
  }

  /**
   * Fill, or — when the cache directory fails (disk full, permissions) —
   * record the failure in stats and serve the read uncached: a broken cache
   * costs round trips, never reads.
   */
  async #fillOrRecord(key: string, r: GetResult, state: { stale: boolean }): Promise<void> {
    try {
      await this.#fill(key, r, state);
    } catch (err) {
      this.#fillErrors++;
      this.#lastFillError = asError(err).message;
    }
  }

  async #fill(key: string, r: GetResult, state: { stale: boolean }): Promise<void> {
    const file = this.#fileOf(key);
    const data = encodeEntry({ key, etag: r.etag, size: r.bytes.length }, r.bytes);
    if (data.length > this.#maxBytes) {
      this.#bypassed++;
      return;
    }
    const tmp = `${file}${TMP_MARK}${randomBytes(6).toString('hex')}`;
    try {
      const fh = await fs.open(tmp, 'wx');
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      // A write to the key while we were writing: our bytes may be old.
      if (state.stale) return;
      await fs.rename(tmp, file);
      if (state.stale) {
        // The write began while we renamed; it may already have removed the
        // file, so remove what we just put there ourselves.
        await this.#unlink(file);
        return;
      }
    } catch (err) {
      throw this.#ioError(`cannot write cache entry for ${JSON.stringify(key)}`, err);
    } finally {
      await this.#unlink(tmp);
    }
    const previous = this.#index.get(key);
    if (previous) {
      this.#index.delete(key);
      this.#bytes -= previous.fileBytes;
    }
    const entry: Entry = {
      key,
      etag: r.etag,
      size: r.bytes.length,
      file,
      dataOffset: data.length - 4 - r.bytes.length,
      fileBytes: data.length,
    };
    this.#index.set(key, entry);
    this.#bytes += entry.fileBytes;
    await this.#evict();
  }

  async #evict(): Promise<void> {
    while (this.#bytes > this.#maxBytes) {
      const oldest = this.#index.values().next().value;
      if (!oldest) return;
      this.#evictions++;
      await this.#drop(oldest);
    }
  }

  async #load(): Promise<void> {
    try {
      await fs.mkdir(this.#dir, { recursive: true });
    } catch (err) {
      throw this.#ioError('cannot create the cache directory', err);
    }
    const found: Array<{ entry: Entry; mtimeMs: number }> = [];
    for (const name of await fs.readdir(this.#dir)) {
      const file = path.join(this.#dir, name);
      if (name.includes(TMP_MARK)) {
        await this.#unlink(file); // a fill cut short by a crash
        continue;
      }
      if (!name.endsWith(SUFFIX)) continue; // not ours: leave it alone
      const e = await this.#readHeader(file);
      if (e) found.push(e);
      else await this.#unlink(file);
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const { entry } of found) {
      this.#index.set(entry.key, entry);
      this.#bytes += entry.fileBytes;
    }
    await this.#evict();
  }

  async #readHeader(file: string): Promise<{ entry: Entry; mtimeMs: number } | null> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(file, 'r');
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.#ioError(`cannot open ${file}`, err);
    }
    try {
      const st = await fh.stat();
      const head = Buffer.alloc(Math.min(st.size, 64 * 1024));
      await fh.read(head, 0, head.length, 0);
      const d = decodeHeader(head);
      if (!d || st.size !== d.dataOffset + d.header.size + 4 || this.#fileOf(d.header.key) !== file) return null;
      return {
        entry: { ...d.header, file, dataOffset: d.dataOffset, fileBytes: st.size },
        mtimeMs: st.mtimeMs,
      };
    } finally {
      await fh.close();
    }
  }
}

function copy(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}
