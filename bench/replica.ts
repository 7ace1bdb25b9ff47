/**
 * Replica benchmark (issue 8):
 *
 * 1. Replica lag under sustained writes (the primary flushes every 256 KiB of
 *    memtable, truncating its log): WRITERS concurrent committers upsert
 *    for BENCH_REPLICA_MS (default 3000) ms on the primary while a replica
 *    opened on its own store client (tailing the log on the store) loops
 *    advanceOrRecover(). Lag in seqs = primary visibleSeq - replica
 *    visibleSeq sampled after each advance; lag in ms = time a seq became
 *    visible on the replica minus the time its commit was acknowledged on the
 *    primary (both clocks are this process's). Local directory, and S3 when
 *    a server answers at FLOE_S3_ENDPOINT (default http://127.0.0.1:7480).
 * 2. Store requests of an idle advance (nothing new), counted by a
 *    MetricsStore around the replica's store client.
 * 3. Point get p50: replica vs primary on the same keys.
 * 4. Rebase pauses: the primary upserts BENCH_REPLICA_TAIL (default 100k)
 *    keys, the replica applies them (its tail holds them all), the primary
 *    flushes, and the replica rebases onto that base while two readers loop
 *    point gets of those keys. Reported: the longest gap between consecutive
 *    completed gets (read pause: includes the first reads of the new base's
 *    files) and the longest event-loop stall (a setImmediate ticker: the
 *    synchronous stretches on the readers' thread), median and max over
 *    BENCH_REPLICA_ROUNDS (default 3) rounds each of hot swap and blocking
 *    rebase.
 *
 * The raw fsync rate of this machine is measured first and printed beside
 * the figures. Figures only, nothing asserted. Writes
 * bench/results/replica.md and .json.
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
import { MetricsStore, STORE_OPS } from '../src/store/metrics.js';
import { openStore } from '../src/store/uri.js';
import { envInfo, envInt, fmt, markdownTable, measureFsyncRate, nowMs, summarize, textTable, writeReport } from './lib.js';

const DURATION_MS = envInt('BENCH_REPLICA_MS', 3000);
const WRITERS = envInt('BENCH_REPLICA_WRITERS', 8);
const KEYS = envInt('BENCH_REPLICA_KEYS', 2000);
const GETS = envInt('BENCH_N', 300);
const TAIL_KEYS = envInt('BENCH_REPLICA_TAIL', 100_000);
const PAUSE_ROUNDS = envInt('BENCH_REPLICA_ROUNDS', 3);
const schema = { k: { type: 'utf8', nullable: false }, v: 'int64', note: 'utf8' } as const;
const key = (i: number): string => `key-${String(i).padStart(6, '0')}`;

interface Backend {
  readonly name: string;
  /** A fresh database location per use. */
  uri(sub: string): string;
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
  const out: Backend[] = [{ name: 'local dir', uri: (sub) => path.join(dir, sub), cleanup: () => fs.rm(dir, { recursive: true, force: true }) }];
  const endpoint = process.env.FLOE_S3_ENDPOINT ?? 'http://127.0.0.1:7480';
  process.env.AWS_ACCESS_KEY_ID ??= 'floe';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'floesecret';
  process.env.AWS_REGION ??= 'us-east-1';
  if (await s3Answers(endpoint)) {
    const bucket = process.env.FLOE_S3_BUCKET ?? 'floe-test';
    out.push({
      name: 'S3 (RGW)',
      uri: (sub) => `s3://${bucket}/bench-replica-${randomUUID()}-${sub}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1`,
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
  const follow = async (): Promise<void> => {
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
  };
  try {
    await follow();
  } finally {
    // Writers stop (and are awaited) even when following failed, so the error surfaces.
    stop = true;
    await Promise.all(writers);
  }
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

/**
 * Longest read pause while the replica rebases past a large tail: the
 * primary (its own database, memtable big enough not to flush by itself)
 * upserts TAIL_KEYS keys as point writes, the replica applies them all
 * (its tail holds TAIL_KEYS keys), the primary flushes, and two readers loop
 * point gets of those keys (yielding to the event loop between gets) while
 * the replica rebases onto the flushed base. The pause is the longest gap
 * between consecutive completed gets in the window around the rebase, so any
 * synchronous stretch the rebase runs on the readers' thread shows up whole.
 */
async function rebasePause(db: Database, r: Replica, hot: boolean, round: number): Promise<{ pauseMs: number; stallMs: number; maxGetMs: number; rebaseMs: number; reads: number; tailBefore: number; tailAfter: number }> {
  const t = await db.table('t');
  for (let i = 0; i < TAIL_KEYS; i += 1000) {
    const n = Math.min(1000, TAIL_KEYS - i);
    await t.upsert(Array.from({ length: n }, (_, j) => ({ k: key(i + j), v: BigInt(round * 1_000_000 + i + j), note: `round ${round}` })));
  }
  await r.advanceOrRecover();
  const tailBefore = (await r.stats()).tailLength;
  await db.flush();
  const rt = r.table('t');
  let stop = false;
  let last = nowMs();
  let pause = 0;
  let reads = 0;
  let maxGet = 0;
  const readers = Array.from({ length: 2 }, async (_, w) => {
    let i = w * 7919;
    while (!stop) {
      const g0 = nowMs();
      await rt.get(key((i += 104729) % TAIL_KEYS));
      maxGet = Math.max(maxGet, nowMs() - g0);
      // Cached gets can resolve on microtasks alone; yield so timers and the rebase run.
      await new Promise((res) => setImmediate(res));
      const now = nowMs();
      pause = Math.max(pause, now - last);
      last = now;
      reads++;
    }
  });
  // The longest the event loop went without a turn (a setImmediate ticker): the
  // synchronous stretches on the readers' thread, apart from read latency.
  let stall = 0;
  const ticker = (async () => {
    let prev = nowMs();
    while (!stop) {
      await new Promise((res) => setImmediate(res));
      const now = nowMs();
      stall = Math.max(stall, now - prev);
      prev = now;
    }
  })();
  // Let the readers settle, then measure only the window around the rebase.
  await new Promise((res) => setTimeout(res, 100));
  pause = 0;
  maxGet = 0;
  stall = 0;
  const a = nowMs();
  if (hot) await r.rebaseHotSwap();
  else await r.rebase();
  const rebaseMs = nowMs() - a;
  await new Promise((res) => setTimeout(res, 50));
  stop = true;
  await Promise.all([...readers, ticker]);
  return { pauseMs: pause, stallMs: stall, maxGetMs: maxGet, rebaseMs, reads, tailBefore, tailAfter: (await r.stats()).tailLength };
}

type PauseRound = Awaited<ReturnType<typeof rebasePause>>;

/**
 * The rebase-pause rounds on a database of their own (a memtable that holds
 * the whole tail): PAUSE_ROUNDS hot swaps and as many blocking rebases,
 * alternating, each past a fresh tail of TAIL_KEYS keys.
 */
async function pauses(uri: string): Promise<{ hot: PauseRound[]; cold: PauseRound[] }> {
  const db = await open(uri, { memtableBytes: 1024 * 1024 * 1024 });
  try {
    const t = await db.createTable('t', schema, { primaryKey: 'k' });
    await t.upsert(Array.from({ length: 1000 }, (_, i) => ({ k: key(i), v: BigInt(i), note: 'seed' })));
    await db.flush();
    const r = await replica(uri);
    try {
      const hot: PauseRound[] = [];
      const cold: PauseRound[] = [];
      for (let round = 1; round <= PAUSE_ROUNDS; round++) {
        hot.push(await rebasePause(db, r, true, 2 * round));
        cold.push(await rebasePause(db, r, false, 2 * round + 1));
      }
      return { hot, cold };
    } finally {
      await r.close();
    }
  } finally {
    await db.close();
  }
}

/** "median / max" of one figure over the rounds. */
function medMax(rounds: readonly PauseRound[], pick: (p: PauseRound) => number): string {
  const s = summarize(rounds.map(pick));
  return `${fmt(s.p50)} / ${fmt(s.max)}`;
}

/** Store requests of one idle advance (nothing new on the primary), by kind, averaged over 5. */
async function idleRequests(r: Replica, metrics: MetricsStore): Promise<Record<string, number>> {
  await r.advanceOrRecover();
  metrics.reset();
  for (let i = 0; i < 5; i++) await r.advance();
  const out: Record<string, number> = {};
  for (const op of STORE_OPS) if (metrics.requests(op) > 0) out[op] = metrics.requests(op) / 5;
  return out;
}

async function main(): Promise<void> {
  const env = envInfo();
  const fsync = measureFsyncRate();
  console.log(`raw fsync: ${fmt(fsync.appendsPerSec)} appends/s, p50 ${fmt(fsync.p50Ms)} ms, p99 ${fmt(fsync.p99Ms)} ms (${fsync.dir}, ${fsync.fsType})`);
  const rows: Array<Array<string | number>> = [];
  const data: Record<string, unknown> = {};
  for (const b of await backends()) {
    console.log(`== ${b.name}`);
    // Small memtables: the writer flushes (and truncates its log) every few hundred KiB, as a
    // long-running primary would; the replica follows with advanceOrRecover.
    const uri = b.uri('lag');
    const db = await open(uri, { memtableBytes: 256 * 1024 });
    try {
      const t = await db.createTable('t', schema, { primaryKey: 'k' });
      await t.upsert(Array.from({ length: KEYS }, (_, i) => ({ k: key(i), v: BigInt(i), note: 'seed' })));
      await db.flush();
      // The replica's own store client, counted (requests per idle advance).
      const metrics = new MetricsStore(await openStore(uri));
      const r = await replica(metrics);
      try {
        console.log('lag...');
        const l = await lag(db, r);
        const idle = await idleRequests(r, metrics);
        console.log('gets...');
        const s = summarize(l.seqs);
        const m = summarize(l.ms);
        const g = await getP50(db, r);
        console.log(`rebase pauses (tail of ${TAIL_KEYS} keys)...`);
        const { hot, cold } = await pauses(b.uri('pause'));
        const st = await r.stats();
        data[b.name] = { lagSeqs: s, lagMs: m, commits: l.commits, advances: l.advances, idleAdvanceRequests: idle, getP50: g, hotSwap: hot, blockingRebase: cold, stats: st };
        const idleText = Object.entries(idle).map(([op, n]) => `${fmt(n)} ${op}`).join(' + ') || 'none';
        rows.push(
          [b.name, 'lag (seqs)', fmt(s.p50), fmt(s.p99), `${fmt(l.commits)} commits in ${fmt(DURATION_MS)} ms, ${fmt(l.advances)} advances`],
          [b.name, 'lag (ms)', fmt(m.p50), fmt(m.p99), `over ${fmt(m.n)} seqs`],
          [b.name, 'store requests per idle advance', fmt(Object.values(idle).reduce((x, y) => x + y, 0)), '', idleText],
          [b.name, 'get p50 (ms) primary / replica', fmt(g.primary), fmt(g.replica), `ratio replica/primary ${fmt(g.replica / g.primary)}`],
          [b.name, 'longest event-loop stall (ms), median / max of rounds', medMax(hot, (p) => p.stallMs), medMax(cold, (p) => p.stallMs), 'hot swap / blocking rebase; setImmediate ticker'],
          [
            b.name,
            'longest read pause (ms), median / max of rounds',
            medMax(hot, (p) => p.pauseMs),
            medMax(cold, (p) => p.pauseMs),
            `hot swap / blocking rebase; tail ${fmt(hot[0]!.tailBefore)} -> ${fmt(hot[0]!.tailAfter)} keys; rebase took ${medMax(hot, (p) => p.rebaseMs)} / ${medMax(cold, (p) => p.rebaseMs)} ms; slowest single get ${medMax(hot, (p) => p.maxGetMs)} / ${medMax(cold, (p) => p.maxGetMs)} ms`,
          ],
        );
      } finally {
        await r.close();
        await metrics.close();
      }
    } finally {
      await db.close();
    }
    await b.cleanup();
  }
  const headers = ['backend', 'metric', 'p50 / a', 'p99 / b', 'note'];
  console.log(textTable(headers, rows));
  const out = writeReport({
    name: 'replica',
    title: 'floe replica benchmark (issue 8): lag, point gets, rebase pauses',
    markdown: [
      markdownTable(headers, rows),
      '',
      `Raw fsync (4 KiB append + fsync, ${fsync.dir}, ${fsync.fsType}): ${fmt(fsync.appendsPerSec)} appends/s, p50 ${fmt(fsync.p50Ms)} ms, p99 ${fmt(fsync.p99Ms)} ms.`,
      `Settings: ${WRITERS} writers for ${DURATION_MS} ms over ${KEYS} keys; ${GETS} point gets; replica tails the log on the store (its own client).`,
      'Lag in ms is replica visibility time minus the primary commit acknowledgement (same process clock).',
      `Read pause: longest gap between consecutive completed point gets by 2 readers (each yielding to the event loop between gets) while the replica rebases past a tail of ${TAIL_KEYS} keys onto a freshly flushed base.`,
    ].join('\n'),
    env,
    data: { settings: { durationMs: DURATION_MS, writers: WRITERS, keys: KEYS, gets: GETS, tailKeys: TAIL_KEYS, pauseRounds: PAUSE_ROUNDS }, fsync, results: data },
  });
  console.log(`wrote ${out.md}`);
}

await main();
