// Checksums: known-answer vectors, chaining, sync/async agreement.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFloeError } from '../../src/errors.js';
import { blake3Hex, blake3HexSync, contentHash, crc32c, verifyContentHash } from '../../src/format/checksum.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

void describe('checksums', () => {
  void it('crc32c matches the standard check value and chains', () => {
    assert.equal(crc32c(ascii('123456789')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    const data = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 131) & 0xff);
    for (const cut of [0, 1, 4095, 9999, 10_000]) {
      assert.equal(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), crc32c(data));
    }
    // a view into a larger buffer hashes only its own bytes
    assert.equal(crc32c(data.subarray(10, 20)), crc32c(data.slice(10, 20)));
    assert.ok(crc32c(ascii('a')) >= 0);
  });

  void it('BLAKE3 matches known answers, sync and async', async () => {
    const empty = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';
    const abc = '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85';
    assert.equal(blake3HexSync(new Uint8Array(0)), empty);
    assert.equal(await blake3Hex(new Uint8Array(0)), empty);
    assert.equal(blake3HexSync(ascii('abc')), abc);
    assert.equal(contentHash(ascii('abc')), abc);
    // the shared hasher resets between inputs, including interleaved async calls
    const [x, y] = await Promise.all([blake3Hex(ascii('abc')), blake3Hex(new Uint8Array(0))]);
    assert.deepEqual([x, y], [abc, empty]);
    const big = Uint8Array.from({ length: 5_000_000 }, (_, i) => i & 0xff);
    assert.equal(blake3HexSync(big), blake3HexSync(big.slice()));
    assert.notEqual(blake3HexSync(big.subarray(1)), blake3HexSync(big));
  });

  void it('verifyContentHash accepts the right hash and names the key on a mismatch', () => {
    const bytes = ascii('data file bytes');
    verifyContentHash(bytes, contentHash(bytes), 'k');
    verifyContentHash(bytes, contentHash(bytes).toUpperCase(), 'k');
    assert.throws(
      () => verifyContentHash(ascii('data file bytez'), contentHash(bytes), 'tables/t/data/x.parquet'),
      (err: unknown) => isFloeError(err, 'CORRUPT') && err.key === 'tables/t/data/x.parquet',
    );
  });
});
