/**
 * Per-database caches of immutable objects that reads touch again and again:
 * opened Parquet footers (metadata + schema, for ParquetFile and for the
 * page reader), decoded deletion bitmaps, and decoded pages.
 *
 * Every cached thing derives from an immutable object (a data file never
 * changes; a bitmap change is a new object), so an entry can never be stale;
 * entries are dropped only to bound memory: footers, bitmaps and key indexes
 * by count (LRU), decoded pages by bytes (LRU over `cacheBytes`, each entry
 * charged the size of its buffers; one entry larger than a quarter of the
 * budget is handed out but not kept). Concurrent loads of one page share one
 * decode. A failed load is never cached. Nothing here is durable.
 */
import type { RoaringBitmap32 } from '../format/bitmap.js';
import { decodeBitmap } from '../format/bitmap.js';
import { ParquetFile } from '../format/parquet.js';
import { PageReader } from '../format/parquet-pages.js';
import type { ObjectStore } from '../store/types.js';
import type { DataFileEntry } from './manifest.js';

/** Default budget of decoded pages per database. */
export const DEFAULT_PAGE_CACHE_BYTES = 64 * 1024 * 1024;

/** A byte-bounded LRU of resolved values. */
export class ByteLru<V> {
  readonly #map = new Map<string, { value: V; bytes: number }>();
  #bytes = 0;
  constructor(readonly maxBytes: number) {}
  get bytes(): number {
    return this.#bytes;
  }
  get size(): number {
    return this.#map.size;
  }
  get(k: string): V | undefined {
    const e = this.#map.get(k);
    if (e === undefined) return undefined;
    this.#map.delete(k);
    this.#map.set(k, e);
    return e.value;
  }
  /** Keep `value` unless it alone exceeds a quarter of the budget. */
  set(k: string, value: V, bytes: number): void {
    const old = this.#map.get(k);
    if (old) {
      this.#map.delete(k);
      this.#bytes -= old.bytes;
    }
    if (bytes > this.maxBytes / 4) return;
    this.#map.set(k, { value, bytes });
    this.#bytes += bytes;
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#map.entries().next().value;
      if (oldest === undefined) break;
      this.#map.delete(oldest[0]);
      this.#bytes -= oldest[1].bytes;
    }
  }
}

class Lru<V> {
  readonly #map = new Map<string, V>();
  constructor(readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.#map.get(k);
    if (v !== undefined) {
      this.#map.delete(k);
      this.#map.set(k, v);
    }
    return v;
  }
  delete(k: string): void {
    this.#map.delete(k);
  }
  set(k: string, v: V): void {
    this.#map.delete(k);
    this.#map.set(k, v);
    while (this.#map.size > this.max) {
      const oldest = this.#map.keys().next().value;
      if (oldest === undefined) break;
      this.#map.delete(oldest);
    }
  }
}

export class FileCache {
  readonly #footers: Lru<Promise<ParquetFile>>;
  readonly #bitmaps: Lru<Promise<RoaringBitmap32>>;
  readonly #keyIndexes: Lru<Promise<Map<string, number>>>;
  readonly #readers: Lru<Promise<PageReader>>;
  /** Resolved readers and bitmaps, so a warm lookup need not await. */
  readonly #readyReaders: Lru<PageReader>;
  readonly #readyBitmaps: Lru<RoaringBitmap32 | null>;
  readonly #pages: ByteLru<unknown>;
  readonly #loading = new Map<string, Promise<unknown>>();

  constructor(
    readonly store: ObjectStore,
    options: { maxFiles?: number; maxBitmaps?: number; maxKeyIndexes?: number; cacheBytes?: number } = {},
  ) {
    this.#footers = new Lru(options.maxFiles ?? 512);
    this.#bitmaps = new Lru(options.maxBitmaps ?? 512);
    this.#keyIndexes = new Lru(options.maxKeyIndexes ?? 64);
    this.#readers = new Lru(options.maxFiles ?? 512);
    this.#readyReaders = new Lru(options.maxFiles ?? 512);
    this.#readyBitmaps = new Lru(options.maxBitmaps ?? 512);
    this.#pages = new ByteLru(options.cacheBytes ?? DEFAULT_PAGE_CACHE_BYTES);
  }

  /** Bytes of decoded pages held, and their budget. */
  pageCacheStats(): { bytes: number; entries: number; maxBytes: number } {
    return { bytes: this.#pages.bytes, entries: this.#pages.size, maxBytes: this.#pages.maxBytes };
  }

  /** The page reader of a data file (footer parsed once, then cached). */
  reader(f: DataFileEntry): Promise<PageReader> {
    let p = this.#readers.get(f.key);
    if (!p) {
      p = PageReader.open(this.store, f.key, f.size).then((r) => {
        this.#readyReaders.set(f.key, r);
        return r;
      });
      this.#readers.set(f.key, p);
      // A failed open must not stay cached; the caller still sees the error.
      void p.catch(() => this.#readers.delete(f.key));
    }
    return p;
  }

  /** The reader if it is already open, without waiting. */
  readyReader(f: DataFileEntry): PageReader | undefined {
    return this.#readyReaders.get(f.key);
  }

  /** The deletion bitmap if already loaded (null: the file has none), without waiting. */
  readyDeleted(f: DataFileEntry): RoaringBitmap32 | null | undefined {
    if (!f.deletes) return null;
    return this.#readyBitmaps.get(f.deletes.key);
  }

  /**
   * A decoded structure (page, dictionary, key directory) kept in the
   * byte-bounded cache under `key`; `load` runs once for concurrent callers.
   */
  cached<T>(key: string, load: () => Promise<{ value: T; bytes: number }>): Promise<T> {
    const hit = this.#pages.get(key);
    if (hit !== undefined) return Promise.resolve(hit as T);
    let p = this.#loading.get(key) as Promise<T> | undefined;
    if (!p) {
      p = load().then(
        ({ value, bytes }) => {
          this.#loading.delete(key);
          this.#pages.set(key, value, bytes);
          return value;
        },
        (err: unknown) => {
          this.#loading.delete(key);
          throw err;
        },
      );
      this.#loading.set(key, p);
    }
    return p;
  }

  /** A cached decoded structure, without waiting (undefined when not cached). */
  peek<T>(key: string): T | undefined {
    return this.#pages.get(key) as T | undefined;
  }

  /**
   * Encoded primary key -> row index within row group `g` of the file: the
   * key column decoded once and kept (LRU, bounded by count), so repeated
   * point lookups in the same row group cost a Map lookup instead of a
   * decode of the whole key column.
   */
  keyIndex(f: DataFileEntry, g: number, build: () => Promise<Map<string, number>>): Promise<Map<string, number>> {
    const k = `${f.key}#${g}`;
    let p = this.#keyIndexes.get(k);
    if (!p) {
      p = build();
      this.#keyIndexes.set(k, p);
      void p.catch(() => this.#keyIndexes.delete(k));
    }
    return p;
  }

  /** The opened data file of a manifest entry. */
  file(f: DataFileEntry): Promise<ParquetFile> {
    let p = this.#footers.get(f.key);
    if (!p) {
      p = ParquetFile.open(this.store, f.key, { size: f.size });
      this.#footers.set(f.key, p);
    }
    // A failed open must not stay cached; the caller still sees the error.
    void p.catch(() => this.#footers.delete(f.key));
    return p;
  }

  /** Rows of the data file masked by its current bitmap (empty when none). */
  async deleted(f: DataFileEntry): Promise<RoaringBitmap32 | null> {
    if (!f.deletes) return null;
    const key = f.deletes.key;
    let p = this.#bitmaps.get(key);
    if (!p) {
      p = this.store.get(key).then(({ bytes }) => {
        const rows = decodeBitmap(bytes, key).rows;
        this.#readyBitmaps.set(key, rows);
        return rows;
      });
      this.#bitmaps.set(key, p);
    }
    try {
      return await p;
    } catch (err) {
      this.#bitmaps.delete(key);
      throw err;
    }
  }
}
