/**
 * In-memory ObjectStore, for tests and ephemeral databases.
 *
 * Invariants: every operation completes synchronously inside one call, so
 * the check and the write of `putIfAbsent`/`putIfMatch` are atomic with
 * respect to every other caller in the process. Bytes are copied on the way
 * in and out, so callers can never alias stored objects. Etags come from a
 * process-wide counter and change on every successful write.
 *
 * `memory://name` URIs resolve to one shared store per name within the
 * process (see `MemoryStore.named`), so a test can "reopen" a database.
 * Nothing survives the process.
 */
import { FloeError } from '../errors.js';
import { compareKeys, listLimit, validateBody, validateKey, validatePrefix, validateRange } from './keys.js';
import type { GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutResult } from './types.js';
import { MAX_LIST_LIMIT } from './types.js';

interface Entry {
  bytes: Uint8Array;
  etag: string;
}

let etagCounter = 0;
const nextEtag = (): string => `m${(++etagCounter).toString(36)}`;

const registry = new Map<string, MemoryStore>();

export class MemoryStore implements ObjectStore {
  readonly kind = 'memory';
  readonly location: string;
  readonly #objects = new Map<string, Entry>();

  constructor(name = 'anonymous') {
    this.location = `memory://${name}`;
  }

  /** The process-wide store for `memory://name`, created on first use. */
  static named(name: string): MemoryStore {
    let s = registry.get(name);
    if (!s) {
      s = new MemoryStore(name);
      registry.set(name, s);
    }
    return s;
  }

  /** Forget a named store (tests). */
  static drop(name: string): void {
    registry.delete(name);
  }

  async get(key: string): Promise<GetResult> {
    validateKey(key, this.kind);
    const e = this.#objects.get(key);
    if (!e) throw new FloeError('NOT_FOUND', 'no such object', { key, backend: this.location });
    return { bytes: e.bytes.slice(), etag: e.etag };
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateKey(key, this.kind);
    validateRange(offset, length, key, this.kind);
    const e = this.#objects.get(key);
    if (!e) throw new FloeError('NOT_FOUND', 'no such object', { key, backend: this.location });
    return e.bytes.slice(offset, offset + length);
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key, this.kind);
    const e = this.#objects.get(key);
    return e ? { size: e.bytes.length, etag: e.etag } : null;
  }

  async put(key: string, bytes: Uint8Array): Promise<PutResult> {
    validateKey(key, this.kind);
    validateBody(bytes, key, this.kind);
    return this.#write(key, bytes);
  }

  async putIfAbsent(key: string, bytes: Uint8Array): Promise<PutResult> {
    validateKey(key, this.kind);
    validateBody(bytes, key, this.kind);
    if (this.#objects.has(key)) {
      throw new FloeError('ALREADY_EXISTS', 'object already exists', { key, backend: this.location });
    }
    return this.#write(key, bytes);
  }

  async putIfMatch(key: string, bytes: Uint8Array, etag: string): Promise<PutResult> {
    validateKey(key, this.kind);
    validateBody(bytes, key, this.kind);
    const e = this.#objects.get(key);
    if (!e || e.etag !== etag) {
      throw new FloeError('CAS_CONFLICT', e ? 'etag does not match the current object' : 'object no longer exists', {
        key,
        backend: this.location,
      });
    }
    return this.#write(key, bytes);
  }

  async delete(key: string): Promise<void> {
    validateKey(key, this.kind);
    this.#objects.delete(key);
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    validatePrefix(prefix, this.kind);
    const limit = listLimit(options.limit, MAX_LIST_LIMIT, this.kind);
    const after = options.startAfter;
    const keys = [...this.#objects.keys()]
      .filter((k) => k.startsWith(prefix) && (after === undefined || compareKeys(k, after) > 0))
      .sort(compareKeys);
    return { keys: keys.slice(0, limit), more: keys.length > limit };
  }

  async close(): Promise<void> {}

  #write(key: string, bytes: Uint8Array): PutResult {
    const etag = nextEtag();
    // Not bytes.slice(): on a Buffer that is a view, and the caller's later
    // writes to its Buffer would change the stored object.
    this.#objects.set(key, { bytes: new Uint8Array(bytes), etag });
    return { etag };
  }
}
