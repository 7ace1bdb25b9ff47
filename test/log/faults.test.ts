// The log under faults: a crash at every failpoint (log's own and the
// store's, torn writes included) leaves a valid prefix holding every
// acknowledged record; failed writes never become durable later; random
// error schedules (seeded) keep every promise honest.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FloeError } from '../../src/errors.js';
import type { LogWriter } from '../../src/log/writer.js';
import { LogAppendError, openLogWriter } from '../../src/log/writer.js';
import { encodeSegment, segmentKey } from '../../src/log/segment.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { ObjectStore, PutResult } from '../../src/store/types.js';
import { assertRecovered, collect, isCode, payload, readAll } from './helpers.js';

interface Outcome {
  acked: Map<number, string>;
  /** Records whose append was rejected with outcome 'not-durable'. */
  notDurable: Set<string>;
  appended: Set<string>;
}

const batchOf = (t: string): { id: string; size: number } | null => {
  const m = /^(b\d+-\d+)\.\d$/.exec(t);
  return m ? { id: m[1]!, size: 3 } : null;
};

/**
 * A workload of concurrent appends and batches, a truncation and a close.
 * Never throws: every failure is recorded or expected.
 */
async function workload(open: () => Promise<LogWriter>, round: number): Promise<Outcome> {
  const out: Outcome = { acked: new Map(), notDurable: new Set(), appended: new Set() };
  let log: LogWriter;
  try {
    log = await open();
  } catch (err) {
    if (err instanceof FloeError) return out;
    throw err;
  }
  const track = async (texts: string[], p: Promise<number>): Promise<void> => {
    texts.forEach((t) => out.appended.add(t));
    try {
      const first = await p;
      texts.forEach((t, i) => out.acked.set(first + i, t));
    } catch (err) {
      if (!(err instanceof FloeError)) throw err;
      if (err instanceof LogAppendError && err.outcome === 'not-durable') texts.forEach((t) => out.notDurable.add(t));
    }
  };
  const wave = async (w: number): Promise<void> => {
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < 12; i++) {
      const t = `r${round}-${w}-${i}`;
      jobs.push(track([t], log.append(payload(t)).then((r) => r.lsn)));
      if (i % 5 === 0) {
        const id = `b${round}${w}-${i}`;
        const texts = [0, 1, 2].map((k) => `${id}.${k}`);
        jobs.push(track(texts, log.appendBatch(texts.map(payload)).then((r) => r.firstLsn)));
      }
    }
    await Promise.all(jobs);
  };
  await wave(0);
  try {
    const through = Math.max(0, ...[...out.acked.keys()].filter((l) => l <= 10));
    await log.truncateThrough(through);
  } catch (err) {
    if (!(err instanceof FloeError)) throw err;
  }
  await wave(1);
  try {
    await log.close();
    // A second writer recovers what the first left and carries on.
    log = await open();
  } catch (err) {
    if (!(err instanceof FloeError)) throw err;
    return out;
  }
  await wave(2);
  try {
    await log.close();
  } catch (err) {
    if (!(err instanceof FloeError)) throw err;
  }
  return out;
}

/** Reopen cleanly and check the recovered log against what the run promised. */
async function verify(mem: MemoryStore, out: Outcome, label: string): Promise<void> {
  const log = await openLogWriter(mem);
  const entries = await collect(log.replay(log.firstLsn));
  const acked = new Map([...out.acked].filter(([lsn]) => lsn >= log.firstLsn));
  assertRecovered(entries, acked, { firstLsn: log.firstLsn, batchOf, known: (t) => out.appended.has(t) });
  for (const e of entries) assert.ok(!out.notDurable.has(e.text), `${label}: ${e.text} was rejected as not durable but is in the log`);
  const next = await log.append(payload('after'));
  assert.equal(next.lsn, log.firstLsn + entries.length, `${label}: LSNs continue`);
  await log.close();
  const r = await readAll(mem, log.firstLsn);
  assert.equal(r.entries[r.entries.length - 1]?.text, 'after');
}

void describe('crash at every failpoint', () => {
  void it('leaves a valid prefix with every acknowledged record (log and store failpoints, several hit counts)', async (t) => {
    // A clean run names every failpoint the workload reaches and how often.
    const probe = new Failpoints();
    const clean = new MemoryStore();
    await workload(() => openLogWriter(new FaultyStore(clean, probe), { failpoints: probe }), 0);
    const names = probe.seen();
    for (const n of ['log.claim.before', 'log.claim.after', 'log.segment.put.before', 'log.segment.put.after', 'log.truncate.delete.before', 'store.putIfAbsent.before', 'store.putIfAbsent.after', 'store.list.before', 'store.get.before']) {
      assert.ok(names.includes(n), `workload reaches ${n}`);
    }
    let runs = 0;
    for (const name of names) {
      const hits = probe.count(name);
      for (const skip of new Set([0, 1, Math.floor(hits / 2), hits - 1])) {
        if (skip < 0 || skip >= hits) continue;
        for (const maxInFlight of [1, 3]) {
          const mem = new MemoryStore();
          const fp = new Failpoints().arm(name, { type: 'crash' }, { skip, times: 1 });
          const out = await workload(() => openLogWriter(new FaultyStore(mem, fp), { failpoints: fp, maxInFlight }), runs);
          assert.ok(fp.crashed, `${name} skip ${skip} crashed`);
          await verify(mem, out, `${name}#${skip} inflight ${maxInFlight}`);
          runs++;
        }
      }
    }
    assert.ok(runs > 40, `${runs} crash runs`);
    t.diagnostic(`crash runs: ${runs} over ${names.length} failpoints`);
  });

  void it('torn segment and claim writes (every tear length class) leave a valid prefix', async () => {
    const probe = new Failpoints();
    await workload(() => openLogWriter(new FaultyStore(new MemoryStore(), probe), { failpoints: probe }), 0);
    const puts = probe.count('store.putIfAbsent.before');
    let runs = 0;
    for (let skip = 0; skip < puts; skip += Math.max(1, Math.floor(puts / 12))) {
      for (const keep of [0, 1, 30, 55, 56, 57, (n: number) => n - 1, (n: number) => n / 2]) {
        const mem = new MemoryStore();
        const fp = new Failpoints().arm('store.putIfAbsent.before', { type: 'torn', keepBytes: keep }, { skip, times: 1 });
        const out = await workload(() => openLogWriter(new FaultyStore(mem, fp), { failpoints: fp, maxInFlight: 2 }), runs);
        await verify(mem, out, `torn put #${skip} keep ${String(keep)}`);
        runs++;
      }
    }
    assert.ok(runs > 50);
  });
});

/** A store where chosen writes report failure at once but land later, when released (a slow request after a client timeout). */
class LimboStore implements ObjectStore {
  readonly kind: string;
  readonly location: string;
  readonly held: Array<() => Promise<void>> = [];
  limbo: (key: string) => boolean = () => false;
  constructor(readonly inner: ObjectStore) {
    this.kind = inner.kind;
    this.location = inner.location;
  }
  get(key: string) {
    return this.inner.get(key);
  }
  getRange(key: string, o: number, l: number) {
    return this.inner.getRange(key, o, l);
  }
  head(key: string) {
    return this.inner.head(key);
  }
  put(key: string, b: Uint8Array) {
    return this.inner.put(key, b);
  }
  async putIfAbsent(key: string, b: Uint8Array): Promise<PutResult> {
    if (this.limbo(key)) {
      this.limbo = () => false; // one request only
      const copy = b.slice();
      this.held.push(async () => {
        await this.inner.putIfAbsent(key, copy);
      });
      throw new FloeError('TIMEOUT', 'request timed out (it may still land)', { key, backend: 'limbo' });
    }
    return this.inner.putIfAbsent(key, b);
  }
  putIfMatch(key: string, b: Uint8Array, e: string) {
    return this.inner.putIfMatch(key, b, e);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  list(prefix: string, o?: { startAfter?: string; limit?: number }) {
    return this.inner.list(prefix, o);
  }
  close() {
    return this.inner.close();
  }
}

void describe('failed segment writes', () => {
  void it('a write that failed never becomes durable later: its epoch is blocked, its waiters get the error, the log goes on', async () => {
    const mem = new MemoryStore();
    const limbo = new LimboStore(mem);
    const log = await openLogWriter(limbo);
    await log.append(payload('before'));
    const target = segmentKey('log/', 3);
    limbo.limbo = (k) => k === target;
    const err = await log.append(payload('lost')).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof LogAppendError, 'the waiter gets the error');
    assert.equal(err.code, 'TIMEOUT');
    assert.equal(err.outcome, 'not-durable');
    // The timed-out request lands now: too late, the epoch is taken.
    await assert.rejects(limbo.held[0]!(), isCode('ALREADY_EXISTS'));
    assert.deepEqual(await log.append(payload('after')), { lsn: 2 }, 'the log goes on, reusing the failed LSN');
    await log.close();
    const r = await readAll(mem);
    assert.deepEqual(
      r.entries.map((e) => e.text),
      ['before', 'after'],
    );
  });

  void it('a write reported failed that did land is acknowledged after all', async () => {
    const mem = new MemoryStore();
    const fp = new Failpoints();
    const log = await openLogWriter(new FaultyStore(mem, fp));
    fp.arm('store.putIfAbsent.after', { type: 'error', code: 'STORAGE_UNAVAILABLE' }, { times: 1 });
    assert.deepEqual(await log.append(payload('landed')), { lsn: 1 });
    assert.equal(log.stats().failedWrites, 1);
    await log.close();
    assert.deepEqual((await readAll(mem)).entries, [{ lsn: 1, text: 'landed' }]);
  });

  void it('when even blocking the epoch fails, waiters learn the outcome is unknown and the writer stops', async () => {
    const mem = new MemoryStore();
    const fp = new Failpoints();
    const log = await openLogWriter(new FaultyStore(mem, fp));
    fp.arm('store.putIfAbsent.before', { type: 'error', code: 'STORAGE_UNAVAILABLE' });
    const errs = await Promise.all(
      [0, 1, 2].map((i) =>
        log.append(payload(`u${i}`)).then(
          () => null,
          (e: unknown) => e,
        ),
      ),
    );
    for (const e of errs) assert.ok(e instanceof LogAppendError && e.outcome === 'unknown', String(e));
    assert.equal(log.state, 'failed');
    await assert.rejects(log.append(payload('x')), isCode('CLOSED'));
    await log.close();
    fp.disarm();
    const again = await openLogWriter(new FaultyStore(mem, fp));
    assert.deepEqual(await collect(again.replay(1)), [], 'nothing landed; the next writer finds out');
    await again.close();
  });

  void it('a failure inside a pipeline drops only its own group; later groups are rewritten with renumbered LSNs', async () => {
    const mem = new MemoryStore();
    const fp = new Failpoints().arm('store.putIfAbsent.before', { type: 'delay', ms: 1 });
    const limbo = new LimboStore(new FaultyStore(mem, fp));
    const log = await openLogWriter(limbo, { maxInFlight: 4, maxGroupRecords: 5 });
    await log.append(payload('p0'));
    limbo.limbo = (k) => k === segmentKey('log/', 4);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        log.append(payload(`p${i + 1}`)).then(
          (r) => ({ text: `p${i + 1}`, lsn: r.lsn, err: null as unknown }),
          (err: unknown) => ({ text: `p${i + 1}`, lsn: 0, err }),
        ),
      ),
    );
    for (const h of limbo.held) await assert.rejects(h(), isCode('ALREADY_EXISTS'));
    const failed = results.filter((r) => r.err !== null);
    assert.ok(failed.length > 0, 'the group at epoch 4 failed');
    for (const f of failed) assert.ok(f.err instanceof LogAppendError && f.err.outcome === 'not-durable');
    const ok = results.filter((r) => r.err === null);
    assert.deepEqual(
      ok.map((r) => r.lsn),
      ok.map((_, i) => i + 2),
      'acknowledged LSNs stay dense and in call order',
    );
    await log.close();
    const r = await readAll(mem);
    assert.deepEqual(
      r.entries.map((e) => e.text),
      ['p0', ...ok.map((x) => x.text)],
    );
  });

  void it('an older writer’s late segment above the tip is skipped, not mistaken for a fence', async () => {
    const mem = new MemoryStore();
    await (await openLogWriter(mem)).close(); // generation 1, fence at 1
    const log = await openLogWriter(mem); // generation 2, fence at 2
    // Generation 1's request for epoch 3 lands late.
    await mem.putIfAbsent(segmentKey('log/', 3), encodeSegment({ generation: 1, epoch: 3, prevEpoch: 2, firstLsn: 1, recordCount: 1, flags: 0 }, [payload('zombie')]));
    assert.deepEqual(await log.append(payload('a')), { lsn: 1 });
    assert.deepEqual(await log.append(payload('b')), { lsn: 2 });
    assert.equal(log.state, 'open');
    assert.deepEqual(
      (await readAll(mem)).entries.map((e) => e.text),
      ['a', 'b'],
    );
    // The void at 3 goes once a truncation passes it, before the members below it.
    await log.truncateThrough(2);
    await assert.rejects(mem.get(segmentKey('log/', 3)), isCode('NOT_FOUND'));
    await log.close();
    assert.deepEqual((await readAll(mem, 2)).entries, [{ lsn: 2, text: 'b' }]);
  });

  void it("durability 'none': a failed write stops the writer and close() reports the loss instead of hiding it", async () => {
    const mem = new MemoryStore();
    const fp = new Failpoints();
    const log = await openLogWriter(new FaultyStore(mem, fp), { durability: 'none' });
    await log.append(payload('n0'));
    while (log.durableLsn < 1) await new Promise((r) => setImmediate(r));
    fp.arm('store.putIfAbsent.before', { type: 'error', code: 'STORAGE_UNAVAILABLE' }, { times: 1 });
    assert.deepEqual(await log.append(payload('n1')), { lsn: 2 }, "'none' resolves before the write");
    await assert.rejects(log.close(), (e: unknown) => isCode('CLOSED')(e) && /lost acknowledged records/.test((e as Error).message));
    assert.equal(log.state, 'failed');
    await assert.rejects(log.append(payload('n2')), isCode('CLOSED'));
    assert.deepEqual(
      (await readAll(mem)).entries.map((e) => e.text),
      ['n0'],
    );
  });

  void it('random seeded error schedules: acknowledged records survive, rejected-as-not-durable ones never appear', async () => {
    const totals = { acked: 0, notDurable: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.constantFrom(1, 2, 4),
        fc.constantFrom(0.02, 0.08, 0.2),
        async (seed, maxInFlight, p) => {
          let s = seed;
          const random = (): number => {
            s = (s * 1103515245 + 12345) % 2 ** 31;
            return s / 2 ** 31;
          };
          const mem = new MemoryStore();
          const fp = new Failpoints({ random });
          for (const name of ['store.putIfAbsent.before', 'store.putIfAbsent.after', 'store.get.before', 'store.delete.before']) {
            fp.arm(name, { type: 'error', code: 'STORAGE_UNAVAILABLE' }, { probability: p });
          }
          const out = await workload(() => openLogWriter(new FaultyStore(mem, fp), { maxInFlight }), seed);
          totals.acked += out.acked.size;
          totals.notDurable += out.notDurable.size;
          await verify(mem, out, `seed ${seed}`);
        },
      ),
      { numRuns: 60 },
    );
    assert.ok(totals.acked > 0 && totals.notDurable > 0, `schedules exercised both outcomes: ${JSON.stringify(totals)}`);
  });
});
