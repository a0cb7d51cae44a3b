// Qwen2.5-VL's video processor rules (transformers' Qwen2VLVideoProcessor, which qwen2_5_vl uses, and
// Qwen2_5_VLProcessor's second_per_grid_ts): which frames it samples (sample_frames, when do_sample_frames: `fps`
// frames a second within [min_frames, max_frames], or `num_frames`, a multiple of temporal_patch_size), the size
// every frame is resized to (smart_resize: sides multiples of patch_size x merge_size, the area of each frame within
// [size.shortest_edge, size.longest_edge], with cap_pixels_per_frame also within an even share of max_video_tokens),
// the patch grid that gives (video_grid_thw: the frames padded to a multiple of temporal_patch_size by repeating
// the last) and the seconds one temporal patch spans (second_per_grid_ts, M-RoPE's time step). The decoding and the
// resize itself are native.
import { z } from 'zod';

import type { Tensor } from '../native.js';
import { parse } from '../validate.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, preprocessFrames, resizedTo } from './preprocess.js';
import { readVideoProcessorFile, sampleFrames, smartResize } from './processor-rules.js';

const Positive = z.number().int().positive();

/** The fields of a Qwen2.5-VL video_preprocessor_config.json these rules read (others are ignored), with
 * Qwen2VLVideoProcessor's defaults. */
export const Qwen25VLProcessorConfig = z.object({
  /** The pixels of each frame: at least shortest_edge (min_pixels), at most longest_edge (max_pixels). */
  size: z.object({ shortest_edge: Positive, longest_edge: Positive }).default({ shortest_edge: 128 * 28 * 28, longest_edge: 28 * 28 * 768 }),
  /** (older configs) the same, by these names: they win over size, as the processor's __init__ does. */
  min_pixels: Positive.optional(),
  max_pixels: Positive.optional(),
  patch_size: Positive.default(14),
  temporal_patch_size: Positive.default(2),
  merge_size: Positive.default(2),
  /** sample_frames runs only when this is true (transformers' default false: every frame the caller gives). */
  do_sample_frames: z.boolean().default(false),
  min_frames: Positive.default(4),
  max_frames: Positive.default(768),
  /** (null, as save_pretrained writes an unset one: unset) */
  fps: z.number().positive().nullish().transform((v) => v ?? undefined),
  num_frames: Positive.nullish().transform((v) => v ?? undefined),
  /** Bound each frame by an even share of `max_video_tokens` tokens' pixels too (qwen-vl-utils' rule); unset:
   * transformers 5.18's default, no such bound. */
  cap_pixels_per_frame: z.boolean().nullable().optional(),
  max_video_tokens: Positive.default(128000),
  /** The pixels' processing after resizing (OPENAI_CLIP's mean and std, bicubic), as its processor does. */
  resample: z.union([z.literal(2), z.literal(3)]).default(3),
  do_rescale: z.boolean().default(true),
  rescale_factor: z.number().positive().default(1 / 255),
  do_normalize: z.boolean().default(true),
  image_mean: z.array(z.number()).length(3).default(OPENAI_CLIP_MEAN),
  image_std: z.array(z.number()).length(3).default(OPENAI_CLIP_STD),
});
export type Qwen25VLProcessorConfig = z.input<typeof Qwen25VLProcessorConfig>;
type Resolved = z.output<typeof Qwen25VLProcessorConfig>;

const VideoSize = z.object({ height: Positive, width: Positive, frames: Positive });

/** sample_frames: the frame indices of a video of `totalFrames` frames at `videoFps` (num_frames, fps or every frame). */
export function qwen25vlFrameIndices(totalFrames: number, videoFps: number | undefined, config: Qwen25VLProcessorConfig = {}): number[] {
  const c = parse(Qwen25VLProcessorConfig, config, 'qwen25vlFrameIndices: config');
  parse(Positive, totalFrames, 'qwen25vlFrameIndices: totalFrames');
  return sampleFrames(totalFrames, videoFps, c, 'Qwen2.5-VL');
}

function resizeTarget(c: Resolved, height: number, width: number, frames: number): { height: number; width: number } {
  const factor = c.patch_size * c.merge_size;
  const minPixels = c.min_pixels ?? c.size.shortest_edge;
  let maxPixels = c.max_pixels ?? c.size.longest_edge;
  if (c.cap_pixels_per_frame) {
    // resize(): the per-frame cap bounded by an even share of max_video_tokens' pixels (90% of them), per
    // temporal patch, floored at 1.05 x min_pixels
    const total = Math.trunc(c.max_video_tokens * factor * factor * 0.9);
    maxPixels = Math.max(Math.min(maxPixels, Math.floor((total * c.temporal_patch_size) / frames)), Math.trunc(minPixels * 1.05));
  }
  return smartResize(height, width, factor, minPixels, maxPixels, 'Qwen2.5-VL');
}

/** The size Qwen2.5-VL's video processor resizes every frame of a `frames`-frame video of height x width to. */
export function qwen25vlResizeTarget(height: number, width: number, frames: number, config: Qwen25VLProcessorConfig = {}): { height: number; width: number } {
  const c = parse(Qwen25VLProcessorConfig, config, 'qwen25vlResizeTarget: config');
  parse(VideoSize, { height, width, frames }, 'qwen25vlResizeTarget');
  return resizeTarget(c, height, width, frames);
}

/** What Qwen2.5-VL's processor makes of one video (before the pixels). */
export interface Qwen25VLVideoLayout {
  /** The source frames it keeps (sample_frames when do_sample_frames, else every frame). */
  indices: number[];
  /** Each frame's size after resizing. */
  resized: { height: number; width: number };
  /** video_grid_thw: temporal patches (the frames padded to a multiple of temporal_patch_size), patch rows, columns. */
  grid: { t: number; h: number; w: number };
  /** The video's tokens in the language model: t x h x w / merge_size^2 (its <|video_pad|> count). */
  tokens: number;
  /** Each temporal patch's tokens: h x w / merge_size^2. */
  tokensPerGrid: number;
  /** second_per_grid_ts: temporal_patch_size / the sampled frames' rate (the processor's float; 24 fps unknown). */
  secondPerGridT: number;
}

/**
 * Qwen2_5_VLProcessor on a video of `totalFrames` frames of height x width at `videoFps` (undefined: unknown):
 * the frames it samples, the size it resizes them to, video_grid_thw, its token count and second_per_grid_ts.
 */
export function qwen25vlVideoLayout(
  video: { totalFrames: number; height: number; width: number; fps?: number | undefined }, config: Qwen25VLProcessorConfig = {},
): Qwen25VLVideoLayout {
  const c = parse(Qwen25VLProcessorConfig, config, 'qwen25vlVideoLayout: config');
  parse(z.object({ totalFrames: Positive, height: Positive, width: Positive, fps: z.number().positive().optional() }), video, 'qwen25vlVideoLayout: video');
  const indices = c.do_sample_frames
    ? sampleFrames(video.totalFrames, video.fps, c, 'Qwen2.5-VL')
    : Array.from({ length: video.totalFrames }, (_, i) => i);
  const resized = resizeTarget(c, video.height, video.width, indices.length);
  const grid = {
    t: Math.ceil(indices.length / c.temporal_patch_size), h: resized.height / c.patch_size, w: resized.width / c.patch_size,
  };
  const tokensPerGrid = (grid.h * grid.w) / c.merge_size ** 2;
  return {
    indices, resized, grid, tokens: grid.t * tokensPerGrid, tokensPerGrid,
    secondPerGridT: secondPerGridT(c, indices.length, video.totalFrames, video.fps),
  };
}

/** second_per_grid_ts: temporal_patch_size over VideoMetadata.sampled_fps, the sampled share of the source rate
 * (`sampled` of `totalFrames` frames at `fps`; 24 when the rate is unknown). */
function secondPerGridT(c: Resolved, sampled: number, totalFrames: number, fps: number | undefined): number {
  const sampledFps = fps === undefined ? 24 : (sampled / totalFrames) * fps;
  return c.temporal_patch_size / sampledFps;
}

/** second_per_grid_ts of `sampled` frames taken from a video of `totalFrames` frames at `fps` (undefined or 0:
 * unknown), as Qwen2_5_VLProcessor computes it from the sampled frames. */
export function qwen25vlSecondPerGridT(sampled: number, totalFrames: number, fps: number | undefined, config: Qwen25VLProcessorConfig = {}): number {
  const c = parse(Qwen25VLProcessorConfig, config, 'qwen25vlSecondPerGridT: config');
  parse(z.object({ sampled: Positive, totalFrames: Positive }), { sampled, totalFrames }, 'qwen25vlSecondPerGridT');
  return secondPerGridT(c, sampled, totalFrames, fps && fps > 0 ? fps : undefined);
}

/**
 * uint8 frames [T, H', W', 3] of a video whose own frames are `source` -> float32 [T, 3, h, w]: resized to the size
 * Qwen2VLVideoProcessor's smart_resize gives the source size (the frames may have been decoded smaller), rescaled
 * and normalised with its mean and std.
 */
export async function preprocessQwen25VL(
  frames: Tensor<'uint8'>, source: { height: number; width: number }, config: Qwen25VLProcessorConfig,
): Promise<Tensor<'float32'>> {
  const c = parse(Qwen25VLProcessorConfig, config, 'preprocessQwen25VL: config');
  const target = resizeTarget(c, source.height, source.width, frames.shape[0]!);
  return preprocessFrames(frames, resizedTo(target, c));
}

/** Reads a Qwen2.5-VL folder's video_preprocessor_config.json (else preprocessor_config.json). Errors name the file and field. */
export async function loadQwen25VLProcessorConfig(dir: string): Promise<Resolved> {
  const { file, json } = await readVideoProcessorFile(dir);
  return parse(Qwen25VLProcessorConfig, json, file);
}
