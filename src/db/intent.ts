/**
 * Multi-table commit intents and the pure decisions recovery makes on them.
 *
 * An intent (`_recovery/<ulid>.json`, written create-only before any table
 * object) names, per table, the catalog entry the commit expects to replace
 * (`expected`, null when the commit registers a new table) and the manifest
 * it will publish (`planned`, null when it removes the table). The planned
 * manifest keys are chosen before the intent is written, so the intent alone
 * says exactly which objects the commit would publish.
 *
 * The catalog is floe's single commit point and moves by one CAS, so a
 * commit is either fully visible or not at all; recovery only has to decide
 * whether to finish a commit whose writer died (roll forward), forget it
 * (roll back: the catalog is left alone and the staged objects become GC
 * garbage), or stop for an operator. `classifyTable` and `decide` are pure
 * and total over their inputs; the I/O that gathers observations and acts
 * on decisions lives in recovery.ts.
 */
import { FloeError } from '../errors.js';
import { openJson, sealJson } from '../table/manifest.js';
import type { CatalogTable } from './catalog.js';

export const INTENT_FORMAT = 1;
export const RECOVERY_PREFIX = '_recovery/';

export const WRITER_KINDS = ['load', 'schema-change', 'compaction', 'drop'] as const;
export type WriterKind = (typeof WRITER_KINDS)[number];

export type TableAction = 'update' | 'register' | 'remove';

export interface ManifestRef {
  readonly manifest: string;
  readonly version: number;
}

export interface IntentTable {
  readonly name: string;
  readonly tableId: string;
  readonly action: TableAction;
  /** Catalog entry the commit replaces; null for `register`. */
  readonly expected: ManifestRef | null;
  /** Manifest the commit publishes; null for `remove`. */
  readonly planned: ManifestRef | null;
}

export interface Intent {
  readonly format: number;
  readonly magic: 'floe-intent';
  /** ULID: also the commit id, so intents list oldest first. */
  readonly id: string;
  readonly writer: WriterKind;
  readonly createdAt: number;
  readonly tables: readonly IntentTable[];
}

export function intentKey(id: string): string {
  return `${RECOVERY_PREFIX}${id}.json`;
}

export function encodeIntent(i: Intent): Uint8Array {
  return sealJson(i);
}

export function decodeIntent(bytes: Uint8Array, key: string): Intent {
  const i = openJson(bytes, key) as Partial<Intent>;
  if (i.magic !== 'floe-intent' || typeof i.format !== 'number' || typeof i.id !== 'string' || !Array.isArray(i.tables)) {
    throw new FloeError('CORRUPT', 'recovery intent is missing required fields', { key });
  }
  if (i.format > INTENT_FORMAT) {
    throw new FloeError('UNSUPPORTED_VERSION', `recovery intent format ${i.format} is newer than this floe supports (${INTENT_FORMAT}); upgrade floe`, { key });
  }
  if (!WRITER_KINDS.includes(i.writer as WriterKind)) throw new FloeError('CORRUPT', `recovery intent has unknown writer kind ${JSON.stringify(i.writer)}`, { key });
  return i as Intent;
}

/** What recovery observed for one table of an intent (gathered by I/O). */
export interface Observation {
  /** The catalog entry under the table's name now, or null. */
  readonly entry: CatalogTable | null;
  /** The planned manifest is the current one or an ancestor of it. */
  readonly plannedReached: boolean;
  /** The planned manifest object exists in the store (true when planned is null). */
  readonly stagedExists: boolean;
}

export type Classification =
  | { readonly kind: 'no-movement' }
  | { readonly kind: 'at-planned' }
  | { readonly kind: 'unexpected-at-planned-step'; readonly observed: number }
  | { readonly kind: 'moved-several'; readonly observed: number | null; readonly throughPlanned: boolean }
  | { readonly kind: 'invariant-violated'; readonly observed: number | null; readonly why: string };

export type ClassificationKind = Classification['kind'];

/** Classify one table of an intent against what the catalog shows now. Pure. */
export function classifyTable(t: IntentTable, o: Observation): Classification {
  const cur = o.entry;
  if (t.action === 'register') {
    if (!t.planned) return { kind: 'invariant-violated', observed: cur?.version ?? null, why: 'register without a planned manifest' };
    if (!cur) return { kind: 'no-movement' };
    if (cur.id !== t.tableId) return { kind: 'unexpected-at-planned-step', observed: cur.version };
    if (cur.manifest === t.planned.manifest) return { kind: 'at-planned' };
    if (cur.version > t.planned.version) return { kind: 'moved-several', observed: cur.version, throughPlanned: o.plannedReached };
    return { kind: 'invariant-violated', observed: cur.version, why: `table id ${t.tableId} is at version ${cur.version} under an unplanned manifest` };
  }
  const exp = t.expected;
  if (!exp) return { kind: 'invariant-violated', observed: cur?.version ?? null, why: `${t.action} without an expected manifest` };
  if (t.action === 'remove') {
    if (!cur || cur.id !== t.tableId) return { kind: 'at-planned' };
    if (cur.manifest === exp.manifest) return { kind: 'no-movement' };
    if (cur.version <= exp.version) return { kind: 'invariant-violated', observed: cur.version, why: `catalog is at version ${cur.version}, not after the expected ${exp.version}` };
    if (cur.version === exp.version + 1) return { kind: 'unexpected-at-planned-step', observed: cur.version };
    return { kind: 'moved-several', observed: cur.version, throughPlanned: false };
  }
  // update
  if (!t.planned) return { kind: 'invariant-violated', observed: cur?.version ?? null, why: 'update without a planned manifest' };
  if (!cur) return { kind: 'moved-several', observed: null, throughPlanned: false };
  if (cur.id !== t.tableId) return { kind: 'invariant-violated', observed: cur.version, why: `the name now belongs to table id ${cur.id}, not ${t.tableId}` };
  if (cur.manifest === exp.manifest) return { kind: 'no-movement' };
  if (cur.manifest === t.planned.manifest) return { kind: 'at-planned' };
  if (cur.version <= exp.version) {
    return { kind: 'invariant-violated', observed: cur.version, why: `catalog is at version ${cur.version} under another manifest than the expected ${exp.manifest}` };
  }
  if (cur.version === t.planned.version) return { kind: 'unexpected-at-planned-step', observed: cur.version };
  return { kind: 'moved-several', observed: cur.version, throughPlanned: o.plannedReached };
}

export type RecoveryMode = 'full' | 'roll-forward-only';
export const RECOVERY_MODES: readonly RecoveryMode[] = ['full', 'roll-forward-only'];

/**
 * - `roll-forward`: publish the staged manifests with one catalog CAS.
 * - `already-published`: the commit is in the catalog; record and forget it.
 * - `roll-back`: the commit never became visible and cannot be finished;
 *   leave the catalog, forget the intent (staged objects are GC garbage).
 * - `stop`: refuse (RECOVERY_REQUIRED): an operator must look.
 * - `defer`: roll-forward-only mode leaves the intent for a full recovery.
 */
export type Decision = 'roll-forward' | 'already-published' | 'roll-back' | 'stop' | 'defer';

function published(c: Classification): boolean {
  return c.kind === 'at-planned' || (c.kind === 'moved-several' && c.throughPlanned);
}

/**
 * One decision for a whole intent from its tables' classifications. All
 * tables always share it (a commit is all or nothing). Pure.
 */
export function decide(classes: readonly Classification[], stagedAll: boolean, mode: RecoveryMode): Decision {
  const full = mode === 'full';
  if (classes.length === 0) return 'already-published';
  if (classes.some((c) => c.kind === 'invariant-violated')) return full ? 'stop' : 'defer';
  const anyPublished = classes.some(published);
  const anyStill = classes.some((c) => c.kind === 'no-movement');
  if (anyPublished && anyStill) return full ? 'stop' : 'defer'; // one CAS cannot publish half a commit
  if (anyPublished) return 'already-published';
  if (classes.every((c) => c.kind === 'no-movement')) return stagedAll ? 'roll-forward' : full ? 'roll-back' : 'defer';
  return full ? 'roll-back' : 'defer';
}

/** Tables whose classification blocks recovery (named in RECOVERY_REQUIRED). */
export function blockingTables(tables: readonly IntentTable[], classes: readonly Classification[]): string[] {
  const inv = tables.filter((_, i) => classes[i]?.kind === 'invariant-violated').map((t) => t.name);
  if (inv.length > 0) return inv;
  return tables.filter((_, i) => classes[i] !== undefined && (published(classes[i]) || classes[i].kind === 'no-movement')).map((t) => t.name);
}

/** Every table of the intent is at its expected entry in `tables`. Pure. */
export function atExpected(tables: Readonly<Record<string, CatalogTable>>, intent: Intent): boolean {
  return intent.tables.every((t) => {
    const cur = tables[t.name];
    if (t.action === 'register') return cur === undefined;
    return cur !== undefined && cur.id === t.tableId && cur.manifest === t.expected?.manifest;
  });
}

/** Every table of the intent shows the intent's outcome in `tables`. Pure. */
export function atPlanned(tables: Readonly<Record<string, CatalogTable>>, intent: Intent): boolean {
  return intent.tables.every((t) => {
    const cur = tables[t.name];
    if (t.action === 'remove') return cur === undefined || cur.id !== t.tableId;
    return cur !== undefined && cur.manifest === t.planned?.manifest;
  });
}

/** The catalog's table map with the intent applied. Pure. */
export function applyIntent(tables: Readonly<Record<string, CatalogTable>>, intent: Intent): Record<string, CatalogTable> {
  const out: Record<string, CatalogTable> = { ...tables };
  for (const t of intent.tables) {
    if (t.action === 'remove' || !t.planned) delete out[t.name];
    else out[t.name] = { id: t.tableId, manifest: t.planned.manifest, version: t.planned.version };
  }
  return out;
}
