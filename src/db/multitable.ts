/**
 * The multi-table commit protocol, and the operations built on it
 * (`db.load`, `db.alterTables`, `db.compactTables`, `dropTable`).
 *
 * Steps, each a durable barrier with a failpoint after it:
 *   1. `_recovery/<id>.json` written create-only: per table the expected
 *      catalog entry and the planned manifest key (chosen up front);
 *   2. per table, its new objects (data files, bitmaps) and then its planned
 *      manifest (create-only) are staged; nothing is visible yet;
 *   3. ONE catalog CAS moves every table from expected to planned — readers
 *      switch all tables at once, this is the commit point — and appends
 *      the commit's history entry to the catalog's ring (history.ts);
 *   4. the intent is deleted.
 * A crash before 3 leaves an intent that recovery rolls forward (all staged)
 * or back (not all staged); a crash after 3 leaves one that recovery records
 * as already published. A lost race (another commit moved one of our tables
 * between 1 and 3) fails with CAS_CONFLICT and nothing of this commit is
 * visible; the intent is removed and the staged objects are GC garbage.
 *
 * Cost of a load into T tables (one data file each, ids already reserved):
 * 2 + 2T PUTs (intent, T data files, T manifests, catalog), one DELETE, one
 * HEAD (the intent is still ours) and one catalog GET (manifests this
 * process wrote are cached); no LIST. Every ~16 commits a background task
 * moves old history entries out of the catalog (one PUT and one catalog
 * CAS, off the commit path).
 */
import { FloeError } from '../errors.js';
import type { ColumnSpecInput, TableSchema } from '../format/schema.js';
import { addColumn as addColumnToSchema, schemaFromJson, schemaToJson } from '../format/schema.js';
import type { CompactOptions, CompactResult } from '../table/compact.js';
import { compactOptions, pickFiles, prepareCompaction } from '../table/compact.js';
import type { DeletionRef, Manifest } from '../table/manifest.js';
import { encodeManifest, manifestKey, nextManifest } from '../table/manifest.js';
import type { AppendInput, AppendOptions } from '../table/table.js';
import { appendLimits, inputRows } from '../table/table.js';
import type { StageLimits } from '../table/write.js';
import { stageFiles, supersede } from '../table/write.js';
import type { Catalog, CatalogTable } from './catalog.js';
import type { DbInternals } from './database.js';
import { commitOf, spillDue, spillHistory, withCommit } from './history.js';
import type { Intent, IntentTable, WriterKind } from './intent.js';
import { INTENT_FORMAT, applyIntent, atExpected, atPlanned, encodeIntent, intentKey } from './intent.js';
import { markActive } from './recovery.js';

export interface CommitResult {
  readonly commitId: string;
  /** Published manifest version per changed table (absent for removed tables). */
  readonly versions: Record<string, number>;
}

/** One table's part of a commit: how to build its next manifest from the expected one. */
export interface TablePlan {
  readonly name: string;
  readonly action: 'update' | 'remove';
  /** Write the table's new objects and return its next manifest (update only). */
  readonly stage?: (cur: Manifest, entry: CatalogTable, cat: Catalog) => Promise<Manifest>;
}

/** Errors after which the writer itself abandons the commit (not a crash). */
const ABANDON = new Set(['CAS_CONFLICT', 'INVALID_ARGUMENT', 'SCHEMA_MISMATCH', 'NOT_FOUND']);

/** Run the commit protocol for `plans` (distinct table names). */
export function commitTables(db: DbInternals, writer: WriterKind, plans: readonly TablePlan[]): Promise<CommitResult> {
  return db.withoutCompaction(() => runCommit(db, writer, plans));
}

async function runCommit(db: DbInternals, writer: WriterKind, plans: readonly TablePlan[]): Promise<CommitResult> {
  if (db.readOnly) throw new FloeError('INVALID_ARGUMENT', `${writer}: the database was opened readOnly`);
  if (plans.length === 0) throw new FloeError('INVALID_ARGUMENT', `${writer}: name at least one table`);
  if (new Set(plans.map((p) => p.name)).size !== plans.length) throw new FloeError('INVALID_ARGUMENT', `${writer}: a table is named twice`);
  const cat = (await db.refreshCatalog()).catalog;
  const current = new Map<string, { entry: CatalogTable; manifest: Manifest }>();
  const tables: IntentTable[] = [];
  for (const p of plans) {
    const entry = cat.tables[p.name];
    if (!entry) {
      throw new FloeError('NOT_FOUND', `${writer}: no table "${p.name}" in ${db.store.location} (tables: ${Object.keys(cat.tables).sort().join(', ') || 'none'})`);
    }
    const manifest = await db.manifest(entry.manifest);
    current.set(p.name, { entry, manifest });
    const expected = { manifest: entry.manifest, version: entry.version };
    const planned = p.action === 'remove' ? null : { manifest: manifestKey(entry.id, manifest.version + 1, db.newId()), version: manifest.version + 1 };
    tables.push({ name: p.name, tableId: entry.id, action: p.action, expected, planned });
  }
  const intent: Intent = { format: INTENT_FORMAT, magic: 'floe-intent', id: db.newId(), writer, createdAt: db.now(), tables };
  const ikey = intentKey(intent.id);
  markActive(db.store, intent.id, true);
  let spill = false;
  try {
    await db.store.putIfAbsent(ikey, encodeIntent(intent));
    await db.failpoints.hit('multitable.intent.after', { key: ikey });
    try {
      for (let i = 0; i < plans.length; i++) {
        const p = plans[i]!;
        const t = tables[i]!;
        if (!t.planned || !p.stage) continue;
        const { entry, manifest } = current.get(p.name)!;
        const next = await p.stage(manifest, entry, cat);
        if (next.version !== t.planned.version || next.tableId !== t.tableId) {
          throw new FloeError('INVARIANT_VIOLATION', `${writer}: staged manifest of "${p.name}" is version ${next.version}, planned ${t.planned.version}`, { key: t.planned.manifest });
        }
        await db.store.putIfAbsent(t.planned.manifest, encodeManifest(next));
        db.cacheManifest(t.planned.manifest, next);
        await db.failpoints.hit('multitable.stage.after', { key: t.planned.manifest, table: p.name });
      }
      // A recovery in another process may have rolled this commit back while
      // it was staging (it cannot tell a slow writer from a dead one): then
      // give up rather than publish a commit recorded as rolled back. (A
      // recovery between this check and the CAS remains a narrow window.)
      if ((await db.store.head(ikey)) === null) {
        throw new FloeError('CAS_CONFLICT', `${writer} ${intent.id}: its intent ${ikey} was removed by a recovery in another process; nothing was published, retry`, { key: ikey });
      }
      const st = await db.casCatalog(async (c) => {
        if (atPlanned(c.tables, intent)) return null; // a recovery elsewhere already published it
        if (!atExpected(c.tables, intent)) {
          const moved = tables.filter((t) => c.tables[t.name]?.manifest !== t.expected?.manifest).map((t) => t.name);
          throw new FloeError('CAS_CONFLICT', `${writer} ${intent.id}: tables ${moved.join(', ')} changed since this commit began; nothing was published, retry`, { key: ikey });
        }
        const published = applyIntent(c.tables, intent);
        return { ...c, tables: published, commits: withCommit(c.commits, commitOf(intent, published, db.now())), updatedAt: db.now() };
      });
      spill = spillDue(st.catalog);
    } catch (err) {
      if (err instanceof FloeError && ABANDON.has(err.code)) await abandon(db, ikey, err);
      throw err;
    }
    await db.failpoints.hit('multitable.cas.after', { key: ikey });
    await db.store.delete(ikey);
    await db.failpoints.hit('multitable.intent.delete.after', { key: ikey });
    // Maintenance after the commit is whole, off its path.
    if (spill) db.background('history spill', () => spillHistory(db));
  } finally {
    markActive(db.store, intent.id, false);
  }
  const versions: Record<string, number> = {};
  for (const t of tables) if (t.planned) versions[t.name] = t.planned.version;
  return { commitId: intent.id, versions };
}

/** The writer gives up (bad input, lost race): remove its intent, keep the cause. */
async function abandon(db: DbInternals, ikey: string, cause: FloeError): Promise<void> {
  try {
    await db.store.delete(ikey);
  } catch (err) {
    // The intent stays; the next recovery rolls it back (nothing was published).
    throw new FloeError(cause.code, `${cause.message} (and removing ${ikey} failed; recovery will roll it back)`, { key: ikey, cause: err });
  }
}

/** Chunking of each table's input, as for `append` (rows and bytes per data file). */
export type LoadOptions = AppendOptions;

/** Atomic bulk load into several tables: all tables' rows become visible at once, or none. */
export async function load(db: DbInternals, inputs: Readonly<Record<string, AppendInput>>, options: LoadOptions = {}): Promise<CommitResult> {
  if (inputs === null || typeof inputs !== 'object') throw new FloeError('INVALID_ARGUMENT', 'load: pass an object mapping table names to rows');
  const limits = appendLimits(options);
  const names = Object.keys(inputs);
  // Order the load after this process's acknowledged point writes, then commit against a fresh catalog.
  await db.flush();
  return commitTables(
    db,
    'load',
    names.map((name) => ({
      name,
      action: 'update' as const,
      stage: (cur, entry, cat) => stageRows(db, name, entry, cur, cat, inputs[name]!, limits),
    })),
  );
}

/** Write `input` as data files of one table and build its next manifest (nothing published). */
async function stageRows(db: DbInternals, name: string, entry: CatalogTable, cur: Manifest, cat: Catalog, input: AppendInput, limits: StageLimits): Promise<Manifest> {
  const ctx = db.writeCtx;
  const pk = cur.primaryKey;
  const staged = await stageFiles(
    ctx,
    { tableId: entry.id, schema: schemaFromJson(cur.schema), schemaVersion: cur.schemaVersion, primaryKey: pk },
    inputRows(input),
    BigInt(cat.checkpointLsn),
    (n) => db.reserveIds(n),
    limits,
    'load',
    (err, base) => (err instanceof FloeError ? new FloeError(err.code, `load into "${name}": ${err.detail} (row indexes relative to input row ${base})`, { cause: err }) : err),
  );
  const memo = { positions: new Map<string, number[]>(), bitmaps: new Map<string, DeletionRef>() };
  const exclude = new Set(staged.files.map((f) => f.id));
  const deletes = pk && staged.probe ? await supersede(ctx, entry.id, cur, pk, staged.probe, exclude, memo, 'load') : new Map<string, DeletionRef>();
  return nextManifest(cur, entry.manifest, { operation: 'load', addFiles: staged.files, deletes, now: db.now() });
}

/** Remove tables from the catalog through the intent protocol (their objects become GC garbage). */
export function dropTables(db: DbInternals, names: readonly string[]): Promise<CommitResult> {
  return commitTables(db, 'drop', names.map((name) => ({ name, action: 'remove' as const })));
}


/** Schema changes of one table in `db.alterTables` (applied in order). */
export interface TableAlteration {
  readonly addColumns?: readonly ColumnSpecInput[];
}

/**
 * Schema changes of several tables in one commit: every table's new schema
 * becomes visible at once, or none (a bad column spec for any table fails
 * the whole call before anything is written). No data file is rewritten.
 */
export async function alterTables(db: DbInternals, changes: Readonly<Record<string, TableAlteration>>): Promise<CommitResult> {
  if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) {
    throw new FloeError('INVALID_ARGUMENT', 'alterTables: pass an object mapping table names to { addColumns: [...] }');
  }
  const names = Object.keys(changes);
  for (const name of names) {
    const c = changes[name];
    const unknown = c && typeof c === 'object' ? Object.keys(c).filter((k) => k !== 'addColumns') : [];
    if (!c || typeof c !== 'object' || unknown.length > 0 || !Array.isArray(c.addColumns) || c.addColumns.length === 0) {
      throw new FloeError('INVALID_ARGUMENT', `alterTables: table "${name}" needs { addColumns: [one or more column specs] }${unknown.length ? ` (unknown: ${unknown.join(', ')})` : ''}`);
    }
  }
  // Validate every table's change against its current schema first, so bad input writes nothing.
  const cat = (await db.refreshCatalog()).catalog;
  for (const name of names) {
    const e = cat.tables[name];
    if (e) applyAlteration(schemaFromJson((await db.manifest(e.manifest)).schema), changes[name]!, name);
  }
  return commitTables(
    db,
    'schema-change',
    names.map((name) => ({
      name,
      action: 'update' as const,
      stage: async (cur, entry) => {
        const next = applyAlteration(schemaFromJson(cur.schema), changes[name]!, name);
        return nextManifest(cur, entry.manifest, { operation: 'add-column', schema: { json: schemaToJson(next), version: cur.schemaVersion + 1 }, now: db.now() });
      },
    })),
  );
}

function applyAlteration(schema: TableSchema, change: TableAlteration, name: string): TableSchema {
  let s = schema;
  for (const spec of change.addColumns ?? []) {
    try {
      s = addColumnToSchema(s, spec);
    } catch (err) {
      if (err instanceof FloeError) throw new FloeError(err.code, `alterTables "${name}": ${err.detail}`, { cause: err });
      throw err;
    }
  }
  return s;
}

/** Result of `db.compactTables`: the commit, and per table what compaction did. */
export interface CompactTablesResult {
  /** Null when no table had anything to compact (nothing was written). */
  readonly commitId: string | null;
  readonly versions: Record<string, number>;
  readonly tables: Record<string, Omit<CompactResult, 'version'>>;
}

/**
 * Compact several tables in one commit (each as `t.compact` would), so a
 * reader sees either every table's old files or every table's new ones.
 * Tables with nothing to compact are left out of the commit; when none has
 * anything, nothing is written and `commitId` is null.
 */
export async function compactTables(db: DbInternals, names: readonly string[], options: CompactOptions = {}): Promise<CompactTablesResult> {
  const input: unknown = names;
  if (!Array.isArray(input) || input.some((n) => typeof n !== 'string')) throw new FloeError('INVALID_ARGUMENT', 'compactTables: pass an array of table names');
  const o = compactOptions(names.join(', '), options);
  const cat = (await db.refreshCatalog()).catalog;
  const due: string[] = [];
  for (const name of names) {
    const e = cat.tables[name];
    if (!e) throw new FloeError('NOT_FOUND', `compactTables: no table "${name}" in ${db.store.location}`);
    if (pickFiles(await db.manifest(e.manifest), o).length > 0) due.push(name);
  }
  if (due.length === 0) return { commitId: null, versions: {}, tables: {} };
  const done: Record<string, Omit<CompactResult, 'version'>> = {};
  const r = await commitTables(
    db,
    'compaction',
    due.map((name) => ({
      name,
      action: 'update' as const,
      stage: async (cur, entry) => {
        const view = await db.viewOfManifest(name, entry.manifest);
        const prep = await prepareCompaction(db.writeCtx, name, entry.id, view, o);
        if (!prep) {
          done[name] = { filesRemoved: 0, filesAdded: 0, rowsWritten: 0, rowsDropped: 0 };
          return nextManifest(cur, entry.manifest, { operation: 'compact', now: db.now() });
        }
        done[name] = { filesRemoved: prep.filesRemoved, filesAdded: prep.filesAdded, rowsWritten: prep.rowsWritten, rowsDropped: prep.rowsDropped };
        // `cur` is the manifest the plan read, and the commit publishes only if it is still current.
        return nextManifest(cur, entry.manifest, { ...(await prep.edit(cur)), operation: 'compact', now: db.now() });
      },
    })),
  );
  return { ...r, tables: done };
}
