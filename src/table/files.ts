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
import { FloeError } from '../errors.js';
import type { RoaringBitmap32 } from '../format/bitmap.js';
import { decodeBitmap } from '../format/bitmap.js';
import { ParquetFile } from '../format/parquet.js';
import { PageReader } from '../format/parquet-pages.js';
import type { ObjectStore } from '../store/types.js';
import type { DataFileEntry } from './manifest.js';

/** Default budget of decoded pages per database. */
export const DEFAULT_PAGE_CACHE_BYTES = 64 * 1024 * 1024;

/** One cached decoded structure, owned by the slot map of its file. */
interface PageEntry {
  readonly slots: Map<number, PageEntry>;
  readonly id: number;
  readonly value: unknown;
  readonly bytes: number;
  /** Touched since the clock hand last passed (second chance). */
  used: boolean;
}

/**
 * Byte-bounded cache of decoded structures with CLOCK eviction (an LRU
 * approximation whose hit path only sets a flag). Entries live in per-file
 * slot maps keyed by small numbers, so a hit costs one numeric Map lookup.
 * Invariant: `bytes` is the sum of the entries' charges and never exceeds
 * `maxBytes` after `add` returns.
 */
export class PageCache {
  readonly #ring = new Set<PageEntry>();
  #bytes = 0;
  evictions = 0;
  constructor(readonly maxBytes: number) {
    if (!(maxBytes >= 0)) throw new FloeError('INVALID_ARGUMENT', `cacheBytes must be >= 0, got ${String(maxBytes)}`);
  }
  get bytes(): number {
    return this.#bytes;
  }
  get entries(): number {
    return this.#ring.size;
  }
  get<T>(slots: Map<number, PageEntry>, id: number): T | undefined {
    const e = slots.get(id);
    if (e === undefined) return undefined;
    e.used = true;
    return e.value as T;
  }
  /** Keep `value` unless it alone exceeds a quarter of the budget. */
  add(slots: Map<number, PageEntry>, id: number, value: unknown, bytes: number): void {
    const old = slots.get(id);
    if (old) this.#drop(old);
    if (bytes > this.maxBytes / 4) return;
    const e: PageEntry = { slots, id, value, bytes, used: false };
    slots.set(id, e);
    this.#ring.add(e);
    this.#bytes += bytes;
    // Each entry gets at most one second chance per pass, so this ends.
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#ring.values().next().value;
      if (oldest === undefined) break;
      this.#ring.delete(oldest);
      if (oldest.used && oldest !== e) {
        oldest.used = false;
        this.#ring.add(oldest);
      } else {
        oldest.slots.delete(oldest.id);
        this.#bytes -= oldest.bytes;
        this.evictions++;
      }
    }
  }
  #drop(e: PageEntry): void {
    e.slots.delete(e.id);
    this.#ring.delete(e);
    this.#bytes -= e.bytes;
  }
}

/** A data file opened for page reads, with its slots in the page cache. */
export interface OpenedFile {
  readonly reader: PageReader;
  readonly slots: Map<number, PageEntry>;
  /** Loads in flight, by slot id (concurrent misses share one decode). */
  readonly loading: Map<number, Promise<unknown>>;
  /** Per-caller memo (e.g. how to read each output column), keyed by an object the caller owns. */
  readonly memo: WeakMap<object, unknown>;
}

/** Bounded by count, oldest insertion evicted first; a hit is a plain Map lookup. */
class Fifo<V> {
  readonly #map = new Map<string, V>();
  constructor(readonly max: number) {}
  get(k: string): V | undefined {
    return this.#map.get(k);
  }
  set(k: string, v: V): void {
    this.#map.delete(k);
    this.#map.set(k, v);
    if (this.#map.size > this.max) {
      const oldest = this.#map.keys().next().value;
      if (oldest !== undefined) this.#map.delete(oldest);
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
  readonly #opening: Lru<Promise<OpenedFile>>;
  /** Resolved files and bitmaps, so a warm lookup need not await (FIFO by count). */
  readonly #opened: Fifo<OpenedFile>;
  readonly #readyBitmaps: Fifo<RoaringBitmap32>;
  readonly pages: PageCache;

  constructor(
    readonly store: ObjectStore,
    options: { maxFiles?: number; maxBitmaps?: number; maxKeyIndexes?: number; cacheBytes?: number } = {},
  ) {
    this.#footers = new Lru(options.maxFiles ?? 512);
    this.#bitmaps = new Lru(options.maxBitmaps ?? 512);
    this.#keyIndexes = new Lru(options.maxKeyIndexes ?? 64);
    this.#opening = new Lru(options.maxFiles ?? 512);
    this.#opened = new Fifo(options.maxFiles ?? 512);
    this.#readyBitmaps = new Fifo(options.maxBitmaps ?? 512);
    this.pages = new PageCache(options.cacheBytes ?? DEFAULT_PAGE_CACHE_BYTES);
  }

  /** The data file opened for page reads (footer parsed once, then cached). */
  open(f: DataFileEntry): Promise<OpenedFile> {
    let p = this.#opening.get(f.key);
    if (!p) {
      p = PageReader.open(this.store, f.key, f.size).then((reader) => {
        const file: OpenedFile = { reader, slots: new Map(), loading: new Map(), memo: new WeakMap() };
        this.#opened.set(f.key, file);
        return file;
      });
      this.#opening.set(f.key, p);
      // A failed open must not stay cached; the caller still sees the error.
      void p.catch(() => this.#opening.delete(f.key));
    }
    return p;
  }

  /** The opened file if it is ready, without waiting. */
  opened(f: DataFileEntry): OpenedFile | undefined {
    return this.#opened.get(f.key);
  }

  /** The deletion bitmap if already loaded (null: the file has none), without waiting. */
  readyDeleted(f: DataFileEntry): RoaringBitmap32 | null | undefined {
    if (!f.deletes) return null;
    return this.#readyBitmaps.get(f.deletes.key);
  }

  /** A cached decoded structure of `file` (undefined when not cached). */
  peek<T>(file: OpenedFile, id: number): T | undefined {
    return this.pages.get<T>(file.slots, id);
  }

  /** The decoded structure in slot `id` of `file`, loading it once for concurrent callers. */
  load<T>(file: OpenedFile, id: number, load: () => Promise<{ value: T; bytes: number }>): Promise<T> {
    const hit = this.pages.get<T>(file.slots, id);
    if (hit !== undefined) return Promise.resolve(hit);
    let p = file.loading.get(id) as Promise<T> | undefined;
    if (!p) {
      p = load().then(
        ({ value, bytes }) => {
          file.loading.delete(id);
          this.pages.add(file.slots, id, value, bytes);
          return value;
        },
        (err: unknown) => {
          file.loading.delete(id);
          throw err;
        },
      );
      file.loading.set(id, p);
    }
    return p;
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
