import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFloeError } from '../../src/errors.js';
import type { MutationKind, MutationState } from '../../src/table/mutation.js';
import { MUTATION_STATES, advance, canTransition, isTerminal, nextState, progress, touch } from '../../src/table/mutation.js';

const LEGAL: Record<MutationKind, Array<[MutationState, MutationState]>> = {
  delete: [
    ['intent', 'complete'],
    ['intent', 'aborted'],
  ],
  update: [
    ['intent', 'appended'],
    ['appended', 'complete'],
    ['intent', 'aborted'],
    ['appended', 'aborted'],
  ],
};

describe('mutation state machine', () => {
  for (const kind of ['delete', 'update'] as const) {
    for (const from of MUTATION_STATES) {
      for (const to of MUTATION_STATES) {
        const legal = LEGAL[kind].some(([a, b]) => a === from && b === to);
        it(`${kind}: ${from} -> ${to} is ${legal ? 'legal' : 'illegal'}`, () => {
          assert.equal(canTransition(kind, from, to), legal);
          const doc = { kind, state: from, version: 7, extra: 'x' };
          if (legal) {
            const next = advance(doc, to, { extra: 'y' });
            assert.deepEqual(next, { kind, state: to, version: 8, extra: 'y' });
            assert.equal(doc.version, 7, 'advance does not mutate its input');
          } else {
            assert.throws(() => advance(doc, to), (e) => isFloeError(e, 'INVARIANT_VIOLATION'));
          }
        });
      }
    }
  }

  it('nextState walks each path to the end', () => {
    assert.deepEqual([nextState('delete', 'intent'), nextState('delete', 'complete')], ['complete', null]);
    assert.deepEqual([nextState('update', 'intent'), nextState('update', 'appended'), nextState('update', 'complete')], ['appended', 'complete', null]);
    for (const kind of ['delete', 'update'] as const) {
      let s: MutationState | null = 'intent';
      const path: MutationState[] = [];
      while (s) {
        path.push(s);
        const n: MutationState | null = nextState(kind, s);
        if (n) assert.ok(canTransition(kind, s, n));
        s = n;
      }
      assert.equal(path.at(-1), 'complete');
    }
  });

  it('progress is 0 at intent, 1 at complete, monotone', () => {
    assert.equal(progress('update', 'intent'), 0);
    assert.equal(progress('update', 'appended'), 0.5);
    assert.equal(progress('update', 'complete'), 1);
    assert.equal(progress('delete', 'intent'), 0);
    assert.equal(progress('delete', 'complete'), 1);
    assert.equal(progress('update', 'aborted'), 1);
    assert.ok(isTerminal('complete') && isTerminal('aborted') && !isTerminal('intent') && !isTerminal('appended'));
    assert.equal(nextState('update', 'aborted'), null);
  });

  it('touch bumps the version without changing state, and refuses a complete doc', () => {
    const d = { kind: 'update' as const, state: 'appended' as const, version: 2, n: 1 };
    assert.deepEqual(touch(d, { n: 2 }), { kind: 'update', state: 'appended', version: 3, n: 2 });
    assert.throws(() => touch({ ...d, state: 'complete' as const }, { n: 3 }), (e) => isFloeError(e, 'INVARIANT_VIOLATION'));
    assert.throws(() => touch({ ...d, state: 'aborted' as const }, { n: 3 }), (e) => isFloeError(e, 'INVARIANT_VIOLATION'));
  });
});
