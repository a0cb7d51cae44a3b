// The typed boundary: the one place that finds, loads and describes the native addon.
//
// Candidates, in order (the first that loads wins):
//   1. TPO_ADDON, an explicit path to a tpo.node (strict: when set, nothing else is tried);
//   2. a source build in build/Release (node-gyp-build resolves it; its RUNPATH names its libtorch);
//   3. prebuilds/<platform>-<arch>/{cuda,cpu}/: a relocatable addon with a manifest.json naming the libtorch
//      version it was built against. We find such a libtorch (lib/libtorch.ts), preload its libraries with the
//      torch-free tpo_preload.node, then load the addon, and check that it runs on the libtorch we chose.
// When nothing loads, NativeLoadError says what each candidate lacked and the command that fixes it.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

import { findLibtorch, type Libtorch, libtorchLibraries, LIBTORCH_VERSION, searchLibtorch } from './libtorch.js';

const require = createRequire(import.meta.url);

/** The package's root folder (dist/lib/native.js lives two levels below it). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

// ------------------------------------------------------------------------------------------------ the surface

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
  cuda: { built: boolean; available: boolean; deviceCount: number };
  threads: { intraOp: number; interOp: number; cores: number };
  parallelInfo: string;
  ffmpeg: { version: string; libraries: LibraryVersion[] };
}

export interface MatmulResult { size: number; threads: number; iterations: number; seconds: number; gflops: number }

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
  architecture: 'Qwen2ForCausalLM' | 'VisionModel' | 'LlavaQwenForCausalLM';
  modelType: string;
  /** The checkpoint key layout it was loaded from: llava-next (also plain HF Qwen2 / vision models), hf, hf-legacy. */
  layout: 'llava-next' | 'hf' | 'hf-legacy';
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
  }): Promise<Record<string, Tensor>>;
  encodeVideo(pixels: Tensor): Promise<Tensor<'float32'>>;
  /** The visual tokens `frames` frames become (from the config; no work on the weights). */
  videoTokenCount(frames: number): number;
  generate(options: {
    prompts: Tensor[]; pixelValues?: Tensor; videoTokens?: Tensor; maxNewTokens?: number; temperature?: number;
    topP?: number; seed?: number; stopIds?: number[]; useCache?: boolean;
  }): Promise<{ tokens: number[][]; finishReasons: ('stop' | 'length')[] }>;
  logprobs(options: {
    prompt: Tensor; answers: Tensor[]; pixelValues?: Tensor; videoTokens?: Tensor; sharePrefix?: boolean;
  }): Promise<{ sums: Tensor<'float32'>; tokenLogprobs: Tensor<'float32'>[] }>;
  addLora(options: { r?: number; alpha?: number; dropout?: number; targetModules?: string[]; seed?: number }): number;
  setLoraEnabled(enabled: boolean): void;
  mergeLora(): number;
  saveLora(dir: string): Promise<void>;
  loadLora(dir: string): Promise<void>;
  setTrainable(parts: { vision?: boolean; projector?: boolean; language?: boolean; lora?: boolean }): number;
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

export interface NativePair {
  prompt: Tensor; chosen: Tensor; rejected: Tensor; video?: Tensor; reference?: [number, number];
}

export interface NativeStepResult { metrics: Record<string, number>; tokens: number }

/** One training run's optimizer (native/train/optimizer.h). */
export interface NativeTrainer {
  readonly steps: number;
  readonly trainable: number;
  preferenceStep(options: {
    microBatches: NativePair[][]; lr: number; loss?: Record<string, unknown>; referenceMode?: string; sharePrefix?: boolean;
    encodeOnce?: boolean; batchPairs?: boolean;
  }): Promise<NativeStepResult>;
  sftStep(options: { microBatches: { prompt: Tensor; answer: Tensor; video?: Tensor }[][]; lr: number }): Promise<NativeStepResult>;
  saveState(path: string): Promise<void>;
  loadState(path: string): Promise<void>;
}

/** What the addon exports (native/addon.cc and native/binding/). */
export interface NativeAddon {
  readonly version: string;
  readonly Tensor: abstract new (...args: never[]) => Tensor;
  tensorFromTypedArray(data: AnyTypedArray, shape: readonly number[], dtype?: DType): Tensor;
  tensorMemory(): TensorMemory;
  runtimeInfo(): RuntimeInfo;
  setNumThreads(n: number): void;
  benchMatmul(size: number, seconds: number): Promise<MatmulResult>;
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
  trainPreferenceForward(options: {
    policy: NativeModel; reference?: NativeModel;
    pairs: { prompt: Tensor; chosen: Tensor; rejected: Tensor; video?: Tensor; reference?: [number, number] }[];
    loss?: { type?: 'sigmoid' | 'hinge' | 'ipo' | 'robust'; beta?: number; labelSmoothing?: number; referenceFree?: boolean; sftWeight?: number };
    referenceMode?: 'precomputed' | 'lora-disabled' | 'frozen-copy' | 'none';
    sharePrefix?: boolean;
    batchPairs?: boolean;
    gradients?: string[];
  }): Promise<Record<string, Tensor<'float32'>> & { gradients: Record<string, Tensor<'float32'>> }>;
  readonly Trainer: new (options: {
    policy: NativeModel; reference?: NativeModel; weightDecay?: number; beta1?: number; beta2?: number; eps?: number;
    maxGradNorm?: number;
  }) => NativeTrainer;
  safetensorsWriteSharded(
    dir: string, tensors: Record<string, Tensor>, maxShardBytes: number, metadata?: Record<string, string>,
    prefix?: string,
  ): Promise<string[]>;
}

// ------------------------------------------------------------------------------------------------ prebuilds

/** prebuilds/<platform>-<arch>/<variant>/manifest.json, written by scripts/prebuild.js. */
export const PrebuildManifest = z.object({
  package: z.string(),
  torch: z.string().regex(/^\d+\.\d+\.\d+$/),
  variant: z.enum(['cpu', 'cuda']),
  napi: z.number().int(),
  platform: z.string(),
  arch: z.string(),
  /** Shared libraries the addon needs from the system (FFmpeg's), by soname. */
  systemLibraries: z.array(z.string()),
});
export type PrebuildManifest = z.infer<typeof PrebuildManifest>;

export function prebuildDir(root = PACKAGE_ROOT): string {
  return join(root, 'prebuilds', `${process.platform}-${process.arch}`);
}

function nvidiaDriverPresent(): boolean {
  return existsSync('/proc/driver/nvidia/version');
}

// ------------------------------------------------------------------------------------------------ loading

export type AddonKind = 'override' | 'source' | 'prebuild';

export interface LoadedAddon {
  addon: NativeAddon;
  path: string;
  kind: AddonKind;
  /** For a prebuild: the libtorch the loader found and preloaded. */
  libtorch?: Libtorch;
}

export interface LoadAttempt { candidate: string; reason: string }

export class NativeLoadError extends Error {
  readonly code = 'ERR_TPO_NATIVE_LOAD';
  constructor(readonly attempts: LoadAttempt[], readonly fix: string) {
    super(
      'tpo: the native addon could not be loaded.\n' +
        attempts.map((a) => `  - ${a.candidate}: ${a.reason}`).join('\n') +
        `\nFix: ${fix}`,
    );
    this.name = 'NativeLoadError';
  }
}

const FFMPEG_HINT =
  "FFmpeg's shared libraries are missing: `apt-get install libavformat59 libavcodec59 libswscale6 libavutil57` " +
  '(Debian 12), or `bash scripts/setup.sh` in a checkout';

function setupHint(root: string): string {
  const script = join(root, 'scripts', 'setup.sh');
  return (
    `run \`bash ${script} --libtorch-only\` (unpacks PyTorch ${LIBTORCH_VERSION}'s libtorch into the cache), ` +
    `or set LIBTORCH to a libtorch ${LIBTORCH_VERSION} folder`
  );
}

function shortReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

function loadFile(path: string): NativeAddon {
  return require(path) as NativeAddon;
}

function trySource(root: string, attempts: LoadAttempt[]): LoadedAddon | undefined {
  let path: string;
  try {
    const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
    path = nodeGypBuild.path(root);
  } catch {
    attempts.push({ candidate: 'source build (build/Release)', reason: 'not built' });
    return undefined;
  }
  try {
    return { addon: loadFile(path), path, kind: 'source' };
  } catch (error) {
    attempts.push({ candidate: `source build (${path})`, reason: shortReason(error) });
    return undefined;
  }
}

function readManifest(dir: string): PrebuildManifest {
  const file = join(dir, 'manifest.json');
  const parsed = PrebuildManifest.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

function tryPrebuild(root: string, variant: 'cpu' | 'cuda', attempts: LoadAttempt[]): LoadedAddon | undefined {
  const dir = join(prebuildDir(root), variant);
  const candidate = `prebuild ${process.platform}-${process.arch}/${variant}`;
  if (!existsSync(join(dir, 'tpo.node'))) return undefined;
  let manifest: PrebuildManifest;
  try {
    manifest = readManifest(dir);
  } catch (error) {
    attempts.push({ candidate, reason: shortReason(error) });
    return undefined;
  }
  const libtorch = findLibtorch(manifest.torch);
  if (!libtorch || (variant === 'cuda' && libtorch.variant !== 'cuda')) {
    const { found, rejected } = searchLibtorch({ python: true });
    const seen = [
      ...found.map((l) => `${l.version} ${l.variant} at ${l.dir} [${l.source}]`),
      ...rejected.map((r) => `${r.dir}: ${r.problem}`),
    ];
    attempts.push({
      candidate,
      reason:
        `needs libtorch ${manifest.torch}${variant === 'cuda' ? ' with CUDA' : ''}; ` +
        (seen.length ? `found only: ${seen.join('; ')}` : 'none found (LIBTORCH unset, cache empty, no Python torch)'),
    });
    return undefined;
  }
  const path = join(dir, 'tpo.node');
  try {
    const preload = require(join(dir, 'preload', 'tpo_preload.node')) as { preload(paths: string[]): void };
    preload.preload(libtorchLibraries(libtorch));
    const addon = loadFile(path);
    const loadedFrom = addon.runtimeInfo().libtorchPath;
    if (!loadedFrom.startsWith(join(libtorch.dir, 'lib'))) {
      throw new Error(`runs on ${loadedFrom}, not on the libtorch at ${libtorch.dir}: two libtorch builds are loaded`);
    }
    return { addon, path, kind: 'prebuild', libtorch };
  } catch (error) {
    const reason = shortReason(error);
    attempts.push({ candidate, reason: /libav|libsw/.test(reason) ? `${reason} (${FFMPEG_HINT})` : reason });
    return undefined;
  }
}

function load(root: string): LoadedAddon {
  const attempts: LoadAttempt[] = [];
  const override = process.env.TPO_ADDON;
  if (override) {
    try {
      return { addon: loadFile(override), path: override, kind: 'override' };
    } catch (error) {
      attempts.push({ candidate: `TPO_ADDON=${override}`, reason: shortReason(error) });
      throw new NativeLoadError(attempts, 'point TPO_ADDON at a built tpo.node, or unset it');
    }
  }
  const fromSource = trySource(root, attempts);
  if (fromSource) return fromSource;

  const variants: ('cpu' | 'cuda')[] = nvidiaDriverPresent() ? ['cuda', 'cpu'] : ['cpu'];
  for (const variant of variants) {
    const loaded = tryPrebuild(root, variant, attempts);
    if (loaded) return loaded;
  }
  const hasPrebuild = variants.some((v) => existsSync(join(prebuildDir(root), v, 'tpo.node')));
  if (!hasPrebuild) {
    attempts.push({ candidate: `prebuilds/${process.platform}-${process.arch}`, reason: 'no prebuilt addon for this platform' });
  }
  const fix = hasPrebuild
    ? setupHint(root)
    : `build from source: \`bash ${join(root, 'scripts', 'setup.sh')}\` (needs a C++ compiler, CMake and FFmpeg's ` +
      'development libraries; it installs them as root)';
  throw new NativeLoadError(attempts, fix);
}

const loaded = new Map<string, LoadedAddon>();

/** Loads the addon once per package root and describes where it came from. Throws NativeLoadError. */
export function loadNative(root = PACKAGE_ROOT): LoadedAddon {
  let entry = loaded.get(root);
  if (!entry) {
    entry = load(root);
    loaded.set(root, entry);
  }
  return entry;
}

/** The addon's functions. */
export function native(): NativeAddon {
  return loadNative().addon;
}
