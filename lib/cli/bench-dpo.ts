// `tpo bench dpo`: the preference step with tpo's savings on (prefix sharing, the video encoded once per pair,
// precomputed reference log-probs) against the way TRL and LLaVA-Hound run it (the prompt once per answer, the video
// once per answer and model, the reference model online). Each configuration runs in its own process, so peak
// memory is its own.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { VideoLM } from '../model/video-lm.js';
import { benchMatmul } from '../runtime.js';
import { tensor } from '../tensor.js';
import { Optimizer } from '../train/optimizer.js';
import { preferenceForward } from '../train/preference.js';
import { BENCH_CONFIG } from './bench-model.js';
import type { BenchRow } from './bench.js';

/** 64x64 frames in 4x4 patches: a 16x16 grid pooled to 8x8 = 64 visual tokens a frame, no newline tokens. */
const DPO_CONFIG = {
  ...BENCH_CONFIG,
  mm_newline_position: 'no_token',
  vision_config: { ...BENCH_CONFIG.vision_config, patch_size: 4 },
};

export const BENCH_DPO_USAGE = `  bench dpo [--frames 16] [--prompt-tokens 32] [--answer-tokens 32] [--pairs 4] [--steps 3] [--json]
                                        the preference step, savings on vs off (see README)`;

interface Flags {
  frames: number; promptTokens: number; answerTokens: number; pairs: number; steps: number;
  sharePrefix: boolean; encodeOnce: boolean; reference: 'precomputed' | 'online';
}

export interface DpoRun extends Flags {
  pairsPerSecond: number;
  stepMs: number;
  peakRssMiB: number;
  visualTokens: number;
  modelGflopsPerStep: number;
  achievedGflops: number;
  matmulGflops: number;
  utilisation: number;
}

function parseFlags(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      frames: { type: 'string', default: '16' }, 'prompt-tokens': { type: 'string', default: '32' },
      'answer-tokens': { type: 'string', default: '32' }, pairs: { type: 'string', default: '4' },
      steps: { type: 'string', default: '3' }, json: { type: 'boolean', default: false },
      one: { type: 'boolean', default: false }, 'share-prefix': { type: 'string', default: 'true' },
      'encode-once': { type: 'string', default: 'true' }, reference: { type: 'string', default: 'precomputed' },
    },
  });
  const int = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench dpo: --${name} must be a positive integer`);
    return n;
  };
  const flags: Flags = {
    frames: int('frames', values.frames), promptTokens: int('prompt-tokens', values['prompt-tokens']),
    answerTokens: int('answer-tokens', values['answer-tokens']), pairs: int('pairs', values.pairs), steps: int('steps', values.steps),
    sharePrefix: values['share-prefix'] !== 'false', encodeOnce: values['encode-once'] !== 'false',
    reference: values.reference === 'online' ? 'online' : 'precomputed',
  };
  return { flags, json: values.json, one: values.one };
}

/** One configuration, in this process. */
async function runOne(f: Flags): Promise<DpoRun> {
  using policy = await VideoLM.create(DPO_CONFIG, { seed: 0 });
  const reference = f.reference === 'online' ? await VideoLM.create(DPO_CONFIG, { seed: 0 }) : undefined;
  policy.addLora({ r: 8, alpha: 16, seed: 0 });
  policy.setTrainable({ lora: true });
  const video = tensor(Float32Array.from({ length: f.frames * 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37) * 0.5), [f.frames, 3, 64, 64]);
  const ids = (n: number, offset: number) => tensor(Int32Array.from({ length: n }, (_, i) => 10 + ((i * 7 + offset) % 1900)), [n]);
  const prompt = tensor(Int32Array.from([11, 12, -200, ...Array.from({ length: f.promptTokens }, (_, i) => 100 + i)]), [f.promptTokens + 3]);
  const pairs = Array.from({ length: f.pairs }, (_, k) => ({ prompt, chosen: ids(f.answerTokens, k), rejected: ids(f.answerTokens, k + 50), video }));
  if (f.reference === 'precomputed') {
    // Computed once before training (not timed), as the precomputed mode does.
    const out = await preferenceForward(policy, pairs, { loss: { referenceFree: true }, referenceMode: 'none' });
    const c = out.policyChosen.toTypedArray() as Float32Array;
    const r = out.policyRejected.toTypedArray() as Float32Array;
    pairs.forEach((p, i) => Object.assign(p, { reference: [c[i]!, r[i]!] }));
  }
  const optimizer = new Optimizer(policy, {}, reference);
  const step = () => optimizer.preferenceStep({
    microBatches: [pairs], lr: 1e-4, loss: { beta: 0.1, sftWeight: 1 }, sharePrefix: f.sharePrefix, encodeOnce: f.encodeOnce,
    referenceMode: f.reference === 'online' ? 'frozen-copy' : 'precomputed',
  });
  await step();  // warm-up
  const times: number[] = [];
  for (let s = 0; s < f.steps; s++) {
    const started = performance.now();
    await step();
    times.push(performance.now() - started);
  }
  reference?.dispose();
  const stepMs = times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  const visualTokens = (await policy.encodeVideo(video)).shape[0]!;
  // The work the step needs, whatever the configuration: the policy's forward and backward (3 x 2 FLOP per weight)
  // over the prompt once and both answers, and the tower over the frames, for every pair.
  const weights = policy.info.parameters;
  const positions = visualTokens + f.promptTokens + 2 + 2 * f.answerTokens;
  const modelGflopsPerStep = (f.pairs * 6 * weights * positions) / 1e9;
  const matmul = await benchMatmul({ size: 1024, seconds: 1 });
  const achievedGflops = modelGflopsPerStep / (stepMs / 1000);
  return {
    ...f, pairsPerSecond: f.pairs / (stepMs / 1000), stepMs, peakRssMiB: process.resourceUsage().maxRSS / 1024, visualTokens,
    modelGflopsPerStep, achievedGflops, matmulGflops: matmul.gflops, utilisation: achievedGflops / matmul.gflops,
  };
}

function runChild(f: Flags): DpoRun {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const args = [main, 'bench', 'dpo', '--one', '--json', '--frames', String(f.frames), '--prompt-tokens', String(f.promptTokens),
    '--answer-tokens', String(f.answerTokens), '--pairs', String(f.pairs), '--steps', String(f.steps),
    '--share-prefix', String(f.sharePrefix), '--encode-once', String(f.encodeOnce), '--reference', f.reference];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`bench dpo child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as DpoRun;
}

export async function benchDpo(argv: string[]): Promise<{ on: DpoRun; off: DpoRun } | DpoRun> {
  const { flags, one } = parseFlags(argv);
  if (one) return runOne(flags);
  const on = runChild({ ...flags, sharePrefix: true, encodeOnce: true, reference: 'precomputed' });
  const off = runChild({ ...flags, sharePrefix: false, encodeOnce: false, reference: 'online' });
  return { on, off };
}

export async function runBenchDpo(argv: string[]): Promise<number> {
  const { json, one } = parseFlags(argv);
  const result = await benchDpo(argv);
  if (one || json) {
    console.log(JSON.stringify(one ? result : { ...result, ...ratios(result as { on: DpoRun; off: DpoRun }) }, null, 2));
  } else {
    console.log(dpoRows(result as { on: DpoRun; off: DpoRun }).map((r) => `${r.name}: ${r.value.toFixed(2)} vs ${r.baselineValue.toFixed(2)} ${r.unit} (${r.ratio.toFixed(2)}x)`).join('\n'));
  }
  return 0;
}

function ratios({ on, off }: { on: DpoRun; off: DpoRun }) {
  return { speedup: on.pairsPerSecond / off.pairsPerSecond, memoryRatio: on.peakRssMiB / off.peakRssMiB };
}

export function dpoRows(result: { on: DpoRun; off: DpoRun }): BenchRow[] {
  const { on, off } = result;
  return [
    { name: `dpo step, ${on.visualTokens} visual + ${on.promptTokens} prompt, answers ${on.answerTokens}, ${on.pairs} pairs`,
      baseline: 'prompt per answer, video per answer and model, reference online', unit: 'pairs/s',
      value: on.pairsPerSecond, baselineValue: off.pairsPerSecond, ratio: on.pairsPerSecond / off.pairsPerSecond },
    { name: 'dpo step peak memory (lower is better; ratio = baseline / tpo)', baseline: 'the same baseline', unit: 'MiB',
      value: on.peakRssMiB, baselineValue: off.peakRssMiB, ratio: off.peakRssMiB / on.peakRssMiB },
  ];
}

export async function benchDpoRows(): Promise<BenchRow[]> {
  return dpoRows((await benchDpo([])) as { on: DpoRun; off: DpoRun });
}
