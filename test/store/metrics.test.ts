// MetricsStore: requests, errors and bytes per op; the counters never change
// what the wrapped store does.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFloeError } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore, STORE_OPS } from '../../src/store/metrics.js';
import type { OpCounts } from '../../src/store/metrics.js';

const bytes = (n: number): Uint8Array => new Uint8Array(n).fill(7);
const counts = (requests: number, errors: number, bytesRead: number, bytesWritten: number): OpCounts => ({
  requests,
  errors,
  bytesRead,
  bytesWritten,
});

void describe('MetricsStore', () => {
  void it('starts at zero for every op and mirrors kind/location', () => {
    const inner = new MemoryStore('metrics');
    const m = new MetricsStore(inner);
    assert.equal(m.kind, 'memory');
    assert.equal(m.location, 'memory://metrics');
    const snap = m.snapshot();
    assert.deepEqual(Object.keys(snap), [...STORE_OPS]);
    for (const op of STORE_OPS) assert.deepEqual(snap[op], counts(0, 0, 0, 0));
    assert.equal(m.requests(), 0);
    assert.equal(m.writes(), 0);
  });

  void it('counts requests and bytes per op', async () => {
    const m = new MetricsStore(new MemoryStore());
    const { etag } = await m.put('a', bytes(100));
    await m.putIfAbsent('b', bytes(10));
    await m.putIfMatch('a', bytes(50), etag);
    await m.get('a');
    await m.get('a');
    await m.getRange('a', 40, 100); // 10 bytes come back
    await m.getRange('a', 0, 0);
    await m.head('a');
    await m.head('zzz');
    await m.list('');
    await m.delete('b');
    await m.delete('b');
    const s = m.snapshot();
    assert.deepEqual(s.put, counts(1, 0, 0, 100));
    assert.deepEqual(s.putIfAbsent, counts(1, 0, 0, 10));
    assert.deepEqual(s.putIfMatch, counts(1, 0, 0, 50));
    assert.deepEqual(s.get, counts(2, 0, 100, 0));
    assert.deepEqual(s.getRange, counts(2, 0, 10, 0));
    assert.deepEqual(s.head, counts(2, 0, 0, 0));
    assert.deepEqual(s.list, counts(1, 0, 0, 0));
    assert.deepEqual(s.delete, counts(2, 0, 0, 0));
    assert.equal(m.requests(), 12);
    assert.equal(m.requests('get'), 2);
    assert.equal(m.writes(), 3);
  });

  void it('counts failed requests as requests and as errors; bytes sent by a failed write still count', async () => {
    const m = new MetricsStore(new MemoryStore());
    await m.put('k', bytes(5));
    await assert.rejects(m.get('missing'), (e: unknown) => isFloeError(e, 'NOT_FOUND'));
    await assert.rejects(m.getRange('missing', 0, 1), (e: unknown) => isFloeError(e, 'NOT_FOUND'));
    await assert.rejects(m.putIfAbsent('k', bytes(3)), (e: unknown) => isFloeError(e, 'ALREADY_EXISTS'));
    await assert.rejects(m.putIfMatch('k', bytes(4), 'nope'), (e: unknown) => isFloeError(e, 'CAS_CONFLICT'));
    await assert.rejects(m.list('/bad'), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    await assert.rejects(m.put('', bytes(1)), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    const s = m.snapshot();
    assert.deepEqual(s.get, counts(1, 1, 0, 0));
    assert.deepEqual(s.getRange, counts(1, 1, 0, 0));
    assert.deepEqual(s.putIfAbsent, counts(1, 1, 0, 3));
    assert.deepEqual(s.putIfMatch, counts(1, 1, 0, 4));
    assert.deepEqual(s.list, counts(1, 1, 0, 0));
    assert.deepEqual(s.put, counts(2, 1, 0, 6));
  });

  void it('a body that is not a Uint8Array reaches the inner store and fails there with INVALID_ARGUMENT', async () => {
    const m = new MetricsStore(new MemoryStore());
    const put = m.put.bind(m) as (k: string, b: unknown) => Promise<unknown>;
    for (const body of [null, undefined, 'text', [1, 2, 3]]) {
      await assert.rejects(put('k', body), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    }
    assert.deepEqual(m.snapshot().put, counts(4, 4, 0, 0));
  });

  void it('snapshot is a copy; reset zeroes every counter', async () => {
    const m = new MetricsStore(new MemoryStore());
    await m.put('k', bytes(1));
    const snap = m.snapshot();
    snap.put.requests = 99;
    assert.equal(m.requests('put'), 1);
    m.reset();
    assert.equal(m.requests(), 0);
    for (const op of STORE_OPS) assert.deepEqual(m.snapshot()[op], counts(0, 0, 0, 0));
    assert.equal(snap.put.requests, 99, 'an old snapshot is not affected by reset');
  });

  void it('never changes results: bytes, etags and errors are the inner store\'s', async () => {
    const inner = new MemoryStore();
    const m = new MetricsStore(inner);
    const { etag } = await m.put('x/1', bytes(3));
    assert.deepEqual(await m.get('x/1'), await inner.get('x/1'));
    assert.deepEqual(await m.head('x/1'), { size: 3, etag });
    assert.deepEqual(await m.list('x/', { limit: 1 }), await inner.list('x/', { limit: 1 }));
    const err = await m.get('nope').then(
      () => null,
      (e: unknown) => e,
    );
    const innerErr = await inner.get('nope').then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(isFloeError(err) && isFloeError(innerErr));
    assert.equal(err.message, innerErr.message);
    await m.close();
  });

  void it('counts concurrent requests exactly', async () => {
    const m = new MetricsStore(new MemoryStore());
    await Promise.all(Array.from({ length: 50 }, (_, i) => m.put(`k${i}`, bytes(i))));
    await Promise.all(Array.from({ length: 50 }, (_, i) => m.get(`k${i}`)));
    const s = m.snapshot();
    const total = (50 * 49) / 2;
    assert.deepEqual(s.put, counts(50, 0, 0, total));
    assert.deepEqual(s.get, counts(50, 0, total, 0));
  });
});
