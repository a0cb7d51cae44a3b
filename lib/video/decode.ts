// Decoding and frame sampling (native/video/): a video file or a folder of numbered frames in, one uint8 tensor
// [T, H, W, 3] out, in one native call per video.
import { z } from 'zod';

import { native, type Tensor, type VideoInfo } from '../native.js';
import { checkFolderFiles, checkInputFileOrDir } from '../paths.js';
import { parse } from '../validate.js';

export type { VideoInfo };

const Seconds = z.number().finite().nonnegative();
const Range = z.tuple([Seconds, Seconds]).refine(([s, e]) => s <= e, 'a range is [start, end] with start <= end');
const Restrict = { range: Range.optional(), exclude: z.array(Range).optional() };

/**
 * Which frames to take:
 * - `uniform`: `frames` evenly spaced over the video, as TPO, LongVA and LLaVA-Video sample
 *   (np.linspace(0, n - 1, frames, dtype=int) over the frame indices);
 * - `fps`: LLaVA-Video's rule: every round(videoFps / fps)-th frame, and `maxFrames` (frames_upbound) uniformly
 *   when that is more;
 * - `timestamps`: for each time (seconds from the start), the first frame shown at or after it (as `ffmpeg -ss`);
 * - `indices`: frame numbers at the video's average frame rate.
 * `range` keeps only frames inside [start, end); `exclude` removes frames inside each range (a segment removed).
 */
export const SamplePlan = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('uniform'), frames: z.number().int().min(1).max(100_000), ...Restrict }),
  z.strictObject({
    kind: z.literal('fps'), fps: z.number().positive(), maxFrames: z.number().int().min(1).optional(), ...Restrict,
  }),
  z.strictObject({ kind: z.literal('timestamps'), timestamps: z.array(Seconds).min(1) }),
  z.strictObject({ kind: z.literal('indices'), indices: z.array(z.number().int().nonnegative()).min(1) }),
]);
export type SamplePlan = z.input<typeof SamplePlan>;

/**
 * The time (seconds) of each frame a plan decodes in the video those frames make, from their `times` in the source:
 * a manipulated input is a video of its own, so a model whose processor writes frame times (VideoLLaMA3's
 * "Time t:") is shown that video's, and the times say nothing its frames do not:
 * - a segment kept (`range`): the times from the segment's start;
 * - segments removed (`exclude`): each cut moves the times after it up by its length;
 * - frames by index in another order (TimeWarp's shuffled scenes): the same frames' times in order, by position
 *   (uniform sampling of the reordered video picks the same instants), so the times do not give the order away;
 * - otherwise the frames' own times.
 */
export function shownTimes(plan: SamplePlan, times: readonly number[]): number[] {
  const p = parse(SamplePlan, plan, 'shownTimes: plan');
  if (p.kind === 'indices' || p.kind === 'timestamps') return [...times].sort((a, b) => a - b);
  const start = p.range?.[0] ?? 0;
  // the removed segments after the start, merged where they overlap
  const cuts: [number, number][] = [];
  for (const [s, e] of [...(p.exclude ?? [])].sort((a, b) => a[0] - b[0])) {
    const from = Math.max(s, start);
    if (e <= from) continue;
    const last = cuts.at(-1);
    if (last && from <= last[1]) last[1] = Math.max(last[1], e);
    else cuts.push([from, e]);
  }
  return times.map((t) => t - start - cuts.reduce((gone, [s, e]) => gone + (e <= t ? e - s : 0), 0));
}

/**
 * The length (seconds) of the video a plan's frames make, from the source's `duration`, as shownTimes lays its
 * frames out: a kept segment's (`range`, within the video), less each removed segment inside it (`exclude`, merged
 * where they overlap); a plan by indices or times (TimeWarp's reordered scenes) shows the whole video. A processor
 * that reads the sampled frames' rate (Qwen2.5-VL's second_per_grid_ts) sees that video's.
 */
export function shownDuration(plan: SamplePlan, duration: number): number {
  const p = parse(SamplePlan, plan, 'shownDuration: plan');
  parse(Seconds, duration, 'shownDuration: duration');
  if (p.kind === 'indices' || p.kind === 'timestamps') return duration;
  const start = Math.min(p.range?.[0] ?? 0, duration), end = Math.min(p.range?.[1] ?? duration, duration);
  let gone = 0, reached = start;
  for (const [s, e] of [...(p.exclude ?? [])].sort((a, b) => a[0] - b[0])) {
    const from = Math.max(s, reached), to = Math.min(e, end);
    if (to <= from) continue;
    gone += to - from;
    reached = to;
  }
  return Math.max(0, end - start - gone);
}

export const DecodeOptions = z.strictObject({
  /** Output width and height; give one to keep the aspect ratio, none for the video's own size. */
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
  /**
   * Without width and height: frames larger than this box are scaled down while they are decoded (uint8, aspect
   * ratio kept, never up) until one side meets it, so a high-resolution video never exists at full size in memory.
   * `decodeSizeFor(preprocessorConfig)` gives the box a vision tower needs.
   */
  atLeast: z.strictObject({
    width: z.number().int().nonnegative().max(16384).optional(),
    height: z.number().int().nonnegative().max(16384).optional(),
  }).optional(),
  /** Decoder threads (0: FFmpeg picks one per core). */
  threads: z.number().int().nonnegative().optional(),
  /** The frame rate a folder of frames stands for (default 1). */
  folderFps: z.number().positive().optional(),
  /** Seconds: targets further apart than this are reached by seeking to a keyframe instead of decoding through. */
  seekThreshold: z.number().nonnegative().optional(),
  /** Seconds for the whole call (default: no limit). */
  timeout: z.number().positive().optional(),
});
export type DecodeOptions = z.input<typeof DecodeOptions>;

export interface DecodedVideo {
  /** uint8 [T, H, W, 3], RGB, in the plan's order. */
  frames: Tensor<'uint8'>;
  /** Each frame's own timestamp, seconds from the start. */
  timestamps: Float64Array;
  /** Each frame's index at the average frame rate. */
  indices: number[];
  info: VideoInfo;
}

/** A video is a regular file, or a folder of frames that are (a FIFO would block the decoder forever). */
function checkVideoPath(path: string): void {
  if (checkInputFileOrDir(path, 'a video') === 'dir') checkFolderFiles(path, /./, 'a folder of frames');
}

/** A video's metadata. `countFrames` counts packets when the container does not record the frame count. */
export async function probeVideo(
  path: string, options: Pick<DecodeOptions, 'folderFps' | 'timeout'> & { countFrames?: boolean } = {},
): Promise<VideoInfo> {
  const checked = parse(
    DecodeOptions.pick({ folderFps: true, timeout: true }).extend({ countFrames: z.boolean().optional() }),
    options, 'probeVideo: options',
  );
  checkVideoPath(parse(z.string().min(1), path, 'probeVideo: path'));
  return native().videoProbe(path, checked);
}

/** The frames `plan` chooses, decoded and scaled, as one tensor. */
export async function decodeVideo(path: string, plan: SamplePlan, options: DecodeOptions = {}): Promise<DecodedVideo> {
  checkVideoPath(parse(z.string().min(1), path, 'decodeVideo: path'));
  return native().videoDecode(
    path,
    parse(SamplePlan, plan, 'decodeVideo: plan'),
    parse(DecodeOptions, options, 'decodeVideo: options'),
  );
}
