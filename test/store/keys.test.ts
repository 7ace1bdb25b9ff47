// Key rules and bytewise order, checked exhaustively on hand-picked cases
// and against Buffer.compare of UTF-8 bytes on random strings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isFloeError } from '../../src/errors.js';
import {
  compareKeys,
  listLimit,
  MAX_KEY_BYTES,
  validateBody,
  validateKey,
  validatePrefix,
  validateRange,
} from '../../src/store/keys.js';

const invalidArg = (e: unknown): boolean => isFloeError(e, 'INVALID_ARGUMENT');
const utf8Compare = (a: string, b: string): number => Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));

const GOOD_KEYS = [
  'a',
  'a/b',
  'a/b/c',
  'tables/t1/data/0001.parquet',
  'log/00000000000000000001.seg',
  'a.b',
  '..a',
  'a..',
  'a/...',
  '.hidden',
  'x/.flo',
];

const MORE_GOOD_KEYS = [
  'x/floe',
  'x/a.floe',
  'spaces are fine',
  'ümlaut/ß',
  '日本語/キー',
  '\u{1F600}/\u{10FFFF}',
  'emoji\u{1F4A9}key',
  'tab-free~!@#$%^&*()_+=-[]{};\'",<>?|`',
  'é'.repeat(512), // 1024 UTF-8 bytes exactly
  'a'.repeat(MAX_KEY_BYTES),
  '\u{1F600}'.repeat(256), // 4 bytes each = 1024
  '\uFFFD',
  '\u0080',
  '\u00A0nbsp',
];

const BAD_KEYS: Array<[string, string]> = [
  ['', 'empty'],
  ['/a', 'leading slash'],
  ['a/', 'trailing slash'],
  ['a//b', 'empty segment'],
  ['/', 'only slash'],
  ['.', 'dot'],
  ['..', 'dotdot'],
  ['a/./b', 'dot segment'],
  ['a/../b', 'dotdot segment'],
  ['../a', 'leading dotdot'],
  ['a/..', 'trailing dotdot'],
  ['a\\b', 'backslash'],
  ['a\u0000b', 'NUL'],
  ['a\nb', 'newline'],
  ['a\tb', 'tab'],
  ['\u001f', 'unit separator'],
  ['a\u007f', 'DEL'],
  ['.floe', 'reserved'],
  ['a/.floe-tmp-123', 'reserved temp'],
  ['.floelock/x', 'reserved lock'],
  ['a'.repeat(MAX_KEY_BYTES + 1), 'too long'],
  ['é'.repeat(512) + 'a', 'too long in bytes, short in chars'],
  ['\u{1F600}'.repeat(256) + 'a', 'too long with astral chars'],
  ['a\uD800', 'lone high surrogate at end'],
  ['\uDC00a', 'lone low surrogate'],
  ['a\uD800b', 'high surrogate followed by BMP'],
  ['\uDE00\uD83D', 'reversed pair'],
];

void describe('validateKey', () => {
  void it('accepts valid keys', () => {
    for (const k of [...GOOD_KEYS, ...MORE_GOOD_KEYS]) assert.doesNotThrow(() => validateKey(k), `key ${JSON.stringify(k)}`);
  });

  void it('rejects each kind of invalid key with INVALID_ARGUMENT naming the key', () => {
    for (const [k, why] of BAD_KEYS) {
      assert.throws(() => validateKey(k, 'testbackend'), (e: unknown) => {
        assert.ok(invalidArg(e), why);
        assert.match((e as Error).message, /testbackend/);
        return true;
      }, why);
    }
  });

  void it('rejects non-strings', () => {
    const untyped = validateKey as (k: unknown) => void;
    for (const k of [undefined, null, 3, {}, ['a']]) {
      assert.throws(() => untyped(k), invalidArg);
    }
  });

  void it('accepts every well-formed random key made of safe segments', () => {
    const seg = fc
      .string({ unit: 'binary', minLength: 1, maxLength: 8 })
      .filter((s) => !/[\u0000-\u001f\u007f/\\]/.test(s) && s !== '.' && s !== '..' && !s.startsWith('.floe'));
    fc.assert(
      fc.property(fc.array(seg, { minLength: 1, maxLength: 6 }), (segs) => {
        const k = segs.join('/');
        if (Buffer.byteLength(k) <= MAX_KEY_BYTES) validateKey(k);
        else assert.throws(() => validateKey(k), invalidArg);
      }),
    );
  });
});

void describe('validatePrefix', () => {
  void it('accepts the empty prefix, partial segments and trailing slashes', () => {
    for (const p of ['', 'a', 'a/', 'a/b', 'a/b/', 'a/b.', 'a/.', 'a/.fl', 'tables/t1/data/', '日本', '\u{1F600}']) {
      assert.doesNotThrow(() => validatePrefix(p), JSON.stringify(p));
    }
  });

  void it('rejects malformed prefixes', () => {
    for (const p of ['/', '/a', 'a//b', '//', 'a//', '../', 'a/../', '..', 'a/..', './a', 'a/./b', 'a\\b', 'a\u0000', 'x\n', 'a\uD800', '\uDC00', 'a'.repeat(MAX_KEY_BYTES + 1)]) {
      assert.throws(() => validatePrefix(p), invalidArg, JSON.stringify(p));
    }
    assert.throws(() => validatePrefix(7 as unknown as string), invalidArg);
  });

  void it('every prefix of a valid key that ends at a segment boundary is valid', () => {
    for (const k of [...GOOD_KEYS, ...MORE_GOOD_KEYS]) {
      const segs = k.split('/');
      for (let i = 1; i <= segs.length; i++) {
        validatePrefix(segs.slice(0, i).join('/'));
        validatePrefix(segs.slice(0, i).join('/') + (i < segs.length ? '/' : ''));
      }
    }
  });
});

void describe('compareKeys', () => {
  void it('orders by UTF-8 bytes on hand-picked cases', () => {
    const cases: Array<[string, string]> = [
      ['a', 'b'],
      ['a', 'a/b'],
      ['a/b', 'a/b/c'],
      ['a/b', 'a0'], // '/' (0x2f) < '0' (0x30)
      ['a/b/c', 'a/ba'],
      ['Z', 'a'],
      ['\u007e', '\u0080'],
      ['\u00ff', '\u0100'],
      ['\uD7FF', '\uE000'],
      ['\uE000', '\u{10000}'], // UTF-16 says the reverse: 0xE000 > 0xD800
      ['\uFFFF', '\u{10000}'],
      ['\uFFFD', '\u{1F600}'],
      ['\u{1F600}', '\u{1F601}'], // same high surrogate, different low
      ['\u{1F600}a', '\u{1F601}'],
      ['\u{1F600}', '\u{1F600}a'],
      ['x\u{10000}', 'x\u{10FFFF}'],
      ['\u{1F4A9}', '\u{20000}'], // different high surrogates
      ['a\u{1F600}b', 'a\u{1F600}c'],
    ];
    for (const [a, b] of cases) {
      assert.equal(utf8Compare(a, b), -1, `fixture ${JSON.stringify([a, b])}`);
      assert.ok(compareKeys(a, b) < 0, `${JSON.stringify(a)} < ${JSON.stringify(b)}`);
      assert.ok(compareKeys(b, a) > 0, `${JSON.stringify(b)} > ${JSON.stringify(a)}`);
      assert.equal(compareKeys(a, a), 0);
    }
  });

  void it('equals Buffer.compare of UTF-8 bytes on random strings', () => {
    const str = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 8 }),
      // Dense in surrogate pairs sharing a high surrogate, and BMP chars around 0xD800/0xE000.
      fc
        .array(fc.constantFrom('a', '/', '\u{1F600}', '\u{1F601}', '\u{1F4A9}', '\uE000', '\uD7FF', '\uFFFF', '\u{10000}', '\u00e9'), {
          maxLength: 6,
        })
        .map((xs) => xs.join('')),
    );
    fc.assert(
      fc.property(str, str, (a, b) => {
        assert.equal(Math.sign(compareKeys(a, b)), utf8Compare(a, b));
      }),
      { numRuns: Number(process.env.FLOE_PROPERTY_RUNS ?? 5000) },
    );
  });

  void it('sorting with compareKeys equals sorting the UTF-8 encodings', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 6 }), { maxLength: 30 }), (xs) => {
        const byKeys = [...xs].sort(compareKeys);
        const byBytes = xs
          .map((s) => Buffer.from(s, 'utf8'))
          .sort((x, y) => Buffer.compare(x, y))
          .map((buf) => buf.toString('utf8'));
        assert.deepEqual(byKeys, byBytes);
      }),
    );
  });

  void it('is a total order even on ill-formed strings (never 0 for distinct strings)', () => {
    const units = fc.array(fc.constantFrom(0x61, 0xd83d, 0xde00, 0xde01, 0xdc00, 0xe000), { maxLength: 5 });
    fc.assert(
      fc.property(units, units, (x, y) => {
        const a = String.fromCharCode(...x);
        const b = String.fromCharCode(...y);
        const c = compareKeys(a, b);
        assert.equal(c === 0, a === b);
        assert.ok(Math.sign(c) + Math.sign(compareKeys(b, a)) === 0, 'antisymmetric');
      }),
    );
  });
});

void describe('listLimit, validateRange, validateBody', () => {
  void it('listLimit defaults to and caps at the maximum', () => {
    assert.equal(listLimit(undefined, 1000), 1000);
    assert.equal(listLimit(1, 1000), 1);
    assert.equal(listLimit(999, 1000), 999);
    assert.equal(listLimit(5000, 1000), 1000);
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => listLimit(bad, 1000), invalidArg, String(bad));
    }
  });

  void it('validateRange accepts non-negative safe integers only', () => {
    validateRange(0, 0, 'k');
    validateRange(10, 0, 'k');
    validateRange(Number.MAX_SAFE_INTEGER, 1, 'k');
    for (const [o, l] of [
      [-1, 1],
      [0, -1],
      [0.5, 1],
      [0, 1.5],
      [Number.NaN, 1],
      [0, Number.POSITIVE_INFINITY],
      [2 ** 53, 1],
    ] as const) {
      assert.throws(() => validateRange(o, l, 'k'), invalidArg, `${o},${l}`);
    }
  });

  void it('validateBody accepts Uint8Array (and Buffer) only', () => {
    validateBody(new Uint8Array(0), 'k');
    validateBody(Buffer.from('x'), 'k');
    for (const bad of ['str', null, undefined, [1, 2], new ArrayBuffer(2), new Uint16Array(2)]) {
      assert.throws(() => validateBody(bad, 'k'), invalidArg);
    }
  });
});
