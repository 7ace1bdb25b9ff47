/**
 * Shared benchmark helpers: timing, percentiles, the physical fsync
 * reference, aligned console tables and markdown + JSON reports.
 *
 * Benchmarks report figures; they never assert. Iteration counts are bounded
 * by default so a bench finishes in seconds on a 2-core machine; each bench
 * scales them from the environment (BENCH_N). Reports go to bench/results/
 * in the repository (override with BENCH_RESULTS_DIR); each run overwrites
 * the previous report of the same name.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { listKeys } from '../src/store/list.js';
import { S3Store } from '../src/store/s3.js';
import type { ObjectStore } from '../src/store/types.js';

// ---- timing ----------------------------------------------------------------

/** Milliseconds from a monotonic clock. */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank percentile of an ascending array (p in [0, 100]). */
export function percentile(sortedAsc: readonly number[], p: number): number {
  if (sortedAsc.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sortedAsc.length);
  return sortedAsc[Math.min(sortedAsc.length, Math.max(1, rank)) - 1]!;
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    min: s[0] ?? Number.NaN,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? Number.NaN,
    mean: s.length ? sum / s.length : Number.NaN,
  };
}

/**
 * Run `fn(i)` for i in [0, n) sequentially after `warmup` unrecorded calls
 * (which get negative indices), returning per-call latencies in ms.
 */
export async function timeEach(n: number, fn: (i: number) => Promise<void>, warmup = 0): Promise<number[]> {
  for (let i = -warmup; i < 0; i++) await fn(i);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    await fn(i);
    out.push(nowMs() - t0);
  }
  return out;
}

/** A positive integer from the environment, or the default. */
export function envInt(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return v;
}

// ---- physical reference: fsync -------------------------------------------

export interface FsyncRate {
  /** Directory the probe file lived in (the file system measured). */
  readonly dir: string;
  /** File system type of `dir` (from statfs), e.g. ext4; tmpfs makes fsync a no-op. */
  readonly fsType: string;
  readonly blockBytes: number;
  readonly appends: number;
  /** Sustained appends per second (each = write + fsync). */
  readonly appendsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface FsyncOptions {
  /** Where to put the probe file (default os.tmpdir()). */
  readonly dir?: string;
  /** Bytes per append (default 4096). */
  readonly blockBytes?: number;
  /** Number of appends measured (default 200, env BENCH_FSYNC_N). */
  readonly appends?: number;
}

/**
 * The raw durable-append rate of one file: `writeSync` of a block followed
 * by `fsyncSync`, in a loop. This is the ceiling for any design that makes
 * each commit durable with one fsync of its own; group commit beats it by
 * sharing an fsync between commits. The probe file is removed afterwards.
 */
export function measureFsyncRate(options: FsyncOptions = {}): FsyncRate {
  const base = options.dir ?? os.tmpdir();
  const blockBytes = options.blockBytes ?? 4096;
  const appends = options.appends ?? envInt('BENCH_FSYNC_N', 200);
  const dir = fs.mkdtempSync(path.join(base, 'floe-fsync-'));
  const file = path.join(dir, 'probe.log');
  const block = Buffer.alloc(blockBytes, 0x5a);
  const fd = fs.openSync(file, 'a');
  const lat: number[] = [];
  let total = 0;
  try {
    // Warm-up: the first fsyncs also persist the new inode and directory entry.
    for (let i = 0; i < 5; i++) {
      fs.writeSync(fd, block);
      fs.fsyncSync(fd);
    }
    const start = nowMs();
    for (let i = 0; i < appends; i++) {
      const t0 = nowMs();
      fs.writeSync(fd, block);
      fs.fsyncSync(fd);
      lat.push(nowMs() - t0);
    }
    total = nowMs() - start;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const s = summarize(lat);
  return { dir: base, fsType: fsTypeOf(base), blockBytes, appends, appendsPerSec: (appends * 1000) / total, p50Ms: s.p50, p99Ms: s.p99 };
}

const FS_MAGIC: Record<number, string> = {
  0xef53: 'ext2/3/4',
  0x01021994: 'tmpfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x794c7630: 'overlayfs',
  0x2fc12fc1: 'zfs',
  0x6969: 'nfs',
  0x65735546: 'fuse',
};

/** The file system type holding `dir`, by statfs magic number. */
export function fsTypeOf(dir: string): string {
  const type = fs.statfsSync(dir).type;
  return FS_MAGIC[type] ?? `0x${type.toString(16)}`;
}

// ---- formatting --------------------------------------------------------------

export type Cell = string | number;

/** A number with sensible precision for latencies and rates. */
export function fmt(v: number, digits?: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (digits !== undefined) return v.toFixed(digits);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

const cellText = (c: Cell): string => (typeof c === 'number' ? fmt(c) : c);

/** A plain-text table with right-aligned numeric columns, for the console. */
export function textTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = rows.map((r) => r.map(cellText));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] === '-'));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...text.map(line)].join('\n');
}

/** The same table in GitHub markdown. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] === '-'));
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    `| ${headers.map(esc).join(' | ')} |`,
    `|${numeric.map((n) => (n ? ' ---: ' : ' --- ')).join('|')}|`,
    ...rows.map((r) => `| ${r.map((c) => esc(cellText(c))).join(' | ')} |`),
  ].join('\n');
}

// ---- environment and reports ---------------------------------------------------

export interface EnvInfo {
  readonly date: string;
  readonly node: string;
  readonly platform: string;
  readonly cpu: string;
  readonly cores: number;
  readonly memGiB: number;
  readonly tmpdir: string;
  /** 1-minute load average when the run started: other work skews latencies. */
  readonly load1: number;
}

export function envInfo(): EnvInfo {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    tmpdir: os.tmpdir(),
    load1: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}

export function envMarkdown(env: EnvInfo): string {
  return `${env.date} · Node ${env.node} · ${env.platform} · ${env.cpu} × ${env.cores} · ${env.memGiB} GiB RAM · tmpdir ${env.tmpdir} · load ${env.load1} at start`;
}

/** bench/results in the repository (this file runs from dist/bench/). */
export function resultsDir(): string {
  const fromEnv = process.env.BENCH_RESULTS_DIR;
  if (fromEnv) return path.resolve(fromEnv);
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/bench/lib.js -> <repo>/bench/results; bench/lib.ts (run directly) -> bench/results
  const repo = path.basename(path.dirname(here)) === 'dist' ? path.resolve(here, '..', '..') : path.resolve(here, '..');
  return path.join(repo, 'bench', 'results');
}

export interface Report {
  /** File stem: bench/results/<name>.md and <name>.json. */
  readonly name: string;
  readonly title: string;
  /** Markdown body (tables, notes); the title and environment line are added. */
  readonly markdown: string;
  /** Machine-readable figures. */
  readonly data: unknown;
  readonly env?: EnvInfo;
}

/** Write <name>.md and <name>.json under resultsDir(); returns their paths. */
export function writeReport(report: Report): { md: string; json: string } {
  const dir = resultsDir();
  fs.mkdirSync(dir, { recursive: true });
  const env = report.env ?? envInfo();
  const md = path.join(dir, `${report.name}.md`);
  const json = path.join(dir, `${report.name}.json`);
  fs.writeFileSync(md, `# ${report.title}\n\n${envMarkdown(env)}\n\n${report.markdown.trim()}\n`);
  fs.writeFileSync(json, JSON.stringify({ name: report.name, title: report.title, env, data: report.data }, null, 2) + '\n');
  return { md, json };
}

/**
 * An S3 store under a fresh random prefix for one bench, after checking the
 * server answers at all (so "no server" reads as such, not as an S3 error).
 * `dispose` deletes everything the bench wrote and closes the client.
 */
export async function openBenchS3(endpoint: string, bench: string): Promise<{ store: ObjectStore; dispose: () => Promise<void> }> {
  try {
    await fetch(endpoint, { signal: AbortSignal.timeout(3000) });
  } catch (err) {
    throw new Error(`no S3 server answers at ${endpoint} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  const store = await S3Store.open({
    bucket: process.env.FLOE_S3_BUCKET ?? 'floe-test',
    prefix: `bench/${bench}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}/`,
    endpoint,
    region: process.env.AWS_REGION ?? 'us-east-1',
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'floe',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'floesecret',
    },
  });
  return {
    store,
    dispose: async () => {
      try {
        for (const k of await listKeys(store, '')) await store.delete(k);
      } finally {
        await store.close();
      }
    },
  };
}
