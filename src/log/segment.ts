/**
 * Log segment byte layout: a pure codec, no I/O.
 *
 * One segment object holds one commit group. It is written once, whole, by
 * `putIfAbsent` under `<prefix><epoch as 16 lower-case hex digits>.seg`, so a
 * bytewise listing is an epoch-ordered listing and two writers can never both
 * own one epoch.
 *
 * Layout (all integers little-endian):
 *
 *   offset size  field
 *        0    4  magic "FLOG"
 *        4    2  format version (1)
 *        6    2  flags (bit 0: FENCE, written when a writer takes over;
 *                bit 1: VOID, an empty placeholder that only occupies its
 *                epoch and is never part of the chain)
 *        8    8  writer generation (>= 1)
 *       16    8  epoch (>= 1; equals the epoch in the object's key)
 *       24    8  previous epoch: the chain member this segment continues
 *                (0 = genesis: the first segment of a log, firstLsn 1)
 *       32    8  first LSN (>= 1)
 *       40    4  record count
 *       44    4  body length in bytes (everything after the header)
 *       48    4  reserved, zero
 *       52    4  CRC32C of bytes 0..51
 *       56       records, each: u32 length (>= 1), u32 CRC32C of the length
 *                bytes followed by the data, then the data
 *
 * Decoding accepts a segment only if every field is in range, the header CRC
 * matches, the object is exactly header + body long, and the body parses into
 * exactly `record count` records whose CRCs all match. Anything else is
 * reported as a problem (torn, corrupt) and never partially returned. A
 * header with a valid CRC but an unknown version is reported separately so
 * the caller can refuse to touch a log written by a newer floe instead of
 * treating it as damage.
 *
 * Numbers are JavaScript safe integers throughout; a u64 field above 2^53-1
 * counts as corruption.
 */
import { crc32c } from '@node-rs/crc32';

export const SEGMENT_MAGIC = Uint8Array.of(0x46, 0x4c, 0x4f, 0x47); // "FLOG"
export const SEGMENT_VERSION = 1;
export const HEADER_BYTES = 56;
export const RECORD_OVERHEAD = 8;
export const FLAG_FENCE = 1;
export const FLAG_VOID = 2;
const KNOWN_FLAGS = FLAG_FENCE | FLAG_VOID;
const MAX_U32 = 0xffff_ffff;

/** What a segment's header says about it. */
export interface SegmentMeta {
  readonly generation: number;
  readonly epoch: number;
  readonly prevEpoch: number;
  readonly firstLsn: number;
  readonly recordCount: number;
  readonly flags: number;
}

export type SegmentDecode =
  | { readonly ok: true; readonly meta: SegmentMeta; readonly records: Uint8Array[] }
  | { readonly ok: false; readonly unsupported: boolean; readonly problem: string };

/** Last LSN a segment holds (firstLsn - 1 when it is empty). */
export function lastLsnOf(meta: SegmentMeta): number {
  return meta.firstLsn + meta.recordCount - 1;
}

/** Why `meta` is not a well-formed header, or null. Shared by encoder and decoder. */
export function metaProblem(meta: SegmentMeta): string | null {
  const { generation, epoch, prevEpoch, firstLsn, recordCount, flags } = meta;
  if (!Number.isSafeInteger(generation) || generation < 1) return `generation ${generation} out of range`;
  if (!Number.isSafeInteger(epoch) || epoch < 1) return `epoch ${epoch} out of range`;
  if (!Number.isSafeInteger(prevEpoch) || prevEpoch < 0 || prevEpoch >= epoch) {
    return `previous epoch ${prevEpoch} must be below epoch ${epoch}`;
  }
  if (!Number.isSafeInteger(firstLsn) || firstLsn < 1) return `first LSN ${firstLsn} out of range`;
  if (prevEpoch === 0 && firstLsn !== 1) return `a genesis segment must start at LSN 1, not ${firstLsn}`;
  if (!Number.isInteger(recordCount) || recordCount < 0 || recordCount > MAX_U32) return `record count ${recordCount} out of range`;
  if (!Number.isSafeInteger(firstLsn + recordCount)) return `LSNs ${firstLsn}+${recordCount} exceed 2^53`;
  if (!Number.isInteger(flags) || (flags & ~KNOWN_FLAGS) !== 0) return `unknown flags 0x${flags.toString(16)}`;
  return null;
}

/**
 * Encode one segment. Throws RangeError on a malformed header or record
 * (callers validate user input first; reaching this is a bug).
 */
export function encodeSegment(meta: SegmentMeta, records: readonly Uint8Array[]): Uint8Array {
  const problem = metaProblem(meta);
  if (problem) throw new RangeError(`cannot encode segment: ${problem}`);
  if (records.length !== meta.recordCount) {
    throw new RangeError(`cannot encode segment: ${records.length} records but header says ${meta.recordCount}`);
  }
  let body = 0;
  for (const r of records) {
    if (r.length < 1 || r.length > MAX_U32) throw new RangeError(`cannot encode segment: record length ${r.length}`);
    body += RECORD_OVERHEAD + r.length;
  }
  if (body > MAX_U32) throw new RangeError(`cannot encode segment: body of ${body} bytes exceeds 4 GiB`);
  const out = new Uint8Array(HEADER_BYTES + body);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(SEGMENT_MAGIC, 0);
  view.setUint16(4, SEGMENT_VERSION, true);
  view.setUint16(6, meta.flags, true);
  view.setBigUint64(8, BigInt(meta.generation), true);
  view.setBigUint64(16, BigInt(meta.epoch), true);
  view.setBigUint64(24, BigInt(meta.prevEpoch), true);
  view.setBigUint64(32, BigInt(meta.firstLsn), true);
  view.setUint32(40, meta.recordCount, true);
  view.setUint32(44, body, true);
  view.setUint32(48, 0, true);
  view.setUint32(52, crc32c(out.subarray(0, 52)), true);
  let at = HEADER_BYTES;
  for (const r of records) {
    view.setUint32(at, r.length, true);
    const crc = crc32c(r, crc32c(out.subarray(at, at + 4)));
    view.setUint32(at + 4, crc, true);
    out.set(r, at + RECORD_OVERHEAD);
    at += RECORD_OVERHEAD + r.length;
  }
  return out;
}

function u64(view: DataView, at: number): number {
  const v = view.getBigUint64(at, true);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}

const bad = (problem: string): SegmentDecode => ({ ok: false, unsupported: false, problem });

/**
 * Decode and verify a whole segment. `expectedEpoch` (from the object key)
 * must match the header. Records are views into `bytes` (no copy).
 */
export function decodeSegment(bytes: Uint8Array, expectedEpoch?: number): SegmentDecode {
  if (bytes.length < HEADER_BYTES) return bad(`torn: ${bytes.length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== SEGMENT_MAGIC[i]) return bad('bad magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const storedCrc = view.getUint32(52, true);
  if (crc32c(bytes.subarray(0, 52)) !== storedCrc) return bad('header checksum mismatch');
  const version = view.getUint16(4, true);
  if (version !== SEGMENT_VERSION) {
    return { ok: false, unsupported: true, problem: `segment format version ${version} (this floe reads version ${SEGMENT_VERSION})` };
  }
  if (view.getUint32(48, true) !== 0) return bad('reserved header field is not zero');
  const meta: SegmentMeta = {
    flags: view.getUint16(6, true),
    generation: u64(view, 8),
    epoch: u64(view, 16),
    prevEpoch: u64(view, 24),
    firstLsn: u64(view, 32),
    recordCount: view.getUint32(40, true),
  };
  const problem = metaProblem(meta);
  if (problem) return bad(problem);
  if (expectedEpoch !== undefined && meta.epoch !== expectedEpoch) {
    return bad(`header epoch ${meta.epoch} does not match key epoch ${expectedEpoch}`);
  }
  const body = view.getUint32(44, true);
  if (bytes.length < HEADER_BYTES + body) return bad(`torn: ${bytes.length} bytes, header promises ${HEADER_BYTES + body}`);
  if (bytes.length > HEADER_BYTES + body) return bad(`${bytes.length - HEADER_BYTES - body} trailing bytes after the body`);
  if (body < meta.recordCount * RECORD_OVERHEAD) return bad(`body of ${body} bytes cannot hold ${meta.recordCount} records`);
  const records: Uint8Array[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < meta.recordCount; i++) {
    if (at + RECORD_OVERHEAD > bytes.length) return bad(`record ${i} header runs past the body`);
    const len = view.getUint32(at, true);
    if (len < 1) return bad(`record ${i} has length 0`);
    const end = at + RECORD_OVERHEAD + len;
    if (end > bytes.length) return bad(`record ${i} of ${len} bytes runs past the body`);
    const data = bytes.subarray(at + RECORD_OVERHEAD, end);
    if (crc32c(data, crc32c(bytes.subarray(at, at + 4))) !== view.getUint32(at + 4, true)) {
      return bad(`record ${i} checksum mismatch`);
    }
    records.push(data);
    at = end;
  }
  if (at !== bytes.length) return bad(`${bytes.length - at} bytes after the last record`);
  return { ok: true, meta, records };
}

const EPOCH_NAME = /^([0-9a-f]{16})\.seg$/;

/** The object key of epoch `epoch` under `prefix`. */
export function segmentKey(prefix: string, epoch: number): string {
  return `${prefix}${epoch.toString(16).padStart(16, '0')}.seg`;
}

/** The epoch a key names, or null when the key is not a segment of this prefix. */
export function parseSegmentKey(prefix: string, key: string): number | null {
  if (!key.startsWith(prefix)) return null;
  const m = EPOCH_NAME.exec(key.slice(prefix.length));
  if (!m) return null;
  const epoch = Number.parseInt(m[1]!, 16);
  return Number.isSafeInteger(epoch) && epoch >= 1 ? epoch : null;
}

/** Bytes a segment of these record lengths takes. */
export function segmentBytes(recordBytes: number, recordCount: number): number {
  return HEADER_BYTES + recordBytes + RECORD_OVERHEAD * recordCount;
}
