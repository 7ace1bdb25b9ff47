/**
 * Several processes mutate one table at once — two overlapping deleters,
 * two overlapping updaters (same constant per group), an appender and a
 * compactor — on a local directory and on S3. The operations commute, so
 * every serial order of the acknowledged operations gives one final state;
 * the table must end in exactly that state, with no mutation left pending.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { open } from '../../src/db/database.js';
import type { Row } from '../../src/format/logrecord.js';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'mutator.js');
const schema = { k: { type: 'int64', nullable: false }, g: { type: 'int64', nullable: false }, v: { type: 'int64', nullable: false } } as const;

function run(args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim().split('\n')) : reject(new Error(`mutator ${args[1]} exited ${code}: ${err}`))));
  });
}

async function scenario(uri: string): Promise<void> {
  const db = await open(uri);
  const t = await db.createTable('t', schema, { primaryKey: 'k' });
  const model = new Map<bigint, Row>();
  for (let f = 0; f < 8; f++) {
    const rows = Array.from({ length: 50 }, (_, i) => {
      const k = BigInt(f * 50 + i);
      return { k, g: k % 20n, v: 0n };
    });
    await t.append(rows);
    for (const r of rows) model.set(r.k, r);
  }
  await db.close();
  const outs = await Promise.all([
    run([uri, 'delete', '0', '1', '2', '3']),
    run([uri, 'delete', '2', '3', '4', '5']),
    run([uri, 'update', '10', '11', '12', '13']),
    run([uri, 'update', '12', '13', '14', '15']),
    run([uri, 'append', '0', '1', '2', '3', '4', '5']),
    run([uri, 'compact', '4']),
  ]);
  // every operation was acknowledged; apply them to the model (they commute)
  for (const line of outs.flat()) {
    const [, op, arg] = line.split(' ');
    const n = Number(arg);
    if (op === 'delete') for (const [k, r] of model) if (r.g === BigInt(n)) model.delete(k);
    if (op === 'update') for (const [k, r] of model) if (r.g === BigInt(n)) model.set(k, { ...r, v: BigInt(1000 + n) });
    if (op === 'append') for (let i = 0; i < 20; i++) model.set(BigInt(10_000 + n * 100 + i), { k: BigInt(10_000 + n * 100 + i), g: BigInt(30 + n), v: 7n });
  }
  assert.equal(outs.flat().filter((l) => /^ok (delete|update|append) /.test(l)).length, 4 + 4 + 4 + 4 + 6);
  const check = await open(uri);
  const r = await check.recoverMutations();
  assert.deepEqual(r.corrupt, []);
  const tt = await check.table('t');
  const rows = await tt.scan().toArray();
  rows.sort((a, b) => Number((a.k as bigint) - (b.k as bigint)));
  const want = [...model.values()].sort((a, b) => Number((a.k as bigint) - (b.k as bigint)));
  assert.equal(rows.length, want.length);
  assert.deepEqual(rows, want);
  assert.deepEqual((await check.store.list('mutations/')).keys.filter((k) => k.endsWith('.json')), []);
  await check.close();
}

type Model = Map<bigint, { g: bigint; v: bigint }>;

/** Apply a script step (see the fixture's `script` role) to the model. */
function applyStep(m: Model, step: string): void {
  const u = /^u(\d+)\.(\d+)=(\d+)$/.exec(step);
  const d = /^d(\d+)$/.exec(step);
  if (u) {
    for (const r of m.values()) if (r.g === BigInt(u[1]!) || r.g === BigInt(u[2]!)) r.v = BigInt(u[3]!);
  } else if (d) {
    for (const [k, r] of m) if (r.v === BigInt(d[1]!) || r.g === BigInt(d[1]!)) m.delete(k);
  } else {
    throw new Error(`bad step ${step}`);
  }
}

/** Every interleaving of the scripts that keeps each script's own order. */
function* interleavings(scripts: readonly (readonly string[])[]): Generator<string[]> {
  const pos = scripts.map(() => 0);
  const out: string[] = [];
  function* rec(): Generator<string[]> {
    if (out.length === scripts.reduce((n, s) => n + s.length, 0)) {
      yield [...out];
      return;
    }
    for (let i = 0; i < scripts.length; i++) {
      if (pos[i]! >= scripts[i]!.length) continue;
      out.push(scripts[i]![pos[i]!]!);
      pos[i]!++;
      yield* rec();
      pos[i]!--;
      out.pop();
    }
  }
  yield* rec();
}

const stateOf = (rows: Iterable<[bigint, { g: bigint; v: bigint }]>): string =>
  [...rows]
    .map(([k, r]) => `${k}:${r.g}:${r.v}`)
    .sort()
    .join(' ');

/** Processes running mutations that do not commute; the final state must be one of the serial orders. */
async function nonCommuting(uri: string): Promise<void> {
  const db = await open(uri);
  const t = await db.createTable('t', schema, { primaryKey: 'k' });
  const seed: Model = new Map();
  for (let f = 0; f < 4; f++) {
    const rows = Array.from({ length: 30 }, (_, i) => ({ k: BigInt(f * 30 + i), g: BigInt((f * 30 + i) % 6), v: 0n }));
    await t.append(rows);
    for (const r of rows) seed.set(r.k, { g: r.g, v: r.v });
  }
  await db.close();
  const scripts = [
    ['u0.1=1', 'd2'],
    ['d1', 'u3.4=2'],
    ['u1.3=3', 'd3'],
  ];
  const outs = await Promise.all(scripts.map((s) => run([uri, 'script', ...s])));
  assert.equal(outs.flat().length, 6, 'every step acknowledged');
  const allowed = new Set<string>();
  for (const order of interleavings(scripts)) {
    const m: Model = new Map([...seed].map(([k, r]) => [k, { ...r }]));
    for (const step of order) applyStep(m, step);
    allowed.add(stateOf(m));
  }
  const check = await open(uri);
  const rows = await (await check.table('t')).scan().toArray();
  const got = stateOf(rows.map((r) => [r.k as bigint, { g: r.g as bigint, v: r.v as bigint }]));
  assert.equal(new Set(rows.map((r) => String(r.k))).size, rows.length, 'a key is visible twice');
  assert.ok(allowed.has(got), `the final state is no serial order of the acknowledged steps (${allowed.size} allowed): ${got}`);
  assert.deepEqual((await check.store.list('mutations/')).keys, []);
  await check.close();
}

describe('concurrent mutations from several processes', () => {
  it('local directory: final state equals the serial order of the acknowledged operations', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-mut-'));
    try {
      await scenario(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const endpoint = process.env.FLOE_S3_ENDPOINT;
  it('S3: final state equals the serial order of the acknowledged operations', { skip: process.env.FLOE_SKIP_S3 === '1' ? 'FLOE_SKIP_S3=1' : false }, async () => {
    assert.ok(endpoint, 'FLOE_S3_ENDPOINT is not set: run via scripts/test.sh, or set FLOE_SKIP_S3=1 to skip deliberately');
    const bucket = process.env.FLOE_S3_BUCKET ?? 'floe-test';
    await scenario(`s3://${bucket}/mut-${randomBytes(6).toString('hex')}?endpoint=${endpoint}&region=us-east-1`);
  });

  it('local directory: mutations that do not commute end in one serial order', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-mut-'));
    try {
      await nonCommuting(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('S3: mutations that do not commute end in one serial order', { skip: process.env.FLOE_SKIP_S3 === '1' ? 'FLOE_SKIP_S3=1' : false }, async () => {
    assert.ok(endpoint, 'FLOE_S3_ENDPOINT is not set: run via scripts/test.sh, or set FLOE_SKIP_S3=1 to skip deliberately');
    const bucket = process.env.FLOE_S3_BUCKET ?? 'floe-test';
    await nonCommuting(`s3://${bucket}/mut-nc-${randomBytes(6).toString('hex')}?endpoint=${endpoint}&region=us-east-1`);
  });
});
