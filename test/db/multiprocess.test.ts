/**
 * Several processes on one database directory: concurrent bulk appends to
 * one table all land (no lost update through the catalog CAS), and a reader
 * process scanning while the writer upserts and flushes always sees a
 * consistent, growing table.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { open } from '../../src/db/database.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const schema = { k: { type: 'utf8', nullable: false }, v: 'int64' } as const;

function run(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(fixtures, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} exited ${code}: ${err}`))));
  });
}

describe('multi-process', () => {
  it('two processes appending to one table at once both land', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-mp-'));
    try {
      const db = await open(dir);
      await db.createTable('t', schema, { primaryKey: 'k' });
      await db.close();
      await Promise.all([run('appender.js', [dir, 't', 'a', '8', '50']), run('appender.js', [dir, 't', 'b', '8', '50'])]);
      const check = await open(dir, { readOnly: true });
      const t = await check.table('t');
      assert.equal(await t.count(), 800);
      const v = await t.versions();
      assert.equal(v.filter((x) => x.operation === 'append').length, 16, 'none of the 16 appends lost'); // (background compactions add versions too)
      await check.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a reader process scanning while the writer upserts and flushes sees a consistent, growing table', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-mp-'));
    try {
      const db = await open(dir, { memtableBytes: 16 * 1024 });
      const t = await db.createTable('t', schema, { primaryKey: 'k' });
      await t.upsert({ k: 'seed', v: 0n });
      await db.flush();
      const reader = run('reader.js', [dir, 't', '40']);
      for (let i = 0; i < 60; i++) {
        await t.upsert(Array.from({ length: 20 }, (_, j) => ({ k: `k${i}-${j}`, v: BigInt(j) })));
        if (i % 10 === 9) await db.flush();
      }
      const lines = (await reader).trim().split('\n');
      await db.close();
      let last = 0;
      for (const line of lines) {
        const [n, status] = line.split(' ');
        assert.equal(status, 'unique', line);
        assert.ok(Number(n) >= last, `count went backwards: ${lines.join(',')}`);
        last = Number(n);
      }
      assert.equal(lines.length, 40);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
