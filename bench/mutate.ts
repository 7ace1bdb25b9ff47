/**
 * bench/mutate.ts — set-oriented DELETE and UPDATE, and compaction.
 *
 * Data: N = 1,000,000 × BENCH_SCALE rows (about 15 s at the default),
 * columns id (int64), r (int64, a scrambled permutation of id), v (float64),
 * s (utf8); floe keyless table appended in 100k-row files, LanceDB table on
 * a local directory, DuckDB file database — the same rows everywhere.
 *
 * For each of delete/update × 0.01%, 1%, 10% × clustered (`id` range) and
 * scattered (`r` range: rows spread over every file), one mutation on each
 * system with the same predicate, on disjoint ranges so every case touches
 * fresh rows. floe runs through a MetricsStore, so the object-store
 * requests each mutation costs are reported. Finally floe compacts the
 * table (rows/s).
 *
 * Run: npx tsc -p tsconfig.json && BENCH_SCALE=1 node dist/bench/mutate.js
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import { open } from '../src/db/database.js';
import { MetricsStore } from '../src/store/metrics.js';
import { openStore } from '../src/store/uri.js';
import type { PredicateInput } from '../src/table/predicate.js';
import { where } from '../src/table/predicate.js';
import { envInfo, envInt, fmt, markdownTable, nowMs, textTable, writeReport } from './lib.js';

const SCALE = envInt('BENCH_SCALE', 1);
const N = 1_000_000 * SCALE;
const FILE_ROWS = 100_000;
const MULT = 2654435761n;

function scramble(id: bigint): bigint {
  return (id * MULT) % BigInt(N); // a permutation of 0..N-1 when gcd(MULT, N) = 1
}

function batch(from: number, n: number): arrow.Table {
  const id = new BigInt64Array(n);
  const r = new BigInt64Array(n);
  const v = new Float64Array(n);
  const s: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = BigInt(from + i);
    id[i] = x;
    r[i] = scramble(x);
    v[i] = (from + i) % 1000;
    s.push(`row-${from + i}`);
  }
  return new arrow.Table({ id: arrow.makeVector(id), r: arrow.makeVector(r), v: arrow.makeVector(v), s: arrow.vectorFromArray(s, new arrow.Utf8()) });
}

interface Case {
  op: 'delete' | 'update';
  frac: number;
  pattern: 'clustered' | 'scattered';
  lo: number;
  hi: number;
}

function cases(): Case[] {
  const out: Case[] = [];
  let clusteredAt = 0;
  let scatteredAt = 0;
  for (const op of ['delete', 'update'] as const) {
    for (const frac of [0.0001, 0.01, 0.1]) {
      for (const pattern of ['clustered', 'scattered'] as const) {
        const n = Math.max(1, Math.round(N * frac));
        const lo = pattern === 'clustered' ? clusteredAt : scatteredAt;
        if (pattern === 'clustered') clusteredAt += n;
        else scatteredAt += n;
        out.push({ op, frac, pattern, lo, hi: lo + n });
      }
    }
  }
  return out;
}

async function main(): Promise<void> {
  const env = envInfo();
  console.log(`floe mutate bench — N=${fmt(N)} rows (BENCH_SCALE=${SCALE})`);
  const root = mkdtempSync(path.join(tmpdir(), 'floe-bench-mutate-'));
  try {
    // ---- load
    const metrics = new MetricsStore(await openStore(path.join(root, 'floe')));
    const db = await open(metrics, { autoCompact: false }); // mutations alone; compaction is measured explicitly below
    const t = await db.createTable('t', { id: { type: 'int64', nullable: false }, r: { type: 'int64', nullable: false }, v: 'float64', s: 'utf8' });
    for (let at = 0; at < N; at += FILE_ROWS) await t.append(batch(at, Math.min(FILE_ROWS, N - at)));
    const lance = await import('@lancedb/lancedb');
    const conn = await lance.connect(path.join(root, 'lance'));
    let lt: import('@lancedb/lancedb').Table | null = null;
    for (let at = 0; at < N; at += FILE_ROWS) {
      const b = batch(at, Math.min(FILE_ROWS, N - at));
      if (lt) await lt.add(b);
      else lt = await conn.createTable('t', b);
    }
    const duck = await import('@duckdb/node-api');
    const inst = await duck.DuckDBInstance.create(path.join(root, 'duck.duckdb'));
    const con = await inst.connect();
    await con.run(`CREATE TABLE t AS SELECT range AS id, CAST((range * ${MULT}) % ${N} AS BIGINT) AS r, CAST(range % 1000 AS DOUBLE) AS v, 'row-' || range AS s FROM range(${N})`);
    await con.run('CHECKPOINT');

    // ---- mutations
    const rows: Array<Record<string, string | number>> = [];
    for (const c of cases()) {
      const col = c.pattern === 'clustered' ? 'id' : 'r';
      const pred: PredicateInput = where.and(where.ge(col, BigInt(c.lo)), where.lt(col, BigInt(c.hi)));
      const sql = `${col} >= ${c.lo} AND ${col} < ${c.hi}`;
      metrics.reset();
      let t0 = nowMs();
      const fr = c.op === 'delete' ? await t.deleteWhere(pred) : await t.updateWhere(pred, { v: -1 });
      const floeMs = nowMs() - t0;
      const req = metrics.requests();
      t0 = nowMs();
      if (c.op === 'delete') await lt!.delete(sql);
      else await lt!.update({ where: sql, values: { v: -1 } });
      const lanceMs = nowMs() - t0;
      t0 = nowMs();
      if (c.op === 'delete') await con.run(`DELETE FROM t WHERE ${sql}`);
      else await con.run(`UPDATE t SET v = -1 WHERE ${sql}`);
      const duckMs = nowMs() - t0;
      const row = {
        op: c.op,
        touched: `${c.frac * 100}%`,
        pattern: c.pattern,
        rows: fr.applied,
        'floe ms': Math.round(floeMs * 10) / 10,
        'LanceDB ms': Math.round(lanceMs * 10) / 10,
        'DuckDB ms': Math.round(duckMs * 10) / 10,
        'floe/LanceDB': Math.round((floeMs / lanceMs) * 100) / 100,
        'floe/DuckDB': Math.round((floeMs / duckMs) * 100) / 100,
        'floe requests': req,
        'floe writes': metrics.writes(),
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
    // consistency: same live row count everywhere
    const floeCount = await t.count();
    const lanceCount = await lt!.countRows();
    const duckCount = Number((await con.runAndReadAll('SELECT count(*) AS n FROM t')).getRowObjects()[0]!.n);
    if (floeCount !== lanceCount || floeCount !== duckCount) throw new Error(`row counts differ: floe ${floeCount}, LanceDB ${lanceCount}, DuckDB ${duckCount}`);

    // ---- compaction
    const st = await t.stats();
    metrics.reset();
    const t0 = nowMs();
    const cr = await t.compact({ smallFileRows: N + 1, deletedFraction: 0.001, rowsPerFile: 1_000_000 });
    const cms = nowMs() - t0;
    const compaction = { filesBefore: st.files, ...cr, ms: Math.round(cms), rowsPerSec: Math.round(cr.rowsWritten / (cms / 1000)), requests: metrics.requests() };
    console.log(JSON.stringify(compaction));
    if ((await t.count()) !== floeCount) throw new Error('compaction changed the row count');
    await db.close();
    con.closeSync();

    const headers = Object.keys(rows[0]!);
    console.log(textTable(headers, rows.map((r) => headers.map((h) => r[h]!))));
    const md = [
      `N = ${fmt(N)} rows (BENCH_SCALE=${SCALE}); floe on a local directory (fsync on every write), LanceDB on a local directory, DuckDB file database.`,
      '',
      markdownTable(headers, rows.map((r) => headers.map((h) => r[h]!))),
      '',
      `Compaction: ${fmt(compaction.filesBefore)} files -> ${compaction.filesAdded}, ${fmt(compaction.rowsWritten)} rows written, ${fmt(compaction.rowsDropped)} masked rows dropped in ${fmt(compaction.ms)} ms = **${fmt(compaction.rowsPerSec)} rows/s** (${compaction.requests} store requests).`,
      '',
      'Notes: floe resolves the predicate with a scan (pruned by file/row-group statistics), writes the payload and the state document, then one catalog CAS; its request count grows with the files the targets live in, not the table size. A floe update also writes one new data file holding the new row images. LanceDB does not fsync (see bench/table.ts notes).',
    ].join('\n');
    const out = writeReport({ name: 'mutate', title: 'floe mutate bench: deleteWhere / updateWhere / compact', markdown: md, data: { N, rows, compaction }, env });
    console.log(`wrote ${out.md}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
