/**
 * Store URIs: the one string a program gives to open a database.
 *
 *   memory://name                       process-local store shared by name
 *   file:///abs/path  or  /abs/path  or  ./rel/path     local directory
 *   s3://bucket/prefix?endpoint=http://host:port&region=us-east-1
 *
 * Parsing is pure (parseStoreUri) and tested exhaustively; `openStore`
 * dispatches to the backend, loading the S3 client only when needed.
 * Credentials never go in the URI: they come from the standard AWS
 * environment variables or from options.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FloeError } from '../errors.js';
import type { ObjectStore } from './types.js';

export type StoreSpec =
  | { readonly kind: 'memory'; readonly name: string }
  | { readonly kind: 'local'; readonly path: string }
  | {
      readonly kind: 's3';
      readonly bucket: string;
      readonly prefix: string;
      readonly endpoint: string | undefined;
      readonly region: string | undefined;
      readonly forcePathStyle: boolean | undefined;
    };

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const S3_PARAMS = new Set(['endpoint', 'region', 'forcePathStyle']);

function bad(uri: string, why: string): FloeError {
  return new FloeError('INVALID_ARGUMENT', `invalid store URI ${JSON.stringify(uri)}: ${why}`);
}

/** Parse a store URI or path into a backend spec. Pure; never touches I/O. */
export function parseStoreUri(uri: string, cwd: string = process.cwd()): StoreSpec {
  if (typeof uri !== 'string' || uri.trim() === '') throw bad(String(uri), 'empty');
  if (/[\x00-\x1f\x7f]/.test(uri)) throw bad(uri, 'control character');
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(uri) && !/^[a-zA-Z]:[\\/]/.test(uri)) {
      throw bad(uri, 'unknown scheme (use memory://, file://, s3:// or a path)');
    }
    return { kind: 'local', path: path.resolve(cwd, uri) };
  }
  switch (scheme) {
    case 'memory': {
      const name = uri.slice('memory://'.length);
      if (!/^[A-Za-z0-9._-]{1,128}$/.test(name)) throw bad(uri, 'memory store name must be 1-128 of [A-Za-z0-9._-]');
      return { kind: 'memory', name };
    }
    case 'file': {
      let p: string;
      try {
        p = fileURLToPath(uri);
      } catch (cause) {
        throw new FloeError('INVALID_ARGUMENT', `invalid store URI ${JSON.stringify(uri)}: not an absolute file URL`, { cause });
      }
      return { kind: 'local', path: path.resolve(p) };
    }
    case 's3': {
      let url: URL;
      try {
        url = new URL(uri);
      } catch (cause) {
        throw new FloeError('INVALID_ARGUMENT', `invalid store URI ${JSON.stringify(uri)}: malformed`, { cause });
      }
      // The URL parser resolves "." and ".." segments (also as %2E) silently,
      // so they are looked for in the raw text before it gets the chance.
      const rawPath = /^[^:]+:\/\/[^/?#]*([^?#]*)/.exec(uri)?.[1] ?? '';
      if (rawPath.split('/').some((s) => /^(\.|%2e){1,2}$/i.test(s))) {
        throw bad(uri, 'prefix may not contain "." or ".." segments');
      }
      if (url.hash) throw bad(uri, 'a "#" fragment is not allowed (percent-encode "#" in a prefix as %23)');
      const bucket = url.hostname;
      if (!BUCKET_RE.test(bucket)) throw bad(uri, `bucket name ${JSON.stringify(bucket)} is not a valid S3 bucket name`);
      if (url.username || url.password) throw bad(uri, 'credentials do not belong in the URI; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or options');
      if (url.port) throw bad(uri, 'a port belongs in ?endpoint=, not in the bucket');
      let decoded: string;
      try {
        decoded = decodeURIComponent(url.pathname);
      } catch (cause) {
        throw new FloeError('INVALID_ARGUMENT', `invalid store URI ${JSON.stringify(uri)}: malformed percent-encoding in prefix`, { cause });
      }
      let prefix = decoded.replace(/^\/+/, '').replace(/\/+$/, '');
      if (/[\x00-\x1f\x7f\\]/.test(prefix)) throw bad(uri, 'prefix may not contain control characters or "\\"');
      if (prefix.split('/').some((s) => s === '..' || s === '.')) throw bad(uri, 'prefix may not contain "." or ".." segments');
      if (prefix.includes('//')) throw bad(uri, 'prefix may not contain empty segments');
      if (prefix !== '') prefix += '/';
      for (const k of url.searchParams.keys()) {
        if (!S3_PARAMS.has(k)) throw bad(uri, `unknown parameter ${JSON.stringify(k)} (known: ${[...S3_PARAMS].join(', ')})`);
      }
      const endpoint = url.searchParams.get('endpoint') ?? undefined;
      if (endpoint !== undefined && !/^https?:\/\/[^/?#]+\/?$/.test(endpoint)) {
        throw bad(uri, 'endpoint must be http(s)://host[:port]');
      }
      const fps = url.searchParams.get('forcePathStyle');
      if (fps !== null && fps !== 'true' && fps !== 'false') throw bad(uri, 'forcePathStyle must be true or false');
      return {
        kind: 's3',
        bucket,
        prefix,
        endpoint: endpoint?.replace(/\/$/, ''),
        region: url.searchParams.get('region') ?? undefined,
        forcePathStyle: fps === null ? undefined : fps === 'true',
      };
    }
    default:
      throw bad(uri, `unknown scheme "${scheme}://" (use memory://, file://, s3:// or a path)`);
  }
}

export interface OpenStoreOptions {
  /** Create a local root directory that does not exist yet (default true). */
  readonly create?: boolean;
  /** S3 credentials; default: the standard AWS environment / config chain. */
  readonly s3Credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Open the store a URI names. */
export async function openStore(uri: string, options: OpenStoreOptions = {}): Promise<ObjectStore> {
  const spec = parseStoreUri(uri);
  switch (spec.kind) {
    case 'memory': {
      const { MemoryStore } = await import('./memory.js');
      return MemoryStore.named(spec.name);
    }
    case 'local': {
      const { LocalStore } = await import('./local.js');
      return LocalStore.open(spec.path, { create: options.create });
    }
    case 's3': {
      const { S3Store } = await import('./s3.js');
      return S3Store.open({
        bucket: spec.bucket,
        prefix: spec.prefix,
        endpoint: spec.endpoint,
        region: spec.region,
        forcePathStyle: spec.forcePathStyle,
        credentials: options.s3Credentials,
      });
    }
  }
}
