/**
 * Running recovery of multi-table commit intents (`_recovery/*.json`).
 *
 * For each intent, oldest first: observe every table (catalog entry now,
 * whether the planned manifest exists and whether it was ever published),
 * classify and decide with the pure functions of intent.ts, then act:
 * roll forward (one catalog CAS publishing every staged manifest and
 * recording the commit in the catalog's history ring), finish an
 * already-published commit, roll back (leave the catalog; staged objects are
 * GC garbage), or stop with RECOVERY_REQUIRED naming the tables.
 *
 * Idempotence: each action is a CAS that re-checks the catalog (a second
 * recoverer finds the commit already published), followed by create-only
 * history/audit writes under deterministic keys and an idempotent delete of
 * the intent. A crash between any two steps is finished by the next run,
 * and two processes recovering at once leave one audit entry per decision.
 *
 * Intents of commits still running in this process are skipped. Intents of
 * commits running in OTHER processes are indistinguishable from a dead
 * writer's; `minAgeMs` skips intents younger than that (open uses 0). If a
 * recovery rolls back another process's commit that is still staging, that
 * writer finds its intent gone just before its CAS and fails CAS_CONFLICT;
 * only a recovery landing between that check and the CAS could leave a
 * published commit audited as rolled back (readers still see it whole).
 */
import { decodeTime } from 'ulid';
import { FloeError, isFloeError } from '../errors.js';
import { listAll } from '../store/list.js';
import type { ObjectStore } from '../store/types.js';
import type { CatalogTable } from './catalog.js';
import type { DbInternals } from './database.js';
import { commitKey, commitOf, putEntryOnce, recoveryKey, spillDue, spillHistory, withCommit } from './history.js';
import type { Classification, Decision, Intent, Observation, RecoveryMode } from './intent.js';
import { RECOVERY_MODES, RECOVERY_PREFIX, applyIntent, atExpected, atPlanned, blockingTables, classifyTable, decide, decodeIntent } from './intent.js';

export interface RecoverOptions {
  readonly mode?: RecoveryMode;
  /** Skip intents younger than this (ms, by their ULID time). Default 0. */
  readonly minAgeMs?: number;
}

export interface IntentReport {
  readonly id: string;
  readonly key: string;
  readonly writer: Intent['writer'] | null;
  /** Per table its classification ('recorded' when an earlier run had already decided). */
  readonly tables: ReadonlyArray<{ readonly name: string; readonly classification: Classification['kind'] | 'recorded' }>;
  readonly decision: Decision;
}

/** Commits running in this process, per store (recovery leaves them alone). */
const active = new WeakMap<ObjectStore, Set<string>>();

export function markActive(store: ObjectStore, id: string, on: boolean): void {
  let s = active.get(store);
  if (!s) active.set(store, (s = new Set()));
  if (on) s.add(id);
  else s.delete(id);
}

async function intentKeys(store: ObjectStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of listAll(store, RECOVERY_PREFIX)) if (k.endsWith('.json')) keys.push(k);
  return keys.sort();
}

async function readIntent(store: ObjectStore, key: string): Promise<Intent | null> {
  try {
    const { bytes } = await store.get(key);
    return decodeIntent(bytes, key);
  } catch (err) {
    if (isFloeError(err, 'NOT_FOUND')) return null; // finished by another process meanwhile
    throw err;
  }
}

async function exists(store: ObjectStore, key: string): Promise<boolean> {
  return (await store.head(key)) !== null;
}

/** Is `planned` the manifest `entry` points at, or one of its ancestors? */
async function reaches(db: DbInternals, entry: CatalogTable, planned: { manifest: string; version: number }): Promise<boolean> {
  if (entry.version < planned.version) return false;
  let key: string | null = entry.manifest;
  while (key) {
    if (key === planned.manifest) return true;
    const m = await db.manifest(key);
    if (m.version <= planned.version) return false;
    key = m.parent;
  }
  return false;
}

async function observe(db: DbInternals, intent: Intent, tables: Readonly<Record<string, CatalogTable>>): Promise<Observation[]> {
  const out: Observation[] = [];
  for (const t of intent.tables) {
    const entry = tables[t.name] ?? null;
    const stagedExists = t.planned ? await exists(db.store, t.planned.manifest) : true;
    const plannedReached = t.planned !== null && entry !== null && entry.id === t.tableId && stagedExists ? await reaches(db, entry, t.planned) : false;
    out.push({ entry, plannedReached, stagedExists });
  }
  return out;
}

function assess(intent: Intent, obs: readonly Observation[], mode: RecoveryMode): { classes: Classification[]; decision: Decision } {
  const classes = intent.tables.map((t, i) => classifyTable(t, obs[i]!));
  return { classes, decision: decide(classes, obs.every((o) => o.stagedExists), mode) };
}

function report(key: string, intent: Intent | null, id: string, classes: readonly Classification[], decision: Decision): IntentReport {
  return {
    id,
    key,
    writer: intent?.writer ?? null,
    tables: (intent?.tables ?? []).map((t, i) => ({ name: t.name, classification: classes[i]!.kind })),
    decision,
  };
}

function idOf(key: string): string {
  return key.slice(RECOVERY_PREFIX.length, -'.json'.length);
}

function checkOptions(options: RecoverOptions): { mode: RecoveryMode; minAgeMs: number } {
  const mode = options.mode ?? 'full';
  if (!RECOVERY_MODES.includes(mode)) throw new FloeError('INVALID_ARGUMENT', `recover: mode must be one of ${RECOVERY_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  const minAgeMs = options.minAgeMs ?? 0;
  if (!Number.isFinite(minAgeMs) || minAgeMs < 0) throw new FloeError('INVALID_ARGUMENT', 'recover: minAgeMs must be a non-negative number');
  return { mode, minAgeMs };
}

/** What recovery would decide for each pending intent; reads only. */
export async function pendingRecovery(db: DbInternals, options: RecoverOptions = {}): Promise<IntentReport[]> {
  const { mode } = checkOptions(options);
  const cat = (await db.refreshCatalog()).catalog;
  const out: IntentReport[] = [];
  for (const key of await intentKeys(db.store)) {
    let intent: Intent | null;
    try {
      intent = await readIntent(db.store, key);
    } catch (err) {
      if (!isFloeError(err, 'CORRUPT')) throw err;
      out.push(report(key, null, idOf(key), [], mode === 'full' ? 'roll-back' : 'defer'));
      continue;
    }
    if (!intent) continue;
    const { classes, decision } = assess(intent, await observe(db, intent, cat.tables), mode);
    out.push(report(key, intent, intent.id, classes, decision));
  }
  return out;
}

/** Recover every pending intent, oldest first. Throws RECOVERY_REQUIRED on a `stop`. */
export async function recover(db: DbInternals, options: RecoverOptions = {}): Promise<IntentReport[]> {
  const { mode, minAgeMs } = checkOptions(options);
  if (db.readOnly) throw new FloeError('INVALID_ARGUMENT', 'recover: the database was opened readOnly (use pendingRecovery() to inspect)');
  const out: IntentReport[] = [];
  const mine = active.get(db.store);
  for (const key of await intentKeys(db.store)) {
    const id = idOf(key);
    if (mine?.has(id)) continue;
    let t: number | null = null;
    try {
      t = decodeTime(id);
    } catch (err) {
      // A key that is not a ULID was not written by floe's commit path; leave it.
      if (err instanceof Error) continue;
      throw err;
    }
    if (db.now() - t < minAgeMs) continue;
    const r = await recoverOne(db, key, id, mode);
    if (r) out.push(r);
  }
  return out;
}

async function audit(db: DbInternals, intent: Intent | null, id: string, mode: RecoveryMode, classes: readonly Classification[], decision: Exclude<Decision, 'defer'>, note?: string): Promise<void> {
  await putEntryOnce(db.store, recoveryKey(id, decision), {
    format: 1,
    kind: 'recovery',
    id,
    writer: intent?.writer ?? null,
    at: db.now(),
    mode,
    decision,
    tables: (intent?.tables ?? []).map((t, i) => ({ name: t.name, classification: classes[i]!.kind })),
    ...(note ? { note } : {}),
  });
  await db.failpoints.hit('recovery.audit.after', { key: recoveryKey(id, decision) });
}

async function finish(db: DbInternals, key: string): Promise<void> {
  await db.store.delete(key);
  await db.failpoints.hit('recovery.intent.delete.after', { key });
}

async function recordCommit(db: DbInternals, intent: Intent, tables: Readonly<Record<string, CatalogTable>>): Promise<void> {
  await putEntryOnce(db.store, commitKey(intent.id), {
    format: 1,
    kind: 'commit',
    id: intent.id,
    writer: intent.writer,
    at: db.now(),
    changed: intent.tables.map((t) => t.name),
    tables,
  });
  await db.failpoints.hit('recovery.commit-entry.after', { key: commitKey(intent.id) });
}

/** The catalog moved under a roll-forward's CAS: classify again against it. */
class Moved extends Error {}
const FINAL: readonly Decision[] = ['roll-forward', 'already-published', 'roll-back'];

async function recoverOne(db: DbInternals, key: string, id: string, mode: RecoveryMode): Promise<IntentReport | null> {
  let intent: Intent | null;
  try {
    intent = await readIntent(db.store, key);
  } catch (err) {
    if (!isFloeError(err, 'CORRUPT')) throw err;
    // A torn intent: its writer crashed while writing it, before staging or
    // publishing anything, so nothing of that commit is visible.
    if (mode !== 'full') return report(key, null, id, [], 'defer');
    await audit(db, null, id, mode, [], 'roll-back', `unreadable intent: ${err.message}`);
    await finish(db, key);
    return report(key, null, id, [], 'roll-back');
  }
  if (!intent) return null;
  // A decision already recorded (a crash after the audit entry, before the
  // intent was deleted) is final: finish it instead of deciding again.
  for (const done of FINAL) {
    if (await exists(db.store, recoveryKey(intent.id, done))) {
      await finish(db, key);
      return { id: intent.id, key, writer: intent.writer, tables: intent.tables.map((t) => ({ name: t.name, classification: 'recorded' as const })), decision: done };
    }
  }
  // Set once this run decided roll-forward and then found the catalog moved:
  // another process carried out that same decision, so it is recorded as ours
  // (one audit entry per decision, however the two runs interleave).
  let forwardDecided = false;
  for (let round = 0; ; round++) {
    const cat = (await db.refreshCatalog()).catalog;
    const { classes, decision } = assess(intent, await observe(db, intent, cat.tables), mode);
    const r = report(key, intent, intent.id, classes, decision);
    switch (decision) {
      case 'defer':
        return r;
      case 'stop': {
        await audit(db, intent, intent.id, mode, classes, 'stop');
        const names = blockingTables(intent.tables, classes);
        throw new FloeError(
          'RECOVERY_REQUIRED',
          `multi-table commit ${intent.id} (${intent.writer}) cannot be recovered automatically: tables ${names.join(', ')} are in an impossible state (${intent.tables
            .map((t, i) => `${t.name}: ${classes[i]!.kind}`)
            .join('; ')}); inspect ${key} and the catalog`,
          { key },
        );
      }
      case 'roll-back':
        await audit(db, intent, intent.id, mode, classes, 'roll-back');
        await finish(db, key);
        return r;
      case 'already-published':
        // Its publishing CAS put the history entry in the catalog's ring; a
        // commit published by an older floe (no ring) is recorded here.
        if (!(cat.commits ?? []).some((c) => c.id === intent.id)) await recordCommit(db, intent, applyIntent(cat.tables, intent));
        await audit(db, intent, intent.id, mode, classes, forwardDecided ? 'roll-forward' : 'already-published');
        await finish(db, key);
        return forwardDecided ? { ...r, decision: 'roll-forward' } : r;
      case 'roll-forward': {
        const plan = intent;
        try {
          // Publish and record in one CAS, as the writer would have.
          const st = await db.casCatalog(async (c) => {
            if (atPlanned(c.tables, plan)) return null;
            if (!atExpected(c.tables, plan)) throw new Moved();
            const tables = applyIntent(c.tables, plan);
            return { ...c, tables, commits: withCommit(c.commits, commitOf(plan, tables, db.now())), updatedAt: db.now() };
          });
          if (spillDue(st.catalog)) db.background('history spill', () => spillHistory(db));
        } catch (err) {
          if (!(err instanceof Moved)) throw err;
          forwardDecided = true;
          if (round < 8) continue; // re-classify against the new catalog
          throw new FloeError('CAS_CONFLICT', `recovery of ${intent.id}: the catalog kept moving under its roll-forward (9 rounds); run db.recover() again`, { key });
        }
        await db.failpoints.hit('recovery.cas.after', { key });
        await audit(db, intent, intent.id, mode, classes, 'roll-forward');
        await finish(db, key);
        return r;
      }
    }
  }
}
