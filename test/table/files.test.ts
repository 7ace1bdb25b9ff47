/**
 * FileCache and its decoded-page cache: the byte bound holds after every
 * insertion whatever the sizes, a value read back is the one stored, an
 * entry used since the clock hand last passed survives one pass, concurrent
 * misses share one load, and a failed load is not kept.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FloeError } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { OpenedFile } from '../../src/table/files.js';
import { FileCache, PageCache } from '../../src/table/files.js';

describe('PageCache', () => {
  it('never holds more than its budget, and returns what was stored', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.array(fc.record({ file: fc.integer({ min: 0, max: 3 }), id: fc.integer({ min: 0, max: 40 }), bytes: fc.integer({ min: 0, max: 4000 }), read: fc.boolean() }), {
          maxLength: 300,
        }),
        (max, ops) => {
          const cache = new PageCache(max);
          const files = [new Map(), new Map(), new Map(), new Map()] as Array<Map<number, never>>;
          const model = new Map<string, number>();
          let serial = 0;
          for (const op of ops) {
            const slots = files[op.file]!;
            if (op.read) {
              const got = cache.get<{ serial: number }>(slots, op.id);
              if (got !== undefined) assert.equal(got.serial, model.get(`${op.file}/${op.id}`), 'a hit returns the value stored last');
            } else {
              serial++;
              cache.add(slots, op.id, { serial }, op.bytes);
              model.set(`${op.file}/${op.id}`, serial);
              if (op.bytes > max / 4) assert.equal(cache.get(slots, op.id), undefined, 'an entry over a quarter of the budget is not kept');
            }
            assert.ok(cache.bytes <= max, `bytes ${cache.bytes} > max ${max}`);
            assert.ok(cache.bytes >= 0);
            const held = files.reduce((a, m) => a + m.size, 0);
            assert.equal(held, cache.entries, 'slot maps and the ring agree');
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('gives an entry read since the last pass a second chance', () => {
    const cache = new PageCache(400);
    const slots = new Map() as Map<number, never>;
    for (const [id, v] of [[1, 'a'], [2, 'b'], [3, 'c'], [4, 'd']] as const) cache.add(slots, id, v, 100);
    assert.equal(cache.bytes, 400);
    assert.equal(cache.get(slots, 1), 'a');
    cache.add(slots, 5, 'e', 100); // evicts 2 (1 was used, so it moves behind)
    assert.equal(cache.get(slots, 2), undefined);
    for (const [id, v] of [[1, 'a'], [3, 'c'], [4, 'd'], [5, 'e']] as const) assert.equal(cache.get(slots, id), v);
    assert.equal(cache.bytes, 400);
    assert.equal(cache.evictions, 1);
  });

  it('rejects a negative budget', () => {
    assert.throws(() => new PageCache(-1), (e: unknown) => e instanceof FloeError && e.code === 'INVALID_ARGUMENT');
  });
});

describe('FileCache.load', () => {
  const fakeFile = (): OpenedFile => ({ reader: null as never, slots: new Map(), loading: new Map(), memo: new WeakMap() });

  it('shares one load between concurrent misses, then serves the cached value', async () => {
    const files = new FileCache(new MemoryStore(), { cacheBytes: 1 << 20 });
    const file = fakeFile();
    let calls = 0;
    const load = async (): Promise<{ value: string; bytes: number }> => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      return { value: 'page', bytes: 100 };
    };
    const got = await Promise.all([files.load(file, 7, load), files.load(file, 7, load), files.load(file, 7, load)]);
    assert.deepEqual(got, ['page', 'page', 'page']);
    assert.equal(calls, 1);
    assert.equal(files.peek(file, 7), 'page');
    assert.equal(await files.load(file, 7, load), 'page');
    assert.equal(calls, 1);
    assert.equal(files.pages.bytes, 100);
  });

  it('does not keep a failed load', async () => {
    const files = new FileCache(new MemoryStore(), { cacheBytes: 1 << 20 });
    const file = fakeFile();
    let calls = 0;
    const failing = async (): Promise<{ value: string; bytes: number }> => {
      calls++;
      await Promise.resolve();
      throw new FloeError('CORRUPT', 'bad page');
    };
    await assert.rejects(files.load(file, 1, failing), (e: unknown) => e instanceof FloeError && e.code === 'CORRUPT');
    await assert.rejects(files.load(file, 1, failing), (e: unknown) => e instanceof FloeError && e.code === 'CORRUPT');
    assert.equal(calls, 2);
    assert.equal(files.peek(file, 1), undefined);
    assert.equal(files.pages.entries, 0);
  });
});
