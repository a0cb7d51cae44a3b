// Content digests: what caches and run identities are keyed by, so two models with the same shapes and different
// values never share an entry. A file's sha256 is remembered by what changes whenever its bytes do (size, mtime,
// ctime, inode), so a multi-GB checkpoint is read once per version of its files, not on every run.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { writeTextFile } from '../data/jsonl.js';
import { cacheDir } from '../libtorch.js';
import { checkInputFile, prepareOutputDir } from '../paths.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The sha256 of a file's bytes (hex), memoised in the tpo cache folder by the file's stat. */
export async function fileDigest(file: string): Promise<string> {
  checkInputFile(file, 'a file to hash');
  const s = await stat(file, { bigint: true });
  const key = sha256(JSON.stringify([resolve(file), String(s.size), String(s.mtimeNs), String(s.ctimeNs), String(s.ino), String(s.dev)]));
  const folder = join(cacheDir(), 'digests');
  const memo = join(folder, `${key}.txt`);
  if (existsSync(memo)) {
    const saved = (await readFile(memo, 'utf8')).trim();
    if (/^[0-9a-f]{64}$/.test(saved)) return saved;
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  const digest = hash.digest('hex');
  prepareOutputDir(folder, 'the tpo cache folder (TPO_CACHE_DIR)');
  await writeTextFile(memo, `${digest}\n`);
  return digest;
}

/** The digest of the files of folder `dir` whose names match `names` (names and contents, in name order). */
export async function folderDigest(dir: string, names: RegExp): Promise<string> {
  const files = (await readdir(dir)).filter((n) => names.test(n)).sort();
  const parts: string[] = [];
  for (const name of files) parts.push(`${name}:${await fileDigest(join(dir, name))}`);
  return sha256(parts.join('\n'));
}

/** A model folder's weights and config: config.json and every safetensors file and index. */
export const WEIGHT_FILES = /^(config\.json|.*\.safetensors|.*\.safetensors\.index\.json)$/;
/** A model folder's text and image processing: the tokenizer, its config and chat template, the preprocessor. */
export const PROCESSING_FILES = /^(tokenizer\.json|tokenizer_config\.json|chat_template\.jinja|preprocessor_config\.json)$/;

/** The digest of everything in a model folder that decides its outputs: weights, config, tokenizer, preprocessing. */
export async function modelDigest(dir: string): Promise<{ weights: string; processing: string }> {
  return { weights: await folderDigest(dir, WEIGHT_FILES), processing: await folderDigest(dir, PROCESSING_FILES) };
}
