// A model folder's files besides its weights: what a saved model needs to load on its own (tokenizer, chat
// template, preprocessor, generation settings).
import { readFileSync } from 'node:fs';
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

/**
 * The frames a model samples from a video when a run does not say: Video-LLaVA's 8 (its NUM_FRAMES, uniformly over
 * the video, as its LanguageBind video processor and transformers' example sample them), 16 for the others. Read
 * from the folder's config.json; a folder that cannot be read gets 16 here and its error where it is loaded.
 */
export function defaultFrames(modelDir: string): number {
  try {
    const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const videoLlava = config.model_type === 'video_llava' || (config.model_type === 'llava' && 'mm_video_tower' in config);
    return videoLlava ? VIDEO_LLAVA_FRAMES : DEFAULT_FRAMES;
  } catch {
    return DEFAULT_FRAMES;
  }
}

export const DEFAULT_FRAMES = 16;
export const VIDEO_LLAVA_FRAMES = 8;
