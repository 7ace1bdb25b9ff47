/**
 * The `floe` command, run as users run it: a child process on a real
 * database directory.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { open } from '../../src/db/database.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function floe(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, out: stdout, err: stderr });
    });
  });
}

describe('floe CLI', () => {
  it('lists, reads, scans, imports, shows files and versions; errors exit non-zero with the code', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-cli-'));
    try {
      const db = await open(dir);
      const t = await db.createTable('pkgs', { name: { type: 'utf8', nullable: false }, size: 'int64', section: 'utf8' }, { primaryKey: 'name' });
      await t.append([
        { name: 'a', size: 1n, section: 'libs' },
        { name: 'b', size: 2n, section: 'utils' },
        { name: 'c', size: 3n, section: 'libs' },
      ]);
      await db.close();

      assert.deepEqual((await floe(['tables', dir])).out.trim().split('\n'), ['pkgs']);
      const got = await floe(['get', dir, 'pkgs', 'b']);
      assert.equal(got.code, 0, got.err);
      assert.deepEqual(JSON.parse(got.out) as unknown, { name: 'b', size: '2', section: 'utils' });
      const scan = await floe(['scan', dir, 'pkgs', '--where', '{"section":"libs"}', '--columns', 'name']);
      assert.deepEqual(scan.out.trim().split('\n').map((l) => JSON.parse(l) as unknown), [{ name: 'a' }, { name: 'c' }]);
      const files = await floe(['files', dir, 'pkgs']);
      assert.equal(files.out.trim().split('\n').length, 1);
      assert.match(files.out, /\.parquet/);
      const versions = await floe(['versions', dir, 'pkgs']);
      assert.equal(versions.out.trim().split('\n').length, 2);

      const jsonl = path.join(dir, 'more.jsonl');
      await writeFile(jsonl, ['{"name":"d","size":4}', '{"name":"e","size":5,"extra":"ignored"}', ''].join('\n'));
      const imp = await floe(['import', dir, 'more', jsonl, '--schema', '{"name":"utf8","size":"int64"}', '--key', 'name']);
      assert.equal(imp.code, 0, imp.err);
      assert.deepEqual(JSON.parse(imp.out) as unknown, { table: 'more', rows: 2, version: 2 });
      const stats = JSON.parse((await floe(['stats', dir, 'more'])).out) as { rows: number };
      assert.equal(stats.rows, 2);

      const missing = await floe(['get', dir, 'nope', 'x']);
      assert.equal(missing.code, 1);
      assert.match(missing.err, /NOT_FOUND/);
      const notDb = await floe(['tables', path.join(dir, 'not-a-db')]);
      assert.equal(notDb.code, 1);
      assert.match(notDb.err, /NOT_A_DATABASE/);
      const usage = await floe(['frobnicate']);
      assert.equal(usage.code, 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
