// DiskCachedStore: hits across reopen, entry verification, crash leftovers,
// the byte bound, invalidation, and degraded operation when the directory
// fails. A MetricsStore underneath counts inner round trips.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { isFloeError } from '../../src/errors.js';
import { decodeEntry, DiskCachedStore, encodeEntry } from '../../src/store/diskcache.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const seq = (n: number, seed = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

const dirs: string[] = [];
const tmpDir = async (): Promise<string> => {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'floe-diskcache-'));
  dirs.push(d);
  return d;
};
after(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function setup(maxBytes = 1 << 20) {
  const mem = new MemoryStore();
  const metrics = new MetricsStore(mem);
  const dir = await tmpDir();
  const cache = await DiskCachedStore.open(metrics, { dir, maxBytes });
  return { mem, metrics, dir, cache };
}

const cacheFiles = async (dir: string): Promise<string[]> => (await fs.readdir(dir)).filter((n) => n.endsWith('.fc')).sort();

void describe('disk cache entry format', () => {
  void it('round-trips and detects every single-byte corruption', () => {
    const h = { key: 'tables/t/data/1.parquet', etag: '"abc"', size: 5 };
    const buf = encodeEntry(h, b('hello'));
    assert.deepEqual(decodeEntry(buf), { header: h, bytes: b('hello') });
    for (let i = 0; i < buf.length; i++) {
      const bad = Buffer.from(buf);
      bad[i] = bad[i]! ^ 0x01;
      assert.equal(decodeEntry(bad), null, `flip at ${i}`);
    }
    assert.equal(decodeEntry(buf.subarray(0, buf.length - 1)), null);
    assert.equal(decodeEntry(Buffer.concat([buf, Buffer.from([0])])), null);
    assert.equal(decodeEntry(Buffer.alloc(0)), null);
  });
});

void describe('DiskCachedStore', () => {
  void it('rejects a bad configuration', async () => {
    const dir = await tmpDir();
    for (const maxBytes of [-1, 0.5, Number.NaN]) {
      await assert.rejects(DiskCachedStore.open(new MemoryStore(), { dir, maxBytes }), (e: unknown) =>
        isFloeError(e, 'INVALID_ARGUMENT'),
      );
    }
  });

  void it('a second get is a hit, also after reopening over a new inner client', async () => {
    const { mem, metrics, dir, cache } = await setup();
    const { etag } = await mem.put('d/1.parquet', seq(5000));
    assert.deepEqual(await cache.get('d/1.parquet'), { bytes: seq(5000), etag });
    assert.deepEqual(await cache.get('d/1.parquet'), { bytes: seq(5000), etag });
    assert.equal(metrics.requests('get'), 1);
    assert.deepEqual((await cacheFiles(dir)).length, 1);
    await cache.close();

    const metrics2 = new MetricsStore(mem);
    const reopened = await DiskCachedStore.open(metrics2, { dir, maxBytes: 1 << 20 });
    assert.equal(reopened.stats().entries, 1);
    assert.deepEqual(await reopened.get('d/1.parquet'), { bytes: seq(5000), etag });
    assert.deepEqual(await reopened.head('d/1.parquet'), { size: 5000, etag });
    assert.deepEqual(await reopened.getRange('d/1.parquet', 4990, 100), seq(5000).subarray(4990));
    assert.equal(metrics2.requests(), 0);
  });

  void it('answers ranges from a cached file, including at and past the end', async () => {
    const { mem, metrics, cache } = await setup();
    await mem.put('r.seg', seq(1000, 3));
    await cache.get('r.seg');
    metrics.reset();
    for (const [o, l] of [
      [0, 10],
      [500, 500],
      [995, 10],
      [1000, 1],
      [5000, 1],
      [7, 0],
    ] as const) {
      assert.deepEqual(await cache.getRange('r.seg', o, l), seq(1000, 3).slice(o, o + l), `${o},${l}`);
    }
    assert.equal(metrics.requests(), 0);
    // A range miss is one inner getRange and fills nothing.
    await mem.put('other.seg', seq(100));
    assert.deepEqual(await cache.getRange('other.seg', 10, 5), seq(100).subarray(10, 15));
    assert.equal(metrics.requests('getRange'), 1);
    assert.equal(cache.stats().entries, 1);
  });

  void it('never caches mutable keys', async () => {
    const { mem, metrics, dir, cache } = await setup();
    await mem.put('t/manifest/pointer', b('v1'));
    await cache.get('t/manifest/pointer');
    await mem.put('t/manifest/pointer', b('v2'));
    assert.deepEqual((await cache.get('t/manifest/pointer')).bytes, b('v2'));
    assert.equal(metrics.requests('get'), 2);
    assert.deepEqual(await cacheFiles(dir), []);
  });

  void it('a corrupt entry is a miss, and is replaced', async () => {
    const { mem, metrics, dir, cache } = await setup();
    await mem.put('c.parquet', seq(300));
    await cache.get('c.parquet');
    const [name] = await cacheFiles(dir);
    const file = path.join(dir, name!);
    const buf = await fs.readFile(file);
    buf[buf.length - 10] = buf[buf.length - 10]! ^ 0xff;
    await fs.writeFile(file, buf);
    assert.deepEqual((await cache.get('c.parquet')).bytes, seq(300));
    assert.equal(metrics.requests('get'), 2, 'the corrupt entry was dropped, not served: one more inner get');
    assert.deepEqual((await cache.get('c.parquet')).bytes, seq(300));
    assert.equal(metrics.requests('get'), 2, 'refilled');
  });

  void it('a truncated entry is never served for a range', async () => {
    const { mem, metrics, dir, cache } = await setup();
    await mem.put('t.parquet', seq(300));
    await cache.get('t.parquet');
    const [name] = await cacheFiles(dir);
    await fs.truncate(path.join(dir, name!), 100);
    metrics.reset();
    assert.deepEqual(await cache.getRange('t.parquet', 200, 50), seq(300).subarray(200, 250));
    assert.equal(metrics.requests('getRange'), 1);
    assert.equal(cache.stats().entries, 0);
    assert.deepEqual(await cacheFiles(dir), []);
  });

  void it('open removes crash leftovers and bad entries, and leaves foreign files alone', async () => {
    const { mem, dir, cache } = await setup();
    await mem.put('k.parquet', seq(50));
    await cache.get('k.parquet');
    const [good] = await cacheFiles(dir);
    await fs.writeFile(path.join(dir, `${good!}.tmp-deadbeef`), 'half a fill');
    await fs.writeFile(path.join(dir, 'ffff.fc'), 'not an entry');
    await fs.writeFile(path.join(dir, 'README'), 'someone else');
    const reopened = await DiskCachedStore.open(new MemoryStore(), { dir, maxBytes: 1 << 20 });
    assert.deepEqual((await fs.readdir(dir)).sort(), [good!, 'README'].sort());
    assert.equal(reopened.stats().entries, 1);
    // Served from disk although the new inner store is empty.
    assert.deepEqual((await reopened.get('k.parquet')).bytes, seq(50));
  });

  void it('stays within maxBytes, evicting the least recently used', async () => {
    const maxBytes = 10_000;
    const { mem, metrics, dir, cache } = await setup(maxBytes);
    for (const k of ['a', 'b', 'c', 'd', 'e']) await mem.put(`${k}.parquet`, seq(2000));
    await cache.get('a.parquet');
    await cache.get('b.parquet');
    await cache.get('c.parquet');
    await cache.get('a.parquet');
    await cache.get('d.parquet');
    await cache.get('e.parquet');
    const s = cache.stats();
    assert.ok(s.bytes <= maxBytes, `${s.bytes} <= ${maxBytes}`);
    assert.ok(s.evictions >= 1);
    let onDisk = 0;
    for (const n of await cacheFiles(dir)) onDisk += (await fs.stat(path.join(dir, n))).size;
    assert.equal(onDisk, s.bytes);
    metrics.reset();
    await cache.get('a.parquet');
    assert.equal(metrics.requests('get'), 0, 'recently used a survived');
    await cache.get('b.parquet');
    assert.equal(metrics.requests('get'), 1, 'least recently used b was evicted');
  });

  void it('objects above maxObjectBytes bypass', async () => {
    const { mem, metrics, cache } = await setup(4000);
    await mem.put('big.parquet', seq(1001));
    await cache.get('big.parquet');
    await cache.get('big.parquet');
    assert.equal(metrics.requests('get'), 2);
    assert.equal(cache.stats().bypassed, 2);
  });

  void it('writes and deletes through the decorator invalidate, also on disk', async () => {
    const { dir, cache } = await setup();
    await cache.put('w.parquet', b('one'));
    await cache.get('w.parquet');
    const e2 = await cache.put('w.parquet', b('two'));
    assert.deepEqual(await cache.get('w.parquet'), { bytes: b('two'), etag: e2.etag });
    await cache.delete('w.parquet');
    await assert.rejects(cache.get('w.parquet'), (e: unknown) => isFloeError(e, 'NOT_FOUND'));
    assert.equal(await cache.head('w.parquet'), null);
    assert.deepEqual(await cacheFiles(dir), []);
  });

  void it('a read in flight during a write is not kept', async () => {
    const fp = new Failpoints();
    const mem = new MemoryStore();
    const dir = await tmpDir();
    const cache = await DiskCachedStore.open(new FaultyStore(mem, fp), { dir, maxBytes: 1 << 20 });
    await mem.put('f.parquet', b('old'));
    fp.arm('store.get.after', { type: 'hang' }, { times: 1 });
    const slow = cache.get('f.parquet');
    await new Promise((r) => setImmediate(r));
    await cache.put('f.parquet', b('new'));
    fp.disarm('store.get.after');
    assert.deepEqual((await slow).bytes, b('old'));
    assert.deepEqual((await cache.get('f.parquet')).bytes, b('new'));
    assert.deepEqual((await cache.get('f.parquet')).bytes, b('new'));
  });

  void it('a failing cache directory costs round trips, never reads', async () => {
    const { mem, metrics, dir, cache } = await setup();
    await mem.put('x.parquet', seq(10));
    await fs.rm(dir, { recursive: true, force: true });
    assert.deepEqual((await cache.get('x.parquet')).bytes, seq(10));
    assert.deepEqual((await cache.get('x.parquet')).bytes, seq(10));
    assert.equal(metrics.requests('get'), 2);
    assert.equal(cache.stats().fillErrors, 2);
    assert.match(cache.stats().lastFillError ?? '', /ENOENT/);
  });

  void it('concurrent misses share one inner request and get private copies', async () => {
    const fp = new Failpoints();
    const mem = new MemoryStore();
    const metrics = new MetricsStore(new FaultyStore(mem, fp));
    const cache = await DiskCachedStore.open(metrics, { dir: await tmpDir(), maxBytes: 1 << 20 });
    await mem.put('m.parquet', seq(64));
    fp.arm('store.get.before', { type: 'hang' }, { times: 1 });
    const readers = Array.from({ length: 4 }, () => cache.get('m.parquet'));
    await new Promise((r) => setImmediate(r));
    fp.disarm('store.get.before');
    const rs = await Promise.all(readers);
    rs[0]!.bytes.fill(0);
    for (const r of rs.slice(1)) assert.deepEqual(r.bytes, seq(64));
    assert.equal(metrics.requests('get'), 1);
  });
});
