/**
 * LocalStore (src/store/local.ts) on real temp directories: every operation
 * and error code, listing order and pagination, the on-disk layout's pure
 * helpers, ABA safety, leftovers of crashed writers, CAS races inside one
 * process and across 8 processes, and SIGKILL torture
 * (FLOE_TORTURE_ROUNDS rounds, default 6).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess, ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { FloeError, isFloeError } from '../../src/errors.js';
import type { ErrorCode } from '../../src/errors.js';
import { compareKeys } from '../../src/store/keys.js';
import {
  LocalStore,
  MAX_PLAIN_SEGMENT_BYTES,
  claimFileName,
  classifyEntry,
  formatEtag,
  genFileName,
  interiorName,
  keyLayout,
  mapFsError,
  objectName,
  orderItems,
  parseEtag,
  scanObjectDir,
  subtreeAfter,
} from '../../src/store/local.js';
import type { LocalStoreOptions } from '../../src/store/local.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const text = (b: Uint8Array): string => dec.decode(b);
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

const roots: string[] = [];
after(async () => {
  for (const r of roots) await fs.rm(r, { recursive: true, force: true });
});

async function tempRoot(): Promise<string> {
  const r = await fs.mkdtemp(path.join(os.tmpdir(), 'floe-local-'));
  roots.push(r);
  return r;
}

async function openStore(options: LocalStoreOptions = {}): Promise<LocalStore> {
  return LocalStore.open(await tempRoot(), options);
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<FloeError> {
  try {
    await p;
  } catch (err) {
    assert.ok(isFloeError(err), `expected FloeError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but the operation succeeded`);
}

/** Every key under `prefix`, following pages. */
async function listEverything(s: LocalStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for (let startAfter: string | undefined; ; ) {
    const page = await s.list(prefix, { startAfter });
    keys.push(...page.keys);
    if (!page.more) return keys;
    startAfter = page.keys.at(-1);
  }
}

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      out.push(path.relative(dir, full));
      if (e.isDirectory()) await walk(full);
    }
  };
  await walk(dir);
  return out.sort();
}

// ---------------------------------------------------------------------------

describe('local layout helpers (pure)', () => {
  test('etags round-trip and foreign etags are rejected', () => {
    const g = { gen: 42, nonce: '0123456789abcdef' };
    assert.equal(formatEtag(g), '42-0123456789abcdef');
    assert.deepEqual(parseEtag(formatEtag(g)), g);
    for (const bad of ['', '42', '0-0123456789abcdef', '01-0123456789abcdef', '42-0123456789ABCDEF', '42-0123', 'm1', '"abc"', '42-0123456789abcdef0']) {
      assert.equal(parseEtag(bad), null, bad);
    }
  });

  test('generation and claim names sort by generation and parse back', () => {
    const a = genFileName({ gen: 9, nonce: 'aaaaaaaaaaaaaaaa' });
    const b = genFileName({ gen: 10, nonce: 'aaaaaaaaaaaaaaaa' });
    assert.equal(a, '.floe-g000000000009-aaaaaaaaaaaaaaaa');
    assert.ok(a < b);
    assert.equal(claimFileName({ gen: 9, nonce: 'aaaaaaaaaaaaaaaa' }), '.floe-c000000000009-aaaaaaaaaaaaaaaa');
  });

  test('scanObjectDir finds the current generation, its claim, garbage order and temps', () => {
    const n = 'abcdefabcdefabcd';
    assert.deepEqual(scanObjectDir([]), { current: null, claimed: false, superseded: [], temps: [] });
    assert.equal(scanObjectDir(['.floe-t-x', 'junk']).current, null);
    const g = (gen: number): string => genFileName({ gen, nonce: n });
    const c = (gen: number): string => claimFileName({ gen, nonce: n });
    const st = scanObjectDir([c(3), g(5), '.floe-t-1', g(3), c(4), g(4), 'README', '.floe-name', c(5), '.floe-t-2']);
    assert.deepEqual(st.current, { gen: 5, nonce: n, name: g(5) });
    assert.equal(st.claimed, true);
    assert.deepEqual(st.superseded, [g(3), c(3), g(4), c(4)]);
    assert.deepEqual(st.temps, ['.floe-t-1', '.floe-t-2']);
    const unclaimed = scanObjectDir([g(7), c(6), c(7).replace(n, 'ffffffffffffffff')]);
    assert.equal(unclaimed.claimed, false, 'a claim of another incarnation does not count');
    assert.deepEqual(unclaimed.superseded, [c(6)]);
  });

  test('keyLayout maps segments to directories; long segments are hashed', () => {
    assert.deepEqual(keyLayout('a'), { dirSegs: [], dirNames: [], leafSeg: 'a', leafName: '.floe-k-a' });
    const l = keyLayout('x/y/z');
    assert.deepEqual([l.dirNames, l.leafName], [['x', 'y'], '.floe-k-z']);
    const max = 'é'.repeat(MAX_PLAIN_SEGMENT_BYTES / 2) + 'a'; // 247 bytes
    assert.equal(objectName(max), '.floe-k-' + max);
    assert.ok(Buffer.byteLength(objectName(max)) <= 255);
    const long = max + 'b';
    assert.match(objectName(long), /^\.floe-l-[A-Za-z0-9_-]{43}$/);
    assert.match(interiorName(long), /^\.floe-d-[A-Za-z0-9_-]{43}$/);
    assert.equal(objectName(long), objectName(long));
    assert.notEqual(objectName(long), objectName(long + 'c'));
    assert.equal(interiorName(max), max);
  });

  test('classifyEntry tells keys, subtrees and bookkeeping apart', () => {
    assert.deepEqual(classifyEntry('.floe-k-a', true), { kind: 'object', seg: 'a' });
    assert.deepEqual(classifyEntry('a', true), { kind: 'dir', seg: 'a' });
    assert.deepEqual(classifyEntry('.x', true), { kind: 'dir', seg: '.x' });
    assert.equal(classifyEntry('.floe-l-h', true).kind, 'object-long');
    assert.equal(classifyEntry('.floe-d-h', true).kind, 'dir-long');
    assert.equal(classifyEntry('.floe-t-1', true).kind, 'temp');
    assert.equal(classifyEntry('.floe-x-1', true).kind, 'retired');
    assert.equal(classifyEntry('.floe-zzz', true).kind, 'other');
    assert.equal(classifyEntry('a', false).kind, 'other');
    assert.equal(classifyEntry('.floe-k-a', false).kind, 'other');
  });

  test('orderItems + subtreeAfter: a depth-first walk yields UTF-8 byte order', () => {
    // "b" (key), "b-x" (key), "b/" (subtree): '-' < '/' so "b-x" precedes "b/...".
    const items = orderItems([
      { sortKey: 'b/', leaf: false, entry: 'b' },
      { sortKey: 'b-x', leaf: true, entry: '.floe-k-b-x' },
      { sortKey: 'b', leaf: true, entry: '.floe-k-b' },
      { sortKey: '\u{1F600}', leaf: true, entry: 'e' },
      { sortKey: '\uFFFD', leaf: true, entry: 'f' },
    ]);
    assert.deepEqual(
      items.map((i) => i.sortKey),
      ['b', 'b-x', 'b/', '\uFFFD', '\u{1F600}'],
    );
    assert.equal(subtreeAfter('a/b/', undefined), 'all');
    assert.equal(subtreeAfter('a/b/', 'a/a'), 'all');
    assert.equal(subtreeAfter('a/b/', 'a/b-'), 'all');
    assert.equal(subtreeAfter('a/b/', 'a/b/'), 'some');
    assert.equal(subtreeAfter('a/b/', 'a/b/c'), 'some');
    assert.equal(subtreeAfter('a/b/', 'a/c'), 'none');
    assert.equal(subtreeAfter('a/b/', 'a/b0'), 'none');
  });

  test('subtreeAfter agrees with brute force on random strings', () => {
    const alphabet = fc.constantFrom('a', 'b', '/', '-', 'é', '\u{1F600}');
    fc.assert(
      fc.property(fc.array(alphabet, { minLength: 1, maxLength: 4 }), fc.array(alphabet, { maxLength: 6 }), fc.array(fc.array(alphabet, { minLength: 1, maxLength: 4 }), { maxLength: 8 }), (p, s, tails) => {
        const prefix = p.join('');
        const startAfter = s.join('');
        const rel = subtreeAfter(prefix, startAfter);
        for (const t of tails) {
          const k = prefix + t.join('');
          const greater = compareKeys(k, startAfter) > 0;
          if (rel === 'all') assert.ok(greater, `${k} > ${startAfter}`);
          if (rel === 'none') assert.ok(!greater, `${k} <= ${startAfter}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('mapFsError: storage errors become STORAGE_UNAVAILABLE with path and cause', () => {
    for (const code of ['EACCES', 'EPERM', 'EIO', 'ENOSPC', 'EROFS', 'EDQUOT', 'EMFILE', 'ENOTDIR', 'ENOENT']) {
      const cause = Object.assign(new Error(`${code}: boom`), { code });
      const e = mapFsError(cause, 'write temp file', '/r/a/.floe-k-b', 'a/b', 'file:///r');
      assert.equal(e.code, 'STORAGE_UNAVAILABLE');
      assert.ok(e.message.includes('/r/a/.floe-k-b') && e.message.includes(code), e.message);
      assert.equal(e.cause, cause);
      assert.equal(e.key, 'a/b');
    }
    const long = mapFsError(Object.assign(new Error('x'), { code: 'ENAMETOOLONG' }), 'create', '/r/x', 'x', 'b');
    assert.equal(long.code, 'INVALID_ARGUMENT');
    assert.equal(mapFsError(new TypeError('odd'), 'w', '/p', undefined, 'b').code, 'STORAGE_UNAVAILABLE');
    const passthrough = new FloeError('CORRUPT', 'x');
    assert.equal(mapFsError(passthrough, 'w', '/p', undefined, 'b'), passthrough);
  });
});

// ---------------------------------------------------------------------------

describe('LocalStore: single-process behaviour', () => {
  test('open creates a missing root, reports kind and location, rejects bad roots', async () => {
    const base = await tempRoot();
    const root = path.join(base, 'x', 'y');
    const s = await LocalStore.open(root);
    assert.equal(s.kind, 'local');
    assert.equal(s.root, await fs.realpath(root));
    assert.equal(fileURLToPath(s.location), s.root);
    await fs.writeFile(path.join(base, 'file'), 'x');
    await rejectsWith(LocalStore.open(path.join(base, 'file')), 'STORAGE_UNAVAILABLE');
    await rejectsWith(LocalStore.open(''), 'INVALID_ARGUMENT');
    await rejectsWith(LocalStore.open(root, { staleMs: -1 }), 'INVALID_ARGUMENT');
    await rejectsWith(LocalStore.open(root, { staleMs: 0 }), 'INVALID_ARGUMENT');
    await rejectsWith(LocalStore.open(root, { staleMs: Number.NaN }), 'INVALID_ARGUMENT');
  });

  test('absent keys: get/getRange NOT_FOUND, head null, delete succeeds', async () => {
    const s = await openStore();
    await rejectsWith(s.get('nope'), 'NOT_FOUND');
    await rejectsWith(s.get('deep/er/nope'), 'NOT_FOUND');
    await rejectsWith(s.getRange('nope', 0, 1), 'NOT_FOUND');
    assert.equal(await s.head('nope'), null);
    await s.delete('nope');
    await s.delete('deep/er/nope');
    assert.deepEqual(await s.list(''), { keys: [], more: false });
  });

  test('put/get/head round-trip; results are plain Uint8Array copies', async () => {
    const s = await openStore();
    const input = bytes('hello world');
    const { etag } = await s.put('a/b', input);
    input[0] = 0; // the store must not alias the caller's buffer
    const got = await s.get('a/b');
    assert.equal(Object.getPrototypeOf(got.bytes), Uint8Array.prototype);
    assert.deepEqual(got, { bytes: bytes('hello world'), etag });
    assert.deepEqual(await s.head('a/b'), { size: 11, etag });
    got.bytes[0] = 0;
    assert.equal(text((await s.get('a/b')).bytes), 'hello world');
  });

  test('getRange: within, across the end, past the end, empty; bad ranges rejected', async () => {
    const s = await openStore();
    await s.put('r', bytes('0123456789'));
    assert.equal(text(await s.getRange('r', 2, 3)), '234');
    assert.equal(text(await s.getRange('r', 7, 100)), '789');
    assert.equal((await s.getRange('r', 10, 5)).length, 0);
    assert.equal((await s.getRange('r', 50, 5)).length, 0);
    assert.equal((await s.getRange('r', 3, 0)).length, 0);
    assert.equal(Object.getPrototypeOf(await s.getRange('r', 0, 1)), Uint8Array.prototype);
    for (const [o, l] of [
      [-1, 1],
      [0, -1],
      [1.5, 1],
      [0, Number.NaN],
    ] as const) {
      await rejectsWith(s.getRange('r', o, l), 'INVALID_ARGUMENT');
    }
  });

  test('etag changes on every write, also of identical bytes, and never repeats', async () => {
    const s = await openStore();
    const seen = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const { etag } = await s.put('k', bytes('same'));
      assert.ok(!seen.has(etag), `etag ${etag} repeated`);
      seen.add(etag);
      assert.equal((await s.head('k'))?.etag, etag);
      assert.equal((await s.get('k')).etag, etag);
    }
  });

  test('putIfAbsent: creates once, ALREADY_EXISTS after, works again after delete', async () => {
    const s = await openStore();
    const first = await s.putIfAbsent('x/y', bytes('1'));
    const err = await rejectsWith(s.putIfAbsent('x/y', bytes('2')), 'ALREADY_EXISTS');
    assert.equal(err.key, 'x/y');
    assert.deepEqual(await s.get('x/y'), { bytes: bytes('1'), etag: first.etag });
    await s.delete('x/y');
    const again = await s.putIfAbsent('x/y', bytes('3'));
    assert.notEqual(again.etag, first.etag);
    assert.equal(text((await s.get('x/y')).bytes), '3');
  });

  test('putIfMatch: succeeds on the current etag, CAS_CONFLICT otherwise', async () => {
    const s = await openStore();
    const e1 = await s.put('m', bytes('1'));
    const e2 = await s.putIfMatch('m', bytes('2'), e1.etag);
    assert.notEqual(e2.etag, e1.etag);
    await rejectsWith(s.putIfMatch('m', bytes('x'), e1.etag), 'CAS_CONFLICT');
    await rejectsWith(s.putIfMatch('m', bytes('x'), 'garbage'), 'CAS_CONFLICT');
    await rejectsWith(s.putIfMatch('m', bytes('x'), ''), 'CAS_CONFLICT');
    await rejectsWith(s.putIfMatch('never', bytes('x'), e2.etag), 'CAS_CONFLICT');
    await rejectsWith(s.putIfMatch('m', bytes('x'), 42 as unknown as string), 'INVALID_ARGUMENT');
    assert.deepEqual(await s.get('m'), { bytes: bytes('2'), etag: e2.etag });
    await s.delete('m');
    await rejectsWith(s.putIfMatch('m', bytes('x'), e2.etag), 'CAS_CONFLICT');
  });

  test('no ABA: etags of a deleted incarnation never match a re-created key', async () => {
    const s = await openStore();
    const all: string[] = [];
    const first = await s.put('aba', bytes('v'));
    all.push(first.etag);
    for (let i = 0; i < 6; i++) {
      await s.delete('aba');
      // Same bytes, same generation number (1) in a fresh incarnation.
      const again = i % 2 === 0 ? await s.put('aba', bytes('v')) : await s.putIfAbsent('aba', bytes('v'));
      all.push(again.etag);
      assert.equal(parseEtag(again.etag)?.gen, 1);
      for (const old of all.slice(0, -1)) await rejectsWith(s.putIfMatch('aba', bytes('w'), old), 'CAS_CONFLICT');
      all.push((await s.put('aba', bytes('v'))).etag);
    }
    assert.equal(new Set(all).size, all.length, 'every etag is unique');
  });

  test('delete is idempotent and leaves keys that share the prefix alone', async () => {
    const s = await openStore();
    await s.put('a/b', bytes('ab'));
    await s.put('a/b/c', bytes('abc'));
    await s.put('a/bc', bytes('a-bc'));
    await s.delete('a/b');
    await s.delete('a/b');
    assert.deepEqual((await s.list('')).keys, ['a/b/c', 'a/bc']);
    assert.equal(text((await s.get('a/b/c')).bytes), 'abc');
    await s.put('a/b', bytes('ab2'));
    await s.delete('a/b/c');
    assert.deepEqual((await s.list('')).keys, ['a/b', 'a/bc']);
    assert.equal(text((await s.get('a/b')).bytes), 'ab2');
  });

  test('empty directories left by deletes never show up as keys and are pruned', async () => {
    const s = await openStore();
    await s.put('x/y/z', bytes('1'));
    await s.put('keep', bytes('1'));
    await fs.mkdir(path.join(s.root, 'foreign', 'empty'), { recursive: true });
    await s.delete('x/y/z');
    assert.deepEqual((await s.list('')).keys, ['keep']);
    assert.deepEqual((await s.list('x/')).keys, []);
    await assert.rejects(fs.stat(path.join(s.root, 'x')), { code: 'ENOENT' });
    await s.put('x/y/z', bytes('2'));
    assert.equal(text((await s.get('x/y/z')).bytes), '2');
  });

  test('empty object and a 16 MiB object (fsync on)', async () => {
    const s = await openStore();
    const e = await s.put('empty', new Uint8Array(0));
    assert.deepEqual(await s.get('empty'), { bytes: new Uint8Array(0), etag: e.etag });
    assert.deepEqual(await s.head('empty'), { size: 0, etag: e.etag });
    const big = new Uint8Array(16 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4093) big[i] = (i * 31) & 0xff;
    big[big.length - 1] = 0xab;
    const b = await s.put('big/blob', big);
    const got = await s.get('big/blob');
    assert.equal(got.etag, b.etag);
    assert.equal(got.bytes.length, big.length);
    assert.ok(Buffer.from(got.bytes).equals(Buffer.from(big)));
    assert.deepEqual(await s.head('big/blob'), { size: big.length, etag: b.etag });
    assert.deepEqual(await s.getRange('big/blob', big.length - 2, 10), big.subarray(big.length - 2));
  });

  test('long keys: 1024-byte segments and long interior segments', async () => {
    const s = await openStore();
    const single = 'k'.repeat(1024);
    const nested = 'd'.repeat(400) + '/' + 'é'.repeat(300); // 400 + 1 + 600 bytes
    const mixed = 'short/' + 'z'.repeat(300);
    for (const k of [single, nested, mixed]) await s.put(k, bytes(k.slice(0, 8)));
    await rejectsWith(s.putIfAbsent(single, bytes('x')), 'ALREADY_EXISTS');
    assert.deepEqual((await s.list('')).keys, [single, nested, mixed].sort(byteOrder));
    assert.deepEqual((await s.list('d'.repeat(400) + '/é')).keys, [nested]);
    assert.deepEqual((await s.list('short/zz')).keys, [mixed]);
    assert.equal(text((await s.get(nested)).bytes), nested.slice(0, 8));
    await s.delete(nested);
    assert.deepEqual((await s.list('')).keys, [single, mixed].sort(byteOrder));
    await rejectsWith(s.get(nested), 'NOT_FOUND');
  });

  test('list is sorted by UTF-8 bytes, including unicode and prefix-sharing keys', async () => {
    const s = await openStore({ fsync: false }); // bulk setup; durability is not under test here
    const keys = ['a/b', 'a/b/c', 'a/b-c', 'a/b.c', 'a/bc', 'a/b/c/d', 'a', 'a0', 'é', 'e', 'z/\u{1F600}', 'z/\uFFFD', 'z/\u00FF', 'z/~', 'Z', '.hidden/x'];
    for (const k of keys) await s.put(k, bytes(k));
    const expected = [...keys].sort(byteOrder);
    assert.deepEqual((await s.list('')).keys, expected);
    const model = (prefix: string): string[] => expected.filter((k) => k.startsWith(prefix));
    for (const prefix of ['a', 'a/', 'a/b', 'a/b/', 'a/b/c', 'a/b/c/', 'z/', 'z/\uFFFD', 'é', 'q', 'a/b/c/d/', '.', '.hidden/', 'a/.']) {
      assert.deepEqual((await s.list(prefix)).keys, model(prefix), `prefix ${JSON.stringify(prefix)}`);
    }
  });

  test('pagination with limit and startAfter; more is exact', async () => {
    const s = await openStore({ fsync: false }); // bulk setup; durability is not under test here
    const keys: string[] = [];
    for (let i = 0; i < 23; i++) keys.push(i % 3 === 0 ? `p/${i}` : i % 3 === 1 ? `p/${i}/x` : `p${i}`);
    for (const k of keys) await s.put(k, bytes(k));
    const expected = [...keys].sort(byteOrder);
    for (const limit of [1, 2, 5, 7, 22, 23, 24]) {
      const got: string[] = [];
      let startAfter: string | undefined;
      for (;;) {
        const page = await s.list('', { limit, startAfter });
        assert.ok(page.keys.length <= limit);
        got.push(...page.keys);
        if (!page.more) break;
        assert.equal(page.keys.length, limit);
        startAfter = page.keys.at(-1);
      }
      assert.deepEqual(got, expected, `limit ${limit}`);
    }
    const mid = expected[10]!;
    assert.deepEqual((await s.list('', { startAfter: mid })).keys, expected.slice(11));
    assert.deepEqual((await s.list('', { startAfter: 'p/1' })).keys, expected.filter((k) => byteOrder(k, 'p/1') > 0));
    assert.deepEqual((await s.list('', { startAfter: 'zzz' })).keys, []);
    assert.deepEqual((await s.list('p/', { startAfter: '' })).keys, expected.filter((k) => k.startsWith('p/')));
    assert.deepEqual(await s.list('', { limit: 23 }), { keys: expected, more: false });
    assert.deepEqual(await s.list('', { limit: 22 }), { keys: expected.slice(0, 22), more: true });
    for (const limit of [0, -1, 1.5, Number.NaN]) await rejectsWith(s.list('', { limit }), 'INVALID_ARGUMENT');
  });

  test('list never returns more than 1000 keys', async () => {
    const s = await openStore({ fsync: false }); // bulk setup; durability is not under test here
    const keys = Array.from({ length: 1003 }, (_, i) => `n/${String(i).padStart(4, '0')}`);
    await Promise.all(keys.map((k) => s.put(k, new Uint8Array(0))));
    const page = await s.list('n/', { limit: 5000 });
    assert.equal(page.keys.length, 1000);
    assert.equal(page.more, true);
    assert.deepEqual(page.keys, keys.slice(0, 1000));
    assert.deepEqual(await s.list('n/', { startAfter: page.keys.at(-1) }), { keys: keys.slice(1000), more: false });
  });

  test('model-based: random puts and deletes, then random listings match a sorted model', async () => {
    const seg = fc.constantFrom('a', 'b', 'ab', 'a-b', 'é', '\u{1F600}', 'z');
    const key = fc.array(seg, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
    const op = fc.record({ del: fc.boolean(), key });
    const query = fc.record({
      prefix: fc.oneof(fc.constant(''), key, key.map((k) => k + '/'), key.map((k) => [...k].slice(0, -1).join(''))),
      startAfter: fc.option(key, { nil: undefined }),
      limit: fc.integer({ min: 1, max: 6 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), fc.array(query, { minLength: 1, maxLength: 4 }), async (ops, queries) => {
        const s = await openStore({ fsync: false }); // model test of listing logic
        const model = new Set<string>();
        for (const o of ops) {
          if (o.del) {
            await s.delete(o.key);
            model.delete(o.key);
          } else {
            await s.put(o.key, bytes(o.key));
            model.add(o.key);
          }
        }
        for (const q of queries) {
          const want = [...model].filter((k) => k.startsWith(q.prefix) && (q.startAfter === undefined || byteOrder(k, q.startAfter) > 0)).sort(byteOrder);
          const page = await s.list(q.prefix, { startAfter: q.startAfter, limit: q.limit });
          assert.deepEqual(page, { keys: want.slice(0, q.limit), more: want.length > q.limit });
        }
        await fs.rm(s.root, { recursive: true, force: true });
      }),
      { numRuns: 40 },
    );
  });

  test('invalid keys, prefixes and bodies are rejected before any I/O', async () => {
    const base = await tempRoot();
    const root = path.join(base, 'store');
    const s = await LocalStore.open(root);
    await fs.rm(root, { recursive: true }); // any I/O now fails or recreates it
    const badKeys = ['', '/abs', 'a//b', 'a/', '../x', 'a/../../etc', 'a/./b', 'a\\b', 'x\u0000y', 'x\ny', '.floe-g1', 'a/.floe-k-b', 'k'.repeat(1025), 'x\ud83d'];
    for (const k of badKeys) {
      await rejectsWith(s.get(k), 'INVALID_ARGUMENT');
      await rejectsWith(s.getRange(k, 0, 1), 'INVALID_ARGUMENT');
      await rejectsWith(s.head(k), 'INVALID_ARGUMENT');
      await rejectsWith(s.put(k, bytes('x')), 'INVALID_ARGUMENT');
      await rejectsWith(s.putIfAbsent(k, bytes('x')), 'INVALID_ARGUMENT');
      await rejectsWith(s.putIfMatch(k, bytes('x'), '1-0123456789abcdef'), 'INVALID_ARGUMENT');
      await rejectsWith(s.delete(k), 'INVALID_ARGUMENT');
    }
    for (const p of ['/x', 'a//', '../', 'a\\', 'x\u0001']) await rejectsWith(s.list(p), 'INVALID_ARGUMENT');
    await rejectsWith(s.put('ok', 'string' as unknown as Uint8Array), 'INVALID_ARGUMENT');
    await rejectsWith(s.list('', { limit: 0 }), 'INVALID_ARGUMENT');
    await assert.rejects(fs.stat(root), { code: 'ENOENT' }, 'nothing was written');
    assert.deepEqual(await fs.readdir(base), []);
  });

  test('no key reaches outside the root', async () => {
    const base = await tempRoot();
    const s = await LocalStore.open(path.join(base, 'inner'));
    for (const k of ['..', '../outside', 'a/../../outside', '/tmp/x']) await rejectsWith(s.put(k, bytes('x')), 'INVALID_ARGUMENT');
    await s.put('a/b', bytes('x'));
    assert.deepEqual((await fs.readdir(base)).sort(), ['inner']);
    for (const p of await tree(s.root)) assert.ok(!p.startsWith('..'));
  });

  test('closed store: CLOSED for every operation; close is idempotent', async () => {
    const s = await openStore();
    await s.put('k', bytes('v'));
    await s.close();
    await s.close();
    await rejectsWith(s.get('k'), 'CLOSED');
    await rejectsWith(s.head('k'), 'CLOSED');
    await rejectsWith(s.getRange('k', 0, 1), 'CLOSED');
    await rejectsWith(s.put('k', bytes('v')), 'CLOSED');
    await rejectsWith(s.putIfAbsent('k', bytes('v')), 'CLOSED');
    await rejectsWith(s.putIfMatch('k', bytes('v'), 'x'), 'CLOSED');
    await rejectsWith(s.delete('k'), 'CLOSED');
    await rejectsWith(s.list(''), 'CLOSED');
    await rejectsWith(s.sweep(), 'CLOSED');
  });

  test('OS errors become STORAGE_UNAVAILABLE naming the path, with the cause', async () => {
    const s = await openStore();
    await s.put('dir/k', bytes('v'));
    // Something foreign replaces an interior directory with a file.
    await fs.rm(path.join(s.root, 'dir'), { recursive: true });
    await fs.writeFile(path.join(s.root, 'dir'), 'not a directory');
    for (const run of [() => s.put('dir/k', bytes('v')), () => s.get('dir/k'), () => s.putIfAbsent('dir/x', bytes('v')), () => s.list('dir/')]) {
      const err = await rejectsWith(run(), 'STORAGE_UNAVAILABLE');
      assert.ok(err.message.includes(path.join(s.root, 'dir')), err.message);
      assert.ok(err.cause instanceof Error && (err.cause as NodeJS.ErrnoException).code === 'ENOTDIR', String(err.cause));
      assert.equal(err.backend, s.location);
    }
  });

  test('permission denied maps to STORAGE_UNAVAILABLE', { skip: process.getuid?.() === 0 ? 'running as root: permissions are not enforced' : false }, async () => {
    const s = await openStore();
    await s.put('k', bytes('v'));
    await fs.chmod(s.root, 0o500);
    try {
      const err = await rejectsWith(s.put('new', bytes('v')), 'STORAGE_UNAVAILABLE');
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'EACCES');
    } finally {
      await fs.chmod(s.root, 0o700);
    }
  });

  test('an object directory without generations is CORRUPT; delete repairs it', async () => {
    const s = await openStore();
    await s.put('c', bytes('v'));
    const obj = path.join(s.root, '.floe-k-c');
    for (const f of await fs.readdir(obj)) await fs.unlink(path.join(obj, f));
    await rejectsWith(s.get('c'), 'CORRUPT');
    await rejectsWith(s.put('c', bytes('w')), 'CORRUPT');
    await s.delete('c');
    await s.putIfAbsent('c', bytes('w'));
    assert.equal(text((await s.get('c')).bytes), 'w');
  });

  test('leftovers of crashed writers are invisible and get collected', async () => {
    let now = Date.now();
    const s = await openStore({ clock: () => now, staleMs: 60_000 });
    const first = await s.put('d/k', bytes('v1'));
    await s.put('d/k2', bytes('other'));
    const obj = path.join(s.root, 'd', '.floe-k-k');
    const cur = parseEtag(first.etag)!;
    // What SIGKILL at various points leaves behind:
    await fs.writeFile(path.join(obj, '.floe-t-0000000000000001'), 'half a temp'); // temp file
    await fs.mkdir(path.join(s.root, 'd', '.floe-t-0000000000000002')); // staging dir of a create
    await fs.writeFile(path.join(s.root, 'd', '.floe-t-0000000000000002', genFileName({ gen: 1, nonce: 'abababababababab' })), 'x');
    await fs.mkdir(path.join(s.root, 'd', '.floe-x-0000000000000003')); // retired by a delete
    await fs.writeFile(path.join(s.root, 'd', '.floe-x-0000000000000003', genFileName(cur)), 'old');
    await fs.link(path.join(obj, genFileName(cur)), path.join(obj, claimFileName({ gen: 0, nonce: cur.nonce }))); // old claim
    assert.deepEqual((await s.list('')).keys, ['d/k', 'd/k2']);
    assert.deepEqual((await s.list('d/.')).keys, []);
    assert.deepEqual(await s.get('d/k'), { bytes: bytes('v1'), etag: first.etag });
    // Young temps are left alone (their writers may be alive) ...
    await s.put('d/k', bytes('v2'));
    assert.ok((await fs.readdir(obj)).includes('.floe-t-0000000000000001'));
    // ... old ones are collected by the next write in that directory.
    now += 61_000;
    const third = await s.put('d/k', bytes('v3'));
    assert.deepEqual(await fs.readdir(obj), [genFileName(parseEtag(third.etag)!)]);
    const report = await s.sweep();
    assert.deepEqual({ temps: report.temps, retired: report.retired }, { temps: 1, retired: 1 });
    const left = await tree(s.root);
    assert.ok(!left.some((p) => p.includes('.floe-t-') || p.includes('.floe-x-')), left.join('\n'));
    assert.deepEqual((await s.list('')).keys, ['d/k', 'd/k2']);
  });

  test('a claim left by a dead writer blocks CAS only until the grace period; never wedges', async () => {
    let now = Date.now();
    const s = await openStore({ clock: () => now, staleMs: 5_000 });
    const e = await s.put('w', bytes('v1'));
    const g = parseEtag(e.etag)!;
    const obj = path.join(s.root, '.floe-k-w');
    // A writer claimed generation g and died before publishing g+1.
    await fs.link(path.join(obj, genFileName(g)), path.join(obj, claimFileName(g)));
    assert.deepEqual(await s.get('w'), { bytes: bytes('v1'), etag: e.etag }, 'readers are unaffected');
    await rejectsWith(s.putIfMatch('w', bytes('v2'), e.etag), 'CAS_CONFLICT');
    now += 6_000;
    // Past the grace period the claim is broken: g's bytes become g+1, so the
    // old etag no longer matches, and the key accepts writes again.
    await rejectsWith(s.putIfMatch('w', bytes('v2'), e.etag), 'CAS_CONFLICT');
    const cur = await s.get('w');
    assert.equal(text(cur.bytes), 'v1');
    assert.equal(parseEtag(cur.etag)!.gen, g.gen + 1);
    const next = await s.putIfMatch('w', bytes('v2'), cur.etag);
    assert.equal(text((await s.get('w')).bytes), 'v2');
    assert.deepEqual(await fs.readdir(obj), [genFileName(parseEtag(next.etag)!)]);
  });

  test('plain put waits out a fresh claim and breaks it once stale (real time)', async () => {
    const s = await openStore({ staleMs: 50 });
    const e = await s.put('w', bytes('v1'));
    const g = parseEtag(e.etag)!;
    const obj = path.join(s.root, '.floe-k-w');
    await fs.link(path.join(obj, genFileName(g)), path.join(obj, claimFileName(g)));
    const r = await s.put('w', bytes('v2'));
    assert.deepEqual(await s.get('w'), { bytes: bytes('v2'), etag: r.etag });
    const sweep = await s.sweep();
    assert.equal(sweep.claimsBroken, 0);
  });

  test('sweep breaks stale claims and removes superseded generations', async () => {
    let now = Date.now();
    const s = await openStore({ clock: () => now, staleMs: 1_000 });
    const e = await s.put('s', bytes('v'));
    const g = parseEtag(e.etag)!;
    const obj = path.join(s.root, '.floe-k-s');
    await fs.link(path.join(obj, genFileName(g)), path.join(obj, claimFileName(g)));
    assert.equal((await s.sweep()).claimsBroken, 0, 'fresh claims are left alone');
    now += 2_000;
    const r = await s.sweep();
    assert.deepEqual([r.claimsBroken, r.superseded], [1, 2]);
    const cur = await s.get('s');
    assert.equal(parseEtag(cur.etag)!.gen, g.gen + 1);
    assert.deepEqual(await fs.readdir(obj), [genFileName({ gen: g.gen + 1, nonce: g.nonce })]);
  });

  test('readers never see a missing or mismatched object during concurrent writes', async () => {
    const s = await openStore();
    const byEtag = new Map<string, string>();
    const first = await s.put('hot', bytes('v0'));
    byEtag.set(first.etag, 'v0');
    let writing = true;
    const observed: { etag: string; value: string }[] = [];
    const reader = async (): Promise<void> => {
      while (writing) {
        const r = await s.get('hot');
        observed.push({ etag: r.etag, value: text(r.bytes) });
        const h = await s.head('hot');
        assert.ok(h !== null);
      }
    };
    const writer = async (): Promise<void> => {
      for (let i = 1; i <= 150; i++) {
        const v = `v${i}`;
        const { etag } = await s.put('hot', bytes(v));
        byEtag.set(etag, v);
      }
      writing = false;
    };
    await Promise.all([writer(), reader(), reader()]);
    assert.ok(observed.length > 0);
    for (const o of observed) assert.equal(byEtag.get(o.etag), o.value, `etag ${o.etag}`);
  });
});

// ---------------------------------------------------------------------------

describe('LocalStore: CAS races in one process', () => {
  test('16 concurrent putIfMatch on one etag: exactly one wins', async () => {
    const s = await openStore();
    for (let round = 0; round < 5; round++) {
      const base = await s.put('race', bytes(`base${round}`));
      const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => s.putIfMatch('race', bytes(`r${round}.${i}`), base.etag)));
      const wins = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, etag: r.value.etag }] : []));
      assert.equal(wins.length, 1, `round ${round}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(isFloeError(r.reason, 'CAS_CONFLICT'), String(r.reason));
      assert.deepEqual(await s.get('race'), { bytes: bytes(`r${round}.${wins[0]!.i}`), etag: wins[0]!.etag });
    }
  });

  test('16 concurrent putIfAbsent: exactly one wins', async () => {
    const s = await openStore();
    for (let round = 0; round < 5; round++) {
      const key = `fresh/${round}`;
      const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => s.putIfAbsent(key, bytes(`r${round}.${i}`))));
      const wins = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, etag: r.value.etag }] : []));
      assert.equal(wins.length, 1, `round ${round}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(isFloeError(r.reason, 'ALREADY_EXISTS'), String(r.reason));
      assert.deepEqual(await s.get(key), { bytes: bytes(`r${round}.${wins[0]!.i}`), etag: wins[0]!.etag });
    }
  });

  test('16 concurrent plain puts all succeed with distinct etags; the last one is current', async () => {
    const s = await openStore();
    await s.put('p', bytes('start'));
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => s.put('p', bytes(`p${i}`)).then((r) => ({ i, etag: r.etag }))));
    assert.equal(new Set(results.map((r) => r.etag)).size, 16);
    const cur = await s.get('p');
    const top = results.reduce((a, b) => (parseEtag(a.etag)!.gen > parseEtag(b.etag)!.gen ? a : b));
    assert.deepEqual(cur, { bytes: bytes(`p${top.i}`), etag: top.etag });
  });

  test('no lost updates: 16 read-modify-write loops on one counter via putIfMatch', async () => {
    const s = await openStore();
    await s.put('counter', bytes('0'));
    const froms = new Set<number>();
    const loop = async (): Promise<void> => {
      for (let done = 0; done < 15; ) {
        const cur = await s.get('counter');
        const n = Number(text(cur.bytes));
        try {
          await s.putIfMatch('counter', bytes(String(n + 1)), cur.etag);
        } catch (err) {
          if (isFloeError(err, 'CAS_CONFLICT')) continue;
          throw err;
        }
        assert.ok(!froms.has(n), `two CAS successes from ${n}`);
        froms.add(n);
        done++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, loop));
    assert.equal(text((await s.get('counter')).bytes), String(16 * 15));
  });

  test('writers and readers racing deletes see only NOT_FOUND/CAS_CONFLICT/ALREADY_EXISTS', async () => {
    const s = await openStore();
    const expected = new Set(['NOT_FOUND', 'CAS_CONFLICT', 'ALREADY_EXISTS']);
    const unexpected: string[] = [];
    const guard = async (run: () => Promise<unknown>): Promise<void> => {
      try {
        await run();
      } catch (err) {
        if (!isFloeError(err) || !expected.has(err.code)) unexpected.push(String(err));
      }
    };
    let stop = false;
    const deleter = async (): Promise<void> => {
      for (let i = 0; i < 300; i++) await guard(() => s.delete('churn'));
      stop = true;
    };
    const writer = async (i: number): Promise<void> => {
      while (!stop) {
        await guard(() => s.put('churn', bytes(`w${i}`)));
        await guard(async () => {
          const cur = await s.get('churn');
          await s.putIfMatch('churn', bytes(`m${i}`), cur.etag);
        });
        await guard(() => s.putIfAbsent('churn', bytes(`a${i}`)));
        await guard(() => s.head('churn'));
      }
    };
    await Promise.all([deleter(), deleter(), ...Array.from({ length: 6 }, (_, i) => writer(i))]);
    assert.deepEqual(unexpected, []);
  });

  test('putIfMatch racing delete and re-create: no stale winner', async () => {
    const s = await openStore();
    for (let round = 0; round < 10; round++) {
      const base = await s.put('rd', bytes('base'));
      const cas = Promise.allSettled(Array.from({ length: 4 }, (_, i) => s.putIfMatch('rd', bytes(`c${i}`), base.etag)));
      await s.delete('rd');
      const fresh = await s.put('rd', bytes('fresh'));
      const outcomes = await cas;
      const wins = outcomes.filter((o) => o.status === 'fulfilled');
      assert.ok(wins.length <= 1, `round ${round}`);
      // Whatever happened before the delete, the re-created key holds "fresh"
      // unless a CAS based on the old incarnation landed in it (must not).
      const cur = await s.get('rd');
      assert.deepEqual(cur, { bytes: bytes('fresh'), etag: fresh.etag });
      await s.delete('rd');
    }
  });
});

// ---------------------------------------------------------------------------

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Spawns a fixture and splits its stdout into lines. */
function spawnFixture(name: string, args: string[]): { child: ChildProcessWithoutNullStreams; lines: string[]; next: () => Promise<string>; stderr: () => string } {
  const child = spawn(process.execPath, [fixture(name), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  const waiters: Array<() => void> = [];
  let read = 0;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    err += chunk;
  });
  child.on('exit', () => {
    for (const w of waiters.splice(0)) w();
  });
  const next = async (): Promise<string> => {
    while (read >= lines.length) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited early: ${err}`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
    return lines[read++]!;
  };
  return { child, lines, next, stderr: () => err };
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

interface RoundResult {
  round: number;
  results: ({ tag: string; ok: true; etag: string } | { tag: string; ok: false; code: string })[];
}

describe('LocalStore: CAS races across 8 processes', () => {
  test('putIfMatch and putIfAbsent from 8 processes x 2: exactly one winner per round', async () => {
    const s = await openStore();
    const racers = Array.from({ length: 8 }, (_, i) => spawnFixture('local-racer.js', [s.root, `p${i}`]));
    try {
      for (const r of racers) assert.equal(await r.next(), 'ready', r.stderr());
      const rounds = 6;
      for (let round = 0; round < rounds; round++) {
        const absent = round % 2 === 1;
        const key = absent ? `x/absent${round}` : 'x/shared';
        const base = absent ? null : await s.put(key, bytes(`base${round}`));
        const cmd = JSON.stringify({ round, op: absent ? 'absent' : 'match', key, etag: base?.etag, parallel: 2 }) + '\n';
        for (const r of racers) r.child.stdin.write(cmd);
        const replies = await Promise.all(racers.map(async (r) => JSON.parse(await r.next()) as RoundResult));
        const all = replies.flatMap((rep) => rep.results);
        assert.equal(all.length, 16);
        const wins = all.filter((o) => o.ok);
        assert.equal(wins.length, 1, `round ${round}: ${JSON.stringify(all)}`);
        for (const o of all) if (!o.ok) assert.equal(o.code, absent ? 'ALREADY_EXISTS' : 'CAS_CONFLICT');
        const win = wins[0]!;
        assert.ok(win.ok);
        assert.deepEqual(await s.get(key), { bytes: bytes(win.tag), etag: win.etag });
      }
    } finally {
      for (const r of racers) r.child.stdin.end();
      await Promise.all(racers.map((r) => exited(r.child)));
    }
    for (const r of racers) assert.equal(r.child.exitCode, 0, r.stderr());
  });

  test('no lost updates: 8 processes x 2 loops incrementing one counter via putIfMatch', async () => {
    const s = await openStore();
    await s.put('counter', bytes('0'));
    const racers = Array.from({ length: 8 }, (_, i) => spawnFixture('local-racer.js', [s.root, `c${i}`]));
    try {
      for (const r of racers) assert.equal(await r.next(), 'ready', r.stderr());
      const cmd = JSON.stringify({ round: 0, op: 'increment', key: 'counter', parallel: 2, count: 12 }) + '\n';
      for (const r of racers) r.child.stdin.write(cmd);
      const replies = await Promise.all(racers.map(async (r) => JSON.parse(await r.next()) as RoundResult));
      const tags = replies.flatMap((rep) => rep.results.map((o) => o.tag));
      assert.equal(tags.length, 8 * 2 * 12);
      assert.equal(new Set(tags).size, tags.length, 'every transition n->n+1 happened exactly once');
      assert.equal(text((await s.get('counter')).bytes), String(8 * 2 * 12));
    } finally {
      for (const r of racers) r.child.stdin.end();
      await Promise.all(racers.map((r) => exited(r.child)));
    }
    for (const r of racers) assert.equal(r.child.exitCode, 0, r.stderr());
  });
});

// ---------------------------------------------------------------------------

const TORTURE_ROUNDS = Number(process.env.FLOE_TORTURE_ROUNDS ?? 6);

interface Started {
  v: number;
  op: string;
}

/** Parses an object written by local-crash-writer; null when torn or foreign. */
function parseObject(b: Uint8Array): { key: string; v: number } | null {
  const buf = Buffer.from(b);
  if (buf.length < 32) return null;
  const body = buf.subarray(0, buf.length - 32);
  if (!createHash('sha256').update(body).digest().equals(buf.subarray(buf.length - 32))) return null;
  const nl = body.indexOf(10);
  if (nl < 0) return null;
  return JSON.parse(body.subarray(0, nl).toString('utf8')) as { key: string; v: number };
}

describe('LocalStore: SIGKILL torture', () => {
  test(`writer killed at random moments (${TORTURE_ROUNDS} rounds): every key old or new, every ack present, no leftovers visible, no wedge`, async () => {
    // The parent breaks claims of killed writers after 1 s (children use the default).
    const s = await openStore({ staleMs: 1_000 });
    const expectedKeys = new Set<string>();
    for (let round = 0; round < TORTURE_ROUNDS; round++) {
      const prefix = `t${round}`;
      const w = spawnFixture('local-crash-writer.js', [s.root, prefix, '4', '6']);
      assert.equal(await w.next(), 'ready', w.stderr());
      const killAfter = 1 + Math.floor(Math.random() * 60);
      let acks = 0;
      while (acks < killAfter) if ((await w.next()).startsWith('A ')) acks++;
      await new Promise((r) => setTimeout(r, Math.random() * 15));
      w.child.kill('SIGKILL');
      await exited(w.child);
      assert.equal(w.child.signalCode, 'SIGKILL', `writer died on its own: ${w.stderr()}`);

      const started = new Map<string, Started[]>();
      const acked = new Map<string, number>();
      for (const line of w.lines) {
        const [kind, key, v, op] = line.split(' ');
        if (kind === 'S') {
          const list = started.get(key!) ?? [];
          list.push({ v: Number(v), op: op! });
          started.set(key!, list);
        } else if (kind === 'A') acked.set(key!, Number(v));
      }
      const present: string[] = [];
      for (const [key, ops] of started) {
        const last = acked.get(key) ?? 0;
        // Allowed outcomes: the last acknowledged op, or the one in flight after it.
        const allowed = ops.filter((o) => o.v === last || o.v === last + 1);
        assert.ok(allowed.length >= 1 && allowed.every((o) => o.v <= last + 1), `${key}: ${JSON.stringify(ops)} acked ${last}`);
        const head = await s.head(key);
        if (head === null) {
          assert.ok(allowed.some((o) => o.op === 'delete') || last === 0, `${key} lost: acked v${last} ${JSON.stringify(ops.at(-1))}`);
          continue;
        }
        const got = await s.get(key);
        const obj = parseObject(got.bytes);
        assert.ok(obj !== null, `${key}: torn or foreign bytes (${got.bytes.length} bytes)`);
        assert.equal(obj.key, key);
        assert.ok(
          allowed.some((o) => o.v === obj.v && o.op !== 'delete'),
          `${key}: holds v${obj.v}, acked v${last}, allowed ${JSON.stringify(allowed)}`,
        );
        present.push(key);
      }
      const listed = (await s.list(prefix + '/')).keys;
      assert.deepEqual(listed, [...present].sort(byteOrder), 'list shows exactly the present keys');
      // The store keeps working: every key takes a write, then a CAS on it.
      for (const key of started.keys()) {
        const p = await s.put(key, bytes(`after-${round}`));
        const m = await s.putIfMatch(key, bytes(`cas-${round}`), p.etag);
        assert.deepEqual(await s.get(key), { bytes: bytes(`cas-${round}`), etag: m.etag });
        expectedKeys.add(key);
      }
    }
    // Everything the killed writers left behind is collectable, and only keys remain.
    const fresh = await LocalStore.open(s.root, { staleMs: 1 }); // every writer is dead now
    await fresh.sweep();
    const left = await tree(s.root);
    const bad = left.filter((p) => /\.floe-[tx]-/.test(p) || /\.floe-c\d/.test(p));
    assert.deepEqual(bad, []);
    for (const p of left.filter((q) => /\.floe-[kl]-[^/]*$/.test(q))) {
      const gens = (await fs.readdir(path.join(s.root, p))).filter((n) => n.startsWith('.floe-g'));
      assert.equal(gens.length, 1, `${p}: ${gens.join(',')}`);
    }
    assert.deepEqual(await listEverything(fresh, ''), [...expectedKeys].sort(byteOrder));
  });
});
