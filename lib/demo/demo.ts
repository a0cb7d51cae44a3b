// `tpo demo`: the whole TPO pipeline on the synthetic world, in one folder, each stage resumable:
//
//   world/     tpo synth: videos (short and long), annotations, questions, the tiny model's files
//   base/      the SFT base: the package's own (assets/base-model, made by scripts/make-base.ts) or trained here
//              with the curriculum of lib/demo/base.ts
//   pairs/     TPO's self-generated pairs: the base answers the long training videos' questions from manipulated
//              inputs; the synthetic judge keeps pairs whose preferred answer is right and dis-preferred one wrong
//   tpo/       TPO training (DPO + SFT on the chosen answer) of the base on those pairs
//   eval/      the base and the TPO model on the held-out test benchmark (per kind, type and length)
//   report.md, report.html    timings, accuracy table, training curves, accuracy bars
//
// A stage whose output is complete is not run again, so an interrupted demo resumes where it stopped.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { z } from 'zod';

import { filterJsonl, writeJsonFile } from '../data/jsonl.js';
import { evaluate, type EvalResults } from '../eval/evaluate.js';
import type { DemoReport, ModelScores, StageTiming } from '../report/report.js';
import { writeReport } from '../report/report.js';
import { writeSynthDataset } from '../synthetic/dataset.js';
import { generatePairs, type GenerateSummary } from '../tpo/generate.js';
import type { TrainConfig } from '../train/config.js';
import { type StepEvent, Trainer } from '../train/trainer.js';
import { parse } from '../validate.js';
import { BASE_CURRICULUM, trainBase } from './base.js';

/** The SFT base the package ships (scripts/make-base.sh remakes it from a recorded seed). */
export const PACKAGED_BASE = fileURLToPath(new URL('../../../assets/base-model', import.meta.url));

export const DemoOptions = z.strictObject({
  out: z.string().min(1).default('tpo-demo'),
  /** The world's seed (videos, questions) and the TPO stages' seed. */
  seed: z.int().nonnegative().default(0),
  /** Videos in all splits (75% train, 5% validation, 20% test), half short and half long: the experiment's world
   * (docs/results.md), so the demo reproduces its first seed. */
  videos: z.int().min(20).default(1000),
  /** Events in a long video. The world's own long videos hold 16-28, more than 16 frames can show (an event
   * lasts 6-12 of their 150-400 frames): at 8-12 every event is on one of the 16 frames the model sees, so what
   * TPO changes is where the model looks, not which frames it was dealt (docs/results.md). */
  longEvents: z.tuple([z.int().min(1), z.int().min(1)]).refine(([a, b]) => a <= b, 'min <= max').default([8, 12]),
  /** A base model folder; default the packaged one, or one trained here with `trainBase`. */
  base: z.string().min(1).optional(),
  /** Train the SFT base in this run instead of using the packaged one (about half an hour on 2 cores). */
  trainBase: z.boolean().default(false),
  frames: z.int().min(1).default(16),
  /** TPO pairs to keep (the localized : comprehensive mix 5:5). */
  pairs: z.int().min(1).default(100),
  /** TPO epochs over the pairs. */
  epochs: z.int().min(1).default(2),
  lr: z.number().positive().default(2e-4),
  beta: z.number().positive().default(0.1),
  sftWeight: z.number().min(0).default(1),
  /** The pairs' judge: synthetic (exact: the preferred answer right, the dis-preferred one wrong) or graded (the
   * preferred answer closer to the truth, as TPO's LLM judge keeps the better answer); docs/results.md. */
  judge: z.enum(['synthetic', 'graded']).default('synthetic'),
});
export type DemoOptions = z.input<typeof DemoOptions>;
type Resolved = z.output<typeof DemoOptions>;

export type DemoEvent =
  | { type: 'stage'; name: string; detail: string }
  | { type: 'stage-done'; name: string; seconds: number; skipped: boolean }
  | { type: 'progress'; stage: string; done: number; total: number; detail?: string };

export interface DemoResult {
  out: string;
  stages: StageTiming[];
  base: EvalResults;
  tpo: EvalResults;
  pairs: GenerateSummary;
  report: { markdown: string; html: string };
}

/** TPO on the self-generated pairs: sigmoid DPO + SFT on the chosen answer, language model trained, the tower frozen. */
export function tpoTrainConfig(o: Resolved, base: string, pairs: string, output: string): TrainConfig {
  return {
    model: base, output, data: { train: pairs }, objective: 'tpo',
    loss: { type: 'sigmoid', beta: o.beta, sftWeight: o.sftWeight },
    reference: 'precomputed', train: { language: true }, batchPairs: true,
    lr: o.lr, batchSize: 8, frames: o.frames, epochs: o.epochs, seed: o.seed,
    schedule: { type: 'cosine', warmupRatio: 0.1 },
    checkpoint: { every: 100, keepLast: 1 },
  };
}

const complete = async (manifest: string) =>
  existsSync(manifest) && (JSON.parse(await readFile(manifest, 'utf8')) as { complete?: boolean }).complete === true;

async function train(config: TrainConfig, stage: string, emit: (e: DemoEvent) => void): Promise<string> {
  const final = join(config.output, 'final');
  if (existsSync(final)) return final;
  const trainer = new Trainer(config, stage);
  trainer.on('step', ({ step, total, metrics }: StepEvent) => {
    const acc = metrics['rewards/accuracies'];
    emit({ type: 'progress', stage, done: step, total: total ?? step, detail: `loss ${metrics.loss?.toFixed(3)}${acc === undefined ? '' : `, reward acc ${acc.toFixed(2)}`}` });
  });
  const result = await trainer.fit({ resume: true });
  return result.final!;
}

function scores(name: string, results: EvalResults): ModelScores {
  return { name, accuracy: results.results.accuracy, n: results.results.n, byCategory: results.results.byCategory };
}

export async function runDemo(options: DemoOptions = {}, emit: (e: DemoEvent) => void = () => {}): Promise<DemoResult> {
  const o = parse(DemoOptions, options, 'tpo demo');
  const out = resolve(o.out);
  const world = join(out, 'world');
  const stages: StageTiming[] = [];
  const stage = async <T>(name: string, detail: string, run: () => Promise<{ value: T; skipped: boolean }>): Promise<T> => {
    emit({ type: 'stage', name, detail });
    const started = performance.now();
    const { value, skipped } = await run();
    const seconds = (performance.now() - started) / 1000;
    stages.push({ name, seconds, ...(skipped ? { detail: 'done by an earlier run' } : { detail }) });
    emit({ type: 'stage-done', name, seconds, skipped });
    return value;
  };

  await stage('world', `${o.videos} videos, seed ${o.seed}`, async () => {
    const skipped = await complete(join(world, 'synth.json'));
    if (!skipped) {
      await writeSynthDataset({
        out: world, videos: o.videos, seed: o.seed, split: [0.75, 0.05, 0.2],
        world: { length: 'mixed', long: { events: o.longEvents, eventFrames: [6, 12], gapFrames: [0, 3] } },
      },
        (p) => emit({ type: 'progress', stage: 'world', done: p.done, total: p.total }));
    }
    return { value: undefined, skipped };
  });

  const base = await stage('base', o.base ? o.base : o.trainBase ? 'SFT curriculum (lib/demo/base.ts)' : 'the packaged SFT base', async () => {
    if (o.base) return { value: resolve(o.base), skipped: true };
    if (!o.trainBase) {
      if (!existsSync(join(PACKAGED_BASE, 'model.safetensors')))
        throw new Error(`the packaged base model is missing (${PACKAGED_BASE}); run with --train-base to train one here`);
      return { value: PACKAGED_BASE, skipped: true };
    }
    const skipped = existsSync(join(out, 'base', `sft-${BASE_CURRICULUM.at(-1)!.name}`, 'final'));
    const model = await trainBase(join(out, 'base'), o.seed, (p) =>
      emit({ type: 'progress', stage: `base (${p.stage})`, done: p.step, total: p.total, detail: `loss ${p.loss?.toFixed(3)}` }));
    return { value: model, skipped };
  });

  const pairsFile = join(out, 'pairs', 'tpo-pairs.jsonl');
  const pairs = await stage('pairs', `${o.pairs} TPO pairs from the long training videos`, async () => {
    const questions = join(world, 'train-long-benchmark.jsonl');
    await filterJsonl(join(world, 'train-benchmark.jsonl'), questions, (r) => r.length === 'long');
    // A finished generation leaves a marker: without it (a run killed mid-way), generatePairs resumes the files.
    const marker = join(out, 'pairs', 'complete.json');
    const done = { complete: true, pairs: o.pairs, seed: o.seed, judge: o.judge };
    const skipped = existsSync(marker) && JSON.stringify(JSON.parse(await readFile(marker, 'utf8'))) === JSON.stringify(done);
    const summary = await generatePairs({
      model: base, questions, out: pairsFile, manipulation: 'tpo', frames: o.frames, mix: [5, 5], targetPairs: o.pairs,
      maxNewTokens: 12, seed: o.seed, judge: o.judge,
    }, (p) => emit({ type: 'progress', stage: 'pairs', done: p.done, total: p.videos, detail: `${p.summary.kept} kept` }));
    await writeJsonFile(marker, done);
    return { value: summary, skipped };
  });

  if (pairs.kept === 0) {
    throw new Error(`the base kept no TPO pairs (${JSON.stringify(pairs.dropped)}): its preferred answers were never right ` +
      `where the dis-preferred ones were wrong; a base this weak has nothing to learn from (see ${pairsFile}.dropped.jsonl)`);
  }
  const tpoRun = join(out, 'tpo');
  const tpoModel = await stage('tpo', `${pairs.kept} pairs x ${o.epochs} epochs, beta ${o.beta}, lr ${o.lr}`, async () => {
    const skipped = existsSync(join(tpoRun, 'final'));
    return { value: await train(tpoTrainConfig(o, base, pairsFile, tpoRun), 'tpo', emit), skipped };
  });

  // The held-out long videos: what TPO is for.
  const benchmark = join(world, 'test-long-benchmark.jsonl');
  await filterJsonl(join(world, 'test-benchmark.jsonl'), benchmark, (r) => r.length === 'long');
  const evalOne = (name: string, model: string) => stage(`eval ${name}`, `the held-out long test videos, ${o.frames} frames`, async () => {
    const file = join(out, 'eval', `${name}.json`);
    if (existsSync(file)) return { value: JSON.parse(await readFile(file, 'utf8')) as EvalResults, skipped: true };
    const results = await evaluate({ model, benchmark, frames: o.frames, method: 'loglik', out: file },
      (done, total) => emit({ type: 'progress', stage: `eval ${name}`, done, total }));
    return { value: results, skipped: false };
  });
  const baseResults = await evalOne('base', base);
  const tpoResults = await evalOne('tpo', tpoModel);

  const report: DemoReport = {
    title: 'TPO on the synthetic temporal world',
    createdAt: new Date().toISOString(),
    command: `tpo demo --out ${o.out} --seed ${o.seed}${o.trainBase ? ' --train-base' : ''}`,
    stages,
    models: [scores('base (SFT)', baseResults), scores('TPO', tpoResults)],
    training: [
      ...(o.trainBase ? BASE_CURRICULUM.map((s) => ({ name: `SFT base: ${s.name}`, metricsFile: join(out, 'base', `sft-${s.name}`, 'metrics.jsonl') })) : []),
      { name: 'TPO', metricsFile: join(tpoRun, 'metrics.jsonl') },
    ],
    pairs,
    notes: [
      'Accuracy: multiple choice scored by the options\' log-likelihood (lm-evaluation-harness `acc`), 16 frames sampled uniformly.',
      'Pairs: the base answers each long training video\'s question from the preferred input (localized: the target segment; ' +
        'comprehensive: 16 frames) and the dis-preferred one (the video without the segment; 4 frames). ' +
        (o.judge === 'graded'
          ? 'Kept when the preferred answer is closer to the truth (the graded judge: the nearer count, the caption with more right parts, as an LLM judge keeps the better answer).'
          : 'Kept when the preferred answer is right and the dis-preferred one wrong (the synthetic judge).'),
      'Over three seeds, with baselines (SFT on the preferred answers, DPO without temporal manipulation), mixes and data ' +
        'sizes: docs/results.md in the tpo package.',
    ],
  };
  const files = await writeReport(out, report);
  await writeJsonFile(join(out, 'demo.json'), { options: o, stages, pairs, base: baseResults.results, tpo: tpoResults.results });
  return { out, stages, base: baseResults, tpo: tpoResults, pairs, report: { markdown: files.markdown, html: files.html } };
}
