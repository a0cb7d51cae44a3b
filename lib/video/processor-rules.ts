// The rules transformers' Qwen2-VL video processor defines and the processors copied from it share (VideoLLaMA3's
// "Copied from" it, Qwen2.5-VL's is it): smart_resize (both sides multiples of a factor, the area within a pixel
// range, the aspect ratio kept) and sample_frames (`fps` frames a second within [min_frames, max_frames], or
// `num_frames`, rounded to temporal_patch_size); and the reader of a model folder's video processor file. Numbers
// only: the decoding and the resize itself are native.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { checkInputFile, PathError } from '../paths.js';

function argumentError(message: string): Error {
  return Object.assign(new RangeError(message), { code: 'ERR_TPO_ARGUMENT' });
}

/** Python's round(): halves to the even neighbour. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** smart_resize(height, width, factor, min_pixels, max_pixels) as transformers computes it; `model` names errors. */
export function smartResize(
  height: number, width: number, factor: number, minPixels: number, maxPixels: number, model = 'smart_resize',
): { height: number; width: number } {
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw argumentError(`${model} resize: absolute aspect ratio must be smaller than 200, got ${Math.max(height, width) / Math.min(height, width)}`);
  }
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return { height: h, width: w };
}

/** sample_frames' settings (the processor's, after its config file and defaults). */
export interface SampleFramesRule {
  temporal_patch_size: number;
  min_frames: number;
  max_frames: number;
  fps?: number | undefined;
  num_frames?: number | undefined;
}

/**
 * The frame indices sample_frames picks from a video of `totalFrames` frames at `videoFps`: `num_frames` evenly
 * spaced (rounded half to even to a multiple of temporal_patch_size), or (`fps`) that many a second within
 * [min_frames, max_frames] (floored to a multiple); without either, every frame. As torch's
 * arange(0, total, total / n).int(): steps summed in double, each rounded to float32, truncated. `model` names errors.
 */
export function sampleFrames(totalFrames: number, videoFps: number | undefined, rule: SampleFramesRule, model: string): number[] {
  if (rule.fps !== undefined && rule.num_frames !== undefined) throw argumentError(`${model} sampling: num_frames and fps are mutually exclusive`);
  const tps = rule.temporal_patch_size;
  let frames: number | undefined;
  if (rule.num_frames !== undefined) {
    frames = roundHalfEven(rule.num_frames / tps) * tps;
  } else if (rule.fps !== undefined) {
    if (videoFps === undefined || !(videoFps > 0)) throw argumentError(`${model} sampling: fps sampling needs the video's frame rate`);
    const maxFrames = Math.floor(Math.min(rule.max_frames, totalFrames) / tps) * tps;
    const wanted = (totalFrames / videoFps) * rule.fps;
    frames = Math.floor(Math.min(Math.max(wanted, rule.min_frames), maxFrames, totalFrames) / tps) * tps;
  }
  if (frames === undefined) return Array.from({ length: totalFrames }, (_, i) => i);
  if (frames > totalFrames) {
    throw argumentError(`${model} sampling: ${frames} frames asked of a video of ${totalFrames}; ask for fewer frames or a lower fps`);
  }
  if (frames < 1) throw argumentError(`${model} sampling: ${frames} frames (num_frames or fps too low for temporal_patch_size ${tps})`);
  const step = totalFrames / frames;
  const count = Math.ceil(totalFrames / step);
  return Array.from({ length: count }, (_, i) => Math.trunc(Math.fround(i * step)));
}

/** A folder's video_preprocessor_config.json (else preprocessor_config.json), parsed; errors name the file. */
export async function readVideoProcessorFile(dir: string): Promise<{ file: string; json: unknown }> {
  let file = join(dir, 'video_preprocessor_config.json');
  try {
    try {
      checkInputFile(file, 'a video processor config');
    } catch {
      file = join(dir, 'preprocessor_config.json');
      checkInputFile(file, 'a video processor config');
    }
  } catch (error) {
    throw new Error(`${file}: ${error instanceof PathError ? error.reason : (error as Error).message}`);
  }
  return { file, json: await readProcessorJson(file, 'a video processor config') };
}

/**
 * A processor config file's JSON, its top-level nulls left out: save_pretrained writes an attribute left unset
 * (None) as null, and the processor that loads the file takes it as unset, i.e. its default — so does tpo.
 */
export async function readProcessorJson(file: string, what: string): Promise<unknown> {
  try {
    checkInputFile(file, what);
    const json: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return json;
    return Object.fromEntries(Object.entries(json).filter(([, value]) => value !== null));
  } catch (error) {
    throw new Error(`${file}: ${error instanceof PathError ? error.reason : (error as Error).message}`);
  }
}
