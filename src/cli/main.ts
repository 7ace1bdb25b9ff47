#!/usr/bin/env node
/**
 * The `floe` command: inspect and load a database from a shell.
 *
 *   floe tables <uri>                      list tables
 *   floe stats <uri> <table>               files, rows, versions
 *   floe versions <uri> <table>            published versions, newest first
 *   floe get <uri> <table> <key>           one row by primary key (JSON)
 *   floe scan <uri> <table> [--where JSON] [--columns a,b] [--limit N]
 *                                          rows as JSON lines
 *   floe files <uri> <table>               data files (Parquet) for other engines
 *   floe import <uri> <table> <file.jsonl[.gz]> --schema JSON [--key col]
 *                                          create (if needed) and bulk-append
 *   floe gc <uri> [--grace-ms N]           delete unreferenced objects
 *
 * Read commands open the database read-only and never write. Errors print
 * their code and message and exit with status 1 (2 for usage errors).
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { Command, CommanderError } from 'commander';
import { open } from '../db/database.js';
import { FloeError, isFloeError } from '../errors.js';
import type { Row } from '../format/logrecord.js';

function json(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'bigint') return x.toString();
    if (x instanceof Uint8Array) return Buffer.from(x).toString('base64');
    if (x instanceof Float32Array) return Array.from(x);
    return x;
  });
}

function parseJson(what: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new FloeError('INVALID_ARGUMENT', `${what} is not valid JSON: ${text.slice(0, 80)}`, { cause });
  }
}

async function* jsonLines(file: string): AsyncGenerator<Row> {
  const input = createReadStream(file);
  const stream = file.endsWith('.gz') ? input.pipe(createGunzip()) : input;
  let n = 0;
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    n++;
    if (line.trim() === '') continue;
    yield parseJson(`line ${n} of ${file}`, line) as Row;
  }
}

export function buildCli(out: (s: string) => void = (s) => process.stdout.write(s + '\n')): Command {
  const program = new Command('floe').description('floe: tables on object storage').exitOverride();

  program
    .command('tables <uri>')
    .description('list tables')
    .action(async (uri: string) => {
      const db = await open(uri, { readOnly: true });
      try {
        for (const t of db.listTables()) out(t);
      } finally {
        await db.close();
      }
    });

  program
    .command('stats <uri> <table>')
    .description('files, rows and bytes of a table')
    .action(async (uri: string, table: string) => {
      const db = await open(uri, { readOnly: true });
      try {
        out(json(await (await db.table(table)).stats()));
      } finally {
        await db.close();
      }
    });

  program
    .command('versions <uri> <table>')
    .description('published versions, newest first')
    .option('--limit <n>', 'at most this many', '20')
    .action(async (uri: string, table: string, o: { limit: string }) => {
      const db = await open(uri, { readOnly: true });
      try {
        for (const v of await (await db.table(table)).versions({ limit: Number(o.limit) })) out(json(v));
      } finally {
        await db.close();
      }
    });

  program
    .command('get <uri> <table> <key>')
    .description('one row by primary key (a JSON value or a plain string)')
    .action(async (uri: string, table: string, key: string) => {
      const db = await open(uri, { readOnly: true });
      try {
        const t = await db.table(table);
        let k: unknown = key;
        if (/^[[{"]|^-?\d/.test(key)) {
          try {
            k = JSON.parse(key) as unknown;
          } catch {
            k = key; // not JSON: the key is the literal string
          }
        }
        const schema = await t.schema();
        const pkType = schema.columns[0]?.type;
        if (typeof k === 'number' && pkType === 'int64') k = BigInt(k);
        out(json(await t.get(k)));
      } finally {
        await db.close();
      }
    });

  program
    .command('scan <uri> <table>')
    .description('rows as JSON lines')
    .option('--where <json>', 'filter: {"col": value} or a predicate object')
    .option('--columns <list>', 'comma-separated columns')
    .option('--limit <n>', 'at most this many rows')
    .action(async (uri: string, table: string, o: { where?: string; columns?: string; limit?: string }) => {
      const db = await open(uri, { readOnly: true });
      try {
        const t = await db.table(table);
        const scan = t.scan({
          where: o.where === undefined ? undefined : (parseJson('--where', o.where) as never),
          columns: o.columns?.split(','),
          limit: o.limit === undefined ? undefined : Number(o.limit),
        });
        for (const r of await scan.toArray()) out(json(r));
      } finally {
        await db.close();
      }
    });

  program
    .command('import <uri> <table> <file>')
    .description('bulk-append JSON lines (optionally gzip) to a table, creating it with --schema')
    .option('--schema <json>', 'schema for a new table, e.g. {"id":"int64","name":"utf8"}')
    .option('--key <columns>', 'primary key column(s) for a new table, comma-separated')
    .action(async (uri: string, table: string, file: string, o: { schema?: string; key?: string }) => {
      const db = await open(uri, { logWriter: false });
      try {
        const t = db.listTables().includes(table)
          ? await db.table(table)
          : o.schema
            ? await db.createTable(table, parseJson('--schema', o.schema) as never, o.key ? { primaryKey: o.key.split(',') } : {})
            : (() => {
                throw new FloeError('INVALID_ARGUMENT', `table "${table}" does not exist; pass --schema to create it`);
              })();
        const schema = await t.schema();
        const wanted = new Map(schema.columns.map((c) => [c.name, c.type]));
        async function* rows(): AsyncGenerator<Row> {
          for await (const r of jsonLines(file)) {
            const row: Row = {};
            for (const [k, type] of wanted) {
              const v = r[k];
              row[k] = type === 'int64' && typeof v === 'number' ? BigInt(v) : (v ?? null);
            }
            yield row;
          }
        }
        const r = await t.append(rows(), { rowsPerFile: 250_000 });
        out(json({ table, rows: r.rows, version: r.version }));
      } finally {
        await db.close();
      }
    });

  program
    .command('files <uri> <table>')
    .description('data files of the current version (Parquet; readable by DuckDB, Spark, Trino)')
    .action(async (uri: string, table: string) => {
      const db = await open(uri, { readOnly: true });
      try {
        for (const f of await (await db.table(table)).dataFiles()) out(json(f));
      } finally {
        await db.close();
      }
    });

  program
    .command('gc <uri>')
    .description('delete objects no published version references (older than the grace period)')
    .option('--grace-ms <n>', 'grace period in ms', String(60 * 60 * 1000))
    .action(async (uri: string, o: { graceMs: string }) => {
      const db = await open(uri, { logWriter: false });
      try {
        const r = await db.gc({ graceMs: Number(o.graceMs) });
        out(json({ scanned: r.scanned, deleted: r.deleted.length }));
      } finally {
        await db.close();
      }
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildCli().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (isFloeError(err)) {
      process.stderr.write(`floe: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly) {
  process.exitCode = await main(process.argv.slice(2));
}
