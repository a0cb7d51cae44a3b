// VideoLLaMA3's video processor rules (transformers' VideoLlama3VideoProcessor): which frames it samples
// (sample_frames: `fps` frames a second within [min_frames, max_frames], or `num_frames`) and the size each frame is
// resized to (smart_resize: both sides multiples of patch_size x merge_size, the area within [min_pixels,
// max_pixels / frames], the aspect ratio kept). Numbers only: the decoding and the resize itself are native.
import { z } from 'zod';

import type { Tensor } from '../native.js';
import { parse } from '../validate.js';
import { preprocessFrames, resizedTo } from './preprocess.js';
import { readVideoProcessorFile, sampleFrames, smartResize } from './processor-rules.js';

const Positive = z.number().int().positive();

/** The fields of VideoLLaMA3's video_preprocessor_config.json these rules read (others are ignored). */
export const VideoLlama3ProcessorConfig = z.object({
  /** min_pixels (shortest_edge) and max_pixels (longest_edge) of all frames together. */
  size: z.object({ shortest_edge: Positive, longest_edge: Positive }).default({ shortest_edge: 128 * 28 * 28, longest_edge: 28 * 28 * 768 }),
  /** (older configs) the same, by these names: they win over size, as the processor's __init__ does. */
  min_pixels: Positive.optional(),
  max_pixels: Positive.optional(),
  patch_size: Positive.default(14),
  merge_size: Positive.default(2),
  temporal_patch_size: Positive.default(1),
  min_frames: Positive.default(4),
  max_frames: Positive.default(180),
  /** (null, as save_pretrained writes an unset one: unset) */
  fps: z.number().positive().nullish().transform((v) => v ?? undefined),
  num_frames: Positive.nullish().transform((v) => v ?? undefined),
  /** The pixels' processing after resizing (IMAGENET_STANDARD mean and std, bicubic), as its processor does. */
  resample: z.union([z.literal(2), z.literal(3)]).default(3),
  do_rescale: z.boolean().default(true),
  rescale_factor: z.number().positive().default(1 / 255),
  do_normalize: z.boolean().default(true),
  image_mean: z.array(z.number()).length(3).default([0.5, 0.5, 0.5]),
  image_std: z.array(z.number()).length(3).default([0.5, 0.5, 0.5]),
});
export type VideoLlama3ProcessorConfig = z.input<typeof VideoLlama3ProcessorConfig>;

/** The size VideoLLaMA3's processor resizes every frame of a `frames`-frame video of height x width to. */
export function videoLlama3ResizeTarget(height: number, width: number, frames: number, config: VideoLlama3ProcessorConfig = {}): { height: number; width: number } {
  const c = parse(VideoLlama3ProcessorConfig, config, 'videoLlama3ResizeTarget: config');
  parse(z.object({ height: Positive, width: Positive, frames: Positive }), { height, width, frames }, 'videoLlama3ResizeTarget');
  const minPixels = c.min_pixels ?? c.size.shortest_edge;
  const maxPixels = c.max_pixels ?? c.size.longest_edge;
  // ("diff from Qwen!": the pixel budget is the whole video's, shared by its frames)
  return smartResize(height, width, c.patch_size * c.merge_size, minPixels, Math.floor(maxPixels / frames), 'VideoLLaMA3');
}

/**
 * The frame indices sample_frames picks from a video of `totalFrames` frames at `videoFps`: `numFrames` evenly
 * spaced, or (`fps`) that many a second within [min_frames, max_frames]; without either, every frame. As torch's
 * arange(0, total, total / n).int(): steps summed in double, each rounded to float32, truncated.
 */
export function videoLlama3FrameIndices(
  totalFrames: number, videoFps: number | undefined, config: VideoLlama3ProcessorConfig = {},
): number[] {
  const c = parse(VideoLlama3ProcessorConfig, config, 'videoLlama3FrameIndices: config');
  parse(Positive, totalFrames, 'videoLlama3FrameIndices: totalFrames');
  return sampleFrames(totalFrames, videoFps, c, 'VideoLLaMA3');
}

/** Reads a VideoLLaMA3 folder's video_preprocessor_config.json (else preprocessor_config.json). Errors name the file. */
export async function loadVideoLlama3ProcessorConfig(dir: string): Promise<z.output<typeof VideoLlama3ProcessorConfig>> {
  const { file, json } = await readVideoProcessorFile(dir);
  return parse(VideoLlama3ProcessorConfig, json, file);
}

/**
 * uint8 frames [T, H', W', 3] of a video whose own frames are `source` -> float32 [T, 3, h, w]: resized to the size
 * smart_resize gives the source size (the frames may have been decoded smaller), rescaled and normalised.
 */
export async function preprocessVideoLlama3(
  frames: Tensor<'uint8'>, source: { height: number; width: number }, config: VideoLlama3ProcessorConfig,
): Promise<Tensor<'float32'>> {
  const c = parse(VideoLlama3ProcessorConfig, config, 'preprocessVideoLlama3: config');
  const target = videoLlama3ResizeTarget(source.height, source.width, frames.shape[0]!, c);
  return preprocessFrames(frames, resizedTo(target, c));
}
