// TimeWarp's implicit dis-preferred input: the same frames, degraded (down-scaled and back, colours jittered), so a
// model that answers from them loses the details a clean view shows (native/video/preprocess.cc corrupt_frames).
import { z } from 'zod';

import { native, type Tensor } from '../native.js';
import { parse } from '../validate.js';

const Jitter = z.number().min(0).lt(1);

export const CorruptOptions = z.strictObject({
  /** Down-scale factor before scaling back up (0.25: a quarter of the width and height). */
  scale: z.number().gt(0).max(1).default(0.25),
  /** Each frame's brightness, contrast and saturation are multiplied by a factor in [1 - j, 1 + j]. */
  brightness: Jitter.default(0.4),
  contrast: Jitter.default(0.4),
  saturation: Jitter.default(0.4),
  /** The corruption is a function of the frames and this seed. */
  seed: z.int().nonnegative().max(2 ** 53 - 1).default(0),
});
export type CorruptOptions = z.input<typeof CorruptOptions>;

/** uint8 [T, H, W, 3] frames -> the same frames corrupted (a new tensor). */
export async function corruptFrames(frames: Tensor<'uint8'>, options: CorruptOptions = {}): Promise<Tensor<'uint8'>> {
  return native().videoCorrupt(frames, parse(CorruptOptions, options, 'corruptFrames: options'));
}
