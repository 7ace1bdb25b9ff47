/**
 * Key rules shared by every backend, checked before any I/O.
 *
 * A key is a relative, `/`-separated path of non-empty segments: no leading
 * or trailing `/`, no `.` or `..` segment, no NUL or control character, at
 * most 1024 UTF-8 bytes (the S3 limit). Segments starting with `.floe` are
 * reserved for backends' own bookkeeping (temp files, locks). With these
 * rules no key can name anything outside a local store's root.
 *
 * Ordering is by UTF-8 bytes, as S3 lists: JavaScript's `<` compares UTF-16
 * code units, which disagrees for characters above U+FFFF.
 */
import { FloeError } from '../errors.js';

export const MAX_KEY_BYTES = 1024;
export const RESERVED_SEGMENT_PREFIX = '.floe';

const encoder = new TextEncoder();

function controlCharAt(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return i;
  }
  return -1;
}

/** Index of the first unpaired UTF-16 surrogate, or -1 (a well-formed string). */
function loneSurrogateAt(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    return i;
  }
  return -1;
}

function invalid(what: string, key: string, why: string, backend?: string): FloeError {
  return new FloeError('INVALID_ARGUMENT', `invalid ${what} ${JSON.stringify(key)}: ${why}`, { backend });
}

/** Throws INVALID_ARGUMENT unless `key` is a valid object key. */
export function validateKey(key: string, backend?: string): void {
  if (typeof key !== 'string') throw invalid('key', String(key), 'not a string', backend);
  if (key.length === 0) throw invalid('key', key, 'empty', backend);
  const cc = controlCharAt(key);
  if (cc >= 0) throw invalid('key', key, `control character at index ${cc}`, backend);
  // An unpaired surrogate has no UTF-8 form: S3 and the file system would
  // store it as U+FFFD, so two distinct keys would name one object.
  const ls = loneSurrogateAt(key);
  if (ls >= 0) throw invalid('key', key, `unpaired UTF-16 surrogate at index ${ls}`, backend);
  if (encoder.encode(key).length > MAX_KEY_BYTES) {
    throw invalid('key', key.slice(0, 64) + '...', `longer than ${MAX_KEY_BYTES} UTF-8 bytes`, backend);
  }
  if (key.startsWith('/')) throw invalid('key', key, 'must be relative (no leading "/")', backend);
  if (key.includes('\\')) throw invalid('key', key, 'backslash is not allowed', backend);
  for (const seg of key.split('/')) {
    if (seg === '') throw invalid('key', key, 'empty path segment', backend);
    if (seg === '.' || seg === '..') throw invalid('key', key, `"${seg}" segment`, backend);
    if (seg.startsWith(RESERVED_SEGMENT_PREFIX)) {
      throw invalid('key', key, `segments starting with "${RESERVED_SEGMENT_PREFIX}" are reserved`, backend);
    }
  }
}

/** Throws INVALID_ARGUMENT unless `prefix` is a valid list prefix ("" lists everything). */
export function validatePrefix(prefix: string, backend?: string): void {
  if (typeof prefix !== 'string') throw invalid('prefix', String(prefix), 'not a string', backend);
  if (prefix === '') return;
  const cc = controlCharAt(prefix);
  if (cc >= 0) throw invalid('prefix', prefix, `control character at index ${cc}`, backend);
  const ls = loneSurrogateAt(prefix);
  if (ls >= 0) throw invalid('prefix', prefix, `unpaired UTF-16 surrogate at index ${ls}`, backend);
  if (encoder.encode(prefix).length > MAX_KEY_BYTES) throw invalid('prefix', prefix, 'too long', backend);
  if (prefix.startsWith('/')) throw invalid('prefix', prefix, 'must be relative', backend);
  if (prefix.includes('\\')) throw invalid('prefix', prefix, 'backslash is not allowed', backend);
  const segs = prefix.split('/');
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const last = i === segs.length - 1;
    if (seg === '' && !last) throw invalid('prefix', prefix, 'empty path segment', backend);
    if (seg === '..' || (seg === '.' && !last)) throw invalid('prefix', prefix, `"${seg}" segment`, backend);
  }
}

/** Bytewise (UTF-8) comparison of two keys. */
export function compareKeys(a: string, b: string): number {
  // Fast path: while both strings stay in the BMP below the surrogate range,
  // UTF-16 order equals UTF-8 byte order.
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x < 0xd800 && y < 0xd800) return x - y;
    // UTF-8 byte order is code point order. When the units before i are a
    // shared high surrogate, the mismatch splits a pair: compare whole pairs.
    const p = i > 0 ? a.charCodeAt(i - 1) : 0;
    const start = p >= 0xd800 && p <= 0xdbff ? i - 1 : i;
    const cx = a.codePointAt(start)!;
    const cy = b.codePointAt(start)!;
    // Equal code points here only for ill-formed strings (which validateKey
    // rejects); fall back to the code units so the order stays total.
    return cx !== cy ? cx - cy : x - y;
  }
  return a.length - b.length;
}

/** Validates list options; returns the effective limit. */
export function listLimit(limit: number | undefined, max: number, backend?: string): number {
  if (limit === undefined) return max;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new FloeError('INVALID_ARGUMENT', `list limit must be a positive integer, got ${limit}`, { backend });
  }
  return Math.min(limit, max);
}

export function validateRange(offset: number, length: number, key: string, backend?: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new FloeError('INVALID_ARGUMENT', `invalid range offset=${offset} length=${length}`, { key, backend });
  }
}

export function validateBody(bytes: unknown, key: string, backend?: string): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new FloeError('INVALID_ARGUMENT', 'body must be a Uint8Array', { key, backend });
  }
}
