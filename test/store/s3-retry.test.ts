// The S3 backend's pure decisions: failure classification, what may be
// retried, how a conditional PUT with an unknown outcome is settled, backoff
// bounds, etag and range handling, listing checks. Tables cover every kind;
// fast-check covers the numeric rules; and a model of racing conditional
// writers (lost responses, requests that arrive late, 409s) checks that the
// decisions never produce two applied writes, a "won" whose write did not
// apply, or a "lost" whose write applies.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ConditionalMode, FailureFacts, FailureKind, ReadBack, RetryPolicy } from '../../src/store/s3-retry.js';
import {
  after412,
  backoffDelay,
  classifyFailure,
  conditionalStep,
  conflictBudgetSpent,
  DEFAULT_RETRY_POLICY,
  errorCodeFor,
  FAILURE_KINDS,
  failureFacts,
  ifMatchHeader,
  isPossibleEtag,
  listPageProblem,
  lookAfter412,
  nextDelay,
  normalizeEtag,
  parseContentRange,
  rangeHeader,
  rangeSlice,
  resolvePolicy,
  retryableIdempotent,
  settleDecision,
} from '../../src/store/s3-retry.js';

const MODES: ConditionalMode[] = ['absent', 'match'];

describe('classifyFailure', () => {
  const cases: Array<[FailureFacts, FailureKind]> = [
    // timeouts win over everything
    [{ timedOut: true }, 'timeout'],
    [{ timedOut: true, status: 412, code: 'PreconditionFailed' }, 'timeout'],
    [{ timedOut: true, errno: 'ECONNRESET' }, 'timeout'],
    // the SDK names resets "TimeoutError"; the errno decides
    [{ name: 'TimeoutError', errno: 'ECONNRESET' }, 'network'],
    [{ name: 'TimeoutError', errno: 'EPIPE' }, 'network'],
    [{ name: 'TimeoutError', errno: 'ETIMEDOUT' }, 'timeout'],
    [{ name: 'TimeoutError' }, 'timeout'],
    [{ errno: 'ETIMEDOUT' }, 'timeout'],
    [{ errno: 'ESOCKETTIMEDOUT' }, 'timeout'],
    [{ errno: 'UND_ERR_HEADERS_TIMEOUT' }, 'timeout'],
    // network
    [{ errno: 'ECONNRESET' }, 'network'],
    [{ errno: 'ECONNREFUSED' }, 'network'],
    [{ errno: 'EPIPE' }, 'network'],
    [{ errno: 'ENOTFOUND' }, 'network'],
    [{ errno: 'EAI_AGAIN' }, 'network'],
    [{ errno: 'EHOSTUNREACH' }, 'network'],
    [{ errno: 'ERR_TRUNCATED_BODY' }, 'network'],
    [{ errno: 'ERR_STREAM_PREMATURE_CLOSE' }, 'network'],
    [{ errno: 'UND_ERR_SOCKET' }, 'network'],
    // no status, no errno
    [{ name: 'AbortError' }, 'aborted'],
    [{ name: 'CredentialsProviderError' }, 'auth'],
    [{ code: 'InvalidAccessKeyId' }, 'auth'],
    [{ name: 'TypeError' }, 'unknown'],
    [{}, 'unknown'],
    [{ errno: 'ESOMETHINGELSE' }, 'unknown'],
    // 3xx
    [{ status: 301, code: 'PermanentRedirect' }, 'redirect'],
    [{ status: 307 }, 'redirect'],
    [{ status: 400, code: 'AuthorizationHeaderMalformed' }, 'redirect'],
    // 400
    [{ status: 400, code: 'RequestTimeout' }, 'server'],
    [{ status: 400, code: 'InvalidArgument' }, 'client'],
    [{ status: 400, code: 'EntityTooLarge' }, 'too-large'],
    [{ status: 400, code: 'KeyTooLongError' }, 'too-large'],
    [{ status: 400, code: 'MetadataTooLarge' }, 'too-large'],
    [{ status: 400, code: 'ExpiredToken' }, 'auth'],
    [{ status: 400 }, 'client'],
    [{ status: 411, code: 'MissingContentLength' }, 'client'],
    // auth
    [{ status: 401 }, 'auth'],
    [{ status: 403 }, 'auth'],
    [{ status: 403, code: 'AccessDenied' }, 'auth'],
    [{ status: 403, code: 'SignatureDoesNotMatch' }, 'auth'],
    [{ status: 403, code: 'InvalidAccessKeyId' }, 'auth'],
    [{ status: 403, code: 'RequestTimeTooSkewed' }, 'clock-skew'],
    // 404
    [{ status: 404, code: 'NoSuchKey' }, 'not-found'],
    [{ status: 404, code: 'NotFound' }, 'not-found'],
    [{ status: 404 }, 'not-found'],
    [{ status: 404, code: 'NoSuchBucket' }, 'no-such-bucket'],
    [{ status: 404, code: 'NoSuchUpload' }, 'client'],
    // 409 / 412 / 416
    [{ status: 409, code: 'ConditionalRequestConflict' }, 'conditional-conflict'],
    [{ status: 409, code: 'OperationAborted' }, 'conditional-conflict'],
    [{ status: 409, code: 'BucketNotEmpty' }, 'client'],
    [{ status: 409 }, 'client'],
    [{ status: 412, code: 'PreconditionFailed' }, 'precondition-failed'],
    [{ status: 412 }, 'precondition-failed'],
    [{ status: 416, code: 'InvalidRange' }, 'invalid-range'],
    // throttling and 5xx
    [{ status: 429 }, 'throttled'],
    [{ status: 503, code: 'SlowDown' }, 'throttled'],
    [{ status: 503 }, 'throttled'],
    [{ status: 400, code: 'Throttling' }, 'throttled'],
    [{ status: 400, code: 'RequestLimitExceeded' }, 'throttled'],
    [{ status: 500, code: 'UnknownError' }, 'server'],
    [{ status: 500, code: 'InternalError' }, 'server'],
    [{ status: 500 }, 'server'],
    [{ status: 501, code: 'NotImplemented' }, 'not-implemented'],
    [{ status: 502 }, 'server'],
    [{ status: 504 }, 'server'],
    [{ status: 599 }, 'server'],
    // AWS can answer 200 with an error body (InternalError) on some calls
    [{ status: 200, code: 'InternalError' }, 'server'],
    [{ status: 200, code: 'Whatever' }, 'unknown'],
  ];
  for (const [facts, kind] of cases) {
    it(`${JSON.stringify(facts)} -> ${kind}`, () => assert.equal(classifyFailure(facts), kind));
  }

  it('our deadline always means timeout', () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 100, max: 599 }), { nil: undefined }),
        fc.option(fc.string(), { nil: undefined }),
        fc.option(fc.constantFrom('ECONNRESET', 'EPIPE', 'X'), { nil: undefined }),
        (status, code, errno) => classifyFailure({ status, code, errno, timedOut: true }) === 'timeout',
      ),
    );
  });

  it('every 5xx but 501 is retryable for idempotent requests, whatever the code says (short of auth)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 500, max: 599 }).filter((s) => s !== 501), fc.constantFrom(undefined, 'UnknownError', 'X', 'SlowDown'), (status, code) =>
        retryableIdempotent(classifyFailure({ status, code })),
      ),
    );
  });

  it('no 4xx except throttling and RequestTimeout is retried', () => {
    fc.assert(
      fc.property(fc.integer({ min: 400, max: 499 }), fc.constantFrom(undefined, 'NoSuchKey', 'AccessDenied', 'PreconditionFailed', 'X'), (status, code) => {
        const kind = classifyFailure({ status, code });
        return retryableIdempotent(kind) === (kind === 'throttled');
      }),
    );
  });
});

describe('failureFacts', () => {
  it('reads an SDK service error (Code, name, $metadata)', () => {
    const err = Object.assign(new Error('UnknownError'), {
      name: 'PreconditionFailed',
      Code: 'PreconditionFailed',
      $fault: 'client',
      $metadata: { httpStatusCode: 412, attempts: 1 },
    });
    assert.deepEqual(failureFacts(err, false), {
      status: 412,
      code: 'PreconditionFailed',
      errno: undefined,
      name: 'PreconditionFailed',
      timedOut: false,
    });
  });

  it('takes the code from the name when a bodiless response has no Code (HEAD 404)', () => {
    const err = Object.assign(new Error('UnknownError'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } });
    assert.equal(failureFacts(err, false).code, 'NotFound');
    assert.equal(classifyFailure(failureFacts(err, false)), 'not-found');
  });

  it('ignores the meaningless name "Unknown" (HEAD 403) and classifies by status', () => {
    const err = Object.assign(new Error('UnknownError'), { name: 'Unknown', $metadata: { httpStatusCode: 403 } });
    const f = failureFacts(err, false);
    assert.equal(f.code, undefined);
    assert.equal(classifyFailure(f), 'auth');
  });

  it('reads a Node system error (connection refused), whose $metadata has no status', () => {
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', errno: -111, $metadata: {} });
    const f = failureFacts(err, false);
    assert.equal(f.status, undefined);
    assert.equal(f.errno, 'ECONNREFUSED');
    assert.equal(classifyFailure(f), 'network');
  });

  it('reads a cause code when the error itself has none', () => {
    const err = new Error('socket hang up', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) });
    assert.equal(classifyFailure(failureFacts(err, false)), 'network');
  });

  it('an AbortError is aborted unless our deadline fired', () => {
    const err = Object.assign(new Error('Request aborted'), { name: 'AbortError' });
    assert.equal(classifyFailure(failureFacts(err, false)), 'aborted');
    assert.equal(classifyFailure(failureFacts(err, true)), 'timeout');
  });

  it('non-objects and odd values', () => {
    for (const v of [undefined, null, 'boom', 42]) assert.equal(classifyFailure(failureFacts(v, false)), 'unknown');
    assert.equal(classifyFailure(failureFacts('boom', true)), 'timeout');
    const weird = { $metadata: { httpStatusCode: 'x' }, name: 5, code: {} };
    assert.equal(classifyFailure(failureFacts(weird, false)), 'unknown');
  });
});

describe('which kinds are retried, and how a conditional PUT proceeds', () => {
  const retried: Record<FailureKind, boolean> = {
    'not-found': false,
    'no-such-bucket': false,
    'precondition-failed': false,
    'conditional-conflict': false,
    'invalid-range': false,
    auth: false,
    'clock-skew': false,
    redirect: false,
    throttled: true,
    server: true,
    'not-implemented': false,
    'too-large': false,
    client: false,
    timeout: true,
    network: true,
    aborted: false,
    unknown: false,
  };
  it('retryableIdempotent, every kind', () => {
    for (const k of FAILURE_KINDS) assert.equal(retryableIdempotent(k), retried[k], k);
    assert.equal(Object.keys(retried).length, FAILURE_KINDS.length);
  });

  const steps: Record<FailureKind, Record<ConditionalMode, string>> = {
    'not-found': { absent: 'settle', match: 'lost' },
    'no-such-bucket': { absent: 'fail', match: 'fail' },
    'precondition-failed': { absent: 'lost', match: 'lost' },
    'conditional-conflict': { absent: 'resend', match: 'resend' },
    'invalid-range': { absent: 'fail', match: 'fail' },
    auth: { absent: 'fail', match: 'fail' },
    'clock-skew': { absent: 'fail', match: 'fail' },
    redirect: { absent: 'fail', match: 'fail' },
    throttled: { absent: 'settle', match: 'settle' },
    server: { absent: 'settle', match: 'settle' },
    'not-implemented': { absent: 'fail', match: 'fail' },
    'too-large': { absent: 'fail', match: 'fail' },
    client: { absent: 'fail', match: 'fail' },
    timeout: { absent: 'settle', match: 'settle' },
    network: { absent: 'settle', match: 'settle' },
    aborted: { absent: 'fail', match: 'fail' },
    unknown: { absent: 'settle', match: 'settle' },
  };
  it('conditionalStep, every kind x mode', () => {
    for (const k of FAILURE_KINDS) for (const m of MODES) assert.equal(conditionalStep(k, m), steps[k][m], `${k} ${m}`);
  });

  it('a conditional PUT is never blindly resent after an outcome that may have applied', () => {
    for (const k of FAILURE_KINDS) {
      for (const m of MODES) {
        if (retryableIdempotent(k)) assert.equal(conditionalStep(k, m), 'settle', `${k} ${m}`);
        if (conditionalStep(k, m) === 'resend') assert.equal(k, 'conditional-conflict');
      }
    }
  });

  it('conflictBudgetSpent: lost only when no earlier attempt may still apply', () => {
    assert.equal(conflictBudgetSpent(false), 'lost');
    assert.equal(conflictBudgetSpent(true), 'unknown');
  });

  const codes: Record<FailureKind, string> = {
    'not-found': 'NOT_FOUND',
    'no-such-bucket': 'STORAGE_UNAVAILABLE',
    'precondition-failed': 'CAS_CONFLICT',
    'conditional-conflict': 'CAS_CONFLICT',
    'invalid-range': 'STORAGE_UNAVAILABLE',
    auth: 'STORAGE_UNAVAILABLE',
    'clock-skew': 'STORAGE_UNAVAILABLE',
    redirect: 'STORAGE_UNAVAILABLE',
    throttled: 'STORAGE_UNAVAILABLE',
    server: 'STORAGE_UNAVAILABLE',
    'not-implemented': 'STORAGE_UNAVAILABLE',
    'too-large': 'LIMIT_EXCEEDED',
    client: 'STORAGE_UNAVAILABLE',
    timeout: 'TIMEOUT',
    network: 'STORAGE_UNAVAILABLE',
    aborted: 'CLOSED',
    unknown: 'STORAGE_UNAVAILABLE',
  };
  it('errorCodeFor, every kind', () => {
    for (const k of FAILURE_KINDS) assert.equal(errorCodeFor(k), codes[k], k);
  });
});

describe('settling an unknown outcome by read-back', () => {
  const nonce = 'ours';
  const rb = (etag: string, n?: string): ReadBack => ({ etag, nonce: n });
  const cases: Array<[ConditionalMode, ReadBack | null, string | undefined, string]> = [
    // create-only
    ['absent', null, undefined, 'retry'],
    ['absent', rb('x', 'ours'), undefined, 'won'],
    ['absent', rb('x', 'theirs'), undefined, 'lost'],
    ['absent', rb('x', undefined), undefined, 'lost'],
    // compare-and-swap against etag e0
    ['match', null, 'e0', 'lost'],
    ['match', rb('e1', 'ours'), 'e0', 'won'],
    ['match', rb('e0', 'ours'), 'e0', 'won'],
    ['match', rb('e0', 'theirs'), 'e0', 'retry'],
    ['match', rb('e0', undefined), 'e0', 'retry'],
    ['match', rb('e0', undefined), '"e0"', 'retry'],
    ['match', rb('e1', 'theirs'), 'e0', 'lost'],
    ['match', rb('e1', undefined), 'e0', 'lost'],
  ];
  for (const [mode, seen, expectedEtag, want] of cases) {
    it(`${mode}, seen ${JSON.stringify(seen)}, expected ${String(expectedEtag)} -> ${want}`, () => {
      assert.equal(settleDecision({ mode, seen, nonce, expectedEtag }), want);
    });
  }

  it('lookAfter412, every combination', () => {
    for (const mode of MODES) {
      for (const uncertain of [false, true]) {
        for (const formConfirmed of [false, true]) {
          for (const triedBothForms of [false, true]) {
            const want = uncertain || (mode === 'match' && !formConfirmed && !triedBothForms);
            assert.equal(lookAfter412({ mode, uncertain, formConfirmed, triedBothForms }), want, JSON.stringify({ mode, uncertain, formConfirmed, triedBothForms }));
          }
        }
      }
    }
  });

  it('after412, every combination', () => {
    const seens: Array<ReadBack | null> = [null, rb('e0', 'ours'), rb('e0', 'theirs'), rb('e1', 'theirs'), rb('e1', 'ours')];
    for (const mode of MODES) {
      for (const seen of seens) {
        for (const formConfirmed of [false, true]) {
          for (const triedBothForms of [false, true]) {
            const got = after412({ mode, seen, nonce, expectedEtag: mode === 'match' ? 'e0' : undefined, formConfirmed, triedBothForms });
            let want: string;
            if (seen?.nonce === 'ours') want = 'won';
            else if (mode === 'match' && !formConfirmed && !triedBothForms && seen?.etag === 'e0') want = 'switch-form';
            else want = 'lost';
            assert.equal(got, want, JSON.stringify({ mode, seen, formConfirmed, triedBothForms }));
          }
        }
      }
    }
  });
});

/**
 * A model of N writers racing conditional PUTs on one key through the
 * decisions above, with a server that applies a request atomically when its
 * precondition holds. Each attempt either gets its answer, applies but loses
 * the response, stays in flight (timeout; delivered at some later point or
 * at the end), or gets a 409 without applying.
 */
function simulate(mode: ConditionalMode, writers: number, choices: number[], maxAttempts: number) {
  type Obj = { etag: string; nonce: string } | null;
  let state: Obj = mode === 'match' ? { etag: 'e0', nonce: 'initial' } : null;
  const expected = mode === 'match' ? 'e0' : undefined;
  let ci = 0;
  const pick = (k: number): number => (choices.length === 0 ? 0 : choices[ci++ % choices.length]! % k);
  const applied: number[] = [];
  const inflight: number[] = [];
  const deliver = (w: number): boolean => {
    const holds = mode === 'absent' ? state === null : state !== null && state.etag === expected;
    if (holds) {
      state = { etag: `e-${w}`, nonce: `n${w}` };
      applied.push(w);
    }
    return holds;
  };
  const result: Array<'won' | 'lost' | 'unknown' | undefined> = Array.from({ length: writers }, () => undefined);
  const attempts = Array.from({ length: writers }, () => 0);
  const uncertain = Array.from({ length: writers }, () => false);
  const readBack = (): ReadBack | null => (state === null ? null : { etag: state.etag, nonce: state.nonce });
  for (let guard = 0; result.some((r) => r === undefined); guard++) {
    assert.ok(guard < 10_000, 'simulation terminates');
    if (inflight.length > 0 && pick(3) === 0) deliver(inflight.splice(pick(inflight.length), 1)[0]!);
    const open = result.flatMap((r, i) => (r === undefined ? [i] : []));
    const w = open[pick(open.length)]!;
    const nonce = `n${w}`;
    attempts[w]!++;
    let kind: FailureKind;
    switch (pick(4)) {
      case 0:
        if (deliver(w)) {
          result[w] = 'won';
          continue;
        }
        kind = 'precondition-failed';
        break;
      case 1:
        deliver(w);
        kind = 'network';
        break;
      case 2:
        inflight.push(w);
        kind = 'timeout';
        break;
      default:
        kind = 'conditional-conflict';
    }
    const step = conditionalStep(kind, mode);
    const budgetLeft = attempts[w]! < maxAttempts;
    if (step === 'lost') {
      if (lookAfter412({ mode, uncertain: uncertain[w]!, formConfirmed: true, triedBothForms: true })) {
        const d = after412({ mode, seen: readBack(), nonce, expectedEtag: expected, formConfirmed: true, triedBothForms: true });
        assert.notEqual(d, 'switch-form');
        result[w] = d === 'won' ? 'won' : 'lost';
      } else {
        result[w] = 'lost';
      }
    } else if (step === 'resend') {
      if (!budgetLeft) result[w] = conflictBudgetSpent(uncertain[w]!);
    } else {
      assert.equal(step, 'settle');
      uncertain[w] = true;
      const d = settleDecision({ mode, seen: readBack(), nonce, expectedEtag: expected });
      if (d === 'won' || d === 'lost') result[w] = d;
      else if (!budgetLeft) result[w] = 'unknown';
    }
  }
  // Requests still in flight arrive after everyone has decided.
  while (inflight.length > 0) deliver(inflight.shift()!);
  return { applied, result };
}

describe('model: racing conditional writers with lost responses and late requests', () => {
  for (const mode of MODES) {
    it(`${mode}: at most one write applies, "won" only for it, "lost" never for it, all decided => its writer won`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 6 }),
          fc.array(fc.nat({ max: 1_000 }), { minLength: 1, maxLength: 200 }),
          fc.integer({ min: 1, max: 6 }),
          (writers, choices, maxAttempts) => {
            const { applied, result } = simulate(mode, writers, choices, maxAttempts);
            assert.ok(applied.length <= 1, `applied ${JSON.stringify(applied)}`);
            for (let w = 0; w < writers; w++) {
              if (result[w] === 'won') assert.deepEqual(applied, [w], `writer ${w} won but applied=${JSON.stringify(applied)}`);
              if (result[w] === 'lost') assert.ok(!applied.includes(w), `writer ${w} lost but its write applied`);
            }
            // Once every writer has decided, the applied write (if any) has
            // exactly one writer who knows it won. (No write applies only when
            // every writer gave up on 409s.)
            if (result.every((r) => r !== 'unknown')) {
              assert.equal(result.filter((r) => r === 'won').length, applied.length, JSON.stringify(result));
            }
          },
        ),
        { numRuns: 3_000 },
      );
    });
  }
});

describe('backoff', () => {
  const arbPolicy: fc.Arbitrary<RetryPolicy> = fc.record({
    maxAttempts: fc.integer({ min: 1, max: 12 }),
    baseDelayMs: fc.integer({ min: 0, max: 1_000 }),
    maxDelayMs: fc.integer({ min: 0, max: 10_000 }),
    maxElapsedMs: fc.integer({ min: 1, max: 120_000 }),
  });

  it('full jitter: within [0, min(max, base * 2^(n-1))], growing caps', () => {
    fc.assert(
      fc.property(arbPolicy, fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (p, n, r) => {
        const d = backoffDelay(p, n, r);
        const cap = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (n - 1));
        return Number.isInteger(d) && d >= 0 && d <= cap && backoffDelay(p, n, 0) === 0;
      }),
    );
    const p = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1_000 };
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(p, n, 0.999999)), [99, 199, 399, 799, 999, 999]);
    assert.equal(backoffDelay(p, 3, Number.NaN), 0);
    assert.equal(backoffDelay(p, 3, 7), 400);
  });

  it('nextDelay stops at maxAttempts and never lets a retry start past maxElapsedMs', () => {
    fc.assert(
      fc.property(arbPolicy, fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 20 }), fc.nat({ max: 5_000 }), (p, rs, requestMs) => {
        // Play an operation whose every request fails after requestMs.
        let elapsed = 0;
        let attempts = 0;
        for (let i = 0; ; i++) {
          attempts++;
          elapsed += requestMs;
          const d = nextDelay(p, attempts, elapsed, rs[i % rs.length]!);
          if (d === null) break;
          assert.ok(elapsed + d < p.maxElapsedMs, 'a retry starts inside the time budget');
          elapsed += d;
        }
        return attempts <= p.maxAttempts && attempts >= 1;
      }),
    );
    const p: RetryPolicy = { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 100, maxElapsedMs: 1_000 };
    assert.equal(nextDelay(p, 1, 0, 0.5), 5);
    assert.equal(nextDelay(p, 2, 0, 0.5), 10);
    assert.equal(nextDelay(p, 3, 0, 0.5), null);
    assert.equal(nextDelay(p, 1, 995, 0.5), null);
    assert.equal(nextDelay({ ...p, maxAttempts: 1 }, 1, 0, 0), null);
  });

  it('resolvePolicy fills defaults and rejects nonsense', () => {
    assert.deepEqual(resolvePolicy(undefined), DEFAULT_RETRY_POLICY);
    assert.deepEqual(resolvePolicy({ maxAttempts: 2 }), { ...DEFAULT_RETRY_POLICY, maxAttempts: 2 });
    for (const bad of [{ maxAttempts: 0 }, { maxAttempts: 1.5 }, { baseDelayMs: -1 }, { maxDelayMs: Number.NaN }, { maxElapsedMs: 0 }, { maxElapsedMs: Infinity }]) {
      assert.throws(() => resolvePolicy(bad), RangeError, JSON.stringify(bad));
    }
  });
});

describe('etags', () => {
  it('normalizeEtag strips one pair of surrounding quotes and a weak marker, nothing else', () => {
    const cases: Array<[string, string]> = [
      ['"abc"', 'abc'],
      ['abc', 'abc'],
      ['W/"abc"', 'abc'],
      [' "abc" ', 'abc'],
      ['"abc-3"', 'abc-3'],
      ['"abc"x', '"abc"x'],
      ['"', '"'],
      ['""', ''],
      ['', ''],
    ];
    for (const [raw, want] of cases) assert.equal(normalizeEtag(raw), want, raw);
    fc.assert(fc.property(fc.stringMatching(/^[0-9a-f-]{1,40}$/), (e) => normalizeEtag(`"${e}"`) === e && normalizeEtag(normalizeEtag(`"${e}"`)) === e));
  });

  it('isPossibleEtag: visible ASCII without quotes', () => {
    for (const ok of ['abc', '5289df737df57326fcdd22597afb1fac', 'abc-12', 'm1a', 'bogus-etag']) assert.ok(isPossibleEtag(ok), ok);
    for (const bad of ['', '"abc"x', 'a b', 'a\nb', 'é', 'a"b']) assert.ok(!isPossibleEtag(bad), bad);
  });

  it('ifMatchHeader writes the bare or quoted form from either input', () => {
    assert.equal(ifMatchHeader('abc', false), 'abc');
    assert.equal(ifMatchHeader('"abc"', false), 'abc');
    assert.equal(ifMatchHeader('abc', true), '"abc"');
    assert.equal(ifMatchHeader('"abc"', true), '"abc"');
  });
});

describe('ranges', () => {
  it('rangeHeader is inclusive', () => {
    assert.equal(rangeHeader(0, 1), 'bytes=0-0');
    assert.equal(rangeHeader(10, 5), 'bytes=10-14');
  });

  it('parseContentRange', () => {
    assert.deepEqual(parseContentRange('bytes 0-9/100'), { start: 0, end: 9, total: 100 });
    assert.deepEqual(parseContentRange('bytes 5-5/*'), { start: 5, end: 5, total: null });
    for (const bad of [undefined, '', 'bytes 9-0/100', 'bytes 0-100/100', 'items 0-1/2', 'bytes */100', 'bytes 0-1']) {
      assert.equal(parseContentRange(bad), null, String(bad));
    }
  });

  it('rangeSlice matches what the memory backend returns, for 206 and for a server that ignores Range (200)', () => {
    fc.assert(
      fc.property(fc.nat({ max: 300 }), fc.nat({ max: 400 }), fc.integer({ min: 1, max: 400 }), (size, offset, length) => {
        const data = Uint8Array.from({ length: size }, (_, i) => i & 0xff);
        const want = data.slice(offset, offset + length);
        // 200: the whole object came back
        const full = rangeSlice({ status: 200, contentRange: undefined, bodyLength: size, offset, length });
        assert.ok(!('error' in full));
        assert.deepEqual(data.slice(full.from, full.to), want);
        // 206: what a correct server sends (offset < size; otherwise it says 416)
        if (offset < size) {
          const end = Math.min(size, offset + length) - 1;
          const body = data.slice(offset, end + 1);
          const part = rangeSlice({ status: 206, contentRange: `bytes ${offset}-${end}/${size}`, bodyLength: body.length, offset, length });
          assert.ok(!('error' in part));
          assert.deepEqual(body.slice(part.from, part.to), want);
        }
      }),
    );
  });

  it('rangeSlice refuses a different range, a body that disagrees with Content-Range, and odd statuses', () => {
    assert.ok('error' in rangeSlice({ status: 206, contentRange: 'bytes 1-4/10', bodyLength: 4, offset: 0, length: 4 }));
    assert.ok('error' in rangeSlice({ status: 206, contentRange: 'bytes 0-4/10', bodyLength: 3, offset: 0, length: 5 }));
    assert.ok('error' in rangeSlice({ status: 206, contentRange: undefined, bodyLength: 3, offset: 0, length: 3 }));
    assert.ok('error' in rangeSlice({ status: 204, contentRange: undefined, bodyLength: 0, offset: 0, length: 3 }));
    // A server that sends more than asked is cut to the asked length.
    assert.deepEqual(rangeSlice({ status: 206, contentRange: 'bytes 2-9/10', bodyLength: 8, offset: 2, length: 3 }), { from: 0, to: 3 });
  });
});

describe('listPageProblem', () => {
  it('accepts a sorted page under the prefix after startAfter', () => {
    assert.equal(listPageProblem([], 'p/', undefined), null);
    assert.equal(listPageProblem(['p/a', 'p/b', 'p/b/c', 'p/\u{1F600}'], 'p/', undefined), null);
    assert.equal(listPageProblem(['p/b'], 'p/', 'p/a'), null);
    assert.equal(listPageProblem(['p/a'], 'p/', 'a'), null); // startAfter before the prefix
    // UTF-8 order: U+FF61 (3 bytes) sorts before U+1F600 (4 bytes), unlike UTF-16.
    assert.equal(listPageProblem(['p/\uFF61', 'p/\u{1F600}'], 'p/', undefined), null);
  });

  it('refuses keys outside the prefix, out of order, repeated, or not after startAfter', () => {
    assert.match(listPageProblem(['q/a'], 'p/', undefined) ?? '', /not under the prefix/);
    assert.match(listPageProblem(['p/b', 'p/a'], 'p/', undefined) ?? '', /does not sort after/);
    assert.match(listPageProblem(['p/a', 'p/a'], 'p/', undefined) ?? '', /does not sort after/);
    assert.match(listPageProblem(['p/a'], 'p/', 'p/a') ?? '', /does not sort after/);
    assert.match(listPageProblem(['p/\u{1F600}', 'p/\uFF61'], 'p/', undefined) ?? '', /UTF-8 byte order/);
  });
});
