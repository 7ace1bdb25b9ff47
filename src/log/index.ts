/**
 * floe's write-ahead log: group commit over any ObjectStore.
 *
 * `openLogWriter` makes this process the one writer (fencing any older one)
 * and recovers the durable prefix; `readLog` gives any number of readers a
 * read-only view. See writer.ts for the protocol, chain.ts for how the
 * durable prefix is decided, segment.ts for the bytes.
 */
export { openLogWriter, normalizeOptions, LogAppendError } from './writer.js';
export type { AppendResult, BatchResult, Durability, LogWriter, LogWriterOptions, LogWriterState, LogWriterStats } from './writer.js';
export { readLog, DEFAULT_PREFIX } from './replay.js';
export type { LogEntry, LogSnapshot, ReadLogOptions } from './replay.js';
export { analyzeLog, planTruncation, firstFreeEpoch, continues, GUARD_GENERATIONS } from './chain.js';
export { readBase } from './base.js';
export type { LogBase } from './base.js';
export type { ChainTip, LogAnalysis, Slot, TruncationPlan } from './chain.js';
export { decodeSegment, encodeSegment, segmentKey, parseSegmentKey, FLAG_FENCE, FLAG_VOID, HEADER_BYTES, SEGMENT_VERSION } from './segment.js';
export type { SegmentMeta, SegmentDecode } from './segment.js';
