/**
 * floe: an embedded storage engine for tables on object storage.
 * The package root re-exports the public API of each layer.
 *
 *   import * as floe from 'floe';
 *   const db = await floe.open('./data');
 */
export { FloeError, isFloeError, ERROR_CODES } from './errors.js';
export type { ErrorCode } from './errors.js';
export * from './store/index.js';
export { open, Database, Transaction } from './db/database.js';
export type { OpenOptions, CreateTableOptions } from './db/database.js';
export { Table, ReadonlyTable, Scan } from './table/table.js';
export type { AppendInput, AppendOptions, TableStats, VersionInfo } from './table/table.js';
export type { ScanOptions } from './table/read.js';
export { where } from './table/predicate.js';
export type { Predicate, PredicateInput } from './table/predicate.js';
export type { ColumnSpec, ColumnType, SchemaInput, TableSchema } from './format/schema.js';
export type { Row } from './format/logrecord.js';
export type { Change, LogRetention } from './db/database.js';
export { replica, Replica, inProcessSource, storeSource, httpSource } from './replica/index.js';
export type { LogSource, ReplicaOptions, ReplicaStats } from './replica/index.js';
export { createServer } from './server/index.js';
export type { FloeServer, ServerOptions } from './server/index.js';
export type { CommitResult, CompactTablesResult, LoadOptions, TableAlteration } from './db/multitable.js';
export type { CommitEntry, HistoryEntry, RecoveryEntry, Snapshot } from './db/history.js';
export type { CompactOptions, CompactResult } from './table/compact.js';
export type { ColumnSpecInput } from './format/schema.js';
