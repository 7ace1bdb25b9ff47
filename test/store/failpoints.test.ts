// Failpoints: arming, firing rules (skip/times/match/probability), the
// sticky crash, hang/disarm, injected sleep and hit counting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFloeError } from '../../src/errors.js';
import { Failpoints, NO_FAILPOINTS } from '../../src/store/failpoints.js';

/** Small seeded PRNG (mulberry32) so probability runs are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Hit `name` n times; return which hits (0-based) threw, and with what code. */
async function fire(fp: Failpoints, name: string, n: number, ctx: Record<string, unknown> = {}): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for (let i = 0; i < n; i++) {
    try {
      await fp.hit(name, ctx);
    } catch (e) {
      if (!isFloeError(e)) throw e;
      out.push([i, e.code]);
    }
  }
  return out;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

void describe('Failpoints', () => {
  void it('passes unarmed hits and counts every hit by name, in first-hit order', async () => {
    const fp = new Failpoints();
    assert.deepEqual(fp.seen(), []);
    assert.equal(fp.count('x'), 0);
    await fp.hit('b');
    await fp.hit('a');
    await fp.hit('b');
    assert.deepEqual(fp.seen(), ['b', 'a']);
    assert.equal(fp.count('a'), 1);
    assert.equal(fp.count('b'), 2);
    assert.equal(fp.crashed, false);
  });

  void it('counts armed hits, firing or not', async () => {
    const fp = new Failpoints().arm('p', { type: 'error' }, { skip: 1, times: 1 });
    assert.deepEqual(await fire(fp, 'p', 4), [[1, 'INJECTED_FAULT']]);
    assert.equal(fp.count('p'), 4);
  });

  void it('error: INJECTED_FAULT by default; code and message can be chosen; the key is named', async () => {
    const fp = new Failpoints().arm('e', { type: 'error' });
    await assert.rejects(fp.hit('e', { key: 'k1' }), (e: unknown) => {
      assert.ok(isFloeError(e, 'INJECTED_FAULT'));
      assert.equal(e.key, 'k1');
      assert.match(e.message, /failpoint e/);
      return true;
    });
    fp.arm('e', { type: 'error', code: 'STORAGE_UNAVAILABLE', message: 'network down' });
    await assert.rejects(fp.hit('e'), (e: unknown) => isFloeError(e, 'STORAGE_UNAVAILABLE') && /network down/.test(e.message));
    // An error is not a crash: other hits still pass.
    assert.equal(fp.crashed, false);
    await fp.hit('other');
  });

  void it('fires only on the armed name', async () => {
    const fp = new Failpoints().arm('a', { type: 'error' });
    await fp.hit('b');
    await fp.hit('a.before');
    await assert.rejects(fp.hit('a'));
  });

  void it('skip lets the first N hits pass; times fires at most N times', async () => {
    assert.deepEqual(await fire(new Failpoints().arm('p', { type: 'error' }, { skip: 3 }), 'p', 6), [
      [3, 'INJECTED_FAULT'],
      [4, 'INJECTED_FAULT'],
      [5, 'INJECTED_FAULT'],
    ]);
    assert.deepEqual(await fire(new Failpoints().arm('p', { type: 'error' }, { times: 2 }), 'p', 5), [
      [0, 'INJECTED_FAULT'],
      [1, 'INJECTED_FAULT'],
    ]);
    assert.deepEqual(await fire(new Failpoints().arm('p', { type: 'error' }, { skip: 2, times: 2 }), 'p', 6), [
      [2, 'INJECTED_FAULT'],
      [3, 'INJECTED_FAULT'],
    ]);
    assert.deepEqual(await fire(new Failpoints().arm('p', { type: 'error' }, { times: 0 }), 'p', 3), []);
  });

  void it('match filters by context; non-matching hits consume neither skip nor times', async () => {
    const fp = new Failpoints().arm('w', { type: 'error' }, {
      skip: 1,
      times: 1,
      match: (ctx) => typeof ctx.key === 'string' && ctx.key.startsWith('log/'),
    });
    await fp.hit('w', { key: 'data/1' });
    await fp.hit('w', { key: 'log/1' }); // skipped (first match)
    await fp.hit('w', { key: 'data/2' });
    await fp.hit('w', {});
    await assert.rejects(fp.hit('w', { key: 'log/2' }), (e: unknown) => isFloeError(e, 'INJECTED_FAULT'));
    await fp.hit('w', { key: 'log/3' }); // times used up
    assert.equal(fp.count('w'), 6);
  });

  void it('probability follows the injected random source exactly', async () => {
    const n = 200;
    const runs: Array<Array<[number, string]>> = [];
    for (let r = 0; r < 2; r++) {
      const fp = new Failpoints({ random: seeded(42) }).arm('p', { type: 'error' }, { probability: 0.3 });
      runs.push(await fire(fp, 'p', n));
    }
    // Same seed, same firing pattern.
    assert.deepEqual(runs[0], runs[1]);
    // And that pattern is exactly "random() < 0.3" on the same sequence.
    const rnd = seeded(42);
    const expected: number[] = [];
    for (let i = 0; i < n; i++) if (rnd() < 0.3) expected.push(i);
    assert.deepEqual(runs[0]!.map(([i]) => i), expected);
    assert.ok(expected.length > 20 && expected.length < 100, `plausible count ${expected.length}`);
    // A different seed gives a different pattern.
    const other = await fire(new Failpoints({ random: seeded(7) }).arm('p', { type: 'error' }, { probability: 0.3 }), 'p', n);
    assert.notDeepEqual(other, runs[0]);
  });

  void it('probability 0 never fires and 1 always fires; random is drawn only when needed', async () => {
    let draws = 0;
    const random = (): number => {
      draws++;
      return 0.999;
    };
    assert.deepEqual(await fire(new Failpoints({ random }).arm('p', { type: 'error' }, { probability: 0 }), 'p', 5), []);
    const fp = new Failpoints({ random }).arm('p', { type: 'error' }, { probability: 1 });
    assert.equal((await fire(fp, 'p', 5)).length, 5);
    assert.equal(draws, 5, 'only the probability-0 arm drew');
    // skip is counted before probability is drawn
    draws = 0;
    await fire(new Failpoints({ random }).arm('p', { type: 'error' }, { skip: 3, probability: 0.5 }), 'p', 5);
    assert.equal(draws, 2);
  });

  void it('crash throws INJECTED_CRASH and every later hit throws it too, armed or not', async () => {
    const fp = new Failpoints().arm('c', { type: 'crash' }, { times: 1 });
    await fp.hit('before-crash');
    await assert.rejects(fp.hit('c', { key: 'k' }), (e: unknown) => {
      assert.ok(isFloeError(e, 'INJECTED_CRASH'));
      assert.equal(e.key, 'k');
      assert.match(e.message, /failpoint c/);
      return true;
    });
    assert.equal(fp.crashed, true);
    for (const name of ['c', 'unarmed', 'before-crash']) {
      await assert.rejects(fp.hit(name), (e: unknown) => {
        assert.ok(isFloeError(e, 'INJECTED_CRASH'));
        // The message names where the crash happened and where we are now.
        assert.match(e.message, new RegExp(`failpoint c \\(reached ${name}\\)`));
        return true;
      });
    }
    // Disarming does not bring the dead process back.
    fp.disarm();
    assert.equal(fp.crashed, true);
    await assert.rejects(fp.hit('anything'), (e: unknown) => isFloeError(e, 'INJECTED_CRASH'));
    assert.deepEqual(fp.check('x'), { type: 'crash' });
  });

  void it('hang blocks until that name is disarmed', async () => {
    const fp = new Failpoints().arm('h', { type: 'hang' });
    let done = 0;
    const hung = [fp.hit('h').then(() => done++), fp.hit('h').then(() => done++)];
    for (let i = 0; i < 5; i++) await tick();
    assert.equal(done, 0);
    fp.disarm('other');
    await tick();
    assert.equal(done, 0);
    fp.disarm('h');
    await Promise.all(hung);
    assert.equal(done, 2);
    await fp.hit('h'); // disarmed: passes
  });

  void it('disarm() with no name releases every hang and removes every arm', async () => {
    const fp = new Failpoints().arm('h1', { type: 'hang' }).arm('h2', { type: 'hang' }, { times: 1 }).arm('e', { type: 'error' });
    let done = 0;
    const hung = [fp.hit('h1').then(() => done++), fp.hit('h2').then(() => done++)];
    await tick();
    assert.equal(done, 0);
    fp.disarm();
    await Promise.all(hung);
    assert.equal(done, 2);
    await fp.hit('e');
    await fp.hit('h1');
  });

  void it('delay uses the injected sleep', async () => {
    const slept: number[] = [];
    const fp = new Failpoints({
      sleep: async (ms) => {
        slept.push(ms);
      },
    }).arm('d', { type: 'delay', ms: 1234 }, { times: 2 });
    await fire(fp, 'd', 3);
    assert.deepEqual(slept, [1234, 1234]);
  });

  void it('arming again replaces the previous arm (and its counters)', async () => {
    const fp = new Failpoints().arm('p', { type: 'error' }, { times: 1 });
    await assert.rejects(fp.hit('p'));
    await fp.hit('p');
    fp.arm('p', { type: 'error', code: 'TIMEOUT' }, { times: 1 });
    await assert.rejects(fp.hit('p'), (e: unknown) => isFloeError(e, 'TIMEOUT'));
    await fp.hit('p');
  });

  void it('check() decides without performing; torn through hit() is a misuse', async () => {
    const fp = new Failpoints().arm('t', { type: 'torn', keepBytes: 3 }, { times: 1 });
    assert.deepEqual(fp.check('t'), { type: 'torn', keepBytes: 3 });
    assert.equal(fp.check('t'), null);
    assert.equal(fp.crashed, false);
    fp.arm('t', { type: 'torn', keepBytes: 3 });
    await assert.rejects(fp.hit('t'), (e: unknown) => isFloeError(e, 'INVARIANT_VIOLATION'));
    assert.equal(fp.crashed, false);
  });

  void it('NO_FAILPOINTS always passes', async () => {
    await NO_FAILPOINTS.hit('anything', { key: 'k' });
  });
});
