/**
 * Metrics decorator: counts requests and bytes per operation, so tests can
 * assert round trips ("opening a table costs at most 2 GETs") and benches can
 * report requests per operation. Failed requests count too (they cost a round
 * trip); `errors` counts them separately. Counting is synchronous and never
 * changes the wrapped store's behaviour.
 */
import type { GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutResult } from './types.js';

export const STORE_OPS = ['get', 'getRange', 'head', 'put', 'putIfAbsent', 'putIfMatch', 'delete', 'list'] as const;
export type StoreOp = (typeof STORE_OPS)[number];

export interface OpCounts {
  requests: number;
  errors: number;
  bytesRead: number;
  bytesWritten: number;
}

export type MetricsSnapshot = Record<StoreOp, OpCounts>;

const zero = (): OpCounts => ({ requests: 0, errors: 0, bytesRead: 0, bytesWritten: 0 });
// Bodies are counted defensively: a non-Uint8Array body must reach the inner
// store, which rejects it with INVALID_ARGUMENT, not die here on `.length`.
const bodySize = (b: unknown): number => (b instanceof Uint8Array ? b.length : 0);
const emptySnapshot = (): MetricsSnapshot =>
  Object.fromEntries(STORE_OPS.map((op) => [op, zero()])) as MetricsSnapshot;

export class MetricsStore implements ObjectStore {
  readonly kind: string;
  readonly location: string;
  #counts: MetricsSnapshot = emptySnapshot();

  constructor(readonly inner: ObjectStore) {
    this.kind = inner.kind;
    this.location = inner.location;
  }

  /** A copy of the counters. */
  snapshot(): MetricsSnapshot {
    return structuredClone(this.#counts);
  }

  reset(): void {
    this.#counts = emptySnapshot();
  }

  /** Requests of one op, or of all ops. */
  requests(op?: StoreOp): number {
    if (op) return this.#counts[op].requests;
    return STORE_OPS.reduce((n, o) => n + this.#counts[o].requests, 0);
  }

  /** Writes of any kind (put, putIfAbsent, putIfMatch). */
  writes(): number {
    return this.#counts.put.requests + this.#counts.putIfAbsent.requests + this.#counts.putIfMatch.requests;
  }

  async #count<T>(op: StoreOp, written: number, run: () => Promise<T>, readBytes: (r: T) => number): Promise<T> {
    const c = this.#counts[op];
    c.requests++;
    c.bytesWritten += written;
    try {
      const r = await run();
      c.bytesRead += readBytes(r);
      return r;
    } catch (err) {
      c.errors++;
      throw err;
    }
  }

  get(key: string): Promise<GetResult> {
    return this.#count('get', 0, () => this.inner.get(key), (r) => r.bytes.length);
  }
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.#count('getRange', 0, () => this.inner.getRange(key, offset, length), (r) => r.length);
  }
  head(key: string): Promise<ObjectInfo | null> {
    return this.#count('head', 0, () => this.inner.head(key), () => 0);
  }
  put(key: string, bytes: Uint8Array): Promise<PutResult> {
    return this.#count('put', bodySize(bytes), () => this.inner.put(key, bytes), () => 0);
  }
  putIfAbsent(key: string, bytes: Uint8Array): Promise<PutResult> {
    return this.#count('putIfAbsent', bodySize(bytes), () => this.inner.putIfAbsent(key, bytes), () => 0);
  }
  putIfMatch(key: string, bytes: Uint8Array, etag: string): Promise<PutResult> {
    return this.#count('putIfMatch', bodySize(bytes), () => this.inner.putIfMatch(key, bytes, etag), () => 0);
  }
  delete(key: string): Promise<void> {
    return this.#count('delete', 0, () => this.inner.delete(key), () => 0);
  }
  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    return this.#count('list', 0, () => this.inner.list(prefix, options), () => 0);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  localPath(key: string): Promise<string | null> {
    return this.inner.localPath ? this.inner.localPath(key) : Promise.resolve(null);
  }
}
