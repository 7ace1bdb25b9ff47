// The log base object: byte format, the highest readable base wins, a torn
// one is ignored, writing is idempotent, pruning keeps the one in effect.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { baseKey, decodeBase, encodeBase, parseBaseKey, pruneBases, readBase, writeBase } from '../../src/log/base.js';
import { NO_FAILPOINTS } from '../../src/store/failpoints.js';
import { listKeys } from '../../src/store/list.js';
import { MemoryStore } from '../../src/store/memory.js';

void describe('log base', () => {
  void it('round-trips and rejects every truncation and bit flip', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (startEpoch, firstLsn) => {
        assert.deepEqual(decodeBase(encodeBase({ startEpoch, firstLsn })), { startEpoch, firstLsn });
      }),
    );
    const bytes = encodeBase({ startEpoch: 77, firstLsn: 1234 });
    for (let n = 0; n < bytes.length; n++) assert.equal(typeof decodeBase(bytes.subarray(0, n)), 'string', `prefix ${n}`);
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = bytes.slice();
        b[i] = b[i]! ^ (1 << bit);
        const d = decodeBase(b);
        // A flip may yield other valid-looking text only if the checksum still matches: never.
        assert.equal(typeof d, 'string', `byte ${i} bit ${bit}`);
      }
    }
  });

  void it('names bases so that listing order is epoch order', () => {
    assert.equal(baseKey('log/', 255), 'log/base/00000000000000ff');
    assert.equal(parseBaseKey('log/', 'log/base/00000000000000ff'), 255);
    for (const k of ['log/base/0000000000000000', 'log/base/xyz', 'log/00000000000000ff.seg', 'log/base/00000000000000FF']) {
      assert.equal(parseBaseKey('log/', k), null, k);
    }
  });

  void it('the highest readable base is in effect; a torn one is ignored; writes are idempotent; prune keeps it', async () => {
    const mem = new MemoryStore();
    assert.equal(await readBase(mem, 'log/'), null);
    await writeBase(mem, 'log/', { startEpoch: 5, firstLsn: 40 }, NO_FAILPOINTS);
    await writeBase(mem, 'log/', { startEpoch: 9, firstLsn: 70 }, NO_FAILPOINTS);
    assert.deepEqual(await readBase(mem, 'log/'), { startEpoch: 9, firstLsn: 70 });
    // A crash tore the next one: the previous still holds.
    await mem.put(baseKey('log/', 12), encodeBase({ startEpoch: 12, firstLsn: 90 }).subarray(0, 20));
    assert.deepEqual(await readBase(mem, 'log/'), { startEpoch: 9, firstLsn: 70 });
    // Misfiled content does not count either.
    await mem.put(baseKey('log/', 13), encodeBase({ startEpoch: 14, firstLsn: 95 }));
    assert.deepEqual(await readBase(mem, 'log/'), { startEpoch: 9, firstLsn: 70 });
    await writeBase(mem, 'log/', { startEpoch: 12, firstLsn: 90 }, NO_FAILPOINTS); // repairs the torn one
    await writeBase(mem, 'log/', { startEpoch: 12, firstLsn: 90 }, NO_FAILPOINTS);
    assert.deepEqual(await readBase(mem, 'log/'), { startEpoch: 12, firstLsn: 90 });
    await pruneBases(mem, 'log/', 12);
    assert.deepEqual(await listKeys(mem, 'log/base/'), [baseKey('log/', 12), baseKey('log/', 13)]);
    assert.deepEqual(await readBase(mem, 'log/'), { startEpoch: 12, firstLsn: 90 });
  });
});
