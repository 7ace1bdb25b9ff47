/**
 * Listing helpers over the paginated `list`: one page costs one request
 * (one LIST on S3), so callers on hot paths should avoid listing at all.
 */
import type { ObjectStore } from './types.js';

/** Every key under `prefix`, in bytewise order, page by page. */
export async function* listAll(store: ObjectStore, prefix: string, pageSize?: number): AsyncGenerator<string> {
  let startAfter: string | undefined;
  for (;;) {
    const page = await store.list(prefix, { startAfter, limit: pageSize });
    yield* page.keys;
    if (!page.more || page.keys.length === 0) return;
    startAfter = page.keys[page.keys.length - 1];
  }
}

/** Collect `listAll` into an array (bounded callers only). */
export async function listKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of listAll(store, prefix)) out.push(k);
  return out;
}
