// The native addon's surface, exactly: what each function takes (every field filled: the defaults live in the
// zod schemas on the TypeScript side, never on both sides of the boundary) and what it returns. No loading here
// (lib/native.ts); nothing here runs.
import type { LossType, ReferenceMode } from './train/loss.js';

export type { LossType, ReferenceMode };


export const DTYPES = [
  'float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool',
  'uint16', 'uint32', 'uint64', 'float8_e4m3fn', 'float8_e5m2',
] as const;
export type DType = (typeof DTYPES)[number];

/** The TypedArray that holds each dtype's elements (float16, bfloat16 and float8 travel as raw bits). */
export interface TypedArrayOf {
  float32: Float32Array; float64: Float64Array; float16: Uint16Array; bfloat16: Uint16Array;
  int64: BigInt64Array; int32: Int32Array; int16: Int16Array; int8: Int8Array; uint8: Uint8Array;
  bool: Uint8Array; uint16: Uint16Array; uint32: Uint32Array; uint64: BigUint64Array;
  float8_e4m3fn: Uint8Array; float8_e5m2: Uint8Array;
}
export type AnyTypedArray = TypedArrayOf[DType];

/** A handle to a native tensor. Free it with dispose() (or `using`); the garbage collector frees it otherwise. */
export interface Tensor<D extends DType = DType> {
  readonly shape: number[];
  readonly dtype: D;
  readonly device: string;
  readonly numel: number;
  readonly disposed: boolean;
  /** A copy of the elements, row-major. */
  toTypedArray(): TypedArrayOf[D];
  /** A view with another shape (a copy when the layout requires one). */
  reshape(shape: readonly number[]): Tensor<D>;
  /** A converted copy. */
  to<E extends DType>(dtype: E): Tensor<E>;
  /** A copy of the slices at `indices` along `dim`, in that order (repeats allowed): frames kept, dropped, reordered. */
  indexSelect(dim: number, indices: readonly number[] | Int32Array): Tensor<D>;
  toString(): string;
  dispose(): void;
  [Symbol.dispose](): void;
}

/** Native memory held by live Tensor handles, and V8's count of external memory (which includes it). */
export interface TensorMemory { tensors: number; bytes: number; v8ExternalBytes: number }

export interface LibraryVersion { name: string; version: string; builtAgainst: string }

export interface RuntimeInfo {
  torchVersion: string;
  libtorchPath: string;
  cpuCapability: string;
  /** runtimeVersion: the CUDA runtime libtorch was built with (13000 = 13.0), 0 on a CPU build; cudnnVersion likewise. */
  cuda: { built: boolean; available: boolean; deviceCount: number; runtimeVersion: number; cudnnVersion: number };
  threads: { intraOp: number; interOp: number; cores: number };
  parallelInfo: string;
  ffmpeg: { version: string; libraries: LibraryVersion[] };
}

export interface MatmulResult { size: number; threads: number; iterations: number; seconds: number; gflops: number }

/** A CUDA device's caching-allocator bytes; `available` is false on the CPU. */
export interface DeviceMemory { available: boolean; allocated: number; peakAllocated: number; reserved: number; peakReserved: number }

export interface SafetensorsHeaderEntry {
  name: string; dtype: DType; shape: number[]; byteLength: number; file: string;
}

/** A video's metadata (native/video/sampling.h VideoInfo). */
export interface VideoInfo {
  path: string;
  isFrameFolder: boolean;
  /** Seconds. */
  duration: number;
  /** Average frame rate. */
  fps: number;
  /** The first frame's timestamp in the container; timestamps tpo takes and gives are relative to it. */
  startTime: number;
  frameCount: number;
  /** True when the count comes from the container's index or a count of packets, false when duration x fps. */
  frameCountExact: boolean;
  width: number;
  height: number;
  codec: string;
  pixelFormat: string;
}

export interface NativeSamplePlan {
  kind: 'uniform' | 'fps' | 'timestamps' | 'indices';
  frames?: number; fps?: number; maxFrames?: number;
  range?: [number, number]; exclude?: [number, number][];
  timestamps?: number[]; indices?: number[];
}

export interface NativeReadOptions {
  width?: number; height?: number; atLeast?: { width?: number; height?: number }; threads?: number;
  folderFps?: number; countFrames?: boolean; seekThreshold?: number; timeout?: number;
}

export interface NativePreprocessConfig {
  resize: 'none' | 'exact' | 'shortestEdge';
  height?: number; width?: number; shortestEdge?: number; resample?: 'bicubic' | 'bilinear';
  centerCrop?: boolean; cropHeight?: number; cropWidth?: number;
  rescale?: boolean; rescaleFactor?: number; normalize?: boolean; mean?: number[]; std?: number[];
}

export interface NativeModelInfo {
  architecture: 'Qwen2ForCausalLM' | 'LlamaForCausalLM' | 'VisionModel' | 'LlavaQwenForCausalLM' | 'VideoLlavaForConditionalGeneration'
    | 'VideoLlama3ForConditionalGeneration' | 'InternVLForConditionalGeneration'
    | 'Qwen2_5_VLForConditionalGeneration';
  modelType: string;
  /** The checkpoint key layout it was loaded from: the original repository's (llava-next, also plain HF Qwen2 /
   * LLaMA / vision models; video-llava for Video-LLaVA), hf (transformers 5), hf-legacy (transformers 4). */
  layout: 'llava-next' | 'video-llava' | 'hf' | 'hf-legacy';
  /** config.json as loaded (with overrides applied). */
  config: string;
  /** The folder it was loaded from (named by errors about its numbers). */
  source: string;
  /** Every weight's dtype after loading (a checkpoint of mixed dtypes is converted to one). */
  dtype: DType;
  /** Loaded with `mmap: true`: the weights are views of the files' mappings. */
  memoryMapped: boolean;
  parameters: number;
  /** Tensors used straight from a file mapping (mmap: true). */
  zeroCopyTensors: number;
  convertedTensors: number;
  ignoredKeys: string[];
}

export interface NativeModel {
  readonly info: NativeModelInfo;
  forward(inputs: {
    inputIds?: Tensor; attentionMask?: Tensor; pixelValues?: Tensor; outputHiddenStates?: boolean;
    videoGridThw?: Tensor; videoMergeSizes?: Tensor; videoCompressionMask?: Tensor; secondPerGridTs?: Tensor;
  }): Promise<Record<string, Tensor>>;
  encodeVideo(pixels: Tensor, frameText?: { before?: number[]; after?: number[] }[]): Promise<Tensor<'float32'>>;
  /** The visual tokens `frames` frames become (from the config; no work on the weights). */
  videoTokenCount(frames: number): number;
  /** InternVL: the token ids around each frame's visual tokens ([] clears them). */
  setFrameText(frames: { before?: number[]; after?: number[] }[]): void;
  setSecondPerGridTs(seconds: number): void;
  generate(options: {
    prompts: Tensor[]; pixelValues?: Tensor; videoTokens?: Tensor; videoGridThw?: Tensor; secondPerGridTs?: number;
    maxNewTokens?: number; temperature?: number;
    topP?: number; seed?: number; stopIds?: number[]; useCache?: boolean; sharePrefix?: boolean;
  }): Promise<{ tokens: number[][]; finishReasons: ('stop' | 'length')[] }>;
  logprobs(options: {
    prompt: Tensor; answers: Tensor[]; pixelValues?: Tensor; videoTokens?: Tensor; videoGridThw?: Tensor; secondPerGridTs?: number;
    sharePrefix?: boolean;
  }): Promise<{ sums: Tensor<'float32'>; tokenLogprobs: Tensor<'float32'>[] }>;
  logprobsBatch(options: {
    items: { prompt: Tensor; answers: Tensor[] }[]; pixelValues?: Tensor; videoTokens?: Tensor; videoGridThw?: Tensor;
    secondPerGridTs?: number; sharePrefix?: boolean;
  }): Promise<{ sums: Tensor<'float32'>; tokenLogprobs: Tensor<'float32'>[] }[]>;
  addLora(options: { r?: number; alpha?: number; dropout?: number; targetModules?: string[]; seed?: number }): number;
  setLoraEnabled(enabled: boolean): void;
  mergeLora(): number;
  saveLora(dir: string): Promise<void>;
  loadLora(dir: string): Promise<void>;
  setTrainable(parts: { vision?: boolean; projector?: boolean; language?: boolean; lora?: boolean }): number;
  setGradientCheckpointing(enabled: boolean): void;
  save(dir: string, options?: { layout?: NativeModelInfo['layout']; maxShardBytes?: number }): Promise<string[]>;
  dispose(): void;
}

/** A shape on screen for frames [start, end), its pose moving linearly from `from` to `to` (render.h ShapeEvent). */
export interface NativeShapeEvent {
  shape: string;
  color: number[];
  start: number;
  end: number;
  from: { x: number; y: number; size: number };
  to?: { x: number; y: number; size: number };
  blinkPeriod?: number;
}

/** A synthetic video to draw (native/synthetic/render.h VideoSpec). */
export interface NativeRenderSpec {
  width: number; height: number; frames: number; background: number[]; noise: number; seed: number;
  events: NativeShapeEvent[];
}

export interface NativeEncodeOptions {
  fps: number; codec?: string; crf?: number; preset?: string; gop?: number | undefined; threads?: number;
}

/**
 * A record's video as a training step takes it, in its own layout (what eval encodes, so training sees the same):
 * frames [F, 3, H, W] with VideoLLaMA3's `frameText` (its time stamps) and Qwen2.5-VL's `secondPerGridTs`, or the
 * visual tokens [V, D] encodeVideo made of them, with Qwen2.5-VL's `videoGridThw` ([1, 3]) and `secondPerGridTs`
 * (their M-RoPE positions' grid and time scale).
 */
export interface NativeVideoInput {
  video?: Tensor;
  frameText?: { before?: number[]; after?: number[] }[];
  videoGridThw?: Tensor;
  secondPerGridTs?: number;
}

export interface NativePair extends NativeVideoInput {
  prompt: Tensor; chosen: Tensor; rejected: Tensor; reference?: [number, number];
}

export interface NativeSftRecord extends NativeVideoInput {
  prompt: Tensor; answer: Tensor;
}

/** The loss as the native step and forward take it: every field given (lib/train/loss.ts fills the defaults). */
export interface NativeLoss {
  type: LossType | LossType[]; weights?: number[] | undefined; beta: number; labelSmoothing: number; referenceFree: boolean;
  sftWeight: number; ldAlpha?: number | undefined; useWeighting: boolean; discopopTau: number; simpoGamma: number;
}

/** How a preference forward runs, every field given (lib/train/loss.ts ForwardSettings). */
export interface NativeForwardSettings {
  loss: NativeLoss;
  referenceMode: ReferenceMode;
  sharePrefix: boolean;
  batchPairs: boolean;
}

/** TRL's metrics of a batch of pairs, computed once, natively (native/train/preference.cc preference_metrics). */
export interface PreferenceMetrics {
  loss: number;
  'rewards/chosen': number;
  'rewards/rejected': number;
  'rewards/accuracies': number;
  'rewards/margins': number;
  'logps/chosen': number;
  'logps/rejected': number;
  nll_loss: number;
}

/** A training step's metrics: TRL's (preference steps) or the loss (SFT), the global gradient norm and the lr. */
export type StepMetrics = Record<string, number> & Partial<PreferenceMetrics> & { loss: number; grad_norm: number; lr: number };

export interface NativeStepResult {
  metrics: StepMetrics;
  tokens: number;
  /** Pairs (or SFT records) the step trained on, over every rank. */
  records: number;
  /** Data parallelism: no rank had a record this step; nothing was updated (metrics is empty). */
  skipped?: true;
}

/** trainPreferenceForward's result: per-pair tensors [B] (loss and nll [1]), gradients on request, TRL's metrics. */
export interface NativePreferenceOutput {
  loss: Tensor<'float32'>;
  losses: Tensor<'float32'>;
  nll: Tensor<'float32'>;
  chosenRewards: Tensor<'float32'>;
  rejectedRewards: Tensor<'float32'>;
  /** The log-probs TRL logs as logps/chosen and logps/rejected: ld-weighted with ldAlpha; simpo, orpo: per-token means. */
  chosenLogps: Tensor<'float32'>;
  rejectedLogps: Tensor<'float32'>;
  /** Summed log-probs of each answer under the policy. */
  policyChosen: Tensor<'float32'>;
  policyRejected: Tensor<'float32'>;
  /** Absent when the reference is precomputed or there is none. */
  refChosen?: Tensor<'float32'>;
  refRejected?: Tensor<'float32'>;
  gradients: Record<string, Tensor<'float32'>>;
  metrics: PreferenceMetrics;
}

/** The optimizer's settings, every field given (lib/train/optimizer.ts OptimizerConfig). */
export interface NativeOptimizerSettings {
  weightDecay: number; beta1: number; beta2: number; eps: number; maxGradNorm: number;
  visionLrScale: number; projectorLrScale: number;
}

/** A multi-process run's c10d process group (native/dist/process_group.h); every method is a collective. */
export interface NativeProcessGroup {
  readonly rank: number;
  readonly size: number;
  readonly backend: string;
  stats(): { calls: number; bytes: number; seconds: number };
  allGather(text: string, what?: string): Promise<string[]>;
  allReduce(values: Float64Array, what?: string): Promise<Float64Array>;
  barrier(what?: string): Promise<void>;
  close(): Promise<void>;
}

/** Data parallelism of a Trainer (native/train/optimizer.h DataParallel). */
export interface NativeDataParallel {
  group?: NativeProcessGroup | undefined;
  bucketBytes?: number;
  shardOptimizer?: boolean;
}

/** One training run's optimizer (native/train/optimizer.h). */
export interface NativeTrainer {
  readonly steps: number;
  readonly trainable: number;
  /** Bytes of AdamW moments this process holds (a partition of them under shardOptimizer). */
  readonly optimizerBytes: number;
  preferenceStep(options: NativeForwardSettings & { microBatches: NativePair[][]; lr: number; encodeOnce: boolean }): Promise<NativeStepResult>;
  sftStep(options: { microBatches: NativeSftRecord[][]; lr: number }): Promise<NativeStepResult>;
  saveState(path: string): Promise<void>;
  /** One file, or the shards of a sharded state (this rank takes the moments of its parameters from them). */
  loadState(path: string | string[]): Promise<void>;
}

/** What the addon exports (native/addon.cc and native/binding/). */
export interface NativeAddon {
  readonly version: string;
  readonly Tensor: abstract new (...args: never[]) => Tensor;
  tensorFromTypedArray(data: AnyTypedArray, shape: readonly number[], dtype?: DType): Tensor;
  tensorMemory(): TensorMemory;
  runtimeInfo(): RuntimeInfo;
  setNumThreads(n: number): void;
  benchMatmul(size: number, seconds: number, device?: string, dtype?: DType): Promise<MatmulResult>;
  /** A 64x64 matmul and softmax on the device against the CPU's: the largest difference, or throws. */
  smokeTest(device: string): number;
  deviceMemory(device: string): DeviceMemory;
  resetPeakMemory(device: string): void;
  safetensorsRead(
    path: string, dtype?: DType, keys?: readonly string[], mmap?: boolean,
  ): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }>;
  safetensorsHeader(path: string): Promise<{ tensors: SafetensorsHeaderEntry[]; metadata: Record<string, string> }>;
  safetensorsWrite(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void>;
  videoProbe(path: string, options?: NativeReadOptions): Promise<VideoInfo>;
  videoDecode(path: string, plan: NativeSamplePlan, options?: NativeReadOptions): Promise<{
    frames: Tensor<'uint8'>; timestamps: Float64Array; indices: number[]; info: VideoInfo;
  }>;
  videoPreprocess(frames: Tensor, config: NativePreprocessConfig): Promise<Tensor<'float32'>>;
  videoCorrupt(frames: Tensor, options: { scale: number; brightness: number; contrast: number; saturation: number; seed: number }): Promise<Tensor<'uint8'>>;
  modelLoad(dir: string, options?: { dtype?: DType; overrides?: string; device?: string; mmap?: boolean }): Promise<NativeModel>;
  modelCreate(config: string, options?: { seed?: number; dtype?: DType; device?: string }): Promise<NativeModel>;
  synthRender(spec: NativeRenderSpec): Promise<Tensor<'uint8'>>;
  videoEncode(frames: Tensor, path: string, options: NativeEncodeOptions): Promise<{ codec: string; frames: number; bytes: number }>;
  trainPreferenceForward(options: NativeForwardSettings & {
    policy: NativeModel; reference?: NativeModel | undefined; pairs: NativePair[]; gradients?: string[] | undefined;
  }): Promise<NativePreferenceOutput>;
  readonly Trainer: new (options: NativeOptimizerSettings & NativeDataParallel & { policy: NativeModel; reference?: NativeModel | undefined }) => NativeTrainer;
  connectProcessGroup(options: {
    backend: string; masterAddr: string; masterPort: number; rank: number; worldSize: number; localRank?: number;
    timeoutMs: number; identity: string;
  }): Promise<NativeProcessGroup>;
  /** Which c10d backends this build has. */
  distBackends(): { gloo: boolean; nccl: boolean };
  safetensorsWriteSharded(
    dir: string, tensors: Record<string, Tensor>, maxShardBytes: number, metadata?: Record<string, string>,
    prefix?: string,
  ): Promise<string[]>;
}

