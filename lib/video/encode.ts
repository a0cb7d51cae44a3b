// Encoding: uint8 [T, H, W, 3] RGB frames to a real video file (native/video/encoder.cc), in one native call, so
// that videos tpo makes (the synthetic world's) go through the same decoder as any other.
import { z } from 'zod';

import { native, type NativeEncodeOptions, type Tensor } from '../native.js';
import { prepareOutputFile } from '../paths.js';
import { parse } from '../validate.js';

export const VideoEncodeOptions = z.strictObject({
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
export type VideoEncodeOptions = z.input<typeof VideoEncodeOptions>;

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
export function encodeVideo(frames: Tensor, path: string, options: VideoEncodeOptions): Promise<EncodeResult> {
  const o: NativeEncodeOptions = parse(VideoEncodeOptions, options, 'encodeVideo: options');
  prepareOutputFile(parse(z.string().min(1), path, 'encodeVideo: path'), 'a video file');
  return native().videoEncode(frames, path, o);
}
