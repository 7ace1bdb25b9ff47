/**
 * The S3 backend's decisions, as pure functions: what kind of failure an
 * SDK error is, whether an operation may be sent again, how a conditional
 * PUT with an unknown outcome is settled, how long to back off, and how
 * etags are normalised and sent. `s3.ts` does the I/O and asks these
 * functions what to do; nothing here touches the network, a clock or a
 * random source (callers pass `random` and elapsed times in).
 *
 * The rules they encode:
 * - Only idempotent requests (GET, HEAD, LIST, DELETE, unconditional PUT)
 *   are ever sent again blindly, and only after a transient failure
 *   (throttling, 5xx, timeout, network).
 * - A conditional PUT is sent again only when nothing was written (409
 *   ConditionalRequestConflict) or when a read-back proves that the
 *   precondition still holds and our write is not there, so that of all
 *   the copies of our request at most one can ever apply. When the outcome
 *   is unknown it is settled by reading the object back and looking for the
 *   random nonce our request carried.
 * - Backoff is exponential with full jitter, bounded in attempts and in
 *   total elapsed time.
 */
import type { ErrorCode } from '../errors.js';
import { compareKeys } from './keys.js';

/** What went wrong with one request, as far as retrying and error codes care. */
export type FailureKind =
  /** 404 NoSuchKey, or a bodiless 404 (HEAD). */
  | 'not-found'
  /** 404 NoSuchBucket. */
  | 'no-such-bucket'
  /** 412: a conditional write's precondition did not hold. */
  | 'precondition-failed'
  /** 409 ConditionalRequestConflict / OperationAborted: a concurrent operation won; nothing was written. */
  | 'conditional-conflict'
  /** 416: the range starts at or past the end of the object. */
  | 'invalid-range'
  /** 401/403 and the credential error codes. */
  | 'auth'
  /** 403 RequestTimeTooSkewed: the local clock is off. */
  | 'clock-skew'
  /** 3xx: wrong region or endpoint (PermanentRedirect, ...). */
  | 'redirect'
  /** 429, 503, SlowDown and the other throttling codes. */
  | 'throttled'
  /** Other 5xx, and 400 RequestTimeout (the server gave up reading the body). */
  | 'server'
  /** 501: the server does not implement what was asked (e.g. conditional PUT). */
  | 'not-implemented'
  /** EntityTooLarge, KeyTooLongError, MetadataTooLarge. */
  | 'too-large'
  /** Any other 4xx: a permanent rejection. */
  | 'client'
  /** Our per-request deadline fired, or the HTTP layer timed out. */
  | 'timeout'
  /** No usable response: refused, reset, DNS, truncated body. */
  | 'network'
  /** The request was aborted by someone other than our deadline (store closed). */
  | 'aborted'
  /** Anything else (no status, no recognisable cause). */
  | 'unknown';

export const FAILURE_KINDS: readonly FailureKind[] = [
  'not-found',
  'no-such-bucket',
  'precondition-failed',
  'conditional-conflict',
  'invalid-range',
  'auth',
  'clock-skew',
  'redirect',
  'throttled',
  'server',
  'not-implemented',
  'too-large',
  'client',
  'timeout',
  'network',
  'aborted',
  'unknown',
];

/** The facts about one failed request that the decisions depend on. */
export interface FailureFacts {
  /** HTTP status, when a response arrived. */
  readonly status?: number | undefined;
  /** S3 error code (`Code`, else the SDK error's `name`). */
  readonly code?: string | undefined;
  /** Node/undici error code (ECONNRESET, ...), when the failure was below HTTP. */
  readonly errno?: string | undefined;
  /** The SDK error's `name` (AbortError, TimeoutError, CredentialsProviderError, ...). */
  readonly name?: string | undefined;
  /** Our own per-request deadline fired. */
  readonly timedOut?: boolean | undefined;
}

const AUTH_CODES = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'AccountProblem',
  'ExpiredToken',
  'InvalidAccessKeyId',
  'InvalidClientTokenId',
  'InvalidSecurity',
  'InvalidToken',
  'MissingSecurityHeader',
  'NotSignedUp',
  'SignatureDoesNotMatch',
  'TokenRefreshRequired',
  'UnrecognizedClientException',
  'CredentialsProviderError',
]);

const THROTTLE_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequests',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'BandwidthLimitExceeded',
  'ProvisionedThroughputExceededException',
  'PriorRequestNotComplete',
  'EC2ThrottledException',
]);

const TRANSIENT_CODES = new Set(['RequestTimeout', 'RequestTimeoutException', 'InternalError', 'ServiceUnavailable']);

const TOO_LARGE_CODES = new Set(['EntityTooLarge', 'KeyTooLongError', 'MetadataTooLarge']);

const REDIRECT_CODES = new Set(['PermanentRedirect', 'TemporaryRedirect', 'Redirect', 'AuthorizationHeaderMalformed']);

/** Errors below HTTP after which the request may or may not have reached the server. */
const NETWORK_ERRNOS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_TRUNCATED_BODY',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

const TIMEOUT_ERRNOS = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Classify one failed request. Pure. */
export function classifyFailure(f: FailureFacts): FailureKind {
  if (f.timedOut === true) return 'timeout';
  const status = f.status;
  const code = f.code;
  if (status !== undefined && status > 0) {
    if (code === 'RequestTimeTooSkewed') return 'clock-skew';
    if ((code !== undefined && AUTH_CODES.has(code)) || status === 401 || status === 403) return 'auth';
    if (code !== undefined && REDIRECT_CODES.has(code)) return 'redirect';
    if (status >= 300 && status < 400) return 'redirect';
    if (status === 404) {
      if (code === 'NoSuchBucket') return 'no-such-bucket';
      if (code === undefined || code === 'NoSuchKey' || code === 'NotFound') return 'not-found';
      return 'client';
    }
    if (status === 412) return 'precondition-failed';
    if (status === 409) {
      return code === 'ConditionalRequestConflict' || code === 'OperationAborted' ? 'conditional-conflict' : 'client';
    }
    if (status === 416) return 'invalid-range';
    if (status === 429 || status === 503 || (code !== undefined && THROTTLE_CODES.has(code))) return 'throttled';
    if (status === 501) return 'not-implemented';
    if (status >= 500) return 'server';
    if (code !== undefined && TRANSIENT_CODES.has(code)) return 'server';
    if (code !== undefined && TOO_LARGE_CODES.has(code)) return 'too-large';
    if (status >= 400) return 'client';
    return 'unknown';
  }
  // The errno first: the SDK's HTTP handler renames ECONNRESET and EPIPE
  // errors to "TimeoutError", but a reset is a reset.
  if (f.errno !== undefined && NETWORK_ERRNOS.has(f.errno)) return 'network';
  if (f.name === 'TimeoutError' || (f.errno !== undefined && TIMEOUT_ERRNOS.has(f.errno))) return 'timeout';
  if (f.name === 'CredentialsProviderError' || (code !== undefined && AUTH_CODES.has(code))) return 'auth';
  if (f.name === 'AbortError') return 'aborted';
  return 'unknown';
}

function stringProp(o: object, name: string): string | undefined {
  const v: unknown = (o as Record<string, unknown>)[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Read the facts out of whatever the SDK (or Node's HTTP stack) threw.
 * Only looks at properties; works on plain objects too, which is how the
 * tests feed it every shape.
 */
export function failureFacts(err: unknown, timedOut: boolean): FailureFacts {
  if (typeof err !== 'object' || err === null) return { timedOut };
  const meta: unknown = (err as { $metadata?: unknown }).$metadata;
  let status: number | undefined;
  if (typeof meta === 'object' && meta !== null) {
    const s: unknown = (meta as { httpStatusCode?: unknown }).httpStatusCode;
    if (typeof s === 'number' && Number.isInteger(s) && s > 0) status = s;
  }
  const name = stringProp(err, 'name');
  const awsCode = stringProp(err, 'Code');
  const nodeCode = stringProp(err, 'code');
  // The SDK names a service error after its code ('NoSuchKey'); a bodiless
  // error response gets 'NotFound' or 'Unknown' (nothing to learn from).
  let code = awsCode;
  if (code === undefined && status !== undefined && name !== undefined && name !== 'Unknown' && name !== 'Error') {
    code = name;
  }
  let errno: string | undefined;
  if (status === undefined && nodeCode !== undefined) errno = nodeCode;
  // A truncated or reset body sometimes only says so in its cause.
  if (status === undefined && errno === undefined) {
    const cause: unknown = (err as { cause?: unknown }).cause;
    if (typeof cause === 'object' && cause !== null) errno = stringProp(cause, 'code');
  }
  return { status, code, errno, name, timedOut };
}

/** May an idempotent request (GET, HEAD, LIST, DELETE, unconditional PUT) be sent again after this? */
export function retryableIdempotent(kind: FailureKind): boolean {
  return kind === 'throttled' || kind === 'server' || kind === 'timeout' || kind === 'network';
}

export type ConditionalMode = 'absent' | 'match';

/**
 * What a conditional PUT does after one failed attempt:
 * - `lost`: definitive answer, the precondition did not hold (nothing written);
 * - `resend`: nothing was written and the precondition was not judged (409), so
 *   sending the same request again lets the server judge it;
 * - `settle`: the write may or may not have applied; read the object back;
 * - `fail`: a permanent error (credentials, bucket, request) to report as is.
 */
export type ConditionalStep = 'lost' | 'resend' | 'settle' | 'fail';

export function conditionalStep(kind: FailureKind, mode: ConditionalMode): ConditionalStep {
  switch (kind) {
    case 'precondition-failed':
      return 'lost';
    case 'not-found':
      // AWS answers If-Match on a missing key with 404 NoSuchKey: the key is
      // gone, which is a lost compare-and-swap. For a create it explains
      // nothing, so it is settled like any other unexplained answer.
      return mode === 'match' ? 'lost' : 'settle';
    case 'conditional-conflict':
      return 'resend';
    case 'throttled':
    case 'server':
    case 'timeout':
    case 'network':
    case 'unknown':
      // Any of these may come after the server applied the write (a 500 from
      // RGW is usually a lost race, ECANCELED, but nothing proves it).
      return 'settle';
    case 'no-such-bucket':
    case 'invalid-range':
    case 'auth':
    case 'clock-skew':
    case 'redirect':
    case 'not-implemented':
    case 'too-large':
    case 'client':
    case 'aborted':
      return 'fail';
  }
}

/**
 * A 409 said nothing was written and no retry budget is left. Normally the
 * race is simply lost; but if an earlier attempt of the same call had an
 * unknown outcome it may still apply, so "lost" would be a lie.
 */
export function conflictBudgetSpent(uncertain: boolean): 'lost' | 'unknown' {
  return uncertain ? 'unknown' : 'lost';
}

/** What a read-back (HEAD) found at the key: null when absent. */
export interface ReadBack {
  readonly etag: string;
  /** The nonce in the object's metadata, if it carries one. */
  readonly nonce: string | undefined;
}

export type SettleDecision = 'won' | 'retry' | 'lost';

/**
 * Settle a conditional PUT whose outcome is unknown, from what a read-back
 * found. `won`: the object carries our nonce, so our write applied. `retry`:
 * the precondition still holds and our write is not there, so the same
 * request (same nonce, same precondition) may be sent again: whichever copy
 * applies first makes every other copy fail its precondition. `lost`: another
 * writer's object is there (or the object we meant to replace is gone).
 */
export function settleDecision(input: {
  mode: ConditionalMode;
  seen: ReadBack | null;
  nonce: string;
  expectedEtag?: string | undefined;
}): SettleDecision {
  const { mode, seen, nonce } = input;
  if (seen !== null && seen.nonce === nonce) return 'won';
  if (mode === 'absent') return seen === null ? 'retry' : 'lost';
  if (seen === null) return 'lost';
  return input.expectedEtag !== undefined && seen.etag === normalizeEtag(input.expectedEtag) ? 'retry' : 'lost';
}

/** Should a 412 be double-checked with a read-back before it is reported as lost? */
export function lookAfter412(input: {
  mode: ConditionalMode;
  /** An earlier attempt of this call had an unknown outcome. */
  uncertain: boolean;
  /** A PUT with If-Match in the current form has succeeded on this store. */
  formConfirmed: boolean;
  /** This call already sent both If-Match forms. */
  triedBothForms: boolean;
}): boolean {
  if (input.uncertain) return true;
  return input.mode === 'match' && !input.formConfirmed && !input.triedBothForms;
}

export type After412 = 'won' | 'switch-form' | 'lost';

/**
 * Decide a 412 that was double-checked. `won`: an earlier copy of our own
 * request applied (that is why this one failed). `switch-form`: the object
 * still has exactly the etag we sent, so the server must have refused the
 * way the etag was written (quoted vs bare, see `ifMatchHeader`): send the
 * other form. Otherwise the precondition genuinely failed.
 */
export function after412(input: {
  mode: ConditionalMode;
  seen: ReadBack | null;
  nonce: string;
  expectedEtag?: string | undefined;
  formConfirmed: boolean;
  triedBothForms: boolean;
}): After412 {
  const { seen } = input;
  if (seen !== null && seen.nonce === input.nonce) return 'won';
  if (
    input.mode === 'match' &&
    !input.formConfirmed &&
    !input.triedBothForms &&
    seen !== null &&
    input.expectedEtag !== undefined &&
    seen.etag === normalizeEtag(input.expectedEtag)
  ) {
    return 'switch-form';
  }
  return 'lost';
}

// ---- backoff -----------------------------------------------------------------

export interface RetryPolicy {
  /** Requests per operation, the first included (1 = never retry). */
  readonly maxAttempts: number;
  /** Backoff before the first retry is drawn from [0, baseDelayMs). */
  readonly baseDelayMs: number;
  /** Cap on one backoff. */
  readonly maxDelayMs: number;
  /** No retry starts after this much time since the operation began. */
  readonly maxElapsedMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 50,
  maxDelayMs: 2_000,
  maxElapsedMs: 30_000,
};

/** Full-jitter backoff before retry number `retry` (1 = the first retry). `random` in [0, 1). */
export function backoffDelay(policy: RetryPolicy, retry: number, random: number): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, Math.min(retry - 1, 30)));
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return Math.floor(exp * r);
}

/**
 * The delay before the next attempt, or null when the budget is spent:
 * `attemptsMade` requests already went out and `elapsedMs` passed since the
 * operation began.
 */
export function nextDelay(policy: RetryPolicy, attemptsMade: number, elapsedMs: number, random: number): number | null {
  if (attemptsMade >= policy.maxAttempts) return null;
  const delay = backoffDelay(policy, attemptsMade, random);
  if (elapsedMs + delay >= policy.maxElapsedMs) return null;
  return delay;
}

/** Validate and complete a partial policy. */
export function resolvePolicy(partial: Partial<RetryPolicy> | undefined): RetryPolicy {
  const p = { ...DEFAULT_RETRY_POLICY, ...partial };
  const ok =
    Number.isInteger(p.maxAttempts) &&
    p.maxAttempts >= 1 &&
    Number.isFinite(p.baseDelayMs) &&
    p.baseDelayMs >= 0 &&
    Number.isFinite(p.maxDelayMs) &&
    p.maxDelayMs >= 0 &&
    Number.isFinite(p.maxElapsedMs) &&
    p.maxElapsedMs > 0;
  if (!ok) throw new RangeError(`invalid retry policy ${JSON.stringify(p)}`);
  return p;
}

// ---- error codes -------------------------------------------------------------

/** The FloeError code a failure of this kind is reported as, once no retry is left. */
export function errorCodeFor(kind: FailureKind): ErrorCode {
  switch (kind) {
    case 'not-found':
      return 'NOT_FOUND';
    case 'timeout':
      return 'TIMEOUT';
    case 'too-large':
      return 'LIMIT_EXCEEDED';
    case 'aborted':
      return 'CLOSED';
    case 'precondition-failed':
    case 'conditional-conflict':
      return 'CAS_CONFLICT';
    case 'no-such-bucket':
    case 'invalid-range':
    case 'auth':
    case 'clock-skew':
    case 'redirect':
    case 'throttled':
    case 'server':
    case 'not-implemented':
    case 'client':
    case 'network':
    case 'unknown':
      return 'STORAGE_UNAVAILABLE';
  }
}

// ---- etags -------------------------------------------------------------------

/** Etags handed to callers: no weak marker, no surrounding quotes. */
export function normalizeEtag(raw: string): string {
  let e = raw.trim();
  if (e.startsWith('W/')) e = e.slice(2);
  if (e.length >= 2 && e.startsWith('"') && e.endsWith('"')) e = e.slice(1, -1);
  return e;
}

/**
 * Could this (normalised) etag be the etag of an object? Etag characters are
 * visible ASCII without `"` (RFC 9110 etagc); anything else can never match,
 * and could not even be sent in a header.
 */
export function isPossibleEtag(etag: string): boolean {
  return /^[\x21\x23-\x7e]+$/.test(etag);
}

/**
 * The If-Match header value. RGW (and DigitalOcean Spaces) match only the
 * bare etag and refuse the quoted form; AWS and MinIO accept both; an
 * RFC-strict server wants quotes. The store starts with the bare form and
 * switches once if a 412 turns out to be a refusal of the form.
 */
export function ifMatchHeader(etag: string, quoted: boolean): string {
  const bare = normalizeEtag(etag);
  return quoted ? `"${bare}"` : bare;
}

// ---- ranges ------------------------------------------------------------------

/** The Range header for `length` > 0 bytes from `offset`. */
export function rangeHeader(offset: number, length: number): string {
  return `bytes=${offset}-${offset + length - 1}`;
}

/** Parse `bytes START-END/TOTAL` (TOTAL may be `*`); null if malformed. */
export function parseContentRange(header: string | undefined): { start: number; end: number; total: number | null } | null {
  if (header === undefined) return null;
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? null : Number(m[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return null;
  if (total !== null && (!Number.isSafeInteger(total) || end >= total)) return null;
  return { start, end, total };
}

/**
 * Which part of a ranged GET's body the caller gets, as [from, to) in the
 * body, or an error string when the server answered a different range. A
 * 206 must start at `offset`; a 200 means the server ignored the Range
 * header and sent the whole object, which is then cut here.
 */
export function rangeSlice(input: {
  status: number;
  contentRange: string | undefined;
  bodyLength: number;
  offset: number;
  length: number;
}): { from: number; to: number } | { error: string } {
  const { status, bodyLength, offset, length } = input;
  if (status === 200) {
    const from = Math.min(offset, bodyLength);
    return { from, to: Math.min(bodyLength, offset + length) };
  }
  if (status !== 206) return { error: `unexpected status ${status} for a ranged GET` };
  const cr = parseContentRange(input.contentRange);
  if (cr === null) return { error: `malformed Content-Range ${JSON.stringify(input.contentRange)}` };
  if (cr.start !== offset) return { error: `asked for bytes from ${offset}, got ${input.contentRange}` };
  if (cr.end - cr.start + 1 !== bodyLength) return { error: `Content-Range ${input.contentRange} but ${bodyLength} body bytes` };
  return { from: 0, to: Math.min(bodyLength, length) };
}

// ---- listing -----------------------------------------------------------------

/**
 * Check one ListObjectsV2 page against the contract floe relies on (every key
 * under the prefix, strictly after `startAfter`, strictly increasing in UTF-8
 * byte order, continuing after `previous`). Returns null when it holds, else
 * what is wrong.
 */
export function listPageProblem(keys: readonly string[], prefix: string, after: string | undefined): string | null {
  let prev = after;
  for (const k of keys) {
    if (!k.startsWith(prefix)) return `key ${JSON.stringify(k)} is not under the prefix ${JSON.stringify(prefix)}`;
    if (prev !== undefined && compareKeys(k, prev) <= 0) {
      return `key ${JSON.stringify(k)} does not sort after ${JSON.stringify(prev)} (the listing is not in UTF-8 byte order)`;
    }
    prev = k;
  }
  return null;
}
