/**
 * Crash at every failpoint a flush, an append or a point write passes, then
 * reopen: the visible rows equal the uninterrupted run's (every acknowledged
 * write present; the one write in flight at the crash either fully there or
 * fully absent), and a later GC-free reopen still works.
 *
 * The scenario runs once cleanly to learn the failpoint names it reaches
 * (engine failpoints and the store decorator's `store.<op>.before/after`),
 * then once per name with a crash armed there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open } from '../../src/db/database.js';
import { isFloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';

const schema = { k: { type: 'utf8', nullable: false }, v: 'int64' } as const;
const row = (k: string, v: number): Row => ({ k, v: BigInt(v) });

type Step = { name: string; run: (t: Awaited<ReturnType<Awaited<ReturnType<typeof open>>['table']>>, db: Awaited<ReturnType<typeof open>>) => Promise<void>; apply: (m: Map<string, Row>) => void };

const steps: Step[] = [
  { name: 'upsert a,b', run: async (t) => void (await t.upsert([row('a', 1), row('b', 2)])), apply: (m) => (m.set('a', row('a', 1)), m.set('b', row('b', 2))) },
  { name: 'flush', run: async (_t, db) => db.flush(), apply: () => undefined },
  { name: 'upsert a', run: async (t) => void (await t.upsert(row('a', 10))), apply: (m) => void m.set('a', row('a', 10)) },
  { name: 'delete b', run: async (t) => void (await t.delete('b')), apply: (m) => void m.delete('b') },
  {
    name: 'append c,d,a',
    run: async (t) => void (await t.append([row('c', 3), row('d', 4), row('a', 11)], { rowsPerFile: 2 })),
    apply: (m) => (m.set('c', row('c', 3)), m.set('d', row('d', 4)), m.set('a', row('a', 11))),
  },
  { name: 'flush', run: async (_t, db) => db.flush(), apply: () => undefined },
  { name: 'upsert e', run: async (t) => void (await t.upsert(row('e', 5))), apply: (m) => void m.set('e', row('e', 5)) },
  { name: 'close', run: async (_t, db) => db.close(), apply: () => undefined },
];

async function scenario(fp: Failpoints, inner: MemoryStore): Promise<{ acked: Map<string, Row>; inflight: Map<string, Row> | null }> {
  const store = new FaultyStore(inner, fp);
  const acked = new Map<string, Row>();
  let inflight: Map<string, Row> | null = null;
  try {
    const db = await open(store, { failpoints: fp });
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    for (const s of steps) {
      inflight = new Map(acked);
      s.apply(inflight);
      await s.run(t, db);
      s.apply(acked);
      inflight = null;
    }
  } catch (err) {
    if (!isFloeError(err, 'INJECTED_CRASH')) throw err;
  }
  return { acked, inflight };
}

async function visible(inner: MemoryStore): Promise<Map<string, Row> | null> {
  const db = await open(inner);
  const names = db.listTables();
  if (names.length === 0) {
    await db.close();
    return null;
  }
  const t = await db.table('t');
  const rows = await t.scan().toArray();
  await db.close();
  return new Map(rows.map((r) => [r.k as string, r]));
}

const sorted = (m: Map<string, Row>): Array<[string, Row]> => [...m].sort(([a], [b]) => (a < b ? -1 : 1));

describe('crash at every failpoint, then reopen', () => {
  it('every acknowledged write survives, nothing half-applied appears', async () => {
    const clean = new Failpoints();
    const base = new MemoryStore();
    await scenario(clean, base);
    const names = clean.seen().filter((n) => !n.startsWith('store.get') && !n.startsWith('store.head') && !n.startsWith('store.list'));
    assert.ok(names.includes('flush.data.put.after') && names.includes('catalog.cas.before') && names.includes('flush.truncate.before'), names.join(','));
    let crashes = 0;
    for (const name of names) {
      const count = clean.count(name);
      // crash at the first, a middle and the last time the failpoint is reached
      for (const skip of new Set([0, Math.floor(count / 2), count - 1])) {
        const fp = new Failpoints().arm(name, { type: 'crash' }, { skip });
        const inner = new MemoryStore();
        const { acked, inflight } = await scenario(fp, inner);
        if (!fp.crashed) continue;
        crashes++;
        const got = await visible(inner);
        if (got === null) {
          assert.equal(acked.size, 0, `${name}#${skip}: table lost`);
          continue;
        }
        const ok =
          JSON.stringify(sorted(got), bigint) === JSON.stringify(sorted(acked), bigint) ||
          (inflight !== null && JSON.stringify(sorted(got), bigint) === JSON.stringify(sorted(inflight), bigint));
        assert.ok(ok, `${name}#${skip}: visible ${JSON.stringify(sorted(got), bigint)} vs acked ${JSON.stringify(sorted(acked), bigint)}`);
        // and the database keeps working after recovery
        const db = await open(inner);
        const t = await db.table('t');
        await t.upsert(row('z', 26));
        await db.flush();
        assert.deepEqual(await t.get('z'), row('z', 26));
        await db.close();
      }
    }
    assert.ok(crashes >= names.length, `crashed ${crashes} times over ${names.length} failpoints`);
  });
});

function bigint(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v;
}
