/**
 * The mutation pipeline under crashes, corruption and bad input.
 *
 * Crash matrix: a clean run of (updateWhere, deleteWhere) learns every
 * failpoint it passes (engine `mutate.*`, catalog CAS, and the store
 * decorator's `store.<op>.*`); then, per failpoint, a run crashes there and
 * the database is reopened on the same bytes (open runs recovery). The
 * visible table must equal the uninterrupted run's state after the
 * acknowledged mutations, or after those plus the one in flight — never a
 * partial or doubled effect — and no mutation document may be left behind.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open } from '../../src/db/database.js';
import type { Database } from '../../src/db/database.js';
import { isFloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { listKeys } from '../../src/store/list.js';
import type { Table } from '../../src/table/table.js';
import { ulid } from 'ulid';

const schema = { k: { type: 'int64', nullable: false }, v: 'utf8', n: { type: 'int64', nullable: false } } as const;

async function seed(store: MemoryStore, pk = true): Promise<void> {
  const db = await open(store);
  const t = await db.createTable('t', schema, pk ? { primaryKey: 'k' } : {});
  const rows: Row[] = [];
  for (let i = 0; i < 60; i++) rows.push({ k: BigInt(i), v: `r${i}`, n: BigInt(i % 6) });
  await t.append(rows.slice(0, 30));
  await t.append(rows.slice(30));
  await db.close();
}

function cloneStore(src: MemoryStore): Promise<MemoryStore> {
  return (async () => {
    const out = new MemoryStore();
    for (const k of await listKeys(src, '')) await out.put(k, (await src.get(k)).bytes);
    return out;
  })();
}

const ops: Array<(t: Table) => Promise<unknown>> = [
  (t) => t.updateWhere({ n: 2n }, { v: 'upd' }),
  (t) => t.deleteWhere({ n: 3n }),
  (t) => t.updateWhere({ n: 3n }, { v: 'never' }), // matches nothing after the delete
];

async function visible(store: MemoryStore): Promise<string> {
  const db = await open(store);
  const t = await db.table('t');
  const rows = await t.scan({ columns: ['k', 'v', 'n'] }).toArray();
  await db.close();
  const keys = rows.map((r) => String(r.k));
  assert.equal(new Set(keys).size, keys.length, 'a key is visible twice (applied twice?)');
  rows.sort((a, b) => Number((a.k as bigint) - (b.k as bigint)));
  return JSON.stringify(rows, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

async function run(base: MemoryStore, fp: Failpoints): Promise<{ store: MemoryStore; acked: number }> {
  const store = await cloneStore(base);
  let acked = 0;
  let db: Database | null = null;
  try {
    db = await open(new FaultyStore(store, fp), { failpoints: fp });
    const t = await db.table('t');
    for (const op of ops) {
      await op(t);
      acked++;
    }
    await db.close();
  } catch (err) {
    if (!isFloeError(err, 'INJECTED_CRASH')) throw err;
  }
  return { store, acked };
}

describe('mutations: crash at every failpoint, then reopen', () => {
  it('the visible table equals an uninterrupted prefix of the mutations; nothing lost or doubled', async () => {
    const base = new MemoryStore();
    await seed(base);
    // expected states after 0..n mutations
    const states: string[] = [await visible(await cloneStore(base))];
    for (let i = 1; i <= ops.length; i++) {
      const s = await cloneStore(base);
      const db = await open(s);
      const t = await db.table('t');
      for (const op of ops.slice(0, i)) await op(t);
      await db.close();
      states.push(await visible(s));
    }
    assert.notEqual(states[0], states[1]);
    assert.notEqual(states[1], states[2]);
    const clean = new Failpoints();
    await run(base, clean);
    const names = clean.seen().filter((n) => !/^store\.(get|head|list|getRange)/.test(n));
    for (const must of ['mutate.payload.put.before', 'mutate.payload.put.after', 'mutate.doc.create.before', 'mutate.doc.create.after', 'mutate.data.put.before', 'mutate.data.put.after', 'mutate.doc.appended.before', 'mutate.doc.appended.after', 'mutate.bitmap.put.before', 'mutate.bitmap.put.after', 'mutate.publish.before', 'catalog.cas.before', 'mutate.publish.after', 'mutate.doc.complete.before', 'mutate.doc.complete.after', 'mutate.collect.before']) {
      assert.ok(names.includes(must), `failpoint ${must} not reached (seen: ${names.join(', ')})`);
    }
    let crashes = 0;
    for (const name of names) {
      const count = clean.count(name);
      for (const skip of new Set([0, Math.floor(count / 2), count - 1])) {
        const fp = new Failpoints().arm(name, { type: 'crash' }, { skip });
        const { store, acked } = await run(base, fp);
        if (!fp.crashed) continue;
        crashes++;
        const got = await visible(store);
        assert.ok(got === states[acked] || got === states[acked + 1], `${name}#${skip}: visible state matches neither ${acked} nor ${acked + 1} mutations\n${got}`);
        const left = await listKeys(store, 'mutations/');
        // a payload whose intent never got written is young garbage (collected after ORPHAN_PAYLOAD_GRACE_MS)
        assert.deepEqual(left.filter((k) => k.endsWith('.json')), [], `${name}#${skip}: mutation documents left behind`);
        for (const k of left) assert.ok(!left.includes(k.replace(/\.arrow$/, '.json')), `${name}#${skip}: ${k}`);
      }
    }
    assert.ok(crashes >= names.length - 2, `crashed ${crashes} times over ${names.length} failpoints`);
  });

  it('a replayed append phase publishes the data file under its fixed key, byte-identical', async () => {
    const base = new MemoryStore();
    await seed(base);
    const fp = new Failpoints().arm('mutate.doc.appended.before', { type: 'crash' });
    const store = await cloneStore(base);
    const db = await open(new FaultyStore(store, fp), { failpoints: fp });
    await assert.rejects((await db.table('t')).updateWhere({ n: 1n }, { v: 'u' }), (e) => isFloeError(e, 'INJECTED_CRASH'));
    const before = new Map<string, Uint8Array>();
    for (const k of (await listKeys(store, 'tables/')).filter((x) => x.endsWith('.parquet'))) before.set(k, (await store.get(k)).bytes);
    assert.equal(before.size, 3, 'two seed files and the update file were written before the crash');
    const db2 = await open(store); // recovery resumes from `intent`
    const t = await db2.table('t');
    const files = await t.dataFiles();
    assert.equal((await t.scan({ where: { v: 'u' } }).toArray()).length, 10);
    await db2.close();
    assert.equal(files.length, 3);
    for (const f of files) {
      assert.ok(before.has(f.key), `published ${f.key} was not the file written before the crash`);
      assert.deepEqual((await store.get(f.key)).bytes, before.get(f.key), `data file ${f.key} changed on replay`);
    }
  });

  it('an orphan payload (crash before the intent) is collected only after its grace period', async () => {
    const base = new MemoryStore();
    await seed(base);
    const fp = new Failpoints().arm('mutate.doc.create.before', { type: 'crash' });
    const db = await open(new FaultyStore(base, fp), { failpoints: fp });
    await assert.rejects((await db.table('t')).updateWhere({ n: 1n }, { v: 'u' }), (e) => isFloeError(e, 'INJECTED_CRASH'));
    const left = await listKeys(base, 'mutations/');
    assert.equal(left.length, 1);
    assert.ok(left[0]!.endsWith('.arrow'));
    const db2 = await open(base);
    assert.deepEqual(await listKeys(base, 'mutations/'), left, 'a young payload is kept (its intent may be on the way)');
    await db2.close();
    // age it: copy under an id from two hours ago
    const old = `mutations/${ulid(Date.now() - 2 * 3600_000)}.arrow`;
    await base.put(old, (await base.get(left[0]!)).bytes);
    const db3 = await open(base);
    assert.deepEqual(await listKeys(base, 'mutations/'), left);
    await db3.close();
  });
});

describe('mutations: two processes recovering at once', () => {
  for (const at of ['mutate.doc.create.after', 'mutate.doc.appended.after', 'mutate.publish.after']) {
    it(`both drive the mutation left at ${at}; it is applied exactly once`, async () => {
      const base = new MemoryStore();
      await seed(base);
      const want = await (async () => {
        const s = await cloneStore(base);
        const db = await open(s);
        await (await db.table('t')).updateWhere({ n: 2n }, { v: 'upd' });
        await db.close();
        return visible(s);
      })();
      const a = await open(base, { logWriter: false });
      const b = await open(base, { logWriter: false });
      const fp = new Failpoints().arm(at, { type: 'crash' });
      const crashed = await open(new FaultyStore(base, fp), { failpoints: fp, logWriter: false });
      await assert.rejects((await crashed.table('t')).updateWhere({ n: 2n }, { v: 'upd' }), (e) => isFloeError(e, 'INJECTED_CRASH'));
      const [ra, rb] = await Promise.all([a.recoverMutations(), b.recoverMutations()]);
      assert.deepEqual([...ra.corrupt, ...rb.corrupt], []);
      await a.close();
      await b.close();
      assert.equal(await visible(base), want);
      assert.deepEqual((await listKeys(base, 'mutations/')).filter((k) => k.endsWith('.json')), []);
    });
  }
});

describe('mutations: corruption is detected, never applied', () => {
  async function intentOnly(): Promise<{ store: MemoryStore; before: string; id: string }> {
    const base = new MemoryStore();
    await seed(base);
    const before = await visible(await cloneStore(base));
    const store = await cloneStore(base);
    const fp = new Failpoints().arm('mutate.doc.create.after', { type: 'crash' });
    const db = await open(new FaultyStore(store, fp), { failpoints: fp });
    await assert.rejects((await db.table('t')).updateWhere({ n: 1n }, { v: 'bad' }), (e) => isFloeError(e, 'INJECTED_CRASH'));
    const docs = (await listKeys(store, 'mutations/')).filter((k) => k.endsWith('.json'));
    assert.equal(docs.length, 1);
    return { store, before, id: docs[0]!.slice('mutations/'.length, -5) };
  }

  const cases: Array<[string, (s: MemoryStore, id: string) => Promise<void>]> = [
    ['payload hash mismatch', async (s, id) => {
      const b = (await s.get(`mutations/${id}.arrow`)).bytes.slice();
      b[b.length - 20] = b[b.length - 20]! ^ 0xff;
      await s.put(`mutations/${id}.arrow`, b);
    }],
    ['missing payload', async (s, id) => s.delete(`mutations/${id}.arrow`)],
    ['torn state document', async (s, id) => {
      const b = (await s.get(`mutations/${id}.json`)).bytes;
      await s.put(`mutations/${id}.json`, b.slice(0, Math.floor(b.length / 2)));
    }],
  ];
  for (const [name, damage] of cases) {
    it(`${name}: CORRUPT, table unchanged, mutation kept for inspection`, async () => {
      const { store, before, id } = await intentOnly();
      await damage(store, id);
      const db = await open(store); // opening must not be blocked by one damaged mutation
      const r = await db.recoverMutations();
      assert.equal(r.corrupt.length, 1);
      assert.equal(r.corrupt[0]!.id, id);
      assert.equal(r.corrupt[0]!.error.code, 'CORRUPT');
      await db.close();
      assert.equal(await visible(store), before);
      assert.ok((await listKeys(store, 'mutations/')).some((k) => k.includes(id)));
    });
  }
});

describe('mutations: bad input fails before anything is written', () => {
  const bad: Array<[string, (t: Table) => Promise<unknown>, string]> = [
    ['unknown column in where', (t) => t.deleteWhere({ nope: 1n }), 'INVALID_ARGUMENT'],
    ['unknown column in where (update)', (t) => t.updateWhere({ nope: 1n }, { v: 'x' }), 'INVALID_ARGUMENT'],
    ['unknown column in set', (t) => t.updateWhere({ n: 1n }, { nope: 'x' }), 'INVALID_ARGUMENT'],
    ['system column in set', (t) => t.updateWhere({ n: 1n }, { _id: 5n }), 'INVALID_ARGUMENT'],
    ['type mismatch in set', (t) => t.updateWhere({ n: 1n }, { v: 12 }), 'SCHEMA_MISMATCH'],
    ['null into a non-nullable column', (t) => t.updateWhere({ n: 1n }, { n: null }), 'SCHEMA_MISMATCH'],
    ['two updated rows share a key', (t) => t.updateWhere({ n: 1n }, { k: 1000n }), 'INVALID_ARGUMENT'],
    ['updated key collides with an untouched row', (t) => t.updateWhere({ k: 7n }, { k: 8n }), 'INVALID_ARGUMENT'],
    ['over the target cap', (t) => t.deleteWhere({ n: 1n }, { maxTargets: 3 }), 'LIMIT_EXCEEDED'],
    ['empty set', (t) => t.updateWhere({ n: 1n }, {}), 'INVALID_ARGUMENT'],
  ];
  for (const [name, op, code] of bad) {
    it(`${name} -> ${code}`, async () => {
      const store = new MemoryStore();
      await seed(store);
      const db = await open(store);
      const t = await db.table('t');
      await t.upsert({ k: 900n, v: 'in the memtable', n: 0n }); // a flush would write a data file
      const keysBefore = await listKeys(store, '');
      await assert.rejects(op(t), (e) => isFloeError(e, code as 'INVALID_ARGUMENT'));
      assert.deepEqual(await listKeys(store, ''), keysBefore, 'nothing was written');
      await db.close();
    });
  }

  it('a key-changing update that keeps keys unique is applied', async () => {
    const store = new MemoryStore();
    await seed(store);
    const db = await open(store);
    const t = await db.table('t');
    const r = await t.updateWhere({ k: 7n }, { k: 700n });
    assert.equal(r.applied, 1);
    assert.equal(await t.get(7n), null);
    assert.deepEqual(await t.get(700n), { k: 700n, v: 'r7', n: 1n });
    await db.close();
  });

  it('deleteWhere targets rows still in the memtable (flushes first)', async () => {
    const store = new MemoryStore();
    await seed(store);
    const db = await open(store);
    const t = await db.table('t');
    await t.upsert({ k: 500n, v: 'mem', n: 5n });
    const r = await t.deleteWhere({ v: 'mem' });
    assert.equal(r.applied, 1);
    assert.equal(await t.get(500n), null);
    await db.close();
  });
});
