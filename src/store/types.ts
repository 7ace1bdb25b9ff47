/**
 * The ObjectStore contract: the only interface in floe that touches bytes at
 * rest. Everything above it (log, tables, catalog, mutations) is written
 * against this interface and nothing else, so one engine runs unchanged on
 * memory, a local directory and any S3-compatible store.
 *
 * Guarantees every backend keeps:
 * - A write resolves only when durable in that backend (fsync'd file and
 *   directory locally; an acknowledged PUT on S3). A rejected write left no
 *   visible change, except where the error says the outcome is unknown.
 * - Objects are whole: a reader sees the old bytes or the new bytes of a key,
 *   never a mix or a prefix.
 * - `putIfAbsent` and `putIfMatch` are atomic against every other writer of
 *   the same store, in any process: of N racers exactly one wins.
 * - `delete` is idempotent; `list` is sorted by UTF-8 bytes and paginated.
 * - Keys are validated (see keys.ts) before any I/O.
 *
 * Etags are opaque. On S3 they are content hashes, so writing identical
 * bytes may keep the etag: objects that change by CAS must carry their own
 * strictly increasing version in their bytes (ABA guard). The memory and
 * local backends change the etag on every successful write.
 */

export interface ObjectInfo {
  /** Size in bytes. */
  readonly size: number;
  /** Opaque version tag; pass it to `putIfMatch`. */
  readonly etag: string;
}

export interface GetResult {
  readonly bytes: Uint8Array;
  readonly etag: string;
}

export interface PutResult {
  readonly etag: string;
}

export interface ListOptions {
  /** Return only keys strictly greater (bytewise) than this one. */
  readonly startAfter?: string;
  /** At most this many keys (default and maximum: 1000). */
  readonly limit?: number;
}

export interface ListPage {
  /** Keys under the prefix, sorted by UTF-8 bytes, at most `limit` of them. */
  readonly keys: string[];
  /** True when more keys follow the last one returned. */
  readonly more: boolean;
}

export interface ObjectStore {
  /** Backend kind, used in error messages and metrics: memory, local, s3. */
  readonly kind: string;
  /** A human-readable location (URI) of this store's root. */
  readonly location: string;

  /** Whole object + etag; `NOT_FOUND` if absent. */
  get(key: string): Promise<GetResult>;
  /** `length` bytes from `offset` (fewer at the end of the object); `NOT_FOUND` if absent. */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
  /** Size + etag, or null when absent. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Unconditional write. */
  put(key: string, bytes: Uint8Array): Promise<PutResult>;
  /** Create-only write; `ALREADY_EXISTS` when the key is present. */
  putIfAbsent(key: string, bytes: Uint8Array): Promise<PutResult>;
  /** Compare-and-swap; `CAS_CONFLICT` when the current etag differs or the key is gone. */
  putIfMatch(key: string, bytes: Uint8Array, etag: string): Promise<PutResult>;
  /** Idempotent delete: an absent key is success. */
  delete(key: string): Promise<void>;
  /** One page of keys starting with `prefix`, sorted bytewise. */
  list(prefix: string, options?: ListOptions): Promise<ListPage>;
  /** Release clients, handles and timers. Idempotent. */
  close(): Promise<void>;
  /**
   * Optional: the filesystem path holding the current bytes of `key`, for
   * backends that have one (local directory), so other engines can read
   * data files in place. Null when absent.
   */
  localPath?(key: string): Promise<string | null>;
}

export const MAX_LIST_LIMIT = 1000;
