/**
 * floe: an embedded storage engine for tables on object storage.
 * The package root re-exports the public API of each layer.
 */
export { FloeError, isFloeError, ERROR_CODES } from './errors.js';
export type { ErrorCode } from './errors.js';
export * from './store/index.js';
