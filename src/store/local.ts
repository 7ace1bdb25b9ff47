/**
 * Local-directory ObjectStore: one directory tree on a POSIX filesystem,
 * shared safely by any number of processes on the same machine.
 *
 * Layout. A key `s1/s2/name` lives in the *object directory*
 * `<root>/s1/s2/.floe-k-name/`; interior segments are plain directories named
 * as the segment. Object directories never contain other keys, so `a/b` and
 * `a/b/c` coexist (`a/.floe-k-b/` next to `a/b/.floe-k-c/`). User segments can
 * never start with `.floe` (keys.ts), so every `.floe*` name is ours:
 *
 *   .floe-k-<seg>          object directory (segment of at most 247 bytes)
 *   .floe-l-<hash>         object directory of a longer segment; its
 *   .floe-d-<hash>         ... or interior directory: `.floe-name` inside
 *                          holds the segment (sha256 of it names the entry)
 *   .floe-t-<rand>         temp: a file being written inside an object
 *                          directory, or a staging directory beside one
 *   .floe-x-<rand>         a deleted object directory being removed
 *   .floe-g<gen>-<nonce>   generation file: one version's bytes, exactly
 *   .floe-c<gen>-<nonce>   claim: a hard link to generation <gen>'s file,
 *                          saying its successor is being written
 *
 * The current version of a key is the generation file with the highest
 * <gen> in its object directory; the key is absent when the object directory
 * is. <nonce> is 64 random bits fixed when the object directory is created:
 * every object directory that ever sits at a key's path is an *incarnation*
 * with its own nonce, and the etag is `<gen>-<nonce>`. Generation names
 * inside one incarnation are never reused (see below) and a delete retires
 * the whole incarnation, so an etag never repeats for a key, even across
 * delete and re-create (no ABA); it also changes on every write, even of
 * identical bytes.
 *
 * Invariants, each kept by every writer in every process:
 * I1. An object directory appears at its path only by rename(2) of a staging
 *     directory that already holds generation 1, fsynced (file and
 *     directory). So an object directory at its path always holds >= 1
 *     generation, and `list` needs no look inside it.
 * I2. Generation g+1 is created (link(2), create-only) only by the holder of
 *     the claim on g, or by a breaker of a stale claim on g.
 * I3. A claim on g is created by link(gen-file g, claim g): it succeeds only
 *     while gen-file g exists and nobody claimed g yet. Claims on g are
 *     removed only after gen-file g is removed.
 * I4. Only generations (and claims) below the current one are removed, in
 *     ascending order, gen-file before its claim, stopping at the first
 *     failure. The current generation is never removed in place.
 *
 * Create (key absent): build `.floe-t-*` holding `.floe-g1-<new nonce>`,
 * fsync the file and the staging directory, rename it onto the object path,
 * fsync the parent. rename(2) refuses a non-empty target, so of concurrent
 * creators exactly one wins; the rest see ALREADY_EXISTS (putIfAbsent) or
 * fall through to an update (put).
 *
 * Update (putIfMatch, or put of a present key), in the object directory D:
 *  1. open D (a directory fd pins this incarnation; all later names are
 *     resolved through /proc/self/fd/<fd>, so they cannot drift into a newer
 *     incarnation created at the same path);
 *  2. read D: current g (putIfMatch: must equal the etag, else CAS_CONFLICT);
 *  3. write + fsync the bytes to a temp file in D;
 *  4. claim: link(g, claim g). EEXIST: someone else is replacing g; ENOENT:
 *     g was already superseded. Either way this writer lost: CAS_CONFLICT
 *     (put: read again). Success proves g was current and unclaimed (I2, I3)
 *     at that instant, and nobody else may now create g+1;
 *  5. publish: link(temp, g+1). This is the linearization point;
 *  6. unlink the temp, fsync D, then remove g and its claim (I4).
 * A claim whose writer died would block g forever, so a writer that finds a
 * claim older than the grace period `staleMs` (by the claim's ctime, which
 * link(2) sets) breaks it: it links g's own file as g+1, a new etag for the
 * same bytes. Meanwhile putIfMatch on g answers CAS_CONFLICT and readers are
 * unaffected. The claimer, for its part, publishes only while less than half
 * the grace period has passed since it issued the claim, and otherwise
 * abandons it. The one timing assumption: no process stalls for more than
 * half the grace period between that check and its link(2) running, the
 * wall clock does not jump by as much, and every process sharing the
 * directory uses the same `staleMs`.
 *
 * Delete: rename the object directory to `.floe-x-*` (atomic; an absent key is
 * success) and fsync the parent, then remove that tree and any emptied plain
 * parent directories (best effort). A write that had opened the retired
 * incarnation either fails its claim/publish (it then re-reads the path) or
 * completes inside the retired directory, i.e. it is ordered just before the
 * delete.
 *
 * Reads: list D by path, open the highest generation by its full name (so a
 * newer incarnation cannot answer), retry when it vanished in between.
 *
 * Durability: a write resolves after its file and every directory entry it
 * created are fsynced (option `fsync: false` turns this off for benchmarks and
 * tests that say so). A SIGKILLed process leaves only `.floe-t-*` temps,
 * `.floe-x-*` trees, superseded generations or one claim: never visible as
 * keys, never a lock that blocks the store for longer than the grace period
 * (`staleMs`, default 10 s; a later writer breaks an older claim by linking
 * g's own file as g+1). Writers collect stale temps in the directory they
 * write; `sweep()` collects everything else.
 *
 * Prepared creates. Making the two inodes of a new object (staging directory
 * and generation file) is the slow part of a create on some filesystems
 * (ext4 without a journal scans past every recently freed inode of the block
 * group, up to ~0.7 ms each here), so with the opt-in `prepare` option, in a directory that keeps receiving
 * new objects (a log's segments) the store prepares the next staging
 * directory in the background: `.floe-t-*` holding an empty `.floe-g1-*`
 * file, left open (metadata only: no fsync, so preparing never queues a
 * flush ahead of a create's). A create then writes its bytes into that
 * file, fsyncs it and the staging directory at once, renames the directory
 * onto the object path and fsyncs the parent: the same durable states in
 * the same order as above (I1 holds), with two thread-pool round trips
 * instead of seven. A prepared directory is used
 * only while younger than half the grace period by `clock` (checked in the
 * same synchronous step as the rename), so no collector sharing the grace
 * period can be removing it then; older ones are removed, as are all of
 * them on `close()` and before `sweep()`. One open store keeps at most a few
 * per hot directory; a crash leaves them as ordinary stale temps.
 *
 * Apart from prepared staging directories nothing is cached between calls;
 * the filesystem is the only shared state.
 * Non-Linux systems without /proc/self/fd fall back to plain paths, where a
 * rename racing one link(2) call can misplace a write (documented limit).
 */
import { createHash, randomBytes } from 'node:crypto';
import fsSync, { constants as FS } from 'node:fs';
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FloeError, asError } from '../errors.js';
import { compareKeys, listLimit, validateBody, validateKey, validatePrefix, validateRange } from './keys.js';
import type { GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutResult } from './types.js';
import { MAX_LIST_LIMIT } from './types.js';

export interface LocalStoreOptions {
  /**
   * fsync files and directories before a write resolves (default true).
   * Turn off only in benchmarks or tests that say so explicitly.
   */
  readonly fsync?: boolean;
  /**
   * Grace period in ms (default 10 000, must be > 0): temps and staging
   * directories older than this are garbage, and a claim older than this is
   * broken. Every process sharing a directory must use the same value (a
   * writer trusts its claim for half of its own grace period). Small values
   * are for tests and for sweeping a store nobody else is writing.
   */
  readonly staleMs?: number;
  /** Wall clock in ms, compared with file times (default Date.now). */
  readonly clock?: () => number;
  /**
   * Create the root directory when it does not exist (default true). With
   * false, a missing root fails NOT_FOUND and nothing is created: what a
   * read-only open needs.
   */
  readonly create?: boolean;
  /**
   * Prepare staging directories for new objects in the background in
   * directories that keep receiving new objects (default false: opt-in
   * until a lost update seen once under heavy load in the 8-process CAS race
   * test is explained; see the module comment). Off: every create makes its
   * inodes inline. Never used
   * when `staleMs` is below 2 s (a prepared directory would age out at once).
   */
  readonly prepare?: boolean;
}

/** How this store's creates went (see "Prepared creates" in the module comment). */
export interface PrepareStats {
  /** Creates that used a prepared staging directory. */
  readonly preparedCreates: number;
  /** Creates that made their own staging directory. */
  readonly inlineCreates: number;
  /** Prepared staging directories held right now. */
  readonly held: number;
}

/** What `sweep()` removed. */
export interface SweepReport {
  /** Temp files and staging directories. */
  temps: number;
  /** Retired (deleted) object directories. */
  retired: number;
  /** Superseded generation files and their claims. */
  superseded: number;
  /** Stale claims broken. */
  claimsBroken: number;
  /** Empty interior directories. */
  emptyDirs: number;
}

// ---------------------------------------------------------------------------
// Names (pure)

const OBJ = '.floe-k-';
const OBJ_LONG = '.floe-l-';
const DIR_LONG = '.floe-d-';
const TMP = '.floe-t-';
const DEAD = '.floe-x-';
const NAME_RECORD = '.floe-name';
const RESERVED = '.floe';
/** Longest segment stored under its own name (255-byte NAME_MAX minus `.floe-k-`). */
export const MAX_PLAIN_SEGMENT_BYTES = 247;
const GEN_DIGITS = 12;
const GEN_RE = /^\.floe-([gc])(\d{12,16})-([0-9a-f]{16})$/;
const ETAG_RE = /^([1-9]\d{0,15})-([0-9a-f]{16})$/;

export interface Generation {
  readonly gen: number;
  readonly nonce: string;
}

export function genFileName(g: Generation): string {
  return `.floe-g${String(g.gen).padStart(GEN_DIGITS, '0')}-${g.nonce}`;
}

export function claimFileName(g: Generation): string {
  return `.floe-c${String(g.gen).padStart(GEN_DIGITS, '0')}-${g.nonce}`;
}

export function formatEtag(g: Generation): string {
  return `${g.gen}-${g.nonce}`;
}

/** The generation an etag names, or null when this store never issued it. */
export function parseEtag(etag: string): Generation | null {
  const m = ETAG_RE.exec(etag);
  if (!m) return null;
  const gen = Number(m[1]);
  return Number.isSafeInteger(gen) ? { gen, nonce: m[2]! } : null;
}

function hashSegment(seg: string): string {
  return createHash('sha256').update(seg, 'utf8').digest('base64url');
}

function isLong(seg: string): boolean {
  return Buffer.byteLength(seg, 'utf8') > MAX_PLAIN_SEGMENT_BYTES;
}

/** On-disk name of an interior directory for segment `seg`. */
export function interiorName(seg: string): string {
  return isLong(seg) ? DIR_LONG + hashSegment(seg) : seg;
}

/** On-disk name of the object directory for final segment `seg`. */
export function objectName(seg: string): string {
  return isLong(seg) ? OBJ_LONG + hashSegment(seg) : OBJ + seg;
}

export interface KeyLayout {
  /** Interior segments and their on-disk names. */
  readonly dirSegs: readonly string[];
  readonly dirNames: readonly string[];
  /** Final segment and its object directory name. */
  readonly leafSeg: string;
  readonly leafName: string;
}

/** Where a (validated) key lives, relative to the root. */
export function keyLayout(key: string): KeyLayout {
  const segs = key.split('/');
  const leafSeg = segs.pop()!;
  return { dirSegs: segs, dirNames: segs.map(interiorName), leafSeg, leafName: objectName(leafSeg) };
}

export interface ObjectDirState {
  /** Highest generation, or null when the directory holds none. */
  readonly current: (Generation & { readonly name: string }) | null;
  /** True when the current generation carries a claim (a successor is in flight). */
  readonly claimed: boolean;
  /** Generations and claims below the current one: removal order (ascending, file before claim). */
  readonly superseded: readonly string[];
  /** `.floe-t-*` entries. */
  readonly temps: readonly string[];
}

/** Reads an object directory's listing. Unknown names are ignored. */
export function scanObjectDir(names: readonly string[]): ObjectDirState {
  const parsed: { gen: number; nonce: string; claim: boolean; name: string }[] = [];
  const temps: string[] = [];
  let current: (Generation & { name: string }) | null = null;
  for (const name of names) {
    if (name.startsWith(TMP)) {
      temps.push(name);
      continue;
    }
    const m = GEN_RE.exec(name);
    if (!m) continue;
    const gen = Number(m[2]);
    if (!Number.isSafeInteger(gen)) continue;
    const claim = m[1] === 'c';
    parsed.push({ gen, nonce: m[3]!, claim, name });
    if (!claim && (current === null || gen > current.gen)) current = { gen, nonce: m[3]!, name };
  }
  if (current === null) return { current: null, claimed: false, superseded: [], temps };
  const top = current;
  const claimed = parsed.some((p) => p.claim && p.gen === top.gen && p.nonce === top.nonce);
  const superseded = parsed
    .filter((p) => p.gen < top.gen)
    .sort((a, b) => a.gen - b.gen || Number(a.claim) - Number(b.claim))
    .map((p) => p.name);
  return { current: top, claimed, superseded, temps };
}

export type EntryKind =
  | { readonly kind: 'object'; readonly seg: string }
  | { readonly kind: 'object-long' }
  | { readonly kind: 'dir'; readonly seg: string }
  | { readonly kind: 'dir-long' }
  | { readonly kind: 'temp' }
  | { readonly kind: 'retired' }
  | { readonly kind: 'other' };

/** Classifies one entry of an interior directory. */
export function classifyEntry(name: string, isDirectory: boolean): EntryKind {
  if (!isDirectory) return { kind: 'other' };
  if (name.startsWith(OBJ)) return { kind: 'object', seg: name.slice(OBJ.length) };
  if (name.startsWith(OBJ_LONG)) return { kind: 'object-long' };
  if (name.startsWith(DIR_LONG)) return { kind: 'dir-long' };
  if (name.startsWith(TMP)) return { kind: 'temp' };
  if (name.startsWith(DEAD)) return { kind: 'retired' };
  if (name.startsWith(RESERVED)) return { kind: 'other' };
  return { kind: 'dir', seg: name };
}

/**
 * How a subtree whose keys all start with `prefix` relates to `startAfter`:
 * every key in it is greater ('all'), none is ('none'), or some may be ('some').
 */
export function subtreeAfter(prefix: string, startAfter: string | undefined): 'all' | 'none' | 'some' {
  if (startAfter === undefined) return 'all';
  if (startAfter.startsWith(prefix)) return 'some';
  return compareKeys(prefix, startAfter) > 0 ? 'all' : 'none';
}

/** One listing step of a directory: a key, or a subtree whose keys start with `sortKey`. */
export interface ListItem {
  readonly sortKey: string;
  readonly leaf: boolean;
  readonly entry: string;
}

/**
 * Orders a directory's items so that a depth-first walk yields keys in UTF-8
 * byte order: a key sorts by its segment, a subtree by its segment plus '/'
 * (every key below it starts with that string and no other item's keys do).
 */
export function orderItems(items: ListItem[]): ListItem[] {
  return items.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
}

function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code: unknown = err.code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/**
 * Maps a Node filesystem error to a FloeError. Absence (ENOENT) is decided by
 * callers where it means "no such object"; anything reaching here is a
 * storage failure, except a name the filesystem cannot hold.
 */
export function mapFsError(err: unknown, what: string, file: string, key: string | undefined, backend: string): FloeError {
  if (err instanceof FloeError) return err;
  const code = errnoOf(err);
  if (code === 'ENAMETOOLONG') {
    return new FloeError('INVALID_ARGUMENT', `${what}: path too long for this filesystem: ${file}`, { cause: err, key, backend });
  }
  return new FloeError('STORAGE_UNAVAILABLE', `${what} failed at ${file} (${code ?? asError(err).message})`, {
    cause: err,
    key,
    backend,
  });
}

// ---------------------------------------------------------------------------
// Store

type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly code: string };

interface Located {
  readonly layout: KeyLayout;
  /** Absolute path of the interior directory holding the object directory. */
  readonly parent: string;
  /** Absolute path of the object directory. */
  readonly obj: string;
}

const READ_ATTEMPTS = 64;
const WRITE_ATTEMPTS = 10_000;
const DIR_ATTEMPTS = 32;
const DEFAULT_STALE_MS = 10_000;
/** Prepared creates (see the module comment): at most this many kept per directory ... */
const PREPARED_PER_DIR = 8;
/** ... in at most this many directories (least recently used dropped first). */
const PREPARED_DIRS = 32;
/** Smallest grace period with which creates are prepared. */
const PREPARE_MIN_STALE_MS = 2_000;
/** Bodies up to this size go into a prepared file synchronously (a page-cache copy of microseconds). */
const SYNC_WRITE_BYTES = 64 * 1024;

/** A staging directory made ahead of time for one create. */
interface Prepared {
  /** Absolute path of the `.floe-t-*` directory. */
  readonly staging: string;
  /** Generation 1 of the object it will become; its file is in `staging`, empty. */
  readonly gen: Generation;
  /** Write-only descriptor of that file. */
  readonly fd: number;
  /** Clock reading taken before the directory was made (its mtime is no earlier). */
  readonly madeAt: number;
}

/** Prepared creates of one interior directory. */
interface DirPool {
  readonly dir: string;
  /** Ready to use, oldest first. */
  readonly ready: Prepared[];
  /** Creates waiting for a preparation in flight. */
  readonly waiters: Array<(p: Prepared | null) => void>;
  /** Preparations in flight. */
  making: number;
  /** Creates in flight in this directory. */
  active: number;
  /** How many to keep available beyond the waiters: one more than the most creates seen in flight at once. */
  want: number;
  /** Clock reading at the previous create here. */
  lastCreate: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const randomHex = (): string => randomBytes(8).toString('hex');
const toBytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function backoff(attempt: number): Promise<void> {
  return sleep(Math.min(10, 1 + attempt) * Math.random());
}

export class LocalStore implements ObjectStore {
  readonly kind = 'local';
  readonly location: string;
  /** Absolute, symlink-free path of the store root. */
  readonly root: string;
  readonly #fsync: boolean;
  readonly #staleMs: number;
  readonly #clock: () => number;
  readonly #fdPaths: boolean;
  readonly #prepare: boolean;
  /** Prepared creates by interior directory, least recently used first. */
  readonly #pools = new Map<string, DirPool>();
  /** Background preparations and removals, awaited by close() and sweep(). */
  readonly #background = new Set<Promise<void>>();
  /** A non-filesystem failure in background work (a bug), reported by close(). */
  #backgroundFailure: unknown = null;
  #expiry: NodeJS.Timeout | null = null;
  #preparedCreates = 0;
  #inlineCreates = 0;
  #closed = false;

  private constructor(root: string, fsync: boolean, staleMs: number, clock: () => number, fdPaths: boolean, prepare: boolean) {
    this.root = root;
    this.location = pathToFileURL(root).href;
    this.#fsync = fsync;
    this.#staleMs = staleMs;
    this.#clock = clock;
    this.#fdPaths = fdPaths;
    this.#prepare = prepare && staleMs >= PREPARE_MIN_STALE_MS;
  }

  /** Opens (creating if needed) the store rooted at directory `root`. */
  static async open(root: string, options: LocalStoreOptions = {}): Promise<LocalStore> {
    if (typeof root !== 'string' || root.length === 0 || root.includes('\0')) {
      throw new FloeError('INVALID_ARGUMENT', `local store root must be a non-empty path, got ${JSON.stringify(root)}`, {
        backend: 'local',
      });
    }
    const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
    if (!Number.isFinite(staleMs) || staleMs <= 0) {
      throw new FloeError('INVALID_ARGUMENT', `staleMs must be a finite number > 0, got ${staleMs}`, { backend: 'local' });
    }
    const fsync = options.fsync ?? true;
    const abs = path.resolve(root);
    const where = pathToFileURL(abs).href;
    let real: string;
    try {
      if (options.create === false) {
        const exists = await fs.stat(abs).then(
          () => true,
          (err: NodeJS.ErrnoException) => {
            if (err.code === 'ENOENT') return false;
            throw err;
          },
        );
        if (!exists) throw new FloeError('NOT_FOUND', `store root does not exist: ${abs}`, { backend: where });
      }
      const first = options.create === false ? undefined : await fs.mkdir(abs, { recursive: true });
      if (first !== undefined && fsync) {
        // Make each directory we created durable in its parent.
        for (let d = abs; ; d = path.dirname(d)) {
          await syncDirAt(path.dirname(d));
          if (d === first || path.dirname(d) === d) break;
        }
      }
      real = await fs.realpath(abs);
      const st = await fs.stat(real);
      if (!st.isDirectory()) throw new FloeError('STORAGE_UNAVAILABLE', `store root is not a directory: ${real}`, { backend: where });
    } catch (err) {
      throw mapFsError(err, 'open local store', abs, undefined, where);
    }
    let fdPaths = false;
    try {
      fdPaths = (await fs.stat('/proc/self/fd')).isDirectory();
    } catch (err) {
      // No /proc (non-Linux): fall back to plain paths, see the module comment.
      if (errnoOf(err) !== 'ENOENT') throw mapFsError(err, 'probe /proc/self/fd', '/proc/self/fd', undefined, where);
    }
    return new LocalStore(real, fsync, staleMs, options.clock ?? Date.now, fdPaths, options.prepare ?? false);
  }

  // -- reads ----------------------------------------------------------------

  async get(key: string): Promise<GetResult> {
    validateKey(key, this.kind);
    this.#checkOpen();
    const r = await this.#readCurrent(key, 'get', (file) => fs.readFile(file));
    if (!r) throw this.#notFound(key);
    return { bytes: toBytes(r.value), etag: r.etag };
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateKey(key, this.kind);
    validateRange(offset, length, key, this.kind);
    this.#checkOpen();
    const r = await this.#readCurrent(key, 'getRange', async (file) => {
      const fh = await fs.open(file, 'r');
      try {
        const { size } = await fh.stat();
        const n = Math.max(0, Math.min(length, size - offset));
        const buf = Buffer.allocUnsafe(n);
        let done = 0;
        while (done < n) {
          const { bytesRead } = await fh.read(buf, done, n - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return buf.subarray(0, done);
      } finally {
        await fh.close();
      }
    });
    if (!r) throw this.#notFound(key);
    return toBytes(r.value);
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key, this.kind);
    this.#checkOpen();
    const r = await this.#readCurrent(key, 'head', (file) => fs.stat(file));
    return r ? { size: r.value.size, etag: r.etag } : null;
  }

  /**
   * Path of the file holding the key's current bytes, so other engines
   * (DuckDB, Spark) can read immutable objects such as data files in place.
   * The path stays valid until the key is rewritten or deleted.
   */
  async localPath(key: string): Promise<string | null> {
    validateKey(key, this.kind);
    this.#checkOpen();
    const r = await this.#readCurrent(key, 'localPath', async (file) => {
      await fs.access(file);
      return file;
    });
    return r ? r.value : null;
  }

  /** Reads the current generation with `read`; null when the key is absent. */
  async #readCurrent<T>(key: string, op: string, read: (file: string) => Promise<T>): Promise<{ value: T; etag: string } | null> {
    const loc = this.#locate(key);
    let empty = 0;
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const names = await this.#try(`${op}: list object directory`, loc.obj, key, () => fs.readdir(loc.obj), ['ENOENT']);
      if (!names.ok) return null;
      const cur = scanObjectDir(names.value).current;
      if (!cur) {
        // Normally a delete emptying the incarnation we had just opened: look
        // again. Still empty at the path each time: really corrupt.
        if (++empty >= 3) throw this.#corrupt(key, loc.obj);
        continue;
      }
      const file = path.join(loc.obj, cur.name);
      const r = await this.#try(`${op}: read`, file, key, () => read(file), ['ENOENT']);
      if (r.ok) return { value: r.value, etag: formatEtag(cur) };
      // ENOENT: superseded and removed, or the key was deleted: look again.
    }
    throw new FloeError('STORAGE_UNAVAILABLE', `${op}: object kept changing under ${READ_ATTEMPTS} reads`, {
      key,
      backend: this.location,
    });
  }

  // -- writes ---------------------------------------------------------------

  async put(key: string, bytes: Uint8Array): Promise<PutResult> {
    validateKey(key, this.kind);
    validateBody(bytes, key, this.kind);
    this.#checkOpen();
    const loc = this.#locate(key);
    for (let attempt = 0; attempt < DIR_ATTEMPTS; attempt++) {
      const updated = await this.#update(key, loc, bytes, null);
      if (updated !== 'absent') return updated;
      const created = await this.#create(key, loc, bytes);
      if (created !== 'exists') return created;
    }
    throw new FloeError('STORAGE_UNAVAILABLE', 'put: the key was created and deleted concurrently too often', {
      key,
      backend: this.location,
    });
  }

  async putIfAbsent(key: string, bytes: Uint8Array): Promise<PutResult> {
    validateKey(key, this.kind);
    validateBody(bytes, key, this.kind);
    this.#checkOpen();
    const created = await this.#create(key, this.#locate(key), bytes);
    if (created === 'exists') {
      throw new FloeError('ALREADY_EXISTS', 'object already exists', { key, backend: this.location });
    }
    return created;
  }

  async putIfMatch(key: string, bytes: Uint8Array, etag: string): Promise<PutResult> {
    validateKey(key, this.kind);
    validateBody(bytes, key, this.kind);
    if (typeof etag !== 'string') {
      throw new FloeError('INVALID_ARGUMENT', 'etag must be a string', { key, backend: this.kind });
    }
    this.#checkOpen();
    const expected = parseEtag(etag);
    if (!expected) throw this.#conflict(key, `etag ${JSON.stringify(etag)} was not issued by this store`);
    const r = await this.#update(key, this.#locate(key), bytes, expected);
    if (r === 'absent') throw this.#conflict(key, 'object no longer exists');
    return r;
  }

  async delete(key: string): Promise<void> {
    validateKey(key, this.kind);
    this.#checkOpen();
    const loc = this.#locate(key);
    const retired = path.join(loc.parent, DEAD + randomHex());
    const mv = await this.#try('delete: retire object directory', loc.obj, key, () => fs.rename(loc.obj, retired), ['ENOENT']);
    if (!mv.ok) return; // already absent
    await this.#syncDir(loc.parent, key, 'after retiring (the key is gone, durability unknown)');
    await removeRetired(retired);
    await this.#pruneEmptyParents(loc);
  }

  /**
   * Creates the key's first incarnation. 'exists' when an object directory is
   * already at the path (rename(2) never replaces a non-empty directory).
   */
  async #create(key: string, loc: Located, bytes: Uint8Array): Promise<PutResult | 'exists'> {
    const pool = this.#poolFor(loc);
    if (pool) {
      pool.active++;
      try {
        const prepared = await this.#takePrepared(pool);
        if (prepared) {
          try {
            const r = await this.#createPrepared(key, loc, bytes, prepared);
            if (r !== 'retry') {
              this.#preparedCreates++;
              return r;
            }
          } finally {
            // Replace it only now: making a directory takes the parent's
            // lock, which this create's rename and fsync needed meanwhile.
            this.#refill(pool);
          }
        }
      } finally {
        pool.active--;
      }
    }
    this.#inlineCreates++;
    for (let attempt = 0; attempt < DIR_ATTEMPTS; attempt++) {
      const staging = path.join(loc.parent, TMP + randomHex());
      const made = await this.#try('create staging directory', staging, key, () => fs.mkdir(staging), ['ENOENT']);
      if (!made.ok) {
        await this.#ensureParents(key, loc);
        continue;
      }
      let published = false;
      try {
        const first: Generation = { gen: 1, nonce: randomHex() };
        if (loc.layout.leafName.startsWith(OBJ_LONG)) {
          // false: the staging directory was collected as stale meanwhile.
          if (!(await this.#writeNewFile(path.join(staging, genFileName(first)), bytes, key))) continue;
          if (!(await this.#writeNewFile(path.join(staging, NAME_RECORD), Buffer.from(loc.layout.leafSeg, 'utf8'), key))) continue;
          await this.#syncDir(staging, key);
        } else {
          // The file's bytes and its entry in the staging directory must both
          // be durable before the rename; the two fsyncs are independent, so
          // they run at once (one journal commit can serve both). This is the
          // log's hot path: one create per group commit.
          if (!(await this.#writeNewFile(path.join(staging, genFileName(first)), bytes, key, undefined, () => this.#syncDir(staging, key)))) continue;
        }
        const mv = await this.#try('publish object directory', loc.obj, key, () => fs.rename(staging, loc.obj), [
          'ENOTEMPTY',
          'EEXIST',
          'ENOENT',
        ]);
        if (!mv.ok) {
          if (mv.code === 'ENOENT') continue; // staging directory collected as stale meanwhile
          return 'exists';
        }
        published = true;
        await this.#syncDir(loc.parent, key, 'after publishing (the object is visible, its durability unknown)');
        return { etag: formatEtag(first) };
      } finally {
        if (!published) await removeTreeQuietly(staging);
      }
    }
    throw new FloeError('STORAGE_UNAVAILABLE', `could not create the object under ${loc.parent}: it kept vanishing`, {
      key,
      backend: this.location,
    });
  }

  /**
   * Creates the key from a prepared staging directory: write the bytes into
   * its generation file, fsync it, rename the directory onto the object path,
   * fsync the parent. 'retry' when the directory could not be used (it aged
   * past half the grace period, or vanished): the caller then creates the
   * ordinary way. The directory is removed unless it was published.
   */
  async #createPrepared(key: string, loc: Located, bytes: Uint8Array, p: Prepared): Promise<PutResult | 'exists' | 'retry'> {
    const file = path.join(p.staging, genFileName(p.gen));
    let open = true;
    let published = false;
    try {
      try {
        await writeAllAt(p.fd, bytes);
        if (this.#fsync) {
          // The bytes, and the staging directory's entry for the file (what
          // I1 needs of it): independent, so at once, both before the rename.
          // Settled both before the descriptor can be closed.
          const [bytesSynced, entrySynced] = await Promise.allSettled([fsyncFd(p.fd), syncDirAt(p.staging)]);
          if (bytesSynced.status === 'rejected') throw bytesSynced.reason;
          if (entrySynced.status === 'rejected') throw entrySynced.reason;
        }
        open = false;
        fsSync.closeSync(p.fd);
      } catch (err) {
        // ENOENT can only come from opening the staging directory: it was
        // collected meanwhile (sweep() or a writer elsewhere judged it stale).
        if (errnoOf(err) === 'ENOENT') return 'retry';
        throw mapFsError(err, 'write new object file', file, key, this.location);
      }
      // The age check and the rename form one synchronous step: a collector
      // sharing the grace period removes the directory only once it is older
      // than the whole period, so it cannot be emptying it under the rename
      // (which would publish an object directory without a generation).
      if (this.#clock() - p.madeAt > this.#staleMs / 2) return 'retry';
      try {
        fsSync.renameSync(p.staging, loc.obj);
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'ENOENT') return 'retry'; // collected meanwhile, or the parent was pruned
        if (code === 'ENOTEMPTY' || code === 'EEXIST') return 'exists';
        throw mapFsError(err, 'publish object directory', loc.obj, key, this.location);
      }
      published = true;
      await this.#syncDir(loc.parent, key, 'after publishing (the object is visible, its durability unknown)');
      return { etag: formatEtag(p.gen) };
    } finally {
      if (open) closeFdQuietly(p.fd);
      if (!published) await removeTreeQuietly(p.staging);
    }
  }

  // -- prepared creates -------------------------------------------------------

  /** The pool of prepared creates for the key's directory, or null when creates there are not prepared. */
  #poolFor(loc: Located): DirPool | null {
    if (!this.#prepare || this.#closed || loc.layout.leafName.startsWith(OBJ_LONG)) return null;
    let pool = this.#pools.get(loc.parent);
    if (pool) {
      this.#pools.delete(loc.parent); // re-inserted below: most recently used last
    } else {
      pool = { dir: loc.parent, ready: [], waiters: [], making: 0, active: 0, want: 1, lastCreate: Number.NEGATIVE_INFINITY };
      for (const [dir, cold] of this.#pools) {
        if (this.#pools.size < PREPARED_DIRS) break;
        this.#pools.delete(dir);
        this.#discardReady(cold);
      }
    }
    this.#pools.set(loc.parent, pool);
    return pool;
  }

  /**
   * A prepared directory for one create, or null (then the create makes its
   * own). A directory is hot when its previous create was less than a
   * quarter of the grace period ago; only hot ones are prepared for, so a
   * directory that gets one object now and then costs nothing extra. When
   * none is ready but one is being made, waiting for it is never slower than
   * making another from scratch.
   */
  async #takePrepared(pool: DirPool): Promise<Prepared | null> {
    const now = this.#clock();
    const hot = now - pool.lastCreate <= this.#staleMs / 4;
    pool.lastCreate = now;
    let got: Prepared | null = null;
    while (got === null && pool.ready.length > 0) {
      const p = pool.ready.shift()!;
      if (this.#fresh(p, now)) got = p;
      else this.#discard(p);
    }
    if (!hot) return got;
    pool.want = Math.min(PREPARED_PER_DIR, Math.max(pool.want, pool.active + 1));
    if (got !== null) return got; // replaced after the create (see #create)
    this.#refill(pool);
    if (pool.making <= pool.waiters.length) return null;
    return new Promise<Prepared | null>((resolve) => pool.waiters.push(resolve));
  }

  #fresh(p: Prepared, now: number): boolean {
    return now - p.madeAt <= this.#staleMs / 4;
  }

  /** Start preparations until `want` are ready or coming beyond the waiters. */
  #refill(pool: DirPool): void {
    let n = pool.want + pool.waiters.length - pool.ready.length - pool.making;
    for (; n > 0 && !this.#closed; n--) this.#track(this.#prepareOne(pool));
  }

  async #prepareOne(pool: DirPool): Promise<void> {
    pool.making++;
    const madeAt = this.#clock();
    const gen: Generation = { gen: 1, nonce: randomHex() };
    const staging = path.join(pool.dir, TMP + randomHex());
    let made = false;
    let fd: number | null = null;
    let p: Prepared | null = null;
    try {
      await fs.mkdir(staging);
      made = true;
      fd = await openFd(path.join(staging, genFileName(gen)), FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o644);
      // Nothing is fsynced here: preparing is metadata only (CPU), so it
      // never queues a flush ahead of a create's. The create fsyncs the
      // staging directory alongside the file (see #createPrepared).
      p = { staging, gen, fd, madeAt };
    } catch (err) {
      // A preparation only saves time. When it fails (the directory was
      // pruned, the disk is full or failing), the create that wanted it
      // makes its own staging directory and reports what goes wrong there.
      // A failure that is not the filesystem's (a bug) is kept for close().
      if (errnoOf(err) === undefined) this.#backgroundFailure ??= err;
    } finally {
      pool.making--;
    }
    if (p !== null && (this.#closed || this.#pools.get(pool.dir) !== pool)) {
      this.#discard(p);
      p = null;
    } else if (p === null) {
      if (fd !== null) closeFdQuietly(fd);
      if (made) await removeTreeQuietly(staging);
    }
    const waiter = pool.waiters.shift();
    if (waiter) waiter(p);
    else if (p !== null) {
      pool.ready.push(p);
      this.#armExpiry();
    }
  }

  /** Close the prepared file and remove its directory in the background. */
  #discard(p: Prepared): void {
    closeFdQuietly(p.fd);
    this.#track(removeTreeQuietly(p.staging));
  }

  #discardReady(pool: DirPool): void {
    for (const p of pool.ready.splice(0)) this.#discard(p);
  }

  #track(work: Promise<void>): void {
    const tracked: Promise<void> = work
      .catch((err: unknown) => {
        this.#backgroundFailure ??= err;
      })
      .finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }

  /** While prepared directories exist, look every eighth of the grace period for aged ones. */
  #armExpiry(): void {
    if (this.#expiry || this.#closed) return;
    this.#expiry = setTimeout(() => {
      this.#expiry = null;
      const now = this.#clock();
      let left = false;
      for (const pool of this.#pools.values()) {
        while (pool.ready.length > 0 && !this.#fresh(pool.ready[0]!, now)) this.#discard(pool.ready.shift()!);
        if (pool.ready.length > 0) left = true;
      }
      if (left) this.#armExpiry();
    }, Math.ceil(this.#staleMs / 8));
    this.#expiry.unref();
  }

  /** Remove every prepared directory (and wait for preparations in flight, which then remove theirs). */
  async #dropPrepared(): Promise<void> {
    for (;;) {
      for (const pool of this.#pools.values()) this.#discardReady(pool);
      if (this.#background.size === 0) return;
      await Promise.all(this.#background);
    }
  }

  /**
   * Writes the successor of the current generation (see the module comment).
   * `expected` set: compare-and-swap. 'absent' when no object directory exists.
   */
  async #update(key: string, loc: Located, bytes: Uint8Array, expected: Generation | null): Promise<PutResult | 'absent'> {
    const opened = await this.#try('open object directory', loc.obj, key, () => fs.open(loc.obj, FS.O_RDONLY | FS.O_DIRECTORY), [
      'ENOENT',
    ]);
    if (!opened.ok) return 'absent';
    const dir = opened.value;
    const base = this.#fdPaths ? `/proc/self/fd/${dir.fd}` : loc.obj;
    const at = (name: string): string => path.join(base, name);
    const shown = (name: string): string => path.join(loc.obj, name);
    let temp: string | null = null;
    let failure: unknown = null;
    try {
      for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        const names = await this.#try('list object directory', loc.obj, key, () => fs.readdir(base), ['ENOENT']);
        const st = scanObjectDir(names.ok ? names.value : []);
        const cur = st.current;
        if (!cur) {
          // A delete retired (and emptied) our incarnation: the key is absent.
          if (!(await this.#stillAtPath(dir, loc.obj, key))) return 'absent';
          throw this.#corrupt(key, loc.obj);
        }
        if (expected && (cur.gen !== expected.gen || cur.nonce !== expected.nonce)) {
          throw this.#conflict(key, 'etag does not match the current object');
        }
        if (st.temps.length > 0) await this.#collectTemps(base, st.temps.filter((t) => t !== temp));
        if (st.claimed) {
          // A successor of `cur` is being written, or its writer died.
          const claim = await this.#try('stat claim', shown(claimFileName(cur)), key, () => fs.stat(at(claimFileName(cur))), [
            'ENOENT',
          ]);
          if (claim.ok && this.#clock() - claim.value.ctimeMs > this.#staleMs) {
            // Stale: publish cur's own file as its successor, releasing the key.
            const next: Generation = { gen: cur.gen + 1, nonce: cur.nonce };
            await this.#try('break stale claim', shown(genFileName(next)), key, () => fs.link(at(cur.name), at(genFileName(next))), [
              'EEXIST',
              'ENOENT',
            ]);
            continue;
          }
          if (expected) throw this.#conflict(key, 'another write of this object is in flight');
          if (claim.ok) await backoff(attempt);
          continue;
        }
        if (temp === null) {
          const name = TMP + randomHex();
          if (!(await this.#writeNewFile(at(name), bytes, key, shown(name)))) return 'absent'; // retired and removed
          temp = name;
        }
        // Measured from before the claim syscall: its ctime, which breakers
        // compare against the grace period, is no earlier than this.
        const claimStart = performance.now();
        const claimed = await this.#try('claim', shown(claimFileName(cur)), key, () => fs.link(at(cur.name), at(claimFileName(cur))), [
          'EEXIST',
          'ENOENT',
        ]);
        if (!claimed.ok) {
          if (expected) throw this.#conflict(key, 'the object was replaced concurrently');
          await backoff(attempt);
          continue;
        }
        const next: Generation = { gen: cur.gen + 1, nonce: cur.nonce };
        let published: Outcome<void> | null = null;
        while (performance.now() - claimStart <= this.#staleMs / 2) {
          const tempNow: string = temp;
          published = await this.#try('publish', shown(genFileName(next)), key, () => fs.link(at(tempNow), at(genFileName(next))), [
            'EEXIST',
            'ENOENT',
          ]);
          if (published.ok || published.code === 'EEXIST') break;
          // ENOENT: our temp sat so long before the claim that it was
          // collected as stale. The claim is fresh: write the bytes again.
          temp = null;
          const name = TMP + randomHex();
          if (!(await this.#writeNewFile(at(name), bytes, key, shown(name)))) return 'absent'; // retired and removed
          temp = name;
          published = null;
        }
        if (published === null || !published.ok) {
          // null: paused past half the grace period holding the claim, so a
          // breaker may act on it; leave the claim to be broken.
          // EEXIST: our claim was already broken as stale.
          if (expected) throw this.#conflict(key, 'write paused past the grace period; its claim was abandoned');
          continue;
        }
        const tempName: string = temp;
        temp = null;
        await unlinkQuietly(at(tempName));
        if (this.#fsync) {
          await this.#do('fsync object directory after publishing (the write is visible, its durability unknown)', loc.obj, key, () => dir.sync());
        }
        await removeInOrder(at, [...st.superseded, cur.name, claimFileName(cur)]);
        return { etag: formatEtag(next) };
      }
      throw new FloeError('STORAGE_UNAVAILABLE', `write gave up after ${WRITE_ATTEMPTS} contended attempts`, {
        key,
        backend: this.location,
      });
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      if (temp !== null) await unlinkQuietly(at(temp));
      try {
        await dir.close();
      } catch (err) {
        // A close failure of a read-only directory handle loses nothing, but
        // must not hide the operation's own outcome: report it only alone.
        if (failure === null) throw mapFsError(err, 'close object directory', loc.obj, key, this.location);
      }
    }
  }

  /** Removes `.floe-t-*` entries older than the grace period. */
  async #collectTemps(base: string, temps: readonly string[]): Promise<number> {
    let removed = 0;
    for (const t of temps) {
      const file = path.join(base, t);
      try {
        const st = await fs.stat(file);
        if (this.#clock() - st.mtimeMs <= this.#staleMs) continue;
        if (st.isDirectory()) await fs.rm(file, { recursive: true, force: true });
        else await fs.unlink(file);
        removed++;
      } catch (err) {
        // Garbage collection is best effort: the entry may vanish under us
        // (another collector) and any other failure leaves only garbage.
        if (errnoOf(err) === undefined) throw err;
      }
    }
    return removed;
  }

  // -- list -----------------------------------------------------------------

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    validatePrefix(prefix, this.kind);
    const limit = listLimit(options.limit, MAX_LIST_LIMIT, this.kind);
    const after = options.startAfter;
    if (after !== undefined && typeof after !== 'string') {
      throw new FloeError('INVALID_ARGUMENT', 'startAfter must be a string', { backend: this.kind });
    }
    this.#checkOpen();
    const cut = prefix.lastIndexOf('/');
    const dirPart = prefix.slice(0, cut + 1);
    const namePart = prefix.slice(cut + 1);
    const segs = dirPart === '' ? [] : dirPart.slice(0, -1).split('/');
    // Such a directory cannot hold keys (keys.ts forbids these segments).
    if (segs.some((s) => s === '.' || s.startsWith(RESERVED))) return { keys: [], more: false };
    const dir = path.join(this.root, ...segs.map(interiorName));
    this.#guard(dir, prefix);
    const out: string[] = [];
    await this.#walk(dir, dirPart, namePart, after, out, limit + 1);
    return { keys: out.slice(0, limit), more: out.length > limit };
  }

  /** Depth-first walk in key order; returns true once `want` keys are collected. */
  async #walk(dir: string, keyPrefix: string, namePart: string, after: string | undefined, out: string[], want: number): Promise<boolean> {
    const entries = await this.#try('list: read directory', dir, undefined, () => fs.readdir(dir, { withFileTypes: true }), ['ENOENT']);
    if (!entries.ok) return false;
    const items: ListItem[] = [];
    for (const e of entries.value) {
      const seg = await this.#segmentOf(dir, e);
      if (seg === null || !seg.name.startsWith(namePart)) continue;
      items.push({ sortKey: seg.leaf ? seg.name : seg.name + '/', leaf: seg.leaf, entry: e.name });
    }
    for (const item of orderItems(items)) {
      const full = keyPrefix + item.sortKey;
      if (item.leaf) {
        if (after !== undefined && compareKeys(full, after) <= 0) continue;
        out.push(full);
        if (out.length >= want) return true;
        continue;
      }
      const rel = subtreeAfter(full, after);
      if (rel === 'none') continue;
      const sub = path.join(dir, item.entry);
      if (await this.#walk(sub, full, '', rel === 'all' ? undefined : after, out, want)) return true;
    }
    return false;
  }

  /** The key segment an interior-directory entry stands for, if any. */
  async #segmentOf(dir: string, e: Dirent): Promise<{ name: string; leaf: boolean } | null> {
    const c = classifyEntry(e.name, e.isDirectory());
    switch (c.kind) {
      case 'object':
        return { name: c.seg, leaf: true };
      case 'dir':
        return { name: c.seg, leaf: false };
      case 'object-long':
      case 'dir-long': {
        const file = path.join(dir, e.name, NAME_RECORD);
        const r = await this.#try('list: read segment record', file, undefined, () => fs.readFile(file, 'utf8'), ['ENOENT']);
        if (!r.ok) return null; // deleted meanwhile
        return { name: r.value, leaf: c.kind === 'object-long' };
      }
      default:
        return null;
    }
  }

  // -- maintenance ----------------------------------------------------------

  prepareStats(): PrepareStats {
    let held = 0;
    for (const pool of this.#pools.values()) held += pool.ready.length;
    return { preparedCreates: this.#preparedCreates, inlineCreates: this.#inlineCreates, held };
  }

  /**
   * Collects what crashed or interrupted writers left anywhere under the
   * root: stale temps and staging directories, retired object directories,
   * superseded generations, stale claims, empty interior directories. Safe to
   * run at any time, from any process, concurrently with other operations.
   */
  async sweep(): Promise<SweepReport> {
    this.#checkOpen();
    // Our own prepared directories are not garbage: give them up first, so
    // the walk below judges only what others left, and a clock that jumped
    // (tests do that) cannot make it collect one a create is about to use.
    await this.#dropPrepared();
    const report: SweepReport = { temps: 0, retired: 0, superseded: 0, claimsBroken: 0, emptyDirs: 0 };
    await this.#sweepDir(this.root, report, true);
    return report;
  }

  async #sweepDir(dir: string, report: SweepReport, keep: boolean): Promise<void> {
    const entries = await this.#try('sweep: read directory', dir, undefined, () => fs.readdir(dir, { withFileTypes: true }), ['ENOENT']);
    if (!entries.ok) return;
    for (const e of entries.value) {
      const full = path.join(dir, e.name);
      const c = classifyEntry(e.name, e.isDirectory());
      switch (c.kind) {
        case 'retired':
          await removeRetired(full);
          report.retired++;
          break;
        case 'temp':
          report.temps += await this.#collectTemps(dir, [e.name]);
          break;
        case 'object':
        case 'object-long':
          await this.#sweepObject(full, report);
          break;
        case 'dir':
          await this.#sweepDir(full, report, false);
          break;
        case 'dir-long':
          // Never removed: its segment record must outlive every entry in it.
          await this.#sweepDir(full, report, true);
          break;
        default:
          break;
      }
    }
    if (!keep) {
      try {
        await fs.rmdir(dir);
        report.emptyDirs++;
      } catch (err) {
        // Not empty (the usual case) or gone: nothing to collect.
        if (errnoOf(err) === undefined) throw err;
      }
    }
  }

  async #sweepObject(obj: string, report: SweepReport): Promise<void> {
    const names = await this.#try('sweep: list object directory', obj, undefined, () => fs.readdir(obj), ['ENOENT']);
    if (!names.ok) return;
    const st = scanObjectDir(names.value);
    report.temps += await this.#collectTemps(obj, st.temps);
    report.superseded += await removeInOrder((n) => path.join(obj, n), st.superseded);
    const cur = st.current;
    if (cur && st.claimed) {
      const claimFile = path.join(obj, claimFileName(cur));
      const claim = await this.#try('sweep: stat claim', claimFile, undefined, () => fs.stat(claimFile), ['ENOENT']);
      if (claim.ok && this.#clock() - claim.value.ctimeMs > this.#staleMs) {
        const next = genFileName({ gen: cur.gen + 1, nonce: cur.nonce });
        const r = await this.#try('sweep: break stale claim', path.join(obj, next), undefined, () => fs.link(path.join(obj, cur.name), path.join(obj, next)), [
          'EEXIST',
          'ENOENT',
        ]);
        if (r.ok) {
          report.claimsBroken++;
          report.superseded += await removeInOrder((n) => path.join(obj, n), [cur.name, claimFileName(cur)]);
        }
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#expiry) {
      clearTimeout(this.#expiry);
      this.#expiry = null;
    }
    await this.#dropPrepared();
    this.#pools.clear();
    const failure = this.#backgroundFailure;
    if (failure !== null) {
      this.#backgroundFailure = null;
      throw new FloeError('INVARIANT_VIOLATION', 'background preparation of new objects failed unexpectedly', { cause: failure, backend: this.location });
    }
  }

  // -- helpers --------------------------------------------------------------

  #checkOpen(): void {
    if (this.#closed) throw new FloeError('CLOSED', 'store is closed', { backend: this.location });
  }

  #locate(key: string): Located {
    const layout = keyLayout(key);
    const parent = path.join(this.root, ...layout.dirNames);
    const obj = path.join(parent, layout.leafName);
    this.#guard(obj, key);
    return { layout, parent, obj };
  }

  /** Defence in depth: keys.ts already makes escaping the root impossible. */
  #guard(p: string, key: string): void {
    if (p !== this.root && !p.startsWith(this.root + path.sep)) {
      throw new FloeError('INVALID_ARGUMENT', `key resolves outside the store root: ${p}`, { key, backend: this.kind });
    }
  }

  #notFound(key: string): FloeError {
    return new FloeError('NOT_FOUND', 'no such object', { key, backend: this.location });
  }

  #conflict(key: string, why: string): FloeError {
    return new FloeError('CAS_CONFLICT', why, { key, backend: this.location });
  }

  #corrupt(key: string, obj: string): FloeError {
    return new FloeError('CORRUPT', `object directory ${obj} holds no generation file; delete the key to repair`, {
      key,
      backend: this.location,
    });
  }

  async #try<T>(what: string, file: string, key: string | undefined, run: () => Promise<T>, expected: readonly string[]): Promise<Outcome<T>> {
    try {
      return { ok: true, value: await run() };
    } catch (err) {
      const code = errnoOf(err);
      if (code !== undefined && expected.includes(code)) return { ok: false, code };
      throw mapFsError(err, what, file, key, this.location);
    }
  }

  async #do<T>(what: string, file: string, key: string | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw mapFsError(err, what, file, key, this.location);
    }
  }

  /** True when the directory behind `dir` is still the one at path `obj`. */
  async #stillAtPath(dir: FileHandle, obj: string, key: string): Promise<boolean> {
    const [mine, there] = await Promise.all([
      this.#do('stat object directory', obj, key, () => dir.stat()),
      this.#try('stat object directory', obj, key, () => fs.stat(obj), ['ENOENT', 'ENOTDIR']),
    ]);
    return there.ok && there.value.ino === mine.ino && there.value.dev === mine.dev;
  }

  /**
   * Creates `file` (must not exist), writes `bytes`, fsyncs, closes. False
   * when its directory no longer exists (a retired incarnation was removed).
   */
  /**
   * Create `file` (O_EXCL) with `bytes`, fsynced. `alongside`, when given, is
   * awaited together with the file's fsync (e.g. the fsync of its directory).
   * False when the directory vanished (ENOENT).
   */
  async #writeNewFile(
    file: string,
    bytes: Uint8Array,
    key: string,
    shown: string = file,
    alongside?: (file: string) => Promise<void>,
  ): Promise<boolean> {
    let fh: FileHandle;
    try {
      fh = await fs.open(file, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o644);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return false;
      throw mapFsError(err, 'create temp file', shown, key, this.location);
    }
    try {
      if (bytes.length > 0) await fh.writeFile(bytes);
      if (this.#fsync) {
        if (alongside) await Promise.all([fh.sync(), alongside(file)]);
        else await fh.sync();
      } else if (alongside) await alongside(file);
    } catch (err) {
      await closeAfterFailure(fh);
      await unlinkQuietly(file);
      throw mapFsError(err, 'write temp file', shown, key, this.location);
    }
    try {
      await fh.close();
    } catch (err) {
      await unlinkQuietly(file);
      throw mapFsError(err, 'close temp file', shown, key, this.location);
    }
    return true;
  }

  async #syncDir(dir: string, key: string | undefined, when = ''): Promise<void> {
    if (!this.#fsync) return;
    try {
      await syncDirAt(dir);
    } catch (err) {
      throw mapFsError(err, when ? `fsync directory ${when}` : 'fsync directory', dir, key, this.location);
    }
  }

  /** Creates the key's missing interior directories, each made durable in its parent. */
  async #ensureParents(key: string, loc: Located): Promise<void> {
    let dir = this.root;
    const { dirNames, dirSegs } = loc.layout;
    for (let i = 0; i < dirNames.length; i++) {
      const name = dirNames[i]!;
      const next = path.join(dir, name);
      if (name.startsWith(DIR_LONG)) {
        await this.#ensureLongDir(key, dir, next, dirSegs[i]!);
      } else {
        const r = await this.#try('create directory', next, key, () => fs.mkdir(next), ['EEXIST', 'ENOENT']);
        if (!r.ok && r.code === 'ENOENT') return; // a parent was pruned meanwhile; the caller retries
        if (r.ok) await this.#syncDir(dir, key);
      }
      dir = next;
    }
  }

  /** A long-segment interior directory appears only with its segment record inside. */
  async #ensureLongDir(key: string, parent: string, target: string, seg: string): Promise<void> {
    const exists = await this.#try('stat directory', target, key, () => fs.stat(target), ['ENOENT']);
    if (exists.ok) return;
    const staging = path.join(parent, TMP + randomHex());
    const made = await this.#try('create staging directory', staging, key, () => fs.mkdir(staging), ['ENOENT']);
    if (!made.ok) return; // parent pruned meanwhile; the caller retries
    try {
      if (!(await this.#writeNewFile(path.join(staging, NAME_RECORD), Buffer.from(seg, 'utf8'), key))) return; // collected; the caller retries
      await this.#syncDir(staging, key);
      const mv = await this.#try('publish directory', target, key, () => fs.rename(staging, target), ['ENOTEMPTY', 'EEXIST', 'ENOENT']);
      if (mv.ok) await this.#syncDir(parent, key);
    } finally {
      await removeTreeQuietly(staging);
    }
  }

  /** After a delete: remove plain interior directories left empty (best effort). */
  async #pruneEmptyParents(loc: Located): Promise<void> {
    const names = loc.layout.dirNames;
    for (let i = names.length; i > 0; i--) {
      if (names[i - 1]!.startsWith(DIR_LONG)) return;
      try {
        await fs.rmdir(path.join(this.root, ...names.slice(0, i)));
      } catch (err) {
        // ENOTEMPTY (someone else's keys) or ENOENT: stop pruning here. Any
        // other failure only leaves an empty directory, which lists nothing.
        if (errnoOf(err) === undefined) throw err;
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Filesystem helpers without store context

/**
 * fsync a directory. Opening and closing a directory are metadata calls that
 * never wait on the disk, so they run synchronously (no thread-pool round
 * trip: this took a new object's create from 1.22 to 0.71 ms here); only the
 * fsync itself goes to the thread pool.
 */
async function syncDirAt(dir: string): Promise<void> {
  const fd = fsSync.openSync(dir, FS.O_RDONLY | FS.O_DIRECTORY);
  try {
    await new Promise<void>((resolve, reject) => fsSync.fsync(fd, (err) => (err ? reject(err) : resolve())));
  } finally {
    fsSync.closeSync(fd);
  }
}

function openFd(file: string, flags: number, mode: number): Promise<number> {
  return new Promise((resolve, reject) => fsSync.open(file, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsSync.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Write all of `bytes` at offset 0 of `fd`: synchronously when small (a page-cache copy), else on the thread pool. */
async function writeAllAt(fd: number, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const n =
      bytes.length <= SYNC_WRITE_BYTES
        ? fsSync.writeSync(fd, bytes, done, bytes.length - done, done)
        : await new Promise<number>((resolve, reject) =>
            fsSync.write(fd, bytes, done, bytes.length - done, done, (err, written) => (err ? reject(err) : resolve(written))),
          );
    if (n <= 0) throw new Error(`write returned ${n} with ${bytes.length - done} bytes left`);
    done += n;
  }
}

function closeFdQuietly(fd: number): void {
  try {
    fsSync.closeSync(fd);
  } catch (err) {
    // Closing after a failure or to discard an unused file: the descriptor
    // is released either way, and the outcome reported is the operation's.
    if (errnoOf(err) === undefined) throw err;
  }
}

async function closeAfterFailure(fh: FileHandle): Promise<void> {
  try {
    await fh.close();
  } catch (err) {
    // The operation already failed; that failure is the one reported.
    if (errnoOf(err) === undefined) throw err;
  }
}

async function unlinkQuietly(file: string): Promise<void> {
  try {
    await fs.unlink(file);
  } catch (err) {
    // Cleanup of our own temp: if it is already gone or cannot be removed,
    // it is garbage that later writers or sweep() collect.
    if (errnoOf(err) === undefined) throw err;
  }
}

async function removeTreeQuietly(dir: string): Promise<void> {
  try {
    await fs.rm(dir, { recursive: true, force: true });
  } catch (err) {
    // Best effort, as above: a concurrent writer may still be adding a temp
    // to a retired directory (ENOTEMPTY); sweep() collects what remains.
    if (errnoOf(err) === undefined) throw err;
  }
}

/**
 * Removes a retired object directory: it holds only files (generations,
 * claims, temps, the segment record), so unlink each and rmdir, cheaper than
 * a generic recursive removal. Best effort, like removeTreeQuietly.
 */
async function removeRetired(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    // Gone already (another collector) or unreadable: nothing more to do here.
    if (errnoOf(err) === undefined) throw err;
    return;
  }
  for (const n of names) await unlinkQuietly(path.join(dir, n));
  try {
    await fs.rmdir(dir);
  } catch (err) {
    // ENOTEMPTY: a writer still holding the retired incarnation added a file,
    // or an entry was not a file; fall back to a recursive removal.
    if (errnoOf(err) === undefined) throw err;
    await removeTreeQuietly(dir);
  }
}

/**
 * Unlinks `names` in the given order, stopping at the first failure other
 * than ENOENT, so a claim is never removed while its generation file stays
 * (invariant I3). Returns how many were removed.
 */
async function removeInOrder(at: (name: string) => string, names: readonly string[]): Promise<number> {
  let removed = 0;
  for (const n of names) {
    try {
      await fs.unlink(at(n));
      removed++;
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT') continue;
      // Superseded files are garbage: leaving them (and everything after
      // them) for the next writer or sweep() keeps every invariant.
      if (code === undefined) throw err;
      return removed;
    }
  }
  return removed;
}
