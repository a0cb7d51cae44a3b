// Checkpoint weights in safetensors: a single file, or the sharded layout transformers writes
// (model.safetensors.index.json + model-0000i-of-0000n.safetensors). Reading copies each tensor into memory of its
// own (a file truncated or rewritten later changes nothing), or with `mmap` maps the files (no copy until a tensor
// is converted or written to; the files must then stay as they are); writing is atomic per file, and the index is
// written last.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';

import { z } from 'zod';

import { checkFolderFiles, checkInputFileOrDir, prepareOutputDir, prepareOutputFile } from '../paths.js';
import { parse } from '../validate.js';
import { type DType, DTYPES, native, type SafetensorsHeaderEntry, type Tensor } from '../native.js';

export type { SafetensorsHeaderEntry };

export interface Safetensors {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

const ReadOptions = z.strictObject({
  /** Convert floating-point tensors to this dtype (as transformers' torch_dtype); integer tensors are kept. */
  dtype: z.enum(DTYPES).optional(),
  /** Only these tensors (each must exist). */
  keys: z.array(z.string()).optional(),
  /**
   * Tensors as copy-on-write views of the files' memory mappings: no copy, nothing read until touched. The files
   * must not be truncated or rewritten in place while the tensors live (touching a truncated page raises SIGBUS).
   */
  mmap: z.boolean().optional(),
});
export type ReadOptions = z.input<typeof ReadOptions>;

const Path = z.string().min(1);
const Metadata = z.record(z.string(), z.string());

const UNITS: Record<string, number> = {
  B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
};

/** A size as transformers' max_shard_size takes it: bytes, or a string such as "5GB" or "500MiB". */
export const ByteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)\s*$/i.exec(value) : null;
  const bytes = typeof value === 'number' ? value : match ? Number(match[1]) * UNITS[match[2]!.toUpperCase()]! : NaN;
  if (!(Number.isFinite(bytes) && bytes >= 1)) {
    ctx.addIssue({ code: 'custom', message: `'${value}' is not a size such as 5GB, 500MB, 512MiB or a byte count` });
    return z.NEVER;
  }
  return Math.floor(bytes);
});

const WriteOptions = z.strictObject({
  metadata: Metadata.optional(),
  /** Split into shards of at most this size, as transformers does (default: one file). */
  maxShardSize: ByteSize.optional(),
  /** File name stem for a sharded write (default "model"). */
  prefix: z.string().regex(/^[\w.-]+$/).optional(),
});
export type WriteOptions = z.input<typeof WriteOptions>;

/** A checkpoint path before the native reader opens it: a regular file, or a folder whose shards are. */
function checkCheckpoint(path: string): void {
  if (!existsSync(path)) return;  // the native reader names what is missing
  const kind = checkInputFileOrDir(path, 'a safetensors checkpoint');
  if (kind === 'dir') checkFolderFiles(path, /\.safetensors(\.index\.json)?$/, 'a safetensors checkpoint folder');
  else if (path.endsWith('.index.json')) checkFolderFiles(dirname(path), /\.safetensors$/, 'a sharded checkpoint');
}

/** Every tensor of a .safetensors file, a sharded index, or a folder holding either. */
export async function readSafetensors(path: string, options: ReadOptions = {}): Promise<Safetensors> {
  const { dtype, keys, mmap } = parse(ReadOptions, options, 'readSafetensors: options');
  checkCheckpoint(parse(Path, path, 'readSafetensors: path'));
  return native().safetensorsRead(path, dtype as DType | undefined, keys, mmap);
}

/** Names, dtypes, shapes and files of a checkpoint's tensors, reading only headers. */
export async function readSafetensorsHeader(
  path: string,
): Promise<{ tensors: SafetensorsHeaderEntry[]; metadata: Record<string, string> }> {
  checkCheckpoint(parse(Path, path, 'readSafetensorsHeader: path'));
  return native().safetensorsHeader(path);
}

/** Writes one .safetensors file atomically (a crash leaves the old file or the new, never half of one). */
export async function writeSafetensors(
  path: string, tensors: Record<string, Tensor>, options: Omit<WriteOptions, 'maxShardSize' | 'prefix'> = {},
): Promise<void> {
  const { metadata } = parse(WriteOptions, options, 'writeSafetensors: options');
  prepareOutputFile(parse(Path, path, 'writeSafetensors: path'), 'a safetensors file');
  await native().safetensorsWrite(path, tensors, metadata);
}

/**
 * Writes a checkpoint folder as transformers' save_pretrained does: `model.safetensors` when it fits in
 * `maxShardSize`, else shards and `model.safetensors.index.json`. Returns the file names written.
 */
export async function writeSafetensorsFolder(
  dir: string, tensors: Record<string, Tensor>, options: WriteOptions = {},
): Promise<string[]> {
  const { metadata, maxShardSize, prefix } = parse(WriteOptions, options, 'writeSafetensorsFolder: options');
  prepareOutputDir(parse(Path, dir, 'writeSafetensorsFolder: dir'), 'a checkpoint folder');
  return native().safetensorsWriteSharded(
    dir, tensors, maxShardSize ?? Number.MAX_SAFE_INTEGER, metadata, prefix,
  );
}
