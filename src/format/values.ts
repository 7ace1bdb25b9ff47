/**
 * Tagged JSON for row values: the encoding of rows inside log records and of
 * statistics inside manifests.
 *
 * Plain JSON loses the types floe rows carry, so non-JSON values travel as
 * one-key objects with a `$` tag: `{"$b":"123"}` bigint, `{"$u":"<base64>"}`
 * Uint8Array, `{"$d":<epoch ms>}` Date, `{"$f":[...]}` Float32Array,
 * `{"$n":"NaN"|"Infinity"|"-Infinity"}` non-finite numbers. A genuine object
 * value is never a row value (rows are flat records of scalars, arrays and
 * the types above), so tags cannot collide with data. The round trip is
 * exact: `decodeValue(encodeValue(v))` equals `v` for every supported value.
 */
import { FloeError } from '../errors.js';

export type EncodedValue = null | boolean | number | string | EncodedValue[] | { [tag: string]: unknown };

export function encodeValue(v: unknown): EncodedValue {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : { $n: String(v) };
    case 'bigint':
      return { $b: v.toString() };
    case 'object':
      if (v instanceof Date) return { $d: v.getTime() };
      if (v instanceof Float32Array) return { $f: Array.from(v, (x) => (Number.isFinite(x) ? x : String(x))) };
      if (v instanceof Uint8Array) return { $u: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
      if (Array.isArray(v)) return v.map(encodeValue);
      break;
    default:
      break;
  }
  throw new FloeError('INVALID_ARGUMENT', `cannot encode value of type ${describe(v)}`);
}

export function decodeValue(e: unknown): unknown {
  if (e === null || typeof e === 'boolean' || typeof e === 'string' || typeof e === 'number') return e;
  if (Array.isArray(e)) return e.map(decodeValue);
  if (typeof e === 'object') {
    const o = e as Record<string, unknown>;
    if (typeof o.$b === 'string') return BigInt(o.$b);
    if (typeof o.$d === 'number') return new Date(o.$d);
    if (typeof o.$u === 'string') return new Uint8Array(Buffer.from(o.$u, 'base64'));
    if (Array.isArray(o.$f)) return Float32Array.from(o.$f, (x) => Number(x));
    if (typeof o.$n === 'string') return Number(o.$n);
  }
  throw new FloeError('CORRUPT', `cannot decode tagged value ${JSON.stringify(e)?.slice(0, 80)}`);
}

export function encodeRow(row: Record<string, unknown>): Record<string, EncodedValue> {
  const out: Record<string, EncodedValue> = {};
  for (const [k, v] of Object.entries(row)) out[k] = encodeValue(v);
  return out;
}

export function decodeRow(row: unknown): Record<string, unknown> {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) {
    throw new FloeError('CORRUPT', 'encoded row is not an object');
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row as Record<string, unknown>)) out[k] = decodeValue(v);
  return out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v).constructor?.name ?? 'object';
  return typeof v;
}
