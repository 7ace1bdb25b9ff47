/**
 * The one error type floe throws.
 *
 * Contract: every failure that crosses a public boundary is a `FloeError`
 * whose `code` says what kind of failure it is, so callers branch on
 * `err.code`, never on message text. Messages name the object (key, table,
 * backend) and, where there is one, what to do next. The lower-level error
 * that caused it, if any, rides along as `cause`.
 *
 * Many internal failure modes map onto this small set of public kinds;
 * adding a code is an API change.
 */

export const ERROR_CODES = [
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'CAS_CONFLICT',
  'INVALID_ARGUMENT',
  'STORAGE_UNAVAILABLE',
  'TIMEOUT',
  'CORRUPT',
  'FENCED',
  'CLOSED',
  'SCHEMA_MISMATCH',
  'LOG_GAP',
  'RECOVERY_REQUIRED',
  'INVARIANT_VIOLATION',
  'UNSUPPORTED_VERSION',
  'NOT_A_DATABASE',
  'LIMIT_EXCEEDED',
  /** A failpoint asked to simulate a crash; only fault-injection tests see it. */
  'INJECTED_CRASH',
  /** A failpoint asked to simulate a plain failure. */
  'INJECTED_FAULT',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface FloeErrorOptions {
  cause?: unknown;
  /** Object key the failure concerns, if any. */
  key?: string;
  /** Backend or component name (e.g. `local`, `s3`, `log`). */
  backend?: string;
}

export class FloeError extends Error {
  readonly code: ErrorCode;
  readonly key: string | undefined;
  readonly backend: string | undefined;
  /** The message without the code prefix and location suffix (for wrapping in a more specific one). */
  readonly detail: string;

  constructor(code: ErrorCode, message: string, options: FloeErrorOptions = {}) {
    const where = [options.backend, options.key === undefined ? undefined : `key "${options.key}"`]
      .filter((s): s is string => s !== undefined)
      .join(' ');
    super(where ? `${code}: ${message} (${where})` : `${code}: ${message}`, { cause: options.cause });
    this.name = 'FloeError';
    this.code = code;
    this.key = options.key;
    this.backend = options.backend;
    this.detail = message;
  }
}

/** True when `err` is a FloeError, optionally of one of the given codes. */
export function isFloeError(err: unknown, ...codes: ErrorCode[]): err is FloeError {
  return err instanceof FloeError && (codes.length === 0 || codes.includes(err.code));
}

/** Narrow an unknown thrown value to an Error for messages and causes. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
