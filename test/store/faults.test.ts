// FaultyStore: before/after semantics of injected crashes and errors, torn
// writes, contexts, and transparency when nothing is armed. The inner store
// is read directly to see what really landed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFloeError } from '../../src/errors.js';
import { Failpoints } from '../../src/store/failpoints.js';
import type { FailpointContext } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);

function setup() {
  const inner = new MemoryStore('faults-test');
  const fp = new Failpoints();
  return { inner, fp, store: new FaultyStore(inner, fp) };
}

const crashed = (e: unknown): boolean => isFloeError(e, 'INJECTED_CRASH');

type Write = 'put' | 'putIfAbsent' | 'putIfMatch';

/** Issue one write of the given kind against a key that holds "old" with etag `etag` (or is absent). */
function write(store: FaultyStore, op: Write, key: string, bytes: Uint8Array, etag: string): Promise<unknown> {
  switch (op) {
    case 'put':
      return store.put(key, bytes);
    case 'putIfAbsent':
      return store.putIfAbsent(key, bytes);
    case 'putIfMatch':
      return store.putIfMatch(key, bytes, etag);
  }
}

void describe('FaultyStore', () => {
  void it('is transparent when nothing is armed and hits before/after for every op with { op, key }', async () => {
    const { inner, fp, store } = setup();
    assert.equal(store.kind, inner.kind);
    assert.equal(store.location, inner.location);
    const seenCtx: FailpointContext[] = [];
    fp.arm('store.list.before', { type: 'error' }, { match: (ctx) => (seenCtx.push(ctx), false) });
    const { etag } = await store.put('k', b('v1'));
    assert.deepEqual(await store.get('k'), { bytes: b('v1'), etag });
    assert.deepEqual(await store.getRange('k', 1, 5), b('1'));
    assert.deepEqual(await store.head('k'), { size: 2, etag });
    const e2 = await store.putIfMatch('k', b('v2'), etag);
    await store.putIfAbsent('k2', b('x'));
    assert.deepEqual(await store.list(''), { keys: ['k', 'k2'], more: false });
    await store.delete('k2');
    assert.deepEqual((await inner.get('k')).etag, e2.etag);
    const ops = ['put', 'get', 'getRange', 'head', 'putIfMatch', 'putIfAbsent', 'list', 'delete'];
    for (const op of ops) {
      assert.equal(fp.count(`store.${op}.before`), 1, op);
      assert.equal(fp.count(`store.${op}.after`), 1, op);
    }
    assert.deepEqual(fp.seen(), ops.flatMap((op) => [`store.${op}.before`, `store.${op}.after`]));
    assert.deepEqual(seenCtx, [{ op: 'list', key: '' }]);
    await store.close();
  });

  void it('passes inner errors through unchanged and then skips the .after failpoint', async () => {
    const { fp, store } = setup();
    await assert.rejects(store.get('missing'), (e: unknown) => isFloeError(e, 'NOT_FOUND'));
    await assert.rejects(store.put('/bad', b('x')), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    assert.equal(fp.count('store.get.before'), 1);
    assert.equal(fp.count('store.get.after'), 0);
    assert.equal(fp.count('store.put.after'), 0);
  });

  for (const op of ['put', 'putIfAbsent', 'putIfMatch'] as const) {
    void it(`${op}: a crash at .before leaves the store untouched`, async () => {
      const { inner, fp, store } = setup();
      const key = 'obj';
      const old = op === 'putIfAbsent' ? null : await inner.put(key, b('old'));
      fp.arm(`store.${op}.before`, { type: 'crash' });
      await assert.rejects(write(store, op, key, b('new'), old?.etag ?? ''), crashed);
      if (old) assert.deepEqual(await inner.get(key), { bytes: b('old'), etag: old.etag });
      else assert.equal(await inner.head(key), null);
    });

    void it(`${op}: a crash at .after stores the object although the caller got INJECTED_CRASH`, async () => {
      const { inner, fp, store } = setup();
      const key = 'obj';
      const old = op === 'putIfAbsent' ? null : await inner.put(key, b('old'));
      fp.arm(`store.${op}.after`, { type: 'crash' });
      await assert.rejects(write(store, op, key, b('new'), old?.etag ?? ''), crashed);
      const now = await inner.get(key);
      assert.deepEqual(now.bytes, b('new'));
      if (old) assert.notEqual(now.etag, old.etag);
      // The "process" is dead: nothing more goes through, reads included.
      assert.equal(fp.crashed, true);
      await assert.rejects(store.get(key), crashed);
      await assert.rejects(store.put('other', b('x')), crashed);
      assert.equal(await inner.head('other'), null);
    });

    void it(`${op}: a torn write stores a prefix of the bytes, then crashes`, async () => {
      const { inner, fp, store } = setup();
      const key = 'obj';
      const old = op === 'putIfAbsent' ? null : await inner.put(key, b('old'));
      fp.arm(`store.${op}.before`, { type: 'torn', keepBytes: 4 });
      await assert.rejects(write(store, op, key, b('0123456789'), old?.etag ?? ''), crashed);
      assert.deepEqual((await inner.get(key)).bytes, b('0123'));
      assert.equal(fp.crashed, true);
      await assert.rejects(store.head(key), crashed);
    });
  }

  void it('delete: a crash at .before keeps the object, at .after removes it', async () => {
    const a = setup();
    await a.inner.put('k', b('v'));
    a.fp.arm('store.delete.before', { type: 'crash' });
    await assert.rejects(a.store.delete('k'), crashed);
    assert.deepEqual((await a.inner.get('k')).bytes, b('v'));

    const z = setup();
    await z.inner.put('k', b('v'));
    z.fp.arm('store.delete.after', { type: 'crash' });
    await assert.rejects(z.store.delete('k'), crashed);
    assert.equal(await z.inner.head('k'), null);
  });

  void it('torn: keepBytes may be a function of the length, and is clamped to [0, length]', async () => {
    const cases: Array<[number | ((n: number) => number), string]> = [
      [(n) => n / 2, '01234'],
      [(n) => n - 1, '012345678'],
      [0, ''],
      [-5, ''],
      [2.9, '01'],
      [100, '0123456789'],
    ];
    for (const [keepBytes, expected] of cases) {
      const { inner, fp, store } = setup();
      fp.arm('store.put.before', { type: 'torn', keepBytes });
      await assert.rejects(store.put('t', b('0123456789')), crashed);
      assert.deepEqual((await inner.get('t')).bytes, b(expected), String(keepBytes));
    }
  });

  void it('torn ignores CAS: a power cut does not honour the precondition', async () => {
    const { inner, fp, store } = setup();
    await inner.put('k', b('current'));
    fp.arm('store.putIfMatch.before', { type: 'torn', keepBytes: 3 });
    await assert.rejects(store.putIfMatch('k', b('replacement'), 'stale-etag'), crashed);
    assert.deepEqual((await inner.get('k')).bytes, b('rep'));
  });

  void it('torn on an op without a body is rejected as a misuse, not a crash', async () => {
    const { inner, fp, store } = setup();
    await inner.put('k', b('v'));
    fp.arm('store.get.before', { type: 'torn', keepBytes: 1 });
    await assert.rejects(store.get('k'), (e: unknown) => isFloeError(e, 'INVARIANT_VIOLATION'));
    assert.equal(fp.crashed, false);
    fp.arm('store.put.after', { type: 'torn', keepBytes: 1 });
    await assert.rejects(store.put('k', b('w')), (e: unknown) => isFloeError(e, 'INVARIANT_VIOLATION'));
  });

  void it('an injected error at .before is transient: nothing written, later ops succeed', async () => {
    const { inner, fp, store } = setup();
    fp.arm('store.put.before', { type: 'error', code: 'STORAGE_UNAVAILABLE' }, { times: 1 });
    await assert.rejects(store.put('k', b('v')), (e: unknown) => isFloeError(e, 'STORAGE_UNAVAILABLE'));
    assert.equal(await inner.head('k'), null);
    assert.equal(fp.crashed, false);
    await store.put('k', b('v'));
    assert.deepEqual((await inner.get('k')).bytes, b('v'));
  });

  void it('an injected error at .after: the write landed, the caller saw a failure', async () => {
    const { inner, fp, store } = setup();
    fp.arm('store.putIfAbsent.after', { type: 'error', code: 'TIMEOUT' }, { times: 1 });
    await assert.rejects(store.putIfAbsent('k', b('v')), (e: unknown) => isFloeError(e, 'TIMEOUT'));
    assert.deepEqual((await inner.get('k')).bytes, b('v'));
    // A retry of the create-only write now sees its own earlier success.
    await assert.rejects(store.putIfAbsent('k', b('v')), (e: unknown) => isFloeError(e, 'ALREADY_EXISTS'));
  });

  void it('match on the key targets one object only', async () => {
    const { inner, fp, store } = setup();
    fp.arm('store.put.before', { type: 'crash' }, { match: (ctx) => ctx.key === 'log/2.seg' });
    await store.put('log/1.seg', b('1'));
    await store.put('data/2.seg', b('2'));
    await assert.rejects(store.put('log/2.seg', b('3')), crashed);
    assert.deepEqual((await inner.list('')).keys, ['data/2.seg', 'log/1.seg']);
  });

  void it('hang at .after holds the result until disarmed; the write is already visible', async () => {
    const { inner, fp, store } = setup();
    fp.arm('store.put.after', { type: 'hang' });
    let settled = false;
    const p = store.put('k', b('v')).then((r) => ((settled = true), r));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false);
    assert.deepEqual((await inner.get('k')).bytes, b('v'));
    fp.disarm('store.put.after');
    const { etag } = await p;
    assert.equal(etag, (await inner.get('k')).etag);
  });
});
