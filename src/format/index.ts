/**
 * format/: byte layouts of the objects floe writes. Each module states its
 * own layout and invariants; this file only re-exports them.
 */
export { crc32c, blake3Hex, blake3HexSync, contentHash, verifyContentHash } from './checksum.js';
export {
  BITMAP_FORMAT_VERSION,
  BITMAP_MAGIC,
  decodeBitmap,
  encodeBitmap,
  toRowBitmap,
  unionRows,
} from './bitmap.js';
export type { DeletionBitmap, DeletionBitmapInput, RoaringBitmap32 } from './bitmap.js';
export {
  DEFAULT_FOOTER_HINT,
  DEFAULT_ROW_GROUP_ROWS,
  INTEGRITY_KEY,
  ParquetFile,
  compareStat,
  encodeParquet,
  parquetFooterStats,
} from './parquet.js';
export type {
  ColumnStats,
  EncodeParquetOptions,
  OpenParquetOptions,
  ParquetCompression,
  RowGroupInfo,
} from './parquet.js';
