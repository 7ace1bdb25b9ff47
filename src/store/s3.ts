// Placeholder replaced by the S3 backend (issue 3).
import { FloeError } from '../errors.js';
import { MemoryStore } from './memory.js';
export interface S3StoreOptions {
  readonly bucket: string; readonly prefix: string; readonly endpoint?: string | undefined; readonly region?: string | undefined;
  readonly forcePathStyle?: boolean | undefined;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
}
export class S3Store extends MemoryStore {
  static async open(o: S3StoreOptions): Promise<S3Store> {
    throw new FloeError('STORAGE_UNAVAILABLE', `s3 backend not built yet: ${o.bucket}`);
  }
}
