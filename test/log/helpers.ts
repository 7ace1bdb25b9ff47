// Shared helpers for the log tests: record payloads that name their origin,
// reading the whole durable log back, and checking what a crash left.
import assert from 'node:assert/strict';
import { analyzeLog } from '../../src/log/chain.js';
import type { Slot } from '../../src/log/chain.js';
import type { LogEntry } from '../../src/log/replay.js';
import { decodeSegment, parseSegmentKey } from '../../src/log/segment.js';
import { listKeys } from '../../src/store/list.js';
import { readLog } from '../../src/log/replay.js';
import { FloeError } from '../../src/errors.js';
import type { ObjectStore } from '../../src/store/types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

export const payload = (tag: string): Uint8Array => enc.encode(tag);
export const text = (b: Uint8Array): string => dec.decode(b);

export async function collect(it: AsyncIterable<LogEntry>): Promise<Array<{ lsn: number; text: string }>> {
  const out: Array<{ lsn: number; text: string }> = [];
  for await (const e of it) out.push({ lsn: e.lsn, text: text(e.record) });
  return out;
}

/** The whole durable log as a reader sees it. */
export async function readAll(
  store: ObjectStore,
  fromLsn = 1,
  prefix = 'log/',
): Promise<{ maxDurableLsn: number; firstLsn: number; entries: Array<{ lsn: number; text: string }> }> {
  const snap = await readLog(store, { prefix, fromLsn });
  return { maxDurableLsn: snap.maxDurableLsn, firstLsn: snap.firstLsn, entries: await collect(snap.entries) };
}

/** Consecutive LSNs from `first`, no duplicates, no gaps. */
export function assertContiguous(entries: ReadonlyArray<{ lsn: number }>, first: number): void {
  entries.forEach((e, i) => assert.equal(e.lsn, first + i, `LSN at position ${i}`));
}

/**
 * Check a recovered log against what was acknowledged: every acknowledged
 * LSN is there with its payload; LSNs are contiguous; every record is one
 * that was appended, at most once; batches are all-or-nothing.
 */
export function assertRecovered(
  entries: ReadonlyArray<{ lsn: number; text: string }>,
  acked: ReadonlyMap<number, string>,
  options: { firstLsn?: number; batchOf?: (text: string) => { id: string; size: number } | null; known?: (text: string) => boolean } = {},
): void {
  assertContiguous(entries, options.firstLsn ?? 1);
  const byLsn = new Map(entries.map((e) => [e.lsn, e.text]));
  for (const [lsn, t] of acked) assert.equal(byLsn.get(lsn), t, `acknowledged LSN ${lsn} missing or changed`);
  const seen = new Set<string>();
  for (const e of entries) {
    assert.ok(!seen.has(e.text), `record ${e.text} replayed twice`);
    seen.add(e.text);
    if (options.known) assert.ok(options.known(e.text), `record ${e.text} was never appended`);
  }
  if (options.batchOf) {
    const counts = new Map<string, { have: number; size: number }>();
    for (const e of entries) {
      const b = options.batchOf(e.text);
      if (!b) continue;
      const c = counts.get(b.id) ?? { have: 0, size: b.size };
      c.have++;
      counts.set(b.id, c);
    }
    for (const [id, c] of counts) assert.equal(c.have, c.size, `batch ${id} is half there`);
  }
}

export function isCode(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof FloeError && e.code === code;
}

/** The generations along the durable chain, in order. */
export async function chainGenerations(store: ObjectStore, prefix = 'log/'): Promise<number[]> {
  const slots: Slot[] = [];
  for (const key of await listKeys(store, prefix)) {
    const epoch = parseSegmentKey(prefix, key);
    if (epoch === null) continue;
    const d = decodeSegment((await store.get(key)).bytes, epoch);
    slots.push({ epoch, meta: d.ok ? d.meta : null });
  }
  return analyzeLog(slots).chain.map((m) => m.generation);
}

