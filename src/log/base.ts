/**
 * The log base: where the durable chain starts once the log was truncated.
 *
 * A base is a create-once object `<prefix>base/<startEpoch, 16 hex>` holding
 * {startEpoch, firstLsn}: the chain begins at the segment of that epoch,
 * which must hold that first LSN. The base in effect is the readable base
 * object with the highest epoch. Segments below it are dead whatever they
 * contain, so nothing that lands there late (a paused old writer's request,
 * say) can change what the log says. Without any base the log was never
 * truncated and the chain begins at a genesis segment.
 *
 * Truncation writes the new base first and deletes segments below it only
 * after that write is durable; then it removes the older base objects. The
 * bytes of a base are fixed by its epoch, so writing it is idempotent (an
 * unconditional put: a retry, or a repair of a torn copy, writes the same
 * bytes). A base that does not verify (torn by a crash while being written,
 * before any delete it would have allowed) is ignored and the next lower one
 * applies. Bases only move forward: a lower one written late never wins.
 * Readers read the base before listing segments, so a truncation racing them
 * shows up as a missing start segment and a rescan.
 *
 * Bytes: one JSON line, then `crc32c=<8 hex>` of that line.
 */
import { crc32c } from '@node-rs/crc32';
import { isFloeError } from '../errors.js';
import type { FailpointHook } from '../store/failpoints.js';
import { listAll } from '../store/list.js';
import type { ObjectStore } from '../store/types.js';

export interface LogBase {
  readonly startEpoch: number;
  readonly firstLsn: number;
}

const BASE_NAME = /^([0-9a-f]{16})$/;

export function basePrefix(prefix: string): string {
  return `${prefix}base/`;
}

export function baseKey(prefix: string, startEpoch: number): string {
  return `${basePrefix(prefix)}${startEpoch.toString(16).padStart(16, '0')}`;
}

/** The epoch a base key names, or null. */
export function parseBaseKey(prefix: string, key: string): number | null {
  const p = basePrefix(prefix);
  if (!key.startsWith(p)) return null;
  const m = BASE_NAME.exec(key.slice(p.length));
  if (!m) return null;
  const e = Number.parseInt(m[1]!, 16);
  return Number.isSafeInteger(e) && e >= 1 ? e : null;
}

export function encodeBase(base: LogBase): Uint8Array {
  const line = JSON.stringify({ format: 'floe-log-base', version: 1, startEpoch: base.startEpoch, firstLsn: base.firstLsn });
  const crc = crc32c(Buffer.from(line, 'utf8')).toString(16).padStart(8, '0');
  return new TextEncoder().encode(`${line}\ncrc32c=${crc}\n`);
}

/** The base these bytes hold, or a description of what is wrong with them. */
export function decodeBase(bytes: Uint8Array): LogBase | string {
  const text = new TextDecoder().decode(bytes);
  const m = /^(.*)\ncrc32c=([0-9a-f]{8})\n$/s.exec(text);
  if (!m) return 'not a base object (torn or foreign)';
  const line = m[1]!;
  if (crc32c(Buffer.from(line, 'utf8')).toString(16).padStart(8, '0') !== m[2]) return 'checksum mismatch';
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    return `unparsable JSON (${err instanceof Error ? err.message : String(err)})`;
  }
  if (typeof v !== 'object' || v === null) return 'not an object';
  const o = v as Record<string, unknown>;
  if (o.format !== 'floe-log-base' || o.version !== 1) return `unknown format ${String(o.format)} version ${String(o.version)}`;
  const { startEpoch, firstLsn } = o;
  if (typeof startEpoch !== 'number' || !Number.isSafeInteger(startEpoch) || startEpoch < 1) return `bad startEpoch ${String(startEpoch)}`;
  if (typeof firstLsn !== 'number' || !Number.isSafeInteger(firstLsn) || firstLsn < 1) return `bad firstLsn ${String(firstLsn)}`;
  return { startEpoch, firstLsn };
}

/** Base object epochs present, ascending. */
export async function listBases(store: ObjectStore, prefix: string): Promise<number[]> {
  const out: number[] = [];
  for await (const key of listAll(store, basePrefix(prefix))) {
    const e = parseBaseKey(prefix, key);
    if (e !== null) out.push(e);
  }
  return out.sort((a, b) => a - b);
}

/** The base in effect (the highest readable one), or null when the log was never truncated. */
export async function readBase(store: ObjectStore, prefix: string): Promise<LogBase | null> {
  const epochs = await listBases(store, prefix);
  for (let i = epochs.length - 1; i >= 0; i--) {
    const epoch = epochs[i]!;
    let bytes: Uint8Array;
    try {
      bytes = (await store.get(baseKey(prefix, epoch))).bytes;
    } catch (err) {
      // Pruned after our listing: a higher one we listed is in effect.
      if (isFloeError(err, 'NOT_FOUND')) continue;
      throw err;
    }
    const base = decodeBase(bytes);
    // Torn or damaged: it allowed no delete yet, so the next lower one holds.
    if (typeof base === 'string' || base.startEpoch !== epoch) continue;
    return base;
  }
  return null;
}

/** Make `base` durable (idempotent). Segments below it may be deleted afterwards. */
export async function writeBase(store: ObjectStore, prefix: string, base: LogBase, failpoints: FailpointHook): Promise<void> {
  const key = baseKey(prefix, base.startEpoch);
  await failpoints.hit('log.base.put.before', { key, epoch: base.startEpoch });
  await store.put(key, encodeBase(base));
  await failpoints.hit('log.base.put.after', { key, epoch: base.startEpoch });
}

/** Delete base objects below `startEpoch` (idempotent). */
export async function pruneBases(store: ObjectStore, prefix: string, startEpoch: number): Promise<void> {
  for (const e of await listBases(store, prefix)) {
    if (e < startEpoch) await store.delete(baseKey(prefix, e));
  }
}
