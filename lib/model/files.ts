// A model folder's files besides its weights: what a saved model needs to load on its own (tokenizer, chat
// template, preprocessor, generation settings).
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Weights and config are written by VideoLM.save; everything else in `from` is the model's companions. */
const WRITTEN_BY_SAVE = /^(config\.json|.*\.safetensors|.*\.safetensors\.index\.json|.*\.bin|.*\.pt|.*\.pth|adapter_.*)$/;

/** Copies tokenizer, preprocessor and generation files from the model folder `from` into `to` (no folders). */
export async function copyModelFiles(from: string, to: string): Promise<string[]> {
  const entries = await readdir(from, { withFileTypes: true });
  const names = entries.filter((e) => e.isFile() && !WRITTEN_BY_SAVE.test(e.name)).map((e) => e.name);
  for (const name of names) await copyFile(join(from, name), join(to, name));
  return names;
}
