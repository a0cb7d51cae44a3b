// The vision tower's preprocessing from its Hugging Face preprocessor_config.json (SigLIP: resize to a square;
// CLIP: resize the shortest edge, centre-crop), rescale and normalise: uint8 [T, H, W, 3] -> float32 [T, 3, S, S].
import { join } from 'node:path';
import { z } from 'zod';

import { native, type NativePreprocessConfig, type Tensor } from '../native.js';
import { parse } from '../validate.js';
import { readProcessorJson } from './processor-rules.js';

const Size = z.union([
  z.number().int().positive().transform((n) => ({ height: n, width: n })),
  z.object({ height: z.number().int().positive(), width: z.number().int().positive() }),
  z.object({ shortest_edge: z.number().int().positive() }),
]);

/** The fields of transformers' image processor configs that change pixels (others are ignored). */
export const PreprocessorConfig = z.object({
  image_processor_type: z.string().optional(),
  do_resize: z.boolean().default(true),
  size: Size.optional(),
  /** PIL's resample: 2 bilinear, 3 bicubic. */
  resample: z.union([z.literal(2), z.literal(3)]).default(3),
  do_center_crop: z.boolean().default(false),
  crop_size: Size.optional(),
  do_rescale: z.boolean().default(true),
  rescale_factor: z.number().positive().default(1 / 255),
  do_normalize: z.boolean().default(true),
  image_mean: z.array(z.number()).length(3).default([0.5, 0.5, 0.5]),
  image_std: z.array(z.number()).length(3).default([0.5, 0.5, 0.5]),
});
export type PreprocessorConfig = z.input<typeof PreprocessorConfig>;

function toNative(config: z.output<typeof PreprocessorConfig>, what: string): NativePreprocessConfig {
  const out: NativePreprocessConfig = {
    resize: 'none',
    resample: config.resample === 2 ? 'bilinear' : 'bicubic',
    rescale: config.do_rescale,
    rescaleFactor: config.rescale_factor,
    normalize: config.do_normalize,
    mean: config.image_mean,
    std: config.image_std,
  };
  if (config.do_resize) {
    if (!config.size) throw new TypeError(`${what}: do_resize needs a size`);
    if ('shortest_edge' in config.size) Object.assign(out, { resize: 'shortestEdge', shortestEdge: config.size.shortest_edge });
    else Object.assign(out, { resize: 'exact', height: config.size.height, width: config.size.width });
  }
  if (config.do_center_crop) {
    const crop = config.crop_size;
    if (!crop || 'shortest_edge' in crop) throw new TypeError(`${what}: do_center_crop needs crop_size {height, width}`);
    Object.assign(out, { centerCrop: true, cropHeight: crop.height, cropWidth: crop.width });
  }
  return out;
}

/** Reads `preprocessor_config.json` from a model folder (or the file itself). Errors name the file and field. */
export async function loadPreprocessorConfig(path: string): Promise<z.output<typeof PreprocessorConfig>> {
  const file = path.endsWith('.json') ? path : join(path, 'preprocessor_config.json');
  return parse(PreprocessorConfig, await readProcessorJson(file, 'a preprocessor config'), file);
}

/**
 * The preprocessing of a processor that resizes each video to a size of its own (VideoLLaMA3's, Qwen2.5-VL's
 * smart_resize): its pixel settings, resizing to `size`.
 */
export function resizedTo(
  size: { height: number; width: number },
  c: Pick<z.output<typeof PreprocessorConfig>, 'resample' | 'do_rescale' | 'rescale_factor' | 'do_normalize' | 'image_mean' | 'image_std'>,
): PreprocessorConfig {
  return {
    do_resize: true, size, resample: c.resample, do_rescale: c.do_rescale, rescale_factor: c.rescale_factor,
    do_normalize: c.do_normalize, image_mean: c.image_mean, image_std: c.image_std,
  };
}

/** uint8 [T, H, W, 3] frames -> float32 [T, 3, H', W'] pixel values, as the config's processor makes them. */
export async function preprocessFrames(frames: Tensor<'uint8'>, config: PreprocessorConfig): Promise<Tensor<'float32'>> {
  const what = 'preprocessFrames: config';
  return native().videoPreprocess(frames, toNative(parse(PreprocessorConfig, config, what), what));
}

/**
 * The `atLeast` box for decodeVideo that feeds this processor: twice its resize target, so decoding scales a
 * high-resolution video down in uint8 (bounded memory) and the processor's own antialiased resize still works from
 * more pixels than it keeps (numbers within a grey level of resizing from full size). None without a resize.
 */
export function decodeSizeFor(config: PreprocessorConfig): { width: number; height: number } | undefined {
  const c = parse(PreprocessorConfig, config, 'decodeSizeFor: config');
  if (!c.do_resize || !c.size) return undefined;
  if ('shortest_edge' in c.size) return { width: 2 * c.size.shortest_edge, height: 2 * c.size.shortest_edge };
  return { width: 2 * c.size.width, height: 2 * c.size.height };
}

/** SigLIP-so400m-patch14-384's processor (LLaVA-Video's tower). */
export const SIGLIP_384: PreprocessorConfig = {
  image_processor_type: 'SiglipImageProcessor', size: { height: 384, width: 384 }, resample: 3,
  image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
};

/** transformers' OPENAI_CLIP_MEAN and OPENAI_CLIP_STD (image_utils): the constants CLIP's, Qwen2-VL's and InternVL's processors normalise with. */
export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** CLIP-ViT-L/14-336's processor (LongVA's tower). */
export const CLIP_336: PreprocessorConfig = {
  image_processor_type: 'CLIPImageProcessor', size: { shortest_edge: 336 }, resample: 3, do_center_crop: true,
  crop_size: { height: 336, width: 336 },
  image_mean: OPENAI_CLIP_MEAN, image_std: OPENAI_CLIP_STD,
};
