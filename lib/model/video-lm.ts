// The video LMM from TypeScript: LLaVA-Video / LongVA (LlavaQwenForCausalLM), plain Qwen2ForCausalLM, and the
// SigLIP / CLIP towers alone, loaded from their own checkpoint folders (native/model/).
import { z } from 'zod';

import { type DType, DTYPES, native, type NativeModel, type NativeModelInfo, type Tensor } from '../native.js';
import { parse } from '../validate.js';
import { ByteSize } from './safetensors.js';

export type { NativeModelInfo as ModelInfo };

const LoadOptions = z.strictObject({
  /** Convert floating-point weights (e.g. bf16 checkpoints to float32); default: as stored. */
  dtype: z.enum(DTYPES).optional(),
  /** config.json fields to override, as lmms-eval overrides mm_spatial_pool_mode / mm_newline_position. */
  overrides: z.record(z.string(), z.unknown()).optional(),
});
export type LoadOptions = z.input<typeof LoadOptions>;

const ForwardInputs = z.strictObject({
  inputIds: z.custom<Tensor>().optional(),
  attentionMask: z.custom<Tensor>().optional(),
  /** Preprocessed frames [F, 3, S, S] of one video; it replaces the -200 id in every row. */
  pixelValues: z.custom<Tensor>().optional(),
  outputHiddenStates: z.boolean().optional(),
});
export type ForwardInputs = z.input<typeof ForwardInputs>;

const SaveOptions = z.strictObject({
  /** Key layout to write; default: the one it was loaded from. */
  layout: z.enum(['llava-next', 'hf', 'hf-legacy']).optional(),
  maxShardSize: ByteSize.optional(),
});
export type SaveOptions = z.input<typeof SaveOptions>;

export class VideoLM {
  readonly #model: NativeModel;

  private constructor(model: NativeModel) {
    this.#model = model;
  }

  /** Loads config.json and the safetensors weights (single or sharded; LLaVA-NeXT or HF key layout). */
  static async load(dir: string, options: LoadOptions = {}): Promise<VideoLM> {
    const { dtype, overrides } = parse(LoadOptions, options, 'VideoLM.load: options');
    const model = await native().modelLoad(parse(z.string().min(1), dir, 'VideoLM.load: dir'), {
      dtype: dtype as DType | undefined,
      overrides: overrides ? JSON.stringify(overrides) : undefined,
    });
    return new VideoLM(model);
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
  forward(inputs: ForwardInputs): Promise<Record<string, Tensor>> {
    return this.#model.forward(parse(ForwardInputs, inputs, 'VideoLM.forward'));
  }

  /** Preprocessed frames [F, 3, S, S] -> the visual tokens [V, hidden] that replace the -200 id. */
  encodeVideo(pixels: Tensor): Promise<Tensor<'float32'>> {
    return this.#model.encodeVideo(pixels);
  }

  /** Writes config.json and the weights (atomically, sharded past maxShardSize). Returns the file names. */
  save(dir: string, options: SaveOptions = {}): Promise<string[]> {
    const { layout, maxShardSize } = parse(SaveOptions, options, 'VideoLM.save: options');
    return this.#model.save(parse(z.string().min(1), dir, 'VideoLM.save: dir'), { layout, maxShardBytes: maxShardSize });
  }

  dispose(): void {
    this.#model.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
