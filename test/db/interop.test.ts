/**
 * Interop: the data files a flush and an append leave are plain Parquet that
 * DuckDB reads, and what DuckDB reads (minus the rows floe masks) equals
 * floe's own scan.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { open } from '../../src/db/database.js';

describe('DuckDB reads floe data files', () => {
  it('flushed and appended files hold exactly what scan returns (masked rows aside)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-duck-'));
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    try {
      const db = await open(dir);
      const t = await db.createTable(
        'pkgs',
        { name: { type: 'utf8', nullable: false }, size: 'int64', ratio: 'float64', ok: 'bool', at: 'timestamp', tags: { list: 'utf8' } },
        { primaryKey: 'name' },
      );
      const at = new Date('2026-01-02T03:04:05.678Z');
      await t.append(Array.from({ length: 300 }, (_, i) => ({ name: `n${i}`, size: BigInt(i), ratio: i / 3, ok: i % 2 === 0, at, tags: [`t${i % 5}`] })));
      await t.upsert(Array.from({ length: 20 }, (_, i) => ({ name: `n${i}`, size: BigInt(1000 + i), ratio: null, ok: null, at: null, tags: null })));
      await t.delete(['n100', 'n101']);
      await db.flush();
      const files = await t.dataFiles();
      assert.equal(files.length, 2);
      const masked = files.reduce((n, f) => n + f.deletedRows, 0);
      assert.equal(masked, 22);
      const list = files.map((f) => `'${f.location.replace(/'/g, "''")}'`).join(', ');
      const reader = await conn.runAndReadAll(`SELECT count(*) AS n, count(DISTINCT name) AS d FROM read_parquet([${list}])`);
      const [row] = reader.getRowObjects();
      assert.equal(Number(row!.n), 320); // 300 appended + 20 flushed, 22 of them masked by floe
      // floe's view: newest version of each live key; DuckDB over the same files, keeping each key's highest _seq
      const ours = (await t.scan({ columns: ['name', 'size'] }).toArray()).map((r) => `${String(r.name)}=${String(r.size)}`).sort();
      const theirs = (
        await conn.runAndReadAll(
          `SELECT name, size FROM (SELECT name, size, row_number() OVER (PARTITION BY name ORDER BY _seq DESC) AS rn FROM read_parquet([${list}])) WHERE rn = 1 AND name NOT IN ('n100', 'n101')`,
        )
      )
        .getRowObjects()
        .map((r) => `${String(r.name)}=${String(r.size)}`)
        .sort();
      assert.deepEqual(theirs, ours);
      const types = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet([${list}])`)).getRowObjects();
      assert.deepEqual(
        Object.fromEntries(types.map((r) => [r.column_name, r.column_type])),
        { _id: 'BIGINT', _seq: 'BIGINT', name: 'VARCHAR', size: 'BIGINT', ratio: 'DOUBLE', ok: 'BOOLEAN', at: 'TIMESTAMP WITH TIME ZONE', tags: 'VARCHAR[]' },
      );
      await db.close();
    } finally {
      conn.closeSync();
      duck.closeSync();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
