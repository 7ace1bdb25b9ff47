// Placeholder replaced by the local-directory backend (issue 3).
import { FloeError } from '../errors.js';
import { MemoryStore } from './memory.js';
export interface LocalStoreOptions { readonly fsync?: boolean }
export class LocalStore extends MemoryStore {
  static async open(root: string, _options: LocalStoreOptions = {}): Promise<LocalStore> {
    throw new FloeError('STORAGE_UNAVAILABLE', `local backend not built yet: ${root}`);
  }
}
