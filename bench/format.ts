/**
 * Data-file format benchmark: write and read throughput (rows/s) of the
 * Parquet candidates on the Debian packages corpus, repeated to BENCH_N rows
 * (default 200,000) with a suffix on `package` — the measurements behind the
 * choice in src/format/parquet.ts (parquet-wasm writes, hyparquet reads).
 *
 * Writers: floe's encodeParquet (parquet-wasm, zstd and snappy, including
 * the checksum trailer) and hyparquet-writer (snappy; it has no zstd
 * compressor on Node 20). Readers, each producing Arrow data for every row:
 * floe's ParquetFile over a MemoryStore (hyparquet + CRC verification +
 * Arrow conversion) for all columns and for two; hyparquet alone (decode
 * only, no Arrow); parquet-wasm's synchronous readParquet (whole file in
 * memory; it ignores column projection); and parquet-wasm's async range
 * reader, which is fastest but aborts the process when a range request
 * fails, so floe cannot use it. Also the point-lookup latency of
 * ParquetFile.readRows for one row.
 *
 * Figures, not a test: nothing is asserted. Writes bench/results/format.md
 * and format.json.
 *
 *   node dist/bench/format.js
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import * as arrow from 'apache-arrow';
import { parquetMetadata, parquetRead } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { ColumnSource } from 'hyparquet-writer';
import * as pw from 'parquet-wasm';
import { ParquetFile, encodeParquet } from '../src/format/parquet.js';
import { MemoryStore } from '../src/store/memory.js';
import { MetricsStore } from '../src/store/metrics.js';
import type { Cell } from './lib.js';
import { envInfo, envInt, markdownTable, nowMs, summarize, textTable, timeEach, writeReport } from './lib.js';

const CORPUS = process.env.FLOE_CORPUS ?? '/work/shared/data/debian-packages.jsonl.gz';
const N = envInt('BENCH_N', 200_000);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const KEY = 'bench/data.parquet';

interface Pkg {
  package: string;
  section: string;
  priority: string;
  architecture: string;
  installed_size_kb: number;
  size_bytes: number;
  version: string;
  maintainer: string;
  depends: string | null;
  summary: string;
  description: string;
}

function corpusTable(n: number): arrow.Table {
  const lines = gunzipSync(readFileSync(CORPUS)).toString('utf8').split('\n').filter(Boolean);
  const base = lines.map((l) => JSON.parse(l) as Pkg);
  const rows: Pkg[] = [];
  for (let i = 0; rows.length < n; i++) {
    const r = base[i % base.length] as Pkg;
    const rep = Math.floor(i / base.length);
    rows.push(rep ? { ...r, package: `${r.package}~${rep}` } : r);
  }
  const str = (k: keyof Pkg): arrow.Vector => arrow.vectorFromArray(rows.map((r) => r[k] as string | null), new arrow.Utf8());
  const ids = new BigInt64Array(n);
  const seqs = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    ids[i] = BigInt(i);
    seqs[i] = BigInt(i >> 10);
  }
  return new arrow.Table({
    _id: arrow.makeVector(ids),
    _seq: arrow.makeVector(seqs),
    package: str('package'),
    section: str('section'),
    priority: str('priority'),
    architecture: str('architecture'),
    installed_size_kb: arrow.vectorFromArray(rows.map((r) => r.installed_size_kb), new arrow.Int32()),
    size_bytes: arrow.makeVector(BigInt64Array.from(rows, (r) => BigInt(r.size_bytes))),
    version: str('version'),
    maintainer: str('maintainer'),
    depends: str('depends'),
    summary: str('summary'),
    description: str('description'),
  });
}

/** Best (minimum) wall time of ROUNDS runs, in ms. */
async function best(fn: () => unknown): Promise<number> {
  let min = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = nowMs();
    await fn();
    min = Math.min(min, nowMs() - t0);
  }
  return min;
}

interface Row {
  readonly op: 'write' | 'read';
  readonly candidate: string;
  readonly columns: string;
  readonly ms: number;
  readonly rowsPerSec: number;
  readonly bytes: number;
  readonly note: string;
}

async function main(): Promise<void> {
  const env = envInfo();
  const table = corpusTable(N);
  console.log(`corpus: ${N} rows, ${table.numCols} columns`);
  const results: Row[] = [];
  const add = (op: Row['op'], candidate: string, columns: string, ms: number, bytes: number, note = ''): void => {
    const row = { op, candidate, columns, ms, rowsPerSec: (N / ms) * 1000, bytes, note };
    results.push(row);
    console.log(`${op} ${candidate} [${columns}]: ${ms.toFixed(0)} ms, ${Math.round(row.rowsPerSec).toLocaleString('en-US')} rows/s`);
  };

  // ---- writers
  let zstd: Uint8Array = new Uint8Array(0);
  add('write', 'floe encodeParquet (parquet-wasm) zstd', 'all', await best(() => (zstd = encodeParquet(table))), 0);
  results[results.length - 1] = { ...(results[results.length - 1] as Row), bytes: zstd.length };
  let snappy: Uint8Array = new Uint8Array(0);
  add('write', 'floe encodeParquet (parquet-wasm) snappy', 'all', await best(() => (snappy = encodeParquet(table, { compression: 'snappy' }))), 0);
  results[results.length - 1] = { ...(results[results.length - 1] as Row), bytes: snappy.length };
  let hw = new ArrayBuffer(0);
  const hwMs = await best(() => {
    const columnData: ColumnSource[] = table.schema.fields.map((f) => {
      const v = table.getChild(f.name) as arrow.Vector;
      const t = f.type as arrow.DataType;
      const type = arrow.DataType.isUtf8(t) ? 'STRING' : arrow.DataType.isInt(t) && t.bitWidth === 64 ? 'INT64' : 'INT32';
      const data: unknown = v.toArray();
      return { name: f.name, data: data as ColumnSource['data'], type, nullable: f.nullable };
    });
    hw = parquetWriteBuffer({ columnData, rowGroupSize: 65536, codec: 'SNAPPY' });
  });
  add('write', 'hyparquet-writer snappy', 'all', hwMs, hw.byteLength, 'no zstd compressor on Node 20');

  // ---- readers
  const two = ['_id', 'size_bytes'];
  for (const [codec, bytes] of [
    ['zstd', zstd],
    ['snappy', snappy],
  ] as const) {
    const store = new MetricsStore(new MemoryStore());
    await store.put(KEY, bytes);
    for (const cols of [undefined, two]) {
      store.reset();
      const ms = await best(async () => {
        const pf = await ParquetFile.open(store, KEY, { size: bytes.length });
        for (let i = 0; i < pf.rowGroups.length; i++) await pf.readRowGroup(i, cols);
      });
      const reqs = store.requests() / ROUNDS;
      add('read', `floe ParquetFile (hyparquet) ${codec}`, cols ? cols.join(',') : 'all', ms, bytes.length, `${reqs.toFixed(0)} requests per full read`);
    }

    const ab = bytes.slice().buffer;
    const md = parquetMetadata(ab);
    add(
      'read',
      `hyparquet decode only, no Arrow ${codec}`,
      'all',
      await best(() => parquetRead({ file: ab, metadata: md, compressors, parsers: { stringFromBytes: (b: Uint8Array) => b }, onChunk: () => undefined })),
      bytes.length,
    );
    add(
      'read',
      `parquet-wasm readParquet (sync, whole file) ${codec}`,
      'all',
      await best(() => arrow.tableFromIPC(pw.readParquet(bytes, { batchSize: 65536 }).intoIPCStream())),
      bytes.length,
      'ignores column projection; needs the whole file in memory',
    );
    const blob = {
      size: bytes.length,
      slice: (a: number, b: number) => ({ arrayBuffer: async () => bytes.slice(a, b).buffer }),
    } as unknown as Blob;
    add(
      'read',
      `parquet-wasm async range reader ${codec}`,
      'all',
      await best(async () => {
        const f = await pw.ParquetFile.fromFile(blob);
        const n = f.metadata().numRowGroups();
        for (let i = 0; i < n; i++) arrow.tableFromIPC((await f.read({ rowGroups: [i], batchSize: 65536 })).intoIPCStream());
      }),
      bytes.length,
      'rejected: a failed range request aborts the process (WASM panic)',
    );
  }

  // ---- point lookups
  const store = new MetricsStore(new MemoryStore());
  await store.put(KEY, zstd);
  const pf = await ParquetFile.open(store, KEY, { size: zstd.length });
  store.reset();
  const lookups = 50;
  const row = (i: number): number => ((i + 10) * 7919) % N;
  const lat = summarize(await timeEach(lookups, async (i) => void (await pf.readRows(row(i), row(i) + 1, ['_id', 'package', 'size_bytes'])), 3));
  const perLookup = store.snapshot().getRange;
  console.log(`point lookup (1 row, 3 columns): p50 ${lat.p50.toFixed(2)} ms, ${(perLookup.requests / (lookups + 3)).toFixed(1)} requests, ${Math.round(perLookup.bytesRead / (lookups + 3))} bytes`);

  const headers = ['op', 'candidate', 'columns', 'ms (best of rounds)', 'rows/s', 'file bytes', 'note'];
  const cells: Cell[][] = results.map((r) => [r.op, r.candidate, r.columns, r.ms, Math.round(r.rowsPerSec), r.bytes, r.note]);
  console.log('\n' + textTable(headers, cells));
  const out = writeReport({
    name: 'format',
    title: 'Data-file format: Parquet write and read throughput',
    env,
    markdown: [
      `${N.toLocaleString('en-US')} rows of the Debian packages corpus (13 columns, mostly text), row groups of 65,536 rows, best of ${ROUNDS} rounds, single process.`,
      '',
      markdownTable(headers, cells),
      '',
      `Point lookup with ParquetFile.readRows (1 row, 3 columns, zstd, MemoryStore): p50 ${lat.p50.toFixed(2)} ms, p90 ${lat.p90.toFixed(2)} ms; ` +
        `${(perLookup.requests / (lookups + 3)).toFixed(1)} range requests and ${Math.round(perLookup.bytesRead / (lookups + 3)).toLocaleString('en-US')} bytes per lookup.`,
    ].join('\n'),
    data: { rows: N, rounds: ROUNDS, results, pointLookup: { latencyMs: lat, requests: perLookup.requests / (lookups + 3), bytes: perLookup.bytesRead / (lookups + 3) } },
  });
  console.log(`\nreport: ${out.md}`);
}

await main();
