/**
 * Per-database caches of immutable objects that reads touch again and again:
 * opened Parquet footers (metadata + schema) and decoded deletion bitmaps.
 *
 * Both kinds of object are immutable once written (a data file never
 * changes; a bitmap change is a new object), so a cache entry can never be
 * stale; entries are dropped only to bound memory (LRU by count). Caching a
 * footer saves the 1-2 range GETs `ParquetFile.open` costs per file.
 */
import type { RoaringBitmap32 } from '../format/bitmap.js';
import { decodeBitmap } from '../format/bitmap.js';
import { ParquetFile } from '../format/parquet.js';
import type { ObjectStore } from '../store/types.js';
import type { DataFileEntry } from './manifest.js';

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

  constructor(
    readonly store: ObjectStore,
    options: { maxFiles?: number; maxBitmaps?: number; maxKeyIndexes?: number } = {},
  ) {
    this.#footers = new Lru(options.maxFiles ?? 512);
    this.#bitmaps = new Lru(options.maxBitmaps ?? 512);
    this.#keyIndexes = new Lru(options.maxKeyIndexes ?? 64);
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
      p = this.store.get(key).then(({ bytes }) => decodeBitmap(bytes, key).rows);
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
