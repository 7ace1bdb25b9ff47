/**
 * The mutation state machine (pure): which states a set-oriented UPDATE or
 * DELETE passes through and which moves between them are legal.
 *
 * - delete: `intent -> complete`, or `intent -> aborted`
 * - update: `intent -> appended -> complete`, or `intent | appended -> aborted`
 *
 * `intent` means the targets (and, for an update, the payload of new row
 * images, its BLAKE3 hash, the new data file id and the `_id` span) are
 * fixed and durable; `appended` means the new data file's bytes are durable
 * (not yet visible); `complete` means the effect is published in a manifest
 * version. `aborted` means the mutation published nothing and never will:
 * a concurrent commit changed or removed one of its targets after its
 * snapshot, so applying it would not equal any serial order (its caller
 * starts over on a fresh snapshot). In floe the tombstones and the appended file of an update are
 * published by ONE catalog CAS, so a reader never sees old and new images
 * at once; the `appended` state records that the deterministic file is
 * written so a replay skips rebuilding it. A state document also carries a
 * `version` that every CAS increases by exactly one (ABA guard: S3 etags
 * are content hashes) — `advance` is the only way to produce the next doc.
 *
 * Nothing here performs I/O; every transition is a pure function.
 */
import { FloeError } from '../errors.js';

export type MutationKind = 'delete' | 'update';
export type MutationState = 'intent' | 'appended' | 'complete' | 'aborted';

export const MUTATION_STATES: readonly MutationState[] = ['intent', 'appended', 'complete', 'aborted'];

/** True when `from -> to` is a legal move for `kind`. Staying put is not a move. */
export function canTransition(kind: MutationKind, from: MutationState, to: MutationState): boolean {
  if (to === 'aborted') return from === 'intent' || (kind === 'update' && from === 'appended');
  if (kind === 'delete') return from === 'intent' && to === 'complete';
  return (from === 'intent' && to === 'appended') || (from === 'appended' && to === 'complete');
}

/** The state after `from` for `kind` on the path that succeeds, or null at the end. */
export function nextState(kind: MutationKind, from: MutationState): MutationState | null {
  if (isTerminal(from)) return null;
  if (kind === 'delete') return 'complete';
  return from === 'intent' ? 'appended' : 'complete';
}

export function isTerminal(s: MutationState): boolean {
  return s === 'complete' || s === 'aborted';
}

/** Fraction of the path done: 0 at intent, 1 at complete. */
export function progress(kind: MutationKind, s: MutationState): number {
  if (isTerminal(s)) return 1;
  if (s === 'intent') return 0;
  return kind === 'update' ? 0.5 : 0;
}

export interface Versioned {
  readonly kind: MutationKind;
  readonly state: MutationState;
  readonly version: number;
}

/**
 * The next document: `to` must be a legal move from `doc.state`; the
 * version grows by one. Throws INVARIANT_VIOLATION on an illegal move.
 */
export function advance<D extends Versioned>(doc: D, to: MutationState, patch: Partial<Omit<D, 'kind' | 'state' | 'version'>> = {}): D {
  if (!canTransition(doc.kind, doc.state, to)) {
    throw new FloeError('INVARIANT_VIOLATION', `illegal mutation transition ${doc.kind}: ${doc.state} -> ${to}`);
  }
  return { ...doc, ...patch, state: to, version: doc.version + 1 };
}

/** A same-state update (progress bookkeeping): version + 1, state unchanged; never on a finished doc. */
export function touch<D extends Versioned>(doc: D, patch: Partial<Omit<D, 'kind' | 'state' | 'version'>>): D {
  if (isTerminal(doc.state)) throw new FloeError('INVARIANT_VIOLATION', `a ${doc.state} ${doc.kind} mutation cannot change`);
  return { ...doc, ...patch, version: doc.version + 1 };
}
