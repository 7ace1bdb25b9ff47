/**
 * Atomic multi-table load (db.load): latency and object-store requests per
 * commit, into 2 and into 10 tables, on a local directory and on S3 (the Ceph
 * gateway at FLOE_S3_ENDPOINT). Every request of the commit is counted by a
 * MetricsStore wrapped around the backend. Baseline: the same rows as T
 * independent Table.append calls (not atomic: a crash can leave some tables
 * loaded and others not).
 *
 * Target from the issue: at most 2 + 2T PUTs and no LIST on the commit path.
 * The background work a load queues (moving old history entries out of the
 * catalog, off the commit path) is awaited after each load and counted apart.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/multitable.js
 * Env: BENCH_MT_ROUNDS (default 48, enough for the catalog's history ring to
 * spill to `_history/` batches a few times), BENCH_MT_ROWS rows per table per load
 * (default 100), FLOE_S3_ENDPOINT / FLOE_S3_BUCKET (S3 part skipped when unset).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { open } from '../src/db/database.js';
import { listKeys } from '../src/store/list.js';
import { MetricsStore } from '../src/store/metrics.js';
import { openStore } from '../src/store/uri.js';
import { envInt, fmt, markdownTable, summarize, textTable, writeReport } from './lib.js';
import type { Summary } from './lib.js';


const ROUNDS = envInt('BENCH_MT_ROUNDS', 48);
const ROWS = envInt('BENCH_MT_ROWS', 100);
const schema = { k: { type: 'utf8', nullable: false }, v: 'int64' } as const;

interface Result {
  readonly backend: string;
  readonly tables: number;
  readonly load: Summary;
  readonly appends: Summary;
  /** Mean requests per atomic load, by kind. */
  readonly puts: number;
  readonly gets: number;
  readonly heads: number;
  readonly lists: number;
  readonly deletes: number;
  readonly target: number;
  /** Most writes of one load (its commit path). */
  readonly commitPathMax: number;
  /** Writes of the loads and of the background work they queued, per load. */
  readonly amortizedPuts: number;
}

async function run(backend: string, uri: string, tables: number): Promise<Result> {
  const metrics = new MetricsStore(await openStore(uri));
  const db = await open(metrics, { logWriter: false });
  const names = Array.from({ length: tables }, (_, i) => `t${i}`);
  for (const n of names) await db.createTable(n, schema);
  const input = (round: number): Record<string, Array<{ k: string; v: bigint }>> =>
    Object.fromEntries(names.map((n) => [n, Array.from({ length: ROWS }, (_, i) => ({ k: `${round}-${i}`, v: BigInt(i) }))]));
  // Warm-up: reserves this process's _id span, fills the manifest cache.
  for (let w = 0; w < 2; w++) await db.load(input(-1 - w));
  const lat: number[] = [];
  let puts = 0;
  let background = 0;
  let commitPathMax = 0;
  let gets = 0;
  let heads = 0;
  let lists = 0;
  let deletes = 0;
  for (let r = 0; r < ROUNDS; r++) {
    metrics.reset();
    const t0 = performance.now();
    await db.load(input(r));
    lat.push(performance.now() - t0);
    const w = metrics.writes();
    puts += w;
    commitPathMax = Math.max(commitPathMax, w);
    gets += metrics.requests('get') + metrics.requests('getRange');
    heads += metrics.requests('head');
    lists += metrics.requests('list');
    deletes += metrics.requests('delete');
    // Background work queued by this load (history spill), counted apart.
    metrics.reset();
    await db._internals.settled();
    background += metrics.writes();
  }
  const app: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const rows = input(1000 + r);
    const t0 = performance.now();
    for (const n of names) await (await db.table(n)).append(rows[n]!);
    app.push(performance.now() - t0);
  }
  await db.close();
  return {
    backend,
    tables,
    load: summarize(lat),
    appends: summarize(app),
    puts: puts / ROUNDS,
    gets: gets / ROUNDS,
    heads: heads / ROUNDS,
    lists: lists / ROUNDS,
    deletes: deletes / ROUNDS,
    target: 2 + 2 * tables,
    commitPathMax,
    amortizedPuts: (puts + background) / ROUNDS,
  };
}

async function main(): Promise<void> {
  const results: Result[] = [];
  for (const tables of [2, 10]) {
    const dir = await mkdtemp(path.join(tmpdir(), 'floe-bench-mt-'));
    try {
      results.push(await run('local', dir, tables));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const endpoint = process.env.FLOE_S3_ENDPOINT;
  if (endpoint) {
    const bucket = process.env.FLOE_S3_BUCKET ?? 'floe-test';
    for (const tables of [2, 10]) {
      const uri = `s3://${bucket}/bench-mt-${randomBytes(6).toString('hex')}?endpoint=${endpoint}&region=us-east-1`;
      try {
        results.push(await run('s3', uri, tables));
      } finally {
        const store = await openStore(uri);
        for (const k of await listKeys(store, '')) await store.delete(k);
        await store.close();
      }
    }
  } else {
    console.warn('FLOE_S3_ENDPOINT unset: S3 rows skipped');
  }
  const headers = ['backend', 'tables', 'load p50 ms', 'load p90 ms', 'T appends p50 ms', 'load / appends', 'PUTs commit path (max)', 'target PUTs', 'PUTs amortized incl. background', 'GETs', 'HEADs', 'LISTs', 'DELETEs'];
  const rows = results.map((r) => [
    r.backend,
    r.tables,
    fmt(r.load.p50),
    fmt(r.load.p90),
    fmt(r.appends.p50),
    fmt(r.load.p50 / r.appends.p50, 2),
    r.commitPathMax,
    r.target,
    fmt(r.amortizedPuts, 2),
    fmt(r.gets, 1),
    fmt(r.heads, 1),
    fmt(r.lists, 1),
    fmt(r.deletes, 1),
  ]);
  console.log(textTable(headers, rows));
  const md = [
    `Atomic \`db.load\` of ${ROWS} rows into each of T keyless tables (one data file per table), ${ROUNDS} timed loads after 2 warm-up loads; requests are means per load, counted by MetricsStore. "T appends" is the same rows as T separate \`Table.append\` calls (not atomic).`,
    '',
    markdownTable(headers, rows),
    '',
    'The commit path is: intent PUT, per table one data file PUT and one manifest PUT, one catalog CAS PUT (which also records the history entry in the catalog), one intent HEAD and DELETE; plus one catalog GET: 2 + 2T PUTs, no LIST. "PUTs commit path (max)" is the most writes any one `db.load` call made; after each load the bench waits for the background work it queued (the spill that moves old history entries out of the catalog: one `_history/` batch PUT plus one catalog CAS, every ~16 loads) and counts it apart; "PUTs amortized" is both together per load.',
  ].join('\n');
  const out = writeReport({ name: 'multitable', title: 'Atomic multi-table load', markdown: md, data: { rows: ROWS, rounds: ROUNDS, results } });
  console.log(`wrote ${out.md} and ${out.json}`);
}

await main();
