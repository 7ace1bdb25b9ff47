// Writer fencing in one process (the multi-process variants are in
// process.test.ts): a newer writer fences an older one, whose next append
// fails FENCED; acknowledged records survive every interleaving of the
// takeover with writes in flight; the chain never interleaves generations.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LogWriter } from '../../src/log/writer.js';
import { LogAppendError, openLogWriter } from '../../src/log/writer.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { assertRecovered, chainGenerations, collect, isCode, payload, readAll } from './helpers.js';

const nonDecreasing = (xs: number[]): boolean => xs.every((x, i) => i === 0 || xs[i - 1]! <= x);

const settle = <T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

void describe('writer fencing', () => {
  void it('a newer writer fences the older one: its next append fails FENCED, and what it acknowledged survives', async () => {
    const mem = new MemoryStore();
    const w1 = await openLogWriter(mem);
    for (let i = 0; i < 5; i++) await w1.append(payload(`w1-${i}`));
    const w2 = await openLogWriter(mem);
    assert.equal(w2.generation, w1.generation + 1);
    const err = await w1.append(payload('w1-late')).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof LogAppendError && err.code === 'FENCED' && err.outcome === 'not-durable', String(err));
    assert.equal(w1.state, 'fenced');
    await assert.rejects(w1.append(payload('w1-later')), isCode('FENCED'));
    await assert.rejects(w1.truncateThrough(1), isCode('FENCED'));
    assert.deepEqual(
      (await collect(w2.replay(1))).map((e) => e.text),
      [0, 1, 2, 3, 4].map((i) => `w1-${i}`),
    );
    assert.deepEqual(await w2.append(payload('w2-0')), { lsn: 6 });
    await w1.close();
    await w2.close();
    const r = await readAll(mem);
    assert.deepEqual(r.entries.map((e) => e.text).slice(-2), ['w1-4', 'w2-0']);
    assert.ok(nonDecreasing(await chainGenerations(mem)));
  });

  void it('an older write still in flight when the new writer fences is refused FENCED and never appears', async () => {
    const mem = new MemoryStore();
    const fp1 = new Failpoints();
    const w1 = await openLogWriter(new FaultyStore(mem, fp1));
    await w1.append(payload('kept'));
    fp1.arm('store.putIfAbsent.before', { type: 'hang' }, { times: 1 });
    const inflight = settle(w1.append(payload('hung')));
    const w2 = await openLogWriter(mem); // fences at the epoch w1 is waiting to write
    fp1.disarm();
    const r = await inflight;
    assert.ok(!r.ok && r.error instanceof LogAppendError && r.error.code === 'FENCED');
    assert.deepEqual(
      (await collect(w2.replay(1))).map((e) => e.text),
      ['kept'],
    );
    await w2.close();
    assert.deepEqual(
      (await readAll(mem)).entries.map((e) => e.text),
      ['kept'],
    );
  });

  void it('an older write stuck in flight across a takeover AND a truncation past the fence still collides (the fence is a guard)', async () => {
    const mem = new MemoryStore();
    await (await openLogWriter(mem)).close(); // generation 1
    const fp1 = new Failpoints();
    const w1 = await openLogWriter(new FaultyStore(mem, fp1)); // generation 2
    await w1.append(payload('kept'));
    fp1.arm('store.putIfAbsent.before', { type: 'hang' }, { times: 1 });
    const stuck = settle(w1.append(payload('zombie')));
    while (fp1.count('store.putIfAbsent.before') === 0) await new Promise((r) => setImmediate(r));
    const w2 = await openLogWriter(mem); // fences at the epoch w1 is stuck on
    for (let i = 0; i < 5; i++) await w2.append(payload(`new-${i}`));
    await w2.truncateThrough(w2.durableLsn); // the base moves past w2's own fence
    fp1.disarm(); // w1's request finally goes out
    const r = await stuck;
    assert.ok(!r.ok && isCode('FENCED')(r.error), `the zombie must not be acknowledged: ${String(r.ok ? r.value.lsn : r.error)}`);
    await w2.close();
    const again = await openLogWriter(mem);
    assert.deepEqual(
      (await collect(again.replay(again.firstLsn))).map((e) => e.text),
      ['new-4'],
    );
    await again.close();
  });

  void it('an older write that lands between the new writer’s scan and its fence is kept (it was acknowledged)', async () => {
    const mem = new MemoryStore();
    const w1 = await openLogWriter(mem);
    await w1.append(payload('a'));
    const fp2 = new Failpoints().arm('log.segment.put.before', { type: 'hang' }, { match: (c) => c.kind === 'fence', times: 1 });
    const opening = openLogWriter(new FaultyStore(mem, fp2), { failpoints: fp2 });
    // Let w2 claim and scan, then stop at its fence.
    while (fp2.count('log.segment.put.before') === 0) await new Promise((r) => setImmediate(r));
    assert.deepEqual(await w1.append(payload('b')), { lsn: 2 }, 'acknowledged before the fence exists');
    fp2.disarm();
    const w2 = await opening;
    assert.equal(w2.lastLsn, 2);
    assert.deepEqual(
      (await collect(w2.replay(1))).map((e) => e.text),
      ['a', 'b'],
    );
    await assert.rejects(w1.append(payload('c')), isCode('FENCED'));
    assert.deepEqual(await w2.append(payload('d')), { lsn: 3 });
    await w2.close();
    assert.deepEqual(
      (await readAll(mem)).entries.map((e) => e.text),
      ['a', 'b', 'd'],
    );
  });

  void it('takes over from an older writer that keeps appending (blocks epochs ahead of it instead of chasing)', async () => {
    const mem = new MemoryStore();
    const fp1 = new Failpoints().arm('store.putIfAbsent.before', { type: 'delay', ms: 1 });
    const w1 = await openLogWriter(new FaultyStore(mem, fp1), { maxInFlight: 2 });
    const acked = new Map<number, string>();
    const appended = new Set<string>();
    let fenced = 0;
    const appenders = Array.from({ length: 8 }, async (_, a) => {
      for (let i = 0; ; i++) {
        const t = `old-${a}-${i}`;
        appended.add(t);
        try {
          acked.set((await w1.append(payload(t))).lsn, t);
        } catch (e) {
          assert.ok(isCode('FENCED')(e), String(e));
          fenced++;
          return;
        }
      }
    });
    while (acked.size < 200) await new Promise((r) => setTimeout(r, 1));
    // The new writer reads slowly, so the old one is far ahead of its listing.
    const fp2 = new Failpoints().arm('store.get.before', { type: 'delay', ms: 1 });
    const w2 = await openLogWriter(new FaultyStore(mem, fp2), { failpoints: fp2, readConcurrency: 2 });
    await Promise.all(appenders);
    assert.equal(fenced, 8, 'every old appender ends FENCED');
    assert.ok(fp2.count('log.segment.put.before') > 1, 'the first fence attempt lost the race');
    const entries = await collect(w2.replay(1));
    assertRecovered(entries, acked, { known: (t) => appended.has(t) });
    assert.equal(w2.lastLsn, entries.length);
    assert.deepEqual(await w2.append(payload('new')), { lsn: entries.length + 1 });
    await w2.close();
    assert.ok(nonDecreasing(await chainGenerations(mem)));
    const r = await readAll(mem);
    assert.equal(r.entries.length, entries.length + 1);
  });

  void it('pipelined older writes around a takeover: only an unbroken prefix survives, and all of it was acknowledged or never promised', async () => {
    for (let trial = 0; trial < 30; trial++) {
      const mem = new MemoryStore();
      const fp1 = new Failpoints().arm('store.putIfAbsent.before', { type: 'delay', ms: 1 });
      const w1 = await openLogWriter(new FaultyStore(mem, fp1), { maxInFlight: 4 });
      const acked = new Map<number, string>();
      const appended = new Set<string>();
      const jobs: Array<Promise<void>> = [];
      for (let i = 0; i < 40; i++) {
        const t = `p${i}`;
        appended.add(t);
        jobs.push(
          w1.append(payload(t)).then(
            (r) => {
              acked.set(r.lsn, t);
            },
            (e: unknown) => {
              assert.ok(e instanceof LogAppendError && e.code === 'FENCED', String(e));
            },
          ),
        );
        if (i === trial) jobs.push(openLogWriter(mem).then((w2) => w2.close()));
      }
      await Promise.all(jobs);
      const r = await readAll(mem);
      assertRecovered(r.entries, acked, { known: (t) => appended.has(t) });
      assert.ok(nonDecreasing(await chainGenerations(mem)), 'generations never interleave');
    }
  });

  void it('writers opened concurrently and in churn: every acknowledged record of every writer survives', async () => {
    const mem = new MemoryStore();
    const acked = new Map<number, string>();
    const appended = new Set<string>();
    const writers: LogWriter[] = [];
    const jobs: Array<Promise<void>> = [];
    const drive = (w: LogWriter, name: string): Promise<void> =>
      (async () => {
        for (let i = 0; i < 30; i++) {
          const t = `${name}-${i}`;
          appended.add(t);
          try {
            const { lsn } = await w.append(payload(t));
            acked.set(lsn, t);
          } catch (e) {
            assert.ok(isCode('FENCED')(e), String(e));
            return;
          }
        }
      })();
    for (let round = 0; round < 6; round++) {
      const opened = await Promise.all(
        [0, 1].map((k) =>
          settle(openLogWriter(new FaultyStore(mem, new Failpoints().arm('store.putIfAbsent.before', { type: 'delay', ms: (round + k) % 2 })))),
        ),
      );
      for (const [k, o] of opened.entries()) {
        if (o.ok) {
          writers.push(o.value);
          jobs.push(drive(o.value, `g${o.value.generation}r${round}k${k}`));
        } else assert.ok(isCode('FENCED')(o.error), String(o.error));
      }
      await new Promise((r) => setTimeout(r, 3));
    }
    await Promise.all(jobs);
    // Only the newest writer may still write; every other one is fenced.
    writers.sort((a, b) => a.generation - b.generation);
    for (const [i, w] of writers.entries()) {
      const t = `final-${w.generation}`;
      appended.add(t);
      if (i === writers.length - 1) acked.set((await w.append(payload(t))).lsn, t);
      else await assert.rejects(w.append(payload(t)), isCode('FENCED'), `generation ${w.generation}`);
    }
    for (const w of writers) await w.close();
    const r = await readAll(mem);
    assertRecovered(r.entries, acked, { known: (t) => appended.has(t) });
    assert.ok(nonDecreasing(await chainGenerations(mem)));
  });
});
