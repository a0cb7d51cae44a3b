// InternVL's video processor rules (transformers' InternVLVideoProcessor): which frames it samples (sample_frames:
// `num_frames`, or `fps` frames a second, evenly spaced from half a step in: initial_shift) and its preprocessing
// (each frame resized to size {height, width}, bicubic; rescaled; normalised with OPENAI_CLIP's mean and std), read
// from the model folder's video_preprocessor_config.json. Numbers only: decoding and the resize itself are native.
import { z } from 'zod';

import { parse } from '../validate.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PreprocessorConfig } from './preprocess.js';
import { readVideoProcessorFile } from './processor-rules.js';

/** sample_frames' options: num_frames or fps (mutually exclusive), initial_shift (true: half a step; a number). */
const SampleOptions = z.strictObject({
  num_frames: z.number().int().positive().optional(),
  fps: z.number().positive().optional(),
  initial_shift: z.union([z.boolean(), z.number().nonnegative()]).default(true),
});
export type InternVLSampleOptions = z.input<typeof SampleOptions>;

function argumentError(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: 'ERR_TPO_ARGUMENT' });
}

/**
 * The frame indices InternVLVideoProcessor.sample_frames picks from a video of `totalFrames` frames at `videoFps`:
 * torch.arange(initial_shift, total, total / n).int() (each value rounded to float32, truncated), n = num_frames or
 * int(total / video_fps * fps).
 */
export function internvlFrameIndices(totalFrames: number, videoFps: number | undefined, options: InternVLSampleOptions): number[] {
  const o = parse(SampleOptions, options, 'internvlFrameIndices: options');
  parse(z.number().int().positive(), totalFrames, 'internvlFrameIndices: totalFrames');
  if (o.num_frames !== undefined && o.fps !== undefined) throw argumentError('InternVL sampling: num_frames and fps are mutually exclusive');
  let frames = o.num_frames;
  if (frames === undefined) {
    if (o.fps === undefined) throw argumentError('InternVL sampling: give num_frames or fps');
    if (videoFps === undefined || !(videoFps > 0)) throw argumentError("InternVL sampling: fps sampling needs the video's frame rate");
    frames = Math.trunc((totalFrames / videoFps) * o.fps);
  }
  if (frames < 1) throw argumentError(`InternVL sampling: fps ${o.fps} gives no frame of a ${totalFrames}-frame video`);
  if (frames > totalFrames) {
    throw argumentError(`InternVL sampling: ${frames} frames asked of a video of ${totalFrames}; ask for fewer frames or a lower fps`);
  }
  const step = totalFrames / frames;
  const start = o.initial_shift === true ? step / 2 : o.initial_shift === false ? 0 : o.initial_shift;
  const count = Math.max(0, Math.ceil((totalFrames - start) / step));
  return Array.from({ length: count }, (_, i) => Math.trunc(Math.fround(start + i * step)));
}

/** InternVLVideoProcessor's defaults for what its config leaves out: 384 x 384, bicubic, OPENAI_CLIP's constants. */
export const INTERNVL_VIDEO_DEFAULTS = {
  size: { height: 384, width: 384 },
  resample: 3,
  image_mean: OPENAI_CLIP_MEAN,
  image_std: OPENAI_CLIP_STD,
} as const;

/**
 * A folder's video_preprocessor_config.json (else preprocessor_config.json) as tpo's preprocessing config, with
 * InternVLVideoProcessor's defaults for the fields it leaves out. Errors name the file.
 */
export async function loadInternVLProcessorConfig(dir: string): Promise<z.output<typeof PreprocessorConfig>> {
  const { file, json } = await readVideoProcessorFile(dir);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: not a JSON object`);
  return parse(PreprocessorConfig, { ...INTERNVL_VIDEO_DEFAULTS, ...json }, file);
}

/** The sampling settings of a video processor config file (other fields are the preprocessing's). */
const SampleSettings = z.object({
  num_frames: SampleOptions.shape.num_frames,
  fps: SampleOptions.shape.fps,
  initial_shift: z.union([z.boolean(), z.number().nonnegative()]).optional(),
}).refine((o) => o.num_frames === undefined || o.fps === undefined, { message: 'num_frames and fps are mutually exclusive', path: ['fps'] });

/**
 * InternVL's sampling settings from the model folder's video processor config (num_frames, fps, initial_shift),
 * checked when the model is opened, so a bad one is one error naming the file and field rather than every video's.
 */
export async function loadInternVLSampling(dir: string): Promise<InternVLSampleOptions> {
  const { file, json } = await readVideoProcessorFile(dir);
  const { num_frames, fps, initial_shift } = parse(SampleSettings, json, file);
  return { ...(num_frames === undefined ? {} : { num_frames }), ...(fps === undefined ? {} : { fps }),
    ...(initial_shift === undefined ? {} : { initial_shift }) };
}
