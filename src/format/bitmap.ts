/**
 * Deletion bitmaps: the set of masked (deleted or superseded) row positions
 * of one immutable data file, stored next to it and replaced only by CAS.
 *
 * Byte layout (little-endian), version 1:
 *
 *   0   "FLDB"                       magic
 *   4   u8  format version (1)
 *   5   u8  flags: bit 0 = sealed; other bits must be 0
 *   6   u16 byte length of the data file id
 *   8   u64 bitmap version (strictly increasing per data file)
 *   16  u32 byte length of the row set
 *   20  data file id, UTF-8
 *   ..  row set: RoaringBitmap32 in the portable (cross-language) format
 *   end u32 CRC32C of every preceding byte
 *
 * Row positions are 0-based row indexes within the data file.
 *
 * Invariants and why they exist:
 * - The version lives in the bytes because S3 etags are content hashes: two
 *   writers producing identical bytes would get identical etags, and a stale
 *   compare-and-swap could succeed (ABA). Writers bump the version on every
 *   replacement, so no two generations are byte-identical.
 * - `sealed` is set by compaction when the data file is replaced: the bitmap
 *   is then frozen, and a tombstone writer that finds it sealed must
 *   re-resolve its rows against the new file instead of adding to it.
 * - The file id binds a bitmap to its data file, so a bitmap copied or
 *   renamed onto the wrong file is detected rather than applied.
 * - Decoding checks magic, exact length, CRC and the row-set encoding; any
 *   damage is `CORRUPT` naming the object. A well-formed bitmap from a newer
 *   format version (or with unknown flags) is `UNSUPPORTED_VERSION`.
 * Encoding is deterministic: the same fields give the same bytes.
 */
import roaring from 'roaring';
import type { RoaringBitmap32 as RoaringBitmap32Type } from 'roaring';
import { FloeError } from '../errors.js';
import { crc32c } from './checksum.js';

const { RoaringBitmap32 } = roaring;
export type RoaringBitmap32 = RoaringBitmap32Type;

export const BITMAP_MAGIC = 'FLDB';
export const BITMAP_FORMAT_VERSION = 1;
const HEADER_BYTES = 20;
const CRC_BYTES = 4;
const FLAG_SEALED = 0x01;
const MAX_FILE_ID_BYTES = 1024;
const MAX_ROW = 0xffff_ffff;

export interface DeletionBitmap {
  /** Id of the data file this bitmap masks. */
  fileId: string;
  /** Strictly increasing generation number (ABA guard). */
  version: number;
  /** True once compaction replaced the data file; writers must re-resolve. */
  sealed: boolean;
  /** Masked row positions (0-based row indexes within the data file). */
  rows: RoaringBitmap32;
}

export interface DeletionBitmapInput {
  fileId: string;
  version: number;
  sealed: boolean;
  rows: RoaringBitmap32 | Iterable<number>;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** A copy of `rows` as a bitmap; `INVALID_ARGUMENT` if any value is not a row position. */
export function toRowBitmap(rows: RoaringBitmap32 | Iterable<number>): RoaringBitmap32 {
  if (rows instanceof RoaringBitmap32) return rows.clone();
  const out = new RoaringBitmap32();
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r > MAX_ROW) {
      throw new FloeError('INVALID_ARGUMENT', `row position ${String(r)} is not an integer in [0, 2^32)`);
    }
    out.add(r);
  }
  return out;
}

/** The union of any number of row sets, as a new bitmap. */
export function unionRows(...sets: Array<RoaringBitmap32 | Iterable<number>>): RoaringBitmap32 {
  const out = new RoaringBitmap32();
  for (const s of sets) {
    if (s instanceof RoaringBitmap32) out.orInPlace(s);
    else out.orInPlace(toRowBitmap(s));
  }
  return out;
}

export function encodeBitmap(input: DeletionBitmapInput): Uint8Array {
  const { fileId, version, sealed } = input;
  if (typeof fileId !== 'string' || fileId.length === 0) {
    throw new FloeError('INVALID_ARGUMENT', 'deletion bitmap needs a non-empty data file id');
  }
  const id = utf8.encode(fileId);
  if (id.length > MAX_FILE_ID_BYTES) {
    throw new FloeError('INVALID_ARGUMENT', `data file id is ${id.length} bytes; the limit is ${MAX_FILE_ID_BYTES}`);
  }
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new FloeError('INVALID_ARGUMENT', `bitmap version ${String(version)} must be a non-negative safe integer`);
  }
  if (typeof sealed !== 'boolean') {
    throw new FloeError('INVALID_ARGUMENT', 'bitmap sealed flag must be a boolean');
  }
  const rows = toRowBitmap(input.rows);
  rows.runOptimize();
  rows.shrinkToFit();
  const set = rows.serialize(true);

  const out = new Uint8Array(HEADER_BYTES + id.length + set.length + CRC_BYTES);
  const view = new DataView(out.buffer);
  out.set(utf8.encode(BITMAP_MAGIC), 0);
  view.setUint8(4, BITMAP_FORMAT_VERSION);
  view.setUint8(5, sealed ? FLAG_SEALED : 0);
  view.setUint16(6, id.length, true);
  view.setBigUint64(8, BigInt(version), true);
  view.setUint32(16, set.length, true);
  out.set(id, HEADER_BYTES);
  out.set(set, HEADER_BYTES + id.length);
  const end = out.length - CRC_BYTES;
  view.setUint32(end, crc32c(out.subarray(0, end)), true);
  return out;
}

/**
 * Decode and verify a deletion bitmap. `key` (the object it was read from)
 * is named in errors.
 */
export function decodeBitmap(bytes: Uint8Array, key?: string): DeletionBitmap {
  const corrupt = (why: string, cause?: unknown): FloeError =>
    new FloeError('CORRUPT', `deletion bitmap ${why}`, { key, cause });
  if (bytes.length < HEADER_BYTES + CRC_BYTES) {
    throw corrupt(`is truncated: ${bytes.length} bytes, at least ${HEADER_BYTES + CRC_BYTES} expected`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (
    bytes[0] !== BITMAP_MAGIC.charCodeAt(0) ||
    bytes[1] !== BITMAP_MAGIC.charCodeAt(1) ||
    bytes[2] !== BITMAP_MAGIC.charCodeAt(2) ||
    bytes[3] !== BITMAP_MAGIC.charCodeAt(3)
  ) {
    throw corrupt('has a bad magic number (not a floe deletion bitmap)');
  }
  const end = bytes.length - CRC_BYTES;
  const stored = view.getUint32(end, true);
  const actual = crc32c(bytes.subarray(0, end));
  if (stored !== actual) {
    throw corrupt(`checksum mismatch (stored crc32c ${hex(stored)}, computed ${hex(actual)})`);
  }
  const formatVersion = view.getUint8(4);
  const flags = view.getUint8(5);
  if (formatVersion !== BITMAP_FORMAT_VERSION || (flags & ~FLAG_SEALED) !== 0) {
    throw new FloeError(
      'UNSUPPORTED_VERSION',
      `deletion bitmap format version ${formatVersion} (flags ${hex(flags)}) is not supported by this floe ` +
        `(it reads version ${BITMAP_FORMAT_VERSION}); upgrade floe`,
      { key },
    );
  }
  const idLength = view.getUint16(6, true);
  const version = view.getBigUint64(8, true);
  const setLength = view.getUint32(16, true);
  if (HEADER_BYTES + idLength + setLength + CRC_BYTES !== bytes.length) {
    throw corrupt(`length fields (${idLength} + ${setLength}) do not match its size ${bytes.length}`);
  }
  if (version > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`version ${version} is out of range`);
  let fileId: string;
  try {
    fileId = utf8Strict.decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + idLength));
  } catch (err) {
    throw corrupt('has a data file id that is not valid UTF-8', err);
  }
  if (fileId.length === 0) throw corrupt('has an empty data file id');
  const setBytes = bytes.subarray(HEADER_BYTES + idLength, end);
  let rows: RoaringBitmap32;
  try {
    rows = RoaringBitmap32.deserialize(setBytes, true);
  } catch (err) {
    throw corrupt('row set is not a valid portable roaring bitmap', err);
  }
  if (rows.getSerializationSizeInBytes(true) !== setLength) {
    throw corrupt('row set has trailing bytes');
  }
  return { fileId, version: Number(version), sealed: (flags & FLAG_SEALED) !== 0, rows };
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
