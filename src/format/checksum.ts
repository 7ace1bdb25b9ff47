/**
 * Checksums used by every byte layout floe writes.
 *
 * - `crc32c` (Castagnoli, the polynomial S3 and ext4 use) guards small
 *   framed records: log records, segment headers, deletion bitmaps, the
 *   extent table inside data files. It is native (@node-rs/crc32) and can be
 *   chained: `crc32c(b, crc32c(a)) === crc32c(a ++ b)`.
 * - BLAKE3 (hash-wasm) is the content hash of whole objects; manifests record
 *   `contentHash(bytes)` of each data file and verify it on full reads.
 *
 * The BLAKE3 WASM module is instantiated once, when this module is first
 * imported (top-level await), so the synchronous variants are always ready.
 * Hashing is synchronous inside one call, so the single shared hasher can
 * never interleave two inputs. Nothing here does I/O or keeps state between
 * calls other than that hasher.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { createBLAKE3 } from 'hash-wasm';
import { FloeError } from '../errors.js';

const blake3 = await createBLAKE3();

/** CRC32C of `bytes`, continuing from `seed` (the CRC of the preceding bytes) when given. */
export function crc32c(bytes: Uint8Array, seed?: number): number {
  return nativeCrc32c(bytes, seed) >>> 0;
}

/** BLAKE3-256 of `bytes` as 64 lowercase hex digits. */
export function blake3HexSync(bytes: Uint8Array): string {
  return blake3.init().update(bytes).digest('hex');
}

/** BLAKE3-256 of `bytes` as 64 lowercase hex digits (async form of `blake3HexSync`). */
export async function blake3Hex(bytes: Uint8Array): Promise<string> {
  return blake3HexSync(bytes);
}

/** The content hash manifests record for a data file: BLAKE3-256, lowercase hex. */
export function contentHash(bytes: Uint8Array): string {
  return blake3HexSync(bytes);
}

/**
 * Throws `CORRUPT` naming `key` unless `contentHash(bytes)` equals `expected`
 * (compared case-insensitively, since hex digests are sometimes upper-cased).
 */
export function verifyContentHash(bytes: Uint8Array, expected: string, key: string): void {
  const actual = contentHash(bytes);
  if (actual !== expected.toLowerCase()) {
    throw new FloeError('CORRUPT', `content hash mismatch: expected blake3 ${expected}, found ${actual}`, { key });
  }
}
