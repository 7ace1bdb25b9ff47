/**
 * Multi-table commits (db.load, dropTable) and their recovery:
 * - the API: load, history newest first, checkout of an older commit,
 *   refusals that leave nothing behind;
 * - a crash at every step of a load (engine failpoints and every store
 *   write), then readers before recovery (read-only), after recovery and
 *   after a second reopen: all tables old or all new, never a mix;
 * - recovery itself crashed at each of its steps and run again: the same
 *   final state, one audit entry per decision, no intent left;
 * - two writers: disjoint tables both commit; overlapping tables, one wins
 *   and the other gets CAS_CONFLICT with nothing of it visible;
 * - kill -9 of a child process looping loads, on a local directory and on
 *   S3 (FLOE_TORTURE_ROUNDS kills per backend, default 5), each kill
 *   triggered at a different step of the commit protocol.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Database } from '../../src/db/database.js';
import { open } from '../../src/db/database.js';
import { isFloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { listKeys } from '../../src/store/list.js';
import { MemoryStore } from '../../src/store/memory.js';
import { openStore } from '../../src/store/uri.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const schema = { k: { type: 'utf8', nullable: false }, v: 'int64' } as const;
const rows = (prefix: string, n: number, v: number): Row[] => Array.from({ length: n }, (_, i) => ({ k: `${prefix}${i}`, v: BigInt(v) }));

/** a (keyed) and b (keyless) with one committed load. */
async function setup(inner: MemoryStore): Promise<void> {
  const db = await open(inner);
  await db.createTable('a', schema, { primaryKey: 'k' });
  await db.createTable('b', schema);
  await db.load({ a: rows('a', 3, 1), b: rows('b', 3, 1) });
  await db.close();
}

/** The second load: overwrites a key of a (masks), adds rows to both. */
const load2 = (db: Database): Promise<unknown> => db.load({ a: [...rows('a', 2, 2), ...rows('x', 2, 2)], b: rows('y', 4, 2) }, { rowsPerFile: 2 });

async function state(db: Database): Promise<string> {
  const out: Record<string, string[]> = {};
  for (const name of db.listTables()) {
    const t = await db.table(name);
    out[name] = (await t.scan().toArray()).map((r) => `${String(r.k)}=${String(r.v)}`).sort();
  }
  return JSON.stringify(out);
}

async function stateOf(store: MemoryStore | string, readOnly = true): Promise<string> {
  const db = await open(store, { readOnly });
  try {
    return await state(db);
  } finally {
    await db.close();
  }
}

const WRITE_OPS = /^store\.(put|putIfAbsent|putIfMatch|delete)\.(before|after)$/;
const crashNames = (n: string): boolean => WRITE_OPS.test(n) || n.startsWith('multitable.') || n.startsWith('recovery.') || n.startsWith('catalog.cas.');

/** Names (with hit counts) reached while `fn` runs. */
async function learn(fp: Failpoints, fn: () => Promise<unknown>): Promise<Array<[string, number]>> {
  const before = new Map(fp.seen().map((n) => [n, fp.count(n)]));
  await fn();
  return fp
    .seen()
    .filter(crashNames)
    .map((n): [string, number] => [n, fp.count(n) - (before.get(n) ?? 0)])
    .filter(([, c]) => c > 0);
}

/** Ids of the commits in db.history(), read by a read-only open. */
async function commitIds(store: MemoryStore): Promise<string[]> {
  const ro = await open(store, { readOnly: true });
  try {
    return (await ro.history()).filter((e) => e.kind === 'commit').map((e) => e.id);
  } finally {
    await ro.close();
  }
}

async function historyKeys(inner: MemoryStore, prefix: string): Promise<string[]> {
  return listKeys(inner, prefix);
}

describe('db.load, history, checkout', () => {
  it('loads several tables in one commit; history lists commits newest first; checkout travels back', async () => {
    const inner = new MemoryStore();
    await setup(inner);
    const db = await open(inner);
    const r = await db.load({ a: rows('z', 2, 5), b: rows('w', 1, 5) });
    assert.deepEqual(r.versions, { a: 3, b: 3 });
    assert.equal(await (await db.table('a')).count(), 5);
    assert.equal(await (await db.table('b')).count(), 4);
    const h = await db.history();
    assert.equal(h.length, 2);
    assert.equal(h[0]!.id, r.commitId);
    assert.ok(h[1]!.id < h[0]!.id);
    assert.ok(h.every((e) => e.kind === 'commit'));
    const snap = await db.checkout(h[1]!.id);
    assert.deepEqual(snap.listTables(), ['a', 'b']);
    assert.equal(await snap.table('a').count(), 3);
    assert.equal(await snap.table('b').count(), 3);
    assert.throws(() => snap.table('nope'), (err) => isFloeError(err, 'NOT_FOUND'));
    await assert.rejects(db.checkout('nope'), (err) => isFloeError(err, 'INVALID_ARGUMENT'));
    await assert.rejects(db.checkout('01JZZZZZZZZZZZZZZZZZZZZZZZ'), (err) => isFloeError(err, 'NOT_FOUND'));
    assert.equal((await db.history({ limit: 1 })).length, 1);
    await db.dropTable('b');
    const h2 = await db.history();
    assert.equal(h2[0]!.kind === 'commit' && h2[0]!.writer, 'drop');
    assert.deepEqual(db.listTables(), ['a']);
    // The snapshot from before the drop still reads b.
    assert.equal(await (await db.checkout(r.commitId)).table('b').count(), 4);
    assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
    await db.close();
  });

  it('refusals leave nothing behind: unknown table, bad rows, read-only', async () => {
    const inner = new MemoryStore();
    await setup(inner);
    const before = await stateOf(inner);
    const db = await open(inner);
    await assert.rejects(db.load({ a: rows('q', 1, 1), nope: [] }), (err) => isFloeError(err, 'NOT_FOUND'));
    await assert.rejects(db.load({ a: rows('q', 1, 1), b: [{ k: 'x', v: 'not a number' }] }), (err) => isFloeError(err) && !isFloeError(err, 'INJECTED_CRASH'));
    await assert.rejects(db.load({}), (err) => isFloeError(err, 'INVALID_ARGUMENT'));
    assert.equal(await state(db), before);
    assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
    await db.close();
    const ro = await open(inner, { readOnly: true });
    await assert.rejects(ro.load({ a: [] }), (err) => isFloeError(err, 'INVALID_ARGUMENT'));
    await ro.close();
  });
});

describe('crash at every step of a load, then reopen', () => {
  it('readers during and after recovery see all old or all new; recovery decides once', async () => {
    const base = new MemoryStore();
    await setup(base);
    const oldState = await stateOf(base);
    const fp = new Failpoints();
    const db = await open(new FaultyStore(base, fp), { failpoints: fp });
    const names = await learn(fp, () => load2(db));
    await db.close();
    const newState = await stateOf(base);
    assert.notEqual(oldState, newState);
    assert.ok(names.some(([n]) => n === 'multitable.intent.after'));
    assert.ok(names.some(([n, c]) => n === 'multitable.stage.after' && c === 2));
    let cases = 0;
    const decisions = new Map<string, number>();
    for (const [name, hits] of names) {
      for (let k = 0; k < hits; k++) {
        const inner = new MemoryStore();
        await setup(inner);
        const f = new Failpoints();
        const d = await open(new FaultyStore(inner, f), { failpoints: f });
        f.arm(name, { type: 'crash' }, { skip: k, times: 1 });
        await assert.rejects(load2(d), (err) => isFloeError(err, 'INJECTED_CRASH'), `${name}#${k}`);
        // During: a read-only reader changes nothing and sees one side.
        const ro = await open(inner, { readOnly: true });
        const during = await state(ro);
        const pending = await ro.pendingRecovery();
        await ro.close();
        assert.ok(during === oldState || during === newState, `${name}#${k}: mixed state ${during}`);
        assert.ok(pending.length <= 1);
        assert.equal((await historyKeys(inner, '_recovery/')).length, pending.length, 'the read-only open left the intent alone');
        // After: recovery on a read-write open.
        const after = await stateOf(inner, false);
        assert.ok(after === oldState || after === newState, `${name}#${k}: mixed state after recovery`);
        if (during === newState) assert.equal(after, newState, `${name}#${k}: a visible commit was undone`);
        const decision = pending[0]?.decision;
        if (decision === 'roll-forward' || decision === 'already-published') assert.equal(after, newState);
        if (decision === 'roll-back') assert.equal(after, oldState);
        if (decision) decisions.set(decision, (decisions.get(decision) ?? 0) + 1);
        assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
        const audits = (await historyKeys(inner, '_history/')).filter((x) => x.includes('.r-'));
        assert.equal(audits.length, pending.length, `${name}#${k}: one audit entry per decision`);
        assert.equal(await stateOf(inner), after, 'a second reopen sees the same state');
        cases++;
      }
    }
    assert.ok(cases >= 20, `only ${cases} crash points`);
    for (const d of ['roll-forward', 'already-published', 'roll-back']) assert.ok((decisions.get(d) ?? 0) > 0, `no case decided ${d}`);
  });
});

describe('recovery crashed at each of its steps, then run again', () => {
  const pendingAt: Array<[string, number, 'new' | 'old']> = [
    ['multitable.stage.after', 1, 'new'], // all staged: roll forward
    ['multitable.cas.after', 0, 'new'], // published: record only
    ['multitable.stage.after', 0, 'old'], // half staged: roll back
  ];
  for (const [point, skip, want] of pendingAt) {
    it(`intent left at ${point}#${skip}: same final state, one audit entry`, async () => {
      const make = async (): Promise<MemoryStore> => {
        const inner = new MemoryStore();
        await setup(inner);
        const f = new Failpoints();
        const d = await open(new FaultyStore(inner, f), { failpoints: f });
        f.arm(point, { type: 'crash' }, { skip, times: 1 });
        await assert.rejects(load2(d), (err) => isFloeError(err, 'INJECTED_CRASH'));
        return inner;
      };
      const ref = await make();
      const oldState = await stateOf(ref); // read-only: still pending
      const fp = new Failpoints();
      const names = await learn(fp, async () => (await open(new FaultyStore(ref, fp), { failpoints: fp })).close());
      const final = await stateOf(ref);
      if (want === 'old') assert.equal(final, oldState);
      assert.ok(names.some(([n]) => n.startsWith('recovery.')));
      for (const [name, hits] of names) {
        for (let k = 0; k < hits; k++) {
          const inner = await make();
          const f = new Failpoints();
          f.arm(name, { type: 'crash' }, { skip: k, times: 1 });
          let crashed = false;
          try {
            const d = await open(new FaultyStore(inner, f), { failpoints: f });
            await d.close();
          } catch (err) {
            if (!isFloeError(err, 'INJECTED_CRASH')) throw err;
            crashed = true;
          }
          void crashed; // a crash at a store op outside recovery (e.g. the writer claim) is fine too
          assert.equal(await stateOf(inner, false), final, `${name}#${k}`);
          assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
          const audits = (await historyKeys(inner, '_history/')).filter((x) => x.includes('.r-'));
          assert.equal(audits.length, 1, `${name}#${k}: ${audits.join(', ')}`);
          const commits = await commitIds(inner);
          assert.equal(commits.length, want === 'new' ? 2 : 1, `${name}#${k}: one history entry per published commit`);
          assert.equal(new Set(commits).size, commits.length);
        }
      }
    });
  }
});

describe('recovery: concurrent recoverers, impossible states', () => {
  it('two processes recovering the same intent at once: one decision, one audit entry, the commit visible', async () => {
    const inner = new MemoryStore();
    await setup(inner);
    const f = new Failpoints();
    const d = await open(new FaultyStore(inner, f), { failpoints: f });
    f.arm('multitable.stage.after', { type: 'crash' }, { skip: 1, times: 1 });
    await assert.rejects(load2(d), (err) => isFloeError(err, 'INJECTED_CRASH'));
    const [r1, r2] = await Promise.all([open(inner, { logWriter: false }), open(inner, { logWriter: false })]);
    await r1.close();
    await r2.close();
    const s = JSON.parse(await stateOf(inner)) as Record<string, string[]>;
    assert.equal(s.b!.length, 7);
    assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
    const audits = (await historyKeys(inner, '_history/')).filter((x) => x.includes('.r-'));
    assert.equal(audits.length, 1, audits.join(', '));
    assert.ok(audits[0]!.endsWith('.r-roll-forward.json'));
  });

  it('db.recover: roll-forward-only defers a roll-back, full mode then rolls it back; an in-flight commit of this process is left alone', async () => {
    const inner = new MemoryStore();
    await setup(inner);
    const db = await open(inner, { logWriter: false });
    const before = await state(db);
    const f2 = new Failpoints();
    const live = await open(inner, { logWriter: false, failpoints: f2 });
    const f = new Failpoints();
    const dead = await open(new FaultyStore(inner, f), { logWriter: false, failpoints: f });
    f.arm('multitable.stage.after', { type: 'crash' }, { skip: 0, times: 1 });
    await assert.rejects(load2(dead), (err) => isFloeError(err, 'INJECTED_CRASH'));
    const deferred = await db.recover({ mode: 'roll-forward-only' });
    assert.deepEqual(deferred.map((r) => r.decision), ['defer']);
    assert.equal((await historyKeys(inner, '_recovery/')).length, 1);
    // A commit in flight in this same process is not touched by recovery.
    f2.arm('multitable.stage.after', { type: 'hang' }, { match: (c) => c.table === 'b' });
    const p = live.load({ a: rows('l', 1, 9), b: rows('l', 1, 9) });
    while (f2.count('multitable.stage.after') < 2) await new Promise((r) => setImmediate(r));
    const done = await db.recover();
    assert.deepEqual(done.map((r) => r.decision), ['roll-back']);
    f2.disarm();
    await p;
    assert.equal((JSON.parse(await state(live)) as Record<string, string[]>).b!.length, 4);
    assert.notEqual(await state(live), before);
    assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
    await assert.rejects(db.recover({ mode: 'bogus' as 'full' }), (err) => isFloeError(err, 'INVALID_ARGUMENT'));
    await live.close();
    await db.close();
  });

  it('a recovery in another process rolling back a slow commit: the writer then gets CAS_CONFLICT and publishes nothing', async () => {
    const inner = new MemoryStore();
    await setup(inner);
    const before = await stateOf(inner);
    const f = new Failpoints();
    const slow = await open(inner, { logWriter: false, failpoints: f });
    f.arm('multitable.stage.after', { type: 'hang' }, { match: (c) => c.table === 'a' });
    const settled = load2(slow).then(
      () => null,
      (err: unknown) => err,
    );
    while (f.count('multitable.stage.after') < 1) await new Promise((r) => setImmediate(r));
    // Another "process": its own store object on the same data.
    const other = await open(new FaultyStore(inner, new Failpoints()), { logWriter: false });
    assert.deepEqual((await other.recover()).map((r) => r.decision), []); // open already rolled it back
    assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
    f.disarm();
    const err = await settled;
    assert.ok(isFloeError(err, 'CAS_CONFLICT'), String(err));
    assert.equal(await stateOf(inner), before);
    const audits = (await historyKeys(inner, '_history/')).filter((x) => x.includes('.r-'));
    assert.equal(audits.length, 1);
    assert.ok(audits[0]!.endsWith('.r-roll-back.json'));
    await other.close();
    await slow.close();
  });

  it('an intent in an impossible state stops a read-write open with RECOVERY_REQUIRED naming the table; read-only opens report it', async () => {
    const inner = new MemoryStore();
    await setup(inner);
    const cat = JSON.parse(new TextDecoder().decode((await inner.get('_catalog/current')).bytes).split('\ncrc32c=')[0]!) as {
      tables: Record<string, { id: string; manifest: string; version: number }>;
    };
    const a = cat.tables.a!;
    const id = '01JAAAAAAAAAAAAAAAAAAAAAAA';
    const intent = {
      format: 1,
      magic: 'floe-intent',
      id,
      writer: 'load',
      createdAt: 1,
      // Expects a version the catalog never reached: the catalog went backwards.
      tables: [{ name: 'a', tableId: a.id, action: 'update', expected: { manifest: 'tables/x/manifest/bogus.json', version: 40 }, planned: { manifest: 'tables/x/manifest/bogus2.json', version: 41 } }],
    };
    const { encodeIntent } = await import('../../src/db/intent.js');
    await inner.putIfAbsent(`_recovery/${id}.json`, encodeIntent(intent as Parameters<typeof encodeIntent>[0]));
    for (let i = 0; i < 2; i++) {
      await assert.rejects(open(inner), (err) => isFloeError(err, 'RECOVERY_REQUIRED') && /tables a\b/.test(err.message));
    }
    const ro = await open(inner, { readOnly: true });
    const pending = await ro.pendingRecovery();
    assert.equal(pending.length, 1);
    assert.equal(pending[0]!.decision, 'stop');
    assert.deepEqual(pending[0]!.tables, [{ name: 'a', classification: 'invariant-violated' }]);
    await ro.close();
    assert.deepEqual((await historyKeys(inner, '_history/')).filter((x) => x.includes('.r-')), [`_history/${id}.r-stop.json`]);
    // The operator removes the intent: opening works again and the data is untouched.
    await inner.delete(`_recovery/${id}.json`);
    const db = await open(inner);
    assert.equal(await (await db.table('a')).count(), 3);
    assert.deepEqual(await db.recover({ mode: 'roll-forward-only' }), []);
    await db.close();
  });
});

describe('two writers', () => {
  it('disjoint tables: both commit', async () => {
    const inner = new MemoryStore();
    const db0 = await open(inner);
    for (const n of ['a', 'b', 'c', 'd']) await db0.createTable(n, schema);
    await db0.close();
    const d1 = await open(inner, { logWriter: false });
    const d2 = await open(inner, { logWriter: false });
    await Promise.all([d1.load({ a: rows('a', 2, 1), b: rows('b', 2, 1) }), d2.load({ c: rows('c', 3, 1), d: rows('d', 3, 1) })]);
    const s = JSON.parse(await stateOf(inner)) as Record<string, string[]>;
    assert.deepEqual([s.a!.length, s.b!.length, s.c!.length, s.d!.length], [2, 2, 3, 3]);
    assert.equal((await d1.history()).length, 2);
    await d1.close();
    await d2.close();
  });

  it('overlapping tables: one wins, the other gets CAS_CONFLICT and nothing of it is visible', async () => {
    const inner = new MemoryStore();
    const db0 = await open(inner);
    for (const n of ['a', 'b']) await db0.createTable(n, schema);
    await db0.close();
    const f1 = new Failpoints();
    const d1 = await open(inner, { logWriter: false, failpoints: f1 });
    const d2 = await open(inner, { logWriter: false });
    f1.arm('multitable.stage.after', { type: 'hang' }, { match: (c) => c.table === 'b' });
    const p1 = d1.load({ a: rows('one', 2, 1), b: rows('one', 2, 1) });
    const settled = p1.then(
      () => null,
      (err: unknown) => err,
    );
    while (f1.count('multitable.stage.after') < 2) await new Promise((r) => setImmediate(r));
    // d1 has staged both tables and holds its intent; readers see nothing of it.
    assert.equal(await stateOf(inner), JSON.stringify({ a: [], b: [] }));
    await d2.load({ a: rows('two', 3, 2), b: rows('two', 3, 2) });
    f1.disarm();
    const err = await settled;
    assert.ok(isFloeError(err, 'CAS_CONFLICT'), String(err));
    const s = JSON.parse(await stateOf(inner)) as Record<string, string[]>;
    assert.ok(s.a!.every((x) => x.startsWith('two')) && s.a!.length === 3);
    assert.ok(s.b!.every((x) => x.startsWith('two')) && s.b!.length === 3);
    assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
    assert.equal((await d2.history()).length, 1);
    await d1.close();
    await d2.close();
  });
});

// ------------------------------------------------------------------ kill -9

const KILLS = Number(process.env.FLOE_TORTURE_ROUNDS ?? 5);
const PER = 300;

/** Where a kill lands: right after an acknowledged load, or after a step of the next one. */
const TRIGGERS = ['ok', 'at multitable.intent.after', 'at multitable.stage.after:a', 'at multitable.stage.after:b', 'at multitable.cas.after'];

/**
 * Spawn the loader; SIGKILL it when it prints `trigger` after `after`
 * acknowledged loads (the kill lands wherever the child then is). Returns
 * the number of acknowledged loads.
 */
function killAfter(uri: string, after: number, trigger: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(fixtures, 'loader.js'), uri, '1000', String(PER)], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let acked = 0;
    let buf = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        if (l.startsWith('ok ')) acked++;
        if (acked >= after && l.startsWith(trigger) && child.exitCode === null && !child.killed) child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acked);
      else reject(new Error(`loader exited ${String(code)} before being killed: ${err}`));
    });
  });
}

/** Returns how many recovery decisions the reopens made (loads caught mid-way). */
async function killRounds(uri: string, seed: number): Promise<number> {
  const db = await open(uri);
  await db.createTable('a', schema, { primaryKey: 'k' });
  await db.createTable('b', schema);
  await db.close();
  let ackedTotal = 0;
  for (let round = 0; round < KILLS; round++) {
    const acked = await killAfter(uri, 1 + ((seed + round) % 2), TRIGGERS[(seed + round) % TRIGGERS.length]!);
    ackedTotal += acked;
    const check = await open(uri); // read-write: recovers the killed load's intent
    const a = await (await check.table('a')).scan().toArray();
    const b = await (await check.table('b')).scan().toArray();
    // Every load writes PER rows per table, keys a<r>-<i> / b<r>-<i>, v = r (rounds restart at 0 per child, so keyed a overwrites).
    const roundsOf = (rs: Row[]): Map<bigint, number> => {
      const m = new Map<bigint, number>();
      for (const r of rs) m.set(r.v as bigint, (m.get(r.v as bigint) ?? 0) + 1);
      return m;
    };
    for (const [r, n] of roundsOf(b)) assert.equal(n % PER, 0, `table b round ${r}: ${n} rows, a partial load is visible`);
    assert.ok(b.length >= ackedTotal * PER, `acknowledged loads lost: ${b.length} rows in b, ${ackedTotal} loads acknowledged`);
    assert.ok(b.length <= (ackedTotal + 1) * PER, 'more loads visible than were started');
    // a is keyed: its distinct rounds present must match b's newest loads, all or nothing per load.
    for (const [r, n] of roundsOf(a)) assert.equal(n % PER, 0, `table a round ${r}: ${n} rows`);
    ackedTotal = b.length / PER; // a load acknowledged-but-unprinted may have committed
    assert.deepEqual(await listKeys(check.store, '_recovery/'), []);
    await check.close();
  }
  const store = await openStore(uri);
  const audits = (await listKeys(store, '_history/')).filter((k) => k.includes('.r-'));
  await store.close();
  return audits.length;
}

describe('kill -9 during loads', () => {
  it(`local directory (${KILLS} kills): all or nothing`, async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-mt-'));
    try {
      t.diagnostic(`loads recovered after kill -9: ${await killRounds(dir, 7)} of ${KILLS}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const endpoint = process.env.FLOE_S3_ENDPOINT;
  it(`S3 (${KILLS} kills): all or nothing`, { skip: process.env.FLOE_SKIP_S3 === '1' ? 'FLOE_SKIP_S3=1' : false }, async (t) => {
    assert.ok(endpoint, 'FLOE_S3_ENDPOINT is not set: run via scripts/test.sh, or set FLOE_SKIP_S3=1 to skip deliberately');
    const bucket = process.env.FLOE_S3_BUCKET ?? 'floe-test';
    const prefix = `mt-${randomBytes(6).toString('hex')}`;
    const uri = `s3://${bucket}/${prefix}?endpoint=${endpoint}&region=us-east-1`;
    try {
      t.diagnostic(`loads recovered after kill -9: ${await killRounds(uri, 11)} of ${KILLS}`);
    } finally {
      const store = await openStore(uri);
      for (const k of await listKeys(store, '')) await store.delete(k);
      await store.close();
    }
  });
});

/** Per table: version-independent shape (files, columns, rows) — what an all-or-nothing commit switches. */
async function shapeOf(store: MemoryStore, readOnly = true): Promise<string> {
  const db = await open(store, { readOnly });
  try {
    const out: Record<string, unknown> = {};
    for (const name of db.listTables()) {
      const t = await db.table(name);
      const st = await t.stats();
      const cols = (await t.schema()).columns.map((c) => c.name);
      const data = (await t.scan().toArray()).map((r) => cols.map((c) => String(r[c])).join('|')).sort();
      out[name] = { files: st.files, cols, data };
    }
    return JSON.stringify(out);
  } finally {
    await db.close();
  }
}

/** Crash at every step of `op` (after `prepare`), then check readers see all old or all new and recovery converges. */
async function crashEveryStep(prepare: (s: MemoryStore) => Promise<void>, op: (db: Database) => Promise<unknown>): Promise<number> {
  const base = new MemoryStore();
  await prepare(base);
  const oldShape = await shapeOf(base);
  const fp = new Failpoints();
  const db = await open(new FaultyStore(base, fp), { failpoints: fp });
  const names = await learn(fp, () => op(db));
  await db.close();
  const newShape = await shapeOf(base);
  assert.notEqual(oldShape, newShape);
  let cases = 0;
  for (const [name, hits] of names) {
    for (let k = 0; k < hits; k++) {
      const inner = new MemoryStore();
      await prepare(inner);
      const f = new Failpoints();
      const d = await open(new FaultyStore(inner, f), { failpoints: f });
      f.arm(name, { type: 'crash' }, { skip: k, times: 1 });
      await assert.rejects(op(d), (err) => isFloeError(err, 'INJECTED_CRASH'), `${name}#${k}`);
      const during = await shapeOf(inner);
      assert.ok(during === oldShape || during === newShape, `${name}#${k}: mixed state ${during}`);
      const after = await shapeOf(inner, false);
      assert.ok(after === oldShape || after === newShape, `${name}#${k}: mixed state after recovery`);
      if (during === newShape) assert.equal(after, newShape, `${name}#${k}: a visible commit was undone`);
      assert.deepEqual(await historyKeys(inner, '_recovery/'), []);
      cases++;
    }
  }
  return cases;
}

describe('schema changes and compaction of several tables, through the intent protocol', () => {
  it('alterTables adds columns to several tables in one commit; bad input for one table changes none', async () => {
    const inner = new MemoryStore();
    await setup(inner);
    const db = await open(inner);
    const before = await shapeOf(inner);
    await assert.rejects(
      db.alterTables({ a: { addColumns: [{ name: 'c', type: 'utf8' }] }, b: { addColumns: [{ name: 'v', type: 'utf8' }] } }),
      (err) => isFloeError(err, 'INVALID_ARGUMENT') && /"b"/.test(err.message) && /v/.test(err.message),
    );
    await assert.rejects(db.alterTables({ a: { addColumns: [] } }), (err) => isFloeError(err, 'INVALID_ARGUMENT'));
    await assert.rejects(db.alterTables({ a: { dropColumns: ['v'] } as never }), (err) => isFloeError(err, 'INVALID_ARGUMENT') && /dropColumns/.test(err.message));
    await assert.rejects(db.alterTables({ nope: { addColumns: [{ name: 'c', type: 'utf8' }] } }), (err) => isFloeError(err, 'NOT_FOUND'));
    assert.equal(await shapeOf(inner, false), before, 'nothing changed');
    const r = await db.alterTables({ a: { addColumns: [{ name: 'c', type: 'utf8' }] }, b: { addColumns: [{ name: 'd', type: 'int64', nullable: false, default: 7n }] } });
    assert.deepEqual(Object.keys(r.versions).sort(), ['a', 'b']);
    const b = await db.table('b');
    assert.deepEqual((await b.scan().toArray()).map((x) => x.d), [7n, 7n, 7n]);
    const h = await db.history({ limit: 1 });
    assert.equal(h[0]?.kind === 'commit' && h[0].writer, 'schema-change');
    await db.close();
  });

  it('compactTables rewrites several tables in one commit; data is unchanged; a table with nothing to do is left out', async () => {
    const inner = new MemoryStore();
    const db = await open(inner);
    await db.createTable('a', schema, { primaryKey: 'k' });
    await db.createTable('b', schema);
    await db.createTable('c', schema);
    for (let i = 0; i < 3; i++) await db.load({ a: rows(`a${i}-`, 3, i), b: rows(`b${i}-`, 3, i) });
    const before = await shapeOf(inner, false);
    const r = await db.compactTables(['a', 'b', 'c'], { smallFileRows: 100 });
    assert.ok(r.commitId);
    assert.deepEqual(Object.keys(r.versions).sort(), ['a', 'b']);
    assert.equal(r.tables.a?.filesRemoved, 3);
    assert.equal(r.tables.b?.filesAdded, 1);
    const after = JSON.parse(await shapeOf(inner, false)) as Record<string, { files: number; data: string[] }>;
    const was = JSON.parse(before) as Record<string, { files: number; data: string[] }>;
    for (const t of ['a', 'b']) {
      assert.equal(after[t]!.files, 1);
      assert.deepEqual(after[t]!.data, was[t]!.data);
    }
    const none = await db.compactTables(['a', 'b'], { smallFileRows: 100 });
    assert.equal(none.commitId, null, 'nothing left to compact: no commit');
    await assert.rejects(db.compactTables(['zz']), (err) => isFloeError(err, 'NOT_FOUND'));
    await db.close();
  });

  it('a crash at every step of alterTables and of compactTables leaves all old or all new', async () => {
    const altered = await crashEveryStep(setup, (db) => db.alterTables({ a: { addColumns: [{ name: 'c', type: 'utf8' }] }, b: { addColumns: [{ name: 'd', type: 'utf8' }] } }));
    const compacted = await crashEveryStep(
      async (s) => {
        await setup(s);
        const db = await open(s);
        await db.load({ a: rows('x', 2, 5), b: rows('y', 2, 5) });
        await db.close();
      },
      (db) => db.compactTables(['a', 'b'], { smallFileRows: 100 }),
    );
    assert.ok(altered >= 8, `${altered} crash points`);
    assert.ok(compacted >= 10, `${compacted} crash points`);
  });
});
