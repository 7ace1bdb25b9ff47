// CachedStore: what is cached, what each call costs in inner round trips
// (counted by a MetricsStore underneath), invalidation, bounds, and a
// model-based run of random operations against the uncached store.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isFloeError } from '../../src/errors.js';
import { CachedStore, defaultIsImmutable, MAX_RANGES_PER_KEY } from '../../src/store/cache.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const seq = (n: number, seed = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

function setup(maxBytes = 1 << 20, isImmutable?: (key: string) => boolean) {
  const mem = new MemoryStore();
  const metrics = new MetricsStore(mem);
  const cache = new CachedStore(metrics, isImmutable ? { maxBytes, isImmutable } : { maxBytes });
  return { mem, metrics, cache };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => isFloeError(e) && e.code === code);
}

void describe('defaultIsImmutable', () => {
  void it('accepts data files, log segments and payload sidecars only', () => {
    for (const k of ['tables/t1/data/0001.parquet', 'log/00000000000000000042.seg', 'mutations/01H.arrow', 'x.parquet']) {
      assert.equal(defaultIsImmutable(k), true, k);
    }
    for (const k of [
      'tables/t1/manifest/pointer',
      'tables/t1/manifest/00000001.json',
      'tables/t1/data/0001.tombstones',
      '_catalog/pointer',
      'mutations/01H.json',
      'log/.seg',
      'a.parquet/b',
      'a.parquet.tmp',
      'seg',
      'a.segment',
    ]) {
      assert.equal(defaultIsImmutable(k), false, k);
    }
  });
});

void describe('CachedStore', () => {
  void it('rejects a bad configuration', () => {
    const mem = new MemoryStore();
    for (const maxBytes of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new CachedStore(mem, { maxBytes }), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    }
    assert.throws(
      () => new CachedStore(mem, { maxBytes: 100, maxObjectBytes: -3 }),
      (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'),
    );
  });

  void it('serves a second get of an immutable object from memory', async () => {
    const { metrics, cache } = setup();
    const { etag } = await cache.put('d/1.parquet', b('hello'));
    metrics.reset();
    const first = await cache.get('d/1.parquet');
    const second = await cache.get('d/1.parquet');
    assert.deepEqual(first, { bytes: b('hello'), etag });
    assert.deepEqual(second, { bytes: b('hello'), etag });
    assert.equal(metrics.requests('get'), 1);
    const s = cache.stats();
    assert.equal(s.hits, 1);
    assert.equal(s.misses, 1);
    assert.equal(s.entries, 1);
  });

  void it('never serves mutable keys from memory', async () => {
    const { mem, metrics, cache } = setup();
    await cache.put('t/manifest/pointer', b('v1'));
    metrics.reset();
    assert.deepEqual((await cache.get('t/manifest/pointer')).bytes, b('v1'));
    // A write by someone else (straight to the inner store) is seen at once.
    await mem.put('t/manifest/pointer', b('v2'));
    assert.deepEqual((await cache.get('t/manifest/pointer')).bytes, b('v2'));
    assert.deepEqual(await cache.getRange('t/manifest/pointer', 1, 1), b('2'));
    assert.equal((await cache.head('t/manifest/pointer'))?.size, 2);
    assert.equal(metrics.requests('get') + metrics.requests('getRange') + metrics.requests('head'), 4);
    const s = cache.stats();
    assert.equal(s.hits + s.misses, 0);
    assert.equal(s.passthrough, 4);
    assert.equal(s.entries, 0);
  });

  void it('hands out copies: mutating a result never changes the cache', async () => {
    const { cache } = setup();
    await cache.put('a.seg', b('abcdef'));
    const g1 = await cache.get('a.seg');
    g1.bytes.fill(0);
    const g2 = await cache.get('a.seg');
    assert.deepEqual(g2.bytes, b('abcdef'));
    g2.bytes.fill(1);
    const r = await cache.getRange('a.seg', 1, 2);
    assert.deepEqual(r, b('bc'));
    r.fill(2);
    assert.deepEqual((await cache.get('a.seg')).bytes, b('abcdef'));
  });

  void it('hands out copies even when the inner store returns Buffers (whose slice is a view)', async () => {
    class BufferStore extends MemoryStore {
      override async get(key: string) {
        const r = await super.get(key);
        return { bytes: Buffer.from(r.bytes), etag: r.etag };
      }
      override async getRange(key: string, offset: number, length: number) {
        return Buffer.from(await super.getRange(key, offset, length));
      }
    }
    const cache = new CachedStore(new BufferStore(), { maxBytes: 1 << 20 });
    await cache.put('buf.parquet', b('abcdef'));
    for (let i = 0; i < 3; i++) (await cache.get('buf.parquet')).bytes.fill(0);
    for (let i = 0; i < 3; i++) (await cache.getRange('buf.parquet', 1, 3)).fill(0);
    assert.deepEqual(new Uint8Array((await cache.get('buf.parquet')).bytes), b('abcdef'));
    await cache.put('rng.seg', b('ghijkl'));
    for (let i = 0; i < 3; i++) (await cache.getRange('rng.seg', 2, 2)).fill(0);
    assert.deepEqual(new Uint8Array(await cache.getRange('rng.seg', 2, 2)), b('ij'));
  });

  void it('answers ranges and head from a cached whole object with no round trip', async () => {
    const { metrics, cache } = setup();
    const data = seq(1000);
    const { etag } = await cache.put('x.parquet', data);
    await cache.get('x.parquet');
    metrics.reset();
    assert.deepEqual(await cache.getRange('x.parquet', 0, 10), data.subarray(0, 10));
    assert.deepEqual(await cache.getRange('x.parquet', 990, 100), data.subarray(990));
    assert.deepEqual(await cache.getRange('x.parquet', 1000, 5), new Uint8Array(0));
    assert.deepEqual(await cache.getRange('x.parquet', 5000, 5), new Uint8Array(0));
    assert.deepEqual(await cache.getRange('x.parquet', 3, 0), new Uint8Array(0));
    assert.deepEqual(await cache.head('x.parquet'), { size: 1000, etag });
    assert.equal(metrics.requests(), 0);
  });

  void it('a range miss costs exactly one inner getRange and is reused for covered ranges', async () => {
    const { metrics, cache } = setup();
    const data = seq(1000, 7);
    await cache.put('x.parquet', data);
    metrics.reset();
    // Footer-style read: the same tail range twice, then a sub-range.
    assert.deepEqual(await cache.getRange('x.parquet', 900, 100), data.subarray(900));
    assert.deepEqual(await cache.getRange('x.parquet', 900, 100), data.subarray(900));
    assert.deepEqual(await cache.getRange('x.parquet', 950, 20), data.subarray(950, 970));
    assert.equal(metrics.requests('getRange'), 1);
    assert.equal(metrics.requests('get'), 0);
    // Not covered: one more request, never a whole-object GET.
    assert.deepEqual(await cache.getRange('x.parquet', 100, 10), data.subarray(100, 110));
    assert.equal(metrics.requests('getRange'), 2);
    assert.equal(metrics.requests('get'), 0);
  });

  void it('a short range read records the end of the object', async () => {
    const { metrics, cache } = setup();
    await cache.put('x.seg', seq(100));
    metrics.reset();
    assert.equal((await cache.getRange('x.seg', 90, 50)).length, 10);
    // Anything starting inside or beyond that range is answered from it.
    assert.deepEqual(await cache.getRange('x.seg', 95, 1000), seq(100).subarray(95));
    assert.equal((await cache.getRange('x.seg', 100, 1)).length, 0);
    assert.equal((await cache.getRange('x.seg', 10_000, 1)).length, 0);
    assert.equal(metrics.requests(), 1);
    // But a read of the full requested length is not evidence of the end.
    await cache.getRange('x.seg', 0, 10);
    assert.deepEqual(await cache.getRange('x.seg', 5, 10), seq(100).subarray(5, 15));
    assert.equal(metrics.requests(), 3);
  });

  void it('keeps at most MAX_RANGES_PER_KEY ranges per key', async () => {
    const { cache } = setup();
    await cache.put('x.parquet', seq(4096));
    for (let i = 0; i < MAX_RANGES_PER_KEY + 10; i++) await cache.getRange('x.parquet', i * 100, 10);
    assert.equal(cache.stats().entries, MAX_RANGES_PER_KEY);
    // A whole object replaces the key's ranges.
    await cache.get('x.parquet');
    assert.equal(cache.stats().entries, 1);
  });

  void it('never caches NOT_FOUND', async () => {
    const { mem, cache } = setup();
    await rejectsWith(cache.get('late.parquet'), 'NOT_FOUND');
    await rejectsWith(cache.getRange('late.parquet', 0, 1), 'NOT_FOUND');
    assert.equal(await cache.head('late.parquet'), null);
    await mem.put('late.parquet', b('now'));
    assert.deepEqual((await cache.get('late.parquet')).bytes, b('now'));
  });

  void it('writes and deletes through the decorator invalidate the key', async () => {
    const { cache } = setup();
    await cache.put('k.seg', b('one'));
    await cache.get('k.seg');
    await cache.getRange('k.seg', 0, 2);
    const e2 = await cache.put('k.seg', b('two'));
    assert.deepEqual(await cache.get('k.seg'), { bytes: b('two'), etag: e2.etag });
    assert.deepEqual(await cache.getRange('k.seg', 0, 2), b('tw'));
    const e3 = await cache.putIfMatch('k.seg', b('three'), e2.etag);
    assert.deepEqual(await cache.get('k.seg'), { bytes: b('three'), etag: e3.etag });
    await cache.delete('k.seg');
    await rejectsWith(cache.get('k.seg'), 'NOT_FOUND');
    await rejectsWith(cache.getRange('k.seg', 0, 1), 'NOT_FOUND');
    assert.equal(await cache.head('k.seg'), null);
    const e4 = await cache.putIfAbsent('k.seg', b('four'));
    assert.deepEqual(await cache.get('k.seg'), { bytes: b('four'), etag: e4.etag });
    assert.ok(cache.stats().invalidations >= 3);
  });

  void it('a read in flight during a write is not inserted', async () => {
    const mem = new MemoryStore();
    const fp = new Failpoints();
    const cache = new CachedStore(new FaultyStore(mem, fp), { maxBytes: 1 << 20 });
    await cache.put('r.parquet', b('old'));
    // The read fetches the old bytes, then stalls before returning.
    fp.arm('store.get.after', { type: 'hang' }, { times: 1 });
    const slow = cache.get('r.parquet');
    await new Promise((r) => setImmediate(r));
    assert.equal(fp.count('store.get.after'), 1);
    await cache.put('r.parquet', b('new'));
    fp.disarm('store.get.after');
    // The slow read began before the write: old bytes are a legal answer,
    // but they must not be cached.
    assert.deepEqual((await slow).bytes, b('old'));
    assert.deepEqual((await cache.get('r.parquet')).bytes, b('new'));
    assert.equal(cache.stats().entries, 1);
  });

  void it('a read that starts while a write is in flight is not kept after it', async () => {
    const mem = new MemoryStore();
    const fp = new Failpoints();
    const cache = new CachedStore(new FaultyStore(mem, fp), { maxBytes: 1 << 20 });
    await cache.put('w.parquet', b('old'));
    fp.arm('store.put.before', { type: 'hang' }, { times: 1 });
    const writing = cache.put('w.parquet', b('new'));
    await new Promise((r) => setImmediate(r));
    // The write has not reached the store yet: this read sees the old bytes.
    assert.deepEqual((await cache.get('w.parquet')).bytes, b('old'));
    fp.disarm('store.put.before');
    await writing;
    assert.deepEqual((await cache.get('w.parquet')).bytes, b('new'));
  });

  void it('concurrent misses on one object share one inner request', async () => {
    const mem = new MemoryStore();
    const fp = new Failpoints();
    const metrics = new MetricsStore(new FaultyStore(mem, fp));
    const cache = new CachedStore(metrics, { maxBytes: 1 << 20 });
    await mem.put('c.parquet', seq(64));
    fp.arm('store.get.before', { type: 'hang' }, { times: 1 });
    const readers = Array.from({ length: 5 }, () => cache.get('c.parquet'));
    await new Promise((r) => setImmediate(r));
    fp.disarm('store.get.before');
    const results = await Promise.all(readers);
    for (const r of results) assert.deepEqual(r.bytes, seq(64));
    // Distinct arrays: one caller's mutation cannot reach another.
    results[0]!.bytes.fill(9);
    assert.deepEqual(results[1]!.bytes, seq(64));
    assert.equal(metrics.requests('get'), 1);
    assert.equal(cache.stats().coalesced, 4);
  });

  void it('shares a failing request\'s error with every waiter and caches nothing', async () => {
    const mem = new MemoryStore();
    const fp = new Failpoints();
    const cache = new CachedStore(new FaultyStore(mem, fp), { maxBytes: 1 << 20 });
    await mem.put('f.parquet', b('x'));
    fp.arm('store.get.before', { type: 'error', code: 'STORAGE_UNAVAILABLE' }, { times: 1 });
    const rs = await Promise.allSettled([cache.get('f.parquet'), cache.get('f.parquet')]);
    for (const r of rs) {
      assert.equal(r.status, 'rejected');
      assert.ok(isFloeError(r.reason, 'STORAGE_UNAVAILABLE'));
    }
    assert.equal(cache.stats().entries, 0);
    assert.deepEqual((await cache.get('f.parquet')).bytes, b('x'));
  });

  void it('stays within maxBytes and evicts least recently used first', async () => {
    const maxBytes = 10_000;
    const { metrics, cache } = setup(maxBytes);
    for (const k of ['a', 'b', 'c']) await cache.put(`${k}.parquet`, seq(2000));
    await cache.get('a.parquet');
    await cache.get('b.parquet');
    await cache.get('c.parquet');
    await cache.get('a.parquet'); // a is now most recent; b is the oldest
    for (const k of ['d', 'e']) {
      await cache.put(`${k}.parquet`, seq(2000));
      await cache.get(`${k}.parquet`);
    }
    const s = cache.stats();
    assert.ok(s.bytes <= maxBytes, `${s.bytes} <= ${maxBytes}`);
    assert.ok(s.evictions >= 1);
    metrics.reset();
    await cache.get('a.parquet');
    assert.equal(metrics.requests('get'), 0, 'a (recently used) survived');
    await cache.get('b.parquet');
    assert.equal(metrics.requests('get'), 1, 'b (least recently used) was evicted');
  });

  void it('lets objects larger than maxObjectBytes bypass', async () => {
    const { metrics, cache } = setup(4000);
    await cache.put('big.parquet', seq(1001)); // > 4000 / 4
    await cache.put('small.parquet', seq(900));
    metrics.reset();
    await cache.get('big.parquet');
    await cache.get('big.parquet');
    await cache.getRange('big.parquet', 0, 1001);
    await cache.get('small.parquet');
    await cache.get('small.parquet');
    assert.equal(metrics.requests('get'), 3);
    assert.equal(cache.stats().bypassed, 3);
    assert.equal(cache.stats().entries, 1);
  });

  void it('maxBytes 0 disables caching but keeps the store working', async () => {
    const { metrics, cache } = setup(0);
    await cache.put('z.parquet', b(''));
    metrics.reset();
    assert.deepEqual((await cache.get('z.parquet')).bytes, new Uint8Array(0));
    assert.deepEqual((await cache.get('z.parquet')).bytes, new Uint8Array(0));
    assert.equal(metrics.requests('get'), 2);
    assert.equal(cache.stats().entries, 0);
  });

  void it('rejects invalid keys and ranges even when the key would be a hit', async () => {
    const { metrics, cache } = setup(1 << 20, () => true);
    await cache.put('ok', b('abc'));
    await cache.get('ok');
    metrics.reset();
    await rejectsWith(cache.getRange('ok', -1, 1), 'INVALID_ARGUMENT');
    await rejectsWith(cache.getRange('ok', 0, 1.5), 'INVALID_ARGUMENT');
    for (const k of ['', '/ok', 'a//b', '../x', 'a\u0000b', 'x/.floe-tmp']) {
      await rejectsWith(cache.get(k), 'INVALID_ARGUMENT');
      await rejectsWith(cache.put(k, b('x')), 'INVALID_ARGUMENT');
    }
    assert.equal(metrics.requests(), 0);
  });

  void it('forwards localPath only when the inner store has one', async () => {
    assert.equal(new CachedStore(new MemoryStore(), { maxBytes: 100 }).localPath, undefined);
    class WithPath extends MemoryStore {
      async localPath(key: string): Promise<string | null> {
        return (await this.head(key)) ? `/root/${key}` : null;
      }
    }
    const inner = new WithPath();
    await inner.put('x.parquet', b('x'));
    const cache = new CachedStore(inner, { maxBytes: 100 });
    assert.equal(await cache.localPath?.('x.parquet'), '/root/x.parquet');
    assert.equal(await cache.localPath?.('y.parquet'), null);
  });

  void it('close empties the cache and closes the inner store', async () => {
    const { cache } = setup();
    await cache.put('q.parquet', b('q'));
    await cache.get('q.parquet');
    await cache.close();
    assert.equal(cache.stats().entries, 0);
    assert.equal(cache.stats().bytes, 0);
  });

  void it('agrees with the uncached store on random operation sequences (model)', async () => {
    const keys = ['a.parquet', 'b.seg', 'c', 'd/e.arrow'];
    const op = fc.oneof(
      fc.record({ t: fc.constant('put' as const), k: fc.constantFrom(...keys), n: fc.nat(300), s: fc.nat(255) }),
      fc.record({ t: fc.constant('get' as const), k: fc.constantFrom(...keys) }),
      fc.record({ t: fc.constant('range' as const), k: fc.constantFrom(...keys), o: fc.nat(320), l: fc.nat(320) }),
      fc.record({ t: fc.constant('head' as const), k: fc.constantFrom(...keys) }),
      fc.record({ t: fc.constant('del' as const), k: fc.constantFrom(...keys) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.integer({ min: 0, max: 2000 }), async (ops, maxBytes) => {
        const mem = new MemoryStore();
        const cache = new CachedStore(mem, { maxBytes, isImmutable: (k) => k !== 'c' });
        const model = new Map<string, Uint8Array>();
        for (const o of ops) {
          const m = model.get(o.k);
          switch (o.t) {
            case 'put': {
              const bytes = seq(o.n, o.s);
              await cache.put(o.k, bytes);
              model.set(o.k, bytes);
              break;
            }
            case 'get':
              if (m) assert.deepEqual((await cache.get(o.k)).bytes, m);
              else await rejectsWith(cache.get(o.k), 'NOT_FOUND');
              break;
            case 'range':
              if (m) assert.deepEqual(await cache.getRange(o.k, o.o, o.l), m.slice(o.o, o.o + o.l));
              else await rejectsWith(cache.getRange(o.k, o.o, o.l), 'NOT_FOUND');
              break;
            case 'head':
              assert.equal((await cache.head(o.k))?.size, m?.length);
              break;
            case 'del':
              await cache.delete(o.k);
              model.delete(o.k);
              break;
          }
          assert.ok(cache.stats().bytes <= maxBytes);
        }
      }),
      { numRuns: Number(process.env.FLOE_PROPERTY_RUNS ?? 200) },
    );
  });
});
