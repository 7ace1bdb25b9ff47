/**
 * Mutations that do not commute, interleaved deterministically in one
 * process: one mutation resolves its targets, then waits (a failpoint hangs
 * right after its intent is durable) while another commits over the same
 * rows; then it goes on. The final table must equal one serial order of the
 * two — the late one aborts and starts over on a fresh snapshot, so it is
 * always "the other first". Without the abort, a delete resolved before an
 * update lets the update's new images survive it (a state no serial order
 * gives), and two updates of one row leave the first committer's values.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open } from '../../src/db/database.js';
import type { Database } from '../../src/db/database.js';
import { isFloeError } from '../../src/errors.js';
import type { Row } from '../../src/format/logrecord.js';
import { Failpoints } from '../../src/store/failpoints.js';
import { FaultyStore } from '../../src/store/faults.js';
import { listKeys } from '../../src/store/list.js';
import { MemoryStore } from '../../src/store/memory.js';
import { where } from '../../src/table/predicate.js';
import type { Table } from '../../src/table/table.js';

const schema = { k: { type: 'int64', nullable: false }, g: { type: 'int64', nullable: false }, v: { type: 'int64', nullable: false } } as const;
const N = 40;

type Model = Map<bigint, { g: bigint; v: bigint }>;

function seedModel(): Model {
  const m: Model = new Map();
  for (let i = 0; i < N; i++) m.set(BigInt(i), { g: BigInt(i % 4), v: 0n });
  return m;
}

async function setup(fp: Failpoints, pk = true): Promise<{ inner: MemoryStore; db: Database; t: Table }> {
  const inner = new MemoryStore();
  const db = await open(new FaultyStore(inner, fp), { failpoints: fp });
  const t = await db.createTable('t', schema, pk ? { primaryKey: 'k' } : {});
  const rows: Row[] = [...seedModel()].map(([k, r]) => ({ k, ...r }));
  await t.append(rows.slice(0, N / 2));
  await t.append(rows.slice(N / 2));
  return { inner, db, t };
}

async function tableState(t: Table): Promise<string> {
  const rows = await t.scan({ columns: ['k', 'g', 'v'] }).toArray();
  const keys = rows.map((r) => String(r.k));
  assert.equal(new Set(keys).size, keys.length, `a key is visible twice: ${keys.join(',')}`);
  return rows
    .map((r) => `${String(r.k)}:${String(r.g)}:${String(r.v)}`)
    .sort()
    .join(' ');
}

function modelState(m: Model): string {
  return [...m]
    .map(([k, r]) => `${k}:${r.g}:${r.v}`)
    .sort()
    .join(' ');
}

/** Start `late` until it has made its intent durable, let `early` commit, then let `late` go on. */
async function interleave(fp: Failpoints, late: () => Promise<unknown>, early: () => Promise<unknown>): Promise<unknown> {
  fp.arm('mutate.doc.create.after', { type: 'hang' }, { times: 1 });
  const p = late();
  while (fp.count('mutate.doc.create.after') < 1) await new Promise((r) => setImmediate(r));
  await early();
  fp.disarm('mutate.doc.create.after');
  return p;
}

// The operations, on the model and on the table.
const updG01 = { where: where.in('g', [0n, 1n]), set: { v: 1n } };
const updG12 = { where: where.in('g', [1n, 2n]), set: { v: 2n } };
const delG12orV1 = where.or(where.in('g', [1n, 2n]), where.eq('v', 1n));
function modelUpdate(m: Model, gs: bigint[], v: bigint): void {
  for (const r of m.values()) if (gs.includes(r.g)) r.v = v;
}
function modelDelete(m: Model, pred: (r: { g: bigint; v: bigint }) => boolean): void {
  for (const [k, r] of m) if (pred(r)) m.delete(k);
}
const delPred = (r: { g: bigint; v: bigint }): boolean => r.g === 1n || r.g === 2n || r.v === 1n;

describe('overlapping mutations serialize', () => {
  for (const pk of [true, false]) {
    const kind = pk ? 'keyed' : 'keyless';

    it(`${kind}: a delete resolved before an update that commits first is re-run after it`, async () => {
      const fp = new Failpoints();
      const { inner, db, t } = await setup(fp, pk);
      const r = (await interleave(
        fp,
        () => t.deleteWhere(delG12orV1),
        () => t.updateWhere(updG01.where, updG01.set),
      )) as { applied: number };
      const m = seedModel();
      modelUpdate(m, [0n, 1n], 1n); // update first,
      modelDelete(m, delPred); // then the delete, on the updated rows
      assert.equal(await tableState(t), modelState(m));
      assert.equal(r.applied, 30, 'the re-run delete saw the updated rows');
      assert.deepEqual(await listKeys(inner, 'mutations/'), [], 'the aborted attempt left nothing behind');
      await db.close();
    });

    it(`${kind}: an update resolved before a delete that commits first is re-run after it`, async () => {
      const fp = new Failpoints();
      const { db, t } = await setup(fp, pk);
      await interleave(
        fp,
        () => t.updateWhere(updG01.where, updG01.set),
        () => t.deleteWhere(delG12orV1),
      );
      const m = seedModel();
      modelDelete(m, delPred);
      modelUpdate(m, [0n, 1n], 1n);
      assert.equal(await tableState(t), modelState(m));
      await db.close();
    });

    it(`${kind}: two updates of the same rows with different values end as one serial order`, async () => {
      const fp = new Failpoints();
      const { db, t } = await setup(fp, pk);
      await interleave(
        fp,
        () => t.updateWhere(updG01.where, updG01.set),
        () => t.updateWhere(updG12.where, updG12.set),
      );
      const m = seedModel();
      modelUpdate(m, [1n, 2n], 2n);
      modelUpdate(m, [0n, 1n], 1n);
      assert.equal(await tableState(t), modelState(m));
      await db.close();
    });
  }

  it('disjoint mutations do not abort each other', async () => {
    const fp = new Failpoints();
    const { db, t } = await setup(fp);
    await interleave(
      fp,
      () => t.updateWhere(where.eq('g', 0n), { v: 5n }),
      () => t.deleteWhere(where.eq('g', 3n)),
    );
    assert.equal(fp.count('mutate.doc.aborted.before'), 0, 'no abort');
    const m = seedModel();
    modelUpdate(m, [0n], 5n);
    modelDelete(m, (r) => r.g === 3n);
    assert.equal(await tableState(t), modelState(m));
    await db.close();
  });

  it('an update that sets a primary key to one a concurrent append added starts over and then refuses', async () => {
    const fp = new Failpoints();
    const { db, t } = await setup(fp);
    const late = interleave(
      fp,
      () => t.updateWhere(where.eq('k', 5n), { k: 100n }),
      () => t.append([{ k: 100n, g: 9n, v: 9n }]),
    );
    await assert.rejects(late, (err) => isFloeError(err, 'INVALID_ARGUMENT') && /already has/.test(err.message));
    assert.ok(fp.count('mutate.doc.aborted.before') >= 1, 'the first attempt was aborted at publish');
    const rows = await t.scan({ where: where.in('k', [5n, 100n]) }).toArray();
    assert.deepEqual(
      rows.map((r) => `${String(r.k)}:${String(r.v)}`).sort(),
      ['100:9', '5:0'],
    );
    await db.close();
  });

  it('a crash right after the abort is recorded: reopening collects the mutation and changes nothing', async () => {
    const fp = new Failpoints();
    const { inner, db, t } = await setup(fp);
    fp.arm('mutate.doc.aborted.after', { type: 'crash' }, { times: 1 });
    await assert.rejects(
      interleave(
        fp,
        () => t.deleteWhere(delG12orV1),
        () => t.updateWhere(updG01.where, updG01.set),
      ),
      (err) => isFloeError(err, 'INJECTED_CRASH'),
    );
    assert.equal((await listKeys(inner, 'mutations/')).filter((k) => k.endsWith('.json')).length, 1, 'the aborted document is still there');
    const again = await open(inner);
    const r = await again.recoverMutations();
    assert.equal(r.resumed.length, 0, 'open already collected it');
    assert.deepEqual(await listKeys(inner, 'mutations/'), []);
    const m = seedModel();
    modelUpdate(m, [0n, 1n], 1n);
    assert.equal(await tableState(await again.table('t')), modelState(m), 'only the update is applied');
    await again.close();
    void db;
  });
});
