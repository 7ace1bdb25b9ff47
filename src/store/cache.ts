/**
 * Read-through LRU cache decorator for IMMUTABLE objects, bounded in bytes.
 *
 * Contract:
 * - Only keys the predicate `isImmutable` accepts are ever served from
 *   memory. The default accepts keys whose last segment ends in `.parquet`
 *   (data files), `.seg` (log segments) or `.arrow` (content-addressed
 *   payload sidecars): floe writes each of those once and never rewrites
 *   them in place. Everything else — pointers, manifests, tombstone bitmaps,
 *   state docs, locks — goes straight to the inner store on every call.
 * - `get` caches the whole object with its etag. `getRange` is served from a
 *   cached whole object, or from a cached range that covers it (a short
 *   range read records where the object ends, so later reads past the end
 *   are answered too); on a miss it costs exactly ONE inner `getRange` of the
 *   same shape — it never widens into a whole-object GET — and caches that
 *   range. A hit costs zero round trips. `head` is answered from a cached
 *   whole object; otherwise it passes through. `list` always passes through.
 *   NOT_FOUND is never cached (an immutable key may be created later).
 * - Writes and deletes through this decorator invalidate the key before and
 *   after the inner call, and mark any read of that key still in flight so
 *   its result is not inserted: a reader can never see, through this
 *   decorator, bytes older than a write it has been told completed.
 *   Writes made by OTHER processes or other store instances are invisible
 *   to the cache; that is why only immutable objects are cached.
 * - Memory is bounded: the sum of cached bytes plus a fixed per-entry
 *   overhead stays at or below `maxBytes`. A single result larger than
 *   `maxObjectBytes` (default maxBytes/4) bypasses the cache. Each key keeps
 *   at most MAX_RANGES_PER_KEY cached ranges.
 * - Concurrent misses on the same object (or the same exact range) share one
 *   inner request. Callers always receive bytes they may mutate freely: the
 *   cache's copy is never handed out.
 * - Errors of the inner store pass through unchanged (they are FloeErrors).
 *
 * Nothing here is durable: a crash loses the cache, never data.
 */
import { FloeError } from '../errors.js';
import { validateKey, validateRange } from './keys.js';
import type { GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutResult } from './types.js';

export interface CacheOptions {
  /** Upper bound on cached bytes (including a small per-entry overhead). 0 disables caching. */
  readonly maxBytes: number;
  /** Which keys name immutable objects; default: `defaultIsImmutable`. */
  readonly isImmutable?: (key: string) => boolean;
  /** Results larger than this bypass the cache (default: maxBytes / 4). */
  readonly maxObjectBytes?: number;
}

export interface CacheStats {
  /** Requests for cacheable keys answered from memory. */
  readonly hits: number;
  /** Requests for cacheable keys that went to the inner store. */
  readonly misses: number;
  /** Misses that joined an identical request already in flight (no extra round trip). */
  readonly coalesced: number;
  /** Misses whose result was too large to keep. */
  readonly bypassed: number;
  /** Requests for keys the predicate calls mutable (never cached). */
  readonly passthrough: number;
  /** Entries dropped to stay within maxBytes. */
  readonly evictions: number;
  /** Entries dropped because the key was written or deleted. */
  readonly invalidations: number;
  readonly entries: number;
  /** Accounted bytes now held (payload + per-entry overhead). */
  readonly bytes: number;
  readonly maxBytes: number;
}

const IMMUTABLE_SUFFIXES = ['.parquet', '.seg', '.arrow'] as const;

/** Default predicate: data files, log segments and payload sidecars. */
export function defaultIsImmutable(key: string): boolean {
  const last = key.slice(key.lastIndexOf('/') + 1);
  return IMMUTABLE_SUFFIXES.some((s) => last.endsWith(s) && last.length > s.length);
}

/** Accounted cost of an entry beyond its bytes: map slots, strings, object headers. */
const ENTRY_OVERHEAD = 96;
export const MAX_RANGES_PER_KEY = 32;

interface Entry {
  readonly id: string;
  readonly key: string;
  /** Offset of `bytes` in the object (0 for whole objects). */
  readonly offset: number;
  readonly bytes: Uint8Array;
  /** Whole object: etag known, and the object ends at bytes.length. */
  readonly etag: string | undefined;
  /** The object ends at offset + bytes.length (whole objects, short range reads). */
  readonly eof: boolean;
  readonly cost: number;
}

interface FlightState {
  waiters: number;
  /** Set by a write to the key: the result must not be inserted. */
  stale: boolean;
}

interface Flight<T> {
  readonly state: FlightState;
  readonly promise: Promise<{ value: T; kept: boolean }>;
}

/**
 * A fresh copy of bytes [start, end). Not `.slice()`: inner stores may hand
 * back Buffers, whose `slice` is a view onto the cached memory.
 */
function copyOf(src: Uint8Array, start = 0, end = src.length): Uint8Array {
  const view = src.subarray(start, end);
  const out = new Uint8Array(view.length);
  out.set(view);
  return out;
}

const wholeId = (key: string): string => `${key}\u0000*`;
const rangeId = (key: string, offset: number, length: number): string => `${key}\u0000${offset}:${length}`;

export class CachedStore implements ObjectStore {
  readonly kind: string;
  readonly location: string;
  readonly #maxBytes: number;
  readonly #maxObjectBytes: number;
  readonly #isImmutable: (key: string) => boolean;
  /** Forwarded from the inner store when it has one (local directories). */
  readonly localPath?: (key: string) => Promise<string | null>;

  /** LRU order: first = least recently used. */
  readonly #entries = new Map<string, Entry>();
  /** key -> ids of its entries (whole and ranges). */
  readonly #byKey = new Map<string, Set<string>>();
  /** key -> id -> in-flight load. */
  readonly #flights = new Map<string, Map<string, Flight<unknown>>>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #coalesced = 0;
  #bypassed = 0;
  #passthrough = 0;
  #evictions = 0;
  #invalidations = 0;

  constructor(
    readonly inner: ObjectStore,
    options: CacheOptions,
  ) {
    const { maxBytes } = options;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new FloeError('INVALID_ARGUMENT', `cache maxBytes must be a non-negative integer, got ${maxBytes}`, {
        backend: inner.location,
      });
    }
    const maxObject = options.maxObjectBytes ?? Math.floor(maxBytes / 4);
    if (!Number.isSafeInteger(maxObject) || maxObject < 0) {
      throw new FloeError('INVALID_ARGUMENT', `cache maxObjectBytes must be a non-negative integer, got ${maxObject}`, {
        backend: inner.location,
      });
    }
    this.kind = inner.kind;
    this.location = inner.location;
    this.#maxBytes = maxBytes;
    this.#maxObjectBytes = Math.min(maxObject, Math.max(0, maxBytes - ENTRY_OVERHEAD));
    this.#isImmutable = options.isImmutable ?? defaultIsImmutable;
    if (inner.localPath) this.localPath = (key) => inner.localPath!(key);
  }

  stats(): CacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      coalesced: this.#coalesced,
      bypassed: this.#bypassed,
      passthrough: this.#passthrough,
      evictions: this.#evictions,
      invalidations: this.#invalidations,
      entries: this.#entries.size,
      bytes: this.#bytes,
      maxBytes: this.#maxBytes,
    };
  }

  /** Drop every cached entry (counters are kept). */
  clear(): void {
    for (const key of [...this.#byKey.keys()]) this.#dropKey(key, false);
    for (const flights of this.#flights.values()) for (const f of flights.values()) f.state.stale = true;
    this.#flights.clear();
  }

  async get(key: string): Promise<GetResult> {
    validateKey(key, this.kind);
    if (!this.#isImmutable(key)) {
      this.#passthrough++;
      return this.inner.get(key);
    }
    const hit = this.#entries.get(wholeId(key));
    if (hit) {
      this.#touch(hit);
      this.#hits++;
      return { bytes: copyOf(hit.bytes), etag: hit.etag! };
    }
    const r = await this.#load<GetResult>(key, wholeId(key), () => this.inner.get(key), (g) =>
      this.#insert(key, wholeId(key), 0, g.bytes, g.etag, true),
    );
    return r.copy ? { bytes: copyOf(r.value.bytes), etag: r.value.etag } : r.value;
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateKey(key, this.kind);
    validateRange(offset, length, key, this.kind);
    if (!this.#isImmutable(key)) {
      this.#passthrough++;
      return this.inner.getRange(key, offset, length);
    }
    const served = this.#serveRange(key, offset, length);
    if (served) {
      this.#hits++;
      return served;
    }
    const id = rangeId(key, offset, length);
    const r = await this.#load<Uint8Array>(key, id, () => this.inner.getRange(key, offset, length), (bytes) =>
      this.#insert(key, id, offset, bytes, undefined, bytes.length < length),
    );
    return r.copy ? copyOf(r.value) : r.value;
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key, this.kind);
    if (this.#isImmutable(key)) {
      const hit = this.#entries.get(wholeId(key));
      if (hit) {
        this.#touch(hit);
        this.#hits++;
        return { size: hit.bytes.length, etag: hit.etag! };
      }
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

  async close(): Promise<void> {
    this.clear();
    await this.inner.close();
  }

  // ---- internals ---------------------------------------------------------

  async #write<T>(key: string, run: () => Promise<T>): Promise<T> {
    // Validate first so an invalid key never touches cache state; the inner
    // store validates again (and rejects with its own backend name).
    validateKey(key, this.kind);
    this.#invalidate(key);
    try {
      return await run();
    } finally {
      // Also after: a read that started while the write was in flight may
      // have fetched either version; it must not be inserted.
      this.#invalidate(key);
    }
  }

  #invalidate(key: string): void {
    this.#dropKey(key, true);
    const flights = this.#flights.get(key);
    if (flights) {
      for (const f of flights.values()) f.state.stale = true;
      this.#flights.delete(key);
    }
  }

  #dropKey(key: string, countAsInvalidation: boolean): void {
    const ids = this.#byKey.get(key);
    if (!ids) return;
    for (const id of ids) {
      const e = this.#entries.get(id);
      if (!e) continue;
      this.#entries.delete(id);
      this.#bytes -= e.cost;
      if (countAsInvalidation) this.#invalidations++;
    }
    this.#byKey.delete(key);
  }

  /**
   * Run (or join) one inner request. Returns the value and whether the caller
   * must copy it before handing it out (it is shared with the cache or with
   * other waiters).
   */
  async #load<T>(
    key: string,
    id: string,
    fetch: () => Promise<T>,
    insert: (value: T) => boolean,
  ): Promise<{ value: T; copy: boolean }> {
    let byId = this.#flights.get(key);
    const existing = byId?.get(id) as Flight<T> | undefined;
    if (existing) {
      existing.state.waiters++;
      this.#coalesced++;
      const { value } = await existing.promise;
      return { value, copy: true };
    }
    this.#misses++;
    if (!byId) {
      byId = new Map();
      this.#flights.set(key, byId);
    }
    const flights = byId;
    const state: FlightState = { waiters: 1, stale: false };
    const promise = (async () => {
      try {
        const value = await fetch();
        const kept = !state.stale && insert(value);
        return { value, kept };
      } finally {
        // Only remove our own registration: a write may have replaced the map.
        if (flights.get(id)?.state === state) flights.delete(id);
        if (flights.size === 0 && this.#flights.get(key) === flights) this.#flights.delete(key);
      }
    })();
    flights.set(id, { state, promise });
    const { value, kept } = await promise;
    return { value, copy: kept || state.waiters > 1 };
  }

  /** Insert an entry; false when it bypasses the cache. */
  #insert(key: string, id: string, offset: number, bytes: Uint8Array, etag: string | undefined, eof: boolean): boolean {
    if (bytes.length > this.#maxObjectBytes) {
      this.#bypassed++;
      return false;
    }
    const cost = bytes.length + ENTRY_OVERHEAD + 2 * key.length;
    if (cost > this.#maxBytes) {
      this.#bypassed++;
      return false;
    }
    let ids = this.#byKey.get(key);
    if (etag !== undefined) {
      // A whole object makes every range of the key redundant.
      this.#dropKey(key, false);
      ids = undefined;
    } else if (ids && ids.size >= MAX_RANGES_PER_KEY) {
      const oldest = ids.values().next().value;
      if (oldest !== undefined) this.#remove(oldest);
    }
    const previous = this.#entries.get(id);
    if (previous) this.#remove(id);
    ids = this.#byKey.get(key) ?? new Set<string>();
    this.#byKey.set(key, ids);
    ids.add(id);
    this.#entries.set(id, { id, key, offset, bytes, etag, eof, cost });
    this.#bytes += cost;
    while (this.#bytes > this.#maxBytes) {
      const lru = this.#entries.keys().next().value;
      if (lru === undefined) break;
      this.#remove(lru);
      this.#evictions++;
    }
    return this.#entries.has(id);
  }

  #remove(id: string): void {
    const e = this.#entries.get(id);
    if (!e) return;
    this.#entries.delete(id);
    this.#bytes -= e.cost;
    const ids = this.#byKey.get(e.key);
    if (ids) {
      ids.delete(id);
      if (ids.size === 0) this.#byKey.delete(e.key);
    }
  }

  #touch(e: Entry): void {
    this.#entries.delete(e.id);
    this.#entries.set(e.id, e);
  }

  /** A copy of [offset, offset+length) from a cached entry that covers it, or null. */
  #serveRange(key: string, offset: number, length: number): Uint8Array | null {
    const ids = this.#byKey.get(key);
    if (!ids) return null;
    for (const id of ids) {
      const e = this.#entries.get(id);
      if (!e || offset < e.offset) continue;
      const start = offset - e.offset;
      const covered = e.eof || start + length <= e.bytes.length;
      if (!covered) continue;
      this.#touch(e);
      return copyOf(e.bytes, start, start + length);
    }
    return null;
  }
}
