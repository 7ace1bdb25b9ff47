/**
 * Log records for table writes: what one committed point write (or one
 * multi-table transaction) puts in the write-ahead log.
 *
 * A record is atomic on replay: the log delivers it whole or not at all
 * (segment and record checksums live in src/log), so a transaction that
 * spans tables is one record. Rows are already validated and normalized
 * when encoded, and carry the `_id`s minted for them, so replay rebuilds
 * exactly the memtable state that was acknowledged. Encoding: UTF-8 JSON
 * with tagged values (values.ts), version-stamped.
 */
import { FloeError } from '../errors.js';
import { decodeRow, encodeRow } from './values.js';

export const LOG_RECORD_VERSION = 1;

export type Row = Record<string, unknown>;

export type TableWrite =
  | { readonly table: string; readonly kind: 'upsert'; readonly rows: readonly Row[]; readonly ids: readonly bigint[] }
  | { readonly table: string; readonly kind: 'delete'; readonly keys: readonly Row[] };

interface EncodedWrite {
  t: string;
  k: 'u' | 'd';
  r: unknown[];
  i?: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeLogRecord(writes: readonly TableWrite[]): Uint8Array {
  const w: EncodedWrite[] = writes.map((x) =>
    x.kind === 'upsert'
      ? { t: x.table, k: 'u', r: x.rows.map(encodeRow), i: x.ids.map(String) }
      : { t: x.table, k: 'd', r: x.keys.map(encodeRow) },
  );
  return encoder.encode(JSON.stringify({ v: LOG_RECORD_VERSION, w }));
}

export function decodeLogRecord(bytes: Uint8Array, lsn: number): TableWrite[] {
  let parsed: { v?: unknown; w?: unknown };
  try {
    parsed = JSON.parse(decoder.decode(bytes)) as { v?: unknown; w?: unknown };
  } catch (cause) {
    throw new FloeError('CORRUPT', `log record ${lsn} is not a floe table write`, { cause, backend: 'log' });
  }
  if (parsed.v !== LOG_RECORD_VERSION || !Array.isArray(parsed.w)) {
    if (typeof parsed.v === 'number' && parsed.v > LOG_RECORD_VERSION) {
      throw new FloeError('UNSUPPORTED_VERSION', `log record ${lsn} has version ${parsed.v}; upgrade floe`, { backend: 'log' });
    }
    throw new FloeError('CORRUPT', `log record ${lsn} has no writes`, { backend: 'log' });
  }
  return (parsed.w as EncodedWrite[]).map((w) => {
    if (w.k === 'u') {
      const ids = (w.i ?? []).map((s) => BigInt(s));
      if (ids.length !== w.r.length) throw new FloeError('CORRUPT', `log record ${lsn}: ids and rows differ in count`);
      return { table: w.t, kind: 'upsert', rows: w.r.map(decodeRow), ids };
    }
    if (w.k === 'd') return { table: w.t, kind: 'delete', keys: w.r.map(decodeRow) };
    throw new FloeError('CORRUPT', `log record ${lsn}: unknown write kind`);
  });
}
