/**
 * LogTail (src/replica/logtail.ts), the incremental log follower behind the
 * store source: a model-based run of random log histories — group commits,
 * failed segment writes (settled by VOID markers), torn writes by a crashed
 * writer, takeovers by a newer writer while the old one is alive, and
 * truncations — where every read from a random position must equal what the
 * log's own full reader (readLog) returns at that moment: the same bound,
 * the same records, and LOG_GAP exactly when readLog says so. Plus the cost
 * of an idle poll counted through MetricsStore: one LIST and nothing else,
 * however long the log. FLOE_MODEL_RUNS scales the model run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isFloeError } from '../../src/errors.js';
import type { LogEntry } from '../../src/log/replay.js';
import { readLog } from '../../src/log/replay.js';
import type { LogWriter } from '../../src/log/writer.js';
import { openLogWriter } from '../../src/log/writer.js';
import { LogTail } from '../../src/replica/logtail.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';

// Runs are cheap here (a memory store, no engine): 10x the suite-wide default.
const RUNS = 10 * Number(process.env.FLOE_MODEL_RUNS ?? 15);
const enc = new TextEncoder();
const dec = new TextDecoder();

type Outcome = { gap: true } | { gap: false; bound: number; records: Array<[number, string]> };

async function drain(entries: AsyncIterable<LogEntry>): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for await (const e of entries) out.push([e.lsn, dec.decode(e.record)]);
  return out;
}

async function outcome(run: () => Promise<{ bound: number; entries: AsyncIterable<LogEntry> }>): Promise<Outcome> {
  try {
    const r = await run();
    return { gap: false, bound: r.bound, records: await drain(r.entries) };
  } catch (err) {
    if (isFloeError(err, 'LOG_GAP')) return { gap: true };
    throw err;
  }
}

type Op =
  | { kind: 'append'; n: number }
  | { kind: 'fail' }
  | { kind: 'torn' }
  | { kind: 'takeover'; oldAppends: number }
  | { kind: 'truncate'; back: number }
  | { kind: 'read'; back: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'fail' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'torn' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('takeover' as const), oldAppends: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('truncate' as const), back: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), back: fc.oneof(fc.integer({ min: -2, max: 1 }), fc.integer({ min: 0, max: 12 })) }) },
);

async function runModel(ops: readonly Op[]): Promise<void> {
  const mem = new MemoryStore();
  const tail = new LogTail(mem);
  let fp = new Failpoints();
  let w: LogWriter = await openLogWriter(new FaultyStore(mem, fp));
  let n = 0;
  const reopen = async (): Promise<void> => {
    fp = new Failpoints();
    w = await openLogWriter(new FaultyStore(mem, fp));
  };
  // The consumer's position, as a replica would keep it: it only moves forward.
  let pos = 0;
  for (const op of ops) {
    switch (op.kind) {
      case 'append':
        await w.appendBatch(Array.from({ length: op.n }, () => enc.encode(`r${n++}`)));
        break;
      case 'fail': {
        fp.arm('store.putIfAbsent.before', { type: 'error' }, { times: 1, match: (c) => typeof c.key === 'string' && c.key.endsWith('.seg') });
        await assert.rejects(w.append(enc.encode(`r${n++}`)));
        fp.disarm();
        if (w.state !== 'open') await reopen();
        break;
      }
      case 'torn': {
        fp.arm('store.putIfAbsent.before', { type: 'torn', keepBytes: (len) => Math.floor(len / 2) }, { times: 1, match: (c) => typeof c.key === 'string' && c.key.endsWith('.seg') });
        await assert.rejects(w.append(enc.encode(`r${n++}`)));
        await reopen(); // the crashed writer is gone; a new one recovers past the torn segment
        break;
      }
      case 'takeover': {
        const old = w;
        const oldWrites = Array.from({ length: op.oldAppends }, () => old.append(enc.encode(`r${n++}`)).then(
          () => undefined,
          (err: unknown) => assert.ok(isFloeError(err, 'FENCED', 'CLOSED'), String(err)),
        ));
        await reopen();
        await Promise.all(oldWrites);
        await old.close().catch((err: unknown) => assert.ok(isFloeError(err, 'FENCED', 'CLOSED'), String(err)));
        break;
      }
      case 'truncate':
        await w.truncateThrough(Math.max(0, w.durableLsn - op.back));
        break;
      case 'read': {
        const since = op.back < 0 ? pos : Math.max(0, w.durableLsn - op.back);
        const want = await outcome(async () => {
          const s = await readLog(mem, { fromLsn: since + 1 });
          return { bound: s.maxDurableLsn, entries: s.entries };
        });
        const got = await outcome(() => tail.read(since));
        assert.deepEqual(got, want, `read from ${since}`);
        if (!got.gap) pos = Math.max(pos, got.bound);
        break;
      }
    }
  }
  const last = await outcome(() => tail.read(pos));
  const ref = await outcome(async () => {
    const s = await readLog(mem, { fromLsn: pos + 1 });
    return { bound: s.maxDurableLsn, entries: s.entries };
  });
  assert.deepEqual(last, ref);
  await w.close();
}

describe('LogTail', () => {
  it('reads equal the full log reader across appends, failed and torn writes, takeovers and truncations', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 3, maxLength: 50 }), (ops) => runModel(ops)), { numRuns: RUNS });
  });

  it('a truncation past the known tip: the chain is re-anchored at the new base (records after it are read, older ones are a gap)', async () => {
    const mem = new MemoryStore();
    const w = await openLogWriter(mem);
    const tail = new LogTail(mem);
    for (let i = 1; i <= 5; i++) await w.append(enc.encode(`r${i}`));
    assert.equal((await drain((await tail.read(0)).entries)).length, 5);
    for (let i = 6; i <= 15; i++) await w.append(enc.encode(`r${i}`));
    await w.truncateThrough(12); // deletes the tail's tip and everything up to LSN 12
    const r = await tail.read(13);
    assert.equal(r.bound, 15);
    assert.deepEqual(await drain(r.entries), [
      [14, 'r14'],
      [15, 'r15'],
    ]);
    await assert.rejects(tail.read(5), (e: unknown) => isFloeError(e, 'LOG_GAP') && /starts at LSN 13/.test((e as Error).message));
    await w.close();
  });

  it('an idle poll costs one LIST however long the log; new segments cost one GET each', async () => {
    const mem = new MemoryStore();
    const w = await openLogWriter(mem);
    const metrics = new MetricsStore(mem);
    const tail = new LogTail(metrics);
    const idleCost = async (): Promise<Record<string, number>> => {
      metrics.reset();
      await tail.poll();
      const snap = metrics.snapshot();
      return Object.fromEntries(Object.entries(snap).filter(([, c]) => c.requests > 0).map(([op, c]) => [op, c.requests]));
    };
    for (const segments of [5, 50, 300]) {
      while (w.durableLsn < segments) await w.append(enc.encode(`r${w.durableLsn}`));
      assert.equal(await tail.poll(), segments);
      assert.deepEqual(await idleCost(), { list: 1 }, `idle poll after ${segments} segments`);
    }
    // Three new segments: one LIST, three GETs, and the read that follows reuses their bodies.
    const since = w.durableLsn;
    for (let i = 0; i < 3; i++) await w.append(enc.encode(`x${i}`));
    metrics.reset();
    const r = await tail.read(since);
    assert.deepEqual((await drain(r.entries)).map(([, t]) => t), ['x0', 'x1', 'x2']);
    assert.equal(metrics.requests('list'), 1);
    assert.equal(metrics.requests('get'), 3);
    assert.equal(metrics.requests(), 4);
    // A second reader further behind (another follower of the same server) costs the
    // GETs of the segments it needs, not a rescan of the log.
    metrics.reset();
    const behind = await tail.read(since - 10);
    assert.equal((await drain(behind.entries)).length, 13);
    assert.deepEqual([metrics.requests('list'), metrics.requests('get')], [1, 10], JSON.stringify(metrics.snapshot()));
    // A truncation shows up as new base objects: the poll reads the base once, then is idle again.
    await w.truncateThrough(w.durableLsn - 1);
    metrics.reset();
    await tail.poll();
    assert.ok(metrics.requests() <= 4, `poll after a truncation: ${JSON.stringify(metrics.snapshot())}`);
    assert.deepEqual(await idleCost(), { list: 1 });
    await assert.rejects(tail.read(0), (e: unknown) => isFloeError(e, 'LOG_GAP'));
    await w.close();
  });
});
