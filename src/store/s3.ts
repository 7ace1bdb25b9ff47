/**
 * ObjectStore on any S3-compatible service (AWS S3, Ceph RGW, MinIO, R2, ...)
 * through @aws-sdk/client-s3 (pinned: its releases from 2027 drop Node 20).
 *
 * Contract, on top of the ObjectStore one (types.ts):
 * - Key `k` is object `<prefix>k` in the bucket; `list` strips the prefix.
 *   Keys are validated (keys.ts, plus the 1024-byte S3 limit including the
 *   prefix) before any request.
 * - Durable when the PUT is acknowledged. Objects are single-part PUTs, so a
 *   reader sees all of an object or none of it; bodies shorter than their
 *   Content-Length are rejected and read again.
 * - putIfAbsent is `If-None-Match: *`, putIfMatch is `If-Match: <etag>`; the
 *   server decides, so they are atomic across processes and machines. Every
 *   conditional PUT carries a random nonce in its metadata (x-amz-meta-floe-
 *   nonce). When its outcome is unknown (timeout, reset, 5xx) the object is
 *   read back: our nonce there means we won; the precondition still holding
 *   means nothing applied yet, and the very same request is sent again (of
 *   all copies at most one can apply, and each carries our nonce); anything
 *   else is a lost race. A conditional PUT is never retried blindly. What is
 *   left undecidable: our write applied and was replaced by another writer
 *   before the read-back (reported as CAS_CONFLICT / ALREADY_EXISTS, with a
 *   message saying so) or the budget ran out before the read-back could
 *   decide (TIMEOUT / STORAGE_UNAVAILABLE saying "outcome unknown").
 * - Idempotent requests (get, getRange, head, list, delete, put) are retried
 *   with jittered exponential backoff, bounded in attempts and total time,
 *   after throttling, 5xx, timeouts and network errors; the SDK's own retry
 *   is off (maxAttempts 1) so that nothing is ever resent behind our back.
 *   Every request has a deadline (`requestTimeoutMs`, body included).
 * - Etags are returned without quotes; callers' etags are accepted quoted or
 *   bare. S3 etags are content hashes: identical bytes keep the etag (see
 *   the ABA note in types.ts).
 * - `delete` is idempotent. `close` destroys the client; later calls fail
 *   with CLOSED. A crash leaves nothing behind but the objects acknowledged
 *   so far (and possibly one conditional write whose caller never learned
 *   that it applied — the case every CAS user must already recover from).
 *
 * Server deviations handled here:
 * 1. RGW and DigitalOcean Spaces match `If-Match` only against the bare etag
 *    (the quoted form always fails with 412); AWS and MinIO accept both; an
 *    RFC-strict server wants quotes. The bare form is sent first; until one
 *    If-Match PUT has succeeded on this store, a 412 is double-checked with a
 *    HEAD, and if the object still has exactly the etag we sent the other
 *    form is tried (once per call).
 * 2. RGW answers the losers of a concurrent If-Match race with 412 or with
 *    500 UnknownError (ECANCELED); AWS may answer 409 ConditionalRequestConflict.
 *    412 is a lost race; 409 means nothing was written and the request is
 *    sent again (AWS's advice) so the server can judge the precondition; a
 *    500 is settled by read-back (it usually finds the winner's nonce:
 *    CAS_CONFLICT).
 * 3. If-Match on a missing key: RGW says 412, AWS 404 NoSuchKey; both are
 *    CAS_CONFLICT. (MinIO before its fix for issue 21526, 2025, creates the
 *    object instead; that cannot be detected per request.)
 * 4. Error bodies: RGW's 412/404 carry no Message (the SDK says
 *    "UnknownError"); HEAD errors have no body at all (404 "NotFound", 403
 *    "Unknown"). Classification goes by HTTP status and S3 code, never by
 *    message. A bodiless 404 cannot tell a missing bucket from a missing key,
 *    so `open` checks the bucket (HeadBucket) once.
 * 5. The SDK's default flexible checksums (CRC trailers, aws-chunked bodies)
 *    break on RGW 16 (411 MissingContentLength) and other S3-compatibles:
 *    request and response checksums are WHEN_REQUIRED. Integrity is checked
 *    above the store (CRC32C / BLAKE3 in the formats).
 * 6. Ranges: a range starting at or past the end is 416 (every range of an
 *    empty object included) and returns zero bytes like the memory backend;
 *    a server that ignores Range and answers 200 gets its body cut here; a
 *    206 for a different range is an error. Zero-length reads are a HEAD.
 * 7. Listing: ListObjectsV2 with StartAfter/MaxKeys, without
 *    EncodingType=url (AWS encodes a space as "+", RGW as "%20"; raw XML is
 *    exact for every key keys.ts admits). Each page is checked to be under
 *    the prefix, after StartAfter and strictly increasing in UTF-8 byte
 *    order; servers may return fewer keys than asked (R2, AWS) or set
 *    IsTruncated loosely, so pages are filled by follow-up requests and one
 *    extra key is asked for to make `more` exact. Never more than `limit`.
 * 8. Custom endpoints use path-style addressing (no bucket DNS names).
 * 9. 3xx (PermanentRedirect: wrong region) and RequestTimeTooSkewed (clock)
 *    get their own messages; 501 says the server lacks the feature
 *    (conditional PUT on old MinIO/RGW).
 * 10. A PUT response without an ETag: the etag is the MD5 of the bytes, which
 *    is what every S3 returns for a single-part, non-KMS object.
 * 11. The SDK's Node HTTP handler renames ECONNRESET/EPIPE errors to
 *    "TimeoutError"; failures are classified by errno first, so a reset is a
 *    network error and only a deadline is a TIMEOUT.
 * 12. Batch DeleteObjects is not used: it carries keys in an XML request
 *    body, where U+FFFE / U+FFFF (which keys.ts admits) are illegal, and RGW
 *    answers 400. (Listing returns such keys raw in XML; the SDK parses them.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { ErrorCode } from '../errors.js';
import { FloeError, asError } from '../errors.js';
import { listLimit, MAX_KEY_BYTES, validateBody, validateKey, validatePrefix, validateRange } from './keys.js';
import type { ConditionalMode, FailureFacts, FailureKind, ReadBack, RetryPolicy } from './s3-retry.js';
import {
  after412,
  classifyFailure,
  conditionalStep,
  conflictBudgetSpent,
  errorCodeFor,
  failureFacts,
  ifMatchHeader,
  isPossibleEtag,
  listPageProblem,
  lookAfter412,
  nextDelay,
  normalizeEtag,
  rangeHeader,
  rangeSlice,
  resolvePolicy,
  retryableIdempotent,
  settleDecision,
} from './s3-retry.js';
import type { GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutResult } from './types.js';
import { MAX_LIST_LIMIT } from './types.js';

export interface S3StoreOptions {
  readonly bucket: string;
  /** "" or a prefix ending in "/" under which every key lives. */
  readonly prefix: string;
  /** http(s)://host[:port] of an S3-compatible server; default: AWS. */
  readonly endpoint?: string | undefined;
  /** Default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1. */
  readonly region?: string | undefined;
  /** Default: true when `endpoint` is given. */
  readonly forcePathStyle?: boolean | undefined;
  /** Default: the AWS SDK's chain (environment, profile, ...). */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  /** Deadline for one request, reading the body included (default 30 s). */
  readonly requestTimeoutMs?: number | undefined;
  /** Retry budget for idempotent requests and conditional-write settling. */
  readonly retry?: Partial<RetryPolicy> | undefined;
  /** Injected for tests: backoff sleep, jitter source in [0, 1), clock in ms. */
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
  readonly random?: (() => number) | undefined;
  readonly now?: (() => number) | undefined;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** User metadata name (x-amz-meta-floe-nonce) of the conditional-write nonce. */
export const NONCE_METADATA = 'floe-nonce';

type Attempt<T> = { ok: true; value: T } | { ok: false; kind: FailureKind; facts: FailureFacts; err: unknown };

const encoder = new TextEncoder();
const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

class TruncatedBody extends Error {
  readonly code = 'ERR_TRUNCATED_BODY';
}

function invalidOption(what: string): FloeError {
  return new FloeError('INVALID_ARGUMENT', `invalid S3 store option: ${what}`, { backend: 's3' });
}

function validateOptions(o: S3StoreOptions): void {
  if (typeof o !== 'object' || o === null) throw invalidOption('options must be an object');
  if (typeof o.bucket !== 'string' || !/^[A-Za-z0-9._-]{1,255}$/.test(o.bucket)) {
    throw invalidOption(`bucket ${JSON.stringify(o.bucket)} is not a bucket name`);
  }
  if (typeof o.prefix !== 'string') throw invalidOption('prefix must be a string');
  if (o.prefix !== '') {
    if (!o.prefix.endsWith('/')) throw invalidOption(`prefix ${JSON.stringify(o.prefix)} must be "" or end with "/"`);
    try {
      validatePrefix(o.prefix, 's3');
      validateKey(o.prefix.slice(0, -1), 's3');
    } catch (cause) {
      throw new FloeError('INVALID_ARGUMENT', `invalid S3 store option: prefix ${JSON.stringify(o.prefix)}`, { backend: 's3', cause });
    }
  }
  if (o.endpoint !== undefined) {
    let ok = false;
    try {
      const u = new URL(o.endpoint);
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      ok = false; // not a URL: reported just below
    }
    if (!ok) throw invalidOption(`endpoint ${JSON.stringify(o.endpoint)} must be http(s)://host[:port]`);
  }
  const t = o.requestTimeoutMs;
  if (t !== undefined && (!Number.isFinite(t) || t <= 0)) throw invalidOption(`requestTimeoutMs ${t} must be > 0`);
}

function md5Hex(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('hex');
}

/** Read a whole response body, honouring the deadline and checking its length. */
async function readBody(body: unknown, expected: number | undefined, signal: AbortSignal): Promise<Uint8Array> {
  let chunks: Uint8Array[];
  if (body === undefined || body === null) {
    chunks = [];
  } else if (body instanceof Readable) {
    const stream = body;
    const onAbort = (): void => {
      stream.destroy(new Error('request deadline passed while reading the body'));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    chunks = [];
    try {
      for await (const chunk of stream) chunks.push(chunk as Uint8Array);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  } else if (typeof (body as { transformToByteArray?: unknown }).transformToByteArray === 'function') {
    chunks = [await (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()];
  } else {
    throw new FloeError('STORAGE_UNAVAILABLE', 'unsupported response body type from the S3 client', { backend: 's3' });
  }
  let n = 0;
  for (const c of chunks) n += c.length;
  if (expected !== undefined && n !== expected) {
    throw new TruncatedBody(`response body has ${n} bytes, Content-Length said ${expected}`);
  }
  // A plain Uint8Array (not a Buffer view into a pooled slab), owned by the caller.
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function describeFacts(f: FailureFacts, err: unknown): string {
  if (f.status !== undefined) return `HTTP ${f.status}${f.code !== undefined ? ` ${f.code}` : ''}`;
  if (f.errno !== undefined) return f.errno;
  return `${f.name ?? 'Error'}: ${asError(err).message}`;
}

export class S3Store implements ObjectStore {
  readonly kind = 's3';
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly #client: S3Client;
  readonly #endpointText: string;
  readonly #timeoutMs: number;
  readonly #policy: RetryPolicy;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #now: () => number;
  #closed = false;
  /** How If-Match is written (see deviation 1), and whether a success proved it. */
  #ifMatchQuoted = false;
  #ifMatchConfirmed = false;

  private constructor(o: S3StoreOptions) {
    this.bucket = o.bucket;
    this.prefix = o.prefix;
    this.#endpointText = o.endpoint ?? 'AWS S3';
    this.location =
      `s3://${o.bucket}/${encodeURI(o.prefix)}` + (o.endpoint !== undefined ? `?endpoint=${encodeURIComponent(o.endpoint)}` : '');
    this.#timeoutMs = o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    try {
      this.#policy = resolvePolicy(o.retry);
    } catch (cause) {
      throw new FloeError('INVALID_ARGUMENT', `invalid S3 store option: retry ${JSON.stringify(o.retry)}`, { backend: 's3', cause });
    }
    this.#sleep = o.sleep ?? defaultSleep;
    this.#random = o.random ?? Math.random;
    this.#now = o.now ?? Date.now;
    this.#client = new S3Client({
      region: o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      endpoint: o.endpoint,
      forcePathStyle: o.forcePathStyle ?? o.endpoint !== undefined,
      credentials: o.credentials,
      // Every resend is decided here, never by the SDK (see the contract).
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** Open a store and check that the bucket exists and the credentials work. */
  static async open(options: S3StoreOptions): Promise<S3Store> {
    validateOptions(options);
    const store = new S3Store(options);
    try {
      await store.#idempotent('open', undefined, (signal) =>
        store.#client.send(new HeadBucketCommand({ Bucket: store.bucket }), { abortSignal: signal }),
      );
    } catch (err) {
      await store.close();
      // HeadBucket has no body: its 404 is the bucket's.
      if (err instanceof FloeError && err.code === 'NOT_FOUND') {
        throw new FloeError('STORAGE_UNAVAILABLE', store.#bucketMissing(), { backend: store.location, cause: err.cause });
      }
      throw err;
    }
    return store;
  }

  // ---- reads -------------------------------------------------------------------

  async get(key: string): Promise<GetResult> {
    const full = this.#checkKey(key);
    return this.#idempotent('get', key, async (signal) => {
      const r = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full }), { abortSignal: signal });
      const bytes = await readBody(r.Body, r.ContentLength, signal);
      return { bytes, etag: this.#etagOf(r.ETag, key) };
    });
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    const full = this.#checkKey(key);
    validateRange(offset, length, key, this.kind);
    if (length === 0) {
      if ((await this.head(key)) === null) throw new FloeError('NOT_FOUND', 'no such object', { key, backend: this.location });
      return new Uint8Array(0);
    }
    return this.#idempotent(
      'getRange',
      key,
      async (signal) => {
        const r = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full, Range: rangeHeader(offset, length) }), {
          abortSignal: signal,
        });
        const body = await readBody(r.Body, r.ContentLength, signal);
        const cut = rangeSlice({
          status: r.$metadata.httpStatusCode ?? 0,
          contentRange: r.ContentRange,
          bodyLength: body.length,
          offset,
          length,
        });
        if ('error' in cut) {
          throw new FloeError('STORAGE_UNAVAILABLE', `ranged read of ${length} bytes at ${offset}: ${cut.error}`, {
            key,
            backend: this.location,
          });
        }
        return cut.from === 0 && cut.to === body.length ? body : body.slice(cut.from, cut.to);
      },
      // 416: the range starts at or past the end of an existing object.
      (kind) => (kind === 'invalid-range' ? { value: new Uint8Array(0) } : undefined),
    );
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const full = this.#checkKey(key);
    return this.#idempotent(
      'head',
      key,
      async (signal) => {
        const r = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }), { abortSignal: signal });
        if (r.ContentLength === undefined) {
          throw new FloeError('STORAGE_UNAVAILABLE', 'HEAD response without Content-Length', { key, backend: this.location });
        }
        return { size: r.ContentLength, etag: this.#etagOf(r.ETag, key) };
      },
      (kind) => (kind === 'not-found' ? { value: null } : undefined),
    );
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    this.#assertOpen('list', undefined);
    validatePrefix(prefix, this.kind);
    const limit = listLimit(options.limit, MAX_LIST_LIMIT, this.kind);
    const startAfter = options.startAfter;
    if (startAfter !== undefined) {
      if (typeof startAfter !== 'string' || /[\uD800-\uDFFF]/u.test(startAfter)) {
        throw new FloeError('INVALID_ARGUMENT', `invalid startAfter ${JSON.stringify(startAfter)}`, { backend: this.location });
      }
    }
    const full = this.prefix + prefix;
    const keys: string[] = [];
    let after = startAfter === undefined ? undefined : this.prefix + startAfter;
    let more = false;
    // One extra key tells whether more follow, whatever IsTruncated says.
    for (let request = 0; ; request++) {
      if (request >= 1000) {
        throw new FloeError('STORAGE_UNAVAILABLE', `listing ${JSON.stringify(full)} made no progress in 1000 requests`, {
          backend: this.location,
        });
      }
      const want = Math.min(MAX_LIST_LIMIT, limit + 1 - keys.length);
      const from = after;
      const r = await this.#idempotent('list', undefined, (signal) =>
        this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, StartAfter: from, MaxKeys: want }), {
          abortSignal: signal,
        }),
      );
      const page: string[] = [];
      for (const o of r.Contents ?? []) {
        if (typeof o.Key !== 'string') throw new FloeError('STORAGE_UNAVAILABLE', 'listing entry without a key', { backend: this.location });
        page.push(o.Key);
      }
      const problem = listPageProblem(page, full, from);
      if (problem !== null) {
        throw new FloeError('STORAGE_UNAVAILABLE', `the server broke the listing contract: ${problem}`, { backend: this.location });
      }
      keys.push(...page);
      if (keys.length > limit) {
        more = true;
        break;
      }
      if (r.IsTruncated !== true) break;
      if (keys.length === limit && want === MAX_LIST_LIMIT) {
        // Asked the maximum, got exactly `limit`: trust IsTruncated.
        more = true;
        break;
      }
      if (page.length === 0) {
        throw new FloeError('STORAGE_UNAVAILABLE', 'the server said the listing is truncated but returned no keys', {
          backend: this.location,
        });
      }
      after = page[page.length - 1];
    }
    return { keys: keys.slice(0, limit).map((k) => k.slice(this.prefix.length)), more };
  }

  // ---- writes ------------------------------------------------------------------

  async put(key: string, bytes: Uint8Array): Promise<PutResult> {
    const full = this.#checkKey(key);
    validateBody(bytes, key, this.kind);
    const r = await this.#idempotent('put', key, (signal) =>
      this.#client.send(new PutObjectCommand({ Bucket: this.bucket, Key: full, Body: bytes, ContentLength: bytes.length }), {
        abortSignal: signal,
      }),
    );
    return { etag: r.ETag !== undefined && r.ETag !== '' ? normalizeEtag(r.ETag) : md5Hex(bytes) };
  }

  async putIfAbsent(key: string, bytes: Uint8Array): Promise<PutResult> {
    const full = this.#checkKey(key);
    validateBody(bytes, key, this.kind);
    return this.#conditionalPut('absent', key, full, bytes, undefined);
  }

  async putIfMatch(key: string, bytes: Uint8Array, etag: string): Promise<PutResult> {
    const full = this.#checkKey(key);
    validateBody(bytes, key, this.kind);
    if (typeof etag !== 'string') {
      throw new FloeError('INVALID_ARGUMENT', 'etag must be a string', { key, backend: this.location });
    }
    const expected = normalizeEtag(etag);
    if (!isPossibleEtag(expected)) {
      // No object can have this etag, and it could not be sent as a header.
      throw new FloeError('CAS_CONFLICT', `etag ${JSON.stringify(etag)} does not match the current object`, {
        key,
        backend: this.location,
      });
    }
    return this.#conditionalPut('match', key, full, bytes, expected);
  }

  async delete(key: string): Promise<void> {
    const full = this.#checkKey(key);
    await this.#idempotent(
      'delete',
      key,
      async (signal) => {
        await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full }), { abortSignal: signal });
      },
      // S3 answers 204 for a missing key; some servers say 404.
      (kind) => (kind === 'not-found' ? { value: undefined } : undefined),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
  }

  // ---- conditional writes ---------------------------------------------------------

  async #conditionalPut(mode: ConditionalMode, key: string, full: string, bytes: Uint8Array, expected: string | undefined): Promise<PutResult> {
    const op = mode === 'absent' ? 'putIfAbsent' : 'putIfMatch';
    const nonce = randomBytes(16).toString('hex');
    const start = this.#now();
    const formsTried = new Set<boolean>();
    let attempts = 0;
    /** Some earlier attempt of this call may have applied. */
    let uncertain = false;
    for (;;) {
      this.#assertOpen(op, key);
      attempts++;
      const quoted = this.#ifMatchQuoted;
      if (mode === 'match') formsTried.add(quoted);
      const r = await this.#attempt((signal) =>
        this.#client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: full,
            Body: bytes,
            ContentLength: bytes.length,
            Metadata: { [NONCE_METADATA]: nonce },
            ...(mode === 'absent' ? { IfNoneMatch: '*' } : { IfMatch: ifMatchHeader(expected ?? '', quoted) }),
          }),
          { abortSignal: signal },
        ),
      );
      if (r.ok) {
        if (mode === 'match') {
          this.#ifMatchQuoted = quoted;
          this.#ifMatchConfirmed = true;
        }
        return { etag: r.value.ETag !== undefined && r.value.ETag !== '' ? normalizeEtag(r.value.ETag) : md5Hex(bytes) };
      }
      const step = conditionalStep(r.kind, mode);
      if (step === 'fail') {
        throw this.#failure(r, op, key, attempts, uncertain ? 'an earlier attempt had an unknown outcome, so the write may have applied' : undefined);
      }
      if (step === 'lost') {
        const triedBothForms = formsTried.size === 2;
        const formConfirmed = this.#ifMatchConfirmed;
        if (r.kind === 'precondition-failed' && lookAfter412({ mode, uncertain, formConfirmed, triedBothForms })) {
          const seen = await this.#readBack(op, key, full, start);
          if ('failed' in seen) throw this.#failure(seen.failed, op, key, attempts, uncertain ? 'outcome unknown' : undefined);
          const d = after412({ mode, seen: seen.found, nonce, expectedEtag: expected, formConfirmed, triedBothForms });
          if (d === 'won') return { etag: seen.found!.etag };
          if (d === 'switch-form') {
            // Only flip if nobody else has already (concurrent calls).
            if (this.#ifMatchQuoted === quoted) this.#ifMatchQuoted = !quoted;
            continue;
          }
        }
        throw this.#lost(mode, r, key, expected, uncertain);
      }
      if (step === 'resend') {
        const delay = nextDelay(this.#policy, attempts, this.#now() - start, this.#random());
        if (delay === null) {
          throw conflictBudgetSpent(uncertain) === 'lost'
            ? this.#lost(mode, r, key, expected, false)
            : this.#unknownOutcome(op, key, attempts, r, undefined);
        }
        await this.#sleep(delay);
        continue;
      }
      // step === 'settle': the write may or may not have applied.
      uncertain = true;
      const seen = await this.#readBack(op, key, full, start);
      if ('failed' in seen) throw this.#unknownOutcome(op, key, attempts, r, seen.failed);
      const d = settleDecision({ mode, seen: seen.found, nonce, expectedEtag: expected });
      if (d === 'won') return { etag: seen.found!.etag };
      if (d === 'lost') throw this.#lost(mode, r, key, expected, true);
      const delay = nextDelay(this.#policy, attempts, this.#now() - start, this.#random());
      if (delay === null) throw this.#unknownOutcome(op, key, attempts, r, undefined);
      await this.#sleep(delay);
    }
  }

  /** HEAD with retries within the operation's time budget: what is at the key now. */
  async #readBack(
    op: string,
    key: string,
    full: string,
    start: number,
  ): Promise<{ found: ReadBack | null } | { failed: Extract<Attempt<never>, { ok: false }> }> {
    for (let attempts = 1; ; attempts++) {
      this.#assertOpen(op, key);
      const r = await this.#attempt((signal) =>
        this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }), { abortSignal: signal }),
      );
      if (r.ok) {
        return { found: { etag: this.#etagOf(r.value.ETag, key), nonce: r.value.Metadata?.[NONCE_METADATA] } };
      }
      if (r.kind === 'not-found') return { found: null };
      const delay = retryableIdempotent(r.kind) ? nextDelay(this.#policy, attempts, this.#now() - start, this.#random()) : null;
      if (delay === null) return { failed: r };
      await this.#sleep(delay);
    }
  }

  // ---- plumbing --------------------------------------------------------------------

  /** One request under the per-request deadline; FloeErrors thrown by `run` pass through. */
  async #attempt<T>(run: (signal: AbortSignal) => Promise<T>): Promise<Attempt<T>> {
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, this.#timeoutMs);
    try {
      return { ok: true, value: await run(ac.signal) };
    } catch (err) {
      if (err instanceof FloeError) throw err;
      const facts = failureFacts(err, timedOut);
      let kind = classifyFailure(facts);
      // close() tore the connection down: report CLOSED, not a network error.
      if (this.#closed && kind !== 'timeout') kind = 'aborted';
      return { ok: false, kind, facts, err };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * An idempotent operation: retried after transient failures within the
   * budget. `handle` may turn a failure kind into a result (404 -> null).
   */
  async #idempotent<T>(
    op: string,
    key: string | undefined,
    run: (signal: AbortSignal) => Promise<T>,
    handle?: (kind: FailureKind) => { value: T } | undefined,
  ): Promise<T> {
    const start = this.#now();
    for (let attempts = 1; ; attempts++) {
      this.#assertOpen(op, key);
      const r = await this.#attempt(run);
      if (r.ok) return r.value;
      const handled = handle?.(r.kind);
      if (handled !== undefined) return handled.value;
      if (retryableIdempotent(r.kind)) {
        const delay = nextDelay(this.#policy, attempts, this.#now() - start, this.#random());
        if (delay !== null) {
          await this.#sleep(delay);
          continue;
        }
      }
      throw this.#failure(r, op, key, attempts, undefined);
    }
  }

  #assertOpen(op: string, key: string | undefined): void {
    if (this.#closed) throw new FloeError('CLOSED', `${op} on a closed store`, { key, backend: this.location });
  }

  /** Validate a key (before any I/O) and return the full object key. */
  #checkKey(key: string): string {
    validateKey(key, this.kind);
    const full = this.prefix + key;
    if (encoder.encode(full).length > MAX_KEY_BYTES) {
      throw new FloeError(
        'INVALID_ARGUMENT',
        `key is longer than ${MAX_KEY_BYTES} UTF-8 bytes together with the store prefix ${JSON.stringify(this.prefix)}`,
        { key, backend: this.location },
      );
    }
    this.#assertOpen('request', key);
    return full;
  }

  #etagOf(raw: string | undefined, key: string): string {
    const e = raw === undefined ? '' : normalizeEtag(raw);
    if (e === '') throw new FloeError('STORAGE_UNAVAILABLE', 'response without an ETag', { key, backend: this.location });
    return e;
  }

  #bucketMissing(): string {
    return `bucket "${this.bucket}" does not exist at ${this.#endpointText}; create it first`;
  }

  #describe(kind: FailureKind, facts: FailureFacts, err: unknown): string {
    const detail = describeFacts(facts, err);
    switch (kind) {
      case 'not-found':
        return 'no such object';
      case 'no-such-bucket':
        return this.#bucketMissing();
      case 'auth':
        return (
          `access denied by ${this.#endpointText} (${detail}): check the credentials (options.credentials, or ` +
          `AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE) and that they may use bucket "${this.bucket}"`
        );
      case 'clock-skew':
        return `the server rejected the request time (${detail}): the local clock is off`;
      case 'redirect':
        return `the server redirected the request (${detail}): wrong region or endpoint for bucket "${this.bucket}"`;
      case 'throttled':
        return `the server kept throttling (${detail})`;
      case 'server':
        return `server error at ${this.#endpointText} (${detail})`;
      case 'not-implemented':
        return `${this.#endpointText} does not implement this request (${detail}); conditional PUT (If-Match / If-None-Match) needs a recent server`;
      case 'too-large':
        return `rejected as too large (${detail})`;
      case 'client':
        return `request rejected (${detail})`;
      case 'timeout':
        return facts.timedOut === true
          ? `no complete response from ${this.#endpointText} within ${this.#timeoutMs} ms`
          : `timed out talking to ${this.#endpointText} (${detail})`;
      case 'network':
        return `cannot reach ${this.#endpointText} (${detail})`;
      case 'aborted':
        return 'the store was closed while the request was in flight';
      case 'invalid-range':
        return `range not satisfiable (${detail})`;
      case 'precondition-failed':
        return `precondition failed (${detail})`;
      case 'conditional-conflict':
        return `a concurrent write conflicted (${detail})`;
      case 'unknown':
        return `unexpected failure (${detail})`;
    }
  }

  #failure(r: Extract<Attempt<never>, { ok: false }>, op: string, key: string | undefined, attempts: number, note: string | undefined): FloeError {
    const code: ErrorCode = errorCodeFor(r.kind);
    const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
    return new FloeError(code, `${op}: ${this.#describe(r.kind, r.facts, r.err)}${tries}${note !== undefined ? `; ${note}` : ''}`, {
      key,
      backend: this.location,
      cause: r.err,
    });
  }

  #lost(mode: ConditionalMode, r: Extract<Attempt<never>, { ok: false }>, key: string, expected: string | undefined, uncertain: boolean): FloeError {
    const why = describeFacts(r.facts, r.err);
    const caveat = uncertain
      ? '; an attempt had an unknown outcome and the read-back found another writer\'s object: either they won, or ours applied and was already replaced'
      : '';
    if (mode === 'absent') {
      return new FloeError('ALREADY_EXISTS', `object already exists (${why})${caveat}`, { key, backend: this.location, cause: r.err });
    }
    const what = r.kind === 'not-found' ? 'the object does not exist' : `etag ${JSON.stringify(expected)} does not match the current object`;
    return new FloeError('CAS_CONFLICT', `${what} (${why})${caveat}`, { key, backend: this.location, cause: r.err });
  }

  #unknownOutcome(
    op: string,
    key: string,
    attempts: number,
    write: Extract<Attempt<never>, { ok: false }>,
    readBack: Extract<Attempt<never>, { ok: false }> | undefined,
  ): FloeError {
    const last = readBack ?? write;
    const code: ErrorCode = last.kind === 'timeout' ? 'TIMEOUT' : 'STORAGE_UNAVAILABLE';
    const how = readBack === undefined ? 'the retry budget ran out' : `reading it back failed: ${this.#describe(readBack.kind, readBack.facts, readBack.err)}`;
    return new FloeError(
      code,
      `${op}: outcome unknown after ${attempts} attempts (${this.#describe(write.kind, write.facts, write.err)}; ${how}): ` +
        'the write may or may not have applied; read the object to find out',
      { key, backend: this.location, cause: last.err },
    );
  }
}
