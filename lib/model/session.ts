// A model and what turns data into its inputs: the tokenizer, the vision tower's preprocessing and the stop ids.
// One helper for decode -> (corrupt) -> preprocess -> encode, shared by generation, evaluation and training, so a
// video that cannot be decoded fails the same way everywhere (a VideoError naming it, which skip modes count).
import { encodePrompt } from '../data/encode.js';
import type { Tensor } from '../native.js';
import { tensor } from '../tensor.js';
import { corruptFrames, type CorruptOptions } from '../video/corrupt.js';
import { decodeVideo, probeVideo, type SamplePlan, shownDuration, shownTimes } from '../video/decode.js';
import { decodeSizeFor, loadPreprocessorConfig, preprocessFrames, type PreprocessorConfig } from '../video/preprocess.js';
import { internvlFrameIndices, type InternVLSampleOptions, loadInternVLProcessorConfig, loadInternVLSampling } from '../video/internvl.js';
import {
  loadQwen25VLProcessorConfig, preprocessQwen25VL, type Qwen25VLProcessorConfig, qwen25vlFrameIndices, qwen25vlResizeTarget,
  qwen25vlSecondPerGridT,
} from '../video/qwen2-5-vl.js';
import {
  loadVideoLlama3ProcessorConfig, preprocessVideoLlama3, type VideoLlama3ProcessorConfig, videoLlama3FrameIndices, videoLlama3ResizeTarget,
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

/**
 * A video's frames as ModelSession.pixels makes them, with what its processor lays out by the video itself: every
 * path (generation, eval, training) passes these on, so each sees the same layout.
 */
export interface VideoPixels {
  /** float32 [F, 3, H, W], preprocessed for the tower. */
  pixels: Tensor<'float32'>;
  indices: number[];
  /** VideoLLaMA3: its time stamp before each frame's tokens ("Time t.ts:"). */
  frameText?: FrameText[];
  /** Qwen2.5-VL: second_per_grid_ts, the seconds a temporal patch of these frames spans (M-RoPE's time scale). */
  secondPerGridTs?: number;
}

/** What generate / logprobs take for a video's visual tokens: Qwen2.5-VL's with their grid and time scale. */
export interface EncodedVideo {
  videoTokens: Tensor;
  videoGridThw?: Tensor;
  secondPerGridTs?: number;
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

/** How frames are sampled from each video: `frames` uniformly (TPO's recipe, LLaVA-Video's and LongVA's), or as the
 * model's own processor samples them (ModelSession.processorSamplePlan). */
export const SAMPLINGS = ['uniform', 'processor'] as const;
export type Sampling = (typeof SAMPLINGS)[number];

/**
 * What a processor call's keyword arguments set for its sampling, over the model folder's config: `fps` frames a
 * second, or `numFrames` (num_frames); either one replaces both of the config's (they are mutually exclusive).
 */
export interface ProcessorSamplingOptions {
  fps?: number | undefined;
  numFrames?: number | undefined;
}

/** The architectures whose processors sample frames by a rule of their own (sample_frames), by their names. */
const PROCESSOR_RULES: Readonly<Record<string, string>> = {
  VideoLlama3ForConditionalGeneration: "VideoLlama3VideoProcessor.sample_frames (lib/video/video-llama3.ts)",
  Qwen2_5_VLForConditionalGeneration: "Qwen2VLVideoProcessor.sample_frames (lib/video/qwen2-5-vl.ts)",
  InternVLForConditionalGeneration: "InternVLVideoProcessor.sample_frames (lib/video/internvl.ts)",
};

/** A sampling setting of a processor config file: a number, or null / absent (unset, as the hub's files write it). */
export class ModelSession implements Disposable {
  /** InternVL: its video processor config's sampling settings (num_frames, fps, initial_shift). */
  #internvlSampling: InternVLSampleOptions | undefined;

  private constructor(
    readonly dir: string,
    readonly model: VideoLM,
    readonly tokenizer: Tokenizer,
    /** The tower's preprocessing; undefined for a text-only model. */
    readonly processor: PreprocessorConfig | undefined,
    /** VideoLLaMA3's video processor (each video resized by its own size; `processor` then only normalises). */
    readonly videoLlama3?: VideoLlama3ProcessorConfig,
    /** Qwen2.5-VL's video processor (each video resized by its own size, its own second_per_grid_ts). */
    readonly qwen25vl?: Qwen25VLProcessorConfig,
  ) {}

  /** The model folder's tokenizer, preprocessor config (video models) and weights (or `weights`'), and `adapter`. */
  static async open(dir: string, options: SessionOptions = {}): Promise<ModelSession> {
    const tokenizer = await Tokenizer.load(dir);
    const model = await VideoLM.load(options.weights ?? dir, options.load);
    try {
      const videoLlama3 = model.info.architecture === 'VideoLlama3ForConditionalGeneration'
        ? await loadVideoLlama3ProcessorConfig(dir) : undefined;
      const qwen25vl = model.info.architecture === 'Qwen2_5_VLForConditionalGeneration'
        ? await loadQwen25VLProcessorConfig(dir) : undefined;
      const internvl = model.info.architecture === 'InternVLForConditionalGeneration';
      const own = videoLlama3 ?? qwen25vl;
      const processor = own ? { do_resize: false, ...own }
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
      const session = new ModelSession(dir, model, tokenizer, processor, videoLlama3, qwen25vl);
      if (internvl) session.#internvlSampling = await loadInternVLSampling(dir);
      return session;
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
   * The processor rule `processorSamplePlan` follows for this model, with the settings it samples by (the folder's
   * config under `options`), e.g. "Qwen2VLVideoProcessor.sample_frames (...): fps 2, frames within [4, 768]". An
   * architecture whose processor has no rule of its own (LLaVA-Video, LongVA, Video-LLaVA: their pipelines sample
   * `frames` uniformly), or settings that give none (neither fps nor num_frames: the processor would take every
   * frame), is an error naming the folder and the architecture, before any video is read.
   */
  processorSampling(options: ProcessorSamplingOptions = {}): string {
    return this.#processorRule(options).describe;
  }

  #processorRule(options: ProcessorSamplingOptions): { describe: string; indices: (total: number, fps: number | undefined) => number[] } {
    const architecture = this.model.info.architecture;
    const rule = PROCESSOR_RULES[architecture];
    if (!rule) {
      throw Object.assign(new TypeError(`${this.dir}: a ${architecture} model's processor has no frame-sampling rule of its own (` +
        'LLaVA-Video, LongVA and Video-LLaVA sample frames uniformly): use uniform sampling, with `frames` (--frames) for how many'),
      { code: 'ERR_TPO_ARGUMENT' });
    }
    if (options.fps !== undefined && options.numFrames !== undefined) {
      throw Object.assign(new TypeError(`${this.dir}: processor sampling takes fps or num_frames, not both (as ${rule.split(' ')[0]} does)`),
        { code: 'ERR_TPO_ARGUMENT' });
    }
    const own = this.videoLlama3 ?? this.qwen25vl ?? this.#internvlSampling ?? {};
    // A call's fps or num_frames replaces both of the config's, so the two never meet (sample_frames refuses both).
    const given = options.fps !== undefined || options.numFrames !== undefined;
    const fps = given ? options.fps : own.fps ?? undefined, numFrames = given ? options.numFrames : own.num_frames ?? undefined;
    if (fps === undefined && numFrames === undefined) {
      throw Object.assign(new TypeError(`${this.dir}: the ${architecture} model's video processor config sets neither fps nor num_frames, ` +
        'so its processor would take every frame of a video: give the sampling fps or frame count (samplingFps / samplingFrames, ' +
        'tpo eval\'s --sampling-fps / --sampling-frames; ' +
        "e.g. 2 fps, Qwen2.5-VL's card and qwen-vl-utils; 1 fps, VideoLLaMA3's)"), { code: 'ERR_TPO_ARGUMENT' });
    }
    const settings = numFrames !== undefined ? { fps: undefined, num_frames: numFrames } : { fps, num_frames: undefined };
    const what = numFrames !== undefined ? `num_frames ${numFrames}` : `fps ${fps}`;
    if (this.videoLlama3 || this.qwen25vl) {
      const config = { ...(this.videoLlama3 ?? this.qwen25vl)!, ...settings };
      const bounds = numFrames === undefined ? `, frames within [${config.min_frames}, ${config.max_frames}]` : '';
      return {
        describe: `${rule}: ${what}${bounds}`,
        indices: (total, videoFps) => this.videoLlama3
          ? videoLlama3FrameIndices(total, videoFps, config as VideoLlama3ProcessorConfig)
          : qwen25vlFrameIndices(total, videoFps, config as Qwen25VLProcessorConfig),
      };
    }
    const internvl: InternVLSampleOptions = {
      ...(this.#internvlSampling?.initial_shift === undefined ? {} : { initial_shift: this.#internvlSampling.initial_shift }),
      ...(numFrames !== undefined ? { num_frames: numFrames } : { fps: fps! }),
    };
    return { describe: `${rule}: ${what}`, indices: (total, videoFps) => internvlFrameIndices(total, videoFps, internvl) };
  }

  /**
   * The frames this model's own processor samples from the video at `path` (sample_frames with the folder's video
   * processor config, `options` over it), by index: the video is probed for its frame count (packets counted where
   * the container records none) and rate. A video that cannot be probed or sampled so (fewer frames than asked) is a
   * VideoError; a model without a rule is the error processorSampling describes.
   */
  async processorSamplePlan(path: string, options: ProcessorSamplingOptions = {}): Promise<{ kind: 'indices'; indices: number[] }> {
    const rule = this.#processorRule(options);
    try {
      const info = await probeVideo(path, { countFrames: true });
      return { kind: 'indices', indices: rule.indices(info.frameCount, info.fps > 0 ? info.fps : undefined) };
    } catch (error) {
      throw error instanceof VideoError ? error : new VideoError(path, error as Error);
    }
  }

  /**
   * The frames `plan` picks, decoded, corrupted if asked, preprocessed for the tower: float32 [F, 3, S, S]. Frames
   * are decoded scaled down to the tower's box (decodeSizeFor), so a high-resolution video costs no more memory than
   * the tower needs.
   */
  async pixels(path: string, plan: SamplePlan, corrupt?: CorruptOptions): Promise<VideoPixels> {
    if (!this.processor) throw new TypeError(`${this.dir}: a ${this.model.info.architecture} model takes no video`);
    let frames: Tensor<'uint8'> | undefined;
    try {
      if (this.videoLlama3 || this.qwen25vl) return await this.#ownSizePixels(path, plan, corrupt);
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
   * VideoLLaMA3 and Qwen2.5-VL: their processors resize each video by the video's own size and frame count
   * (smart_resize); frames are decoded scaled to twice that box, then resized to it exactly. With them, what else the
   * processor lays out by the video: VideoLLaMA3's time stamps, Qwen2.5-VL's second_per_grid_ts.
   */
  async #ownSizePixels(path: string, plan: SamplePlan, corrupt?: CorruptOptions): Promise<VideoPixels> {
    const info = await probeVideo(path);
    // The frames the plan decodes, where it says (the box only bounds decoding memory, but it is also where the
    // resize starts from: a plan of the same frames by indices, as TimeWarp's, decodes as the uniform one does)
    const guess = plan.kind === 'uniform' ? plan.frames : plan.kind === 'indices' ? plan.indices.length
      : plan.kind === 'timestamps' ? plan.timestamps.length : 1;
    const box = this.videoLlama3 ? videoLlama3ResizeTarget(info.height, info.width, guess, this.videoLlama3)
      : qwen25vlResizeTarget(info.height, info.width, guess, this.qwen25vl);
    const decoded = await decodeVideo(path, plan, { atLeast: { width: 2 * box.width, height: 2 * box.height } });
    let frames = decoded.frames;
    try {
      if (corrupt) {
        const corrupted = await corruptFrames(frames, corrupt);
        frames.dispose();
        frames = corrupted;
      }
      const fps = decoded.info.fps > 0 ? decoded.info.fps : undefined;
      if (this.videoLlama3) {
        // Its processor's time stamps: each frame's index over the video's frame rate (1 when unknown, as it
        // takes), in the video the plan's frames make (a manipulated input's own times: shownTimes).
        const frameText = videoLlama3FrameText(this.tokenizer, shownTimes(plan, decoded.indices.map((i) => i / (fps ?? 1))));
        return { pixels: await preprocessVideoLlama3(frames, info, this.videoLlama3), indices: decoded.indices, frameText };
      }
      // second_per_grid_ts from the sampled frames' rate: their share of the frames of the video they make (a kept
      // or cut segment's own length: shownDuration) at its rate.
      const restricted = (plan.kind === 'uniform' || plan.kind === 'fps') && (plan.range !== undefined || (plan.exclude?.length ?? 0) > 0);
      const shown = restricted && fps ? Math.round(shownDuration(plan, decoded.info.duration) * fps) : decoded.info.frameCount;
      const total = Math.max(shown, decoded.indices.length);
      const secondPerGridTs = qwen25vlSecondPerGridT(decoded.indices.length, total, fps, this.qwen25vl);
      return { pixels: await preprocessQwen25VL(frames, info, this.qwen25vl!), indices: decoded.indices, secondPerGridTs };
    } finally {
      frames.dispose();
    }
  }

  /**
   * The visual tokens [V, D] of frames from `pixels` (VideoLLaMA3: with its time stamp before each frame's tokens),
   * and `video`, what a generate / logprobs call takes for them (Qwen2.5-VL's with their grid and
   * second_per_grid_ts, from which their M-RoPE positions follow). The frames stay the caller's.
   */
  async encode(video: VideoPixels): Promise<{ tokens: Tensor<'float32'>; video: EncodedVideo }> {
    const { pixels, frameText, secondPerGridTs } = video;
    const tokens = await this.model.encodeVideo(pixels, frameText ? { frameText } : {});
    return {
      tokens,
      video: { videoTokens: tokens, ...this.#videoGrid(pixels.shape), ...(secondPerGridTs === undefined ? {} : { secondPerGridTs }) },
    };
  }

  /**
   * The video's visual tokens [V, D]: decoded, preprocessed and encoded once, for every prompt that shares them
   * (VideoLLaMA3: with its processor's time stamp before each frame's tokens); `video` is what a generate /
   * logprobs call takes for them (Qwen2.5-VL's with their grid and second_per_grid_ts).
   */
  async videoTokens(path: string, plan: SamplePlan, corrupt?: CorruptOptions): Promise<{
    tokens: Tensor<'float32'>; indices: number[]; video: EncodedVideo;
  }> {
    const decoded = await this.pixels(path, plan, corrupt);
    try {
      return { ...(await this.encode(decoded)), indices: decoded.indices };
    } finally {
      decoded.pixels.dispose();
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
