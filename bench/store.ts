/**
 * Store benchmark: latency of put, get and putIfMatch at 1 KiB and 1 MiB on
 * each ObjectStore backend — memory, a local directory in os.tmpdir() (with
 * and without prepared staging directories for new objects), and
 * S3 (FLOE_S3_ENDPOINT, else http://127.0.0.1:7480, if it answers) — next to
 * the physical reference measured in the same run: the raw fsync rate of
 * 4 KiB appends to one file in os.tmpdir().
 *
 * Figures, not a test: nothing is asserted. Sequential, one request at a
 * time, so the figures are per-request latency. Counts: BENCH_N requests per
 * op at 1 KiB (default 200) and max(5, BENCH_N/8) at 1 MiB; BENCH_FSYNC_N
 * appends for the fsync probe (default 200). Each backend starts empty and
 * is emptied afterwards. Writes bench/results/store.md and store.json.
 *
 *   node dist/bench/store.js
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asError } from '../src/errors.js';
import { listKeys } from '../src/store/list.js';
import { LocalStore } from '../src/store/local.js';
import { MemoryStore } from '../src/store/memory.js';
import type { ObjectStore } from '../src/store/types.js';
import type { Cell, FsyncRate, Summary } from './lib.js';
import { envInfo, envInt, markdownTable, openBenchS3, measureFsyncRate, summarize, textTable, timeEach, writeReport } from './lib.js';

interface Backend {
  readonly name: string;
  readonly store: ObjectStore;
  /** Close the store and remove everything the bench created. */
  dispose(): Promise<void>;
}

interface Row {
  readonly backend: string;
  readonly op: 'put' | 'get' | 'putIfMatch';
  readonly sizeLabel: string;
  readonly bytes: number;
  readonly latencyMs: Summary;
  readonly opsPerSec: number;
}

const KiB = 1024;
const MiB = 1024 * 1024;

async function emptyStore(store: ObjectStore): Promise<void> {
  for (const k of await listKeys(store, '')) await store.delete(k);
}

async function openMemory(): Promise<Backend> {
  const store = new MemoryStore('bench');
  return { name: 'memory', store, dispose: () => store.close() };
}

async function openLocal(prepare = false): Promise<Backend> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'floe-bench-store-'));
  try {
    const store = await LocalStore.open(dir, { prepare });
    return {
      name: prepare ? 'local (prepare: true)' : 'local',
      store,
      dispose: async () => {
        await store.close();
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function openS3(endpoint: string): Promise<Backend> {
  return { name: 's3', ...(await openBenchS3(endpoint, 'store')) };
}

async function measure(b: Backend, sizeLabel: string, bytes: number, n: number): Promise<Row[]> {
  const { store } = b;
  const body = randomBytes(bytes);
  const warmup = 3;
  const dir = `b${sizeLabel.replace(/\s+/g, '')}`;
  const row = (op: Row['op'], lat: number[]): Row => {
    const s = summarize(lat);
    return { backend: b.name, op, sizeLabel, bytes, latencyMs: s, opsPerSec: 1000 / s.mean };
  };

  // put: a fresh key per request (warm-up keys are negative and kept apart).
  const putLat = await timeEach(n, async (i) => void (await store.put(`${dir}/put/${i}`, body)), warmup);
  // get: read back what put wrote.
  const getLat = await timeEach(
    n,
    async (i) => {
      const r = await store.get(`${dir}/put/${i < 0 ? i + warmup : i}`);
      if (r.bytes.length !== bytes) throw new Error(`get returned ${r.bytes.length} bytes, expected ${bytes}`);
    },
    warmup,
  );
  // putIfMatch: a chain of swaps on one key, each with the previous etag.
  let etag = (await store.put(`${dir}/cas`, body)).etag;
  const casLat = await timeEach(n, async () => void (etag = (await store.putIfMatch(`${dir}/cas`, body, etag)).etag), warmup);
  await emptyStore(store);
  return [row('put', putLat), row('get', getLat), row('putIfMatch', casLat)];
}

async function main(): Promise<void> {
  const env = envInfo();
  const n1k = envInt('BENCH_N', 200);
  const n1m = Math.max(5, Math.round(n1k / 8));
  const s3Endpoint = process.env.FLOE_S3_ENDPOINT || 'http://127.0.0.1:7480';

  console.log(`floe store bench — ${env.node}, ${env.cpu} × ${env.cores}, load ${env.load1}`);
  console.log(`requests per op: ${n1k} at 1 KiB, ${n1m} at 1 MiB (BENCH_N=${n1k})\n`);

  const fsync: FsyncRate = measureFsyncRate();
  console.log(
    `physical reference: ${fmtInt(fsync.appendsPerSec)} fsync'd 4 KiB appends/s, p50 ${fsync.p50Ms.toFixed(3)} ms, ` +
      `p99 ${fsync.p99Ms.toFixed(3)} ms (${fsync.appends} appends in ${fsync.dir}, ${fsync.fsType})\n`,
  );
  if (fsync.fsType === 'tmpfs') console.log(`WARNING: ${fsync.dir} is tmpfs: fsync does nothing there; set TMPDIR to a disk.\n`);

  const rows: Row[] = [];
  const skipped: Array<{ backend: string; reason: string }> = [];
  const openers: Array<[string, () => Promise<Backend>]> = [
    ['memory', openMemory],
    ['local', () => openLocal(false)],
    ['local (prepare: true)', () => openLocal(true)],
    ['s3', () => openS3(s3Endpoint)],
  ];
  for (const [name, open] of openers) {
    let backend: Backend;
    try {
      backend = await open();
    } catch (err) {
      const reason = asError(err).message;
      skipped.push({ backend: name, reason });
      console.log(`${name}: SKIPPED — ${reason}`);
      continue;
    }
    try {
      await emptyStore(backend.store);
      rows.push(...(await measure(backend, '1 KiB', KiB, n1k)));
      rows.push(...(await measure(backend, '1 MiB', MiB, n1m)));
      console.log(`${name}: done (${backend.store.location})`);
    } finally {
      await backend.dispose();
    }
  }

  const headers = ['backend', 'op', 'size', 'n', 'p50 ms', 'p99 ms', 'mean ms', 'ops/s', 'p50 / fsync p50'];
  const cells: Cell[][] = rows.map((r) => [
    r.backend,
    r.op,
    r.sizeLabel,
    r.latencyMs.n,
    r.latencyMs.p50,
    r.latencyMs.p99,
    r.latencyMs.mean,
    r.opsPerSec,
    r.latencyMs.p50 / fsync.p50Ms,
  ]);
  console.log('\n' + textTable(headers, cells));
  for (const s of skipped) console.log(`(${s.backend} skipped: ${s.reason})`);

  const fsyncRow: Cell[][] = [['4 KiB append + fsync', fsync.appends, fsync.appendsPerSec, fsync.p50Ms, fsync.p99Ms]];
  const md = [
    '## Physical reference (same run)',
    '',
    markdownTable(['probe', 'n', 'appends/s', 'p50 ms', 'p99 ms'], fsyncRow),
    '',
    `Measured with \`fs.writeSync\` + \`fs.fsyncSync\` on one file in \`${fsync.dir}\` (${fsync.fsType}), the file system the local backend used.`,
    '',
    '## Store operations (sequential, one request at a time)',
    '',
    markdownTable(headers, cells),
    '',
    '"p50 / fsync p50" is how many raw fsync latencies one request costs: a durable local put',
    'cannot beat 1 (it fsyncs the file and its directory), memory is far below it.',
    '"local" (the default) makes each new object\'s inodes inline; "local (prepare: true)" (opt-in) prepares staging directories in the background in a directory that keeps receiving new objects (src/store/local.ts), which only put of a fresh key uses.',
    '',
    ...(skipped.length
      ? ['## Skipped', '', ...skipped.map((s) => `- **${s.backend}**: ${s.reason}`), '']
      : []),
    `Settings: BENCH_N=${n1k} (1 KiB), ${n1m} at 1 MiB, 3 warm-up requests per op not counted; put writes a fresh key per request, get reads those keys back, putIfMatch chains swaps on one key.`,
  ].join('\n');
  const out = writeReport({
    name: 'store',
    title: 'floe store benchmark',
    markdown: md,
    env,
    data: { settings: { n1k, n1m, s3Endpoint }, fsync, rows, skipped },
  });
  console.log(`\nwrote ${out.md} and ${out.json}`);
}

function fmtInt(v: number): string {
  return Math.round(v).toLocaleString('en-US');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
