/**
 * `npm run demo`: a tour of floe on a local directory (./floe-demo).
 *
 * 1. The object store underneath: put, list, read back, compare-and-swap.
 * 2. A database on the same kind of store: a table of Debian packages,
 *    durable point writes through the group-commit log, a bulk append to
 *    Parquet, reads and scans, a flush, time travel, and a reopen.
 */
import { readFileSync, existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import * as floe from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(process.cwd(), 'floe-demo');

function say(s: string): void {
  console.log(s);
}

async function storeTour(): Promise<void> {
  const dir = path.join(root, 'objects');
  const store = await floe.openStore(dir);
  say(`# 1. ObjectStore on ${store.location}`);
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const a = await store.put('greetings/hello.txt', enc.encode('hello, object storage'));
  say(`put greetings/hello.txt -> etag ${a.etag}`);
  await store.put('greetings/bye.txt', enc.encode('goodbye'));
  const page = await store.list('greetings/');
  say(`list greetings/ -> ${page.keys.join(', ')}`);
  const got = await store.get('greetings/hello.txt');
  say(`get greetings/hello.txt -> "${dec.decode(got.bytes)}"`);
  const swapped = await store.putIfMatch('greetings/hello.txt', enc.encode('hello again'), got.etag);
  say(`putIfMatch with the current etag -> new etag ${swapped.etag}`);
  try {
    await store.putIfMatch('greetings/hello.txt', enc.encode('lost race'), got.etag);
  } catch (err) {
    if (!floe.isFloeError(err, 'CAS_CONFLICT')) throw err;
    say(`putIfMatch with the stale etag -> ${err.code} (as it should)`);
  }
  await store.close();
}

function corpus(limit: number): Array<Record<string, unknown>> {
  const file = path.resolve(here, '../../../shared/data/debian-packages.jsonl.gz');
  if (!existsSync(file)) {
    return Array.from({ length: limit }, (_, i) => ({
      package: `pkg-${i}`, section: i % 3 ? 'libs' : 'utils', installed_size_kb: BigInt(i * 7), summary: `package number ${i}`,
    }));
  }
  const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n');
  const out: Array<Record<string, unknown>> = [];
  for (const line of lines) {
    if (!line) continue;
    const p = JSON.parse(line) as Record<string, unknown>;
    out.push({
      package: p.package,
      section: p.section ?? null,
      installed_size_kb: p.installed_size_kb === null || p.installed_size_kb === undefined ? null : BigInt(p.installed_size_kb as number),
      summary: p.summary ?? null,
    });
    if (out.length >= limit) break;
  }
  return out;
}

async function databaseTour(): Promise<void> {
  const uri = path.join(root, 'db');
  say(`\n# 2. Database at ${uri}`);
  const db = await floe.open(uri);
  const t = await db.createTable(
    'packages',
    { package: { type: 'utf8', nullable: false }, section: 'utf8', installed_size_kb: 'int64', summary: 'utf8' },
    { primaryKey: 'package' },
  );
  const rows = corpus(5000);
  const t0 = performance.now();
  await t.append(rows);
  say(`append ${rows.length} packages as one Parquet commit in ${(performance.now() - t0).toFixed(0)} ms`);

  const t1 = performance.now();
  await Promise.all([
    t.upsert({ package: 'floe', section: 'database', installed_size_kb: 1n, summary: 'tables on object storage' }),
    t.upsert({ package: rows[0]!.package, section: 'edited', installed_size_kb: 0n, summary: 'changed by an upsert' }),
    t.delete(rows[1]!.package),
  ]);
  say(`3 durable point writes (group-committed) in ${(performance.now() - t1).toFixed(1)} ms`);

  say(`get floe -> ${JSON.stringify(await t.get('floe'), bigints)}`);
  say(`get ${String(rows[1]!.package)} (deleted) -> ${JSON.stringify(await t.get(rows[1]!.package))}`);
  const big = await t.scan({ where: floe.where.gt('installed_size_kb', 100_000n), columns: ['package', 'installed_size_kb'], limit: 3 }).toArray();
  say(`scan installed_size_kb > 100000, limit 3 -> ${JSON.stringify(big, bigints)}`);
  say(`count -> ${await t.count()}`);

  await db.flush();
  const s = await t.stats();
  say(`flush -> version ${s.version}, ${s.files} data files, ${s.rows} live rows, ${s.deletedRows} masked`);
  const versions = await t.versions();
  say(`versions -> ${versions.map((v) => `${v.version}:${v.operation}`).join(', ')}`);
  const before = await t.checkout(2);
  say(`checkout(2).get(${String(rows[0]!.package)}).section -> ${String((await before.get(rows[0]!.package))?.section)} (before the upsert)`);
  await db.close();

  const again = await floe.open(uri, { readOnly: true });
  const pt = await again.table('packages');
  say(`reopen read-only -> tables ${again.listTables().join(', ')}, ${await pt.count()} rows`);
  for (const f of await pt.dataFiles()) say(`data file (plain Parquet, ${f.rows} rows, ${f.deletedRows} masked): ${f.location}`);
  await again.close();
}

function bigints(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

await rm(root, { recursive: true, force: true });
await storeTour();
await databaseTour();
say(`\nEverything is in ${root}. \`floe files ${path.join(root, 'db')} packages\` lists the Parquet files for DuckDB, Spark or Trino.`);
