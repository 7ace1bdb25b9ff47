// Deletion bitmaps: exact round trips, deterministic bytes, input checks, and
// every single-bit flip, truncation and extension of an encoded bitmap
// detected as CORRUPT.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import roaring from 'roaring';
import { isFloeError } from '../../src/errors.js';
import { crc32c } from '../../src/format/checksum.js';
import { BITMAP_MAGIC, decodeBitmap, encodeBitmap, toRowBitmap, unionRows } from '../../src/format/bitmap.js';

const { RoaringBitmap32 } = roaring;
const KEY = 'tables/t1/data/f1.tombstones';

const corrupt = (err: unknown): boolean => isFloeError(err, 'CORRUPT') && err.key === KEY && err.message.includes(KEY);

/** Rows exercising every roaring container kind: sparse array, dense bitset, runs, high keys. */
function mixedRows(): number[] {
  const rows: number[] = [0, 1, 7, 65535, 65536, 4294967295];
  for (let i = 0; i < 5000; i += 3) rows.push(131072 + i); // array container
  for (let i = 0; i < 40000; i++) if (i % 5 !== 0) rows.push(262144 + i); // bitset container
  for (let i = 0; i < 20000; i++) rows.push(1_000_000 + i); // run
  return rows;
}

void describe('deletion bitmaps', () => {
  void it('round-trip file id, version, sealed flag and rows exactly', () => {
    const cases: Array<{ fileId: string; version: number; sealed: boolean; rows: number[] }> = [
      { fileId: '01J9Z3K1', version: 0, sealed: false, rows: [] },
      { fileId: 'f-ünïcødé-🎉', version: 1, sealed: true, rows: [0] },
      { fileId: 'x'.repeat(1024), version: Number.MAX_SAFE_INTEGER, sealed: false, rows: [4294967295] },
      { fileId: '0192a3b4-c5d6-7e8f-9012-3456789abcde', version: 42, sealed: true, rows: mixedRows() },
    ];
    for (const c of cases) {
      const bytes = encodeBitmap(c);
      const back = decodeBitmap(bytes, KEY);
      assert.equal(back.fileId, c.fileId);
      assert.equal(back.version, c.version);
      assert.equal(back.sealed, c.sealed);
      assert.deepEqual(back.rows.toArray(), [...new Set(c.rows)].sort((a, b) => a - b));
      assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), BITMAP_MAGIC);
    }
  });

  void it('accepts a RoaringBitmap32 without mutating it, and encodes deterministically', () => {
    const rows = new RoaringBitmap32(mixedRows());
    const before = rows.serialize(true);
    const a = encodeBitmap({ fileId: 'f', version: 3, sealed: false, rows });
    const b = encodeBitmap({ fileId: 'f', version: 3, sealed: false, rows: mixedRows() });
    assert.deepEqual(a, b);
    assert.deepEqual(rows.serialize(true), before);
    // the version is in the bytes: a new generation never repeats old bytes (ABA guard)
    assert.notDeepEqual(encodeBitmap({ fileId: 'f', version: 4, sealed: false, rows }), a);
    assert.notDeepEqual(encodeBitmap({ fileId: 'f', version: 3, sealed: true, rows }), a);
  });

  void it('rejects bad input with INVALID_ARGUMENT', () => {
    const bad = (input: Parameters<typeof encodeBitmap>[0]): void =>
      assert.throws(() => encodeBitmap(input), (err: unknown) => isFloeError(err, 'INVALID_ARGUMENT'));
    bad({ fileId: '', version: 1, sealed: false, rows: [] });
    bad({ fileId: 'x'.repeat(1025), version: 1, sealed: false, rows: [] });
    bad({ fileId: 'f', version: -1, sealed: false, rows: [] });
    bad({ fileId: 'f', version: 1.5, sealed: false, rows: [] });
    bad({ fileId: 'f', version: 2 ** 53, sealed: false, rows: [] });
    bad({ fileId: 'f', version: 1, sealed: false, rows: [-1] });
    bad({ fileId: 'f', version: 1, sealed: false, rows: [2 ** 32] });
    bad({ fileId: 'f', version: 1, sealed: false, rows: [0.5] });
    bad({ fileId: 'f', version: 1, sealed: false, rows: [NaN] });
  });

  void it('every single-bit flip is CORRUPT', () => {
    const bytes = encodeBitmap({ fileId: 'file-1', version: 9, sealed: true, rows: [1, 2, 3, 100, 70000, 70001, 70002, 4000000000] });
    let flips = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = bytes.slice();
        copy[i] = (copy[i] as number) ^ (1 << bit);
        assert.throws(() => decodeBitmap(copy, KEY), corrupt, `bit ${bit} of byte ${i}`);
        flips++;
      }
    }
    assert.equal(flips, bytes.length * 8);
  });

  void it('every single-bit flip of a large bitmap is CORRUPT (sampled; FLOE_TORTURE_ROUNDS>1 for all)', () => {
    const bytes = encodeBitmap({ fileId: 'file-2', version: 10, sealed: false, rows: mixedRows() });
    const stride = Number(process.env.FLOE_TORTURE_ROUNDS ?? 1) > 1 ? 1 : 13;
    for (let i = 0; i < bytes.length; i += stride) {
      const copy = bytes.slice();
      copy[i] = (copy[i] as number) ^ (1 << (i % 8));
      assert.throws(() => decodeBitmap(copy, KEY), corrupt, `byte ${i}`);
    }
  });

  void it('every truncation and any appended byte is CORRUPT', () => {
    const bytes = encodeBitmap({ fileId: 'file-3', version: 2, sealed: false, rows: mixedRows().slice(0, 3000) });
    for (let len = 0; len < bytes.length; len++) {
      assert.throws(() => decodeBitmap(bytes.subarray(0, len), KEY), corrupt, `prefix ${len}`);
    }
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    assert.throws(() => decodeBitmap(longer, KEY), corrupt);
    assert.throws(() => decodeBitmap(new TextEncoder().encode('PAR1 not a bitmap at all'), KEY), corrupt);
  });

  void it('a well-formed bitmap from a newer format is UNSUPPORTED_VERSION, not CORRUPT', () => {
    const bytes = encodeBitmap({ fileId: 'f', version: 1, sealed: false, rows: [5] });
    for (const [at, value] of [
      [4, 2], // format version
      [5, 0x80], // unknown flag
    ] as const) {
      const copy = bytes.slice();
      copy[at] = value;
      const end = copy.length - 4;
      new DataView(copy.buffer).setUint32(end, crc32c(copy.subarray(0, end)), true);
      assert.throws(() => decodeBitmap(copy, KEY), (err: unknown) => isFloeError(err, 'UNSUPPORTED_VERSION') && err.key === KEY);
    }
  });

  void it('a length field that disagrees with the size is CORRUPT even with a valid CRC', () => {
    const bytes = encodeBitmap({ fileId: 'file', version: 1, sealed: false, rows: [5, 6] });
    const copy = bytes.slice();
    const view = new DataView(copy.buffer);
    view.setUint16(6, 3, true); // claims a 3-byte file id
    const end = copy.length - 4;
    view.setUint32(end, crc32c(copy.subarray(0, end)), true);
    assert.throws(() => decodeBitmap(copy, KEY), corrupt);
  });

  void it('unionRows merges bitmaps and iterables into a new bitmap', () => {
    const a = new RoaringBitmap32([1, 2, 3]);
    const u = unionRows(a, [3, 4], new Set([100000]), []);
    assert.deepEqual(u.toArray(), [1, 2, 3, 4, 100000]);
    assert.deepEqual(a.toArray(), [1, 2, 3]);
    assert.equal(unionRows().size, 0);
    assert.throws(() => unionRows([-5]), (err: unknown) => isFloeError(err, 'INVALID_ARGUMENT'));
    const copy = toRowBitmap(a);
    copy.add(9);
    assert.equal(a.has(9), false);
  });
});
