// Recovery from damaged segments: a segment torn at every byte offset, or
// with any single bit flipped, leaves exactly the durable prefix before it;
// a new writer supersedes the damage with its fence and deletes the void
// segments only after that fence is durable.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { readLog } from '../../src/log/replay.js';
import { decodeSegment, parseSegmentKey, segmentKey } from '../../src/log/segment.js';
import { openLogWriter } from '../../src/log/writer.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { listKeys } from '../../src/store/list.js';
import { MemoryStore } from '../../src/store/memory.js';
import { collect, isCode, payload, readAll } from './helpers.js';

interface Built {
  mem: MemoryStore;
  /** Segment epoch -> the records it holds, in order. */
  segments: Map<number, string[]>;
}

/** A closed log: fence (epoch 1, no records), then three groups. */
async function build(): Promise<Built> {
  const mem = new MemoryStore();
  const log = await openLogWriter(mem);
  await log.appendBatch([payload('one'), payload('two'), payload('three')]);
  await log.appendBatch([payload('four'), payload('five')]);
  await log.append(payload('six'));
  await log.close();
  const segments = new Map<number, string[]>([
    [1, []],
    [2, ['one', 'two', 'three']],
    [3, ['four', 'five']],
    [4, ['six']],
  ]);
  return { mem, segments };
}

/** What must survive when segment `k` is damaged. */
function prefixBefore(b: Built, k: number): string[] {
  return [...b.segments].filter(([e]) => e < k).flatMap(([, r]) => r);
}

async function segmentEpochs(mem: MemoryStore): Promise<number[]> {
  return (await listKeys(mem, 'log/')).map((k) => parseSegmentKey('log/', k)).filter((e): e is number => e !== null);
}

void describe('recovery from damaged segments', () => {
  void it('a segment torn at every byte offset leaves exactly the records before it', async () => {
    const b = await build();
    let checks = 0;
    for (const k of b.segments.keys()) {
      const key = segmentKey('log/', k);
      const whole = (await b.mem.get(key)).bytes;
      const expected = prefixBefore(b, k);
      for (let n = 0; n < whole.length; n++) {
        await b.mem.put(key, whole.subarray(0, n));
        const r = await readAll(b.mem);
        assert.deepEqual(
          r.entries.map((e) => e.text),
          expected,
          `segment ${k} torn at ${n}`,
        );
        assert.equal(r.maxDurableLsn, expected.length);
        checks++;
      }
      await b.mem.put(key, whole);
    }
    assert.ok(checks > 200);
    assert.equal((await readAll(b.mem)).entries.length, 6);
  });

  void it('a single bit flipped anywhere leaves exactly the records before the segment', async () => {
    const b = await build();
    for (const k of b.segments.keys()) {
      const key = segmentKey('log/', k);
      const whole = (await b.mem.get(key)).bytes;
      const expected = prefixBefore(b, k);
      for (let i = 0; i < whole.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const flipped = whole.slice();
          flipped[i] = flipped[i]! ^ (1 << bit);
          await b.mem.put(key, flipped);
          const r = await readAll(b.mem);
          assert.deepEqual(
            r.entries.map((e) => e.text),
            expected,
            `segment ${k} byte ${i} bit ${bit}`,
          );
        }
      }
      await b.mem.put(key, whole);
    }
  });

  void it('a new writer recovers the prefix, fences past the damage, keeps it as a guard, and continues the LSNs', async () => {
    for (const k of [1, 2, 3, 4]) {
      for (const damage of ['torn', 'flip'] as const) {
        const b = await build();
        const key = segmentKey('log/', k);
        const whole = (await b.mem.get(key)).bytes;
        const bad = damage === 'torn' ? whole.subarray(0, whole.length - 3) : whole.slice();
        if (damage === 'flip') bad[whole.length - 1] = bad[whole.length - 1]! ^ 0x10;
        await b.mem.put(key, bad);
        const expected = prefixBefore(b, k);
        const log = await openLogWriter(b.mem);
        assert.equal(log.lastLsn, expected.length, `k=${k} ${damage}`);
        assert.deepEqual(
          (await collect(log.replay(1))).map((e) => e.text),
          expected,
        );
        assert.deepEqual(await segmentEpochs(b.mem), [1, 2, 3, 4, 5], 'opening deletes nothing; the fence is at 5');
        assert.deepEqual(await log.append(payload('after')), { lsn: expected.length + 1 });
        // Truncating past everything: the damaged segment and what follows it
        // up to the fence are guards (an old writer must still collide there).
        await log.truncateThrough(expected.length + 1);
        assert.deepEqual(await segmentEpochs(b.mem), [...[1, 2, 3, 4].filter((e) => e >= k), 5, 6].filter((e, i, a) => a.indexOf(e) === i));
        await log.close();
        const r = await readAll(b.mem, expected.length + 1);
        assert.deepEqual(
          r.entries.map((e) => e.text),
          ['after'],
        );
        const again = await openLogWriter(b.mem);
        assert.equal(again.lastLsn, expected.length + 1);
        await again.close();
      }
    }
  });

  void it('deletes nothing when the fence never became durable', async () => {
    const b = await build();
    await b.mem.put(segmentKey('log/', 3), new Uint8Array(10));
    const before = await listKeys(b.mem, 'log/');
    const fp = new Failpoints().arm('log.segment.put.before', { type: 'crash' }, { match: (c) => c.kind === 'fence' });
    await assert.rejects(openLogWriter(new FaultyStore(b.mem, fp), { failpoints: fp }), isCode('INJECTED_CRASH'));
    const after = (await listKeys(b.mem, 'log/')).filter((k) => !k.startsWith('log/writer/'));
    assert.deepEqual(
      after,
      before.filter((k) => !k.startsWith('log/writer/')),
    );
    // A crash right after the fence, before the deletions: still consistent.
    const fp2 = new Failpoints().arm('log.segment.put.after', { type: 'crash' }, { match: (c) => c.kind === 'fence' });
    await assert.rejects(openLogWriter(new FaultyStore(b.mem, fp2), { failpoints: fp2 }), isCode('INJECTED_CRASH'));
    assert.deepEqual(
      (await readAll(b.mem)).entries.map((e) => e.text),
      ['one', 'two', 'three'],
    );
    const log = await openLogWriter(b.mem);
    assert.deepEqual(
      (await collect(log.replay(1))).map((e) => e.text),
      ['one', 'two', 'three'],
    );
    await log.close();
  });

  void it('an intact segment after a gap is never replayed, also after reopening', async () => {
    const b = await build();
    await b.mem.delete(segmentKey('log/', 3));
    assert.deepEqual(
      (await readAll(b.mem)).entries.map((e) => e.text),
      ['one', 'two', 'three'],
    );
    const log = await openLogWriter(b.mem);
    await log.append(payload('seven'));
    await log.close();
    assert.deepEqual(
      (await readAll(b.mem)).entries,
      [
        { lsn: 1, text: 'one' },
        { lsn: 2, text: 'two' },
        { lsn: 3, text: 'three' },
        { lsn: 4, text: 'seven' },
      ],
    );
  });

  void it('refuses a log written by a newer format version instead of overwriting it', async () => {
    const b = await build();
    const key = segmentKey('log/', 3);
    const bytes = (await b.mem.get(key)).bytes.slice();
    const v = new DataView(bytes.buffer);
    v.setUint16(4, 9, true);
    v.setUint32(52, crc32c(bytes.subarray(0, 52)), true);
    await b.mem.put(key, bytes);
    await assert.rejects(readLog(b.mem), isCode('UNSUPPORTED_VERSION'));
    await assert.rejects(openLogWriter(b.mem), isCode('UNSUPPORTED_VERSION'));
    assert.deepEqual(await segmentEpochs(b.mem), [1, 2, 3, 4], 'no segment written or deleted');
  });

  void it('fails closed when the oldest segment of a truncated log is unreadable', async () => {
    const mem = new MemoryStore();
    const log = await openLogWriter(mem);
    for (let i = 0; i < 4; i++) await log.append(payload(`x${i}`));
    await log.truncateThrough(2);
    await log.close();
    const oldest = (await segmentEpochs(mem))[0]!;
    assert.ok(oldest > 1);
    await mem.put(segmentKey('log/', oldest), new Uint8Array(3));
    await assert.rejects(readLog(mem, { fromLsn: 3 }), isCode('CORRUPT'));
    await assert.rejects(openLogWriter(mem), isCode('CORRUPT'));
  });

  void it('decodes what it wrote: every segment of a recovered log verifies', async () => {
    const b = await build();
    for (const key of await listKeys(b.mem, 'log/')) {
      const e = parseSegmentKey('log/', key);
      if (e === null) continue;
      const d = decodeSegment((await b.mem.get(key)).bytes, e);
      assert.ok(d.ok);
    }
  });
});
