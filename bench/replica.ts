/**
 * Replica benchmark (issue 8):
 *
 * 1. Replica lag under sustained writes (the primary flushes every 256 KiB of
 *    memtable, truncating its log): WRITERS concurrent committers upsert
 *    for BENCH_REPLICA_MS (default 3000) ms on the primary while a replica
 *    opened from the URI (its own store client, tailing the log on the store)
 *    loops advanceOrRecover(). Lag in seqs = primary visibleSeq - replica visibleSeq
 *    sampled after each advance; lag in ms = time a seq became visible on
 *    the replica minus the time its commit was acknowledged on the primary
 *    (both clocks are this process's). Local directory, and S3 when a server
 *    answers at FLOE_S3_ENDPOINT (default http://127.0.0.1:7480).
 * 2. Point get p50: replica vs primary on the same keys (half in data files,
 *    half in the tail / memtable).
 * 3. Longest read pause during a rebase: readers loop point gets while the
 *    replica rebases onto a freshly flushed base; the pause is the longest
 *    gap between consecutive completed reads — hot swap vs blocking rebase.
 *
 * Figures only, nothing asserted. Writes bench/results/replica.md and .json.
 *
 *   node dist/bench/replica.js
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Database } from '../src/db/database.js';
import { open } from '../src/db/database.js';
import type { Replica } from '../src/replica/replica.js';
import { replica } from '../src/replica/replica.js';
import { envInfo, envInt, fmt, markdownTable, nowMs, summarize, textTable, writeReport } from './lib.js';

const DURATION_MS = envInt('BENCH_REPLICA_MS', 3000);
const WRITERS = envInt('BENCH_REPLICA_WRITERS', 8);
const KEYS = envInt('BENCH_REPLICA_KEYS', 2000);
const GETS = envInt('BENCH_N', 300);
const schema = { k: { type: 'utf8', nullable: false }, v: 'int64', note: 'utf8' } as const;
const key = (i: number): string => `key-${String(i).padStart(6, '0')}`;

interface Backend {
  readonly name: string;
  readonly uri: string;
  cleanup(): Promise<void>;
}

async function s3Answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(endpoint, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return true;
  } catch (err) {
    console.log(`S3 at ${endpoint} does not answer (${(err as Error).message}); skipping S3`);
    return false;
  }
}

async function backends(): Promise<Backend[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'floe-bench-replica-'));
  const out: Backend[] = [{ name: 'local dir', uri: dir, cleanup: () => fs.rm(dir, { recursive: true, force: true }) }];
  const endpoint = process.env.FLOE_S3_ENDPOINT ?? 'http://127.0.0.1:7480';
  process.env.AWS_ACCESS_KEY_ID ??= 'floe';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'floesecret';
  process.env.AWS_REGION ??= 'us-east-1';
  if (await s3Answers(endpoint)) {
    const bucket = process.env.FLOE_S3_BUCKET ?? 'floe-test';
    out.push({
      name: 'S3 (RGW)',
      uri: `s3://${bucket}/bench-replica-${randomUUID()}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1`,
      cleanup: () => Promise.resolve(), // a fresh random prefix per run; the bucket is a test bucket
    });
  }
  return out;
}

async function lag(db: Database, r: Replica): Promise<{ seqs: number[]; ms: number[]; commits: number; advances: number }> {
  const t = await db.table('t');
  const ackedAt = new Map<number, number>();
  let stop = false;
  let n = 0;
  const writers = Array.from({ length: WRITERS }, async () => {
    while (!stop) {
      const i = n++;
      const { seq } = await t.upsert({ k: key(i % KEYS), v: BigInt(i), note: `w${i}` });
      ackedAt.set(seq, nowMs());
    }
  });
  const seqs: number[] = [];
  const ms: number[] = [];
  let advances = 0;
  const t0 = nowMs();
  while (nowMs() - t0 < DURATION_MS) {
    const before = r.visibleSeq;
    await r.advanceOrRecover();
    advances++;
    const at = nowMs();
    seqs.push(Math.max(0, db.visibleSeq - r.visibleSeq));
    for (let s = before + 1; s <= r.visibleSeq; s++) {
      const a = ackedAt.get(s);
      // A seq can become visible on the replica (durable in the log) just before its
      // committer's continuation runs: count that as zero lag.
      ms.push(a === undefined ? 0 : Math.max(0, at - a));
    }
  }
  stop = true;
  await Promise.all(writers);
  return { seqs, ms, commits: n, advances };
}

async function getP50(db: Database, r: Replica): Promise<{ primary: number; replica: number }> {
  const t = await db.table('t');
  const rt = r.table('t');
  const keys = Array.from({ length: GETS }, (_, i) => key((i * 7919) % KEYS));
  const time = async (fn: (k: string) => Promise<unknown>): Promise<number> => {
    for (const k of keys.slice(0, 20)) await fn(k);
    const lat: number[] = [];
    for (const k of keys) {
      const a = nowMs();
      await fn(k);
      lat.push(nowMs() - a);
    }
    return summarize(lat).p50;
  };
  return { primary: await time((k) => t.get(k)), replica: await time((k) => rt.get(k)) };
}

async function rebasePause(db: Database, r: Replica, hot: boolean): Promise<{ pauseMs: number; maxGetMs: number; rebaseMs: number; reads: number }> {
  const t = await db.table('t');
  await t.upsert(Array.from({ length: 500 }, (_, i) => ({ k: key(i), v: BigInt(-i), note: 'pre-rebase' })));
  await db.flush();
  await r.advanceOrRecover();
  const rt = r.table('t');
  let stop = false;
  let last = nowMs();
  let pause = 0;
  let reads = 0;
  let maxGet = 0;
  const readers = Array.from({ length: 2 }, async () => {
    let i = 0;
    while (!stop) {
      const g0 = nowMs();
      await rt.get(key(i++ % KEYS));
      maxGet = Math.max(maxGet, nowMs() - g0);
      // Cached gets can resolve on microtasks alone; yield so timers and the rebase run.
      await new Promise((res) => setImmediate(res));
      const now = nowMs();
      pause = Math.max(pause, now - last);
      last = now;
      reads++;
    }
  });
  // Let the readers settle, then measure only the window around the rebase.
  await new Promise((res) => setTimeout(res, 100));
  pause = 0;
  maxGet = 0;
  const a = nowMs();
  if (hot) await r.rebaseHotSwap();
  else await r.rebase();
  const rebaseMs = nowMs() - a;
  await new Promise((res) => setTimeout(res, 50));
  stop = true;
  await Promise.all(readers);
  return { pauseMs: pause, maxGetMs: maxGet, rebaseMs, reads };
}

async function main(): Promise<void> {
  const env = envInfo();
  const rows: Array<Array<string | number>> = [];
  const data: Record<string, unknown> = {};
  for (const b of await backends()) {
    console.log(`== ${b.name}`);
    // Small memtables: the writer flushes (and truncates its log) every few hundred KiB, as a
    // long-running primary would; the replica follows with advanceOrRecover.
    const db = await open(b.uri, { memtableBytes: 256 * 1024 });
    try {
      const t = await db.createTable('t', schema, { primaryKey: 'k' });
      await t.upsert(Array.from({ length: KEYS }, (_, i) => ({ k: key(i), v: BigInt(i), note: 'seed' })));
      await db.flush();
      const r = await replica(b.uri);
      try {
        console.log('lag...');
        const l = await lag(db, r);
        await r.advanceOrRecover();
        console.log('gets...');
        const s = summarize(l.seqs);
        const m = summarize(l.ms);
        const g = await getP50(db, r);
        console.log('rebase pauses...');
        const cold = await rebasePause(db, r, false);
        const hot = await rebasePause(db, r, true);
        const st = await r.stats();
        data[b.name] = { lagSeqs: s, lagMs: m, commits: l.commits, advances: l.advances, getP50: g, hotSwap: hot, blockingRebase: cold, stats: st };
        rows.push(
          [b.name, 'lag (seqs)', fmt(s.p50), fmt(s.p99), `${fmt(l.commits)} commits in ${fmt(DURATION_MS)} ms, ${fmt(l.advances)} advances`],
          [b.name, 'lag (ms)', fmt(m.p50), fmt(m.p99), `over ${fmt(m.n)} seqs`],
          [b.name, 'get p50 (ms) primary / replica', fmt(g.primary), fmt(g.replica), `ratio replica/primary ${fmt(g.replica / g.primary)}`],
          [b.name, 'longest read pause (ms) hot swap / blocking rebase', fmt(hot.pauseMs), fmt(cold.pauseMs), `rebase took ${fmt(hot.rebaseMs)} / ${fmt(cold.rebaseMs)} ms; slowest single get ${fmt(hot.maxGetMs)} / ${fmt(cold.maxGetMs)} ms`],
        );
      } finally {
        await r.close();
      }
    } finally {
      await db.close();
      await b.cleanup();
    }
  }
  const headers = ['backend', 'metric', 'p50 / a', 'p99 / b', 'note'];
  console.log(textTable(headers, rows));
  const out = writeReport({
    name: 'replica',
    title: 'floe replica benchmark (issue 8): lag, point gets, rebase pauses',
    markdown: [
      markdownTable(headers, rows),
      '',
      `Settings: ${WRITERS} writers for ${DURATION_MS} ms over ${KEYS} keys; ${GETS} point gets; replica tails the log on the store (its own client).`,
      'Lag in ms is replica visibility time minus the primary commit acknowledgement (same process clock).',
      'Read pause: longest gap between consecutive completed point gets by 2 readers while the replica rebases onto a freshly flushed base.',
    ].join('\n'),
    env,
    data: { settings: { durationMs: DURATION_MS, writers: WRITERS, keys: KEYS, gets: GETS }, results: data },
  });
  console.log(`wrote ${out.md}`);
}

await main();
