/**
 * The memtable: committed point writes of one table that are not yet in a
 * data file, ordered by primary key (or by `_id` for tables without one).
 *
 * Invariants: an entry holds the newest committed version of its key (a
 * row, or a tombstone for a delete) and the log sequence number (`seq`) of
 * the write that produced it; applying an older seq over a newer one is
 * ignored, so replaying the log twice is harmless. Nothing here is durable:
 * the log is, and replay past the catalog checkpoint rebuilds the memtable
 * after a crash. `bytes` is an estimate of memory held, used for flushing
 * and backpressure.
 *
 * Readers take `snapshot()`: a sorted, immutable array of entries, cached
 * until the next write, so a scan never sees a write that happened after it
 * started.
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

/** A frozen view of a memtable: sorted entries plus lookup by key. */
export interface MemSnapshot {
  readonly entries: readonly MemEntry[];
  readonly byKey: ReadonlyMap<string, MemEntry>;
  readonly maxSeq: number;
}

export class Memtable {
  readonly #entries = new Map<string, MemEntry>();
  #snap: MemSnapshot | null = null;
  #bytes = 0;
  #maxSeq = 0;

  get size(): number {
    return this.#entries.size;
  }
  get bytes(): number {
    return this.#bytes;
  }
  get maxSeq(): number {
    return this.#maxSeq;
  }

  /** Apply one committed write; a stale seq for an existing key is ignored. */
  apply(e: MemEntry): void {
    const prev = this.#entries.get(e.key);
    if (prev && prev.seq > e.seq) return;
    if (prev) this.#bytes -= prev.bytes;
    this.#entries.set(e.key, e);
    this.#bytes += e.bytes;
    if (e.seq > this.#maxSeq) this.#maxSeq = e.seq;
    this.#snap = null;
  }

  get(key: string): MemEntry | undefined {
    return this.#entries.get(key);
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** A frozen sorted view; the same object until the next write. */
  snapshot(): MemSnapshot {
    if (!this.#snap) {
      const entries = [...this.#entries.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      this.#snap = { entries, byKey: new Map(this.#entries), maxSeq: this.#maxSeq };
    }
    return this.#snap;
  }
}
