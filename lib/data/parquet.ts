// Parquet rows as JSON values (Hugging Face datasets ship as Parquet): read with hyparquet, every codec the field
// writes (snappy built in; gzip, zstd, brotli, lz4 from hyparquet-compressors), a row group's worth at a time.
// Each row comes with its file and 0-based row index, so an error names both.
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

import { DataError } from './errors.js';
import type { JsonRecord } from './jsonl.js';

export const PARQUET_FILE = /\.parquet$/i;

/** A Parquet value as plain JSON: int64 as a number (a string past 2^53), bytes as base64, dates as ISO strings. */
export function jsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(jsonValue);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonValue(v)]));
  return value;
}

/** Every row of a Parquet file, in order, as `{value, source: {file, index}}`. */
export async function* readParquetValues(file: string): AsyncGenerator<JsonRecord> {
  let buffer, metadata;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (error) {
    throw new DataError(`cannot read as Parquet: ${(error as Error).message}`, { file });
  }
  let start = 0;
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, compressors, rowStart: start, rowEnd: end });
    } catch (error) {
      throw new DataError(`cannot read rows ${start}-${end - 1} as Parquet: ${(error as Error).message}`, { file });
    }
    for (const [i, row] of rows.entries()) yield { value: jsonValue(row), source: { file, index: start + i } };
    start = end;
  }
}
