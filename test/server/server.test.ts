/**
 * The HTTP server: reads, the NDJSON change feed, health; bearer-token
 * auth; every parameter validated with a 4xx JSON error carrying the
 * FloeError code; a replica following the server over HTTP (point writes
 * from the feed, bulk commits through the catalog on its store); the feed's
 * store requests per poll.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { open } from '../../src/db/database.js';
import { decodeRow } from '../../src/format/values.js';
import { replica } from '../../src/replica/replica.js';
import { httpSource } from '../../src/replica/source.js';
import type { FloeServer } from '../../src/server/server.js';
import { createServer, statusOf } from '../../src/server/server.js';
import { ERROR_CODES } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MetricsStore } from '../../src/store/metrics.js';

const TOKEN = 'tok-123';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('server', () => {
  let db: Database;
  let store: MemoryStore;
  let srv: FloeServer;
  let url = '';
  before(async () => {
    store = new MemoryStore();
    db = await open(store);
    const t = await db.createTable('t', { k: { type: 'utf8', nullable: false }, v: 'int64', n: 'utf8' }, { primaryKey: 'k' });
    await t.upsert([{ k: 'a', v: 1n, n: 'x' }, { k: 'b', v: 2n, n: 'y' }, { k: 'c', v: 3n, n: 'x' }]);
    await t.delete('b');
    await db.createTable('free', { x: 'int32' });
    srv = createServer(db, { token: TOKEN, maxLimit: 100 });
    url = await srv.listen(0, '127.0.0.1');
  });
  after(async () => {
    await srv.close();
    await db.close();
  });

  const get = async (path: string, headers: Record<string, string> = auth, method = 'GET'): Promise<{ status: number; body: unknown; text: string }> => {
    const res = await fetch(`${url}${path}`, { headers, method });
    const text = await res.text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null; // NDJSON bodies are checked through `text`
    }
    return { status: res.status, body, text };
  };
  const expectError = async (path: string, status: number, code: string | string[], headers: Record<string, string> = auth): Promise<void> => {
    const r = await get(path, headers);
    assert.equal(r.status, status, `${path}: ${r.text}`);
    const got = (r.body as { error: { code: string } }).error.code;
    assert.ok((Array.isArray(code) ? code : [code]).includes(got), `${path}: code ${got}`);
  };

  it('health needs no token; everything else does', async () => {
    const h = await get('/health', {});
    assert.equal(h.status, 200);
    assert.deepEqual(h.body, { ok: true, visibleSeq: db.visibleSeq });
    await expectError('/tables', 401, 'INVALID_ARGUMENT', {});
    await expectError('/tables', 401, 'INVALID_ARGUMENT', { authorization: 'Bearer tok-124' });
    await expectError('/tables', 401, 'INVALID_ARGUMENT', { authorization: `Basic ${TOKEN}` });
    await expectError('/tables/t/get?key=%22a%22', 401, 'INVALID_ARGUMENT', { authorization: 'Bearer ' });
    assert.deepEqual((await get('/tables')).body, { tables: ['free', 't'] });
  });

  it('get and scan with where, columns and limit', async () => {
    assert.deepEqual(decodeRow((await get('/tables/t/get?key=%22a%22')).body && ((await get('/tables/t/get?key=%22a%22')).body as { row: unknown }).row), { k: 'a', v: 1n, n: 'x' });
    assert.deepEqual((await get('/tables/t/get?key=%22b%22')).body, { row: null });
    assert.deepEqual((await get(`/tables/t/get?key=${encodeURIComponent(JSON.stringify({ k: 'c' }))}`)).status, 200);
    const scan = await get(`/tables/t/scan?where=${encodeURIComponent(JSON.stringify({ n: 'x' }))}&columns=k&limit=10`);
    assert.equal(scan.status, 200);
    assert.deepEqual((scan.body as { rows: unknown[] }).rows, [{ k: 'a' }, { k: 'c' }]);
    // Tagged values (bigint here) in where and key parameters are decoded exactly.
    const tagged = await get(`/tables/t/scan?where=${encodeURIComponent(JSON.stringify({ v: { $b: '3' } }))}&columns=k`);
    assert.deepEqual((tagged.body as { rows: unknown[] }).rows, [{ k: 'c' }]);
    await expectError(`/tables/t/scan?where=${encodeURIComponent(JSON.stringify({ v: { $d: 'x' } }))}`, 400, ['INVALID_ARGUMENT', 'SCHEMA_MISMATCH']);
    const lim = await get('/tables/t/scan?limit=1');
    assert.equal((lim.body as { rows: unknown[] }).rows.length, 1);
  });

  it('rejects bad parameters with 4xx and the FloeError code, before touching the store', async () => {
    await expectError('/tables/nope/get?key=1', 404, 'NOT_FOUND');
    await expectError('/tables/..%2F_catalog/get?key=1', 400, 'INVALID_ARGUMENT');
    await expectError('/tables/_catalog/scan', 400, 'INVALID_ARGUMENT');
    await expectError(`/tables/${'a'.repeat(200)}/scan`, 400, 'INVALID_ARGUMENT');
    await expectError('/tables/t/get', 400, 'INVALID_ARGUMENT');
    await expectError('/tables/t/get?key=%7Bnot-json', 400, 'INVALID_ARGUMENT');
    // Key values are checked against the schema (SCHEMA_MISMATCH is a 400 too).
    await expectError('/tables/t/get?key=null', 400, ['INVALID_ARGUMENT', 'SCHEMA_MISMATCH']);
    await expectError(`/tables/t/get?key=${encodeURIComponent(JSON.stringify({ zz: 1 }))}`, 400, ['INVALID_ARGUMENT', 'SCHEMA_MISMATCH']);
    await expectError('/tables/t/get?key=123', 400, ['INVALID_ARGUMENT', 'SCHEMA_MISMATCH']);
    await expectError('/tables/free/get?key=1', 400, 'INVALID_ARGUMENT');
    await expectError('/tables/t/scan?limit=abc', 400, 'INVALID_ARGUMENT');
    await expectError('/tables/t/scan?limit=-1', 400, 'INVALID_ARGUMENT');
    await expectError('/tables/t/scan?limit=101', 400, 'INVALID_ARGUMENT');
    await expectError('/tables/t/scan?limit=1e3', 400, 'INVALID_ARGUMENT');
    await expectError('/tables/t/scan?where=5', 400, 'INVALID_ARGUMENT');
    await expectError(`/tables/t/scan?where=${encodeURIComponent('{"op":"eq","column":"nope","value":1}')}`, 400, 'INVALID_ARGUMENT');
    await expectError('/tables/t/scan?columns=k,bogus', 400, 'INVALID_ARGUMENT');
    await expectError('/changes?since=-1', 400, 'INVALID_ARGUMENT');
    await expectError('/changes?since=1.5', 400, 'INVALID_ARGUMENT');
    await expectError('/changes?since=99999999999999999', 400, 'INVALID_ARGUMENT');
    await expectError('/nowhere', 404, 'NOT_FOUND');
    const post = await get('/tables', auth, 'POST');
    assert.equal(post.status, 405);
    assert.equal((post.body as { error: { code: string } }).error.code, 'INVALID_ARGUMENT');
  });

  it('streams the change feed as NDJSON from a seq', async () => {
    const r = await get('/changes?since=0');
    assert.equal(r.status, 200);
    const lines = r.text.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; op: string; table: string });
    assert.deepEqual(lines.map((l) => [l.seq, l.op, l.table]), [[1, 'upsert', 't'], [1, 'upsert', 't'], [1, 'upsert', 't'], [2, 'delete', 't']]);
    assert.equal((await get('/changes?since=1')).text.trim().split('\n').length, 1);
    assert.equal((await get(`/changes?since=${db.visibleSeq}`)).text, '');
    const sse = await get('/changes?since=1&format=sse');
    assert.equal(sse.text, `id: 2\ndata: ${JSON.stringify({ seq: 2, table: 't', op: 'delete', key: { k: 'b' }, row: null, id: null })}\n\n`);
    await expectError('/changes?since=0&format=xml', 400, 'INVALID_ARGUMENT');
  });

  it('a replica follows over HTTP; a truncated log answers 410 LOG_GAP and the replica recovers', async () => {
    const viaSse = await replica(store, { source: httpSource(url, { token: TOKEN, format: 'sse' }) });
    await viaSse.advance();
    assert.equal(viaSse.visibleSeq, db.visibleSeq);
    assert.equal(await viaSse.table('t').get('b'), null);
    const r = await replica(store, { source: httpSource(url, { token: TOKEN }) });
    await r.advance();
    assert.equal(r.visibleSeq, db.visibleSeq);
    assert.equal(await r.table('t').get('b'), null);
    const t = await db.table('t');
    await t.upsert({ k: 'd', v: 4n, n: null });
    await db.flush(); // truncates the log
    await t.upsert({ k: 'e', v: 5n, n: null });
    await expectError('/changes?since=0', 410, 'LOG_GAP');
    await r.advanceOrRecover();
    assert.equal(r.visibleSeq, db.visibleSeq);
    assert.deepEqual((await r.table('t').scan({ columns: ['k'] }).toArray()).map((x) => x.k), ['a', 'c', 'd', 'e']);
    const bad = await replica(store, { source: httpSource(url, { token: 'wrong' }) });
    await assert.rejects(bad.advance(), (e: unknown) => (e as { code?: string }).code === 'INVALID_ARGUMENT');
    await bad.close();
    await viaSse.advanceOrRecover();
    assert.deepEqual((await viaSse.table('t').scan({ columns: ['k'] }).toArray()).map((x) => x.k), ['a', 'c', 'd', 'e']);
    await viaSse.close();
    await r.close();
  });

  it('a replica over HTTP sees bulk commits (append, deleteWhere, updateWhere) on advance, through its store', async () => {
    const mem = new MemoryStore();
    const own = await open(mem);
    const t = await own.createTable('b', { k: { type: 'utf8', nullable: false }, v: 'int64' }, { primaryKey: 'k' });
    await t.upsert([{ k: 'a', v: 1n }, { k: 'b', v: 2n }]);
    const s2 = createServer(own);
    const u = await s2.listen(0, '127.0.0.1');
    const r = await replica(mem, { source: httpSource(u) });
    const rows = async (): Promise<string[]> => (await r.table('b').scan().toArray()).map((x) => `${String(x.k)}=${String(x.v)}`).sort();
    await r.advance();
    assert.deepEqual(await rows(), ['a=1', 'b=2']);
    await t.append([{ k: 'c', v: 3n }]);
    await r.advance();
    assert.deepEqual(await rows(), ['a=1', 'b=2', 'c=3']);
    await t.upsert({ k: 'd', v: 4n });
    await t.deleteWhere({ k: ['a', 'd'] });
    await r.advance();
    assert.deepEqual(await rows(), ['b=2', 'c=3']);
    await t.updateWhere({ k: 'c' }, { v: 30n });
    await t.upsert({ k: 'e', v: 5n });
    await r.advance();
    assert.deepEqual(await rows(), ['b=2', 'c=30', 'e=5']);
    assert.equal(r.visibleSeq, own.visibleSeq);
    await r.close();
    await s2.close();
    await own.close();
  });

  it('the change feed follows the log incrementally: an up-to-date poll reads nothing, a new commit costs one LIST and one GET', async () => {
    const metrics = new MetricsStore(new MemoryStore());
    const own = await open(metrics, { logRetention: { minSeqs: 1_000_000 } });
    const t = await own.createTable('c', { k: { type: 'utf8', nullable: false }, v: 'int64' }, { primaryKey: 'k' });
    for (let i = 0; i < 40; i++) await t.upsert({ k: `k${i % 7}`, v: BigInt(i) });
    const s3 = createServer(own);
    const u = await s3.listen(0, '127.0.0.1');
    const feed = async (since: number): Promise<number> => {
      const res = await fetch(`${u}/changes?since=${since}`);
      assert.equal(res.status, 200);
      return (await res.text()).split('\n').filter((l) => l !== '').length;
    };
    assert.equal(await feed(0), 40); // first poll: the whole log
    metrics.reset();
    assert.equal(await feed(own.visibleSeq), 0);
    assert.equal(metrics.requests(), 0, 'an up-to-date follower costs no store request');
    await t.upsert({ k: 'new', v: 1n });
    metrics.reset();
    assert.equal(await feed(own.visibleSeq - 1), 1);
    assert.deepEqual([metrics.requests('list'), metrics.requests('get')], [1, 1], JSON.stringify(metrics.snapshot()));
    await s3.close();
    await own.close();
  });

  it('maps every error code to a status (4xx for caller errors)', () => {
    for (const c of ERROR_CODES) {
      const s = statusOf(c);
      assert.ok(s >= 400 && s < 600);
    }
    assert.equal(statusOf('INVALID_ARGUMENT'), 400);
    assert.equal(statusOf('NOT_FOUND'), 404);
    assert.equal(statusOf('LOG_GAP'), 410);
  });
});
