// S3Store against a real S3 server (the project's Ceph RGW): every operation
// and error code, listing order and pagination, empty and 16 MiB objects,
// invalid input, CAS races in one process and across 8 processes, and the
// unknown-outcome paths of conditional writes, driven through a fault proxy
// (test/store/fixtures/s3-proxy.ts) that drops, delays or answers requests
// at exact points in front of the real server.
//
// Server: FLOE_S3_ENDPOINT (default http://127.0.0.1:7480), FLOE_S3_BUCKET
// (default floe-test), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default
// floe / floesecret). scripts/test.sh starts the server and exports them. If
// no server answers, the suite FAILS and says how to start one; FLOE_SKIP_S3=1
// skips it with a warning. Every run writes under a fresh random prefix and
// deletes it afterwards. FLOE_TORTURE_ROUNDS sets the number of race rounds.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { ErrorCode } from '../../src/errors.js';
import { isFloeError } from '../../src/errors.js';
import { listKeys } from '../../src/store/list.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { S3StoreOptions } from '../../src/store/s3.js';
import { NONCE_METADATA, S3Store } from '../../src/store/s3.js';
import type { Answer, ProxiedRequest, ProxyAction } from './fixtures/s3-proxy.js';
import { FaultProxy } from './fixtures/s3-proxy.js';

// The SDK is pinned on purpose (Node 20); its notice about that is known.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const ENDPOINT_ENV = process.env.FLOE_S3_ENDPOINT;
const endpoint = ENDPOINT_ENV ?? 'http://127.0.0.1:7480';
const bucket = process.env.FLOE_S3_BUCKET || 'floe-test';
const credentials = {
  accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'floe',
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'floesecret',
};
const region = process.env.AWS_REGION ?? 'us-east-1';
const ROUNDS = Math.max(1, Number(process.env.FLOE_TORTURE_ROUNDS ?? 3) || 3);
const RUN = `s3-test/${Date.now().toString(36)}-${randomBytes(5).toString('hex')}/`;
const HOW_TO_START =
  'Start the local S3 server with `bash scripts/s3-local.sh start` (or run everything with `npm test`, which starts ' +
  'it and exports FLOE_S3_ENDPOINT / FLOE_S3_BUCKET), or point FLOE_S3_ENDPOINT at another S3-compatible server. ' +
  'To skip the S3 suite deliberately, set FLOE_SKIP_S3=1.';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const MiB = 1024 * 1024;
const noSleep = async (): Promise<void> => {};

const utf8Order = (keys: string[]): string[] =>
  [...keys].sort((x, y) => Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8')));

function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.ok(Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.length)), `${what}: bytes differ`);
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, ...mentions: Array<string | RegExp>): Promise<Error> {
  let caught: Error | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isFloeError(e), `expected a FloeError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const m of mentions) {
      if (typeof m === 'string') assert.ok(e.message.includes(m), `message mentions ${JSON.stringify(m)}: ${e.message}`);
      else assert.match(e.message, m);
    }
    caught = e;
    return true;
  });
  return caught!;
}

let nextSub = 0;
const subPrefix = (): string => `${RUN}${String(nextSub++).padStart(3, '0')}/`;

function openStore(extra: Partial<S3StoreOptions> = {}): Promise<S3Store> {
  return S3Store.open({ bucket, prefix: subPrefix(), endpoint, region, credentials, ...extra });
}

/** Open a store whose requests pass through a fault proxy deciding with `decide`. */
async function viaProxy(decide: (r: ProxiedRequest) => ProxyAction, extra: Partial<S3StoreOptions> = {}): Promise<{ store: S3Store; proxy: FaultProxy }> {
  const prefix = extra.prefix ?? subPrefix();
  const proxy = await FaultProxy.start(endpoint, decide, prefix);
  try {
    const store = await openStore({ sleep: noSleep, ...extra, prefix, endpoint: proxy.url });
    return { store, proxy };
  } catch (err) {
    await proxy.close();
    throw err;
  }
}

const pass: ProxyAction = { kind: 'pass' };
const isCondPut = (r: ProxiedRequest): boolean => r.method === 'PUT' && r.conditional !== null;

if (process.env.FLOE_SKIP_S3 === '1') {
  console.warn('WARNING: FLOE_SKIP_S3=1 — the S3Store suite is SKIPPED; it has not run against a real S3 server.');
  void describe('S3Store', () => {
    void it('runs against a real S3 server', { skip: 'FLOE_SKIP_S3=1' }, () => {});
  });
} else if (ENDPOINT_ENV === '') {
  void describe('S3Store', () => {
    void it('needs an S3 server', () => {
      assert.fail(`FLOE_S3_ENDPOINT is set but empty, so no S3 server is configured. ${HOW_TO_START}`);
    });
  });
} else {
  void describe(`S3Store against ${endpoint} bucket ${bucket}`, () => {
    let raw: S3Client;

    before(async () => {
      try {
        const probe = await S3Store.open({ bucket, prefix: RUN, endpoint, region, credentials, retry: { maxAttempts: 2 } });
        await probe.close();
      } catch (err) {
        throw new Error(`no usable S3 server at ${endpoint} (bucket ${bucket}): ${String(err)}. ${HOW_TO_START}`, { cause: err });
      }
      raw = new S3Client({
        endpoint,
        region,
        credentials,
        forcePathStyle: true,
        maxAttempts: 1,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
    });

    after(async () => {
      // Delete everything this run wrote, then check that nothing is left.
      // (Not DeleteObjects: its XML body cannot carry the U+FFFF key below,
      // RGW answers 400.)
      const sweeper = await S3Store.open({ bucket, prefix: RUN, endpoint, region, credentials });
      try {
        const keys = await listKeys(sweeper, '');
        for (let i = 0; i < keys.length; i += 64) await Promise.all(keys.slice(i, i + 64).map((k) => sweeper.delete(k)));
        assert.deepEqual(await sweeper.list(''), { keys: [], more: false }, 'the run prefix is empty after cleanup');
      } finally {
        await sweeper.close();
        raw?.destroy();
      }
    });

    describe('operations', () => {
      it('put, get, head: bytes round-trip, etags are bare and agree, bodies are plain Uint8Arrays', async () => {
        const s = await openStore();
        try {
          const data = randomBytes(1024);
          const input = Buffer.from(data); // a Buffer the caller changes afterwards
          const { etag } = await s.put('obj', input);
          input.fill(0);
          assert.ok(etag.length > 0 && !etag.includes('"'), `bare etag: ${etag}`);
          const got = await s.get('obj');
          sameBytes(got.bytes, data, 'get');
          assert.equal(Object.getPrototypeOf(got.bytes), Uint8Array.prototype, 'a plain Uint8Array, not a Buffer view');
          assert.equal(got.etag, etag);
          assert.deepEqual(await s.head('obj'), { size: 1024, etag });
          // S3 etags are content hashes: identical bytes keep the etag.
          assert.equal((await s.put('obj', data)).etag, etag);
          // ...and the etag is the object's MD5 for a single-part PUT (what
          // the store falls back to when a server omits the ETag).
          assert.equal(etag, createHash('md5').update(data).digest('hex'));
        } finally {
          await s.close();
        }
      });

      it('missing keys: get and getRange are NOT_FOUND naming key and store, head is null, delete succeeds twice', async () => {
        const s = await openStore();
        try {
          const e = await rejectsWith(s.get('no/such'), 'NOT_FOUND', 'no/such', s.location);
          assert.equal((e.cause as { name?: string } | undefined)?.name, 'NoSuchKey', 'the SDK error rides along as cause');
          await rejectsWith(s.getRange('no/such', 0, 10), 'NOT_FOUND', 'no/such');
          await rejectsWith(s.getRange('no/such', 0, 0), 'NOT_FOUND', 'no/such');
          assert.equal(await s.head('no/such'), null);
          await s.delete('no/such');
          await s.put('d', b('x'));
          await s.delete('d');
          await s.delete('d');
          assert.equal(await s.head('d'), null);
          await rejectsWith(s.get('d'), 'NOT_FOUND', 'd');
        } finally {
          await s.close();
        }
      });

      it('getRange returns exactly what the memory backend returns: empty objects, zero lengths, past the end', async () => {
        const s = await openStore();
        const m = new MemoryStore();
        try {
          for (const size of [0, 1, 1000]) {
            const data = randomBytes(size);
            const key = `r${size}`;
            await s.put(key, data);
            await m.put(key, data);
            for (const o of [0, 1, 2, 500, 999, 1000, 1001, 123456]) {
              for (const l of [0, 1, 2, 10, 500, 1000, 5000]) {
                sameBytes(await s.getRange(key, o, l), await m.getRange(key, o, l), `size ${size} range ${o},${l}`);
              }
            }
          }
          for (const [o, l] of [
            [-1, 1],
            [0, -1],
            [0.5, 1],
            [Number.NaN, 1],
            [0, Number.POSITIVE_INFINITY],
          ] as const) {
            await rejectsWith(s.getRange('r0', o, l), 'INVALID_ARGUMENT');
          }
        } finally {
          await s.close();
        }
      });

      it('a 16 MiB object: put, get, head, ranges inside and across the end', async () => {
        const s = await openStore();
        try {
          const data = randomBytes(16 * MiB);
          const { etag } = await s.put('big', data);
          assert.deepEqual(await s.head('big'), { size: 16 * MiB, etag });
          const got = await s.get('big');
          sameBytes(got.bytes, data, '16 MiB get');
          sameBytes(await s.getRange('big', 7 * MiB + 3, MiB), data.subarray(7 * MiB + 3, 8 * MiB + 3), 'middle MiB');
          sameBytes(await s.getRange('big', 16 * MiB - 10, 100), data.subarray(16 * MiB - 10), 'across the end');
          sameBytes(await s.getRange('big', 16 * MiB, 1), new Uint8Array(0), 'at the end');
          // A conditional replace of a big object works too.
          const next = randomBytes(16 * MiB);
          const e2 = await s.putIfMatch('big', next, etag);
          sameBytes((await s.get('big')).bytes, next, 'after putIfMatch');
          assert.equal((await s.head('big'))?.etag, e2.etag);
        } finally {
          await s.close();
        }
      });

      it('putIfAbsent and putIfMatch: create once, swap on the current etag only, quoted or bare', async () => {
        const s = await openStore();
        try {
          const { etag: e1 } = await s.putIfAbsent('c', b('v1'));
          await rejectsWith(s.putIfAbsent('c', b('other')), 'ALREADY_EXISTS', 'c', s.location);
          await rejectsWith(s.putIfAbsent('c', b('v1')), 'ALREADY_EXISTS', 'c');
          assert.deepEqual(await s.get('c'), { bytes: b('v1'), etag: e1 });
          const { etag: e2 } = await s.putIfMatch('c', b('v2'), e1);
          await rejectsWith(s.putIfMatch('c', b('v3'), e1), 'CAS_CONFLICT', 'c', s.location);
          for (const bogus of ['bogus', `"${e2}"x`, '', 'a b', '\u00e9']) {
            await rejectsWith(s.putIfMatch('c', b('v3'), bogus), 'CAS_CONFLICT', 'c');
          }
          assert.deepEqual(await s.get('c'), { bytes: b('v2'), etag: e2 });
          // The quoted form (as S3 sends it) is accepted as well.
          const { etag: e3 } = await s.putIfMatch('c', b('v3'), `"${e2}"`);
          assert.deepEqual(await s.get('c'), { bytes: b('v3'), etag: e3 });
          // Gone or never there: CAS_CONFLICT, and nothing is created.
          await rejectsWith(s.putIfMatch('never', b('x'), e3), 'CAS_CONFLICT', 'never');
          assert.equal(await s.head('never'), null);
          await s.delete('c');
          await rejectsWith(s.putIfMatch('c', b('back'), e3), 'CAS_CONFLICT', 'c');
          assert.equal(await s.head('c'), null);
          // After a delete the key can be created again; an empty object exists.
          await s.putIfAbsent('c', new Uint8Array(0));
          await rejectsWith(s.putIfAbsent('c', b('x')), 'ALREADY_EXISTS', 'c');
          // The nonce rides in the object's metadata.
          const h = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `${s.prefix}c` }));
          assert.match(h.Metadata?.[NONCE_METADATA] ?? '', /^[0-9a-f]{32}$/);
        } finally {
          await s.close();
        }
      });

      it('invalid keys, bodies, ranges and list arguments fail with INVALID_ARGUMENT before any request', async () => {
        const { store: s, proxy } = await viaProxy(() => pass);
        try {
          await s.put('ok', b('ok'));
          const { etag } = (await s.head('ok'))!;
          const before = proxy.log.length;
          const bad = ['', '/a', 'a/', 'a//b', '.', '..', 'a/../b', 'a\\b', 'a\u0000b', 'a\nb', '.floe', 'x/.floe-tmp', 'a\uD800', 'k'.repeat(1025)];
          // Valid alone, too long once the store's prefix is added.
          bad.push('k'.repeat(1024 - 5));
          for (const k of bad) {
            await rejectsWith(s.get(k), 'INVALID_ARGUMENT');
            await rejectsWith(s.getRange(k, 0, 1), 'INVALID_ARGUMENT');
            await rejectsWith(s.head(k), 'INVALID_ARGUMENT');
            await rejectsWith(s.put(k, b('x')), 'INVALID_ARGUMENT');
            await rejectsWith(s.putIfAbsent(k, b('x')), 'INVALID_ARGUMENT');
            await rejectsWith(s.putIfMatch(k, b('x'), etag), 'INVALID_ARGUMENT');
            await rejectsWith(s.delete(k), 'INVALID_ARGUMENT');
          }
          const loose = s as unknown as { put(k: string, v: unknown): Promise<unknown>; putIfMatch(k: string, v: unknown, e: unknown): Promise<unknown> };
          for (const body of ['str', null, undefined, [1, 2], new ArrayBuffer(2)]) {
            await rejectsWith(loose.put('ok', body), 'INVALID_ARGUMENT');
            await rejectsWith(loose.putIfMatch('ok', body, etag), 'INVALID_ARGUMENT');
          }
          await rejectsWith(loose.putIfMatch('ok', b('x'), 42), 'INVALID_ARGUMENT');
          await rejectsWith(s.getRange('ok', -1, 1), 'INVALID_ARGUMENT');
          for (const limit of [0, -1, 1.5, Number.NaN]) await rejectsWith(s.list('', { limit }), 'INVALID_ARGUMENT');
          for (const prefix of ['/', '/x', 'a//', '../', 'a\u0000', 'a\\']) await rejectsWith(s.list(prefix), 'INVALID_ARGUMENT');
          await rejectsWith(s.list('', { startAfter: 'a\uDC00' }), 'INVALID_ARGUMENT');
          assert.equal(proxy.log.length, before, 'no request reached the server');
          assert.deepEqual(await s.get('ok'), { bytes: b('ok'), etag });
        } finally {
          await s.close();
          await proxy.close();
        }
      });

      it('keys live under the prefix; list strips it; stores with other prefixes see nothing', async () => {
        const s = await openStore();
        const other = await openStore();
        try {
          await s.put('k/1', b('one'));
          const h = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `${s.prefix}k/1` }));
          assert.equal(h.ContentLength, 3);
          assert.deepEqual(await s.list(''), { keys: ['k/1'], more: false });
          assert.deepEqual(await other.list(''), { keys: [], more: false });
          assert.equal(await other.head('k/1'), null);
          assert.ok(s.location.startsWith(`s3://${bucket}/${s.prefix}`), s.location);
        } finally {
          await s.close();
          await other.close();
        }
      });

      it('close: later calls fail with CLOSED, close is idempotent', async () => {
        const s = await openStore();
        await s.put('x', b('x'));
        await s.close();
        await s.close();
        await rejectsWith(s.get('x'), 'CLOSED');
        await rejectsWith(s.put('x', b('y')), 'CLOSED');
        await rejectsWith(s.putIfMatch('x', b('y'), 'e'), 'CLOSED');
        await rejectsWith(s.list(''), 'CLOSED');
      });
    });

    describe('listing', () => {
      // Prefixes of one another, code points of every UTF-8 length (UTF-16
      // order differs from byte order above U+FFFF), and characters that
      // URL and XML encoding tend to mangle.
      const KEYS = [
        'a',
        'a-',
        'a/b',
        'a/b/c',
        'a/b/c/d',
        'a/bc',
        'a0',
        'ab',
        'A',
        'Z',
        'a\u00e9',
        'a\u00ff',
        'a\u0100',
        'a\uD7FF',
        'a\uE000',
        'a\uFF61',
        'a\uFFFD',
        'a\uFFFF',
        'a\u{10000}',
        'a\u{1F600}',
        'a\u{1F600}b',
        'a\u{1F601}',
        'a\u{10FFFF}',
        '\u65e5\u672c/\u30ad\u30fc',
        ' lead',
        'trail ',
        'sp ace',
        'plus+sign',
        'pct%41',
        'amp&amp;',
        'lt<gt>',
        'q?x#y',
        'quote"apos\'',
        '~',
      ];

      it('order is UTF-8 byte order as the server lists it; pages of every size; startAfter at every key', async () => {
        const s = await openStore();
        try {
          await Promise.all(KEYS.map((k) => s.put(k, b(k))));
          const expected = utf8Order(KEYS);
          // The server's own order, without floe's code in between.
          const r = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: s.prefix }));
          assert.deepEqual((r.Contents ?? []).map((o) => o.Key?.slice(s.prefix.length)), expected, 'the server lists in UTF-8 byte order');
          assert.deepEqual(await s.list(''), { keys: expected, more: false });
          for (const limit of [1, 2, 3, 5, 7, expected.length - 1, expected.length, expected.length + 1]) {
            const seen: string[] = [];
            let startAfter: string | undefined;
            for (let pages = 0; ; pages++) {
              assert.ok(pages <= expected.length, 'pagination terminates');
              const page = await s.list('', { limit, startAfter });
              assert.ok(page.keys.length <= limit, `never more than asked (${page.keys.length} > ${limit})`);
              seen.push(...page.keys);
              // `more` is exact: true iff keys remain after this page.
              assert.equal(page.more, seen.length < expected.length, `more at limit ${limit} after ${seen.length}`);
              if (!page.more) break;
              assert.equal(page.keys.length, limit, 'a page with more=true is full');
              startAfter = page.keys[page.keys.length - 1];
            }
            assert.deepEqual(seen, expected, `limit ${limit}`);
          }
          for (let i = 0; i < expected.length; i++) {
            const page = await s.list('', { startAfter: expected[i], limit: 3 });
            assert.deepEqual(page.keys, expected.slice(i + 1, i + 4), `startAfter ${JSON.stringify(expected[i])}`);
            assert.equal(page.more, i + 4 < expected.length);
          }
          for (const k of KEYS) sameBytes((await s.get(k)).bytes, b(k), k);
        } finally {
          await s.close();
        }
      });

      it('prefix filtering, also off segment boundaries; startAfter need not be a key', async () => {
        const s = await openStore();
        try {
          await Promise.all(KEYS.map((k) => s.put(k, b(k))));
          const under = (p: string): string[] => utf8Order(KEYS.filter((k) => k.startsWith(p)));
          for (const p of ['a', 'a/', 'a/b', 'a/b/', 'a\u{1F600}', 'sp ', 'q?', 'z', '\u65e5']) {
            assert.deepEqual((await s.list(p)).keys, under(p), `prefix ${JSON.stringify(p)}`);
          }
          assert.deepEqual((await s.list('a/', { startAfter: 'a/b/c/' })).keys, ['a/b/c/d', 'a/bc']);
          assert.deepEqual((await s.list('a/', { startAfter: '0' })).keys, under('a/'));
          assert.deepEqual(await s.list('a/', { startAfter: 'zzz' }), { keys: [], more: false });
        } finally {
          await s.close();
        }
      });

      it('more than 1000 keys: the default page is 1000, then the rest; more is exact at the server maximum', async () => {
        const s = await openStore();
        try {
          const keys = Array.from({ length: 1003 }, (_, i) => `n/${String(i).padStart(5, '0')}`);
          for (let i = 0; i < keys.length; i += 64) await Promise.all(keys.slice(i, i + 64).map((k) => s.put(k, new Uint8Array(0))));
          const p1 = await s.list('n/');
          assert.equal(p1.keys.length, 1000);
          assert.equal(p1.more, true);
          assert.deepEqual(p1.keys, keys.slice(0, 1000));
          assert.deepEqual(await s.list('n/', { startAfter: p1.keys[999] }), { keys: keys.slice(1000), more: false });
          assert.deepEqual(await s.list('n/', { limit: 999 }), { keys: keys.slice(0, 999), more: true });
          assert.deepEqual(await s.list('n/', { limit: 5000, startAfter: keys[2] }), { keys: keys.slice(3), more: false });
          assert.deepEqual(await listKeys(s, 'n/'), keys);
        } finally {
          await s.close();
        }
      });
    });

    describe('errors', () => {
      it('open: a missing bucket is STORAGE_UNAVAILABLE naming the bucket', async () => {
        const name = `floe-missing-${randomBytes(4).toString('hex')}`;
        await rejectsWith(S3Store.open({ bucket: name, prefix: '', endpoint, region, credentials }), 'STORAGE_UNAVAILABLE', name, 'does not exist');
      });

      it('open: wrong secret or unknown key is STORAGE_UNAVAILABLE about credentials, sent once', async () => {
        const proxy = await FaultProxy.start(endpoint, () => pass);
        try {
          for (const creds of [
            { accessKeyId: credentials.accessKeyId, secretAccessKey: 'wrong-secret' },
            { accessKeyId: 'nobody-at-all', secretAccessKey: 'wrong-secret' },
          ]) {
            const before = proxy.log.length;
            await rejectsWith(
              S3Store.open({ bucket, prefix: '', endpoint: proxy.url, region, credentials: creds }),
              'STORAGE_UNAVAILABLE',
              /credentials/,
              /HTTP 403/,
            );
            assert.equal(proxy.log.length - before, 1, 'an auth failure is not retried');
          }
        } finally {
          await proxy.close();
        }
      });

      it('open: nothing listening is STORAGE_UNAVAILABLE after a bounded number of attempts', async () => {
        const proxy = await FaultProxy.start(endpoint, () => pass);
        const deadUrl = proxy.url;
        await proxy.close(); // the port is now closed
        const sleeps: number[] = [];
        await rejectsWith(
          S3Store.open({
            bucket,
            prefix: '',
            endpoint: deadUrl,
            region,
            credentials,
            retry: { maxAttempts: 3, baseDelayMs: 10 },
            sleep: async (ms) => {
              sleeps.push(ms);
            },
          }),
          'STORAGE_UNAVAILABLE',
          /ECONNREFUSED/,
          'after 3 attempts',
        );
        assert.equal(sleeps.length, 2);
        assert.ok(sleeps.every((ms) => ms >= 0 && ms < 40), JSON.stringify(sleeps));
      });

      it('invalid options are INVALID_ARGUMENT', async () => {
        const base = { bucket, prefix: '', endpoint, region, credentials };
        const bad: Array<Partial<S3StoreOptions>> = [
          { prefix: 'no-slash' },
          { prefix: '/abs/' },
          { prefix: 'a//' },
          { prefix: '../x/' },
          { bucket: '' },
          { bucket: 'a/b' },
          { endpoint: 'ftp://x' },
          { endpoint: 'not a url' },
          { requestTimeoutMs: 0 },
          { requestTimeoutMs: Number.NaN },
          { retry: { maxAttempts: 0 } },
        ];
        for (const o of bad) await rejectsWith(S3Store.open({ ...base, ...o }), 'INVALID_ARGUMENT');
      });

      it('server answers map to codes; only transient ones are retried, within the budget', async () => {
        let inject: ((r: ProxiedRequest) => ProxyAction | undefined) | undefined;
        const sleeps: number[] = [];
        const { store: s, proxy } = await viaProxy((r) => inject?.(r) ?? pass, {
          retry: { maxAttempts: 4, baseDelayMs: 8 },
          sleep: async (ms) => {
            sleeps.push(ms);
          },
        });
        try {
          await s.put('k', b('value'));
          const count = (method: string): number => proxy.log.filter((e) => e.method === method && (e.key === 'k' || e.key === 'k-none')).length;
          const cases: Array<{
            name: string;
            method: string;
            answer: [number, string];
            /** Inject only this many times (default: always). */
            times?: number;
            run: () => Promise<unknown>;
            code?: ErrorCode;
            mentions?: Array<string | RegExp>;
            requests: number;
          }> = [
            { name: '403 AccessDenied', method: 'GET', answer: [403, 'AccessDenied'], run: () => s.get('k'), code: 'STORAGE_UNAVAILABLE', mentions: [/credentials/, 'k'], requests: 1 },
            { name: '404 NoSuchBucket', method: 'GET', answer: [404, 'NoSuchBucket'], run: () => s.get('k'), code: 'STORAGE_UNAVAILABLE', mentions: [`"${bucket}"`], requests: 1 },
            { name: '400 InvalidArgument', method: 'GET', answer: [400, 'InvalidArgument'], run: () => s.get('k'), code: 'STORAGE_UNAVAILABLE', mentions: ['InvalidArgument'], requests: 1 },
            { name: '301 PermanentRedirect', method: 'HEAD', answer: [301, 'PermanentRedirect'], run: () => s.head('k'), code: 'STORAGE_UNAVAILABLE', mentions: [/region/], requests: 1 },
            { name: '403 RequestTimeTooSkewed', method: 'GET', answer: [403, 'RequestTimeTooSkewed'], run: () => s.get('k'), code: 'STORAGE_UNAVAILABLE', mentions: [/clock/], requests: 1 },
            { name: '400 EntityTooLarge', method: 'PUT', answer: [400, 'EntityTooLarge'], run: () => s.put('k', b('v')), code: 'LIMIT_EXCEEDED', requests: 1 },
            { name: '501 NotImplemented', method: 'PUT', answer: [501, 'NotImplemented'], run: () => s.putIfAbsent('k', b('v')), code: 'STORAGE_UNAVAILABLE', mentions: [/conditional PUT/], requests: 1 },
            { name: '503 SlowDown always', method: 'GET', answer: [503, 'SlowDown'], run: () => s.get('k'), code: 'STORAGE_UNAVAILABLE', mentions: [/throttl/, 'after 4 attempts'], requests: 4 },
            { name: '500 InternalError always', method: 'DELETE', answer: [500, 'InternalError'], run: () => s.delete('k'), code: 'STORAGE_UNAVAILABLE', mentions: ['after 4 attempts'], requests: 4 },
            { name: '503 SlowDown twice, then fine', method: 'GET', answer: [503, 'SlowDown'], times: 2, run: () => s.get('k'), requests: 3 },
            { name: '429 once, then fine', method: 'HEAD', answer: [429, 'TooManyRequests'], times: 1, run: () => s.head('k'), requests: 2 },
            { name: '500 once on PUT, then fine', method: 'PUT', answer: [500, 'InternalError'], times: 1, run: () => s.put('k', b('value')), requests: 2 },
            { name: '502 once on DELETE of a missing key', method: 'DELETE', answer: [502, 'BadGateway'], times: 1, run: () => s.delete('k-none'), requests: 2 },
          ];
          for (const c of cases) {
            let left = c.times ?? Number.POSITIVE_INFINITY;
            inject = (r) => {
              if (r.method !== c.method || (r.key !== 'k' && r.key !== 'k-none') || left <= 0) return undefined;
              left--;
              return { kind: 'respond', status: c.answer[0], code: c.answer[1] };
            };
            const n0 = count(c.method);
            sleeps.length = 0;
            if (c.code === undefined) await c.run();
            else await rejectsWith(c.run(), c.code, ...(c.mentions ?? []));
            assert.equal(count(c.method) - n0, c.requests, `${c.name}: requests`);
            assert.equal(sleeps.length, c.requests - 1, `${c.name}: one backoff per retry`);
            inject = undefined;
          }
          // The list path is retried the same way.
          let listFails = 1;
          inject = (r) => (r.key === null && r.method === 'GET' && listFails-- > 0 ? { kind: 'respond', status: 503, code: 'SlowDown' } : undefined);
          assert.deepEqual((await s.list('')).keys, ['k']);
          assert.equal(listFails, -1);
        } finally {
          await s.close();
          await proxy.close();
        }
      });

      it('a request past its deadline is TIMEOUT; a slow first answer or a reset connection is retried', async () => {
        let mode: 'slow-always' | 'slow-once' | 'reset-once' = 'slow-always';
        const { store: s, proxy } = await viaProxy(
          (r) => {
            if (r.method !== 'GET' || r.key !== 't') return pass;
            if (mode === 'slow-always') return { kind: 'delay-response', ms: 2_000 };
            if (mode === 'slow-once' && r.seen === 2) return { kind: 'delay-response', ms: 2_000 };
            if (mode === 'reset-once' && r.seen === 4) return { kind: 'drop-before' };
            return pass;
          },
          { requestTimeoutMs: 700, retry: { maxAttempts: 2 } },
        );
        try {
          await s.put('t', b('tick'));
          await rejectsWith(s.get('t'), 'TIMEOUT', /700 ms/, 'after 2 attempts', 't');
          mode = 'slow-once';
          assert.deepEqual((await s.get('t')).bytes, b('tick'));
          mode = 'reset-once';
          assert.deepEqual((await s.get('t')).bytes, b('tick'));
          assert.equal(proxy.log.filter((e) => e.method === 'GET' && e.key === 't').length, 6);
        } finally {
          await s.close();
          await proxy.close();
        }
      });
    });

    describe('conditional writes whose outcome the client did not see (fault proxy in front of the real server)', () => {
      it('putIfMatch: the write landed, the response was lost -> success, read back, one write', async () => {
        const { store: s, proxy } = await viaProxy((r) => (isCondPut(r) && r.seen === 0 ? { kind: 'drop-after' } : pass));
        try {
          const { etag: e0 } = await s.put('u', b('old'));
          const { etag } = await s.putIfMatch('u', b('new'), e0);
          assert.deepEqual(await s.get('u'), { bytes: b('new'), etag });
          assert.equal(proxy.appliedConditionalPuts('u').length, 1);
          assert.equal(proxy.log.filter((e) => isCondPutEntry(e, 'u')).length, 1, 'not sent again');
        } finally {
          await s.close();
          await proxy.close();
        }
      });

      it('putIfAbsent: the write landed, the response was lost -> success, one write', async () => {
        const { store: s, proxy } = await viaProxy((r) => (isCondPut(r) && r.seen === 0 ? { kind: 'drop-after' } : pass));
        try {
          const { etag } = await s.putIfAbsent('u', b('first'));
          assert.deepEqual(await s.get('u'), { bytes: b('first'), etag });
          assert.equal(proxy.appliedConditionalPuts('u').length, 1);
          await rejectsWith(s.putIfAbsent('u', b('again')), 'ALREADY_EXISTS', 'u');
        } finally {
          await s.close();
          await proxy.close();
        }
      });

      for (const mode of ['match', 'absent'] as const) {
        it(`${mode}: the request was dropped before the server once -> read-back shows it did not land, sent again, one write`, async () => {
          const { store: s, proxy } = await viaProxy((r) => (isCondPut(r) && r.seen === 0 ? { kind: 'drop-before' } : pass));
          try {
            const e0 = mode === 'match' ? (await s.put('u', b('old'))).etag : '';
            const { etag } = mode === 'match' ? await s.putIfMatch('u', b('new'), e0) : await s.putIfAbsent('u', b('new'));
            assert.deepEqual(await s.get('u'), { bytes: b('new'), etag });
            assert.equal(proxy.appliedConditionalPuts('u').length, 1);
            assert.deepEqual(
              proxy.log.filter((e) => isCondPutEntry(e, 'u')).map((e) => [e.action, e.upstreamStatus]),
              [
                ['drop-before', undefined],
                ['pass', 200],
              ],
            );
          } finally {
            await s.close();
            await proxy.close();
          }
        });

        it(`${mode}: every attempt dropped -> "outcome unknown" error, nothing written`, async () => {
          const { store: s, proxy } = await viaProxy((r) => (isCondPut(r) ? { kind: 'drop-before' } : pass), { retry: { maxAttempts: 3 } });
          try {
            const e0 = mode === 'match' ? (await s.put('u', b('old'))).etag : '';
            const p = mode === 'match' ? s.putIfMatch('u', b('new'), e0) : s.putIfAbsent('u', b('new'));
            await rejectsWith(p, 'STORAGE_UNAVAILABLE', 'outcome unknown', 'after 3 attempts', 'u');
            if (mode === 'match') assert.deepEqual((await s.get('u')).bytes, b('old'));
            else assert.equal(await s.head('u'), null);
            assert.equal(proxy.appliedConditionalPuts('u').length, 0);
          } finally {
            await s.close();
            await proxy.close();
          }
        });

        it(`${mode}: the request reached the server late, after the client timed out and resent -> exactly one copy applied, ours`, async () => {
          const { store: s, proxy } = await viaProxy((r) => (isCondPut(r) && r.seen === 0 ? { kind: 'delay-forward', ms: 2_500 } : pass), {
            requestTimeoutMs: 800,
          });
          try {
            const e0 = mode === 'match' ? (await s.put('u', b('old'))).etag : '';
            const { etag } = mode === 'match' ? await s.putIfMatch('u', b('new'), e0) : await s.putIfAbsent('u', b('new'));
            await proxy.idle(); // the late copy has now reached the server too
            const copies = proxy.log.filter((e) => isCondPutEntry(e, 'u'));
            assert.equal(copies.length, 2, 'the original and one resend');
            assert.deepEqual(copies.map((e) => e.upstreamStatus).sort(), [200, 412], 'one copy applied, the other was refused');
            assert.deepEqual(await s.get('u'), { bytes: b('new'), etag });
          } finally {
            await s.close();
            await proxy.close();
          }
        });

        it(`${mode}: an injected 500 (nothing written) is settled by read-back and sent again`, async () => {
          const { store: s, proxy } = await viaProxy((r) =>
            isCondPut(r) && r.seen === 0 ? { kind: 'respond', status: 500, code: 'UnknownError' } : pass,
          );
          try {
            const e0 = mode === 'match' ? (await s.put('u', b('old'))).etag : '';
            const { etag } = mode === 'match' ? await s.putIfMatch('u', b('new'), e0) : await s.putIfAbsent('u', b('new'));
            assert.deepEqual(await s.get('u'), { bytes: b('new'), etag });
            assert.equal(proxy.appliedConditionalPuts('u').length, 1);
            assert.ok(proxy.log.some((e) => e.method === 'HEAD' && e.key === 'u'), 'it read back before resending');
          } finally {
            await s.close();
            await proxy.close();
          }
        });

        it(`${mode}: 409 ConditionalRequestConflict is resent (nothing was written); if it persists the race is lost`, async () => {
          let always = false;
          const { store: s, proxy } = await viaProxy(
            (r) => (isCondPut(r) && (always || r.seen === 0) ? { kind: 'respond', status: 409, code: 'ConditionalRequestConflict' } : pass),
            { retry: { maxAttempts: 3 } },
          );
          try {
            const e0 = mode === 'match' ? (await s.put('u', b('old'))).etag : '';
            const { etag } = mode === 'match' ? await s.putIfMatch('u', b('new'), e0) : await s.putIfAbsent('u', b('new'));
            assert.deepEqual(await s.get('u'), { bytes: b('new'), etag });
            assert.ok(!proxy.log.some((e) => e.method === 'HEAD' && e.key === 'u'), 'a 409 needs no read-back');
            always = true;
            if (mode === 'match') {
              await rejectsWith(s.putIfMatch('u', b('newer'), etag), 'CAS_CONFLICT', 'ConditionalRequestConflict', 'u');
            } else {
              await s.delete('u');
              await rejectsWith(s.putIfAbsent('u', b('newer')), 'ALREADY_EXISTS', 'ConditionalRequestConflict', 'u');
              assert.equal(await s.head('u'), null);
            }
            assert.equal(proxy.appliedConditionalPuts('u').length, 1, 'only the first call wrote');
          } finally {
            await s.close();
            await proxy.close();
          }
        });
      }

      it('putIfMatch: our write landed and another writer replaced it before the read-back -> CAS_CONFLICT saying so', async () => {
        const direct = await openStore();
        let competitor: Promise<unknown> | undefined;
        const { store: s, proxy } = await viaProxy(
          (r) =>
            isCondPut(r) && r.seen === 0
              ? {
                  kind: 'drop-after',
                  then: async () => {
                    // Another process reads our fresh object and replaces it.
                    const h = await direct.head('u');
                    competitor = direct.putIfMatch('u', b('theirs'), h!.etag);
                    await competitor;
                  },
                }
              : pass,
          { prefix: direct.prefix },
        );
        try {
          const { etag: e0 } = await s.put('u', b('old'));
          await rejectsWith(s.putIfMatch('u', b('ours'), e0), 'CAS_CONFLICT', /ours applied and was already replaced/);
          assert.ok(competitor, 'the competitor ran');
          assert.deepEqual((await s.get('u')).bytes, b('theirs'));
          assert.equal(proxy.appliedConditionalPuts('u').length, 1, 'our write did apply (and was replaced)');
        } finally {
          await s.close();
          await direct.close();
          await proxy.close();
        }
      });

      it('a server that matches only quoted If-Match etags: the store switches form once and remembers it', async () => {
        const answerQuotedOnly = async (r: ProxiedRequest, body: Buffer): Promise<Answer> => {
          const v = String(r.headers['if-match']);
          if (!(v.length >= 2 && v.startsWith('"') && v.endsWith('"'))) return { status: 412, code: 'PreconditionFailed' };
          try {
            const nonce = r.headers[`x-amz-meta-${NONCE_METADATA}`];
            const out = await raw.send(
              new PutObjectCommand({
                Bucket: bucket,
                Key: `${prefix}${r.key}`,
                Body: body,
                IfMatch: v.slice(1, -1),
                Metadata: typeof nonce === 'string' ? { [NONCE_METADATA]: nonce } : undefined,
              }),
            );
            return { status: 200, headers: { etag: out.ETag } };
          } catch (err) {
            const e = err as { $metadata?: { httpStatusCode?: number }; name?: string };
            return { status: e.$metadata?.httpStatusCode ?? 500, code: e.name ?? 'InternalError' };
          }
        };
        const prefix = subPrefix();
        const { store: s, proxy } = await viaProxy(
          (r) => (r.method === 'PUT' && r.conditional === 'if-match' ? { kind: 'answer', handle: answerQuotedOnly } : pass),
          { prefix },
        );
        try {
          const { etag: e0 } = await s.put('q', b('v0'));
          const { etag: e1 } = await s.putIfMatch('q', b('v1'), e0);
          assert.deepEqual(await s.get('q'), { bytes: b('v1'), etag: e1 });
          const statuses = (): Array<number | undefined> => proxy.log.filter((e) => isCondPutEntry(e, 'q')).map((e) => e.upstreamStatus);
          assert.deepEqual(statuses(), [412, 200], 'refused bare, accepted quoted');
          const { etag: e2 } = await s.putIfMatch('q', b('v2'), e1);
          assert.deepEqual(statuses(), [412, 200, 200], 'the quoted form is remembered');
          await rejectsWith(s.putIfMatch('q', b('v3'), e1), 'CAS_CONFLICT', 'q');
          assert.deepEqual(await s.get('q'), { bytes: b('v2'), etag: e2 });
        } finally {
          await s.close();
          await proxy.close();
        }
      });
    });

    describe('CAS races on the real server', () => {
      it(`16 concurrent putIfMatch on one key, ${ROUNDS} rounds: exactly one winner, the rest CAS_CONFLICT, the object is the winner's`, async () => {
        const s = await openStore();
        try {
          for (let round = 0; round < ROUNDS; round++) {
            const key = `race/cas-${round}`;
            const { etag } = await s.put(key, b(`base-${round}`));
            const bodies = Array.from({ length: 16 }, (_, i) => b(`writer-${i}-round-${round}`));
            const results = await Promise.allSettled(bodies.map((body) => s.putIfMatch(key, body, etag)));
            checkRace(results, 'CAS_CONFLICT', round);
            const w = results.findIndex((r) => r.status === 'fulfilled');
            assert.deepEqual(await s.get(key), { bytes: bodies[w]!, etag: (results[w] as PromiseFulfilledResult<{ etag: string }>).value.etag });
          }
        } finally {
          await s.close();
        }
      });

      it(`16 concurrent putIfAbsent on one key, ${ROUNDS} rounds: exactly one winner, the rest ALREADY_EXISTS`, async () => {
        const s = await openStore();
        try {
          for (let round = 0; round < ROUNDS; round++) {
            const key = `race/create-${round}`;
            const bodies = Array.from({ length: 16 }, (_, i) => b(`writer-${i}-round-${round}`));
            const results = await Promise.allSettled(bodies.map((body) => s.putIfAbsent(key, body)));
            checkRace(results, 'ALREADY_EXISTS', round);
            const w = results.findIndex((r) => r.status === 'fulfilled');
            assert.deepEqual(await s.get(key), { bytes: bodies[w]!, etag: (results[w] as PromiseFulfilledResult<{ etag: string }>).value.etag });
          }
        } finally {
          await s.close();
        }
      });

      it(`8 processes racing putIfMatch and putIfAbsent, ${ROUNDS} rounds each: one winner per round, its bytes stored`, async () => {
        const prefix = subPrefix();
        const s = await S3Store.open({ bucket, prefix, endpoint, region, credentials });
        const racers = Array.from({ length: 8 }, (_, id) => spawnRacer(id, prefix));
        try {
          for (const r of racers) assert.deepEqual(await r.next(), { ready: true, id: String(r.id) });
          for (let round = 0; round < ROUNDS; round++) {
            for (const mode of ['match', 'absent'] as const) {
              const key = `mp/${mode}-${round}`;
              const etag = mode === 'match' ? (await s.put(key, b('base'))).etag : undefined;
              const at = Date.now() + 150;
              for (const r of racers) r.send({ round, mode, key, etag, at });
              const results = (await Promise.all(racers.map((r) => r.next()))) as RacerResult[];
              const winners = results.filter((r) => r.ok);
              assert.equal(winners.length, 1, `${mode} round ${round}: ${JSON.stringify(results)}`);
              for (const r of results) {
                if (!r.ok) assert.equal(r.code, mode === 'match' ? 'CAS_CONFLICT' : 'ALREADY_EXISTS', r.message);
              }
              const w = winners[0]!;
              assert.deepEqual(await s.get(key), { bytes: b(`racer-${w.id}-round-${round}`), etag: w.etag });
            }
          }
          for (const r of racers) r.send({ exit: true });
          for (const r of racers) assert.deepEqual(await r.exited, { code: 0, signal: null }, r.stderr());
        } finally {
          for (const r of racers) r.kill();
          await s.close();
        }
      });
    });
  });
}

function isCondPutEntry(e: { method: string; key: string | null; conditional: string | null }, key: string): boolean {
  return e.method === 'PUT' && e.key === key && e.conditional !== null;
}

function checkRace(results: Array<PromiseSettledResult<unknown>>, loserCode: ErrorCode, round: number): void {
  const winners = results.filter((r) => r.status === 'fulfilled');
  assert.equal(winners.length, 1, `round ${round}: exactly one winner`);
  for (const r of results) {
    if (r.status === 'rejected') {
      assert.ok(isFloeError(r.reason, loserCode), `round ${round}: loser got ${String(r.reason)}`);
    }
  }
}

interface RacerResult {
  readonly round: number;
  readonly id: string;
  readonly ok: boolean;
  readonly etag: string;
  readonly code?: string;
  readonly message?: string;
}

const racerPath = fileURLToPath(new URL('./fixtures/s3-racer.js', import.meta.url));

function spawnRacer(id: number, prefix: string) {
  const child = spawn(process.execPath, [racerPath, endpoint, bucket, prefix, String(id)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...credentialsEnv(), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const queue: unknown[] = [];
  const waiters: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      for (const w of waiters.splice(0)) w.reject(new Error(`racer ${id} exited (${code ?? signal}) without answering: ${stderr}`));
      resolve({ code, signal });
    });
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const v: unknown = JSON.parse(line);
    const w = waiters.shift();
    if (w) w.resolve(v);
    else queue.push(v);
  });
  return {
    id,
    exited,
    stderr: () => stderr,
    send(o: unknown): void {
      child.stdin.write(JSON.stringify(o) + '\n');
    },
    next(): Promise<unknown> {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      if (done) return Promise.reject(new Error(`racer ${id} has exited: ${stderr}`));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`racer ${id} did not answer in 30 s: ${stderr}`)), 30_000);
        waiters.push({
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
      });
    },
    kill(): void {
      if (!done) child.kill('SIGKILL');
    },
  };
}

function credentialsEnv(): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_REGION: region };
}
