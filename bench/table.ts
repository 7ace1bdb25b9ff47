/**
 * Table benchmark (floe issue 5): floe's table API side by side with peers,
 * all in ONE run, on the same machine, the same data and comparable
 * durability settings. Figures, not a test: nothing is asserted.
 *
 * Data: the Debian packages corpus (63,666 JSON lines), repeated with a
 * suffix on `package` ("name~1", "name~2", ...) to reach the row counts; the
 * other columns of a repeated row are the same strings as the original's.
 *
 * Sections (each prints floe's figure, every peer's, the ratio floe / peer
 * and whether the issue's target is met):
 *  1. bulk append rows/s: floe `t.append(generator)` (one call, one commit)
 *     vs LanceDB (rows -> Arrow in chunks, createTable + `add` per chunk) and
 *     the DuckDB appender (file database). Also, for context, the bulk loads
 *     of the SQLite and classic-level copies used by section 3.
 *  2. durable single-row upserts/s at 1 and 64 concurrent writers: floe
 *     `t.upsert(row)` vs SQLite (WAL, synchronous=FULL, one INSERT OR
 *     REPLACE per transaction) and LanceDB `mergeInsert` of one row.
 *  3. point get latency p50/p99 on the section 1 table (rows in data files),
 *     warm (a small key set, repeated) and cold (a fresh read-only open,
 *     random keys), plus floe gets served by the memtable (section 2's
 *     table); vs SQLite (primary-key lookup) and classic-level `get`.
 *  4. full scan rows/s of three columns: floe `t.scan({columns})` vs DuckDB
 *     `read_parquet` over floe's own data files (and LanceDB's scan).
 *  5. peak RSS of a keyless append of 2M rows x BENCH_SCALE from a
 *     generator, in a child process (getrusage max RSS, which catches peaks
 *     inside synchronous encoding that an interval sampler misses).
 * The raw fsync rate of the disk under os.tmpdir() is measured at the start
 * and at the end of the run (bench/lib.ts) and printed beside the figures.
 *
 * Scale: BENCH_SCALE (default 1) multiplies every count: 500k appended rows,
 * 300 / 3,000 upserts (1 / 64 writers), 2M rows for the RSS child
 * (BENCH_SCALE=5 gives 10M). Latency sampling is bounded by count and by a
 * time budget per series, so the default run stays within a few minutes on
 * 2 cores. Every database lives in a fresh directory under os.tmpdir() and
 * is removed afterwards. Writes bench/results/table.md and table.json.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/table.js
 *   BENCH_SCALE=5 node dist/bench/table.js
 *   BENCH_SECTIONS=3,4 node dist/bench/table.js   (read side only: see mainRead)
 *   BENCH_SECTIONS=1,5 node dist/bench/table.js   (append side only: see mainAppend)
 *
 * The child mode (`node dist/bench/table.js --rss-child <rows> <rowsPerFile>`)
 * is internal: it appends and prints one JSON line.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import * as arrow from 'apache-arrow';
import { asError } from '../src/errors.js';
import * as floe from '../src/index.js';
import { encoderMemoryBytes, encoderThreadMemory } from '../src/format/parquet-encode.js';
import type { Cell, EnvInfo, FsyncRate, Summary } from './lib.js';
import { envInfo, envInt, fmt, markdownTable, measureFsyncRate, nowMs, summarize, textTable, writeReport } from './lib.js';

type LanceModule = typeof import('@lancedb/lancedb');
type LanceTable = import('@lancedb/lancedb').Table;
type DuckModule = typeof import('@duckdb/node-api');
type SqliteCtor = typeof import('better-sqlite3');
type SqliteDb = import('better-sqlite3').Database;
type LevelCtor = typeof import('classic-level').ClassicLevel;

// ---- settings ----------------------------------------------------------------

const CORPUS = process.env.FLOE_CORPUS ?? '/work/shared/data/debian-packages.jsonl.gz';
const SCALE = envInt('BENCH_SCALE', 1);
const APPEND_ROWS = envInt('BENCH_APPEND_ROWS', 500_000 * SCALE);
const RSS_ROWS = envInt('BENCH_RSS_ROWS', 2_000_000 * SCALE);
/** A second RSS child with a small rowsPerFile shows what the knob does. */
const RSS_SMALL_FILE_ROWS = 100_000;
const RSS_SMALL_ROWS = Math.max(RSS_SMALL_FILE_ROWS * 3, Math.round(RSS_ROWS / 8));
const UPSERTS_1 = 300 * SCALE;
const UPSERTS_64 = 3_000 * SCALE;
const LANCE_UPSERTS_1 = 15 * SCALE;
const LANCE_UPSERTS_64 = 64;
const LANCE_CHUNK = 100_000;
const WARM_KEYS = 64;
const GET_WARM_MAX = 300 * SCALE;
const GET_COLD_MAX = 40 * SCALE;
/** Wall-clock budget of one latency series (ms); a series stops at its count or its budget. */
const SERIES_BUDGET_MS = envInt('BENCH_SERIES_MS', 8_000) * SCALE;
const SCAN_COLUMNS = ['package', 'section', 'size_bytes'] as const;
const SCAN_ROUNDS = 3;
const MiB = 2 ** 20;

// ---- corpus --------------------------------------------------------------------

/** A type alias (not an interface) so a Pkg is assignable to floe's Row. */
type Pkg = {
  package: string;
  section: string | null;
  priority: string | null;
  architecture: string | null;
  installed_size_kb: number | null;
  size_bytes: number | null;
  version: string | null;
  maintainer: string | null;
  depends: string | null;
  summary: string | null;
  description: string | null;
};

/** Column order shared by every system. */
const COLUMNS = [
  'package',
  'section',
  'priority',
  'architecture',
  'installed_size_kb',
  'size_bytes',
  'version',
  'maintainer',
  'depends',
  'summary',
  'description',
] as const;
type Col = (typeof COLUMNS)[number];
const isIntCol = (c: Col): c is 'installed_size_kb' | 'size_bytes' => c === 'installed_size_kb' || c === 'size_bytes';

const FLOE_SCHEMA: floe.SchemaInput = Object.fromEntries(
  COLUMNS.map((c) => [c, c === 'package' ? { type: 'utf8', nullable: false } : isIntCol(c) ? 'int64' : 'utf8']),
);

function loadCorpus(file: string): Pkg[] {
  const text = gunzipSync(readFileSync(file)).toString('utf8');
  const out: Pkg[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const o = JSON.parse(line) as Record<string, unknown>;
    const str = (k: string): string | null => {
      const v = o[k];
      return typeof v === 'string' ? v : null;
    };
    const num = (k: string): number | null => {
      const v = o[k];
      return typeof v === 'number' ? v : null;
    };
    const pkg = str('package');
    if (pkg === null) throw new Error(`${file}: a line without "package"`);
    out.push({
      package: pkg,
      section: str('section'),
      priority: str('priority'),
      architecture: str('architecture'),
      installed_size_kb: num('installed_size_kb'),
      size_bytes: num('size_bytes'),
      version: str('version'),
      maintainer: str('maintainer'),
      depends: str('depends'),
      summary: str('summary'),
      description: str('description'),
    });
  }
  return out;
}

/** Row i of the repeated corpus: a fresh object; repeats get `package~r`. */
function rowAt(base: readonly Pkg[], i: number): Pkg {
  const b = base[i % base.length]!;
  const rep = Math.floor(i / base.length);
  return { ...b, package: rep === 0 ? b.package : `${b.package}~${rep}` };
}

function* corpusRows(base: readonly Pkg[], n: number): Generator<Pkg> {
  for (let i = 0; i < n; i++) yield rowAt(base, i);
}

/** Deterministic PRNG (mulberry32) for key choice. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- Arrow for LanceDB -------------------------------------------------------------

const ARROW_SCHEMA = new arrow.Schema(
  COLUMNS.map((c) => new arrow.Field(c, isIntCol(c) ? new arrow.Int64() : new arrow.Utf8(), c !== 'package')),
);

/**
 * Rows to one Arrow table, building the buffers directly (apache-arrow's
 * vectorFromArray is several times slower, which would charge LanceDB for
 * a helper's cost rather than its own).
 */
function arrowTableOf(rows: readonly Pkg[]): arrow.Table {
  const n = rows.length;
  const children: arrow.Data[] = [];
  for (const c of COLUMNS) {
    let nullCount = 0;
    for (const r of rows) if (r[c] === null) nullCount++;
    let nullBitmap: Uint8Array | undefined;
    if (nullCount > 0) {
      nullBitmap = new Uint8Array((n + 7) >> 3);
      rows.forEach((r, i) => {
        if (r[c] !== null) nullBitmap![i >> 3] = nullBitmap![i >> 3]! | (1 << (i & 7));
      });
    }
    if (isIntCol(c)) {
      const data = new BigInt64Array(n);
      rows.forEach((r, i) => {
        const v = r[c];
        if (v !== null) data[i] = BigInt(v);
      });
      children.push(arrow.makeData({ type: new arrow.Int64(), length: n, nullCount, nullBitmap, data }));
    } else {
      const valueOffsets = new Int32Array(n + 1);
      let total = 0;
      rows.forEach((r, i) => {
        const v = r[c];
        if (v !== null) total += Buffer.byteLength(v, 'utf8');
        valueOffsets[i + 1] = total;
      });
      const data = Buffer.allocUnsafe(total);
      rows.forEach((r, i) => {
        const v = r[c];
        if (v !== null) data.write(v, valueOffsets[i]!, 'utf8');
      });
      children.push(arrow.makeData({ type: new arrow.Utf8(), length: n, nullCount, nullBitmap, valueOffsets, data }));
    }
  }
  const struct = arrow.makeData({ type: new arrow.Struct(ARROW_SCHEMA.fields), length: n, nullCount: 0, children });
  return new arrow.Table([new arrow.RecordBatch(ARROW_SCHEMA, struct)]);
}

// ---- measurement helpers --------------------------------------------------------------

async function tempDir(label: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `floe-bench-table-${label}-`));
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fs.stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}

/** Latencies (ms) of `fn(i)`, sequential, until `max` samples or `budgetMs` elapsed (at least `min`). */
async function sampleSeries(max: number, budgetMs: number, fn: (i: number) => Promise<void>, min = 10): Promise<number[]> {
  const out: number[] = [];
  const start = nowMs();
  for (let i = 0; i < max; i++) {
    if (i >= min && nowMs() - start > budgetMs) break;
    const t0 = nowMs();
    await fn(i);
    out.push(nowMs() - t0);
  }
  return out;
}

/** Run `total` operations on `writers` concurrent loops; ops/s over the wall time. */
async function concurrentOps(writers: number, total: number, op: (i: number) => Promise<void>): Promise<{ opsPerSec: number; ms: number; failures: number; firstError: string | null }> {
  let next = 0;
  let failures = 0;
  let firstError: string | null = null;
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < total) {
        const i = next++;
        try {
          await op(i);
        } catch (err) {
          // Counted and reported (LanceDB commit conflicts under concurrency), not hidden.
          failures++;
          firstError ??= asError(err).message.split('\n')[0]!.slice(0, 200);
        }
      }
    }),
  );
  const ms = nowMs() - t0;
  return { opsPerSec: ((total - failures) * 1000) / ms, ms, failures, firstError };
}

/**
 * A filesystem path DuckDB can open for a data file's `location`. When the
 * store offers no `localPath`, `dataFiles()` falls back to `file://<root>/<key>`,
 * which names no file: the local store keeps a key's bytes in
 * `<dir>/.floe-k-<name>/.floe-g<gen>-<nonce>` (src/store/local.ts). This
 * follows that layout to the newest generation (segments here are short,
 * so no hashed `.floe-l-` names occur).
 */
async function readablePath(location: string): Promise<string> {
  const p = location.startsWith('file://') ? fileURLToPath(location) : location;
  try {
    if ((await fs.stat(p)).isFile()) return p;
  } catch (err) {
    // ENOENT is the expected case when the store has no localPath; anything else is real.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const objDir = path.join(path.dirname(p), `.floe-k-${path.basename(p)}`);
  let best: { gen: number; name: string } | null = null;
  for (const name of await fs.readdir(objDir)) {
    const m = /^\.floe-g(\d+)-/.exec(name);
    if (m && (!best || Number(m[1]) > best.gen)) best = { gen: Number(m[1]), name };
  }
  if (!best) throw new Error(`no generation file for ${location} in ${objDir}`);
  return path.join(objDir, best.name);
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`bench self-check failed: ${what}`);
}

// ---- results model ---------------------------------------------------------------------

interface Figure {
  readonly system: string;
  readonly value: number;
  readonly detail?: string;
}

interface Target {
  /** Peer the target is stated against (its ratio decides), or null for an absolute target. */
  readonly peer: string | null;
  readonly text: string;
  readonly met: (ratio: number, floeValue: number) => boolean;
}

interface Comparison {
  readonly section: string;
  readonly metric: string;
  readonly unit: string;
  /** true: larger is better (rates); false: smaller is better (latency, memory). */
  readonly higherIsBetter: boolean;
  readonly floe: Figure;
  readonly peers: Figure[];
  readonly targets: Target[];
  readonly notes?: string[];
}

function ratioOf(c: Comparison, peer: Figure): number {
  return c.floe.value / peer.value;
}

function comparisonRows(c: Comparison): Cell[][] {
  const rows: Cell[][] = [];
  const targetFor = (system: string | null): Target | undefined => c.targets.find((t) => t.peer === system);
  const floeTarget = targetFor(null);
  rows.push([
    c.floe.system,
    c.floe.value,
    c.unit,
    '-',
    floeTarget ? floeTarget.text : '',
    floeTarget ? (floeTarget.met(Number.NaN, c.floe.value) ? 'yes' : 'NO') : '',
    c.floe.detail ?? '',
  ]);
  for (const p of c.peers) {
    const r = ratioOf(c, p);
    const t = targetFor(p.system);
    rows.push([p.system, p.value, c.unit, r, t ? t.text : '', t ? (t.met(r, c.floe.value) ? 'yes' : 'NO') : '', p.detail ?? '']);
  }
  return rows;
}

const COMPARISON_HEADERS = ['system', 'figure', 'unit', 'floe / system', 'target', 'met', 'detail'];

// ---- section 1: bulk append ------------------------------------------------------------

interface AppendResult {
  floeDir: string;
  floeDb: floe.Database;
  floeTable: floe.Table;
  lanceDir: string;
  lanceTable: LanceTable;
  lanceClose: () => void;
  duckDir: string;
  sqliteDir: string;
  levelDir: string;
  comparison: Comparison;
  context: Comparison;
}

async function sectionAppend(base: readonly Pkg[], lance: LanceModule, duck: DuckModule, Sqlite: SqliteCtor, Level: LevelCtor): Promise<AppendResult> {
  const n = APPEND_ROWS;
  console.log(`\n[1] bulk append of ${fmt(n)} rows`);

  // floe: one append call, rows streamed from a generator, local directory store.
  const floeDir = await tempDir('floe');
  const floeDb = await floe.open(floeDir);
  const floeTable = await floeDb.createTable('packages', FLOE_SCHEMA, { primaryKey: 'package' });
  let t0 = nowMs();
  const res = await floeTable.append(corpusRows(base, n));
  const floeMs = nowMs() - t0;
  check(res.rows === n, `floe appended ${res.rows} of ${n} rows`);
  const files = await floeTable.dataFiles();
  const floeBytes = files.reduce((a, f) => a + f.size, 0);
  console.log(`  floe: ${fmt((n * 1000) / floeMs)} rows/s (${fmt(floeMs / 1000)} s, ${files.length} file(s), ${fmt(floeBytes / MiB)} MiB)`);

  // LanceDB: the same rows, turned into Arrow in chunks; first chunk creates the table.
  const lanceDir = await tempDir('lance');
  const conn = await lance.connect(lanceDir);
  let lanceTable: LanceTable | null = null;
  let convMs = 0;
  let addMs = 0;
  t0 = nowMs();
  let buf: Pkg[] = [];
  const flushLance = async (): Promise<void> => {
    if (buf.length === 0) return;
    const c0 = nowMs();
    const at = arrowTableOf(buf);
    convMs += nowMs() - c0;
    buf = [];
    const a0 = nowMs();
    if (lanceTable) await lanceTable.add(at);
    else lanceTable = await conn.createTable('packages', at);
    addMs += nowMs() - a0;
  };
  for (const r of corpusRows(base, n)) {
    buf.push(r);
    if (buf.length >= LANCE_CHUNK) await flushLance();
  }
  await flushLance();
  const lanceMs = nowMs() - t0;
  if (!lanceTable) throw new Error('LanceDB table was not created');
  const lt: LanceTable = lanceTable;
  check((await lt.countRows()) === n, 'LanceDB row count');
  const lanceBytes = await dirBytes(lanceDir);
  console.log(`  LanceDB: ${fmt((n * 1000) / lanceMs)} rows/s (Arrow build ${fmt(convMs / 1000)} s + add ${fmt(addMs / 1000)} s, ${fmt(lanceBytes / MiB)} MiB)`);

  // DuckDB appender into a file database, with and without a primary key.
  const duckDir = await tempDir('duck');
  const duckFigures: Figure[] = [];
  const inst = await duck.DuckDBInstance.create(path.join(duckDir, 'bench.duckdb'));
  const con = await inst.connect();
  try {
    for (const withPk of [true, false]) {
      const name = withPk ? 'packages' : 'packages_nokey';
      await con.run(
        `CREATE TABLE ${name} (package VARCHAR${withPk ? ' PRIMARY KEY' : ' NOT NULL'}, section VARCHAR, priority VARCHAR, architecture VARCHAR, ` +
          'installed_size_kb BIGINT, size_bytes BIGINT, version VARCHAR, maintainer VARCHAR, depends VARCHAR, summary VARCHAR, description VARCHAR)',
      );
      t0 = nowMs();
      const app = await con.createAppender(name);
      for (const r of corpusRows(base, n)) {
        for (const c of COLUMNS) {
          const v = r[c];
          if (v === null) app.appendNull();
          else if (typeof v === 'number') app.appendBigInt(BigInt(v));
          else app.appendVarchar(v);
        }
        app.endRow();
      }
      app.closeSync(); // flushes and commits (the WAL is fsynced at commit)
      const commitMs = nowMs() - t0;
      await con.run('CHECKPOINT');
      const ckptMs = nowMs() - t0;
      const cnt = (await con.runAndReadAll(`SELECT count(*) AS n FROM ${name}`)).getRowObjectsJS()[0]?.n;
      check(Number(cnt) === n, `DuckDB ${name} row count`);
      duckFigures.push({
        system: `DuckDB appender${withPk ? ' (PRIMARY KEY)' : ' (no key)'}`,
        value: (n * 1000) / commitMs,
        detail: `to commit ${fmt(commitMs / 1000)} s; with CHECKPOINT ${fmt((n * 1000) / ckptMs)} rows/s`,
      });
      console.log(`  DuckDB ${withPk ? 'PK' : 'no key'}: ${fmt((n * 1000) / commitMs)} rows/s to commit, ${fmt((n * 1000) / ckptMs)} with CHECKPOINT`);
    }
  } finally {
    con.closeSync();
    inst.closeSync();
  }

  // Context (not targets): the SQLite and classic-level copies section 3 reads.
  const sqliteDir = await tempDir('sqlite');
  const sdb = new Sqlite(path.join(sqliteDir, 'bench.sqlite'));
  let sqliteMs: number;
  try {
    sdb.pragma('journal_mode = WAL');
    sdb.pragma('synchronous = FULL');
    sdb.exec(
      'CREATE TABLE packages (package TEXT PRIMARY KEY NOT NULL, section TEXT, priority TEXT, architecture TEXT, installed_size_kb INTEGER, ' +
        'size_bytes INTEGER, version TEXT, maintainer TEXT, depends TEXT, summary TEXT, description TEXT) WITHOUT ROWID',
    );
    const ins = sdb.prepare(`INSERT INTO packages VALUES (${COLUMNS.map(() => '?').join(', ')})`);
    t0 = nowMs();
    const load = sdb.transaction(() => {
      for (const r of corpusRows(base, n)) ins.run(COLUMNS.map((c) => r[c]));
    });
    load();
    sqliteMs = nowMs() - t0;
  } finally {
    sdb.close();
  }
  console.log(`  SQLite (one transaction): ${fmt((n * 1000) / sqliteMs)} rows/s`);

  const levelDir = await tempDir('level');
  const ldb = new Level<string, string>(levelDir);
  await ldb.open();
  t0 = nowMs();
  try {
    let ops: Array<{ type: 'put'; key: string; value: string }> = [];
    for (const r of corpusRows(base, n)) {
      ops.push({ type: 'put', key: r.package, value: JSON.stringify(r) });
      if (ops.length >= 10_000) {
        await ldb.batch(ops);
        ops = [];
      }
    }
    await ldb.batch(ops, { sync: true });
  } finally {
    await ldb.close();
  }
  const levelMs = nowMs() - t0;
  console.log(`  classic-level (batches of 10k, last one sync): ${fmt((n * 1000) / levelMs)} rows/s`);

  const comparison: Comparison = {
    section: '1. bulk append',
    metric: `rows/s appending ${fmt(n)} rows`,
    unit: 'rows/s',
    higherIsBetter: true,
    floe: { system: 'floe t.append (PK package, one call)', value: (n * 1000) / floeMs, detail: `${fmt(floeMs / 1000)} s, ${files.length} file(s), ${fmt(floeBytes / MiB)} MiB` },
    peers: [
      {
        system: 'LanceDB createTable/add',
        value: (n * 1000) / lanceMs,
        detail: `chunks of ${fmt(LANCE_CHUNK)}: Arrow build ${fmt(convMs / 1000)} s + add ${fmt(addMs / 1000)} s (add alone ${fmt((n * 1000) / addMs)} rows/s), ${fmt(lanceBytes / MiB)} MiB`,
      },
      ...duckFigures,
    ],
    targets: [
      { peer: 'LanceDB createTable/add', text: '>= 1x', met: (r) => r >= 1 },
      { peer: 'DuckDB appender (PRIMARY KEY)', text: '>= 0.5x', met: (r) => r >= 0.5 },
      { peer: 'DuckDB appender (no key)', text: '>= 0.5x', met: (r) => r >= 0.5 },
    ],
    notes: [
      'Every system gets the same JS row objects from the same generator; LanceDB\'s figure includes building Arrow tables from them (its API takes Arrow or rows), and its add-only rate is in the detail.',
      'Sizes on disk are not comparable on this corpus: floe sorts a keyed append by key, which puts the repeats of a package (same text) side by side for zstd.',
    ],
  };
  const context: Comparison = {
    section: '1. bulk append (context)',
    metric: 'loads of the section 3 copies (not targets)',
    unit: 'rows/s',
    higherIsBetter: true,
    floe: comparison.floe,
    peers: [
      { system: 'SQLite INSERT, one transaction (WAL, FULL)', value: (n * 1000) / sqliteMs },
      { system: 'classic-level batch (10k per batch, last sync)', value: (n * 1000) / levelMs },
    ],
    targets: [],
  };
  return {
    floeDir,
    floeDb,
    floeTable,
    lanceDir,
    lanceTable: lt,
    lanceClose: () => {
      lt.close();
      conn.close();
    },
    duckDir,
    sqliteDir,
    levelDir,
    comparison,
    context,
  };
}

// ---- section 4: scan ---------------------------------------------------------------------

/** Sections 3 and 4 on the section 1 tables, then remove every system's copy. */
async function readSections(
  a: AppendResult,
  base: readonly Pkg[],
  duck: DuckModule,
  Sqlite: SqliteCtor,
  Level: LevelCtor,
): Promise<{ scan: Comparison; gets: Awaited<ReturnType<typeof sectionGet>> }> {
  try {
    return { scan: await sectionScan(a, duck), gets: await sectionGet(a, base, Sqlite, Level) };
  } finally {
    a.lanceClose();
    await a.floeDb.close();
    for (const d of [a.floeDir, a.lanceDir, a.duckDir, a.sqliteDir, a.levelDir]) await fs.rm(d, { recursive: true, force: true });
  }
}

async function sectionScan(a: AppendResult, duck: DuckModule): Promise<Comparison> {
  const n = APPEND_ROWS;
  const cols = [...SCAN_COLUMNS];
  console.log(`\n[4] full scan of ${fmt(n)} rows, columns ${cols.join(', ')} (best of ${SCAN_ROUNDS})`);
  const best = async (fn: () => Promise<number>): Promise<number> => {
    let ms = Number.POSITIVE_INFINITY;
    for (let r = 0; r < SCAN_ROUNDS; r++) {
      const t0 = nowMs();
      const rows = await fn();
      ms = Math.min(ms, nowMs() - t0);
      check(rows === n, `scan returned ${rows} of ${n} rows`);
    }
    return ms;
  };

  const floeMs = await best(async () => {
    let rows = 0;
    for await (const b of a.floeTable.scan({ columns: cols })) rows += b.numRows;
    return rows;
  });
  console.log(`  floe: ${fmt((n * 1000) / floeMs)} rows/s`);

  const paths: string[] = [];
  for (const f of await a.floeTable.dataFiles()) paths.push(await readablePath(f.location));
  const list = paths.map((p) => `'${p.replace(/'/g, "''")}'`).join(', ');
  const sql = `SELECT count(*) AS n, sum(length(package)) AS a, sum(length(section)) AS b, sum(size_bytes) AS c FROM read_parquet([${list}])`;
  const duckFigures: Figure[] = [];
  for (const threads of [0, 1]) {
    const inst = await duck.DuckDBInstance.create(':memory:');
    const con = await inst.connect();
    try {
      if (threads > 0) await con.run(`SET threads = ${threads}`);
      const eff = String(Number((await con.runAndReadAll("SELECT current_setting('threads') AS t")).getRowObjectsJS()[0]?.t));
      const ms = await best(async () => Number((await con.runAndReadAll(sql)).getRowObjectsJS()[0]?.n));
      duckFigures.push({ system: `DuckDB read_parquet (threads=${eff})`, value: (n * 1000) / ms, detail: 'count(*), sum(length(package)), sum(length(section)), sum(size_bytes)' });
      console.log(`  DuckDB threads=${eff}: ${fmt((n * 1000) / ms)} rows/s`);
    } finally {
      con.closeSync();
      inst.closeSync();
    }
  }

  const lanceMs = await best(async () => {
    let rows = 0;
    for await (const b of a.lanceTable.query().select(cols)) rows += b.numRows;
    return rows;
  });
  console.log(`  LanceDB: ${fmt((n * 1000) / lanceMs)} rows/s`);

  return {
    section: '4. full scan',
    metric: `rows/s, ${cols.length} columns (${cols.join(', ')}) of ${fmt(n)} rows`,
    unit: 'rows/s',
    higherIsBetter: true,
    floe: { system: 'floe t.scan({columns}) -> Arrow batches', value: (n * 1000) / floeMs, detail: `${paths.length} data file(s)` },
    peers: [...duckFigures, { system: 'LanceDB query().select() -> Arrow batches', value: (n * 1000) / lanceMs }],
    targets: duckFigures.map((d) => ({ peer: d.system, text: '>= 0.5x', met: (r: number) => r >= 0.5 })),
    notes: [
      'DuckDB reads floe\'s own Parquet files (paths from t.dataFiles(), resolved to the local store\'s generation files: the local store has no localPath, so the locations name no file) and aggregates them natively; floe decodes the columns into Arrow batches in JS and counts rows.',
    ],
  };
}

// ---- section 3: point get ---------------------------------------------------------------------

interface LatencyFigure {
  system: string;
  warm: Summary;
  cold: Summary | null;
  coldOpen: Summary | null;
}

async function sectionGet(a: AppendResult, base: readonly Pkg[], Sqlite: SqliteCtor, Level: LevelCtor): Promise<{ figures: LatencyFigure[]; comparisons: Comparison[] }> {
  const n = APPEND_ROWS;
  console.log(`\n[3] point get on ${fmt(n)} rows in data files (warm: ${WARM_KEYS} keys repeated; cold: fresh open, random keys)`);
  const rnd = prng(5);
  const keyAt = (i: number): string => rowAt(base, i).package;
  const warmKeys = Array.from({ length: WARM_KEYS }, () => keyAt(Math.floor(rnd() * n)));
  const coldKey = (): string => keyAt(Math.floor(rnd() * n));
  const figures: LatencyFigure[] = [];
  const mustFind = (row: unknown, key: string, who: string): void => check(row !== null && row !== undefined, `${who} get(${key}) found nothing`);

  // floe, warm: the open database's caches (footers, bitmaps) hold after one pass.
  for (const k of warmKeys) mustFind(await a.floeTable.get(k), k, 'floe');
  const floeWarm = await sampleSeries(GET_WARM_MAX, SERIES_BUDGET_MS, async (i) => {
    const k = warmKeys[i % warmKeys.length]!;
    mustFind(await a.floeTable.get(k), k, 'floe');
  });
  // floe, cold: a fresh read-only open per sample (empty caches); the get after it is timed.
  const floeOpen: number[] = [];
  const floeCold: number[] = [];
  {
    const start = nowMs();
    for (let i = 0; i < GET_COLD_MAX; i++) {
      if (i >= 10 && nowMs() - start > SERIES_BUDGET_MS) break;
      const k = coldKey();
      const o0 = nowMs();
      const ro = await floe.open(a.floeDir, { readOnly: true });
      try {
        const t = await ro.table('packages');
        floeOpen.push(nowMs() - o0);
        const t0 = nowMs();
        mustFind(await t.get(k), k, 'floe cold');
        floeCold.push(nowMs() - t0);
      } finally {
        await ro.close();
      }
    }
  }
  figures.push({ system: 'floe t.get (data files)', warm: summarize(floeWarm), cold: summarize(floeCold), coldOpen: summarize(floeOpen) });
  console.log(`  floe: warm p50 ${fmt(summarize(floeWarm).p50)} ms, cold p50 ${fmt(summarize(floeCold).p50)} ms`);

  // SQLite: primary-key lookup with a prepared statement; cold = new connection.
  const sqlitePath = path.join(a.sqliteDir, 'bench.sqlite');
  const sql = 'SELECT * FROM packages WHERE package = ?';
  {
    const db: SqliteDb = new Sqlite(sqlitePath, { readonly: true });
    let warm: number[];
    try {
      const st = db.prepare(sql);
      for (const k of warmKeys) mustFind(st.get(k), k, 'SQLite');
      warm = await sampleSeries(GET_WARM_MAX, SERIES_BUDGET_MS, async (i) => {
        const k = warmKeys[i % warmKeys.length]!;
        mustFind(st.get(k), k, 'SQLite');
      });
    } finally {
      db.close();
    }
    const open: number[] = [];
    const cold: number[] = [];
    for (let i = 0; i < GET_COLD_MAX; i++) {
      const k = coldKey();
      const o0 = nowMs();
      const c = new Sqlite(sqlitePath, { readonly: true });
      try {
        open.push(nowMs() - o0);
        const t0 = nowMs();
        mustFind(c.prepare(sql).get(k), k, 'SQLite cold');
        cold.push(nowMs() - t0);
      } finally {
        c.close();
      }
    }
    figures.push({ system: 'SQLite PK lookup', warm: summarize(warm), cold: summarize(cold), coldOpen: summarize(open) });
    console.log(`  SQLite: warm p50 ${fmt(summarize(warm).p50)} ms, cold p50 ${fmt(summarize(cold).p50)} ms`);
  }

  // classic-level: get + JSON.parse (a row object, like the others return).
  {
    const db = new Level<string, string>(a.levelDir);
    await db.open();
    let warm: number[];
    try {
      for (const k of warmKeys) mustFind(await db.get(k), k, 'classic-level');
      warm = await sampleSeries(GET_WARM_MAX, SERIES_BUDGET_MS, async (i) => {
        const k = warmKeys[i % warmKeys.length]!;
        const v = await db.get(k);
        mustFind(v, k, 'classic-level');
        JSON.parse(v!);
      });
    } finally {
      await db.close();
    }
    const open: number[] = [];
    const cold: number[] = [];
    for (let i = 0; i < GET_COLD_MAX; i++) {
      const k = coldKey();
      const o0 = nowMs();
      const c = new Level<string, string>(a.levelDir);
      await c.open();
      try {
        open.push(nowMs() - o0);
        const t0 = nowMs();
        const v = await c.get(k);
        mustFind(v, k, 'classic-level cold');
        JSON.parse(v!);
        cold.push(nowMs() - t0);
      } finally {
        await c.close();
      }
    }
    figures.push({ system: 'classic-level get', warm: summarize(warm), cold: summarize(cold), coldOpen: summarize(open) });
    console.log(`  classic-level: warm p50 ${fmt(summarize(warm).p50)} ms, cold p50 ${fmt(summarize(cold).p50)} ms`);
  }

  // LanceDB (no index: a filtered scan), warm only, for context.
  {
    const warm = await sampleSeries(Math.min(GET_WARM_MAX, 100), SERIES_BUDGET_MS / 2, async (i) => {
      const k = warmKeys[i % warmKeys.length]!;
      const rows = await a.lanceTable.query().where(`package = '${k.replace(/'/g, "''")}'`).limit(1).toArray();
      check(rows.length === 1, `LanceDB get(${k})`);
    });
    figures.push({ system: 'LanceDB where(package = k) (no index)', warm: summarize(warm), cold: null, coldOpen: null });
    console.log(`  LanceDB: warm p50 ${fmt(summarize(warm).p50)} ms`);
  }

  const floeFig = figures[0]!;
  const comparisons: Comparison[] = [];
  for (const phase of ['warm', 'cold'] as const) {
    for (const stat of ['p50', 'p99'] as const) {
      const fv = floeFig[phase]![stat];
      comparisons.push({
        section: '3. point get',
        metric: `${phase} ${stat} latency`,
        unit: 'ms',
        higherIsBetter: false,
        floe: { system: floeFig.system, value: fv, detail: `n=${floeFig[phase]!.n}` },
        peers: figures
          .slice(1)
          .filter((f) => f[phase] !== null)
          .map((f) => ({ system: f.system, value: f[phase]![stat], detail: `n=${f[phase]!.n}` })),
        targets: stat === 'p50' ? [{ peer: 'SQLite PK lookup', text: '<= 2x', met: (r: number) => r <= 2 }] : [],
      });
    }
  }
  return { figures, comparisons };
}

/**
 * BENCH_SECTIONS=3,4 (any list without 2 and 5): only the read side. Runs
 * section 1 as the setup sections 3 and 4 need (its figures are printed but
 * are not the point), then 4 and 3, and writes bench/results/table-read.md
 * (the full run's table.md is left alone).
 */
async function mainRead(): Promise<void> {
  const env: EnvInfo = envInfo();
  const t00 = nowMs();
  console.log(`floe table bench, read sections — ${env.node}, ${env.cpu} × ${env.cores}, ${env.memGiB} GiB, load ${env.load1} at start, BENCH_SCALE=${SCALE}`);
  const fsyncStart = measureFsyncRate();
  console.log(fsyncLine(fsyncStart, 'fsync reference (start)'));
  const lance: LanceModule = await import('@lancedb/lancedb');
  const duck: DuckModule = await import('@duckdb/node-api');
  const Sqlite: SqliteCtor = (await import('better-sqlite3')).default;
  const Level: LevelCtor = (await import('classic-level')).ClassicLevel;
  const base = loadCorpus(CORPUS);
  const a = await sectionAppend(base, lance, duck, Sqlite, Level);
  const { scan, gets } = await readSections(a, base, duck, Sqlite, Level);
  const fsyncEnd = measureFsyncRate();
  const totalS = (nowMs() - t00) / 1000;
  const comparisons = [...gets.comparisons, scan];
  const md: string[] = [
    `fsync reference: start ${fmt(fsyncStart.appendsPerSec)}/s (p50 ${fmt(fsyncStart.p50Ms)} ms), end ${fmt(fsyncEnd.appendsPerSec)}/s (p50 ${fmt(fsyncEnd.p50Ms)} ms), ${fsyncStart.fsType} (${fsyncStart.dir}).`,
    '',
  ];
  for (const c of comparisons) {
    console.log(`\n${c.section} — ${c.metric}`);
    console.log(textTable(COMPARISON_HEADERS, comparisonRows(c)));
    md.push(`## ${c.section}: ${c.metric} (${c.higherIsBetter ? 'higher' : 'lower'} is better)`, '', markdownTable(COMPARISON_HEADERS, comparisonRows(c)), '');
  }
  console.log('\npoint get latencies');
  console.log(textTable(LATENCY_HEADERS, latencyRows(gets.figures)));
  console.log(`\n${fsyncLine(fsyncStart, 'fsync reference (start)')}\n${fsyncLine(fsyncEnd, 'fsync reference (end)')}`);
  md.push('## Point get latencies', '', markdownTable(LATENCY_HEADERS, latencyRows(gets.figures)), '', `Whole run: ${fmt(totalS)} s.`);
  const out = writeReport({
    name: 'table-read',
    title: 'floe table benchmark, read sections (3, 4)',
    markdown: md.join('\n'),
    env,
    data: { settings: { scale: SCALE, appendRows: APPEND_ROWS, totalSeconds: totalS }, fsync: { start: fsyncStart, end: fsyncEnd }, getLatencies: gets.figures },
  });
  console.log(`\nwrote ${out.md} and ${out.json}`);
}

// ---- section 2: durable upserts -------------------------------------------------------------------

interface UpsertResult {
  comparisons: Comparison[];
  memGets: LatencyFigure;
  memtableDecay: Array<{ memtableRows: number; upsertsPerSec: number }>;
}

/** The i-th upsert's row: keys cycle through a pool so inserts and replaces mix. */
function upsertRow(base: readonly Pkg[], i: number): Pkg {
  const b = base[(i * 7919) % 2048]!;
  return { ...b, version: `${b.version ?? ''}+u${i}` };
}

async function sectionUpsert(base: readonly Pkg[], lance: LanceModule, Sqlite: SqliteCtor): Promise<UpsertResult> {
  console.log(`\n[2] durable single-row upserts (1 writer: ${UPSERTS_1}, 64 writers: ${UPSERTS_64}; LanceDB ${LANCE_UPSERTS_1} / ${LANCE_UPSERTS_64})`);
  const dirs: string[] = [];
  try {
    // floe: a fresh database and table; every upsert resolves when durable.
    const floeDir = await tempDir('floe-upsert');
    dirs.push(floeDir);
    const db = await floe.open(floeDir);
    let floe1: number;
    let floe64: Awaited<ReturnType<typeof concurrentOps>>;
    let memGets: LatencyFigure;
    const decay: Array<{ memtableRows: number; upsertsPerSec: number }> = [];
    try {
      const t = await db.createTable('packages', FLOE_SCHEMA, { primaryKey: 'package' });
      let t0 = nowMs();
      for (let i = 0; i < UPSERTS_1; i++) await t.upsert(upsertRow(base, i));
      floe1 = (UPSERTS_1 * 1000) / (nowMs() - t0);
      floe64 = await concurrentOps(64, UPSERTS_64, async (i) => void (await t.upsert(upsertRow(base, UPSERTS_1 + i))));
      console.log(`  floe: 1 writer ${fmt(floe1)}/s, 64 writers ${fmt(floe64.opsPerSec)}/s`);

      // Gets served by the memtable (section 3 reports them).
      const memKeys = Array.from({ length: WARM_KEYS }, (_, i) => upsertRow(base, i).package);
      for (const k of memKeys) check((await t.get(k)) !== null, `floe memtable get(${k})`);
      const warm = await sampleSeries(GET_WARM_MAX, SERIES_BUDGET_MS, async (i) => {
        const k = memKeys[i % memKeys.length]!;
        check((await t.get(k)) !== null, `floe memtable get(${k})`);
      });
      memGets = { system: 'floe t.get (memtable)', warm: summarize(warm), cold: null, coldOpen: null };

      // Single-writer upsert rate as the memtable grows: bulk upserts of
      // 2,000 fresh keys fill it between probes of 100 single-row upserts.
      let filled = 0;
      for (const target of [0, 10_000, 30_000]) {
        while (filled < target) {
          const batch: floe.Row[] = [];
          for (let j = 0; j < 2000; j++) batch.push({ ...rowAt(base, 100_000 + filled + j) });
          await t.upsert(batch);
          filled += 2000;
        }
        const st = await t.stats();
        const m = 100;
        t0 = nowMs();
        for (let i = 0; i < m; i++) await t.upsert(upsertRow(base, 50_000 + i));
        decay.push({ memtableRows: st.memtableRows, upsertsPerSec: (m * 1000) / (nowMs() - t0) });
      }
      console.log(`  floe 1-writer upserts/s by memtable rows: ${decay.map((d) => `${fmt(d.memtableRows)} rows -> ${fmt(d.upsertsPerSec)}/s`).join(', ')}`);
    } finally {
      await db.close();
    }

    // SQLite: WAL + synchronous=FULL, autocommit (one transaction per statement).
    const sqliteDir = await tempDir('sqlite-upsert');
    dirs.push(sqliteDir);
    const sdb = new Sqlite(path.join(sqliteDir, 'u.sqlite'));
    let sqlite1: number;
    let sqlite64: Awaited<ReturnType<typeof concurrentOps>>;
    try {
      sdb.pragma('journal_mode = WAL');
      sdb.pragma('synchronous = FULL');
      sdb.exec(
        'CREATE TABLE packages (package TEXT PRIMARY KEY NOT NULL, section TEXT, priority TEXT, architecture TEXT, installed_size_kb INTEGER, ' +
          'size_bytes INTEGER, version TEXT, maintainer TEXT, depends TEXT, summary TEXT, description TEXT) WITHOUT ROWID',
      );
      const st = sdb.prepare(`INSERT OR REPLACE INTO packages VALUES (${COLUMNS.map(() => '?').join(', ')})`);
      const put = (r: Pkg): void => void st.run(COLUMNS.map((c) => r[c]));
      const t0 = nowMs();
      for (let i = 0; i < UPSERTS_1; i++) put(upsertRow(base, i));
      sqlite1 = (UPSERTS_1 * 1000) / (nowMs() - t0);
      sqlite64 = await concurrentOps(64, UPSERTS_64, async (i) => put(upsertRow(base, UPSERTS_1 + i)));
    } finally {
      sdb.close();
    }
    console.log(`  SQLite: 1 writer ${fmt(sqlite1)}/s, 64 writers ${fmt(sqlite64.opsPerSec)}/s`);

    // LanceDB: mergeInsert of one row per call.
    const lanceDir = await tempDir('lance-upsert');
    dirs.push(lanceDir);
    const conn = await lance.connect(lanceDir);
    let lance1: number;
    let lance64: Awaited<ReturnType<typeof concurrentOps>>;
    try {
      const lt = await conn.createEmptyTable('packages', ARROW_SCHEMA);
      try {
        const merge = async (r: Pkg): Promise<void> => {
          await lt.mergeInsert('package').whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(arrowTableOf([r]));
        };
        await merge(upsertRow(base, 0)); // warm-up (first write creates the dataset files)
        const t0 = nowMs();
        for (let i = 1; i <= LANCE_UPSERTS_1; i++) await merge(upsertRow(base, i));
        lance1 = (LANCE_UPSERTS_1 * 1000) / (nowMs() - t0);
        lance64 = await concurrentOps(64, LANCE_UPSERTS_64, (i) => merge(upsertRow(base, 1000 + i)));
      } finally {
        lt.close();
      }
    } finally {
      conn.close();
    }
    console.log(`  LanceDB: 1 writer ${fmt(lance1)}/s, 64 writers ${fmt(lance64.opsPerSec)}/s (${lance64.failures} failed)`);

    const lance64Detail = `${LANCE_UPSERTS_64} calls at once` + (lance64.failures ? `; ${lance64.failures} failed: ${lance64.firstError ?? ''}` : '');
    const comparisons: Comparison[] = [
      {
        section: '2. durable upserts',
        metric: '1 writer, single-row upserts/s',
        unit: 'ops/s',
        higherIsBetter: true,
        floe: { system: 'floe t.upsert(row)', value: floe1, detail: `n=${UPSERTS_1}` },
        peers: [
          { system: 'SQLite INSERT OR REPLACE (WAL, FULL)', value: sqlite1, detail: `n=${UPSERTS_1}` },
          { system: 'LanceDB mergeInsert (1 row)', value: lance1, detail: `n=${LANCE_UPSERTS_1}` },
        ],
        targets: [],
      },
      {
        section: '2. durable upserts',
        metric: '64 concurrent writers, single-row upserts/s',
        unit: 'ops/s',
        higherIsBetter: true,
        floe: { system: 'floe t.upsert(row)', value: floe64.opsPerSec, detail: `n=${UPSERTS_64}${floe64.failures ? `, ${floe64.failures} failed: ${floe64.firstError ?? ''}` : ''}` },
        peers: [
          { system: 'SQLite INSERT OR REPLACE (WAL, FULL)', value: sqlite64.opsPerSec, detail: `n=${UPSERTS_64}, one connection: calls run one at a time` },
          { system: 'LanceDB mergeInsert (1 row)', value: lance64.opsPerSec, detail: lance64Detail },
        ],
        targets: [],
      },
    ];
    return { comparisons, memGets, memtableDecay: decay };
  } finally {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  }
}

// ---- section 5: peak RSS in a child -------------------------------------------------------------

interface RssChildResult {
  rows: number;
  rowsPerFile: number;
  ms: number;
  rowsPerSec: number;
  files: number;
  bytes: number;
  /** getrusage peak RSS of the child process (includes the corpus and the runtime). */
  maxRssBytes: number;
  /** Size of parquet-wasm's linear memory at the end, summed over the threads that loaded it (WASM memory never shrinks). */
  wasmMemoryBytes: number | null;
  /** RSS after loading the corpus, before the append. */
  baselineRssBytes: number;
  /** Largest values seen by a 20 ms sampler (misses peaks inside synchronous work). */
  sampled: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
}

/**
 * parquet-wasm's memory: this thread's instance (small files are encoded
 * here) plus floe's encoder threads (null if no thread loaded it).
 */
async function parquetWasmMemoryBytes(): Promise<number | null> {
  const sizes = [encoderMemoryBytes(), ...(await encoderThreadMemory())].filter((x): x is number => x !== null);
  return sizes.length === 0 ? null : sizes.reduce((a, b) => a + b, 0);
}

async function rssChild(rows: number, rowsPerFile: number): Promise<void> {
  const base = loadCorpus(CORPUS);
  const gcHint = (globalThis as { gc?: () => void }).gc;
  gcHint?.();
  const baseline = process.memoryUsage().rss;
  const sampled = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  const sample = (): void => {
    const m = process.memoryUsage();
    sampled.rss = Math.max(sampled.rss, m.rss);
    sampled.heapUsed = Math.max(sampled.heapUsed, m.heapUsed);
    sampled.external = Math.max(sampled.external, m.external);
    sampled.arrayBuffers = Math.max(sampled.arrayBuffers, m.arrayBuffers);
  };
  const timer = setInterval(sample, 20);
  const dir = await tempDir('rss');
  try {
    const db = await floe.open(dir);
    let res: { rows: number };
    let ms: number;
    let files: Array<{ size: number }>;
    try {
      const t = await db.createTable('events', FLOE_SCHEMA);
      const t0 = nowMs();
      res = await t.append(corpusRows(base, rows), { rowsPerFile });
      ms = nowMs() - t0;
      sample();
      files = await t.dataFiles();
    } finally {
      await db.close();
    }
    const out: RssChildResult = {
      rows: res.rows,
      rowsPerFile,
      ms,
      rowsPerSec: (res.rows * 1000) / ms,
      files: files.length,
      bytes: files.reduce((a, f) => a + f.size, 0),
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
      wasmMemoryBytes: await parquetWasmMemoryBytes(),
      baselineRssBytes: baseline,
      sampled,
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    clearInterval(timer);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

function runRssChild(rows: number, rowsPerFile: number): Promise<RssChildResult> {
  const script = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', script, '--rss-child', String(rows), String(rowsPerFile)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`RSS child (${rows} rows, rowsPerFile ${rowsPerFile}) exited with ${code ?? signal ?? '?'}`));
        return;
      }
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as RssChildResult);
      } catch (err) {
        reject(new Error(`RSS child printed no result: ${JSON.stringify(out.slice(-300))}`, { cause: err }));
      }
    });
  });
}

async function sectionRss(): Promise<{ results: RssChildResult[]; comparison: Comparison }> {
  console.log(`\n[5] peak RSS, keyless append of ${fmt(RSS_ROWS)} rows in a child (default rowsPerFile), then ${fmt(RSS_SMALL_ROWS)} rows with rowsPerFile ${fmt(RSS_SMALL_FILE_ROWS)}`);
  const results: RssChildResult[] = [];
  for (const [rows, perFile] of [
    [RSS_ROWS, 1_000_000],
    [RSS_SMALL_ROWS, RSS_SMALL_FILE_ROWS],
  ] as const) {
    const r = await runRssChild(rows, perFile);
    results.push(r);
    console.log(
      `  ${fmt(r.rows)} rows, rowsPerFile ${fmt(r.rowsPerFile)}: peak RSS ${fmt(r.maxRssBytes / MiB)} MiB (baseline ${fmt(r.baselineRssBytes / MiB)} MiB), ` +
        `${fmt(r.rowsPerSec)} rows/s, ${r.files} files, parquet-wasm memory ${r.wasmMemoryBytes === null ? '?' : fmt(r.wasmMemoryBytes / MiB)} MiB`,
    );
  }
  const main = results[0]!;
  const small = results[1]!;
  const comparison: Comparison = {
    section: '5. peak RSS',
    metric: `peak RSS appending ${fmt(main.rows)} keyless rows (child process)`,
    unit: 'MiB',
    higherIsBetter: false,
    floe: {
      system: 'floe t.append (default rowsPerFile 1,000,000)',
      value: main.maxRssBytes / MiB,
      detail:
        `baseline ${fmt(main.baselineRssBytes / MiB)} MiB before append; ${fmt(main.rowsPerSec)} rows/s; ${main.files} files; ` +
        `largest samples: heap ${fmt(main.sampled.heapUsed / MiB)} MiB, external ${fmt(main.sampled.external / MiB)} MiB ` +
        `(array buffers ${fmt(main.sampled.arrayBuffers / MiB)} MiB); parquet-wasm memory at end ${main.wasmMemoryBytes === null ? '?' : fmt(main.wasmMemoryBytes / MiB)} MiB`,
    },
    peers: [],
    targets: [{ peer: null, text: '< 1024 MiB', met: (_r, v) => v < 1024 }],
    notes: [
      `With rowsPerFile ${fmt(small.rowsPerFile)} (${fmt(small.rows)} rows): peak ${fmt(small.maxRssBytes / MiB)} MiB, ${fmt(small.rowsPerSec)} rows/s, ${small.files} files` +
        `, parquet-wasm memory at end ${small.wasmMemoryBytes === null ? '?' : fmt(small.wasmMemoryBytes / MiB)} MiB.`,
      `${SCALE === 1 ? `BENCH_SCALE=1 runs ${fmt(RSS_ROWS)} rows (the issue asks about 10M: BENCH_SCALE=5). ` : ''}` +
        'Repeated rows share their text with the original row (only `package` differs), so input strings cost less memory than real distinct data would.',
    ],
  };
  return { results, comparison };
}

/**
 * BENCH_SECTIONS=1,5 (or 1, or 5): only the append side. Runs section 1
 * (floe and every peer) and/or section 5, prints the targets and writes
 * bench/results/table-append.md (the full run's table.md is left alone).
 */
async function mainAppend(sections: ReadonlySet<string>): Promise<void> {
  const env: EnvInfo = envInfo();
  const t00 = nowMs();
  console.log(`floe table bench, append sections — ${env.node}, ${env.cpu} × ${env.cores}, ${env.memGiB} GiB, load ${env.load1} at start, BENCH_SCALE=${SCALE}`);
  const fsyncStart = measureFsyncRate();
  console.log(fsyncLine(fsyncStart, 'fsync reference (start)'));
  const comparisons: Comparison[] = [];
  if (sections.has('1')) {
    const lance: LanceModule = await import('@lancedb/lancedb');
    const duck: DuckModule = await import('@duckdb/node-api');
    const Sqlite: SqliteCtor = (await import('better-sqlite3')).default;
    const Level: LevelCtor = (await import('classic-level')).ClassicLevel;
    const base = loadCorpus(CORPUS);
    const a = await sectionAppend(base, lance, duck, Sqlite, Level);
    a.lanceClose();
    await a.floeDb.close();
    for (const d of [a.floeDir, a.lanceDir, a.duckDir, a.sqliteDir, a.levelDir]) await fs.rm(d, { recursive: true, force: true });
    comparisons.push(a.comparison, a.context);
  }
  if (sections.has('5')) comparisons.push((await sectionRss()).comparison);
  const fsyncEnd = measureFsyncRate();
  const totalS = (nowMs() - t00) / 1000;
  const verdicts: Cell[][] = [];
  const md: string[] = [
    `fsync reference: start ${fmt(fsyncStart.appendsPerSec)}/s (p50 ${fmt(fsyncStart.p50Ms)} ms), end ${fmt(fsyncEnd.appendsPerSec)}/s (p50 ${fmt(fsyncEnd.p50Ms)} ms), ${fsyncStart.fsType} (${fsyncStart.dir}).`,
    '',
  ];
  for (const c of comparisons) {
    console.log(`\n${c.section} — ${c.metric}`);
    console.log(textTable(COMPARISON_HEADERS, comparisonRows(c)));
    md.push(`## ${c.section}: ${c.metric} (${c.higherIsBetter ? 'higher' : 'lower'} is better)`, '', markdownTable(COMPARISON_HEADERS, comparisonRows(c)), '');
    for (const n of c.notes ?? []) md.push(`- ${n}`);
    if (c.notes?.length) md.push('');
    for (const t of c.targets) {
      const peer = t.peer === null ? null : c.peers.find((p) => p.system === t.peer);
      if (t.peer !== null && !peer) continue;
      const r = peer ? ratioOf(c, peer) : Number.NaN;
      verdicts.push([c.section, peer ? `vs ${peer.system}` : 'absolute', c.floe.value, peer ? peer.value : '-', peer ? r : '-', t.text, t.met(r, c.floe.value) ? 'yes' : 'NO']);
    }
  }
  const verdictHeaders = ['section', 'against', 'floe', 'peer', 'floe / peer', 'target', 'met'];
  console.log(`\ntargets\n${textTable(verdictHeaders, verdicts)}`);
  console.log(`\n${fsyncLine(fsyncStart, 'fsync reference (start)')}\n${fsyncLine(fsyncEnd, 'fsync reference (end)')}`);
  md.push('## Targets', '', markdownTable(verdictHeaders, verdicts), '', `Whole run: ${fmt(totalS)} s.`);
  const out = writeReport({
    name: 'table-append',
    title: 'floe table benchmark, append sections (1, 5)',
    markdown: md.join('\n'),
    env,
    data: {
      settings: { scale: SCALE, appendRows: APPEND_ROWS, rssRows: RSS_ROWS, sections: [...sections], totalSeconds: totalS },
      fsync: { start: fsyncStart, end: fsyncEnd },
      comparisons: comparisons.map((c) => ({ ...c, targets: undefined, peers: c.peers.map((p) => ({ ...p, ratio: ratioOf(c, p) })) })),
    },
  });
  console.log(`\nwrote ${out.md} and ${out.json}`);
}

// ---- report ---------------------------------------------------------------------------------------

function fsyncLine(f: FsyncRate, when: string): string {
  return `${when}: ${fmt(f.appendsPerSec)} fsync'd ${f.blockBytes / 1024} KiB appends/s (p50 ${f.p50Ms.toFixed(3)} ms, p99 ${f.p99Ms.toFixed(3)} ms; ${f.appends} appends in ${f.dir}, ${f.fsType})`;
}

function latencyRows(figs: readonly LatencyFigure[]): Cell[][] {
  const dash = (v: number | undefined): Cell => (v === undefined ? '-' : v);
  return figs.map((f) => [f.system, f.warm.n, f.warm.p50, f.warm.p99, dash(f.cold?.n), dash(f.cold?.p50), dash(f.cold?.p99), dash(f.coldOpen?.p50)]);
}

const LATENCY_HEADERS = ['system', 'warm n', 'warm p50 ms', 'warm p99 ms', 'cold n', 'cold p50 ms', 'cold p99 ms', 'cold open p50 ms'];

const DURABILITY_NOTES = [
  '- **floe**: local directory store with fsync on (files and directory entries). `append` resolves after its data files, manifest and catalog swap are durable; `upsert` resolves after its log segment is durable (group commit shares one segment among concurrent writers).',
  '  Measured separately with `strace -f -e trace=fsync`: one single-writer floe upsert costs 3 fsyncs, a mkdir and a rename (its log segment is a new object in the local store).',
  '- **SQLite** (better-sqlite3): `journal_mode=WAL`, `synchronous=FULL` (WAL fsynced at every commit); each upsert is its own transaction. better-sqlite3 is synchronous, so 64 "concurrent" writers on one connection run one at a time; SQLite has no group commit.',
  '- **DuckDB** (@duckdb/node-api): file database; the appender commits when closed, fsyncing the WAL. The figure is to commit; the detail adds a CHECKPOINT.',
  '- **LanceDB** (@lancedb/lancedb, local directory): no fsync at all — `strace -f -e trace=fsync,fdatasync` of a createTable + add + 3 mergeInserts shows zero calls — so its writes are not durable against power loss; its figures are an upper bound for a durable equivalent.',
  '- **classic-level**: section 3 reads only; loaded with batches, the last one `sync: true`.',
];

async function main(): Promise<void> {
  const env: EnvInfo = envInfo();
  const t00 = nowMs();
  console.log(`floe table bench — ${env.node}, ${env.cpu} × ${env.cores}, ${env.memGiB} GiB, load ${env.load1} at start, BENCH_SCALE=${SCALE}`);
  const fsyncStart = measureFsyncRate();
  console.log(fsyncLine(fsyncStart, 'fsync reference (start)'));
  if (fsyncStart.fsType === 'tmpfs') console.log(`WARNING: ${fsyncStart.dir} is tmpfs: fsync does nothing there; set TMPDIR to a disk.`);

  const lance: LanceModule = await import('@lancedb/lancedb');
  const duck: DuckModule = await import('@duckdb/node-api');
  const Sqlite: SqliteCtor = (await import('better-sqlite3')).default;
  const Level: LevelCtor = (await import('classic-level')).ClassicLevel;

  const base = loadCorpus(CORPUS);
  console.log(`corpus: ${fmt(base.length)} packages from ${CORPUS}`);

  const a = await sectionAppend(base, lance, duck, Sqlite, Level);
  const { scan, gets } = await readSections(a, base, duck, Sqlite, Level);
  const ups = await sectionUpsert(base, lance, Sqlite);
  const rss = await sectionRss();
  const fsyncEnd = measureFsyncRate();
  console.log(`\n${fsyncLine(fsyncEnd, 'fsync reference (end)')}`);
  const totalS = (nowMs() - t00) / 1000;

  const memGetCmp: Comparison = {
    section: '3. point get',
    metric: 'warm p50 latency, floe memtable vs data files',
    unit: 'ms',
    higherIsBetter: false,
    floe: { system: ups.memGets.system, value: ups.memGets.warm.p50, detail: `n=${ups.memGets.warm.n}` },
    peers: gets.figures.filter((f) => f.system.startsWith('SQLite')).map((f) => ({ system: f.system, value: f.warm.p50 })),
    targets: [{ peer: 'SQLite PK lookup', text: '<= 2x', met: (r) => r <= 2 }],
  };
  const comparisons: Comparison[] = [a.comparison, a.context, ...ups.comparisons, ...gets.comparisons, memGetCmp, scan, rss.comparison];

  // Console
  for (const c of comparisons) {
    console.log(`\n${c.section} — ${c.metric}`);
    console.log(textTable(COMPARISON_HEADERS, comparisonRows(c)));
  }
  console.log('\npoint get latencies');
  console.log(textTable(LATENCY_HEADERS, latencyRows([...gets.figures, ups.memGets])));
  console.log(`\n${fsyncLine(fsyncStart, 'fsync reference (start)')}\n${fsyncLine(fsyncEnd, 'fsync reference (end)')}`);
  console.log(`total ${fmt(totalS)} s; parent peak RSS ${fmt((process.resourceUsage().maxRSS * 1024) / MiB)} MiB`);

  // Summary of targets
  const verdicts: Cell[][] = [];
  for (const c of comparisons) {
    for (const t of c.targets) {
      const peer = t.peer === null ? null : c.peers.find((p) => p.system === t.peer);
      if (t.peer !== null && !peer) continue;
      const r = peer ? ratioOf(c, peer) : Number.NaN;
      verdicts.push([c.section, c.metric, peer ? `vs ${peer.system}` : 'absolute', c.floe.value, peer ? peer.value : '-', peer ? r : '-', t.text, t.met(r, c.floe.value) ? 'yes' : 'NO']);
    }
  }
  const verdictHeaders = ['section', 'metric', 'against', 'floe', 'peer', 'floe / peer', 'target', 'met'];
  console.log('\ntargets');
  console.log(textTable(verdictHeaders, verdicts));

  const md: string[] = [
    '## Physical reference (same run)',
    '',
    markdownTable(
      ['when', 'fsync\'d appends/s', 'p50 ms', 'p99 ms', 'file system'],
      [
        ['start', fsyncStart.appendsPerSec, fsyncStart.p50Ms, fsyncStart.p99Ms, `${fsyncStart.fsType} (${fsyncStart.dir})`],
        ['end', fsyncEnd.appendsPerSec, fsyncEnd.p50Ms, fsyncEnd.p99Ms, `${fsyncEnd.fsType} (${fsyncEnd.dir})`],
      ],
    ),
    '',
    `${fsyncStart.appends} appends of ${fsyncStart.blockBytes / 1024} KiB, each \`write\` + \`fsync\`, to one file (bench/lib.ts measureFsyncRate).`,
    '',
    '## Targets',
    '',
    markdownTable(verdictHeaders, verdicts),
    '',
  ];
  let lastSection = '';
  for (const c of comparisons) {
    if (c.section !== lastSection) md.push(`## ${c.section}`, '');
    lastSection = c.section;
    md.push(`**${c.metric}** (${c.higherIsBetter ? 'higher' : 'lower'} is better)`, '', markdownTable(COMPARISON_HEADERS, comparisonRows(c)), '');
    for (const n of c.notes ?? []) md.push(`- ${n}`);
    if (c.notes?.length) md.push('');
    if (c.section === '2. durable upserts' && c.metric.startsWith('64')) {
      md.push(
        '**floe single-writer upserts/s as the memtable grows** (bulk upserts of 2,000 rows fill it between probes)',
        '',
        markdownTable(
          ['memtable rows', 'upserts/s'],
          ups.memtableDecay.map((d) => [d.memtableRows, d.upsertsPerSec]),
        ),
        '',
      );
    }
  }
  md.push('## Point get latencies (all series)', '', markdownTable(LATENCY_HEADERS, latencyRows([...gets.figures, ups.memGets])), '');
  md.push(
    `Warm: ${WARM_KEYS} random keys of the ${fmt(APPEND_ROWS)}-row table, fetched once untimed, then cycled (up to ${GET_WARM_MAX} gets or ${fmt(SERIES_BUDGET_MS / 1000)} s).`,
    'Cold: per sample a fresh open (floe read-only `open` + `table`, a new SQLite connection, a new classic-level handle) and one random key; only the get is in the latency,',
    'the open is the last column. The OS page cache stays warm: "cold" means the process\'s caches, not the disk.',
    '',
    '## Durability settings',
    '',
    ...DURABILITY_NOTES,
    '',
    '## Settings',
    '',
    `BENCH_SCALE=${SCALE}: ${fmt(APPEND_ROWS)} appended rows (floe: one \`append\` call from a generator, primary key \`package\`; LanceDB: chunks of ${fmt(LANCE_CHUNK)}),`,
    `${UPSERTS_1} / ${UPSERTS_64} upserts at 1 / 64 writers (LanceDB ${LANCE_UPSERTS_1} / ${LANCE_UPSERTS_64}), ${fmt(RSS_ROWS)} rows in the RSS child; scans best of ${SCAN_ROUNDS}.`,
    `Corpus ${CORPUS} (${fmt(base.length)} rows) repeated with a suffix on \`package\`. All databases in fresh directories under ${os.tmpdir()}, removed afterwards.`,
    `Whole run: ${fmt(totalS)} s.`,
  );

  const out = writeReport({
    name: 'table',
    title: 'floe table benchmark (issue 5): floe vs LanceDB, DuckDB, SQLite, classic-level',
    markdown: md.join('\n'),
    env,
    data: {
      settings: { scale: SCALE, appendRows: APPEND_ROWS, rssRows: RSS_ROWS, upserts1: UPSERTS_1, upserts64: UPSERTS_64, lanceChunk: LANCE_CHUNK, corpus: CORPUS, totalSeconds: totalS },
      fsync: { start: fsyncStart, end: fsyncEnd },
      comparisons: comparisons.map((c) => ({
        section: c.section,
        metric: c.metric,
        unit: c.unit,
        higherIsBetter: c.higherIsBetter,
        floe: c.floe,
        peers: c.peers.map((p) => ({ ...p, ratio: ratioOf(c, p) })),
        targets: c.targets.map((t) => {
          const peer = t.peer === null ? null : c.peers.find((p) => p.system === t.peer);
          const r = peer ? ratioOf(c, peer) : Number.NaN;
          return { against: t.peer, text: t.text, ratio: peer ? r : null, met: t.met(r, c.floe.value) };
        }),
        notes: c.notes ?? [],
      })),
      getLatencies: [...gets.figures, ups.memGets],
      memtableDecay: ups.memtableDecay,
      rssChildren: rss.results,
    },
  });
  console.log(`\nwrote ${out.md} and ${out.json}`);
}

if (process.argv[2] === '--rss-child') {
  const rows = Number(process.argv[3]);
  const perFile = Number(process.argv[4]);
  rssChild(rows, perFile).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  const sections = new Set((process.env.BENCH_SECTIONS ?? '1,2,3,4,5').split(',').map((x) => x.trim()));
  const appendOnly = [...sections].every((x) => x === '1' || x === '5');
  (appendOnly ? mainAppend(sections) : sections.has('2') || sections.has('5') ? main() : mainRead()).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
