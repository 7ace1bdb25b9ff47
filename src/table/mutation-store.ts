/**
 * The one funnel through which mutation state documents change.
 *
 * Layout (database root): `mutations/<ulid>.json` is the state document,
 * `mutations/<ulid>.arrow` the optional payload sidecar (Arrow IPC stream of
 * the new row images of an update). ULIDs are time-ordered, so `list()`
 * returns mutations oldest first, the order recovery resumes them in.
 *
 * Contract:
 * - `create` is create-only (ALREADY_EXISTS if the id is taken).
 * - `read` returns the document with its etag, or null when absent; a torn
 *   or bit-flipped document (CRC32C trailer mismatch, see sealJson) is
 *   CORRUPT, never half-believed.
 * - `update` is compare-and-swap on the etag AND requires the new document's
 *   `version` to be exactly the old one + 1: S3 etags are content hashes, so
 *   the version in the bytes is what makes a stale CAS fail (ABA).
 * - `remove` is idempotent (payload first, then the document, so a crash
 *   between leaves a document whose state says complete, removed again later).
 * - The payload's BLAKE3 is recorded in the document before the document
 *   exists (payload PUT happens first); every payload read re-hashes and a
 *   mismatch or a missing payload is CORRUPT: it is never applied.
 */
import * as arrow from 'apache-arrow';
import { FloeError, isFloeError } from '../errors.js';
import { blake3Hex } from '../format/checksum.js';
import type { FailpointHook } from '../store/failpoints.js';
import { listAll } from '../store/list.js';
import type { ObjectStore } from '../store/types.js';
import type { DataFileEntry } from './manifest.js';
import { openJson, sealJson } from './manifest.js';
import type { MutationKind, MutationState } from './mutation.js';

export const MUTATIONS_PREFIX = 'mutations/';
export const MUTATION_DOC_FORMAT = 1;

export interface PayloadRef {
  readonly key: string;
  readonly blake3: string;
  readonly rows: number;
  readonly size: number;
}

/** The durable state of one mutation. */
export interface MutationDoc {
  readonly format: number;
  readonly id: string;
  readonly kind: MutationKind;
  readonly state: MutationState;
  /** Strictly increasing with every CAS (ABA guard). */
  readonly version: number;
  readonly table: string;
  readonly tableId: string;
  readonly createdAt: number;
  /** Manifest version the targets were resolved against. */
  readonly baseVersion: number;
  /** Target `_id`s, decimal strings, ascending. */
  readonly targets: string[];
  /** Update only: new row images and where they go. */
  readonly payload: PayloadRef | null;
  readonly fileId: string | null;
  readonly firstId: string | null;
  readonly seq: number;
  /** Update, from `appended` on: the entry of the written (unpublished) data file. */
  readonly file: DataFileEntry | null;
  /** Set when complete: rows newly masked and rows skipped (already gone; always 0 since conflicts abort). */
  readonly applied: number | null;
  readonly skipped: number | null;
  /** Update only: it sets a primary-key column (new keys must be checked at publish). Absent = false. */
  readonly setsKey?: boolean;
  /** Set when aborted: why. */
  readonly reason?: string;
}

export const docKey = (id: string): string => `${MUTATIONS_PREFIX}${id}.json`;
export const payloadKey = (id: string): string => `${MUTATIONS_PREFIX}${id}.arrow`;

export class MutationStore {
  constructor(
    readonly store: ObjectStore,
    readonly failpoints: FailpointHook,
  ) {}

  async create(doc: MutationDoc): Promise<string> {
    const key = docKey(doc.id);
    await this.failpoints.hit('mutate.doc.create.before', { key });
    const r = await this.store.putIfAbsent(key, sealJson(doc));
    await this.failpoints.hit('mutate.doc.create.after', { key });
    return r.etag;
  }

  async read(id: string): Promise<{ doc: MutationDoc; etag: string } | null> {
    const key = docKey(id);
    let got;
    try {
      got = await this.store.get(key);
    } catch (err) {
      if (isFloeError(err, 'NOT_FOUND')) return null; // absent: collected or never created
      throw err;
    }
    const doc = openJson(got.bytes, key) as Partial<MutationDoc>;
    if (doc.format !== MUTATION_DOC_FORMAT || typeof doc.version !== 'number' || typeof doc.state !== 'string' || !Array.isArray(doc.targets)) {
      throw new FloeError('CORRUPT', `mutation document is malformed (${this.store.location})`, { key });
    }
    return { doc: doc as MutationDoc, etag: got.etag };
  }

  /** CAS from `prev` (read with `etag`) to `next`; next.version must be prev.version + 1. */
  async update(prev: MutationDoc, etag: string, next: MutationDoc, point: string): Promise<string> {
    if (next.version !== prev.version + 1 || next.id !== prev.id) {
      throw new FloeError('INVARIANT_VIOLATION', `mutation ${prev.id}: version must grow by one (${prev.version} -> ${next.version})`);
    }
    const key = docKey(prev.id);
    await this.failpoints.hit(`mutate.doc.${point}.before`, { key });
    const r = await this.store.putIfMatch(key, sealJson(next), etag);
    await this.failpoints.hit(`mutate.doc.${point}.after`, { key });
    return r.etag;
  }

  /** Idempotent: payload, then document. */
  async remove(id: string): Promise<void> {
    await this.store.delete(payloadKey(id));
    await this.store.delete(docKey(id));
  }

  /** Mutation ids, oldest first. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for await (const k of listAll(this.store, MUTATIONS_PREFIX)) {
      if (k.endsWith('.json')) out.push(k.slice(MUTATIONS_PREFIX.length, -'.json'.length));
    }
    return out.sort();
  }

  async putPayload(id: string, table: arrow.Table): Promise<PayloadRef> {
    const key = payloadKey(id);
    const bytes = arrow.tableToIPC(table, 'stream');
    const hash = await blake3Hex(bytes);
    await this.failpoints.hit('mutate.payload.put.before', { key });
    await this.store.put(key, bytes);
    await this.failpoints.hit('mutate.payload.put.after', { key });
    return { key, blake3: hash, rows: table.numRows, size: bytes.length };
  }

  /** The verified payload; CORRUPT when missing or when its BLAKE3 differs. */
  async readPayload(ref: PayloadRef): Promise<arrow.Table> {
    let bytes: Uint8Array;
    try {
      bytes = (await this.store.get(ref.key)).bytes;
    } catch (err) {
      if (isFloeError(err, 'NOT_FOUND')) {
        throw new FloeError('CORRUPT', `mutation payload is missing (${this.store.location}); the mutation cannot be applied`, { key: ref.key, cause: err });
      }
      throw err;
    }
    const hash = await blake3Hex(bytes);
    if (hash !== ref.blake3) {
      throw new FloeError('CORRUPT', `mutation payload hash mismatch (recorded ${ref.blake3.slice(0, 16)}…, read ${hash.slice(0, 16)}…); not applied`, { key: ref.key });
    }
    try {
      return arrow.tableFromIPC(bytes);
    } catch (cause) {
      throw new FloeError('CORRUPT', 'mutation payload is not an Arrow IPC stream', { key: ref.key, cause });
    }
  }
}
