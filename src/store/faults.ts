/**
 * Fault-injection decorator: wraps any ObjectStore and hits failpoints
 * `store.<op>.before` and `store.<op>.after` around each operation, with
 * context `{ op, key }`.
 *
 * A crash armed at `.before` means the operation never happened; at
 * `.after` it did happen but the caller never learns so (the "did my PUT
 * land?" case every recovery path must handle). `torn` on a write's
 * `.before` stores only a prefix of the bytes and then crashes — the shape
 * of a write torn by power loss on a store without atomic objects; readers
 * above must detect it by checksum.
 */
import type { Failpoints } from './failpoints.js';
import type { GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutResult } from './types.js';

export class FaultyStore implements ObjectStore {
  readonly kind: string;
  readonly location: string;

  constructor(
    readonly inner: ObjectStore,
    readonly failpoints: Failpoints,
  ) {
    this.kind = inner.kind;
    this.location = inner.location;
  }

  async #around<T>(op: string, key: string, run: () => Promise<T>, body?: Uint8Array): Promise<T> {
    const ctx = { op, key };
    const before = `store.${op}.before`;
    const action = this.failpoints.check(before, ctx);
    if (action?.type === 'torn' && body) {
      const want = typeof action.keepBytes === 'function' ? action.keepBytes(body.length) : action.keepBytes;
      const keep = Math.max(0, Math.min(body.length, Math.floor(want)));
      // The torn prefix lands unconditionally: a power cut does not honour CAS.
      await this.inner.put(key, body.subarray(0, keep));
      throw this.failpoints.crash(before, ctx);
    }
    if (action) await this.failpoints.perform(before, action, ctx);
    const result = await run();
    await this.failpoints.hit(`store.${op}.after`, ctx);
    return result;
  }

  get(key: string): Promise<GetResult> {
    return this.#around('get', key, () => this.inner.get(key));
  }
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.#around('getRange', key, () => this.inner.getRange(key, offset, length));
  }
  head(key: string): Promise<ObjectInfo | null> {
    return this.#around('head', key, () => this.inner.head(key));
  }
  put(key: string, bytes: Uint8Array): Promise<PutResult> {
    return this.#around('put', key, () => this.inner.put(key, bytes), bytes);
  }
  putIfAbsent(key: string, bytes: Uint8Array): Promise<PutResult> {
    return this.#around('putIfAbsent', key, () => this.inner.putIfAbsent(key, bytes), bytes);
  }
  putIfMatch(key: string, bytes: Uint8Array, etag: string): Promise<PutResult> {
    return this.#around('putIfMatch', key, () => this.inner.putIfMatch(key, bytes, etag), bytes);
  }
  delete(key: string): Promise<void> {
    return this.#around('delete', key, () => this.inner.delete(key));
  }
  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    return this.#around('list', prefix, () => this.inner.list(prefix, options));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  localPath(key: string): Promise<string | null> {
    return this.inner.localPath ? this.inner.localPath(key) : Promise.resolve(null);
  }
}
