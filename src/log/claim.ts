/**
 * Writer generations: how a process becomes the log's one writer.
 *
 * A claim is a create-only object `<prefix>writer/<generation, 16 hex>`.
 * Claiming lists the existing claims and creates the next generation with
 * `putIfAbsent`; of several racers for one generation exactly one wins and
 * the others move on to a higher one. Generations therefore strictly
 * increase and are never shared, and because the generation is in the key,
 * not in mutable bytes, neither S3's content-hash etags (ABA) nor a torn
 * claim object can confuse anyone: a torn claim still occupies its key.
 *
 * A claim is not a lock and never expires: it only hands out a number. The
 * number takes effect through the fence segment the new writer then writes
 * (see writer.ts); an older writer learns it lost the moment one of its
 * segment writes collides with a newer generation's segment.
 *
 * Old claims are deleted by the winner once its fence is durable (listing
 * stays small); deleting them is always safe because the newest claim is
 * kept and every later claimer picks a number above it.
 */
import { FloeError } from '../errors.js';
import type { FailpointHook } from '../store/failpoints.js';
import { listAll } from '../store/list.js';
import type { ObjectStore } from '../store/types.js';

const CLAIM_NAME = /^([0-9a-f]{16})$/;
const MAX_CLAIM_ATTEMPTS = 64;

export function claimPrefix(prefix: string): string {
  return `${prefix}writer/`;
}

export function claimKey(prefix: string, generation: number): string {
  return `${claimPrefix(prefix)}${generation.toString(16).padStart(16, '0')}`;
}

/** The generation a claim key names, or null. */
export function parseClaimKey(prefix: string, key: string): number | null {
  const base = claimPrefix(prefix);
  if (!key.startsWith(base)) return null;
  const m = CLAIM_NAME.exec(key.slice(base.length));
  if (!m) return null;
  const g = Number.parseInt(m[1]!, 16);
  return Number.isSafeInteger(g) && g >= 1 ? g : null;
}

/** Every claimed generation, ascending. */
export async function listClaims(store: ObjectStore, prefix: string): Promise<number[]> {
  const out: number[] = [];
  for await (const key of listAll(store, claimPrefix(prefix))) {
    const g = parseClaimKey(prefix, key);
    if (g !== null) out.push(g);
  }
  return out.sort((a, b) => a - b);
}

export interface ClaimOptions {
  readonly failpoints: FailpointHook;
  /** Informational timestamp written into the claim (ms since epoch). */
  readonly now: () => number;
  /** Claim at least this generation (default 1). */
  readonly atLeast?: number;
}

/** Claim a generation above every existing claim (and at least `atLeast`). */
export async function claimGeneration(store: ObjectStore, prefix: string, options: ClaimOptions): Promise<number> {
  const claims = await listClaims(store, prefix);
  let generation = Math.max((claims[claims.length - 1] ?? 0) + 1, options.atLeast ?? 1);
  for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++, generation++) {
    if (!Number.isSafeInteger(generation)) break;
    const key = claimKey(prefix, generation);
    const body = new TextEncoder().encode(
      `${JSON.stringify({ format: 'floe-log-claim', version: 1, generation, claimedAt: new Date(options.now()).toISOString() })}\n`,
    );
    await options.failpoints.hit('log.claim.before', { key, generation });
    try {
      await store.putIfAbsent(key, body);
    } catch (err) {
      // Someone else took this generation between our listing and our write:
      // move on to the next one. Any other failure is the caller's.
      if (err instanceof FloeError && err.code === 'ALREADY_EXISTS') continue;
      throw err;
    }
    await options.failpoints.hit('log.claim.after', { key, generation });
    return generation;
  }
  throw new FloeError('CAS_CONFLICT', `could not claim a log writer generation after ${MAX_CLAIM_ATTEMPTS} attempts; other writers keep claiming`, {
    key: claimPrefix(prefix),
    backend: store.location,
  });
}

/** Delete every claim below `generation` (idempotent). */
export async function pruneClaims(store: ObjectStore, prefix: string, generation: number): Promise<void> {
  for (const g of await listClaims(store, prefix)) {
    if (g < generation) await store.delete(claimKey(prefix, g));
  }
}
