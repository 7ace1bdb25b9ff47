// The log writer on a memory store: LSNs, group commit, replay, truncation,
// close, durability modes, bad input, and the read-only view.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openLogWriter } from '../../src/log/writer.js';
import { readLog } from '../../src/log/replay.js';
import { decodeSegment, parseSegmentKey } from '../../src/log/segment.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { listKeys } from '../../src/store/list.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';
import { assertContiguous, collect, isCode, payload, readAll } from './helpers.js';

/** A memory store whose writes take a little while, as real ones do. */
function slowStore(ms = 1): { mem: MemoryStore; store: FaultyStore } {
  const mem = new MemoryStore();
  const fp = new Failpoints().arm('store.putIfAbsent.before', { type: 'delay', ms });
  return { mem, store: new FaultyStore(mem, fp) };
}

async function segmentEpochs(store: MemoryStore, prefix = 'log/'): Promise<number[]> {
  return (await listKeys(store, prefix)).map((k) => parseSegmentKey(prefix, k)).filter((e): e is number => e !== null);
}

void describe('log writer basics', () => {
  void it('opens an empty log, assigns LSNs from 1 and replays them', async () => {
    const mem = new MemoryStore();
    const log = await openLogWriter(mem);
    assert.equal(log.generation, 1);
    assert.equal(log.lastLsn, 0);
    assert.deepEqual(await collect(log.replay(1)), []);
    assert.deepEqual(await log.append(payload('a')), { lsn: 1 });
    assert.deepEqual(await log.append(payload('b')), { lsn: 2 });
    assert.equal(log.lastLsn, 2);
    assert.deepEqual(await collect(log.replay(1)), [
      { lsn: 1, text: 'a' },
      { lsn: 2, text: 'b' },
    ]);
    assert.deepEqual(await collect(log.replay(2)), [{ lsn: 2, text: 'b' }]);
    assert.deepEqual(await collect(log.replay(3)), []);
    assert.deepEqual(await collect(log.replay(99)), []);
    await log.close();
    const again = await openLogWriter(mem);
    assert.equal(again.generation, 2);
    assert.equal(again.lastLsn, 2);
    assert.deepEqual((await collect(again.replay(1))).map((e) => e.text), ['a', 'b']);
    assert.deepEqual(await again.append(payload('c')), { lsn: 3 });
    await again.close();
    const r = await readAll(mem);
    assert.equal(r.maxDurableLsn, 3);
    assert.deepEqual(r.entries.map((e) => e.text), ['a', 'b', 'c']);
  });

  void it('keeps only the newest writer claim once its fence is durable', async () => {
    const mem = new MemoryStore();
    for (let i = 0; i < 4; i++) await (await openLogWriter(mem)).close();
    assert.deepEqual(await listKeys(mem, 'log/writer/'), ['log/writer/0000000000000004']);
  });

  void it('64 concurrent appenders: every acknowledged LSN replays exactly once, in order, and groups hold many records', async () => {
    const { mem, store } = slowStore(1);
    const metrics = new MetricsStore(store);
    const log = await openLogWriter(metrics);
    metrics.reset();
    const perAppender = 40;
    const acked = new Map<number, string>();
    await Promise.all(
      Array.from({ length: 64 }, async (_, a) => {
        let last = 0;
        for (let i = 0; i < perAppender; i++) {
          const tag = `a${a}-r${i}`;
          const { lsn } = await log.append(payload(tag));
          assert.ok(lsn > last, 'one appender sees increasing LSNs');
          last = lsn;
          assert.ok(!acked.has(lsn), `LSN ${lsn} given twice`);
          acked.set(lsn, tag);
        }
      }),
    );
    const total = 64 * perAppender;
    assert.equal(acked.size, total);
    const segmentPuts = metrics.requests('putIfAbsent');
    assert.ok(segmentPuts < total / 8, `${segmentPuts} segment writes for ${total} records: groups are not forming`);
    assert.equal(metrics.writes(), segmentPuts, 'appends write nothing but segments');
    const stats = log.stats();
    assert.equal(stats.recordsWritten, total);
    assert.equal(stats.groupsWritten, segmentPuts);
    assert.ok(stats.maxRecordsPerGroup > 1);
    // Released committers rejoin the very next group (no alternating halves).
    assert.ok(stats.meanRecordsPerGroup > 48, `mean ${stats.meanRecordsPerGroup} records per group for 64 committers`);
    await log.close();
    const r = await readAll(mem);
    assertContiguous(r.entries, 1);
    assert.equal(r.entries.length, total);
    for (const e of r.entries) assert.equal(acked.get(e.lsn), e.text);
  });

  void it('a lone committer on an idle log writes at once: one segment per append, no waiting', async () => {
    const { store } = slowStore(0);
    const metrics = new MetricsStore(store);
    const log = await openLogWriter(metrics, { maxDelayMs: 50, maxInFlight: 4 });
    metrics.reset();
    for (let i = 0; i < 5; i++) await log.append(payload(`x${i}`));
    assert.equal(metrics.requests('putIfAbsent'), 5);
    await log.close();
  });

  void it('appendBatch puts all records in one segment with consecutive LSNs', async () => {
    const mem = new MemoryStore();
    const metrics = new MetricsStore(mem);
    const log = await openLogWriter(metrics);
    await log.append(payload('first'));
    metrics.reset();
    const r = await log.appendBatch([payload('b1'), payload('b2'), payload('b3')]);
    assert.deepEqual(r, { firstLsn: 2, lastLsn: 4 });
    assert.equal(metrics.requests('putIfAbsent'), 1);
    await log.close();
    assert.deepEqual((await readAll(mem)).entries.map((e) => e.text), ['first', 'b1', 'b2', 'b3']);
  });

  void it('respects maxGroupRecords and maxGroupBytes', async () => {
    const { mem, store } = slowStore(1);
    const log = await openLogWriter(store, { maxGroupRecords: 3, maxGroupBytes: 100 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append(payload(`r${i}`))));
    await Promise.all(Array.from({ length: 5 }, (_, i) => log.append(new Uint8Array(60).fill(i + 1))));
    await log.close();
    for (const key of await listKeys(mem, 'log/')) {
      if (parseSegmentKey('log/', key) === null) continue;
      const d = decodeSegment((await mem.get(key)).bytes);
      assert.ok(d.ok);
      assert.ok(d.meta.recordCount <= 3, `${key} holds ${d.meta.recordCount} records`);
      const bytes = d.records.reduce((n, r) => n + r.length, 0);
      assert.ok(bytes <= 100 || d.records.length === 1, `${key} holds ${bytes} record bytes`);
    }
    assert.equal((await readAll(mem)).entries.length, 25);
  });

  void it('keeps acknowledgements in order with several writes in flight', async () => {
    const { mem, store } = slowStore(2);
    const log = await openLogWriter(store, { maxInFlight: 4, maxDelayMs: 1 });
    const acked: number[] = [];
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        log.append(payload(`p${i}`)).then(({ lsn }) => {
          acked.push(lsn);
        }),
      ),
    );
    assert.deepEqual(
      acked,
      Array.from({ length: 300 }, (_, i) => i + 1),
      'acknowledged in LSN order',
    );
    await log.close();
    const r = await readAll(mem);
    assert.deepEqual(
      r.entries.map((e) => e.text),
      Array.from({ length: 300 }, (_, i) => `p${i}`),
      'LSNs follow append-call order',
    );
  });

  void it('copies records: changing the buffer after append changes nothing', async () => {
    const mem = new MemoryStore();
    const log = await openLogWriter(mem);
    const buf = payload('original');
    const p = log.append(buf);
    buf.fill(0x21);
    await p;
    await log.close();
    assert.deepEqual((await readAll(mem)).entries, [{ lsn: 1, text: 'original' }]);
  });
});

void describe('log writer close and durability', () => {
  void it('close flushes queued appends, then refuses new ones with CLOSED', async () => {
    const { mem, store } = slowStore(1);
    const log = await openLogWriter(store);
    const pending = Array.from({ length: 50 }, (_, i) => log.append(payload(`q${i}`)));
    await log.close();
    const lsns = (await Promise.all(pending)).map((r) => r.lsn);
    assert.deepEqual(
      lsns,
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.equal(log.state, 'closed');
    await assert.rejects(log.append(payload('late')), isCode('CLOSED'));
    await assert.rejects(log.appendBatch([payload('late')]), isCode('CLOSED'));
    await assert.rejects(log.truncateThrough(1), isCode('CLOSED'));
    await log.close(); // idempotent
    assert.equal((await readAll(mem)).entries.length, 50);
  });

  void it("durability 'none' resolves at once with the LSN the record gets, and close makes it durable", async () => {
    const { mem, store } = slowStore(1);
    const metrics = new MetricsStore(store);
    const log = await openLogWriter(metrics, { durability: 'none' });
    metrics.reset();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(payload(`n${i}`))));
    assert.deepEqual(
      results.map((r) => r.lsn),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.equal(log.lastLsn, 100);
    assert.ok(metrics.requests('putIfAbsent') < 100);
    await log.close();
    assert.equal(log.durableLsn, 100);
    const r = await readAll(mem);
    assert.deepEqual(
      r.entries.map((e) => e.text),
      Array.from({ length: 100 }, (_, i) => `n${i}`),
    );
  });
});

void describe('log writer bad input', () => {
  void it('rejects empty, oversized and non-byte records, and bad batches, with typed errors', async () => {
    const mem = new MemoryStore();
    const log = await openLogWriter(mem, { maxRecordBytes: 10, maxGroupRecords: 4, maxGroupBytes: 20 });
    await assert.rejects(log.append(new Uint8Array(0)), isCode('INVALID_ARGUMENT'));
    await assert.rejects(log.append('text' as unknown as Uint8Array), isCode('INVALID_ARGUMENT'));
    await assert.rejects(log.append(new Uint8Array(11)), isCode('LIMIT_EXCEEDED'));
    await assert.rejects(log.appendBatch([]), isCode('INVALID_ARGUMENT'));
    await assert.rejects(log.appendBatch([payload('ok'), new Uint8Array(0)]), isCode('INVALID_ARGUMENT'));
    await assert.rejects(log.appendBatch(Array.from({ length: 5 }, () => payload('x'))), isCode('LIMIT_EXCEEDED'));
    await assert.rejects(log.appendBatch([new Uint8Array(10), new Uint8Array(10), new Uint8Array(1)]), isCode('LIMIT_EXCEEDED'));
    assert.deepEqual(await log.append(new Uint8Array(10).fill(7)), { lsn: 1 }, 'nothing was written by the rejected calls');
    assert.throws(() => log.replay(0), isCode('INVALID_ARGUMENT'));
    assert.throws(() => log.replay(1.5), isCode('INVALID_ARGUMENT'));
    await assert.rejects(log.truncateThrough(-1), isCode('INVALID_ARGUMENT'));
    await assert.rejects(log.truncateThrough(2), isCode('INVALID_ARGUMENT'));
    await log.close();
  });

  void it('rejects bad options before touching the store', async () => {
    const mem = new MemoryStore();
    const metrics = new MetricsStore(mem);
    const bad: Array<Record<string, unknown>> = [
      { prefix: 'log' },
      { prefix: '' },
      { prefix: '/abs/' },
      { maxGroupRecords: 0 },
      { maxGroupBytes: 1.5 },
      { maxInFlight: 0 },
      { maxDelayMs: -1 },
      { durability: 'sometimes' },
      { maxRecordBytes: 'big' },
      { readConcurrency: 0 },
      { failpoints: {} },
      { groupSize: 4 },
    ];
    for (const o of bad) await assert.rejects(openLogWriter(metrics, o), isCode('INVALID_ARGUMENT'), JSON.stringify(o));
    assert.equal(metrics.requests(), 0);
  });
});

void describe('log truncation', () => {
  void it('deletes segments wholly at or below the checkpoint, oldest first, never the newest, idempotently', async () => {
    const mem = new MemoryStore();
    const log = await openLogWriter(mem);
    for (let i = 1; i <= 10; i++) await log.append(payload(`t${i}`));
    assert.deepEqual(await segmentEpochs(mem), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    await log.truncateThrough(4);
    assert.deepEqual(await segmentEpochs(mem), [6, 7, 8, 9, 10, 11], 'fence and LSNs 1-4 gone');
    assert.equal(log.firstLsn, 5);
    await log.truncateThrough(4);
    await log.truncateThrough(2);
    assert.deepEqual(await segmentEpochs(mem), [6, 7, 8, 9, 10, 11]);
    assert.throws(() => log.replay(4), isCode('LOG_GAP'));
    assert.deepEqual((await collect(log.replay(5))).map((e) => e.lsn), [5, 6, 7, 8, 9, 10]);
    await log.truncateThrough(10);
    assert.deepEqual(await segmentEpochs(mem), [11], 'the newest segment stays');
    assert.deepEqual(await collect(log.replay(11)), []);
    await log.close();
    const again = await openLogWriter(mem);
    assert.equal(again.lastLsn, 10);
    assert.equal(again.firstLsn, 10, 'the kept newest segment still holds LSN 10');
    assert.deepEqual(await again.append(payload('next')), { lsn: 11 }, 'LSNs continue after a full truncation');
    await again.close();
    await assert.rejects(readLog(mem, { fromLsn: 9 }), isCode('LOG_GAP'));
    assert.deepEqual((await readAll(mem, 10)).entries, [
      { lsn: 10, text: 't10' },
      { lsn: 11, text: 'next' },
    ]);
  });

  void it('a replay racing a truncation fails with LOG_GAP instead of skipping records', async () => {
    const mem = new MemoryStore();
    const log = await openLogWriter(mem, { readConcurrency: 1 });
    for (let i = 1; i <= 6; i++) await log.append(payload(`g${i}`));
    const it = log.replay(1)[Symbol.asyncIterator]();
    const first = await it.next();
    assert.ok(first.done !== true);
    assert.equal(first.value.lsn, 1);
    await log.truncateThrough(6);
    await assert.rejects(
      (async () => {
        for (;;) if ((await it.next()).done) return;
      })(),
      isCode('LOG_GAP'),
    );
    await log.close();
  });
});

void describe('readLog', () => {
  void it('is read-only, reports the durable prefix and streams from fromLsn', async () => {
    const mem = new MemoryStore();
    const log = await openLogWriter(mem);
    for (let i = 1; i <= 5; i++) await log.append(payload(`r${i}`));
    const metrics = new MetricsStore(mem);
    const snap = await readLog(metrics, { fromLsn: 3 });
    assert.equal(snap.maxDurableLsn, 5);
    assert.equal(snap.firstLsn, 1);
    assert.deepEqual((await collect(snap.entries)).map((e) => e.lsn), [3, 4, 5]);
    assert.equal(metrics.writes() + metrics.requests('delete'), 0, 'a reader never writes');
    await log.append(payload('r6'));
    assert.equal((await readLog(mem)).maxDurableLsn, 6);
    await log.close();
    assert.equal((await readLog(new MemoryStore())).maxDurableLsn, 0);
  });
});
