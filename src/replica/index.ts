/**
 * Replicas and the change feed's log sources (seed 004's mechanism):
 * `replica()` opens a read replica; sources say where its tail comes from;
 * LogTail follows a log on a store incrementally (behind `storeSource` and
 * the server's feed).
 */
export { Replica, replica } from './replica.js';
export type { ReplicaOptions, ReplicaStats } from './replica.js';
export { inProcessSource, storeSource, httpSource, changeToWire, changeFromWire } from './source.js';
export type { LogSource, WireChange } from './source.js';
export { LogTail } from './logtail.js';
export type { TailRead } from './logtail.js';
