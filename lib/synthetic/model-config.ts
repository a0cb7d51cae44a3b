// The default tiny model: LLaVA-Video's architecture (SigLIP tower -> mlp2x_gelu projector -> 2x2 average pooling
// with a newline token per pooled row -> Qwen2), written as LLaVA-NeXT writes llava_qwen configs, sized for the
// synthetic world's 64 x 64 frames and for training on two CPU cores in minutes.
//
// Sizes, and why:
// - Tower: 64 x 64 frames in 8 x 8 patches = an 8 x 8 grid, the smallest grid where a shape (8-16 px across)
//   covers a patch or more and 2x2 pooling still leaves a 4 x 4 map, i.e. 4 x (4 + 1) = 20 tokens a frame with
//   the grid newlines. Width 96, 4 layers (3 kept: LLaVA-NeXT drops the last and reads the one before), 4 heads.
// - LM: width 128, 4 layers, 4 query heads and 2 key/value heads (Qwen2's grouped attention), MLP 352 (Qwen2's
//   ratio of about 2.75). About 1.2 M parameters in all: a 32-frame long video is 640 visual tokens, and one
//   training step on such a sequence costs a few GFLOP, so an epoch over a few thousand questions is minutes.
// - rope_theta 10000: sequences stay under 4096 tokens, where the standard base separates positions well.
// - Vocabulary: the world tokenizer's, exactly; ids of pad/eos as the tokenizer names them, bos as Qwen2's configs
//   name it (<|endoftext|>), though no BOS is ever added.
import type { Tokenizer } from '../model/tokenizer.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from '../video/preprocess.js';

export const FRAME_SIZE = 64;

/** preprocessor_config.json: SigLIP's processor at the tower's input size (resize, rescale to [0, 1], to [-1, 1]). */
export const TINY_PREPROCESSOR_CONFIG = {
  image_processor_type: 'SiglipImageProcessor',
  do_resize: true,
  size: { height: FRAME_SIZE, width: FRAME_SIZE },
  resample: 3,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.5, 0.5, 0.5],
  image_std: [0.5, 0.5, 0.5],
} as const;

/** config.json of the tiny LLaVA-Video model for a tokenizer (the world's). */
/** The language model's sizes, the same in both tiny models (the reasons are above). */
const TINY_LM_SIZES = {
  hidden_size: 128,
  intermediate_size: 352,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 4096,
} as const;

/** A token's id in `tokenizer`, for a config made for it. */
function tokenIds(tokenizer: Tokenizer, what: string): (token: string) => number {
  return (token) => {
    const found = tokenizer.tokenToId(token);
    if (found === undefined) throw new Error(`${what}: the tokenizer has no '${token}'`);
    return found;
  };
}

/**
 * The text_config of the tiny models whose language model is Qwen2's (VideoLLaMA3, InternVL; Qwen2.5-VL's with
 * M-RoPE): the LLaVA-Video tiny model's sizes, untied, Qwen2's token ids from `tokenizer`; `extra` overrides.
 */
function tinyQwen2TextConfig(tokenizer: Tokenizer, what: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const id = tokenIds(tokenizer, what);
  const endOfText = id('<|endoftext|>');
  return {
    model_type: 'qwen2',
    vocab_size: tokenizer.vocabSize,
    ...TINY_LM_SIZES,
    rms_norm_eps: 1e-6,
    rope_parameters: { rope_type: 'default', rope_theta: 10000.0 },
    hidden_act: 'silu',
    tie_word_embeddings: false,
    use_sliding_window: false,
    bos_token_id: endOfText,
    eos_token_id: tokenizer.eos?.id ?? id('<|im_end|>'),
    pad_token_id: tokenizer.pad?.id ?? endOfText,
    ...extra,
  };
}

export function tinyModelConfig(tokenizer: Tokenizer): Record<string, unknown> {
  const id = tokenIds(tokenizer, 'tinyModelConfig');
  const endOfText = id('<|endoftext|>');
  return {
    architectures: ['LlavaQwenForCausalLM'],
    model_type: 'llava_qwen',
    vocab_size: tokenizer.vocabSize,
    ...TINY_LM_SIZES,
    rope_theta: 10000.0,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    hidden_act: 'silu',
    use_sliding_window: false,
    sliding_window: null,
    max_window_layers: 4,
    bos_token_id: endOfText,
    eos_token_id: tokenizer.eos?.id ?? id('<|im_end|>'),
    pad_token_id: tokenizer.pad?.id ?? endOfText,
    use_cache: true,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    torch_dtype: 'float32',
    rope_scaling: null,
    mm_vision_tower: 'tpo-synthetic-siglip-64',
    mm_hidden_size: 96,
    mm_projector_type: 'mlp2x_gelu',
    mm_vision_select_layer: -2,
    mm_vision_select_feature: 'patch',
    mm_patch_merge_type: 'spatial_unpad',
    mm_newline_position: 'grid',
    mm_spatial_pool_mode: 'average',
    mm_spatial_pool_stride: 2,
    mm_pooling_position: 'before',
    image_aspect_ratio: 'anyres_max_9',
    add_faster_video: false,
    faster_token_stride: 10,
    mm_use_im_start_end: false,
    mm_use_im_patch_token: false,
    tokenizer_padding_side: 'right',
    tokenizer_model_max_length: 4096,
    use_mm_proj: true,
    use_pos_skipping: false,
    image_token_index: -200,
    vision_config: {
      model_type: 'siglip_vision_model',
      image_size: FRAME_SIZE,
      patch_size: 8,
      hidden_size: 96,
      intermediate_size: 384,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      num_channels: 3,
      layer_norm_eps: 1e-6,
      hidden_act: 'gelu_pytorch_tanh',
      attention_dropout: 0.0,
      num_hidden_layers_in_checkpoint: 3,
    },
  };
}

/**
 * preprocessor_config.json of the tiny Video-LLaVA model: Video-LLaVA's processor (CLIP's: the shortest edge
 * resized, a centre crop, OpenAI CLIP's mean and std) at the world's frame size.
 */
export const TINY_VIDEO_LLAVA_PREPROCESSOR_CONFIG = {
  ...TINY_PREPROCESSOR_CONFIG,
  image_processor_type: 'VideoLlavaImageProcessor',
  size: { shortest_edge: FRAME_SIZE },
  do_center_crop: true,
  crop_size: { height: FRAME_SIZE, width: FRAME_SIZE },
  image_mean: OPENAI_CLIP_MEAN,
  image_std: OPENAI_CLIP_STD,
} as const;

/**
 * config.json of a tiny Video-LLaVA (LLaVA-Hound's architecture: VideoLlavaForConditionalGeneration) for the
 * world's Video-LLaVA tokenizer, as transformers writes video_llava configs: CLIP towers on the 64 x 64 frames in
 * 16 x 16 patches (4 x 4 patches and the class token: 17 tokens a frame, every one kept, as Video-LLaVA keeps them;
 * 8 frames, Video-LLaVA's count, are 136 tokens), the layer before the last, a GELU projector, and a LLaMA LM of
 * the LLaVA-Video tiny model's width (no biases, 4 heads over 2 key/value heads).
 */
export function tinyVideoLlavaConfig(tokenizer: Tokenizer): Record<string, unknown> {
  const id = tokenIds(tokenizer, 'tinyVideoLlavaConfig');
  return {
    architectures: ['VideoLlavaForConditionalGeneration'],
    model_type: 'video_llava',
    image_token_index: id('<|im_start|>'),  // unused: tpo encodes videos; an in-vocabulary id as transformers asks
    video_token_index: id('<|im_end|>'),    // transformers' expanded form only; tpo's prompts hold -200
    projector_hidden_act: 'gelu',
    vision_feature_select_strategy: 'default',
    vision_feature_layer: -2,
    image_seq_length: 16,
    video_seq_length: 8 * 17,
    multimodal_projector_bias: true,
    tie_word_embeddings: false,
    initializer_range: 0.02,
    text_config: {
      model_type: 'llama',
      vocab_size: tokenizer.vocabSize,
      ...TINY_LM_SIZES,
      rms_norm_eps: 1e-5,
      rope_parameters: { rope_type: 'default', rope_theta: 10000.0 },
      attention_bias: false,
      mlp_bias: false,
      hidden_act: 'silu',
      tie_word_embeddings: false,
      bos_token_id: id('<s>'),
      eos_token_id: id('</s>'),
      pad_token_id: tokenizer.pad?.id ?? id('<|endoftext|>'),
    },
    vision_config: {
      model_type: 'clip_vision_model',
      image_size: FRAME_SIZE,
      patch_size: 16,
      hidden_size: 96,
      intermediate_size: 384,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      num_channels: 3,
      layer_norm_eps: 1e-5,
      hidden_act: 'quick_gelu',
      projection_dim: 96,
    },
  };
}

/**
 * video_preprocessor_config.json of the tiny VideoLLaMA3 model: VideoLlama3VideoProcessor's fields with a pixel
 * budget that keeps the world's 64 x 64 frames at 64 x 64 up to 16 frames (longest_edge / frames >= 64 * 64).
 */
export const TINY_VIDEO_LLAMA3_PROCESSOR_CONFIG = {
  ...(({ image_processor_type: _, size: __, ...pixels }) => pixels)(TINY_PREPROCESSOR_CONFIG),  // rescale, normalise
  video_processor_type: 'VideoLlama3VideoProcessor',
  size: { shortest_edge: 16 * 16, longest_edge: FRAME_SIZE * FRAME_SIZE * 16 },
  patch_size: 8,
  merge_size: 2,
  temporal_patch_size: 1,
  min_frames: 4,
  max_frames: 180,
  use_token_compression: true,
} as const;

/**
 * config.json of a tiny VideoLLaMA3 (VideoLlama3ForConditionalGeneration) for the world's video-llama3 tokenizer, as
 * transformers writes video_llama_3 configs: its vision model (8 x 8 patches with 2D RoPE, merged 2 x 2: 16 tokens
 * a 64 x 64 frame before compression), the projector and a Qwen2 LM of the LLaVA-Video tiny model's sizes.
 */
export function tinyVideoLlama3Config(tokenizer: Tokenizer): Record<string, unknown> {
  const id = tokenIds(tokenizer, 'tinyVideoLlama3Config');
  return {
    architectures: ['VideoLlama3ForConditionalGeneration'],
    model_type: 'video_llama_3',
    image_token_id: id('<|image_pad|>'),
    video_token_id: id('<|video_pad|>'),
    tie_word_embeddings: false,
    text_config: tinyQwen2TextConfig(tokenizer, 'tinyVideoLlama3Config'),
    vision_config: {
      model_type: 'video_llama_3_vision',
      patch_size: 8,
      hidden_size: 96,
      intermediate_size: 384,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      num_channels: 3,
      layer_norm_eps: 1e-6,
      hidden_act: 'gelu_pytorch_tanh',
      rope_parameters: { rope_type: 'axial', rope_theta: 10000.0 },
    },
  };
}

/**
 * video_preprocessor_config.json of the tiny Qwen2.5-VL model, as transformers' Qwen2VLVideoProcessor saves it for
 * the tiny tower (patch 8, merge 2, 2 frames a temporal patch): Qwen2.5-VL's pixel budget per frame in its own
 * units (min_pixels 4, max_pixels 16384 merged patches of (8 x 2)^2 pixels, as 3136 and 12845056 are of 28^2), so
 * the world's 64 x 64 frames stay 64 x 64; OPENAI_CLIP's mean and std; no frame sampling (tpo samples).
 */
export const TINY_QWEN2_5_VL_PROCESSOR_CONFIG = {
  video_processor_type: 'Qwen2VLVideoProcessor',
  processor_class: 'Qwen2_5_VLProcessor',
  do_resize: true,
  size: { shortest_edge: 4 * 16 * 16, longest_edge: 16384 * 16 * 16 },
  min_pixels: 4 * 16 * 16,
  max_pixels: 16384 * 16 * 16,
  resample: 3,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: OPENAI_CLIP_MEAN,
  image_std: OPENAI_CLIP_STD,
  do_convert_rgb: true,
  patch_size: 8,
  temporal_patch_size: 2,
  merge_size: 2,
  do_sample_frames: false,
  min_frames: 4,
  max_frames: 768,
} as const;

/**
 * config.json of a tiny Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration) for the world's qwen2.5-vl tokenizer, as
 * transformers 5 writes qwen2_5_vl configs: the windowed ViT (8 x 8 patches of the 64 x 64 frames, 2 frames a
 * temporal patch, width 96, 4 blocks, windows of 2 x 2 merged tokens and full attention in blocks 1 and 3), the
 * merger (2 x 2 patches a token: 16 tokens per 2 frames) and a Qwen2 LM of the LLaVA-Video tiny model's sizes with
 * M-RoPE over its 32-wide heads, untied.
 */
export function tinyQwen2_5VLConfig(tokenizer: Tokenizer): Record<string, unknown> {
  const id = tokenIds(tokenizer, 'tinyQwen2_5VLConfig');
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    model_type: 'qwen2_5_vl',
    video_token_id: id('<|video_pad|>'),
    image_token_id: id('<|video_pad|>'),  // (tpo encodes videos only; the world has no image token)
    vision_start_token_id: id('<|vision_start|>'),
    vision_end_token_id: id('<|vision_end|>'),
    tie_word_embeddings: false,
    text_config: tinyQwen2TextConfig(tokenizer, 'tinyQwen2_5VLConfig', {
      model_type: 'qwen2_5_vl_text',
      rope_parameters: { rope_type: 'default', rope_theta: 10000.0, mrope_section: [4, 6, 6] },
    }),
    vision_config: {
      model_type: 'qwen2_5_vl_vision',
      depth: 4,
      hidden_size: 96,
      intermediate_size: 256,
      num_heads: 4,
      in_channels: 3,
      patch_size: 8,
      temporal_patch_size: 2,
      spatial_merge_size: 2,
      window_size: 32,
      fullatt_block_indexes: [1, 3],
      out_hidden_size: TINY_LM_SIZES.hidden_size,
      tokens_per_second: 2,
      hidden_act: 'silu',
      rope_parameters: { rope_type: 'axial', rope_theta: 10000.0 },
    },
  };
}

/**
 * video_preprocessor_config.json of the tiny InternVL model: InternVLVideoProcessor's fields, frames resized to the
 * tower's 64 x 64 (bicubic), rescaled, normalised with OPENAI_CLIP's mean and std (its defaults).
 */
export const TINY_INTERNVL_PROCESSOR_CONFIG = {
  video_processor_type: 'InternVLVideoProcessor',
  do_resize: true,
  size: { height: FRAME_SIZE, width: FRAME_SIZE },
  resample: 3,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: OPENAI_CLIP_MEAN,
  image_std: OPENAI_CLIP_STD,
  do_convert_rgb: true,
  initial_shift: true,
} as const;

/**
 * config.json of a tiny InternVL (InternVLForConditionalGeneration) for the world's internvl tokenizer, as
 * transformers writes internvl configs: InternViT (8 x 8 patches of the 64 x 64 frames, width 96, 3 layers, layer
 * norms, attention biases, no qk-norm: InternVL3's settings), pixel_shuffle by 0.5 (16 tokens a frame), the
 * projector and a Qwen2 LM of the LLaVA-Video tiny model's sizes, untied.
 */
export function tinyInternVLConfig(tokenizer: Tokenizer): Record<string, unknown> {
  const id = tokenIds(tokenizer, 'tinyInternVLConfig');
  return {
    architectures: ['InternVLForConditionalGeneration'],
    model_type: 'internvl',
    image_token_id: id('<IMG_CONTEXT>'),
    image_seq_length: 16,
    downsample_ratio: 0.5,
    projector_hidden_act: 'gelu',
    vision_feature_layer: -1,
    vision_feature_select_strategy: 'default',
    tie_word_embeddings: false,
    text_config: tinyQwen2TextConfig(tokenizer, 'tinyInternVLConfig'),
    vision_config: {
      model_type: 'internvl_vision',
      image_size: [FRAME_SIZE, FRAME_SIZE],
      patch_size: [8, 8],
      hidden_size: 96,
      intermediate_size: 384,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      num_channels: 3,
      norm_type: 'layer_norm',
      layer_norm_eps: 1e-6,
      hidden_act: 'gelu',
      attention_bias: true,
      use_qk_norm: false,
      use_mean_pooling: true,
      layer_scale_init_value: 0.1,
      use_absolute_position_embeddings: true,
    },
  };
}
