// `tpo bench dpo`: the preference step with tpo's savings on (prefix sharing, the video encoded once per pair,
// precomputed reference log-probs) against the way TRL and LLaVA-Hound run it (the prompt once per answer, the video
// once per answer and model, the reference model online). Each configuration runs in its own process, so peak
// memory is its own.
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { contiguousParts, Group } from '../dist/group.js';
import { freePort } from '../dist/launch.js';
import { VideoLM } from '../model/video-lm.js';
import { benchMatmul, peakRss } from '../runtime.js';
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
                                        the preference step, savings on vs off (see README)
  bench dpo --nproc N [--threads T] ... the same step data-parallel: N ranks x T/N threads against one process x T
                                        threads (T: every core), the same pairs per step; communication per step`;

interface Flags {
  frames: number; promptTokens: number; answerTokens: number; pairs: number; steps: number;
  sharePrefix: boolean; encodeOnce: boolean; reference: 'precomputed' | 'online';
}

export interface DpoRun extends Flags {
  /** Data-parallel runs: ranks, threads per rank, and rank 0's collectives per step. */
  ranks?: number;
  threads?: number;
  commMsPerStep?: number;
  commMiBPerStep?: number;
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
      nproc: { type: 'string' }, threads: { type: 'string' },
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
  const nproc = values.nproc === undefined ? undefined : int('nproc', values.nproc);
  const threads = values.threads === undefined ? availableParallelism() : int('threads', values.threads);
  if (nproc !== undefined && threads % nproc !== 0) throw new Error(`bench dpo: --threads ${threads} is not a multiple of --nproc ${nproc}`);
  return { flags, json: values.json, one: values.one, nproc, threads };
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
  // A rank of a data-parallel run (torchrun's variables) steps on its share of the same pairs.
  const group = await Group.fromEnvironment({}, { command: 'bench dpo', flags: f });
  const mine = group ? contiguousParts(pairs, group.size)[group.rank]! : pairs;
  const optimizer = new Optimizer(policy, {}, reference, group ? { group } : undefined);
  const step = () => optimizer.preferenceStep({
    microBatches: mine.length ? [mine] : [], lr: 1e-4, loss: { beta: 0.1, sftWeight: 1 }, sharePrefix: f.sharePrefix, encodeOnce: f.encodeOnce,
    referenceMode: f.reference === 'online' ? 'frozen-copy' : 'precomputed',
  });
  await step();  // warm-up
  const before = group?.stats();
  const times: number[] = [];
  for (let s = 0; s < f.steps; s++) {
    const started = performance.now();
    await step();
    times.push(performance.now() - started);
  }
  reference?.dispose();
  const after = group?.stats();
  const comm = group ? {
    ranks: group.size, commMsPerStep: ((after!.seconds - before!.seconds) * 1000) / f.steps, commMiBPerStep: (after!.bytes - before!.bytes) / 2 ** 20 / f.steps,
  } : {};
  await group?.close();
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
    ...f, ...comm, pairsPerSecond: f.pairs / (stepMs / 1000), stepMs, peakRssMiB: peakRss() / 2 ** 20, visualTokens,
    modelGflopsPerStep, achievedGflops, matmulGflops: matmul.gflops, utilisation: achievedGflops / matmul.gflops,
  };
}

function childArgs(f: Flags): string[] {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  return [main, 'bench', 'dpo', '--one', '--json', '--frames', String(f.frames), '--prompt-tokens', String(f.promptTokens),
    '--answer-tokens', String(f.answerTokens), '--pairs', String(f.pairs), '--steps', String(f.steps),
    '--share-prefix', String(f.sharePrefix), '--encode-once', String(f.encodeOnce), '--reference', f.reference];
}

function runChild(f: Flags, threads?: number): DpoRun {
  const env = threads ? { ...process.env, TPO_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) } : process.env;
  const r = spawnSync(process.execPath, childArgs(f), { encoding: 'utf8', maxBuffer: 1 << 24, env });
  if (r.status !== 0) throw new Error(`bench dpo child failed: ${r.stderr}`);
  return { ...(JSON.parse(r.stdout) as DpoRun), threads: threads ?? availableParallelism() };
}

/** `ranks` processes of one data-parallel run, `threads` each; rank 0's figures. */
async function runRanks(f: Flags, ranks: number, threads: number): Promise<DpoRun> {
  const port = await freePort();
  const runs = Array.from({ length: ranks }, (_, rank) => new Promise<{ code: number | null; out: string; err: string }>((done) => {
    const child = spawn(process.execPath, childArgs(f), {
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(ranks), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
        TPO_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) },
    });
    let out = '', err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => done({ code, out, err }));
  }));
  const results = await Promise.all(runs);
  for (const [rank, r] of results.entries()) if (r.code !== 0) throw new Error(`bench dpo rank ${rank} failed: ${r.err}`);
  return { ...(JSON.parse(results[0]!.out) as DpoRun), threads };
}

/** `--nproc N`: the same step as N ranks of T/N threads and as one process of T threads. */
export async function benchDpoScaling(argv: string[]): Promise<{ ranks: DpoRun; single: DpoRun; ratio: number }> {
  const { flags, nproc, threads } = parseFlags(argv);
  const single = runChild(flags, threads);
  const ranks = await runRanks(flags, nproc!, threads / nproc!);
  return { ranks, single, ratio: ranks.pairsPerSecond / single.pairsPerSecond };
}

export async function benchDpo(argv: string[]): Promise<{ on: DpoRun; off: DpoRun } | DpoRun> {
  const { flags, one } = parseFlags(argv);
  if (one) return runOne(flags);
  const on = runChild({ ...flags, sharePrefix: true, encodeOnce: true, reference: 'precomputed' });
  const off = runChild({ ...flags, sharePrefix: false, encodeOnce: false, reference: 'online' });
  return { on, off };
}

export async function runBenchDpo(argv: string[]): Promise<number> {
  const { json, one, nproc } = parseFlags(argv);
  if (nproc !== undefined && !one) {
    const r = await benchDpoScaling(argv);
    if (json) console.log(JSON.stringify(r, null, 2));
    else {
      console.log(`dpo step, ${r.ranks.pairs} pairs: ${r.ranks.ranks} ranks x ${r.ranks.threads} threads ${r.ranks.pairsPerSecond.toFixed(2)} pairs/s ` +
        `vs 1 process x ${r.single.threads} threads ${r.single.pairsPerSecond.toFixed(2)} pairs/s (${r.ratio.toFixed(2)}x); ` +
        `communication ${r.ranks.commMsPerStep!.toFixed(1)} ms and ${r.ranks.commMiBPerStep!.toFixed(2)} MiB a step ` +
        `(${((100 * r.ranks.commMsPerStep!) / r.ranks.stepMs).toFixed(1)} % of ${r.ranks.stepMs.toFixed(0)} ms)`);
    }
    return 0;
  }
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
