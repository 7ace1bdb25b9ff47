/**
 * The pure decisions of multi-table recovery, exhaustively: classifyTable
 * over every action x observed catalog state x (plannedReached, stagedExists),
 * and decide over every combination of per-table classifications for one to
 * three tables, with and without all manifests staged, in both modes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CatalogTable } from '../../src/db/catalog.js';
import type { Classification, Decision, Intent, IntentTable, RecoveryMode } from '../../src/db/intent.js';
import {
  RECOVERY_MODES,
  applyIntent,
  atExpected,
  atPlanned,
  blockingTables,
  classifyTable,
  decide,
  decodeIntent,
  encodeIntent,
} from '../../src/db/intent.js';
import { isFloeError } from '../../src/errors.js';

const ID = 'T1';
const EXP = { manifest: 'm/5-a', version: 5 };
const PLAN = { manifest: 'm/6-b', version: 6 };

const update: IntentTable = { name: 't', tableId: ID, action: 'update', expected: EXP, planned: PLAN };
const register: IntentTable = { name: 't', tableId: ID, action: 'register', expected: null, planned: { manifest: 'm/1-b', version: 1 } };
const remove: IntentTable = { name: 't', tableId: ID, action: 'remove', expected: EXP, planned: null };

const e = (manifest: string, version: number, id = ID): CatalogTable => ({ id, manifest, version });

/** Every catalog state worth distinguishing, named. */
const entries: Array<[string, CatalogTable | null]> = [
  ['absent', null],
  ['other id', e('x/6', 6, 'T2')],
  ['expected', e(EXP.manifest, 5)],
  ['planned', e(PLAN.manifest, 6)],
  ['register planned', e('m/1-b', 1)],
  ['below expected', e('m/4', 4)],
  ['expected version, other key', e('m/5-z', 5)],
  ['planned version, other key', e('m/6-z', 6)],
  ['two past', e('m/7', 7)],
  ['far past', e('m/20', 20)],
  ['version 1 other key', e('m/1-z', 1)],
];

/** The expected classification, written per case (not derived from the code). */
function oracle(t: IntentTable, name: string, reached: boolean): Classification['kind'] {
  const movedOrInv = (): Classification['kind'] => 'moved-several';
  if (t.action === 'update') {
    switch (name) {
      case 'absent': return 'moved-several';
      case 'other id': return 'invariant-violated';
      case 'expected': return 'no-movement';
      case 'planned': return 'at-planned';
      case 'register planned': case 'below expected': case 'expected version, other key': case 'version 1 other key': return 'invariant-violated';
      case 'planned version, other key': return 'unexpected-at-planned-step';
      default: return movedOrInv();
    }
  }
  if (t.action === 'register') {
    switch (name) {
      case 'absent': return 'no-movement';
      case 'other id': return 'unexpected-at-planned-step';
      case 'register planned': return 'at-planned';
      case 'version 1 other key': return 'invariant-violated';
      default: return 'moved-several';
    }
  }
  switch (name) {
    case 'absent': case 'other id': return 'at-planned';
    case 'expected': return 'no-movement';
    case 'register planned': case 'below expected': case 'expected version, other key': case 'version 1 other key': return 'invariant-violated';
    case 'planned': case 'planned version, other key': return 'unexpected-at-planned-step';
    default: void reached; return 'moved-several';
  }
}

describe('classifyTable', () => {
  for (const t of [update, register, remove]) {
    for (const [name, entry] of entries) {
      for (const plannedReached of [false, true]) {
        for (const stagedExists of [false, true]) {
          it(`${t.action}: catalog ${name}, plannedReached=${plannedReached}, staged=${stagedExists}`, () => {
            const c = classifyTable(t, { entry, plannedReached, stagedExists });
            assert.equal(c.kind, oracle(t, name, plannedReached));
            if (c.kind === 'moved-several') {
              // Only update/register can have published through their planned manifest.
              const through = t.action !== 'remove' && entry !== null && plannedReached;
              assert.equal(c.throughPlanned, through);
            }
          });
        }
      }
    }
  }
  it('malformed intent tables are invariant violations', () => {
    const o = { entry: null, plannedReached: false, stagedExists: true };
    assert.equal(classifyTable({ ...update, planned: null }, o).kind, 'invariant-violated');
    assert.equal(classifyTable({ ...update, expected: null }, o).kind, 'invariant-violated');
    assert.equal(classifyTable({ ...register, planned: null }, o).kind, 'invariant-violated');
    assert.equal(classifyTable({ ...remove, expected: null }, o).kind, 'invariant-violated');
  });
});

const variants: Classification[] = [
  { kind: 'no-movement' },
  { kind: 'at-planned' },
  { kind: 'unexpected-at-planned-step', observed: 6 },
  { kind: 'moved-several', observed: 9, throughPlanned: true },
  { kind: 'moved-several', observed: 9, throughPlanned: false },
  { kind: 'invariant-violated', observed: 3, why: 'test' },
];
const label = (c: Classification): string => (c.kind === 'moved-several' ? `moved-several(${c.throughPlanned ? 'through' : 'not-through'})` : c.kind);

function* combos(n: number): Generator<Classification[]> {
  if (n === 0) {
    yield [];
    return;
  }
  for (const rest of combos(n - 1)) for (const v of variants) yield [...rest, v];
}

/** The rule table of the issue, stated independently of the implementation. */
function expectedDecision(cs: readonly Classification[], stagedAll: boolean, mode: RecoveryMode): Decision {
  const kinds = cs.map(label);
  const full = mode === 'full';
  const pub = (k: string): boolean => k === 'at-planned' || k === 'moved-several(through)';
  if (kinds.includes('invariant-violated')) return full ? 'stop' : 'defer';
  if (kinds.every(pub)) return 'already-published';
  if (kinds.some(pub)) return kinds.includes('no-movement') ? (full ? 'stop' : 'defer') : 'already-published';
  if (kinds.every((k) => k === 'no-movement')) return stagedAll ? 'roll-forward' : full ? 'roll-back' : 'defer';
  return full ? 'roll-back' : 'defer';
}

describe('decide: every combination of 1..3 tables x staged x mode', () => {
  it('matches the rule table, is order-independent, and roll-forward-only never rolls back or stops', () => {
    let n = 0;
    for (let tables = 1; tables <= 3; tables++) {
      for (const cs of combos(tables)) {
        for (const stagedAll of [false, true]) {
          for (const mode of RECOVERY_MODES) {
            const d = decide(cs, stagedAll, mode);
            assert.equal(d, expectedDecision(cs, stagedAll, mode), `${cs.map(label).join(',')} staged=${stagedAll} ${mode}`);
            assert.equal(decide([...cs].reverse(), stagedAll, mode), d);
            if (mode === 'roll-forward-only') assert.ok(d !== 'roll-back' && d !== 'stop');
            if (d === 'roll-forward') assert.ok(stagedAll && cs.every((c) => c.kind === 'no-movement'));
            n++;
          }
        }
      }
    }
    assert.equal(n, (6 + 36 + 216) * 4);
  });

  it('an intent with no tables is trivially published', () => {
    for (const mode of RECOVERY_MODES) assert.equal(decide([], false, mode), 'already-published');
  });

  it('blockingTables names invariant violations first, else the inconsistent tables', () => {
    const ts = [{ ...update, name: 'a' }, { ...update, name: 'b' }, { ...update, name: 'c' }];
    assert.deepEqual(blockingTables(ts, [variants[0]!, variants[5]!, variants[1]!]), ['b']);
    assert.deepEqual(blockingTables(ts, [variants[0]!, variants[2]!, variants[1]!]), ['a', 'c']);
  });
});

describe('catalog predicates and intent encoding', () => {
  const intent: Intent = {
    format: 1,
    magic: 'floe-intent',
    id: '01JAAAAAAAAAAAAAAAAAAAAAAA',
    writer: 'load',
    createdAt: 1,
    tables: [
      { ...update, name: 'a' },
      { ...register, name: 'n', tableId: 'T9' },
      { ...remove, name: 'r', tableId: 'T3' },
    ],
  };
  const before = { a: e(EXP.manifest, 5), r: e(EXP.manifest, 5, 'T3'), z: e('zz', 2, 'TZ') };

  it('applyIntent moves exactly the intent tables; atExpected/atPlanned agree', () => {
    assert.ok(atExpected(before, intent));
    assert.ok(!atPlanned(before, intent));
    const after = applyIntent(before, intent);
    assert.deepEqual(after, { a: e(PLAN.manifest, 6), n: e('m/1-b', 1, 'T9'), z: before.z });
    assert.ok(atPlanned(after, intent));
    assert.ok(!atExpected(after, intent));
    assert.ok(!atExpected({ ...before, a: e('m/6-z', 6) }, intent));
  });

  it('encode/decode round-trips; a flipped byte is CORRUPT; unknown writer kinds are refused', () => {
    const bytes = encodeIntent(intent);
    assert.deepEqual(decodeIntent(bytes, 'k'), intent);
    const bad = Uint8Array.from(bytes);
    bad[10] = bad[10]! ^ 1;
    assert.throws(() => decodeIntent(bad, 'k'), (err) => isFloeError(err, 'CORRUPT'));
    assert.throws(() => decodeIntent(encodeIntent({ ...intent, writer: 'bogus' as 'load' }), 'k'), (err) => isFloeError(err, 'CORRUPT'));
    assert.throws(() => decodeIntent(encodeIntent({ ...intent, format: 99 }), 'k'), (err) => isFloeError(err, 'UNSUPPORTED_VERSION'));
  });
});
