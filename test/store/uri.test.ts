// parseStoreUri: every accepted form and every rejection, with no I/O.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFloeError } from '../../src/errors.js';
import type { StoreSpec } from '../../src/store/uri.js';
import { openStore, parseStoreUri } from '../../src/store/uri.js';
import { MemoryStore } from '../../src/store/memory.js';

const CWD = '/work/cwd';
const parse = (u: string): StoreSpec => parseStoreUri(u, CWD);

const s3 = (bucket: string, prefix = '', extra: Partial<Extract<StoreSpec, { kind: 's3' }>> = {}): StoreSpec => ({
  kind: 's3',
  bucket,
  prefix,
  endpoint: undefined,
  region: undefined,
  forcePathStyle: undefined,
  ...extra,
});

function rejects(uri: string, why: RegExp): void {
  assert.throws(
    () => parse(uri),
    (e: unknown) => {
      assert.ok(isFloeError(e, 'INVALID_ARGUMENT'), `${JSON.stringify(uri)} -> ${String(e)}`);
      assert.match(e.message, why, JSON.stringify(uri));
      return true;
    },
    JSON.stringify(uri),
  );
}

void describe('parseStoreUri: memory', () => {
  void it('accepts names of 1-128 safe characters, any scheme case', () => {
    assert.deepEqual(parse('memory://db'), { kind: 'memory', name: 'db' });
    assert.deepEqual(parse('memory://a_b-c.d9'), { kind: 'memory', name: 'a_b-c.d9' });
    assert.deepEqual(parse('MEMORY://X'), { kind: 'memory', name: 'X' });
    assert.deepEqual(parse('memory://' + 'n'.repeat(128)), { kind: 'memory', name: 'n'.repeat(128) });
  });

  void it('rejects empty, long and unsafe names', () => {
    for (const u of ['memory://', 'memory://' + 'n'.repeat(129), 'memory://a/b', 'memory://a b', 'memory://ü', 'memory://a?x=1', 'memory://a#b']) {
      rejects(u, /memory store name/);
    }
  });
});

void describe('parseStoreUri: local paths and file URLs', () => {
  void it('resolves absolute and relative paths against cwd', () => {
    assert.deepEqual(parse('/abs/path'), { kind: 'local', path: '/abs/path' });
    assert.deepEqual(parse('/abs/path/'), { kind: 'local', path: '/abs/path' });
    assert.deepEqual(parse('/abs/./x/../y'), { kind: 'local', path: '/abs/y' });
    assert.deepEqual(parse('./rel'), { kind: 'local', path: '/work/cwd/rel' });
    assert.deepEqual(parse('rel/dir'), { kind: 'local', path: '/work/cwd/rel/dir' });
    assert.deepEqual(parse('../up'), { kind: 'local', path: '/work/up' });
    assert.deepEqual(parse('.'), { kind: 'local', path: '/work/cwd' });
    // No shell expansion: "~" is an ordinary directory name.
    assert.deepEqual(parse('~/x'), { kind: 'local', path: '/work/cwd/~/x' });
    // A Windows drive letter is a path, not a scheme.
    assert.equal(parse('C:/x').kind, 'local');
    assert.equal(parse('C:\\x').kind, 'local');
  });

  void it('uses process.cwd() by default', () => {
    assert.deepEqual(parseStoreUri('rel'), { kind: 'local', path: `${process.cwd()}/rel` });
  });

  void it('accepts absolute file URLs, with percent-decoding and localhost', () => {
    assert.deepEqual(parse('file:///tmp/x'), { kind: 'local', path: '/tmp/x' });
    assert.deepEqual(parse('file:///tmp/x/'), { kind: 'local', path: '/tmp/x' });
    assert.deepEqual(parse('FILE:///tmp/x'), { kind: 'local', path: '/tmp/x' });
    assert.deepEqual(parse('file:///tmp/a%20b'), { kind: 'local', path: '/tmp/a b' });
    assert.deepEqual(parse('file://localhost/tmp/a'), { kind: 'local', path: '/tmp/a' });
    assert.deepEqual(parse('file:///'), { kind: 'local', path: '/' });
  });

  void it('rejects file URLs with a remote host or an encoded slash', () => {
    rejects('file://host/x', /not an absolute file URL/);
    rejects('file:///a/%2Fb', /not an absolute file URL/);
  });
});

void describe('parseStoreUri: s3', () => {
  void it('parses bucket and prefix; the prefix is normalised to end in "/"', () => {
    assert.deepEqual(parse('s3://bucket'), s3('bucket'));
    assert.deepEqual(parse('s3://bucket/'), s3('bucket'));
    assert.deepEqual(parse('s3://bucket///'), s3('bucket'));
    assert.deepEqual(parse('s3://bucket/db'), s3('bucket', 'db/'));
    assert.deepEqual(parse('s3://bucket/db/'), s3('bucket', 'db/'));
    assert.deepEqual(parse('s3://bucket/a/b/c'), s3('bucket', 'a/b/c/'));
    assert.deepEqual(parse('S3://bucket/x'), s3('bucket', 'x/'));
    assert.deepEqual(parse('s3://my.bucket-1/x'), s3('my.bucket-1', 'x/'));
    assert.deepEqual(parse('s3://abc/x'), s3('abc', 'x/'));
    assert.deepEqual(parse('s3://' + 'b'.repeat(63)), s3('b'.repeat(63)));
  });

  void it('percent-decodes the prefix', () => {
    assert.deepEqual(parse('s3://bucket/a%20b'), s3('bucket', 'a b/'));
    assert.deepEqual(parse('s3://bucket/a%23b'), s3('bucket', 'a#b/'));
    assert.deepEqual(parse('s3://bucket/%F0%9F%98%80'), s3('bucket', '\u{1F600}/'));
    assert.deepEqual(parse('s3://bucket/..a/b..'), s3('bucket', '..a/b../'));
  });

  void it('reads endpoint, region and forcePathStyle', () => {
    assert.deepEqual(
      parse('s3://floe-test/contract/x?endpoint=http://127.0.0.1:7480&region=us-east-1&forcePathStyle=true'),
      s3('floe-test', 'contract/x/', { endpoint: 'http://127.0.0.1:7480', region: 'us-east-1', forcePathStyle: true }),
    );
    assert.deepEqual(parse('s3://bucket?endpoint=https://s3.example.com/'), s3('bucket', '', { endpoint: 'https://s3.example.com' }));
    assert.deepEqual(parse('s3://bucket?endpoint=https://s3.example.com:443'), s3('bucket', '', { endpoint: 'https://s3.example.com:443' }));
    assert.deepEqual(parse('s3://bucket?forcePathStyle=false'), s3('bucket', '', { forcePathStyle: false }));
    assert.deepEqual(parse('s3://bucket/p?region=eu-west-1'), s3('bucket', 'p/', { region: 'eu-west-1' }));
    assert.deepEqual(
      parse('s3://bucket/p?endpoint=' + encodeURIComponent('http://minio:9000')),
      s3('bucket', 'p/', { endpoint: 'http://minio:9000' }),
    );
  });

  void it('rejects invalid bucket names', () => {
    for (const b of ['ab', 'a', '-ab', 'ab-', '.ab', 'ab.', 'b'.repeat(64), 'My-Bucket', 'a_b', 'a%20b']) {
      rejects(`s3://${b}/x`, /bucket name/);
    }
    rejects('s3:///x', /bucket name ""/);
  });

  void it('rejects credentials and ports in the authority', () => {
    rejects('s3://user@bucket/x', /credentials do not belong/);
    rejects('s3://user:secret@bucket/x', /credentials do not belong/);
    rejects('s3://:secret@bucket/x', /credentials do not belong/);
    rejects('s3://bucket:9000/x', /port belongs in \?endpoint=/);
  });

  void it('rejects "." and ".." prefix segments, plain or percent-encoded', () => {
    for (const u of [
      's3://bucket/..',
      's3://bucket/../x',
      's3://bucket/a/../b',
      's3://bucket/a/..',
      's3://bucket/./a',
      's3://bucket/a/./b',
      's3://bucket/%2e%2e/b',
      's3://bucket/%2E%2E/b',
      's3://bucket/a/%2e',
      's3://bucket/.%2e/b',
      's3://bucket/a%2F..%2Fb',
    ]) {
      rejects(u, /"\." or "\.\." segments/);
    }
  });

  void it('rejects unusable prefixes', () => {
    rejects('s3://bucket/a%2F%2Fb', /empty segments/);
    rejects('s3://bucket/a//b', /empty segments/);
    rejects('s3://bucket/a%00b', /control characters/);
    rejects('s3://bucket/a%0Ab', /control characters/);
    rejects('s3://bucket/a%5Cb', /control characters or "\\"/);
    rejects('s3://bucket/%E0', /malformed percent-encoding/);
    rejects('s3://bucket/%ED%A0%80', /malformed percent-encoding/); // an encoded lone surrogate
    rejects('s3://bucket/p#frag', /fragment/);
  });

  void it('rejects unknown parameters and bad values', () => {
    rejects('s3://bucket/a?foo=1', /unknown parameter "foo"/);
    rejects('s3://bucket/a?Endpoint=http://h', /unknown parameter "Endpoint"/);
    rejects('s3://bucket/a?region=x&prefix=y', /unknown parameter "prefix"/);
    rejects('s3://bucket/x?forcePathStyle=yes', /forcePathStyle must be true or false/);
    rejects('s3://bucket/x?forcePathStyle=', /forcePathStyle must be true or false/);
    for (const e of ['', 'ftp://h', 'h:9000', 'http://', 'http://h/path', 'http://h?x=1', 'http://h/a/', '//h']) {
      rejects(`s3://bucket/x?endpoint=${encodeURIComponent(e)}`, /endpoint must be http\(s\):\/\/host\[:port\]/);
    }
  });
});

void describe('parseStoreUri: rejections common to every form', () => {
  void it('rejects empty and blank input', () => {
    for (const u of ['', ' ', '\t', '  \n ']) rejects(u, /empty|control character/);
    rejects('', /empty/);
    rejects('   ', /empty/);
  });

  void it('rejects control characters anywhere', () => {
    for (const u of ['memory://a\u0000', '/tmp/a\nb', 's3://bucket/a\tb', 'file:///tmp/\u007f', '\u001b[31m']) {
      rejects(u, /control character/);
    }
  });

  void it('rejects unknown schemes', () => {
    for (const u of ['http://x', 'https://bucket.s3.amazonaws.com/x', 'gs://bucket/x', 'foo://x', 'az://c/x']) {
      rejects(u, /unknown scheme "[a-z0-9+.-]+:\/\/"/);
    }
    for (const u of ['mailto:x', 's3:bucket', 'file:/abs', 'memory:x']) rejects(u, /unknown scheme/);
  });

  void it('rejects non-strings', () => {
    const untyped = parseStoreUri as (u: unknown) => StoreSpec;
    for (const u of [undefined, null, 42, {}]) {
      assert.throws(() => untyped(u), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
    }
  });
});

void describe('openStore', () => {
  void it('opens one shared memory store per name and rejects bad URIs before any I/O', async () => {
    const a = await openStore('memory://uri-test-shared');
    const b = await openStore('memory://uri-test-shared');
    assert.equal(a, b);
    assert.ok(a instanceof MemoryStore);
    assert.equal(a.location, 'memory://uri-test-shared');
    MemoryStore.drop('uri-test-shared');
    await assert.rejects(openStore('nope://x'), (e: unknown) => isFloeError(e, 'INVALID_ARGUMENT'));
  });
});
