// The memory planner (`tpo plan`): what one training step of a run needs on each device, and whether it fits.
//
// Every term is computed from the model's config.json and the run's settings, by what tpo's code keeps alive:
// - weights: every parameter in the weights' dtype (a frozen-copy reference: a second copy);
// - LoRA adapters, their gradients and AdamW moments: float32 (native/model/lora.cc, native/train/optimizer.cc);
// - full fine-tuning: gradients in the weights' dtype, AdamW's two moments in float32, and for bf16 weights a float32
//   master copy; ZeRO-1 shards moments and masters over the data-parallel ranks;
// - activations: what autograd keeps in each decoder layer (`layerCosts`) for the prompt (visual tokens and text,
//   run once per video: native/model/inference.cc's shared prefix) and for the answer rows (two per pair), the rows'
//   attention over the prompt, the answer logits; with activation checkpointing each layer's input (and the
//   prompt's keys and values) plus one layer recomputed in the backward pass;
// - the step's peak is the largest of three moments (`activationTerms`): the reference's no-grad forward after the
//   policy's, the start of the backward pass, and the prompt's backward pass (every gradient made by then); the
//   frozen tower's forward is a moment of its own, before the language model.
// Checked against measured peaks on the CPU at three scaled configurations (test/train/plan.test.ts).
import { z } from 'zod';

import { parse } from '../validate.js';
import { smartResize } from '../video/processor-rules.js';
import { Qwen25VLProcessorConfig, qwen25vlResizeTarget } from '../video/qwen2-5-vl.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

// ------------------------------------------------------------------------------------------------ model shapes

export interface TextShape {
  vocab: number; hidden: number; intermediate: number; layers: number; heads: number; kvHeads: number; headDim: number;
  tied: boolean;
  /** Qwen2: biases on q, k and v; LLaMA: attention_bias on all four projections, mlp_bias on the MLP's three. */
  qkvBias: boolean; oBias: boolean; mlpBias: boolean;
}

export interface VisionShape {
  /** videollama3: VideoLLaMA3's encoder over variable-size patch grids (no learned positions, no fixed image size);
   * internvl: InternViT (class token, learned positions, layer scale); qwen25vl: Qwen2.5-VL's windowed ViT (a
   * Conv3d over temporal_patch_size frames, RMSNorm, SwiGLU, 2D RoPE; variable-size grids). */
  kind: 'siglip' | 'clip' | 'videollama3' | 'internvl' | 'qwen25vl'; imageSize: number; patchSize: number; hidden: number;
  intermediate: number; layers: number; heads: number; channels: number;
}

export interface MultimodalShape {
  projector: 'mlp2x_gelu' | 'linear'; poolMode: 'average' | 'bilinear' | 'max'; poolStride: number;
  newline: 'grid' | 'frame' | 'one_token' | 'no_token'; mergeType: string; selectFeature: 'patch' | 'cls_patch';
}

/** Video-LLaVA: two CLIP towers (video and image: both loaded), every frame's tokens kept with the class token, the
 * projector reading the concatenated features of `selectLayers` layers. */
export interface VideoLlavaShape { selectLayers: number; projectorBias: boolean }

/** VideoLLaMA3: frames resized by its processor's smart_resize to multiples of patch x merge within a pixel budget
 * shared by the whole video, each merge x merge block of patch features averaged into one token. */
export interface VideoLlama3Shape { mergeSize: number; minPixels: number; maxPixels: number }

/** InternVL: InternViT's options that add parameters, pixel_shuffle's factor (1 / downsample_ratio) and the
 * projector (LayerNorm, Linear, act, Linear over shuffle^2 x the tower's width). */
export interface InternVLShape { shuffle: number; qkNorm: boolean; attentionBias: boolean; rmsNorm: boolean; finalNorm: boolean }

/** Qwen2.5-VL: the patch merger (RMSNorm, then Linear, GELU, Linear over merge^2 patches to out_hidden_size), the
 * temporal patch, and the video processor that sizes the frames (its video_preprocessor_config.json). */
export interface Qwen25VLShape {
  mergeSize: number; temporalPatchSize: number; outHidden: number; processor: z.output<typeof Qwen25VLProcessorConfig>;
}

export type Architecture = 'qwen2' | 'llama' | 'llava_qwen' | 'video_llava' | 'video_llama_3' | 'internvl' | 'qwen2_5_vl';

export interface ModelShape {
  architecture: Architecture;
  text: TextShape;
  vision?: VisionShape;
  mm?: MultimodalShape;
  videoLlava?: VideoLlavaShape;
  videoLlama3?: VideoLlama3Shape;
  internvl?: InternVLShape;
  qwen25vl?: Qwen25VLShape;
}

// The towers LLaVA-NeXT and LongVA name without a vision_config (native/model/config.cc known_tower).
const KNOWN_TOWERS: Record<string, VisionShape> = {
  'siglip-so400m-patch14-384': {
    kind: 'siglip', imageSize: 384, patchSize: 14, hidden: 1152, intermediate: 4304, layers: 26, heads: 16, channels: 3,
  },
  'clip-vit-large-patch14-336': {
    kind: 'clip', imageSize: 336, patchSize: 14, hidden: 1024, intermediate: 4096, layers: 24, heads: 16, channels: 3,
  },
};

const Positive = z.int().positive();
const TextFields = z.looseObject({
  vocab_size: Positive, hidden_size: Positive, intermediate_size: Positive, num_hidden_layers: Positive,
  num_attention_heads: Positive, num_key_value_heads: Positive.optional(), head_dim: Positive.optional(),
  tie_word_embeddings: z.boolean().optional(), attention_bias: z.boolean().optional(), mlp_bias: z.boolean().optional(),
});
const VisionFields = z.looseObject({
  model_type: z.enum(['siglip_vision_model', 'clip_vision_model']), image_size: Positive, patch_size: Positive,
  hidden_size: Positive, intermediate_size: Positive, num_hidden_layers: Positive, num_attention_heads: Positive,
  num_channels: Positive.optional(), num_hidden_layers_in_checkpoint: Positive.optional(),
});
// VideoLlama3VisionConfig, with its defaults (native/model/config.cc parse_video_llama3_vision).
const VideoLlama3VisionFields = z.looseObject({
  patch_size: Positive.default(16), hidden_size: Positive.default(768), intermediate_size: Positive.default(3072),
  num_hidden_layers: Positive.default(12), num_attention_heads: Positive.default(12), num_channels: Positive.default(3),
});
const MmFields = z.looseObject({
  mm_vision_tower: z.string().optional(),
  mm_projector_type: z.enum(['mlp2x_gelu', 'linear']).optional(),
  mm_spatial_pool_mode: z.enum(['average', 'bilinear', 'max']).optional(),
  mm_spatial_pool_stride: Positive.optional(),
  mm_newline_position: z.enum(['grid', 'frame', 'one_token', 'no_token']).optional(),
  mm_patch_merge_type: z.string().optional(),
  mm_vision_select_feature: z.enum(['patch', 'cls_patch']).optional(),
  vision_config: z.unknown().optional(),
});
const VideoLlavaFields = z.looseObject({
  vision_feature_layer: z.union([z.int(), z.array(z.int()).min(1)]).optional(),
  multimodal_projector_bias: z.boolean().optional(),
  tie_word_embeddings: z.boolean().optional(),
});

// InternVLVisionConfig, with its defaults (native/model/config.cc parse_internvl_vision); sizes an integer or
// [height, width] (square: tpo's tower takes square frames).
const SquareSize = z.union([Positive, z.tuple([Positive, Positive])])
  .refine((v) => typeof v === 'number' || v[0] === v[1], "must be square (tpo's InternVL tower takes square frames)")
  .transform((v) => (typeof v === 'number' ? v : v[0]));
const InternVLVisionFields = z.looseObject({
  image_size: SquareSize.default(448), patch_size: SquareSize.default(14), hidden_size: Positive.default(1024),
  intermediate_size: Positive.default(4096), num_hidden_layers: Positive.default(24), num_attention_heads: Positive.default(16),
  num_channels: Positive.default(3), norm_type: z.enum(['layer_norm', 'rms_norm']).default('layer_norm'),
  use_qk_norm: z.boolean().default(false), attention_bias: z.boolean().default(false), use_mean_pooling: z.boolean().default(true),
});
const InternVLFields = z.looseObject({
  downsample_ratio: z.number().positive().max(1).default(0.5), tie_word_embeddings: z.boolean().default(true),
  text_config: z.looseObject({ model_type: z.enum(['qwen2', 'llama']).default('qwen2') }).optional(),
});
// Qwen2_5_VLVisionConfig, with its defaults.
const Qwen25VLVisionFields = z.looseObject({
  depth: Positive.default(32), hidden_size: Positive.default(3584), intermediate_size: Positive.default(3420),
  num_heads: Positive.default(16), in_channels: Positive.default(3), patch_size: Positive.default(14),
  spatial_merge_size: Positive.default(2), temporal_patch_size: Positive.default(2), out_hidden_size: Positive.default(3584),
});

/** VideoLLaMA3's video processor's pixel budget (video_preprocessor_config.json's size; transformers' defaults). */
export interface VideoLlama3Budget { minPixels: number; maxPixels: number; mergeSize: number }
const VIDEO_LLAMA3_BUDGET: VideoLlama3Budget = { minPixels: 128 * 28 * 28, maxPixels: 28 * 28 * 768, mergeSize: 2 };

function textShape(config: unknown, source: string, decoder: 'qwen2' | 'llama'): TextShape {
  const t = parse(TextFields, config, source);
  const llamaBias = t.attention_bias ?? false;
  return {
    vocab: t.vocab_size, hidden: t.hidden_size, intermediate: t.intermediate_size, layers: t.num_hidden_layers,
    heads: t.num_attention_heads, kvHeads: t.num_key_value_heads ?? t.num_attention_heads,
    headDim: t.head_dim ?? t.hidden_size / t.num_attention_heads, tied: t.tie_word_embeddings ?? false,
    qkvBias: decoder === 'qwen2' ? true : llamaBias, oBias: decoder === 'qwen2' ? false : llamaBias,
    mlpBias: decoder === 'qwen2' ? false : (t.mlp_bias ?? false),
  };
}

function clipOrSiglip(vision: unknown, source: string): VisionShape {
  const v = parse(VisionFields, vision, source);
  return {
    kind: v.model_type === 'clip_vision_model' ? 'clip' : 'siglip', imageSize: v.image_size, patchSize: v.patch_size,
    hidden: v.hidden_size, intermediate: v.intermediate_size,
    layers: v.num_hidden_layers_in_checkpoint ?? v.num_hidden_layers, heads: v.num_attention_heads,
    channels: v.num_channels ?? 3,
  };
}

/** The nested text_config (transformers' multimodal configs), or the top level. */
function textConfigOf(config: Record<string, unknown>): [unknown, string] {
  return config.text_config !== undefined ? [config.text_config, 'text_config'] : [config, ''];
}

/** The video processor configs a dynamic-resolution model's frame sizes come from (config.json does not carry them). */
export interface ProcessorBudgets {
  /** VideoLLaMA3's pixel budget (its video_preprocessor_config.json); transformers' defaults when absent. */
  videoLlama3?: Partial<VideoLlama3Budget>;
  /** Qwen2.5-VL's video_preprocessor_config.json (lib/video/qwen2-5-vl.ts); Qwen2VLVideoProcessor's defaults when absent. */
  qwen25vl?: Qwen25VLProcessorConfig;
}

/**
 * The shapes the planner needs from a config.json (Qwen2, LLaMA, LLaVA-Qwen, Video-LLaVA, VideoLLaMA3, InternVL,
 * Qwen2.5-VL), as native/model/config.cc reads them (Qwen2.5-VL: as transformers' Qwen2_5_VLConfig does, its text
 * fields in text_config or, as transformers 4 wrote them, at the top level). `budgets`: the video processor configs
 * of the dynamic-resolution models (a plain `Partial<VideoLlama3Budget>` is VideoLLaMA3's).
 */
export function modelShape(config: unknown, source = 'config.json', budgets: ProcessorBudgets | Partial<VideoLlama3Budget> = {}): ModelShape {
  const root = parse(z.looseObject({
    model_type: z.enum(['qwen2', 'llama', 'llava_qwen', 'llava', 'video_llava', 'video_llama_3', 'internvl', 'qwen2_5_vl']),
  }), config, source);
  const processors: ProcessorBudgets = 'videoLlama3' in budgets || 'qwen25vl' in budgets ? budgets as ProcessorBudgets
    : { videoLlama3: budgets as Partial<VideoLlama3Budget> };
  const videoLlama3 = processors.videoLlama3 ?? {};
  const c = config as Record<string, unknown>;
  if (root.model_type === 'qwen2' || root.model_type === 'llama') {
    return { architecture: root.model_type, text: textShape(config, source, root.model_type) };
  }
  if (root.model_type === 'video_llava') {
    const [t, where] = textConfigOf(c);
    const text = textShape(t, where ? `${source}: ${where}` : source, 'llama');
    const f = parse(VideoLlavaFields, config, source);
    text.tied = f.tie_word_embeddings ?? text.tied;
    if (c.vision_config === undefined) throw new Error(`${source}: vision_config is missing (the planner needs the CLIP towers' shape)`);
    const vision = clipOrSiglip({ model_type: 'clip_vision_model', ...(c.vision_config as object) }, `${source}: vision_config`);
    const layers = Array.isArray(f.vision_feature_layer) ? f.vision_feature_layer.length : 1;
    return { architecture: 'video_llava', text, vision, videoLlava: { selectLayers: layers, projectorBias: f.multimodal_projector_bias ?? true } };
  }
  if (root.model_type === 'video_llama_3') {
    const [t, where] = textConfigOf(c);
    const text = textShape(t, where ? `${source}: ${where}` : source, 'qwen2');
    text.tied = (c.tie_word_embeddings as boolean | undefined) === true || text.tied;
    const v = parse(VideoLlama3VisionFields, c.vision_config ?? {}, `${source}: vision_config`);
    const vision: VisionShape = {
      kind: 'videollama3', imageSize: 0, patchSize: v.patch_size, hidden: v.hidden_size, intermediate: v.intermediate_size,
      layers: v.num_hidden_layers, heads: v.num_attention_heads, channels: v.num_channels,
    };
    return { architecture: 'video_llama_3', text, vision, videoLlama3: { ...VIDEO_LLAMA3_BUDGET, ...videoLlama3 } };
  }
  if (root.model_type === 'internvl') {
    const f = parse(InternVLFields, config, source);
    const text = textShape(c.text_config ?? {}, `${source}: text_config`, f.text_config?.model_type ?? 'qwen2');
    text.tied = f.tie_word_embeddings;  // InternVLForConditionalGeneration ties by the top-level flag
    const v = parse(InternVLVisionFields, c.vision_config ?? {}, `${source}: vision_config`);
    const shuffle = Math.round(1 / f.downsample_ratio);
    if (Math.abs(1 / f.downsample_ratio - shuffle) > 1e-9) throw new Error(`${source}: downsample_ratio (${f.downsample_ratio}) must be 1 / k for an integer k`);
    const vision: VisionShape = {
      kind: 'internvl', imageSize: v.image_size, patchSize: v.patch_size, hidden: v.hidden_size, intermediate: v.intermediate_size,
      layers: v.num_hidden_layers, heads: v.num_attention_heads, channels: v.num_channels,
    };
    if (Math.floor(v.image_size / v.patch_size) % shuffle !== 0) {
      throw new Error(`${source}: downsample_ratio (${f.downsample_ratio}) does not divide the tower's ${Math.floor(v.image_size / v.patch_size)}-patch grid`);
    }
    return {
      architecture: 'internvl', text, vision,
      internvl: { shuffle, qkNorm: v.use_qk_norm, attentionBias: v.attention_bias, rmsNorm: v.norm_type === 'rms_norm', finalNorm: !v.use_mean_pooling },
    };
  }
  if (root.model_type === 'qwen2_5_vl') {
    const [t, where] = textConfigOf(c);
    const text = textShape(t, where ? `${source}: ${where}` : source, 'qwen2');
    // Qwen2_5_VLConfig: untied unless the top level (or, as transformers 4 saved it, text_config) says tied
    text.tied = (c.tie_word_embeddings as boolean | undefined) === true || text.tied;
    const v = parse(Qwen25VLVisionFields, c.vision_config ?? {}, `${source}: vision_config`);
    const vision: VisionShape = {
      kind: 'qwen25vl', imageSize: 0, patchSize: v.patch_size, hidden: v.hidden_size, intermediate: v.intermediate_size,
      layers: v.depth, heads: v.num_heads, channels: v.in_channels,
    };
    // The processor's patch, merge and temporal sizes are the tower's unless its config says otherwise.
    const processor = parse(Qwen25VLProcessorConfig, {
      patch_size: v.patch_size, merge_size: v.spatial_merge_size, temporal_patch_size: v.temporal_patch_size, ...processors.qwen25vl,
    }, `${source}: the video processor config`);
    return {
      architecture: 'qwen2_5_vl', text, vision,
      qwen25vl: { mergeSize: v.spatial_merge_size, temporalPatchSize: v.temporal_patch_size, outHidden: v.out_hidden_size, processor },
    };
  }
  if (root.model_type === 'llava' && c.mm_video_tower !== undefined) {
    throw new Error(`${source}: the original Video-LLaVA layout; convert it with transformers' layout (model_type video_llava) to plan it`);
  }
  const text = textShape(config, source, 'qwen2');
  const m = parse(MmFields, config, source);
  let vision: VisionShape | undefined;
  if (m.vision_config !== undefined) {
    vision = clipOrSiglip(m.vision_config, `${source}: vision_config`);
  } else {
    const known = Object.entries(KNOWN_TOWERS).find(([name]) => m.mm_vision_tower?.includes(name));
    if (!known) throw new Error(`${source}: vision_config is missing, and mm_vision_tower names no tower tpo knows the shape of`);
    vision = known[1];
  }
  const mm: MultimodalShape = {
    projector: m.mm_projector_type ?? 'mlp2x_gelu', poolMode: m.mm_spatial_pool_mode ?? 'average',
    poolStride: m.mm_spatial_pool_stride ?? 2, newline: m.mm_newline_position ?? 'one_token',
    mergeType: m.mm_patch_merge_type ?? 'flat', selectFeature: m.mm_vision_select_feature ?? 'patch',
  };
  return { architecture: 'llava_qwen', text, vision, mm };
}

/** A video's frame size before the processor resizes it (dynamic-resolution models only: VideoLLaMA3). */
export interface FrameSize { height: number; width: number }
export const DEFAULT_FRAME_SIZE: FrameSize = { height: 720, width: 1280 };

/** The patch grid [rows, columns] each frame of a `frames`-frame video becomes in the tower. */
export function patchGrid(shape: ModelShape, frames: number, size: FrameSize = DEFAULT_FRAME_SIZE): [number, number] {
  const { vision } = shape;
  if (!vision) return [0, 0];
  if (shape.videoLlama3) {
    const b = shape.videoLlama3;
    const target = smartResize(size.height, size.width, vision.patchSize * b.mergeSize, b.minPixels, Math.floor(b.maxPixels / Math.max(1, frames)));
    return [target.height / vision.patchSize, target.width / vision.patchSize];
  }
  if (shape.qwen25vl) {
    const target = qwen25vlResizeTarget(size.height, size.width, Math.max(1, frames), shape.qwen25vl.processor);
    return [target.height / vision.patchSize, target.width / vision.patchSize];
  }
  const grid = Math.floor(vision.imageSize / vision.patchSize);
  return [grid, grid];
}

/** Temporal patches `frames` frames make: Qwen2.5-VL's frames in pairs (temporal_patch_size; the last repeated to
 * fill one), every other model's one each. */
export function temporalPatches(shape: ModelShape, frames: number): number {
  return shape.qwen25vl ? Math.ceil(frames / shape.qwen25vl.temporalPatchSize) : frames;
}

/**
 * The tokens of the text ModelSession writes around InternVL's frames (session.ts internvlFrameText, as
 * InternVLProcessor does): `Frame{i}: <img>` before each, `</img>` after, a newline between: with InternVL3's
 * Qwen2 tokenizer, "Frame", one token a digit, ":", " ", <img>, </img>, and "\n" from the second frame on.
 */
export function internvlFrameTextTokens(frames: number): number {
  let n = 0;
  for (let f = 1; f <= frames; f++) n += 5 + String(f).length + (f > 1 ? 1 : 0);
  return n;
}

/**
 * Visual tokens `frames` frames become (video_lm.cc): LLaVA's pooling and newline tokens as the merge type places
 * them; Video-LLaVA's every patch and class token; VideoLLaMA3's merged grid, an upper bound (its token compression
 * drops the tokens of frames that barely change, which depends on the pixels); InternVL's pixel-shuffled grid, with
 * `frameText` the text ModelSession lays around each frame (internvlFrameTextTokens); Qwen2.5-VL's merged grid of
 * each temporal patch (grid / merge^2, frames in pairs).
 */
export function visualTokens(shape: ModelShape, frames: number, size: FrameSize = DEFAULT_FRAME_SIZE, options: { frameText?: boolean } = {}): number {
  const { vision, mm } = shape;
  if (!vision) return 0;
  if (shape.videoLlava) return frames * (Math.floor(vision.imageSize / vision.patchSize) ** 2 + 1);
  if (shape.internvl) {
    const side = Math.floor(vision.imageSize / vision.patchSize) / shape.internvl.shuffle;
    return frames * side * side + (options.frameText === false ? 0 : internvlFrameTextTokens(frames));
  }
  if (shape.qwen25vl) {
    if (frames === 0) return 0;
    const [rows, columns] = patchGrid(shape, frames, size);
    return temporalPatches(shape, frames) * (rows * columns) / shape.qwen25vl.mergeSize ** 2;
  }
  if (shape.videoLlama3) {
    const [rows, columns] = patchGrid(shape, frames, size);
    return frames * (rows / shape.videoLlama3.mergeSize) * (columns / shape.videoLlama3.mergeSize);
  }
  if (!mm) return 0;
  const grid = Math.floor(vision.imageSize / vision.patchSize);
  const side = mm.poolMode === 'bilinear' ? Math.ceil(grid / mm.poolStride) : Math.floor(grid / mm.poolStride);
  const perFrame = side * side;
  const newline = mm.mergeType.startsWith('spatial') && (mm.newline === 'grid' || mm.newline === 'frame' ||
    (mm.newline === 'one_token' && mm.mergeType.includes('unpad')));
  if (!newline || mm.newline === 'no_token') return frames * perFrame;
  if (mm.newline === 'grid') return frames * side * (side + 1);
  if (mm.newline === 'frame') return frames * (perFrame + 1);
  return frames * perFrame + 1;
}

/** Parameter counts by part, as tpo's modules register them (the native model's `parameters` is their sum). */
export function parameterCounts(shape: ModelShape): { language: number; vision: number; projector: number; lmHead: number } {
  const t = shape.text;
  const q = t.heads * t.headDim, kv = t.kvHeads * t.headDim;
  const attention = t.hidden * q + 2 * t.hidden * kv + q * t.hidden + (t.qkvBias ? q + 2 * kv : 0) + (t.oBias ? t.hidden : 0);
  const mlp = 3 * t.hidden * t.intermediate + (t.mlpBias ? 2 * t.intermediate + t.hidden : 0);
  const layer = attention + mlp + 2 * t.hidden;
  const lmHead = t.tied ? 0 : t.vocab * t.hidden;
  const language = t.vocab * t.hidden + t.layers * layer + t.hidden + lmHead;
  let vision = 0, projector = 0;
  const v = shape.vision;
  if (v && shape.internvl) {
    const x = shape.internvl, h = v.hidden, grid = Math.floor(v.imageSize / v.patchSize);
    // embeddings: the class token, the patch convolution (with a bias), learned positions (the class token's too)
    const embed = h + v.channels * v.patchSize ** 2 * h + h + (grid * grid + 1) * h;
    const norm = x.rmsNorm ? h : 2 * h;
    const layer = 3 * h * h + (x.attentionBias ? 3 * h : 0) + h * h + h /* projection_layer */ + (x.qkNorm ? 2 * h : 0) +
      2 * h * v.intermediate + v.intermediate + h /* mlp */ + 2 * norm + 2 * h /* lambda_1, lambda_2 */;
    vision = embed + v.layers * layer + (x.finalNorm ? 2 * h : 0);
    const wide = h * x.shuffle ** 2;
    projector = 2 * wide + wide * t.hidden + t.hidden + t.hidden * t.hidden + t.hidden;
  } else if (v && shape.qwen25vl) {
    const q = shape.qwen25vl, h = v.hidden;
    // patch_embed: a Conv3d without a bias; blocks: two RMSNorms, qkv and proj with biases, a SwiGLU MLP with biases
    const embed = v.channels * q.temporalPatchSize * v.patchSize ** 2 * h;
    const block = 2 * h + 3 * h * h + 3 * h + h * h + h + 3 * h * v.intermediate + 2 * v.intermediate + h;
    vision = embed + v.layers * block;
    // the merger: ln_q (RMSNorm), Linear(h m^2, h m^2), GELU, Linear(h m^2, out_hidden_size)
    const wide = h * q.mergeSize ** 2;
    projector = h + wide * wide + wide + wide * q.outHidden + q.outHidden;
  } else if (v) {
    const grid = v.kind === 'videollama3' ? 0 : Math.floor(v.imageSize / v.patchSize);
    const clip = v.kind === 'clip';
    // The patch convolution (SigLIP's and VideoLLaMA3's with a bias, CLIP's with a class embedding instead), position
    // embeddings (none for VideoLLaMA3: 2D RoPE).
    const embed = v.channels * v.patchSize ** 2 * v.hidden + v.hidden + (grid * grid + (clip ? 1 : 0)) * v.hidden;
    const vlayer = 4 * (v.hidden * v.hidden + v.hidden) + 2 * v.hidden * v.intermediate + v.intermediate + v.hidden + 4 * v.hidden;
    const tower = embed + v.layers * vlayer + 2 * v.hidden /* post_layernorm */ + (clip ? 2 * v.hidden /* pre_layrnorm */ : 0);
    if (shape.videoLlava) {
      vision = 2 * tower;  // the video tower and the image tower
      const bias = shape.videoLlava.projectorBias ? 1 : 0;
      projector = v.hidden * shape.videoLlava.selectLayers * t.hidden + t.hidden * t.hidden + 2 * bias * t.hidden;
    } else if (shape.videoLlama3) {
      vision = tower;
      projector = v.hidden * t.hidden + t.hidden + t.hidden * t.hidden + t.hidden;
    } else if (shape.mm) {
      vision = tower;
      projector = v.hidden * t.hidden + t.hidden + (shape.mm.projector === 'mlp2x_gelu' ? t.hidden * t.hidden + t.hidden : 0) +
        (shape.mm.mergeType.includes('unpad') ? t.hidden /* image_newline */ : 0);
    }
  }
  return { language, vision, projector, lmHead };
}

// ------------------------------------------------------------------------------------------------ the run

const DTYPE_BYTES = { float32: 4, bfloat16: 2, float16: 2 } as const;
export type WeightDtype = keyof typeof DTYPE_BYTES;

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export const PlanRun = z.strictObject({
  /** The weights' dtype (VideoLM.load's dtype). */
  dtype: z.enum(['float32', 'bfloat16', 'float16']).default('bfloat16'),
  /** The dtype activations are computed in: the weights' dtype, or bfloat16 under CUDA autocast. */
  computeDtype: z.enum(['float32', 'bfloat16', 'float16']).optional(),
  /** A CUDA step runs under bf16 autocast (native/train/optimizer.cc); a CPU step does not. */
  autocast: z.boolean().default(true),
  lora: z.strictObject({ r: z.int().min(1), targetModules: z.array(z.string()).min(1).default([...LORA_TARGETS]) }).optional(),
  /** Parts trained in full (without LoRA: the language model). */
  train: z.strictObject({ vision: z.boolean().default(false), projector: z.boolean().default(false), language: z.boolean().default(false) })
    .prefault({}),
  reference: z.enum(['precomputed', 'lora-disabled', 'frozen-copy', 'none']).optional(),
  frames: z.int().min(0).default(16),
  /** The videos' frame size before the processor resizes them (dynamic-resolution models: VideoLLaMA3). */
  frameSize: z.strictObject({ height: z.int().positive(), width: z.int().positive() }).default(DEFAULT_FRAME_SIZE),
  /** Prompt tokens besides the video (system text and question) and each answer's tokens. */
  promptTokens: z.int().min(1).default(128),
  answerTokens: z.int().min(1).default(128),
  /** Pairs per optimizer step (all devices) and the micro-batches each device splits its share into. */
  batchSize: z.int().min(1).default(8),
  gradientAccumulation: z.int().min(1).default(1),
  /** Data-parallel devices; ZeRO-1 shards the optimizer state (moments, masters) over them. */
  devices: z.int().min(1).default(1),
  zero1: z.boolean().default(false),
});
export type PlanRun = z.input<typeof PlanRun>;
type Run = z.output<typeof PlanRun>;

export interface MemoryTerm { name: string; bytes: number; note: string }

export interface MemoryPlan {
  /** Pairs one device runs in one forward and backward. */
  pairsPerMicroBatch: number;
  visualTokens: number;
  parameters: number;
  trainable: number;
  /** What lives across steps: weights, adapters, optimizer state. */
  persistent: MemoryTerm[];
  /** The trained weights' gradients: made during the backward pass, so part of the step's peak when it is there. */
  gradients: MemoryTerm;
  /** The step's peak above what persists (activations, transients, gradients when the peak has them), without and
   * with activation checkpointing; `terms` are what the step keeps, `phase` where the peak falls. */
  activations: { checkpointing: boolean; terms: MemoryTerm[]; phase: string; bytes: number }[];
  /** Totals per device, without and with checkpointing. */
  total: { checkpointing: boolean; bytes: number }[];
}

/** LoRA parameters of one decoder layer: A [r, in] + B [out, r] per targeted projection. */
function loraPerLayer(t: TextShape, r: number, targets: readonly string[]): number {
  const q = t.heads * t.headDim, kv = t.kvHeads * t.headDim;
  const dims: Record<string, [number, number]> = {
    q_proj: [t.hidden, q], k_proj: [t.hidden, kv], v_proj: [t.hidden, kv], o_proj: [q, t.hidden],
    gate_proj: [t.hidden, t.intermediate], up_proj: [t.hidden, t.intermediate], down_proj: [t.intermediate, t.hidden],
  };
  return targets.reduce((n, name) => n + (dims[name] ? r * (dims[name][0] + dims[name][1]) : 0), 0);
}

/** What one decoder layer's backward pass needs kept, per token (bytes), for a layer of prefix or answer rows. */
interface LayerCosts {
  /** Saved by autograd over a full layer. */
  saved: number;
  /** Saved by the prompt's last layer, which computes keys and values only (inference.cc outputs_for_last = 0). */
  keysOnly: number;
  /** The layer's input (what activation checkpointing keeps). */
  input: number;
  /** The no-grad forward's largest moment inside a layer (the reference pass): the MLP's S, U and their product. */
  forwardTransient: number;
  /** A layer's backward above what it keeps: gradients of the MLP's intermediates and of the hidden states. */
  backwardTransient: number;
}

/**
 * Bytes autograd keeps per token in one decoder layer, read off qwen2.cc and lora.cc with libtorch's rule that an
 * op saves an input only when a gradient it needs reads it (mul by a frozen norm weight keeps the weight, not the
 * activation; a frozen linear keeps no input):
 * - each RMSNorm: its input in float32 (itself, or for bf16 the float32 copy x.to(float32)); the normalised value
 *   too when the norm's weight trains;
 * - each projection's input: once when the base weights train (or per projection, the copy autocast casts float32
 *   weights' inputs to); with LoRA, what each adapter reads: the input itself for float32 weights, else a copy per
 *   adapter (float32 on the CPU, autocast's bf16 on CUDA); each adapter's r-wide A output;
 * - attention: the rotated q and k, v, the output and the kernel's log-sum-exp (rotary multiplies by cos and sin,
 *   which need no gradient, so the unrotated q and k are not kept);
 * - the MLP: gate (silu's input), silu(gate) and up (the product's inputs); their product as down_proj's input.
 */
export function layerCosts(t: TextShape, run: Pick<Run, 'lora' | 'autocast'>, weights: number, compute: number): LayerCosts {
  const q = t.heads * t.headDim, kv = t.kvHeads * t.headDim, b = compute;
  const full = !run.lora;
  const targets = new Set(run.lora?.targetModules ?? LORA_TARGETS);
  const readers: Record<string, { modules: string[]; width: number; keptAnyway: boolean }> = {
    norm1: { modules: ['q_proj', 'k_proj', 'v_proj'], width: t.hidden, keptAnyway: false },
    attn: { modules: ['o_proj'], width: q, keptAnyway: true },  // the attention output: SDPA keeps it
    norm2: { modules: ['gate_proj', 'up_proj'], width: t.hidden, keptAnyway: false },
    mlp: { modules: ['down_proj'], width: t.intermediate, keptAnyway: false },
  };
  const inputSaves = (key: keyof typeof readers, only?: string[]) => {
    const r = readers[key]!;
    const modules = r.modules.filter((m) => (!only || only.includes(m)) && (full || targets.has(m)));
    if (modules.length === 0) return 0;
    if (full) return run.autocast && weights === 4 ? modules.length * b * r.width : r.keptAnyway ? 0 : b * r.width;
    const perAdapter = run.autocast ? b : weights < 4 ? 4 : 0;
    const adapters = modules.length * (run.autocast ? b : 4) * (run.lora?.r ?? 0);
    if (perAdapter === 0) return adapters + (r.keptAnyway ? 0 : b * r.width);
    return adapters + modules.length * perAdapter * r.width;
  };
  const norm = 4 * t.hidden + (full ? b * t.hidden : 0);
  const attention = b * (q + kv + kv + q) + 4 * t.heads;
  const mlp = 3 * b * t.intermediate;
  const saved = 2 * norm + inputSaves('norm1') + attention + inputSaves('attn') + inputSaves('norm2') + mlp + inputSaves('mlp');
  const keysOnly = norm + inputSaves('norm1', ['k_proj', 'v_proj']) + b * 2 * kv;
  return {
    saved, keysOnly, input: b * t.hidden,
    forwardTransient: 3 * b * t.intermediate + 2 * b * t.hidden,
    // The MLP product's backward: the gradients of its output and of both factors (M's saved copy already released
    // by down_proj's backward), and the residual stream's and the norm output's gradients.
    backwardTransient: b * (2 * t.intermediate + 2 * t.hidden),
  };
}

/**
 * The step's activation peak on one device (bytes), gradients of the trained weights included: the largest of
 * - the end of the forward pass, while the reference's no-grad forward runs (LoRA-disabled or a frozen copy);
 * - the start of the backward pass: everything saved, and the answer logits' gradients;
 * - the prompt's backward pass, which runs last (the answer rows read its keys and values, so their backward comes
 *   first and leaves every weight's gradient and the prompt's key and value gradients behind).
 */
function activationTerms(shape: ModelShape, run: Run, pairs: number, compute: number, weights: number, checkpointing: boolean,
  gradients: number, reference: string): { terms: MemoryTerm[]; peak: number; phase: string } {
  const t = shape.text, b = compute;
  const kv = t.kvHeads * t.headDim;
  // The prompt's positions but its last run once (inference.cc shared_prefix); each answer row holds that last
  // prompt token and the answer. The planner takes one video per pair (pairs about one video share more).
  const prefix = pairs * (visualTokens(shape, run.frames, run.frameSize) + run.promptTokens - 1);
  const rows = 2 * pairs;
  const rowTokens = run.answerTokens + 1;
  const rowTotal = rows * rowTokens;
  const c = layerCosts(t, run, weights, compute);
  // The rows' attention over [prompt | own]: the softmax output (float32 under autocast) and the copy of its prompt
  // part the bmm with the prompt's values keeps (bf16 copies of both under autocast), and the folded queries.
  const softmaxBytes = run.autocast ? 4 + b : b;
  const scores = rows * t.heads * rowTokens * ((prefix / pairs + rowTokens) * softmaxBytes + (prefix / pairs) * b) +
    rowTotal * t.heads * t.headDim * b;
  const logits = rowTotal * t.vocab * 4;
  const head = !run.lora ? rowTotal * t.hidden * b : 0;  // lm_head's input, when lm_head trains
  const layers = t.layers;
  const prefixSaved = checkpointing
    ? layers * prefix * (c.input + 2 * kv * b)
    : prefix * ((layers - 1) * c.saved + c.keysOnly);
  const rowsSaved = checkpointing ? layers * rowTotal * c.input : layers * (rowTotal * c.saved + scores);
  // Each video's prompt runs (and runs backward) as one forward of its own, its two answer rows beside it: what is
  // transient, or recomputed under checkpointing, is one video's at a time.
  const groupPrefix = prefix / pairs, groupRows = 2 * rowTokens, groupScores = scores / pairs;
  const recompute = checkpointing ? Math.max(groupPrefix * c.saved, groupRows * c.saved + groupScores) : 0;
  const saved = prefixSaved + rowsSaved + logits + head;
  const online = reference === 'lora-disabled' || reference === 'frozen-copy';
  const referencePass = online
    ? layers * groupPrefix * 2 * kv * b + (groupPrefix + groupRows) * c.forwardTransient + (2 * logits) / pairs
    : 0;
  const kvGradients = layers * prefix * 2 * kv * b;
  const phases = [
    { name: 'the reference forward', bytes: saved + referencePass },
    { name: 'the start of the backward pass', bytes: saved + 2 * logits + groupRows * c.backwardTransient + recompute },
    { name: "the prompt's backward pass", bytes: prefixSaved + gradients + kvGradients + groupPrefix * c.backwardTransient + recompute },
  ];
  const peak = phases.reduce((a, p) => (p.bytes > a.bytes ? p : a));
  const perToken = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB/token`;
  const kept: MemoryTerm[] = [
    { name: 'prompt activations', bytes: prefixSaved,
      note: checkpointing ? `${layers} layers x ${prefix} tokens: layer inputs, keys and values` : `${prefix} tokens x ${layers} layers x ${perToken(c.saved)}` },
    { name: 'answer rows', bytes: rowsSaved, note: `${rows} rows x ${rowTokens} tokens${checkpointing ? ': layer inputs' : ', with their attention over the prompt'}` },
    { name: 'answer logits', bytes: logits + head, note: `${rowTotal} x ${t.vocab} float32 log-softmax` },
  ];
  if (checkpointing) kept.push({ name: 'one layer recomputed', bytes: recompute, note: 'inside the backward pass' });
  return { terms: kept, peak: peak.bytes, phase: peak.name };
}

/** The memory one device needs for a step of `run` on `shape` (bytes). */
export function planMemory(shape: ModelShape, options: PlanRun): MemoryPlan {
  const run = parse(PlanRun, options, 'plan');
  const weights = DTYPE_BYTES[run.dtype];
  const compute = DTYPE_BYTES[run.computeDtype ?? run.dtype];
  const counts = parameterCounts(shape);
  const parameters = counts.language + counts.vision + counts.projector;
  const fullLanguage = run.train.language || !run.lora;
  const fullTrained = (fullLanguage ? counts.language : 0) + (run.train.vision ? counts.vision : 0) +
    (run.train.projector ? counts.projector : 0);
  const loraParams = run.lora ? shape.text.layers * loraPerLayer(shape.text, run.lora.r, run.lora.targetModules) : 0;
  const trainable = fullTrained + loraParams;
  const reference = run.reference ?? (run.lora ? 'lora-disabled' : 'frozen-copy');
  const shards = run.zero1 ? run.devices : 1;
  const persistent: MemoryTerm[] = [
    { name: 'weights', bytes: parameters * weights, note: `${(parameters / 1e9).toFixed(2)} B parameters in ${run.dtype}` },
  ];
  if (reference === 'frozen-copy') persistent.push({ name: 'reference copy', bytes: parameters * weights, note: 'frozen-copy reference' });
  if (loraParams) persistent.push({ name: 'LoRA adapters', bytes: loraParams * 4, note: `r ${run.lora!.r}, ${(loraParams / 1e6).toFixed(1)} M float32` });
  const masters = weights < 4 ? fullTrained : 0;
  if (masters) persistent.push({ name: 'float32 masters', bytes: (masters * 4) / shards, note: shards > 1 ? `ZeRO-1 over ${shards}` : 'bf16 weights train through them' });
  persistent.push({ name: 'AdamW moments', bytes: (loraParams * 8) + (fullTrained * 8) / shards,
    note: `2 x float32${shards > 1 && fullTrained ? `, ZeRO-1 over ${shards}` : ''}` });
  const gradients: MemoryTerm = {
    name: 'gradients', bytes: loraParams * 4 + fullTrained * weights,
    note: `${loraParams ? 'LoRA float32' : `${run.dtype}`}; they appear during the backward pass (in the peak below)`,
  };
  const perDevice = Math.ceil(run.batchSize / run.devices);
  const pairs = Math.max(1, Math.ceil(perDevice / run.gradientAccumulation));
  const persistentBytes = persistent.reduce((sum, t) => sum + t.bytes, 0);
  const activations = [false, true].map((checkpointing) => {
    const lm = activationTerms(shape, run, pairs, compute, weights, checkpointing, gradients.bytes, reference);
    let peak = lm.peak, phase = lm.phase;
    if (shape.vision) {
      // The frozen tower's forward on the frames (no gradient) runs before the language model: one layer's MLP
      // input, hidden and output states of every frame at once.
      const v = shape.vision;
      const [rows, columns] = patchGrid(shape, run.frames, run.frameSize);
      const patches = rows * columns + (v.kind === 'clip' || v.kind === 'internvl' ? 1 : 0);
      // (Qwen2.5-VL's tower sees temporal patches, and its SwiGLU MLP keeps gate, up and their product)
      const mlp = v.kind === 'qwen25vl' ? 3 : 2;
      const tower = temporalPatches(shape, run.frames) * patches * (v.intermediate * mlp + v.hidden * 3) * compute;
      if (tower > peak) [peak, phase] = [tower, 'the vision tower'];
    }
    return { checkpointing, terms: lm.terms, phase, bytes: peak };
  });
  return {
    pairsPerMicroBatch: pairs, visualTokens: visualTokens(shape, run.frames, run.frameSize), parameters, trainable, persistent, gradients,
    activations, total: activations.map((a) => ({ checkpointing: a.checkpointing, bytes: persistentBytes + a.bytes })),
  };
}

// ------------------------------------------------------------------------------------------------ devices

/** "1x80GB", "8x80GB", "2x141GB": count and bytes of each device. */
export function parseGpus(text: string): { count: number; bytes: number; label: string } {
  const m = /^(\d+)\s*[x×]\s*(\d+(?:\.\d+)?)\s*(GB|GiB)$/i.exec(text.trim());
  if (!m) throw new Error(`--gpus '${text}': expected COUNTxSIZE, e.g. 1x80GB or 8x80GB`);
  const count = Number(m[1]);
  if (count < 1) throw new Error(`--gpus '${text}': at least one device`);
  // An "80GB" GPU (A100/H100) holds 80 GiB-ish: nvidia-smi reports 81559 MiB. GB is taken as GiB, as vendors mean it.
  return { count, bytes: Number(m[2]) * GiB, label: `${count} x ${m[2]} GB` };
}

/** What a CUDA process holds before the first tensor: the context, cuBLAS/cuDNN workspaces, allocator slack. */
export const CUDA_OVERHEAD = 1.5 * GiB;

export function formatBytes(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${(bytes / MiB).toFixed(0)} MiB`;
}
