// A model and what turns data into its inputs: the tokenizer, the vision tower's preprocessing and the stop ids.
// One helper for decode -> (corrupt) -> preprocess -> encode, shared by generation, evaluation and training, so a
// video that cannot be decoded fails the same way everywhere (a VideoError naming it, which skip modes count).
import { encodePrompt } from '../data/encode.js';
import type { Tensor } from '../native.js';
import { tensor } from '../tensor.js';
import { corruptFrames, type CorruptOptions } from '../video/corrupt.js';
import { decodeVideo, probeVideo, type SamplePlan, shownTimes } from '../video/decode.js';
import { decodeSizeFor, loadPreprocessorConfig, preprocessFrames, type PreprocessorConfig } from '../video/preprocess.js';
import { loadInternVLProcessorConfig } from '../video/internvl.js';
import {
  loadVideoLlama3ProcessorConfig, preprocessVideoLlama3, type VideoLlama3ProcessorConfig, videoLlama3ResizeTarget,
} from '../video/video-llama3.js';
import { videoLlavaChatTemplate } from './templates.js';
import { Tokenizer, type VideoMarkup } from './tokenizer.js';
import { type FrameText, type LoadOptions, VideoLM } from './video-lm.js';

/** A video that could not be decoded or preprocessed (code ERR_TPO_VIDEO): a skip mode counts it and goes on. */
export class VideoError extends Error {
  readonly code = 'ERR_TPO_VIDEO';
  constructor(readonly path: string, override readonly cause: Error) {
    super(cause.message.includes(path) ? cause.message : `${path}: ${cause.message}`);
    this.name = 'VideoError';
  }
}

/** What to do with a video that cannot be decoded: count it and go on (the default), or stop the run. */
export const ON_VIDEO_ERROR = ['skip', 'stop'] as const;
export type OnVideoError = (typeof ON_VIDEO_ERROR)[number];

/** The architectures that take a video. */
const VIDEO_ARCHITECTURES: ReadonlySet<string> = new Set([
  'LlavaQwenForCausalLM', 'VideoLlavaForConditionalGeneration', 'VideoLlama3ForConditionalGeneration',
  'InternVLForConditionalGeneration', 'Qwen2_5_VLForConditionalGeneration',
]);

/** The most frames an InternVL video may have in a session (its frame text is set for this many). */
export const INTERNVL_MAX_FRAMES = 512;

/**
 * InternVLProcessor's text around each frame's visual tokens, as `tokenizer`'s ids: `Frame{i}: <img>` before
 * (after a `\n` from the second frame on), `</img>` after: replace_video_token's layout, for VideoLM.setFrameText.
 */
export function internvlFrameText(tokenizer: Tokenizer, frames = INTERNVL_MAX_FRAMES, source = 'the tokenizer'): { before: number[]; after: number[] }[] {
  const start = tokenizer.tokenToId('<img>'), end = tokenizer.tokenToId('</img>');
  if (start === undefined || end === undefined) {
    throw new Error(`${source}: InternVL's tokenizer must have the <img> and </img> tokens (its processor writes each frame between them)`);
  }
  return Array.from({ length: frames }, (_, i) => ({
    before: [...tokenizer.encode(`${i ? '\n' : ''}Frame${i + 1}: `, { addSpecialTokens: false }), start],
    after: [end],
  }));
}

/** Python's f"{x:.1f}" for x >= 0: the nearest tenth, a tie (x exactly k / 4, k odd) to the even one (toFixed
 * takes the larger). */
export function pythonFixed1(x: number): string {
  if (!Number.isInteger(4 * x) || Number.isInteger(2 * x)) return x.toFixed(1);
  const n = Math.floor(10 * x);  // (exact: 10 x = 2.5 k)
  const even = n % 2 === 0 ? n : n + 1;
  return `${Math.floor(even / 10)}.${even % 10}`;
}

/**
 * VideoLlama3Processor's text before each frame's kept tokens, as `tokenizer`'s ids: `Time {t:.1f}s:` (t the
 * frame's time stamp, seconds), after a `,` from the second frame on (replace_video_token's layout), for
 * VideoLM.encodeVideo's frameText.
 */
export function videoLlama3FrameText(tokenizer: Tokenizer, timestamps: readonly number[]): FrameText[] {
  return timestamps.map((t, i) => ({ before: tokenizer.encode(`${i ? ',' : ''}Time ${pythonFixed1(t)}s:`, { addSpecialTokens: false }), after: [] }));
}

export interface SessionOptions {
  /** Load the weights from this folder instead (a full checkpoint); tokenizer and preprocessing stay the model's. */
  weights?: string;
  /** A LoRA adapter folder (PEFT layout) to load onto the model. */
  adapter?: string;
  load?: LoadOptions;
}

/** Qwen2.5-VL's text around a video in a user turn (its chat template's video part), for Tokenizer.setVideoMarkup. */
export function qwen25vlVideoMarkup(tokenizer: Tokenizer, source = 'the tokenizer'): VideoMarkup {
  for (const token of ['<|vision_start|>', '<|vision_end|>']) {
    if (tokenizer.tokenToId(token) === undefined) throw new TypeError(`${source}: a Qwen2.5-VL tokenizer needs the token ${token}; it has none`);
  }
  return { before: '<|vision_start|>', after: '<|vision_end|>', separator: '' };
}

export class ModelSession implements Disposable {
  private constructor(
    readonly dir: string,
    readonly model: VideoLM,
    readonly tokenizer: Tokenizer,
    /** The tower's preprocessing; undefined for a text-only model. */
    readonly processor: PreprocessorConfig | undefined,
    /** VideoLLaMA3's video processor (each video resized by its own size; `processor` then only normalises). */
    readonly videoLlama3?: VideoLlama3ProcessorConfig,
  ) {}

  /** The model folder's tokenizer, preprocessor config (video models) and weights (or `weights`'), and `adapter`. */
  static async open(dir: string, options: SessionOptions = {}): Promise<ModelSession> {
    const tokenizer = await Tokenizer.load(dir);
    const model = await VideoLM.load(options.weights ?? dir, options.load);
    try {
      const videoLlama3 = model.info.architecture === 'VideoLlama3ForConditionalGeneration'
        ? await loadVideoLlama3ProcessorConfig(dir) : undefined;
      const internvl = model.info.architecture === 'InternVLForConditionalGeneration';
      const processor = videoLlama3 ? { do_resize: false, ...videoLlama3 }
        : internvl ? await loadInternVLProcessorConfig(dir)
        : VIDEO_ARCHITECTURES.has(model.info.architecture) ? await loadPreprocessorConfig(dir) : undefined;
      // InternVL's video layout: each frame's tokens between "FrameN: <img>" and "</img>", as its processor writes them.
      if (internvl) model.setFrameText(internvlFrameText(tokenizer, INTERNVL_MAX_FRAMES, dir));
      if (options.adapter) await model.loadLora(options.adapter);
      // Qwen2.5-VL's template writes a video part as <|vision_start|><|video_pad|><|vision_end|> before the text, a
      // string as it is: tpo's string prompts get the markers from the tokenizer's video markup.
      if (model.info.architecture === 'Qwen2_5_VLForConditionalGeneration') tokenizer.setVideoMarkup(qwen25vlVideoMarkup(tokenizer, dir));
      // Video-LLaVA's tokenizers carry no chat template for string messages: its conversation format is tpo's.
      if (model.info.architecture === 'VideoLlavaForConditionalGeneration') tokenizer.useTemplateIfNone(videoLlavaChatTemplate());
      return new ModelSession(dir, model, tokenizer, processor, videoLlama3);
    } catch (error) {
      model.dispose();
      throw error;
    }
  }

  /** The ids generation stops at: the tokenizer's eos and the chat template's end of turn. */
  get stopIds(): number[] {
    return [this.tokenizer.eos?.id, this.tokenizer.tokenToId('<|im_end|>')].filter((x): x is number => x !== undefined);
  }

  /** A user turn's prompt ids (the chat template, the generation prompt), as a 1-D tensor. */
  prompt(text: string): Tensor {
    const ids = encodePrompt(this.tokenizer, text).ids;
    return tensor(Int32Array.from(ids), [ids.length]);
  }

  /**
   * The frames `plan` picks, decoded, corrupted if asked, preprocessed for the tower: float32 [F, 3, S, S]. Frames
   * are decoded scaled down to the tower's box (decodeSizeFor), so a high-resolution video costs no more memory than
   * the tower needs.
   */
  async pixels(path: string, plan: SamplePlan, corrupt?: CorruptOptions): Promise<{ pixels: Tensor<'float32'>; indices: number[]; frameText?: FrameText[] }> {
    if (!this.processor) throw new TypeError(`${this.dir}: a ${this.model.info.architecture} model takes no video`);
    let frames: Tensor<'uint8'> | undefined;
    try {
      if (this.videoLlama3) return await this.#videoLlama3Pixels(path, plan, corrupt);
      const decoded = await decodeVideo(path, plan, { atLeast: decodeSizeFor(this.processor) });
      frames = decoded.frames;
      if (corrupt) {
        const corrupted = await corruptFrames(frames, corrupt);
        frames.dispose();
        frames = corrupted;
      }
      return { pixels: await preprocessFrames(frames, this.processor), indices: decoded.indices };
    } catch (error) {
      throw error instanceof VideoError ? error : new VideoError(path, error as Error);
    } finally {
      frames?.dispose();
    }
  }

  /**
   * VideoLLaMA3: its processor resizes each video by the video's own size and frame count (smart_resize); frames
   * are decoded scaled to twice that box, then resized to it exactly.
   */
  async #videoLlama3Pixels(path: string, plan: SamplePlan, corrupt?: CorruptOptions): Promise<{ pixels: Tensor<'float32'>; indices: number[]; frameText: FrameText[] }> {
    const config = this.videoLlama3!;
    const info = await probeVideo(path);
    // The frames the plan decodes, where it says (the box only bounds decoding memory, but it is also where the
    // resize starts from: a plan of the same frames by indices, as TimeWarp's, decodes as the uniform one does)
    const guess = plan.kind === 'uniform' ? plan.frames : plan.kind === 'indices' ? plan.indices.length
      : plan.kind === 'timestamps' ? plan.timestamps.length : 1;
    const box = videoLlama3ResizeTarget(info.height, info.width, guess, config);
    const decoded = await decodeVideo(path, plan, { atLeast: { width: 2 * box.width, height: 2 * box.height } });
    let frames = decoded.frames;
    try {
      if (corrupt) {
        const corrupted = await corruptFrames(frames, corrupt);
        frames.dispose();
        frames = corrupted;
      }
      // Its processor's time stamps: each frame's index over the video's frame rate (1 when unknown, as it takes),
      // in the video the plan's frames make (a manipulated input's own times: shownTimes).
      const fps = decoded.info.fps > 0 ? decoded.info.fps : 1;
      const frameText = videoLlama3FrameText(this.tokenizer, shownTimes(plan, decoded.indices.map((i) => i / fps)));
      return { pixels: await preprocessVideoLlama3(frames, info, config), indices: decoded.indices, frameText };
    } finally {
      frames.dispose();
    }
  }

  /**
   * The video's visual tokens [V, D]: decoded, preprocessed and encoded once, for every prompt that shares them
   * (VideoLLaMA3: with its processor's time stamp before each frame's tokens); `video` is what a generate /
   * logprobs call takes for them (Qwen2.5-VL's with their grid, whose M-RoPE positions they take).
   */
  async videoTokens(path: string, plan: SamplePlan, corrupt?: CorruptOptions): Promise<{
    tokens: Tensor<'float32'>; indices: number[]; video: { videoTokens: Tensor; videoGridThw?: Tensor };
  }> {
    const { pixels, indices, frameText } = await this.pixels(path, plan, corrupt);
    try {
      const tokens = await this.model.encodeVideo(pixels, frameText ? { frameText } : {});
      return { tokens, indices, video: { videoTokens: tokens, ...this.#videoGrid(pixels.shape) } };
    } finally {
      pixels.dispose();
    }
  }

  /** Qwen2.5-VL: video_grid_thw of preprocessed frames [T, 3, H, W], as its patchify pads T to temporal patches. */
  #videoGrid(shape: readonly number[]): { videoGridThw?: Tensor } {
    if (this.model.info.architecture !== 'Qwen2_5_VLForConditionalGeneration') return {};
    const vision = (JSON.parse(this.model.info.config) as { vision_config?: { patch_size?: number; temporal_patch_size?: number } })
      .vision_config ?? {};
    const patch = vision.patch_size ?? 14, temporal = vision.temporal_patch_size ?? 2;
    const [frames, , height, width] = shape as [number, number, number, number];
    const grid = [Math.ceil(frames / temporal), height / patch, width / patch];
    return { videoGridThw: tensor(BigInt64Array.from(grid.map(BigInt)), [1, 3]) };
  }

  dispose(): void {
    this.model.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Whether `error` is a video a skip mode may count and go past. */
export function isVideoError(error: unknown): error is VideoError {
  return error instanceof VideoError;
}
