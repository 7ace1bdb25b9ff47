// The segment codec: exact layout, round trips, and that every truncation
// and every single-bit flip of a segment is rejected (never partially read).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import type { SegmentMeta } from '../../src/log/segment.js';
import {
  FLAG_FENCE,
  FLAG_VOID,
  HEADER_BYTES,
  decodeSegment,
  encodeSegment,
  lastLsnOf,
  metaProblem,
  parseSegmentKey,
  segmentBytes,
  segmentKey,
} from '../../src/log/segment.js';
import { compareKeys } from '../../src/store/keys.js';

const enc = new TextEncoder();
const meta = (o: Partial<SegmentMeta> = {}): SegmentMeta => ({
  generation: 3,
  epoch: 7,
  prevEpoch: 6,
  firstLsn: 41,
  recordCount: 0,
  flags: 0,
  ...o,
});
const recs = (...s: string[]): Uint8Array[] => s.map((x) => enc.encode(x));

function sample(): { bytes: Uint8Array; records: Uint8Array[]; m: SegmentMeta } {
  const records = recs('alpha', 'b', 'gamma-delta', 'x'.repeat(40));
  const m = meta({ recordCount: records.length });
  return { bytes: encodeSegment(m, records), records, m };
}

void describe('segment codec', () => {
  void it('lays out the header and records exactly as documented', () => {
    const records = recs('hi', 'abc');
    const m = meta({ generation: 0x0102, epoch: 0x0a0b, prevEpoch: 0x0a0a, firstLsn: 0x1234_5678_9a, recordCount: 2, flags: FLAG_FENCE });
    const b = encodeSegment(m, records);
    assert.equal(b.length, segmentBytes(5, 2));
    assert.equal(b.length, HEADER_BYTES + 8 + 2 + 8 + 3);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    assert.deepEqual([...b.subarray(0, 4)], [0x46, 0x4c, 0x4f, 0x47]);
    assert.equal(v.getUint16(4, true), 1);
    assert.equal(v.getUint16(6, true), FLAG_FENCE);
    assert.equal(v.getBigUint64(8, true), 0x0102n);
    assert.equal(v.getBigUint64(16, true), 0x0a0bn);
    assert.equal(v.getBigUint64(24, true), 0x0a0an);
    assert.equal(v.getBigUint64(32, true), 0x1234_5678_9an);
    assert.equal(v.getUint32(40, true), 2);
    assert.equal(v.getUint32(44, true), 8 + 2 + 8 + 3);
    assert.equal(v.getUint32(48, true), 0);
    assert.equal(v.getUint32(52, true), crc32c(b.subarray(0, 52)));
    assert.equal(v.getUint32(56, true), 2);
    assert.equal(v.getUint32(60, true), crc32c(Buffer.concat([b.subarray(56, 60), Buffer.from('hi')])));
    assert.equal(Buffer.from(b.subarray(64, 66)).toString(), 'hi');
    assert.equal(v.getUint32(66, true), 3);
    assert.equal(Buffer.from(b.subarray(74)).toString(), 'abc');
  });

  void it('round-trips random segments', () => {
    fc.assert(
      fc.property(
        fc.record({
          generation: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
          epoch: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
          firstLsn: fc.integer({ min: 2, max: 2 ** 40 }),
          flags: fc.constantFrom(0, FLAG_FENCE, FLAG_VOID, FLAG_FENCE | FLAG_VOID),
        }),
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { maxLength: 20 }),
        fc.nat(),
        (h, records, prevSeed) => {
          const prevEpoch = prevSeed % h.epoch; // 0 <= prev < epoch
          const m: SegmentMeta = { ...h, prevEpoch, firstLsn: prevEpoch === 0 ? 1 : h.firstLsn, recordCount: records.length };
          const d = decodeSegment(encodeSegment(m, records), m.epoch);
          assert.ok(d.ok, d.ok ? '' : d.problem);
          assert.deepEqual(d.meta, m);
          assert.deepEqual(
            d.records.map((r) => [...r]),
            records.map((r) => [...r]),
          );
          assert.equal(lastLsnOf(m), m.firstLsn + records.length - 1);
        },
      ),
      { numRuns: 300 },
    );
  });

  void it('rejects the segment truncated at every byte offset, and one byte longer', () => {
    const { bytes } = sample();
    for (let n = 0; n < bytes.length; n++) {
      const d = decodeSegment(bytes.subarray(0, n), 7);
      assert.equal(d.ok, false, `prefix of ${n} bytes accepted`);
      assert.equal(!d.ok && d.unsupported, false);
    }
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    assert.equal(decodeSegment(longer, 7).ok, false);
    assert.equal(decodeSegment(bytes, 7).ok, true);
  });

  void it('rejects every single-bit flip anywhere in the segment', () => {
    const { bytes } = sample();
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = bytes.slice();
        flipped[i] = flipped[i]! ^ (1 << bit);
        const d = decodeSegment(flipped, 7);
        assert.equal(d.ok, false, `flip of bit ${bit} in byte ${i} accepted`);
        assert.equal(!d.ok && d.unsupported, false, `flip of bit ${bit} in byte ${i} read as a newer version`);
      }
    }
  });

  void it('rejects a segment filed under another epoch', () => {
    const { bytes } = sample();
    const d = decodeSegment(bytes, 8);
    assert.ok(!d.ok && /key epoch 8/.test(d.problem));
    assert.ok(decodeSegment(bytes).ok, 'without an expected epoch the header alone decides');
  });

  void it('reports a checksummed header of another version as unsupported, not corrupt', () => {
    const { bytes } = sample();
    const b = bytes.slice();
    const v = new DataView(b.buffer);
    v.setUint16(4, 2, true);
    v.setUint32(52, crc32c(b.subarray(0, 52)), true);
    const d = decodeSegment(b, 7);
    assert.ok(!d.ok && d.unsupported, 'version 2 must be flagged unsupported');
  });

  void it('rejects well-checksummed headers with out-of-range fields', () => {
    const reseal = (mutate: (v: DataView) => void): Uint8Array => {
      const b = encodeSegment(meta({ recordCount: 1 }), recs('r'));
      const v = new DataView(b.buffer);
      mutate(v);
      v.setUint32(52, crc32c(b.subarray(0, 52)), true);
      return b;
    };
    const cases: Array<[string, (v: DataView) => void]> = [
      ['reserved', (v) => v.setUint32(48, 1, true)],
      ['unknown flag', (v) => v.setUint16(6, 4, true)],
      ['generation 0', (v) => v.setBigUint64(8, 0n, true)],
      ['epoch above 2^53', (v) => v.setBigUint64(16, 2n ** 60n, true)],
      ['prev >= epoch', (v) => v.setBigUint64(24, 7n, true)],
      ['first LSN 0', (v) => v.setBigUint64(32, 0n, true)],
      ['genesis not at LSN 1', (v) => v.setBigUint64(24, 0n, true)],
      ['count beyond body', (v) => v.setUint32(40, 2, true)],
      ['count below body', (v) => v.setUint32(40, 0, true)],
    ];
    for (const [name, mutate] of cases) assert.equal(decodeSegment(reseal(mutate), 7).ok, false, name);
  });

  void it('refuses to encode malformed headers or records', () => {
    assert.throws(() => encodeSegment(meta({ recordCount: 1 }), []), RangeError);
    assert.throws(() => encodeSegment(meta({ recordCount: 1 }), [new Uint8Array(0)]), RangeError);
    assert.throws(() => encodeSegment(meta({ prevEpoch: 0, firstLsn: 5 }), []), RangeError);
    assert.throws(() => encodeSegment(meta({ firstLsn: Number.MAX_SAFE_INTEGER, recordCount: 1 }), recs('a')), RangeError);
    assert.equal(metaProblem(meta()), null);
    assert.match(metaProblem(meta({ flags: 8 })) ?? '', /flags/);
    assert.match(metaProblem(meta({ generation: 1.5 })) ?? '', /generation/);
  });
});

void describe('segment keys', () => {
  void it('names epochs with 16 hex digits so listing order is epoch order', () => {
    assert.equal(segmentKey('log/', 255), 'log/00000000000000ff.seg');
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (a, b) => {
        const ka = segmentKey('db/log/', a);
        const kb = segmentKey('db/log/', b);
        assert.equal(Math.sign(compareKeys(ka, kb)), Math.sign(a - b));
        assert.equal(parseSegmentKey('db/log/', ka), a);
      }),
    );
  });

  void it('ignores keys that are not segments of this prefix', () => {
    for (const k of [
      'log/writer/0000000000000001',
      'log/0000000000000000.seg',
      'log/00000000000000FF.seg',
      'log/00000000000000ff.seg.tmp',
      'log/0000000000000ff.seg',
      'log/sub/00000000000000ff.seg',
      'other/00000000000000ff.seg',
      'log/ffffffffffffffff.seg',
    ]) {
      assert.equal(parseSegmentKey('log/', k), null, k);
    }
  });
});
