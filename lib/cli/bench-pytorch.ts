// `tpo bench pytorch`: tpo beside stock PyTorch + transformers on the same libtorch, at the same shapes, from the
// same weights and inputs. The parent writes a work folder (a random LLaVA-Video-shaped model, the pairs, the
// frames); every configuration then runs in its own process (peak memory is its own), tpo's as `tpo bench pytorch
// --child WAY`, Python's as scripts/bench/*.py in the venv scripts/bench/setup-venv.sh makes. The table gives
// ratios against the best stock way: the machines here are shared and noisy, ratios from one run are what holds.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

import { cacheDir } from '../libtorch.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import { VideoLM } from '../model/video-lm.js';
import { PACKAGE_ROOT, type Tensor } from '../native.js';
import { benchMatmul, peakRss, runtimeInfo, setNumThreads } from '../runtime.js';
import { tensor } from '../tensor.js';
import { Optimizer } from '../train/optimizer.js';
import { preferenceForward } from '../train/preference.js';
import { parse } from '../validate.js';

/** A benchmark shape: the model and the step's work. */
export const BenchShape = z.strictObject({
  hidden: z.int().min(8), layers: z.int().min(1), heads: z.int().min(1), kvHeads: z.int().min(1),
  intermediate: z.int().min(8), vocab: z.int().min(64),
  towerLayers: z.int().min(1), towerHidden: z.int().min(8), towerIntermediate: z.int().min(8), towerHeads: z.int().min(1),
  imageSize: z.int().min(8), patch: z.int().min(1),
  /** LLaVA-Video's grid newlines (one token after each pooled row), or none. */
  newline: z.boolean(),
  frames: z.int().min(1), promptTokens: z.int().min(1), answerTokens: z.int().min(1), pairs: z.int().min(1),
  /** Generation: prompts about one video, and new tokens each. */
  prompts: z.int().min(1), newTokens: z.int().min(1),
});
export type BenchShape = z.infer<typeof BenchShape>;

/** The issue's shapes: a LLaVA-Video-like model scaled to a CPU (SigLIP 4 x 256 at 224/14, Qwen2 6 x 512). */
const ISSUE: BenchShape = {
  hidden: 512, layers: 6, heads: 8, kvHeads: 4, intermediate: 1376, vocab: 16384,
  towerLayers: 4, towerHidden: 256, towerIntermediate: 1024, towerHeads: 4, imageSize: 224, patch: 14, newline: false,
  frames: 16, promptTokens: 32, answerTokens: 32, pairs: 2, prompts: 8, newTokens: 32,
};

/** Named shapes: the issue's, a wider LM, more frames, and the packaged base model's (the demo's workload). */
export const SHAPES: Record<string, BenchShape | 'base'> = {
  issue: ISSUE,
  wide: { ...ISSUE, hidden: 1024, heads: 16, kvHeads: 4, intermediate: 2816 },
  frames: { ...ISSUE, frames: 32 },
  base: 'base',
};

/** tpo's configurations and the stock ones; each runs in its own process. */
const TPO_WAYS = {
  /** No savings: the prompt per answer, the video per answer and model, a frozen copy as the online reference. */
  'tpo-off': { sharePrefix: false, encodeOnce: false, referenceMode: 'frozen-copy' },
  /** The video once per pair and a precomputed reference, but the prompt per answer (the best stock way's work). */
  'tpo-noshare': { sharePrefix: false, encodeOnce: true, referenceMode: 'precomputed' },
  /** Every saving: the prompt once per pair, the video once, the reference precomputed. */
  tpo: { sharePrefix: true, encodeOnce: true, referenceMode: 'precomputed' },
  /** Every saving, and activation checkpointing per decoder layer. */
  'tpo-checkpointing': { sharePrefix: true, encodeOnce: true, referenceMode: 'precomputed', gradientCheckpointing: true },
} as const;
const STOCK_WAYS = { 'pytorch-trl': 'trl', 'pytorch-best': 'best' } as const;
const GENERATE_WAYS = ['pytorch-generate', 'tpo-generate-noshare', 'tpo-generate'] as const;
type Way = keyof typeof TPO_WAYS | keyof typeof STOCK_WAYS | (typeof GENERATE_WAYS)[number];
const ALL_WAYS = [...Object.keys(STOCK_WAYS), ...Object.keys(TPO_WAYS), ...GENERATE_WAYS] as Way[];

export interface WayResult {
  way: Way;
  /** Preference steps: pairs/s and the median step; generation: new tokens/s and the median call. */
  rate: number;
  unit: 'pairs/s' | 'tokens/s';
  ms: number;
  /** CPU time (user + system, every thread) of the median call: on a loaded machine, what to compare. */
  cpuMs: number;
  /** The process's float32 matmul rate right after its measurement (what its MFU divides by). */
  matmulGflops: number;
  peakRssMiB: number;
  /** The first step's loss (from the starting weights): every way computes the same number. */
  firstLoss?: number;
  /** Generated tokens, to check that tpo and transformers agree. */
  tokens?: number[][];
}

export const BENCH_PYTORCH_USAGE = `  bench pytorch [--shape issue|wide|frames|base] [--ways a,b] [--steps 3] [--rounds 1] [--threads N] [--json]
                [--hidden --layers --heads --kv-heads --intermediate --vocab --tower-layers --tower-hidden
                 --tower-intermediate --tower-heads --image-size --patch --frames --prompt-tokens
                 --answer-tokens --pairs --prompts --new-tokens N]
                                        tpo beside stock PyTorch + transformers, same shapes (docs/performance.md)`;

const FLAG_NAMES: Record<string, keyof BenchShape> = {
  hidden: 'hidden', layers: 'layers', heads: 'heads', 'kv-heads': 'kvHeads', intermediate: 'intermediate', vocab: 'vocab',
  'tower-layers': 'towerLayers', 'tower-hidden': 'towerHidden', 'tower-intermediate': 'towerIntermediate',
  'tower-heads': 'towerHeads', 'image-size': 'imageSize', patch: 'patch', frames: 'frames', 'prompt-tokens': 'promptTokens',
  'answer-tokens': 'answerTokens', pairs: 'pairs', prompts: 'prompts', 'new-tokens': 'newTokens',
};

interface Flags {
  shapeName: string;
  overrides: Partial<BenchShape>;
  ways: Way[];
  steps: number;
  rounds: number;
  threads: number;
  json: boolean;
  child?: Way;
  work?: string;
}

function parseFlags(argv: string[]): Flags {
  const { values } = parseArgs({
    args: argv,
    options: {
      shape: { type: 'string', default: 'issue' }, ways: { type: 'string' }, steps: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '1' }, threads: { type: 'string' }, json: { type: 'boolean', default: false },
      child: { type: 'string' }, work: { type: 'string' },
      ...Object.fromEntries(Object.keys(FLAG_NAMES).map((k) => [k, { type: 'string' as const }])),
    },
  });
  const int = (name: string, v: string | undefined, min = 1) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`bench pytorch: --${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
  if (!(values.shape in SHAPES)) throw new Error(`bench pytorch: --shape must be one of ${Object.keys(SHAPES).join(', ')}`);
  const overrides: Partial<BenchShape> = {};
  const all = values as unknown as Record<string, string | undefined>;
  for (const [flag, key] of Object.entries(FLAG_NAMES)) {
    if (all[flag] !== undefined) (overrides as Record<string, number>)[key] = int(flag, all[flag]);
  }
  const ways = values.ways ? values.ways.split(',').map((w) => w.trim()) : ALL_WAYS;
  for (const w of ways) if (!ALL_WAYS.includes(w as Way)) throw new Error(`bench pytorch: unknown way '${w}' (known: ${ALL_WAYS.join(', ')})`);
  if (values.child && !ALL_WAYS.includes(values.child as Way)) throw new Error(`bench pytorch: unknown way '${values.child}'`);
  return {
    shapeName: values.shape, overrides, ways: ways as Way[], steps: int('steps', values.steps), rounds: int('rounds', values.rounds),
    threads: values.threads ? int('threads', values.threads) : 0, json: values.json,
    child: values.child as Way | undefined, work: values.work,
  };
}

/** config.json of the benchmark model (LLaVA-NeXT's LlavaQwenForCausalLM fields). */
export function benchConfig(s: BenchShape): Record<string, unknown> {
  return {
    architectures: ['LlavaQwenForCausalLM'], model_type: 'llava_qwen', vocab_size: s.vocab, hidden_size: s.hidden,
    intermediate_size: s.intermediate, num_hidden_layers: s.layers, num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads, max_position_embeddings: 32768, rope_theta: 1e6, rms_norm_eps: 1e-6,
    tie_word_embeddings: false, mm_hidden_size: s.towerHidden, mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -1,
    mm_vision_select_feature: 'patch', mm_patch_merge_type: 'spatial_unpad', mm_newline_position: s.newline ? 'grid' : 'no_token',
    mm_spatial_pool_mode: 'average', mm_spatial_pool_stride: 2, image_token_index: -200,
    vision_config: {
      model_type: 'siglip_vision_model', image_size: s.imageSize, patch_size: s.patch, hidden_size: s.towerHidden,
      intermediate_size: s.towerIntermediate, num_hidden_layers: s.towerLayers, num_attention_heads: s.towerHeads,
      hidden_act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6,
    },
  };
}

/** The packaged base model's shapes, read from its config (its real weights are benchmarked). */
async function baseShape(): Promise<{ shape: BenchShape; dir: string }> {
  const dir = join(PACKAGE_ROOT, 'assets', 'base-model');
  using model = await VideoLM.load(dir);
  const c = model.config as Record<string, number> & { vision_config: Record<string, number>; mm_newline_position: string };
  const v = c.vision_config;
  return {
    dir,
    shape: {
      hidden: c.hidden_size, layers: c.num_hidden_layers, heads: c.num_attention_heads, kvHeads: c.num_key_value_heads,
      intermediate: c.intermediate_size, vocab: c.vocab_size, towerLayers: v.num_hidden_layers, towerHidden: v.hidden_size,
      towerIntermediate: v.intermediate_size, towerHeads: v.num_attention_heads, imageSize: v.image_size, patch: v.patch_size,
      newline: c.mm_newline_position === 'grid',
      // The demo's work: 16 frames, short questions and answers, batches of 8 pairs, 12 questions per video.
      frames: 16, promptTokens: 24, answerTokens: 6, pairs: 8, prompts: 12, newTokens: 16,
    },
  };
}

/** Deterministic ids in [10, vocab) and frames in [-1, 1): the same inputs for every way. */
function ids(n: number, seed: number, vocab: number): number[] {
  return Array.from({ length: n }, (_, i) => 10 + ((i * 7919 + seed * 104729) % (vocab - 10)));
}

function frames(count: number, s: BenchShape, seed: number): Tensor<'float32'> {
  const n = count * s.frames * 3 * s.imageSize * s.imageSize;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.0137 + seed) * 0.9;
  return tensor(data, [count, s.frames, 3, s.imageSize, s.imageSize]);
}

const int64 = (values: number[], shape: number[]) => tensor(BigInt64Array.from(values.map(BigInt)), shape);

/** The work folder: model/ (config.json + weights), dpo.safetensors, generate.safetensors. */
async function writeWork(work: string, shape: BenchShape, baseDir?: string): Promise<void> {
  const modelDir = join(work, 'model');
  {
    using model = baseDir ? await VideoLM.load(baseDir) : await VideoLM.create(benchConfig(shape), { seed: 0 });
    await model.save(modelDir, { layout: 'llava-next' });
  }
  const s = shape;
  const prompt = [11, 12, -200, ...ids(s.promptTokens, 1, s.vocab)];
  await writeSafetensors(join(work, 'dpo.safetensors'), {
    prompt: int64(prompt, [prompt.length]),
    chosen: int64(Array.from({ length: s.pairs }, (_, k) => ids(s.answerTokens, 100 + k, s.vocab)).flat(), [s.pairs, s.answerTokens]),
    rejected: int64(Array.from({ length: s.pairs }, (_, k) => ids(s.answerTokens, 200 + k, s.vocab)).flat(), [s.pairs, s.answerTokens]),
    pixels: frames(s.pairs, s, 0),
  });
  const prompts = Array.from({ length: s.prompts }, (_, k) => [11, 12, -200, ...ids(s.promptTokens, 300 + k, s.vocab)]);
  await writeSafetensors(join(work, 'generate.safetensors'), {
    prompts: int64(prompts.flat(), [s.prompts, prompts[0]!.length]),
    pixels: frames(1, s, 1),
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Wall and CPU milliseconds (medians) of `repeats` calls. */
async function timeCalls(call: () => Promise<unknown>, repeats: number): Promise<{ ms: number; cpuMs: number }> {
  const wall: number[] = [], cpu: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const started = performance.now();
    const used = process.cpuUsage();
    await call();
    const spent = process.cpuUsage(used);
    wall.push(performance.now() - started);
    cpu.push((spent.user + spent.system) / 1000);
  }
  return { ms: median(wall), cpuMs: median(cpu) };
}
const row = (t: Tensor, i: number) => t.indexSelect(0, [i]).reshape(t.shape.slice(1));

/** One tpo preference-step configuration, in this process. */
async function tpoDpo(work: string, way: keyof typeof TPO_WAYS, steps: number): Promise<WayResult> {
  const o = TPO_WAYS[way];
  using policy = await VideoLM.load(join(work, 'model'));
  policy.setTrainable({ projector: true, language: true, lora: false });
  policy.setGradientCheckpointing('gradientCheckpointing' in o && o.gradientCheckpointing);
  using reference = o.referenceMode === 'frozen-copy' ? await VideoLM.load(join(work, 'model')) : undefined;
  const { tensors: t } = await readSafetensors(join(work, 'dpo.safetensors'));
  const pairs = Array.from({ length: t.chosen!.shape[0]! }, (_, i) => ({
    prompt: t.prompt!, chosen: row(t.chosen!, i), rejected: row(t.rejected!, i), video: row(t.pixels!, i),
    reference: undefined as [number, number] | undefined,
  }));
  if (o.referenceMode === 'precomputed') {
    // Once before training, not timed (as `reference: precomputed` does).
    const r = await preferenceForward(policy, pairs, { loss: { referenceFree: true }, referenceMode: 'none' });
    const c = r.policyChosen.toTypedArray(), rj = r.policyRejected.toTypedArray();
    pairs.forEach((p, i) => { p.reference = [c[i]!, rj[i]!]; });
  }
  const optimizer = new Optimizer(policy, { maxGradNorm: 1 }, reference);
  const step = () => optimizer.preferenceStep({
    microBatches: [pairs.map(({ reference: ref, ...p }) => (ref ? { ...p, reference: ref } : p))], lr: 1e-5,
    loss: { beta: 0.1, sftWeight: 1 }, sharePrefix: o.sharePrefix, encodeOnce: o.encodeOnce, referenceMode: o.referenceMode,
  });
  const first = await step();
  const { ms, cpuMs } = await timeCalls(step, steps);
  const { gflops: matmulGflops } = await benchMatmul({ size: 1024, seconds: 1 });
  return { way, rate: pairs.length / (ms / 1000), unit: 'pairs/s', ms, cpuMs, matmulGflops, peakRssMiB: peakRss() / 2 ** 20, firstLoss: first.metrics.loss };
}

/** tpo's generation: the prompts about one video in one call, greedy, KV cache, the common prefix shared or not. */
async function tpoGenerate(work: string, repeats: number, sharePrefix: boolean): Promise<WayResult> {
  using model = await VideoLM.load(join(work, 'model'));
  const { tensors: t } = await readSafetensors(join(work, 'generate.safetensors'));
  using videoTokens = await model.encodeVideo(row(t.pixels!, 0));
  const prompts = Array.from({ length: t.prompts!.shape[0]! }, (_, i) => row(t.prompts!, i));
  const newTokens = Number(process.env.TPO_BENCH_NEW_TOKENS ?? 32);
  const call = () => model.generate({ prompts, videoTokens, maxNewTokens: newTokens, sharePrefix });
  const first = await call();
  const { ms, cpuMs } = await timeCalls(call, repeats);
  const { gflops: matmulGflops } = await benchMatmul({ size: 1024, seconds: 1 });
  return { way: sharePrefix ? 'tpo-generate' : 'tpo-generate-noshare', rate: (prompts.length * newTokens) / (ms / 1000), unit: 'tokens/s', ms, cpuMs, matmulGflops, peakRssMiB: peakRss() / 2 ** 20, tokens: first.tokens };
}

async function runChildWay(f: Flags): Promise<WayResult> {
  if (f.threads) setNumThreads(f.threads);
  const work = f.work!;
  if (f.child === 'tpo-generate' || f.child === 'tpo-generate-noshare') return tpoGenerate(work, f.steps, f.child === 'tpo-generate');
  return tpoDpo(work, f.child as keyof typeof TPO_WAYS, f.steps);
}

/** The benchmark venv's Python (scripts/bench/setup-venv.sh), or a clear error. */
export function benchPython(): string {
  const python = process.env.TPO_BENCH_PYTHON ?? join(cacheDir(), 'bench-venv', 'bin', 'python');
  if (!existsSync(python)) {
    throw new Error(`bench pytorch: no Python at ${python}. Run \`bash scripts/bench/setup-venv.sh\` (a venv with torch 2.13.0+cpu and ` +
      'transformers from the local wheels) or set TPO_BENCH_PYTHON.');
  }
  return python;
}

function spawnWay(way: Way, work: string, f: Flags, shape: BenchShape): WayResult {
  const threads = String(f.threads || runtimeInfo().threads.cores);
  let command: string, args: string[];
  const env = { ...process.env, TPO_BENCH_NEW_TOKENS: String(shape.newTokens) };
  if (way in STOCK_WAYS || way === 'pytorch-generate') {
    command = benchPython();
    const scripts = join(PACKAGE_ROOT, 'scripts', 'bench');
    args = way === 'pytorch-generate'
      ? [join(scripts, 'generate.py'), '--work', work, '--new-tokens', String(shape.newTokens), '--repeats', String(f.steps), '--threads', threads]
      : [join(scripts, 'dpo_step.py'), '--work', work, '--way', STOCK_WAYS[way as keyof typeof STOCK_WAYS], '--steps', String(f.steps), '--threads', threads];
  } else {
    command = process.execPath;
    args = [fileURLToPath(new URL('./main.js', import.meta.url)), 'bench', 'pytorch', '--child', way, '--work', work,
      '--steps', String(f.steps), '--threads', threads];
  }
  const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 26, env });
  if (r.status !== 0) throw new Error(`bench pytorch: ${way} failed (exit ${r.status ?? r.signal}):\n${r.stderr.slice(-4000)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  if (way in STOCK_WAYS) {
    return { way, rate: out.pairsPerSecond as number, unit: 'pairs/s', ms: out.stepMs as number, cpuMs: out.cpuMs as number, matmulGflops: out.matmulGflops as number, peakRssMiB: out.peakRssMiB as number, firstLoss: out.firstLoss as number };
  }
  if (way === 'pytorch-generate') {
    return { way, rate: out.tokensPerSecond as number, unit: 'tokens/s', ms: out.callMs as number, cpuMs: out.cpuMs as number, matmulGflops: out.matmulGflops as number, peakRssMiB: out.peakRssMiB as number,
      tokens: (out.tokens as number[][]).map((r) => r.slice(-shape.newTokens)) };
  }
  return out as unknown as WayResult;
}

export interface BenchPytorchResult {
  shape: BenchShape & { name: string };
  results: WayResult[];
  /** The machine's float32 matmul rate at the benchmark's thread count, measured in the same run. */
  matmulGflops: number;
  threads: number;
}

export async function benchPytorch(argv: string[]): Promise<BenchPytorchResult> {
  const f = parseFlags(argv);
  const named = SHAPES[f.shapeName]!;
  const base = named === 'base' ? await baseShape() : undefined;
  const shape = parse(BenchShape, { ...(base ? base.shape : (named as BenchShape)), ...f.overrides }, 'bench pytorch: shape');
  // --work DIR keeps the folder (to profile one way by hand: `tpo bench pytorch --child tpo --work DIR`).
  const work = f.work ?? await mkdtemp(join(tmpdir(), 'tpo-bench-pytorch-'));
  try {
    await writeWork(work, shape, base?.dir);
    const runs = new Map<Way, WayResult[]>();
    // Rounds interleave the ways, so a burst of load elsewhere on the machine lands on several ways, not one.
    for (let round = 0; round < f.rounds; round++) {
      for (const way of f.ways) runs.set(way, [...(runs.get(way) ?? []), spawnWay(way, work, f, shape)]);
    }
    const results = [...runs.values()].map((rs) => {
      const byRate = [...rs].sort((a, b) => a.rate - b.rate);
      return { ...byRate[Math.floor(rs.length / 2)]!, peakRssMiB: median(rs.map((r) => r.peakRssMiB)) };
    });
    const threads = f.threads || runtimeInfo().threads.cores;
    setNumThreads(threads);
    const matmul = await benchMatmul({ size: 1024, seconds: 1 });
    return { shape: { name: f.shapeName, ...shape }, results, matmulGflops: matmul.gflops, threads };
  } finally {
    if (!f.work) await rm(work, { recursive: true, force: true });
  }
}

/** Visual tokens of one video at a shape: 2x2-pooled patches of every frame, and grid newlines. */
function visualTokens(s: BenchShape): number {
  const side = Math.floor(Math.floor(s.imageSize / s.patch) / 2);
  return s.frames * (side * side + (s.newline ? side : 0));
}

/**
 * Floating-point operations one step (or generate call) of `way` needs, counted the way model-FLOP utilisation is:
 * 2 per weight and token for a forward, 6 for forward and backward, attention's two matmuls (causal: half), the
 * work the way's own algorithm requires (the prompt once or per answer, the tower per pair or per answer and
 * model, the reference online or not), never recomputation (checkpointing) or padding.
 */
export function wayFlops(s: BenchShape, way: Way): number {
  const d = s.hidden / s.heads;
  const layer = 2 * s.hidden * s.hidden + 2 * s.hidden * s.kvHeads * d + 3 * s.hidden * s.intermediate;
  const lm = (tokens: number, keys: number) => tokens * s.layers * (2 * layer + 4 * keys * s.hidden);  // one forward
  const grid = Math.floor(s.imageSize / s.patch) ** 2;
  const towerLayer = 4 * s.towerHidden ** 2 + 2 * s.towerHidden * s.towerIntermediate;
  const tower = s.frames * grid * s.towerLayers * (2 * towerLayer + 4 * grid * s.towerHidden);  // frozen: forward only
  const projector = 2 * s.frames * grid * (s.towerHidden * s.hidden + s.hidden * s.hidden);
  const prompt = visualTokens(s) + s.promptTokens + 2, answer = s.answerTokens;
  const head = (tokens: number) => 2 * s.hidden * s.vocab * tokens;
  if (way.includes('generate')) {
    const rows = s.prompts, shared = way === 'tpo-generate' ? visualTokens(s) + 2 : 0;
    const prefill = lm(shared, shared / 2) + rows * lm(prompt - shared, shared + (prompt - shared) / 2);
    const decode = rows * s.newTokens * (lm(1, prompt + s.newTokens / 2) + head(1));
    return prefill + decode;
  }
  const video = tower + 3 * projector;
  // Per pair: the policy's forward and backward (3 forwards' work) over its sequences, lm_head at the answers.
  let pair: number;
  if (way === 'tpo' || way === 'tpo-checkpointing') {
    pair = video + 3 * (lm(prompt - 1, (prompt - 1) / 2) + lm(2 * (answer + 1), prompt - 1 + (answer + 1) / 2)) + 3 * head(2 * answer);
  } else {
    pair = video + 3 * lm(2 * (prompt + answer), (prompt + answer) / 2) + 3 * head(2 * answer);
    if (way === 'pytorch-trl') pair += 3 * (head(2 * (prompt + answer)) - head(2 * answer));  // logits everywhere
    if (way === 'tpo-off' || way === 'pytorch-trl') {
      // The video for each answer of each model, the reference's forward online.
      pair += 3 * tower + 2 * projector + lm(2 * (prompt + answer), (prompt + answer) / 2) +
        (way === 'pytorch-trl' ? head(2 * (prompt + answer)) : head(2 * answer));
    }
  }
  return s.pairs * pair;
}

/** The table: each way's rate, wall and CPU time, peak RSS, utilisation; ratios against the best stock way. */
export function formatBenchPytorch(r: BenchPytorchResult): string {
  const s = r.shape;
  const lines = [
    `shape ${s.name}: Qwen2 ${s.layers} x ${s.hidden} (${s.heads}/${s.kvHeads} heads, mlp ${s.intermediate}, vocab ${s.vocab}); ` +
      `SigLIP ${s.towerLayers} x ${s.towerHidden} at ${s.imageSize}/${s.patch}; ${s.frames} frames -> ${visualTokens(s)} visual tokens; ` +
      `prompt +${s.promptTokens}, answers ${s.answerTokens}, ${s.pairs} pairs/step; generation ${s.prompts} prompts x ${s.newTokens} tokens; ` +
      `${r.threads} thread(s) per process`,
    '',
    'way                   rate              wall ms  cpu ms  peak RSS   vs best stock  cpu vs best  RSS vs best   MFU   first loss',
    '--------------------  ----------------  -------  ------  ---------  -------------  -----------  -----------  -----  ----------',
  ];
  const best = r.results.find((x) => x.way === 'pytorch-best');
  const gen = r.results.find((x) => x.way === 'pytorch-generate');
  for (const x of r.results) {
    const ref = x.unit === 'tokens/s' ? gen : best;
    const ratio = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '' : `${v.toFixed(2)}x`);
    const mfu = wayFlops(s, x.way) / (x.ms / 1000) / (x.matmulGflops * 1e9);
    lines.push([
      x.way.padEnd(20), `${x.rate.toFixed(3)} ${x.unit}`.padEnd(16), x.ms.toFixed(0).padStart(7), x.cpuMs.toFixed(0).padStart(6),
      `${x.peakRssMiB.toFixed(0)} MiB`.padStart(9), ratio(ref && x.rate / ref.rate).padStart(13),
      ratio(ref && ref.cpuMs / x.cpuMs).padStart(11), ratio(ref && x.peakRssMiB / ref.peakRssMiB).padStart(11),
      `${(100 * mfu).toFixed(0)}%`.padStart(5), x.firstLoss?.toFixed(5) ?? '',
    ].join('  '));
  }
  const tg = r.results.find((x) => x.way === 'tpo-generate');
  if (tg?.tokens && gen?.tokens) {
    const a = tg.tokens.flat(), b = gen.tokens.flat();
    lines.push('', `generated tokens equal to transformers': ${a.filter((v, i) => v === b[i]).length} of ${Math.max(a.length, b.length)}`);
  }
  lines.push(`MFU: the way's model FLOPs / wall time / the float32 matmul rate (1024) its process measured right after ` +
    `(${r.results.map((x) => x.matmulGflops.toFixed(0)).join(', ')} GFLOP/s; ${r.matmulGflops.toFixed(0)} in the parent)`);
  return lines.join('\n');
}

export async function runBenchPytorch(argv: string[]): Promise<number> {
  const f = parseFlags(argv);
  if (f.child) {
    console.log(JSON.stringify(await runChildWay(f)));
    return 0;
  }
  const result = await benchPytorch(argv);
  console.log(f.json ? JSON.stringify(result, null, 2) : formatBenchPytorch(result));
  return 0;
}
