/**
 * LocalStore's prepared creates (src/store/local.ts, "Prepared creates"):
 * in a directory that keeps receiving new objects, staging directories are
 * made ahead in the background. These tests check that the path is really
 * taken (prepareStats), that objects made through it are exactly what the
 * store contract promises (whole, listed, create-only against racers), that
 * aged or vanished prepared directories are never published, that close()
 * and sweep() leave nothing behind, and that a writer SIGKILLed in the middle
 * of prepared creates loses no acknowledged object and shows no torn one
 * (FLOE_TORTURE_ROUNDS rounds, default 6).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isFloeError } from '../../src/errors.js';
import { listKeys } from '../../src/store/list.js';
import { LocalStore } from '../../src/store/local.js';
import type { LocalStoreOptions } from '../../src/store/local.js';

const roots: string[] = [];
after(async () => {
  for (const r of roots) await fs.rm(r, { recursive: true, force: true });
});

async function openStore(options: LocalStoreOptions = {}): Promise<LocalStore> {
  const r = await fs.mkdtemp(path.join(os.tmpdir(), 'floe-prep-'));
  roots.push(r);
  return LocalStore.open(r, { prepare: true, ...options });
}

const body = (n: number, size = 164): Uint8Array => {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (n * 31 + i) & 0xff;
  return b;
};

const seg = (n: number): string => `log/${n.toString(16).padStart(16, '0')}.seg`;

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      out.push(path.relative(dir, full));
      if (e.isDirectory()) await walk(full);
    }
  };
  await walk(dir);
  return out.sort();
}

const temps = async (dir: string): Promise<string[]> => (await tree(dir)).filter((p) => p.includes('.floe-t-'));

describe('LocalStore prepared creates', () => {
  test('a directory receiving object after object gets prepared creates; every object is whole and listed; close leaves nothing', async () => {
    const s = await openStore();
    for (let n = 1; n <= 40; n++) assert.ok((await s.putIfAbsent(seg(n), body(n, n * 7))).etag.startsWith('1-'));
    const st = s.prepareStats();
    // The first create in the directory makes its own; from the second on the
    // directory is hot and each create takes (or waits for) a prepared one.
    assert.ok(st.inlineCreates <= 2, JSON.stringify(st));
    assert.equal(st.preparedCreates + st.inlineCreates, 40);
    for (let n = 1; n <= 40; n++) assert.deepEqual((await s.get(seg(n))).bytes, body(n, n * 7));
    assert.deepEqual(await listKeys(s, ''), Array.from({ length: 40 }, (_, i) => seg(i + 1)));
    await s.close();
    assert.deepEqual(await temps(s.root), []);
    await s.close(); // idempotent
  });

  test('create-only holds with prepared directories in play: of 16 racers for one key exactly one wins', async () => {
    const s = await openStore();
    for (let n = 1; n <= 4; n++) await s.putIfAbsent(seg(n), body(n)); // make log/ hot
    for (let round = 0; round < 5; round++) {
      const key = seg(100 + round);
      const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => s.putIfAbsent(key, body(1000 * round + i))));
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, etag: r.value.etag }] : []));
      assert.equal(won.length, 1, `round ${round}: ${won.length} winners`);
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(isFloeError(r.reason, 'ALREADY_EXISTS'), String(r.reason));
      }
      assert.deepEqual(await s.get(key), { bytes: body(1000 * round + won[0]!.i), etag: won[0]!.etag });
    }
    // Distinct keys at once: all succeed, several through prepared directories.
    const keys = Array.from({ length: 24 }, (_, i) => seg(200 + i));
    await Promise.all(keys.map((k, i) => s.putIfAbsent(k, body(i))));
    for (const [i, k] of keys.entries()) assert.deepEqual((await s.get(k)).bytes, body(i));
    assert.ok(s.prepareStats().preparedCreates > 10, JSON.stringify(s.prepareStats()));
    assert.deepEqual((await s.list('log/')).keys.length, 4 + 5 + 24);
    await s.close();
    assert.deepEqual(await temps(s.root), []);
  });

  test('put of an absent key and large bodies (written off the event loop) go through prepared directories too', async () => {
    const s = await openStore();
    const big = body(7, 3 * 1024 * 1024 + 5);
    for (let n = 1; n <= 6; n++) await s.put(`d/k${n}`, n === 4 ? big : body(n));
    assert.ok(s.prepareStats().preparedCreates >= 4, JSON.stringify(s.prepareStats()));
    assert.deepEqual((await s.get('d/k4')).bytes, big);
    const e = await s.put('d/k4', body(44)); // an update: not a create
    assert.deepEqual(await s.get('d/k4'), { bytes: body(44), etag: e.etag });
    await s.close();
  });

  test('a prepared directory older than half the grace period is never published; the create makes its own', async () => {
    let now = 1_000_000;
    const s = await openStore({ clock: () => now, staleMs: 10_000 });
    for (let n = 1; n <= 4; n++) await s.putIfAbsent(seg(n), body(n));
    const before = s.prepareStats();
    // The clock is read when the create takes its prepared directory (in
    // the synchronous part of the call) and again right before the rename:
    // moving it in between ages the directory past half the grace period.
    const p = s.putIfAbsent(seg(5), body(5));
    now += 6_000;
    await p;
    const afterAged = s.prepareStats();
    assert.equal(afterAged.inlineCreates, before.inlineCreates + 1, JSON.stringify({ before, afterAged }));
    assert.equal(afterAged.preparedCreates, before.preparedCreates);
    assert.deepEqual((await s.get(seg(5))).bytes, body(5));
    // Ready ones aged past a quarter of the grace period are dropped, not used.
    now += 60_000;
    await s.putIfAbsent(seg(6), body(6));
    assert.equal(s.prepareStats().inlineCreates, afterAged.inlineCreates + 1);
    assert.deepEqual(await listKeys(s, 'log/'), [1, 2, 3, 4, 5, 6].map(seg));
    for (const t of await temps(s.root)) {
      const names = await fs.readdir(path.join(s.root, t));
      assert.ok(names.length <= 1, `${t}: ${names.join(',')}`);
    }
    await s.close();
    assert.deepEqual(await temps(s.root), []);
  });

  test('prepared directories removed by someone else: the create notices and makes its own', async () => {
    const s = await openStore();
    for (let n = 1; n <= 4; n++) await s.putIfAbsent(seg(n), body(n));
    // Take them all away, as a collector would (whole directories at once).
    let removed = 0;
    for (let attempt = 0; attempt < 200 && removed === 0; attempt++) {
      for (const t of await temps(s.root)) {
        await fs.rm(path.join(s.root, t), { recursive: true, force: true });
        removed++;
      }
      if (removed === 0) await new Promise((r) => setTimeout(r, 5)); // the background preparation is still running
    }
    assert.ok(removed > 0, 'a prepared directory appeared');
    const before = s.prepareStats();
    await s.putIfAbsent(seg(5), body(5));
    await s.putIfAbsent(seg(6), body(6));
    const st = s.prepareStats();
    assert.equal(st.preparedCreates + st.inlineCreates, before.preparedCreates + before.inlineCreates + 2);
    assert.deepEqual(await listKeys(s, 'log/'), [1, 2, 3, 4, 5, 6].map(seg));
    for (let n = 1; n <= 6; n++) assert.deepEqual((await s.get(seg(n))).bytes, body(n));
    await s.close();
  });

  test('sweep() gives up our own prepared directories first and reports only real leftovers', async () => {
    const s = await openStore();
    for (let n = 1; n <= 6; n++) await s.putIfAbsent(seg(n), body(n));
    await fs.mkdir(path.join(s.root, 'log', '.floe-t-00000000deadbeef'));
    const old = new Date(Date.now() - 60_000);
    await fs.utimes(path.join(s.root, 'log', '.floe-t-00000000deadbeef'), old, old);
    const report = await s.sweep();
    assert.equal(report.temps, 1);
    assert.deepEqual(await temps(s.root), []);
    // Still works afterwards, and prepares again.
    for (let n = 7; n <= 10; n++) await s.putIfAbsent(seg(n), body(n));
    assert.equal((await listKeys(s, 'log/')).length, 10);
    await s.close();
    assert.deepEqual(await temps(s.root), []);
  });

  test('deleting every key of the directory while prepared directories exist; creating again works', async () => {
    const s = await openStore();
    for (let n = 1; n <= 5; n++) await s.putIfAbsent(seg(n), body(n));
    for (let n = 1; n <= 5; n++) await s.delete(seg(n));
    assert.deepEqual(await listKeys(s, ''), []);
    for (let n = 6; n <= 9; n++) await s.putIfAbsent(seg(n), body(n));
    assert.deepEqual(await listKeys(s, ''), [6, 7, 8, 9].map(seg));
    await s.close();
    assert.deepEqual(await temps(s.root), []);
  });

  test('off when asked (prepare: false) or when the grace period is short; fsync: false still works', async () => {
    for (const options of [{ prepare: false }, { staleMs: 1_000 }]) {
      const s = await openStore(options);
      for (let n = 1; n <= 6; n++) await s.putIfAbsent(seg(n), body(n));
      assert.deepEqual(s.prepareStats(), { preparedCreates: 0, inlineCreates: 6, held: 0 }, JSON.stringify(options));
      assert.deepEqual(await temps(s.root), []);
      await s.close();
    }
    const s = await openStore({ fsync: false });
    for (let n = 1; n <= 6; n++) await s.putIfAbsent(seg(n), body(n));
    assert.ok(s.prepareStats().preparedCreates >= 4);
    for (let n = 1; n <= 6; n++) assert.deepEqual((await s.get(seg(n))).bytes, body(n));
    await s.close();
  });

  test('operations after close fail CLOSED and prepare nothing', async () => {
    const s = await openStore();
    for (let n = 1; n <= 3; n++) await s.putIfAbsent(seg(n), body(n));
    await s.close();
    await assert.rejects(s.putIfAbsent(seg(4), body(4)), (e: unknown) => isFloeError(e, 'CLOSED'));
    assert.deepEqual(await temps(s.root), []);
  });
});

// ---------------------------------------------------------------------------

const TORTURE_ROUNDS = Number(process.env.FLOE_TORTURE_ROUNDS ?? 6);
const fixture = (name: string): string => path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', name);

/** n from the bytes the fixture writes; null when torn or foreign. */
function parseObject(b: Uint8Array): number | null {
  const buf = Buffer.from(b);
  if (buf.length < 32) return null;
  const payload = buf.subarray(0, buf.length - 32);
  if (!createHash('sha256').update(payload).digest().equals(buf.subarray(buf.length - 32))) return null;
  const nl = payload.indexOf(10);
  return nl < 0 ? null : Number(payload.subarray(0, nl).toString('utf8'));
}

describe('LocalStore prepared creates: SIGKILL torture', () => {
  test(`a writer of new objects (4 at a time, one directory) killed at random moments (${TORTURE_ROUNDS} rounds): every ack present and whole, nothing torn, nothing else listed`, async () => {
    const s = await openStore();
    let expected: string[] = [];
    let start = 0;
    for (let round = 0; round < TORTURE_ROUNDS; round++) {
      const dir = `r${round % 2}`; // later rounds reuse a directory holding dead writers' prepared ones
      const child = spawn(process.execPath, [fixture('local-create-writer.js'), s.root, dir, '4', String(start)], { stdio: ['ignore', 'pipe', 'pipe'] });
      const lines: string[] = [];
      let partial = '';
      let err = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c: string) => (err += c));
      child.stdout.setEncoding('utf8');
      const killAfter = 5 + Math.floor(Math.random() * 150);
      const exitedP = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (chunk: string) => {
          partial += chunk;
          const parts = partial.split('\n');
          partial = parts.pop()!;
          lines.push(...parts);
          if (lines.filter((l) => l.startsWith('A ')).length >= killAfter) resolve();
        });
        child.once('exit', () => resolve());
      });
      child.kill('SIGKILL');
      await exitedP;
      assert.equal(child.signalCode, 'SIGKILL', `writer died on its own: ${err}`);
      const started = new Set<number>();
      const acked = new Set<number>();
      for (const l of lines) {
        const [kind, n] = l.split(' ');
        if (kind === 'S') started.add(Number(n));
        if (kind === 'A') acked.add(Number(n));
      }
      const keyOf = (n: number): string => `${dir}/${String(n).padStart(12, '0')}`;
      const prefix = `${dir}/`;
      const listed = (await listKeys(s, prefix)).filter((k) => !expected.includes(k));
      for (const n of acked) assert.ok(listed.includes(keyOf(n)), `acked ${keyOf(n)} is missing`);
      for (const k of listed) {
        const n = parseObject((await s.get(k)).bytes);
        assert.ok(n !== null, `${k} is torn`);
        assert.equal(keyOf(n), k);
        assert.ok(started.has(n), `${k} was never started`);
      }
      // The store keeps working at every key the writer touched: absent ones
      // can be created now, present ones refuse.
      for (const n of started) {
        const k = keyOf(n);
        if (listed.includes(k)) await assert.rejects(s.putIfAbsent(k, new Uint8Array([1])), (e: unknown) => isFloeError(e, 'ALREADY_EXISTS'));
        else await s.putIfAbsent(k, new Uint8Array([1]));
      }
      expected = [...expected, ...[...started].map(keyOf)].sort();
      start = Math.max(start, ...started) + 1;
      assert.deepEqual(await listKeys(s, ''), expected);
    }
    // What the killed writers prepared is ordinary garbage for a sweep that
    // knows they are dead.
    await s.close();
    const fresh = await LocalStore.open(s.root, { staleMs: 1 });
    await fresh.sweep();
    assert.deepEqual(await temps(s.root), []);
    assert.deepEqual(await listKeys(fresh, ''), expected);
    await fresh.close();
  });
});
