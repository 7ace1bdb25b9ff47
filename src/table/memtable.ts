/**
 * The memtable: committed point writes of one table that are not yet in a
 * data file, ordered by primary key (or by `_id` for tables without one).
 *
 * Multi-version: each key keeps its versions in seq order (a row, or a
 * tombstone for a delete). A write appends a version in O(1); a reader's
 * snapshot is just (memtable, seq bound) and sees, for every key, the newest
 * version at or below its bound — so readers never copy the memtable and a
 * write never waits for a reader. Writes of one seq to one key (several
 * writes in one transaction) keep the last, so replaying a record — once or
 * twice — rebuilds exactly what applying it did.
 *
 * Nothing here is durable: the log is, and replay past the catalog
 * checkpoint rebuilds the memtable after a crash. `bytes` estimates the
 * memory held (every version counts), for flushing and backpressure; the
 * whole memtable, versions included, is dropped when it has been flushed.
 */
import type { Row } from '../format/logrecord.js';

export interface MemEntry {
  /** Order-preserving encoded primary key (or the `_id` for keyless tables). */
  readonly key: string;
  readonly seq: number;
  /** `_id` of the row; 0n for tombstones. */
  readonly id: bigint;
  /** The row (user columns), or null for a delete. */
  readonly row: Row | null;
  readonly bytes: number;
}

/** A frozen view of a memtable at one seq. */
export interface MemSnapshot {
  readonly maxSeq: number;
  /** Number of keys with a version at or below the bound (upper estimate). */
  readonly size: number;
  /** The newest version of `key` at or below the bound. */
  get(key: string): MemEntry | undefined;
  has(key: string): boolean;
  /** Effective entries (newest version per key, tombstones included), sorted by key. */
  entries(): readonly MemEntry[];
}

export class Memtable {
  /** key -> versions in ascending seq order */
  readonly #versions = new Map<string, MemEntry[]>();
  #sortedKeys: string[] | null = null;
  #bytes = 0;
  #maxSeq = 0;

  /** Number of keys. */
  get size(): number {
    return this.#versions.size;
  }
  get bytes(): number {
    return this.#bytes;
  }
  get maxSeq(): number {
    return this.#maxSeq;
  }

  /** Apply one committed write; a seq the key already holds is ignored. */
  apply(e: MemEntry): void {
    const chain = this.#versions.get(e.key);
    if (!chain) {
      this.#versions.set(e.key, [e]);
      this.#sortedKeys = null;
    } else {
      const last = chain[chain.length - 1]!;
      if (e.seq > last.seq) chain.push(e);
      else {
        const same = chain.findIndex((v) => v.seq === e.seq);
        if (same >= 0) {
          // Several writes to one key in one record (a transaction): the
          // later one wins, as it did when the record was first applied.
          this.#bytes -= chain[same]!.bytes;
          chain[same] = e;
        } else {
          chain.push(e);
          chain.sort((a, b) => a.seq - b.seq);
        }
      }
    }
    this.#bytes += e.bytes;
    if (e.seq > this.#maxSeq) this.#maxSeq = e.seq;
  }

  /** The newest version of a key. */
  get(key: string): MemEntry | undefined {
    const chain = this.#versions.get(key);
    return chain?.[chain.length - 1];
  }

  has(key: string): boolean {
    return this.#versions.has(key);
  }

  /** Every version of every key (for merging memtables). */
  *versions(): Generator<MemEntry> {
    for (const chain of this.#versions.values()) yield* chain;
  }

  #keys(): string[] {
    if (!this.#sortedKeys) this.#sortedKeys = [...this.#versions.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.#sortedKeys;
  }

  /** A snapshot at `seq` (default: everything applied so far). O(1). */
  snapshot(seq: number = this.#maxSeq): MemSnapshot {
    const versions = this.#versions;
    const at = (key: string): MemEntry | undefined => {
      const chain = versions.get(key);
      if (!chain) return undefined;
      for (let i = chain.length - 1; i >= 0; i--) if (chain[i]!.seq <= seq) return chain[i];
      return undefined;
    };
    let cached: MemEntry[] | null = null;
    return {
      maxSeq: Math.min(seq, this.#maxSeq),
      size: versions.size,
      get: at,
      has: (key) => at(key) !== undefined,
      entries: () => {
        if (!cached) {
          cached = [];
          // Keys created after the snapshot have only versions above the
          // bound, so `at` leaves them out: sorting lazily here is exact.
          for (const k of versions.size === 0 ? [] : this.#keys()) {
            const e = at(k);
            if (e) cached.push(e);
          }
        }
        return cached;
      },
    };
  }
}
