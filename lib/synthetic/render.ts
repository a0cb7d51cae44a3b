// Pixels of the synthetic world and real video files of them: one native call to draw a whole video
// (native/synthetic/render.cc), one to encode it (native/video/encoder.cc).
import { z } from 'zod';

import { native, type NativeEncodeOptions, type NativeRenderSpec, type Tensor } from '../native.js';
import { parse } from '../validate.js';
import { COLORS } from './vocabulary.js';
import type { SynthVideo } from './world.js';

/** What the renderer needs of a video: sizes, background, noise seed, and each event's colour and poses. */
export function renderSpec(video: SynthVideo): NativeRenderSpec {
  return {
    width: video.width, height: video.height, frames: video.frames, background: [...video.background],
    noise: video.noise, seed: video.seed,
    events: video.events.map((e) => ({
      shape: e.shape, color: [...COLORS[e.color]], start: e.start, end: e.end, from: e.from, to: e.to,
      blinkPeriod: e.blinkPeriod,
    })),
  };
}

/** The video's frames, uint8 [frames, height, width, 3] RGB. */
export function renderVideo(video: SynthVideo): Promise<Tensor<'uint8'>> {
  return native().synthRender(renderSpec(video));
}

export const EncodeOptions = z.strictObject({
  fps: z.number().positive().max(1000),
  /** 'auto': H.264 (libx264) when this FFmpeg has it, else MPEG-4 part 2. */
  codec: z.enum(['auto', 'h264', 'mpeg4']).default('auto'),
  /** libx264's constant rate factor, 0 (best) .. 51; MPEG-4 maps it to a quantiser. */
  crf: z.int().min(0).max(51).default(23),
  preset: z.enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'])
    .default('veryfast'),
  /** Frames between keyframes (default: two seconds' worth). */
  gop: z.int().positive().optional(),
  threads: z.int().min(1).max(64).default(1),
});
export type EncodeOptions = z.input<typeof EncodeOptions>;

export interface EncodeResult {
  /** The encoder used: 'libx264' or 'mpeg4'. */
  codec: string;
  frames: number;
  bytes: number;
}

/**
 * Writes uint8 [T, H, W, 3] RGB frames (H, W even) as a video file, yuv420p at `fps`, in the container the file's
 * extension names (.mp4, .mkv, .avi). The file appears whole or not at all.
 */
export function encodeVideo(frames: Tensor, path: string, options: EncodeOptions): Promise<EncodeResult> {
  const o: NativeEncodeOptions = parse(EncodeOptions, options, 'encodeVideo: options');
  return native().videoEncode(frames, parse(z.string().min(1), path, 'encodeVideo: path'), o);
}
