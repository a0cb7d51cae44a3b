// The video LMM from TypeScript: LLaVA-Video / LongVA (LlavaQwenForCausalLM), Video-LLaVA / LLaVA-Hound
// (VideoLlavaForConditionalGeneration), VideoLLaMA3, InternVL (InternVLForConditionalGeneration), Qwen2.5-VL
// (Qwen2_5_VLForConditionalGeneration), plain Qwen2ForCausalLM / LlamaForCausalLM, and the SigLIP / CLIP towers alone, loaded from their own checkpoint folders (native/model/).
import { existsSync } from 'node:fs';

import { z } from 'zod';

import { type DType, DTYPES, native, type NativeModel, type NativeModelInfo, type Tensor } from '../native.js';
import { checkFolderFiles, prepareOutputDir } from '../paths.js';
import { parse } from '../validate.js';
import { ByteSize } from './safetensors.js';

export type { NativeModelInfo as ModelInfo };

const LoadOptions = z.strictObject({
  /** Convert floating-point weights (e.g. bf16 checkpoints to float32); default: as stored. */
  dtype: z.enum(DTYPES).optional(),
  /** config.json fields to override, as lmms-eval overrides mm_spatial_pool_mode / mm_newline_position. */
  overrides: z.record(z.string(), z.unknown()).optional(),
  /** "cpu" (default), "cuda" or "cuda:N": CUDA needs an addon built against a CUDA libtorch. */
  device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'cpu, cuda or cuda:N').optional(),
  /**
   * Use the weights straight from the files' memory mappings (no copy; pages shared with other processes that map
   * the same files) instead of reading them into private memory (the default). The files must then not be
   * truncated or rewritten in place while the model lives: a change seen between calls is an error, one during a
   * call raises SIGBUS. Replacing a file by rename is safe.
   */
  mmap: z.boolean().optional(),
});
export type LoadOptions = z.input<typeof LoadOptions>;

const ForwardInputs = z.strictObject({
  inputIds: z.custom<Tensor>().optional(),
  attentionMask: z.custom<Tensor>().optional(),
  /** Preprocessed frames [F, 3, S, S] of one video; it replaces the -200 id in every row. InternVL's pixel_values
   * (its processor's frames of one video, each an image) by transformers' name. */
  pixelValues: z.custom<Tensor>().optional(),
  /**
   * The same video by transformers' name and shape: Video-LLaVA's pixel_values_videos [1, F, 3, S, S]; with
   * videoGridThw, VideoLLaMA3's and Qwen2.5-VL's, their processors' flattened patches [t*h*w, 3*p*p] (Qwen2.5-VL:
   * [t*h*w, 3*temporal_patch_size*p*p]). Qwen2.5-VL's frames [T, 3, H, W] go in pixelValues (patchified as its
   * processor does).
   */
  pixelValuesVideos: z.custom<Tensor>().optional(),
  /** VideoLLaMA3, Qwen2.5-VL: video_grid_thw of one video, [1, 3] (temporal patches, patch rows, patch columns). */
  videoGridThw: z.custom<Tensor>().optional(),
  /** VideoLLaMA3: video_merge_sizes, [1] (default: 2, its processor's merge_size). */
  videoMergeSizes: z.custom<Tensor>().optional(),
  /** VideoLLaMA3: video_compression_mask, one bool per merged token (default: its processor's rule on the patches). */
  videoCompressionMask: z.custom<Tensor>().optional(),
  /** Qwen2.5-VL: second_per_grid_ts of one video, [1]: the seconds a temporal patch spans (its M-RoPE's time scale;
   * default: the processor's temporal_patch_size / fps at fps 2). */
  secondPerGridTs: z.custom<Tensor>().optional(),
  outputHiddenStates: z.boolean().optional(),
});
export type ForwardInputs = z.input<typeof ForwardInputs>;

const Ids = z.custom<Tensor>((t) => t instanceof Object && 'dtype' in (t as object), 'a Tensor of token ids');
/** The token ids a processor writes before and after one frame's visual tokens (setFrameText, encodeVideo). */
const FrameText = z.strictObject({ before: z.array(z.int().nonnegative()).optional(), after: z.array(z.int().nonnegative()).optional() });
export type FrameText = z.input<typeof FrameText>;
/** The video of a call: frames [F, 3, S, S] (encoded in the call) or visual tokens [V, D] from encodeVideo. */
const Video = {
  pixelValues: z.custom<Tensor>().optional(),
  videoTokens: z.custom<Tensor>().optional(),
  /** Qwen2.5-VL's videoTokens: their video's grid [t, h, w] (video_grid_thw; ModelSession.videoTokens), whose
   * M-RoPE positions they take; with them or with frames, the video's seconds a temporal patch spans (its processor's
   * second_per_grid_ts, per video: ModelSession.pixels; default: the model's, setSecondPerGridTs). */
  videoGridThw: z.custom<Tensor>().optional(),
  secondPerGridTs: z.number().nonnegative().optional(),
};

const GenerateOptions = z.strictObject({
  /** 1-D id tensors, each with the image id once (all about the same video) or none. */
  prompts: z.array(Ids).min(1),
  ...Video,
  maxNewTokens: z.int().min(1).max(1 << 20).default(64),
  /** 0: greedy. */
  temperature: z.number().min(0).default(0),
  topP: z.number().gt(0).max(1).default(1),
  seed: z.int().nonnegative().default(0),
  /** Ids that end a row (the tokenizer's eos and end-of-turn). */
  stopIds: z.array(z.int()).default([]),
  /** false: a full forward per token, the reference the KV cache is checked against. */
  useCache: z.boolean().default(true),
  /** Run the positions every prompt starts with (the system text and the video) once, not once per prompt. */
  sharePrefix: z.boolean().default(true),
});
export type GenerateOptions = z.input<typeof GenerateOptions>;

const LogprobOptions = z.strictObject({
  /** The prompt's ids (1-D, the image id once when there is a video). */
  prompt: Ids,
  /** Each answer's ids (1-D, at least one token). */
  answers: z.array(Ids).min(1),
  ...Video,
  /** Run the prompt once and let every answer attend to it (default); false: one full sequence per answer. */
  sharePrefix: z.boolean().default(true),
});
export type LogprobOptions = z.input<typeof LogprobOptions>;

const LogprobBatchOptions = z.strictObject({
  /** Prompts about one video, each with the answers to score after it. */
  items: z.array(z.strictObject({ prompt: Ids, answers: z.array(Ids).min(1) })).min(1),
  ...Video,
  /** Run what every prompt starts with (the system text and the video) once for all of them (default). */
  sharePrefix: z.boolean().default(true),
});
export type LogprobBatchOptions = z.input<typeof LogprobBatchOptions>;

const LoraOptions = z.strictObject({
  r: z.int().min(1).default(8),
  alpha: z.number().positive().default(16),
  dropout: z.number().min(0).max(1).default(0),
  targetModules: z.array(z.string()).min(1).default(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']),
  seed: z.int().nonnegative().default(0),
});
export type LoraOptions = z.input<typeof LoraOptions>;

const SaveOptions = z.strictObject({
  /** Key layout to write; default: the one it was loaded from. */
  layout: z.enum(['llava-next', 'video-llava', 'hf', 'hf-legacy']).optional(),
  maxShardSize: ByteSize.optional(),
});
export type SaveOptions = z.input<typeof SaveOptions>;

/** What a folder the native loader opens holds is files (a missing folder: the loader names the file it needs). */
function checkExisting(dir: string, names: RegExp, what: string): void {
  if (existsSync(dir)) checkFolderFiles(dir, names, what);
}

/** The files of a model folder the native loader opens. */
const MODEL_FILES = /^(config\.json|.*\.safetensors|.*\.safetensors\.index\.json)$/;

/**
 * A loaded model. Calls on one model may be made without awaiting the last (they run off the event loop, in call
 * order on the engine thread):
 * - forward, encodeVideo, generate, logprobs, logprobsBatch, save and saveLora only read the weights;
 * - training steps and loadLora run alone, waiting (off the event loop) for the calls in flight;
 * - addLora, mergeLora, setTrainable and setGradientCheckpointing are synchronous: while any call is in flight they
 *   throw an error with code ERR_TPO_BUSY instead of waiting; await the calls first;
 * - setLoraEnabled applies to the calls made after it; each call runs wholly with the setting it was made with;
 * - dispose() while calls run is safe: they finish, and the memory goes with the last.
 */
export class VideoLM {
  readonly #model: NativeModel;

  private constructor(model: NativeModel) {
    this.#model = model;
  }

  /** Loads config.json and the safetensors weights (single or sharded; LLaVA-NeXT or HF key layout). */
  static async load(dir: string, options: LoadOptions = {}): Promise<VideoLM> {
    const { dtype, overrides, device, mmap } = parse(LoadOptions, options, 'VideoLM.load: options');
    checkExisting(parse(z.string().min(1), dir, 'VideoLM.load: dir'), MODEL_FILES, 'a model folder');
    const model = await native().modelLoad(dir, {
      dtype: dtype as DType | undefined,
      overrides: overrides ? JSON.stringify(overrides) : undefined,
      device,
      mmap,
    });
    return new VideoLM(model);
  }

  /** A model with fresh random weights (transformers' initialisation) from a config.json object, seeded. */
  static async create(
    config: Record<string, unknown>, options: { seed?: number; dtype?: DType; device?: string } = {},
  ): Promise<VideoLM> {
    const { seed, dtype, device } = parse(
      z.strictObject({ seed: z.int().nonnegative().default(0), dtype: z.enum(DTYPES).optional(), device: LoadOptions.shape.device }),
      options, 'VideoLM.create: options');
    const model = await native().modelCreate(JSON.stringify(parse(z.record(z.string(), z.unknown()), config, 'VideoLM.create: config')),
      { seed, dtype: dtype as DType | undefined, device });
    return new VideoLM(model);
  }

  /** The native handle, for other native calls that take a model (training). */
  get native(): NativeModel {
    return this.#model;
  }

  get info(): NativeModelInfo {
    return this.#model.info;
  }

  /** The config as loaded (overrides applied). */
  get config(): Record<string, unknown> {
    return JSON.parse(this.#model.info.config) as Record<string, unknown>;
  }

  /**
   * A full forward pass. Returns logits and, for parity checks and analysis, the intermediate tensors:
   * vision_features, projected, pooled, video_tokens, inputs_embeds, last_hidden_state, hidden_states.N.
   */
  async forward(inputs: ForwardInputs): Promise<Record<string, Tensor>> {
    const { pixelValuesVideos, ...rest } = parse(ForwardInputs, inputs, 'VideoLM.forward');
    if (pixelValuesVideos === undefined || rest.videoGridThw !== undefined) {
      // (VideoLLaMA3's patches go to the native call as they are, with their grid)
      return this.#model.forward(pixelValuesVideos === undefined ? rest : { ...rest, pixelValues: pixelValuesVideos });
    }
    const shape = pixelValuesVideos.shape;
    if (rest.pixelValues !== undefined || shape.length !== 5 || shape[0] !== 1) {
      throw Object.assign(new TypeError(
        `VideoLM.forward: pixelValuesVideos must be one video [1, frames, 3, S, S] (got [${shape.join(', ')}])` +
        (rest.pixelValues !== undefined ? ', and not beside pixelValues' : ''),
      ), { code: 'ERR_TPO_ARGUMENT' });
    }
    using frames = pixelValuesVideos.reshape(shape.slice(1));
    return await this.#model.forward({ ...rest, pixelValues: frames });
  }

  /**
   * Preprocessed frames [F, 3, S, S] -> the visual tokens [V, hidden] that replace the -200 id. `frameText`: this
   * video's text around each frame (as setFrameText's; VideoLLaMA3's time stamps, which differ by video: session.ts
   * videoLlama3FrameText), instead of the model's.
   */
  encodeVideo(pixels: Tensor, options: { frameText?: FrameText[] } = {}): Promise<Tensor<'float32'>> {
    const { frameText } = parse(z.strictObject({ frameText: z.array(FrameText).optional() }), options, 'VideoLM.encodeVideo: options');
    return frameText === undefined ? this.#model.encodeVideo(pixels) : this.#model.encodeVideo(pixels, frameText);
  }

  /**
   * How many visual tokens `frames` frames become (the rows encodeVideo returns), from the config alone: with the
   * prompt's and answer's tokens it must fit `maxPositions`, checked before a video is decoded.
   */
  videoTokenCount(frames: number): number {
    return this.#model.videoTokenCount(parse(z.int().nonnegative(), frames, 'VideoLM.videoTokenCount: frames'));
  }

  /**
   * InternVL: the token ids its processor writes around each frame's visual tokens (`Frame1: <img>` before, `</img>`
   * after, `\n` between frames), one entry per frame, as many frames as a video may have. With them set, the visual
   * tokens of encodeVideo (and of a video at the -200 placeholder) hold these ids' embeddings around each frame's
   * tokens, and videoTokenCount counts them; [] goes back to the frames' tokens alone. Synchronous: refused
   * (ERR_TPO_BUSY) while calls on the model run.
   */
  setFrameText(frames: FrameText[]): void {
    const text = parse(z.array(FrameText), frames, 'VideoLM.setFrameText');
    this.#model.setFrameText(text);
    this.#hasFrameText = text.some((f) => (f.before?.length ?? 0) + (f.after?.length ?? 0) > 0);
  }

  #hasFrameText = false;

  /**
   * Whether setFrameText put token embeddings among the visual tokens: then encodeVideo's tokens depend on
   * embed_tokens too, not on the tower and projector alone.
   */
  get hasFrameText(): boolean {
    return this.#hasFrameText;
  }

  /**
   * Qwen2.5-VL: the seconds a temporal patch spans (its processor's second_per_grid_ts = temporal_patch_size / fps;
   * the M-RoPE's time scale) for a call that gives no `secondPerGridTs` of its own (ModelSession gives each video's).
   * Default: fps 2.
   * Synchronous: refused (ERR_TPO_BUSY) while calls on the model run.
   */
  setSecondPerGridTs(seconds: number): void {
    this.#model.setSecondPerGridTs(parse(z.number().nonnegative(), seconds, 'VideoLM.setSecondPerGridTs'));
  }

  /** The longest sequence the language model takes (config.json's max_position_embeddings). */
  get maxPositions(): number {
    const value = this.config.max_position_embeddings;
    return typeof value === 'number' ? value : 32768;
  }

  /**
   * Throws (ERR_TPO_ARGUMENT) unless `frames` frames and `textTokens` more fit max_position_embeddings: the check
   * to make before decoding a video, so that too many frames are an error naming the numbers, not an allocation.
   */
  assertVideoFits(frames: number, textTokens = 0, what = 'video'): void {
    const visual = this.videoTokenCount(frames);
    if (visual + textTokens > this.maxPositions) {
      throw Object.assign(new RangeError(
        `${what}: ${frames} frames make ${visual} visual tokens` + (textTokens ? ` (+ ${textTokens} text tokens)` : '') +
        `, more than max_position_embeddings (${this.maxPositions}) of ${this.info.source}`,
      ), { code: 'ERR_TPO_ARGUMENT' });
    }
  }

  /** Generates for several prompts about one video in one native call (KV cache, greedy or sampled). */
  generate(options: GenerateOptions): Promise<{ tokens: number[][]; finishReasons: ('stop' | 'length')[] }> {
    return this.#model.generate(parse(GenerateOptions, options, 'VideoLM.generate'));
  }

  /**
   * log p(answer | prompt, video) for each answer, summed (`sums`) and per token. Only answer positions go through
   * lm_head; with sharePrefix the prompt and video run once for all answers.
   */
  logprobs(options: LogprobOptions): Promise<{ sums: Tensor<'float32'>; tokenLogprobs: Tensor<'float32'>[] }> {
    return this.#model.logprobs(parse(LogprobOptions, options, 'VideoLM.logprobs'));
  }

  /**
   * logprobs for several prompts about one video in one call (an evaluation's questions, each with its options):
   * what every prompt starts with runs once, then each prompt's own part and answers. One result per item.
   */
  logprobsBatch(options: LogprobBatchOptions): Promise<{ sums: Tensor<'float32'>; tokenLogprobs: Tensor<'float32'>[] }[]> {
    return this.#model.logprobsBatch(parse(LogprobBatchOptions, options, 'VideoLM.logprobsBatch'));
  }

  /** Attaches LoRA adapters (PEFT's initialisation: B = 0, so outputs do not change yet). Returns the layer count. */
  addLora(options: LoraOptions = {}): number {
    return this.#model.addLora(parse(LoraOptions, options, 'VideoLM.addLora'));
  }

  /** Switches every adapter off (the base model, DPO's reference) or on. */
  setLoraEnabled(enabled: boolean): void {
    this.#model.setLoraEnabled(parse(z.boolean(), enabled, 'VideoLM.setLoraEnabled'));
  }

  /** Folds the adapters into the weights (W += alpha / r * B A) and removes them. */
  mergeLora(): number {
    return this.#model.mergeLora();
  }

  /** PEFT layout: adapter_config.json + adapter_model.safetensors. */
  saveLora(dir: string): Promise<void> {
    prepareOutputDir(parse(z.string().min(1), dir, 'VideoLM.saveLora: dir'), 'an adapter folder');
    return this.#model.saveLora(dir);
  }

  loadLora(dir: string): Promise<void> {
    checkExisting(parse(z.string().min(1), dir, 'VideoLM.loadLora: dir'), /^adapter_/, 'an adapter folder');
    return this.#model.loadLora(dir);
  }

  /** Which parts train (the rest are frozen). Returns the number of trainable weights. */
  setTrainable(parts: { vision?: boolean; projector?: boolean; language?: boolean; lora?: boolean }): number {
    return this.#model.setTrainable(
      parse(z.strictObject({ vision: z.boolean().optional(), projector: z.boolean().optional(), language: z.boolean().optional(), lora: z.boolean().optional() }),
        parts, 'VideoLM.setTrainable'),
    );
  }

  /**
   * Activation checkpointing (transformers' gradient_checkpointing_enable): each decoder layer, and each tower
   * layer when the tower trains, keeps only its inputs and recomputes the rest in the backward pass. For long video
   * contexts: much less memory for about one more forward pass of time.
   */
  setGradientCheckpointing(enabled: boolean): void {
    this.#model.setGradientCheckpointing(parse(z.boolean(), enabled, 'VideoLM.setGradientCheckpointing'));
  }

  /** Writes config.json and the weights (atomically, sharded past maxShardSize). Returns the file names. */
  save(dir: string, options: SaveOptions = {}): Promise<string[]> {
    const { layout, maxShardSize } = parse(SaveOptions, options, 'VideoLM.save: options');
    prepareOutputDir(parse(z.string().min(1), dir, 'VideoLM.save: dir'), 'a model folder');
    return this.#model.save(dir, { layout, maxShardBytes: maxShardSize });
  }

  dispose(): void {
    this.#model.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
