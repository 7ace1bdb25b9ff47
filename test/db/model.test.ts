/**
 * Model-based tests: random sequences of upsert, delete, append, flush,
 * close/reopen and crash against a table and an in-memory model; every read
 * must equal the model. Runs on memory and on a local directory (quick
 * defaults; FLOE_MODEL_RUNS scales the number of sequences).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Database } from '../../src/db/database.js';
import { open } from '../../src/db/database.js';
import type { Row } from '../../src/format/logrecord.js';
import { LocalStore } from '../../src/store/local.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { ObjectStore } from '../../src/store/types.js';

const RUNS = Number(process.env.FLOE_MODEL_RUNS ?? 12);

type Op =
  | { kind: 'upsert'; rows: Array<[number, number]> }
  | { kind: 'delete'; keys: number[] }
  | { kind: 'append'; rows: Array<[number, number]>; perFile: number }
  | { kind: 'flush' }
  | { kind: 'reopen' }
  | { kind: 'crash' }
  | { kind: 'check'; key: number };

const key = fc.integer({ min: 0, max: 40 });
const val = fc.integer({ min: -1000, max: 1000 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('upsert' as const), rows: fc.array(fc.tuple(key, val), { minLength: 1, maxLength: 5 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), keys: fc.array(key, { minLength: 1, maxLength: 4 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      rows: fc.array(fc.tuple(key, val), { minLength: 1, maxLength: 12 }),
      perFile: fc.integer({ min: 1, max: 8 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'crash' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('check' as const), key }) },
);

const schema = { k: { type: 'utf8', nullable: false }, v: 'int64', note: 'utf8' } as const;
const k = (n: number): string => `key-${String(n).padStart(3, '0')}`;
const rowOf = ([kk, v]: [number, number]): Row => ({ k: k(kk), v: BigInt(v), note: v % 3 === 0 ? null : `n${v}` });

async function runSequence(makeStore: () => Promise<ObjectStore>, ops: Op[]): Promise<void> {
  const store = await makeStore();
  const model = new Map<string, Row>();
  let db: Database = await open(store, { memtableBytes: 4096 });
  let t = await db.createTable('t', schema, { primaryKey: 'k' });
  const checkAll = async (): Promise<void> => {
    const rows = await t.scan().toArray();
    const got = new Map(rows.map((r) => [r.k as string, r]));
    assert.equal(got.size, rows.length, 'scan returned a key twice');
    assert.deepEqual(new Map([...got].sort()), new Map([...model].sort()));
    assert.equal(await t.count(), model.size);
  };
  for (const op of ops) {
    switch (op.kind) {
      case 'upsert': {
        await t.upsert(op.rows.map(rowOf));
        for (const r of op.rows.map(rowOf)) model.set(r.k as string, r);
        break;
      }
      case 'delete':
        await t.delete(op.keys.map(k));
        for (const x of op.keys) model.delete(k(x));
        break;
      case 'append':
        await t.append(op.rows.map(rowOf), { rowsPerFile: op.perFile });
        for (const r of op.rows.map(rowOf)) model.set(r.k as string, r);
        break;
      case 'flush':
        await db.flush();
        break;
      case 'reopen':
        await db.close();
        db = await open(store, { memtableBytes: 4096 });
        t = await db.table('t');
        break;
      case 'crash':
        // Abandon the instance without closing: a new writer fences it.
        db = await open(store, { memtableBytes: 4096 });
        t = await db.table('t');
        break;
      case 'check':
        assert.deepEqual(await t.get(k(op.key)), model.get(k(op.key)) ?? null);
        break;
    }
  }
  await checkAll();
  await db.close();
  const again = await open(store, { readOnly: true });
  t = await again.table('t');
  await checkAll();
  await again.close();
  await store.close();
}

describe('model-based: random operation sequences equal an in-memory model', () => {
  it('on memory', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
        await runSequence(async () => new MemoryStore(), ops);
      }),
      { numRuns: RUNS },
    );
  });

  it('on a local directory', async () => {
    const dirs: string[] = [];
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
          const dir = await mkdtemp(path.join(tmpdir(), 'floe-model-'));
          dirs.push(dir);
          await runSequence(() => LocalStore.open(dir), ops);
        }),
        { numRuns: Math.max(3, Math.floor(RUNS / 3)) },
      );
    } finally {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    }
  });
});

describe('model-based on S3 (shorter run)', () => {
  it('on the Ceph RGW S3 gateway', async (t) => {
    const endpoint = process.env.FLOE_S3_ENDPOINT;
    if (!endpoint) {
      if (process.env.FLOE_SKIP_S3 === '1') {
        t.diagnostic('WARNING: FLOE_SKIP_S3=1: the S3 model run is skipped');
        return;
      }
      assert.fail('FLOE_S3_ENDPOINT is not set: run the tests through scripts/test.sh (npm test), which starts the local S3 server');
    }
    const bucket = process.env.FLOE_S3_BUCKET ?? 'floe-test';
    const { openStore } = await import('../../src/store/uri.js');
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 15 }), async (ops) => {
        const prefix = `model/${Date.now().toString(36)}-${process.pid}-${n++}`;
        await runSequence(() => openStore(`s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1`), ops);
      }),
      { numRuns: Math.max(2, Math.floor(RUNS / 4)) },
    );
  });
});
