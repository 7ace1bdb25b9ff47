/**
 * Log benchmark: durable commits per second and commit latency of floe's
 * group-commit log at 1, 4, 16, 64 and 256 concurrent committers (~100-byte
 * records) on a local directory, next to peers measured in the same run:
 *
 * - SQLite (better-sqlite3, WAL, synchronous=FULL, one INSERT per
 *   transaction). better-sqlite3 is synchronous, so its committers take
 *   turns on the event loop: its rate does not depend on the concurrency.
 * - LevelDB (classic-level, put with sync: true); LevelDB batches concurrent
 *   writers itself.
 * - The raw fsync rate: 4 KiB appends + fsync to one file (bench/lib.ts).
 * - The floor of one new durable object on this filesystem: with its
 *   directory and empty file made beforehand, write + fsync the file, rename
 *   the directory into place, fsync the parent (synchronous calls, nothing
 *   else running). A commit group is one new object, so no group, and no
 *   lone commit, can be faster. Next to it: the cost of making one inode
 *   (mkdir) here and now, which some filesystems make slow (ext4 without a
 *   journal skips recently freed inodes one by one), and the local store's
 *   create-only put alone, with its default (inodes made inline) and with opt-in prepared staging directories
 *   and without.
 *
 * Then floe's log on S3 (FLOE_S3_ENDPOINT, else http://127.0.0.1:7480) at 1
 * and 64 committers, when a server answers.
 *
 * Figures, not a test: nothing is asserted. Targets (printed with their
 * verdict): at 64 committers at least 20x SQLite's commits/s and at least
 * 50% of (records per group x fsync rate); a lone committer's p50 at most
 * 1.5x one raw fsync p50.
 *
 * Each committer loops: append one record, await durability, record the
 * latency. At each level the local systems run back to back after a short
 * fsync probe (disk speed drifts), BENCH_ROUNDS times (default 3, the order
 * of the systems alternating); each row is the round with the median
 * commits/s, with the range over all rounds beside it, and "fsync/s then" is
 * the median probe. Commits per level and round: max(BENCH_N, 25 x
 * committers) (BENCH_N default 300). BENCH_LOG_INFLIGHT sets maxInFlight for
 * the local log (default: the log's default). Writes bench/results/log.md
 * and log.json.
 *
 *   node dist/bench/log.js
 */
import { randomBytes } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ClassicLevel } from 'classic-level';
import { asError } from '../src/errors.js';
import type { LogWriter } from '../src/log/writer.js';
import { openLogWriter } from '../src/log/writer.js';
import { listKeys } from '../src/store/list.js';
import { LocalStore } from '../src/store/local.js';
import { MetricsStore } from '../src/store/metrics.js';
import type { ObjectStore } from '../src/store/types.js';
import type { Cell, FsyncRate, Summary } from './lib.js';
import { envInfo, envInt, openBenchS3, fmt, markdownTable, measureFsyncRate, nowMs, summarize, textTable, writeReport } from './lib.js';

const LEVELS = [1, 4, 16, 64, 256];
const RECORD_BYTES = 100;

interface Run {
  readonly system: string;
  readonly committers: number;
  readonly commits: number;
  readonly seconds: number;
  readonly commitsPerSec: number;
  readonly latencyMs: Summary;
  /** floe only: mean records per segment and store writes per commit. */
  readonly recordsPerGroup?: number;
  readonly writesPerCommit?: number;
  /** Lowest and highest commits/s over the rounds this run is the median of. */
  readonly range?: readonly [number, number];
}

/** The run with the median commits/s, carrying the range of all of them. */
function medianRun(all: readonly Run[]): Run {
  const sorted = [...all].sort((a, b) => a.commitsPerSec - b.commitsPerSec);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return { ...mid, range: [sorted[0]!.commitsPerSec, sorted[sorted.length - 1]!.commitsPerSec] };
}

function medianFsync(all: readonly FsyncRate[]): FsyncRate {
  const sorted = [...all].sort((a, b) => a.appendsPerSec - b.appendsPerSec);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** `committers` concurrent loops sharing `total` commits; `commit(i)` makes one durable commit. */
async function drive(committers: number, total: number, commit: (i: number) => Promise<void>): Promise<{ seconds: number; lat: number[] }> {
  let next = 0;
  const lat: number[] = [];
  const start = nowMs();
  await Promise.all(
    Array.from({ length: committers }, async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const t0 = nowMs();
        await commit(i);
        lat.push(nowMs() - t0);
      }
    }),
  );
  return { seconds: (nowMs() - start) / 1000, lat };
}

const record = (i: number): Uint8Array => {
  const b = randomBytes(RECORD_BYTES);
  b.writeUInt32LE(i, 0);
  return b;
};

/** One system under test: makes `total` durable commits from `n` concurrent committers. */
interface System {
  readonly name: string;
  run(n: number, total: number): Promise<Run>;
  close(): Promise<void>;
}

async function floeSystem(name: string, store: MetricsStore, options: Record<string, number>): Promise<System> {
  const log: LogWriter = await openLogWriter(store, options);
  for (let i = 0; i < 20; i++) await log.append(record(i)); // warm-up
  return {
    name,
    async run(n, total) {
      const before = log.stats();
      store.reset();
      const { seconds, lat } = await drive(n, total, async (i) => void (await log.append(record(i))));
      const after = log.stats();
      const rpg = (after.recordsWritten - before.recordsWritten) / (after.groupsWritten - before.groupsWritten);
      const writesPerCommit = store.writes() / total;
      await log.truncateThrough(log.durableLsn); // keep the directory small between rounds
      return { system: name, committers: n, commits: total, seconds, commitsPerSec: total / seconds, latencyMs: summarize(lat), recordsPerGroup: rpg, writesPerCommit };
    },
    close: () => log.close(),
  };
}

function sqliteSystem(dir: string): System {
  const db = new Database(path.join(dir, 'bench.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE log (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO log (body) VALUES (?)');
  for (let i = 0; i < 20; i++) insert.run(record(i));
  return {
    name: 'SQLite',
    async run(n, total) {
      // Autocommit: one INSERT = one transaction = one WAL sync.
      const { seconds, lat } = await drive(n, total, async (i) => void insert.run(record(i)));
      return { system: 'SQLite', committers: n, commits: total, seconds, commitsPerSec: total / seconds, latencyMs: summarize(lat) };
    },
    close: async () => void db.close(),
  };
}

async function levelSystem(dir: string): Promise<System> {
  const db = new ClassicLevel<string, Uint8Array>(path.join(dir, 'bench.level'), { valueEncoding: 'view' });
  await db.open();
  let key = 0;
  for (let i = 0; i < 20; i++) await db.put(`k${key++}`, record(i), { sync: true });
  return {
    name: 'LevelDB',
    async run(n, total) {
      const { seconds, lat } = await drive(n, total, async (i) => void (await db.put(`k${key++}`, record(i), { sync: true })));
      return { system: 'LevelDB', committers: n, commits: total, seconds, commitsPerSec: total / seconds, latencyMs: summarize(lat) };
    },
    close: () => db.close(),
  };
}

interface CreateFloor {
  /** write + fsync of the file, rename of its directory, fsync of the parent. */
  readonly floor: Summary;
  /** mkdir of one new directory (one inode) in the same place. */
  readonly mkdir: Summary;
}

/**
 * The physical floor of one new durable object in `dir`: its directory and
 * empty file are made (and the directory fsynced) beforehand, untimed; timed
 * is what no create can skip under POSIX: the bytes durable before the name
 * is published, the name durable after. Two flushes in order.
 */
function measureCreateFloor(dir: string, n: number, bytes: number): CreateFloor {
  const root = fsSync.mkdtempSync(path.join(dir, 'floor-'));
  const parent = path.join(root, 'log');
  fsSync.mkdirSync(parent);
  const body = randomBytes(bytes);
  const mkdirLat: number[] = [];
  const lat: number[] = [];
  try {
    const made: { staging: string; fd: number }[] = [];
    for (let i = 0; i < n; i++) {
      const staging = path.join(parent, `t${i}`);
      const t0 = nowMs();
      fsSync.mkdirSync(staging);
      mkdirLat.push(nowMs() - t0);
      const fd = fsSync.openSync(path.join(staging, 'g1'), 'wx');
      const dfd = fsSync.openSync(staging, 'r');
      fsSync.fsyncSync(dfd);
      fsSync.closeSync(dfd);
      made.push({ staging, fd });
    }
    for (const [i, { staging, fd }] of made.entries()) {
      const t0 = nowMs();
      fsSync.writeSync(fd, body, 0, body.length, 0);
      fsSync.fsyncSync(fd);
      fsSync.closeSync(fd);
      fsSync.renameSync(staging, path.join(parent, `k${i}`));
      const pfd = fsSync.openSync(parent, 'r');
      fsSync.fsyncSync(pfd);
      fsSync.closeSync(pfd);
      lat.push(nowMs() - t0);
    }
  } finally {
    fsSync.rmSync(root, { recursive: true, force: true });
  }
  return { floor: summarize(lat), mkdir: summarize(mkdirLat) };
}

/** Latencies of `n` create-only puts of `bytes` bytes into one directory, one at a time (5 warm-up). */
async function measureStoreCreates(store: ObjectStore, n: number, bytes: number): Promise<Summary> {
  const body = randomBytes(bytes);
  const lat: number[] = [];
  for (let i = -5; i < n; i++) {
    const t0 = nowMs();
    await store.putIfAbsent(`probe/${String(i + 5).padStart(8, '0')}`, body);
    if (i >= 0) lat.push(nowMs() - t0);
  }
  for (const k of await listKeys(store, 'probe/')) await store.delete(k);
  return summarize(lat);
}

function openS3(endpoint: string): Promise<{ store: ObjectStore; dispose: () => Promise<void> }> {
  return openBenchS3(endpoint, 'log');
}

/** Above this spread (fastest / slowest fsync probe of the run) verdicts are flagged as unreliable. */
const NOISY_SPREAD = 2;

async function main(): Promise<void> {
  const env = envInfo();
  const base = envInt('BENCH_N', 300);
  const rounds = envInt('BENCH_ROUNDS', 3);
  const perLevel = (n: number): number => Math.max(base, 25 * n);
  const inflightEnv = process.env.BENCH_LOG_INFLIGHT;
  const logOptions: Record<string, number> = inflightEnv ? { maxInFlight: Number(inflightEnv) } : {};
  const s3Endpoint = process.env.FLOE_S3_ENDPOINT || 'http://127.0.0.1:7480';
  console.log(`floe log bench — ${env.node}, ${env.cpu} x ${env.cores}, load ${env.load1}; ${RECORD_BYTES}-byte records`);

  const fsync: FsyncRate = measureFsyncRate();
  console.log(`raw fsync: ${fmt(fsync.appendsPerSec)} appends/s, p50 ${fmt(fsync.p50Ms)} ms, p99 ${fmt(fsync.p99Ms)} ms (${fsync.dir}, ${fsync.fsType})`);
  if (fsync.fsType === 'tmpfs') console.log(`WARNING: ${fsync.dir} is tmpfs: fsync does nothing there; set TMPDIR to a disk.`);

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'floe-bench-log-'));
  const runs: Run[] = [];
  const skipped: string[] = [];
  /** The fsync rate measured right before each concurrency level (disks drift). */
  const fsyncAt = new Map<number, FsyncRate>();
  /** Every fsync probe of the run, to tell how steady the disk was. */
  const allProbes: FsyncRate[] = [];
  let storePut: Summary | null = null;
  let storePutInline: Summary | null = null;
  let floor: CreateFloor | null = null;
  const probeN = Math.min(base, 200);
  try {
    floor = measureCreateFloor(dir, probeN, RECORD_BYTES + 64);
    console.log(`new-object floor (write+fsync, rename, fsync parent): p50 ${fmt(floor.floor.p50)} ms; one mkdir here: p50 ${fmt(floor.mkdir.p50)} ms`);
    const local = await LocalStore.open(path.join(dir, 'floe'));
    try {
      // What one segment write costs the store by itself: a create-only put of
      // a one-record segment's size, one at a time; and the same with
      // opt-in prepared staging directories.
      const inline = await LocalStore.open(path.join(dir, 'floe-inline'), { prepare: true });
      try {
        storePutInline = await measureStoreCreates(inline, probeN, RECORD_BYTES + 64);
      } finally {
        await inline.close();
      }
      storePut = await measureStoreCreates(local, probeN, RECORD_BYTES + 64);
      console.log(`local putIfAbsent alone: p50 ${fmt(storePut.p50)} ms, p99 ${fmt(storePut.p99)} ms (with prepare: true: p50 ${fmt(storePutInline.p50)} ms)`);
      const systems = [await floeSystem('floe log (local)', new MetricsStore(local), logOptions), sqliteSystem(dir), await levelSystem(dir)];
      try {
        // Systems take turns at each level, so a drifting disk hits them alike.
        for (const n of LEVELS) {
          const probes: FsyncRate[] = [];
          const bySystem = new Map<string, Run[]>(systems.map((sys) => [sys.name, []]));
          for (let round = 0; round < rounds; round++) {
            probes.push(measureFsyncRate({ appends: 100 }));
            allProbes.push(probes[probes.length - 1]!);
            for (const sys of round % 2 === 0 ? systems : [...systems].reverse()) {
              const r = await sys.run(n, perLevel(n));
              bySystem.get(sys.name)!.push(r);
              console.log(`${r.system} x${n}: ${fmt(r.commitsPerSec)} commits/s, p50 ${fmt(r.latencyMs.p50)} ms${r.recordsPerGroup ? `, ${fmt(r.recordsPerGroup)} records/group` : ''}`);
            }
          }
          fsyncAt.set(n, medianFsync(probes));
          for (const sys of systems) runs.push(medianRun(bySystem.get(sys.name)!));
        }
      } finally {
        for (const sys of systems) await sys.close();
      }
    } finally {
      await local.close();
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  try {
    const s3 = await openS3(s3Endpoint);
    try {
      const sys = await floeSystem('floe log (s3)', new MetricsStore(s3.store), { maxInFlight: 4 });
      try {
        for (const n of [1, 64]) {
          const r = await sys.run(n, Math.max(100, 10 * n));
          runs.push(r);
          console.log(`${r.system} x${n}: ${fmt(r.commitsPerSec)} commits/s, ${fmt(r.recordsPerGroup ?? 0)} records/group`);
        }
      } finally {
        await sys.close();
      }
    } finally {
      await s3.dispose();
    }
  } catch (err) {
    skipped.push(`s3: ${asError(err).message}`);
    console.log(`s3: SKIPPED — ${asError(err).message}`);
  }

  const find = (system: string, n: number): Run | undefined => runs.find((r) => r.system === system && r.committers === n);
  const sqliteAt = (n: number): number => find('SQLite', n)?.commitsPerSec ?? Number.NaN;
  const rateAt = (n: number): number => (fsyncAt.get(n) ?? fsync).appendsPerSec;
  const headers = ['system', 'committers', 'commits/s', 'range', 'p50 ms', 'p99 ms', 'records/group', 'store writes/commit', 'x SQLite', 'fsync/s then', 'x fsync rate'];
  const cells: Cell[][] = runs.map((r) => [
    r.system,
    r.committers,
    r.commitsPerSec,
    r.range ? `${fmt(r.range[0])}-${fmt(r.range[1])}` : '-',
    r.latencyMs.p50,
    r.latencyMs.p99,
    r.recordsPerGroup ?? '-',
    r.writesPerCommit ?? '-',
    r.commitsPerSec / sqliteAt(r.committers),
    fsyncAt.has(r.committers) && !r.system.includes('s3') ? rateAt(r.committers) : '-',
    r.commitsPerSec / rateAt(r.committers),
  ]);
  const fsyncCells: Cell[][] = [['4 KiB append + fsync (one file)', fsync.appends, fsync.appendsPerSec, fsync.p50Ms, fsync.p99Ms]];
  if (floor) {
    fsyncCells.push(
      [`new-object floor: write ${RECORD_BYTES + 64} B + fsync, rename, fsync parent`, floor.floor.n, 1000 / floor.floor.mean, floor.floor.p50, floor.floor.p99],
      ['mkdir of one new directory (inode allocation)', floor.mkdir.n, 1000 / floor.mkdir.mean, floor.mkdir.p50, floor.mkdir.p99],
    );
  }
  if (storePut) fsyncCells.push([`LocalStore.putIfAbsent, ${RECORD_BYTES + 64} B, alone`, storePut.n, 1000 / storePut.mean, storePut.p50, storePut.p99]);
  if (storePutInline) {
    fsyncCells.push([`... with prepare: true (opt-in prepared staging directories)`, storePutInline.n, 1000 / storePutInline.mean, storePutInline.p50, storePutInline.p99]);
  }

  const rates = [fsync, ...allProbes].map((p) => p.appendsPerSec);
  const spread = Math.max(...rates) / Math.min(...rates);
  const noisy = spread > NOISY_SPREAD;
  const verdict = (ok: boolean): string => (ok ? 'MET' : 'MISSED') + (noisy ? ' (unreliable)' : '');
  const noiseNote = noisy
    ? `WARNING: the disk's fsync rate varied ${fmt(spread)}x during this run (${fmt(Math.min(...rates))} to ${fmt(Math.max(...rates))}/s; other load on the machine): ratios and verdicts are unreliable, run again when it is quiet.`
    : `The disk's fsync rate varied ${fmt(spread)}x during this run (${fmt(Math.min(...rates))} to ${fmt(Math.max(...rates))}/s).`;
  const f64 = find('floe log (local)', 64);
  const f1 = find('floe log (local)', 1);
  const targets: Cell[][] = [];
  if (f64 && f1) {
    const vsSqlite = f64.commitsPerSec / sqliteAt(64);
    const ceiling = (f64.recordsPerGroup ?? 0) * rateAt(64);
    const ofCeiling = f64.commitsPerSec / ceiling;
    const lone = fsyncAt.get(1) ?? fsync;
    const loneRatio = f1.latencyMs.p50 / lone.p50Ms;
    targets.push(
      ['64 committers vs SQLite', '>= 20x', `${fmt(vsSqlite)}x`, verdict(vsSqlite >= 20)],
      ['64 committers vs records/group x fsync rate', '>= 50%', `${fmt(ofCeiling * 100)}% of ${fmt(ceiling)}/s`, verdict(ofCeiling >= 0.5)],
      ['lone committer p50 vs raw fsync p50', '<= 1.5x', `${fmt(loneRatio)}x (${fmt(f1.latencyMs.p50)} vs ${fmt(lone.p50Ms)} ms)`, verdict(loneRatio <= 1.5)],
    );
    if (floor) {
      const floorRatio = floor.floor.p50 / fsync.p50Ms;
      targets.push(
        ['(reference) new-object floor p50 vs raw fsync p50 (the two probes back to back)', '-', `${fmt(floorRatio)}x (${fmt(floor.floor.p50)} vs ${fmt(fsync.p50Ms)} ms)`, '-'],
        ['(reference) lone committer p50 vs new-object floor p50', '-', `${fmt(f1.latencyMs.p50 / floor.floor.p50)}x`, '-'],
      );
    }
  }

  console.log('\nraw fsync (same run):');
  console.log(textTable(['probe', 'n', 'appends/s', 'p50 ms', 'p99 ms'], fsyncCells));
  console.log('\n' + textTable(headers, cells));
  if (targets.length) console.log('\n' + textTable(['target', 'goal', 'measured', 'verdict'], targets));
  console.log(noiseNote);
  for (const s of skipped) console.log(`(skipped ${s})`);

  const md = [
    '## Physical reference (same run)',
    '',
    markdownTable(['probe', 'n', 'appends/s', 'p50 ms', 'p99 ms'], fsyncCells),
    '',
    `\`fs.writeSync\` + \`fs.fsyncSync\` of 4 KiB blocks to one file in \`${fsync.dir}\` (${fsync.fsType}), the file system every local system below used.`,
    'The new-object floor is what any durable create of a new name must do under POSIX, timed with everything else made beforehand: the bytes made durable (fsync) before the name is published (rename), the name made durable (fsync of the parent) before it is acknowledged, i.e. two flushes in order.',
    'A commit group is one new segment object (the log spec), so this floor bounds a lone committer from below: the 1.5x-raw-fsync target is below it whenever the floor is above 1.5x.',
    'The mkdir row is the price of one new inode here and now (a new object needs two); the last two rows are the local store alone writing one segment-sized object, with its default (inodes made inline) and with the opt-in `prepare: true`.',
    '',
    '## Durable commits',
    '',
    markdownTable(headers, cells),
    '',
    `Each committer appends one ${RECORD_BYTES}-byte record and waits until it is durable, in a loop; commits per round: max(${base}, 25 x committers).`,
    `At each concurrency level the three local systems run back to back right after a 100-append fsync probe, ${rounds} rounds (order alternating), since this disk's speed drifts; each row is the round with the median commits/s ("range": all rounds), "fsync/s then" the median probe, "x fsync rate" divides by it.`,
    'SQLite: better-sqlite3, WAL, synchronous=FULL, one INSERT per transaction (synchronous: committers take turns).',
    'LevelDB: classic-level, put with sync: true. floe: openLogWriter on LocalStore (fsync on), ' +
      (inflightEnv ? `maxInFlight ${inflightEnv}` : 'default options') +
      '; S3 rows use maxInFlight 4.',
    '"store writes/commit" counts PUTs through the metrics decorator: 1 / records per group.',
    '',
    '## Targets',
    '',
    targets.length ? markdownTable(['target', 'goal', 'measured', 'verdict'], targets) : '(local runs missing)',
    '',
    noiseNote,
    ...(skipped.length ? ['', '## Skipped', '', ...skipped.map((s) => `- ${s}`)] : []),
  ].join('\n');
  const out = writeReport({
    name: 'log',
    title: 'floe log benchmark',
    markdown: md,
    data: { fsync, floor, storePut, storePutInline, runs, targets, skipped, recordBytes: RECORD_BYTES, rounds, fsyncSpread: spread },
    env,
  });
  console.log(`\nwrote ${out.md} and ${out.json}`);
}

await main();
