/**
 * Table manifests: the immutable description of one version of one table.
 *
 * A manifest names every live data file of the table with its size, row
 * count, BLAKE3 content hash, `_id`/`_seq` ranges, primary-key range and
 * column statistics (for pruning without opening the file), and the
 * immutable deletion bitmap currently masking rows of that file. Manifests
 * are written once, create-only, under a unique key
 * `tables/<table-id>/manifest/<version, 16 hex>-<ulid>.json`, and become
 * current only when the catalog pointer (src/db/catalog.ts) is moved to them
 * by CAS. An unpublished manifest (a lost race, a crash before the catalog
 * CAS) is garbage that nobody reads; it never blocks a version number.
 *
 * Each manifest records its parent's key, so `versions()` walks the chain of
 * published versions without listing. Everything here is pure: encoding,
 * decoding with verification, and the edits a commit applies.
 */
import { FloeError } from '../errors.js';
import { crc32c } from '@node-rs/crc32';
import type { EncodedValue } from '../format/values.js';

export const MANIFEST_FORMAT = 1;

export interface ColumnStats {
  readonly min?: EncodedValue;
  readonly max?: EncodedValue;
  readonly nullCount?: number;
}

export interface DeletionRef {
  /** Store key of the immutable bitmap object. */
  readonly key: string;
  /** Rows masked in the data file. */
  readonly count: number;
}

export interface DataFileEntry {
  readonly id: string;
  readonly key: string;
  readonly size: number;
  readonly rows: number;
  /** BLAKE3 hex of the file bytes; verified when the file is fully read. */
  readonly contentHash: string;
  /** `_id` range as decimal strings (bigint). */
  readonly minId: string;
  readonly maxId: string;
  readonly minSeq: number;
  readonly maxSeq: number;
  /** Primary-key range (tagged values, one per key column), when the table has a key. */
  readonly keyMin: EncodedValue[] | null;
  readonly keyMax: EncodedValue[] | null;
  readonly stats: Record<string, ColumnStats>;
  readonly deletes: DeletionRef | null;
  /** Schema version the file was written with (older files lack later columns). */
  readonly schemaVersion: number;
}

export interface Manifest {
  readonly format: number;
  readonly tableId: string;
  readonly name: string;
  readonly version: number;
  /** Key of the previous published manifest, or null for version 1. */
  readonly parent: string | null;
  readonly schema: unknown;
  readonly schemaVersion: number;
  readonly primaryKey: string[] | null;
  readonly files: DataFileEntry[];
  readonly createdAt: number;
  /** What produced this version: create, append, flush, add-column, ... */
  readonly operation: string;
}

export function manifestKey(tableId: string, version: number, unique: string): string {
  return `tables/${tableId}/manifest/${version.toString(16).padStart(16, '0')}-${unique}.json`;
}

export function dataFileKey(tableId: string, fileId: string): string {
  return `tables/${tableId}/data/${fileId}.parquet`;
}

export function bitmapKey(tableId: string, fileId: string, unique: string): string {
  return `tables/${tableId}/data/${fileId}.${unique}.del`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * JSON body followed by a newline and `crc32c=<hex>` of the body, so a torn
 * or bit-flipped manifest is detected rather than half-believed.
 */
export function encodeManifest(m: Manifest): Uint8Array {
  return sealJson(m);
}

export function decodeManifest(bytes: Uint8Array, key: string): Manifest {
  const m = openJson(bytes, key) as Partial<Manifest>;
  if (typeof m.format !== 'number' || typeof m.version !== 'number' || !Array.isArray(m.files)) {
    throw new FloeError('CORRUPT', 'manifest is missing required fields', { key });
  }
  if (m.format > MANIFEST_FORMAT) {
    throw new FloeError('UNSUPPORTED_VERSION', `manifest format ${m.format} is newer than this floe supports (${MANIFEST_FORMAT}); upgrade floe`, { key });
  }
  return m as Manifest;
}

export function sealJson(value: unknown): Uint8Array {
  const body = JSON.stringify(value);
  const crc = crc32c(Buffer.from(body, 'utf8')).toString(16).padStart(8, '0');
  return encoder.encode(`${body}\ncrc32c=${crc}\n`);
}

export function openJson(bytes: Uint8Array, key: string): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch (cause) {
    throw new FloeError('CORRUPT', 'object is not valid UTF-8', { key, cause });
  }
  const m = /\ncrc32c=([0-9a-f]{8})\n$/.exec(text);
  if (!m) throw new FloeError('CORRUPT', 'object has no checksum trailer (torn or not a floe object)', { key });
  const body = text.slice(0, m.index);
  const crc = crc32c(Buffer.from(body, 'utf8')).toString(16).padStart(8, '0');
  if (crc !== m[1]) throw new FloeError('CORRUPT', `checksum mismatch (stored ${m[1]}, computed ${crc})`, { key });
  try {
    return JSON.parse(body) as unknown;
  } catch (cause) {
    throw new FloeError('CORRUPT', 'object body is not JSON', { key, cause });
  }
}

/** Live rows of a manifest: rows minus masked rows. */
export function liveRows(m: Manifest): number {
  let n = 0;
  for (const f of m.files) n += f.rows - (f.deletes?.count ?? 0);
  return n;
}

/** Next manifest version from `base`, with edits applied. Pure. */
export function nextManifest(
  base: Manifest,
  baseKey: string,
  edit: {
    readonly operation: string;
    readonly addFiles?: readonly DataFileEntry[];
    readonly removeFiles?: ReadonlySet<string>;
    readonly deletes?: ReadonlyMap<string, DeletionRef>;
    readonly schema?: { readonly json: unknown; readonly version: number };
    readonly now: number;
  },
): Manifest {
  const removed = edit.removeFiles ?? new Set<string>();
  const files: DataFileEntry[] = [];
  for (const f of base.files) {
    if (removed.has(f.id)) continue;
    const d = edit.deletes?.get(f.id);
    files.push(d ? { ...f, deletes: d } : f);
  }
  for (const f of edit.addFiles ?? []) files.push(f);
  return {
    ...base,
    version: base.version + 1,
    parent: baseKey,
    files,
    schema: edit.schema?.json ?? base.schema,
    schemaVersion: edit.schema?.version ?? base.schemaVersion,
    createdAt: edit.now,
    operation: edit.operation,
  };
}
