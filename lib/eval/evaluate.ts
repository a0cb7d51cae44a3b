// Multiple-choice evaluation of a video LMM on a benchmark file, as lmms-eval runs it:
//   benchmark (any format in formats.ts) -> every video checked up front
//   -> per video: decode `frames` uniformly, preprocess, encode ONCE -> score every question about it
//   -> accuracy overall and per category, every sample, written atomically as one JSON file.
// A video that cannot be decoded skips its questions (counted, with the reason: onVideoError 'skip', the default);
// a score that is not finite is an error naming the model (NaN weights would otherwise score as option A); the
// output file is checked before anything runs.
// Two methods:
// - loglik: the open question (no options in the prompt), each option's text as the answer; the prediction is the
//   option of highest summed log-probability (acc) and of highest mean per-token log-probability (acc_norm), the two
//   figures lm-evaluation-harness reports. One native call per question: the prompt and video run once, each option
//   attends to them.
// - generate: the question with lettered options, greedy decoding, the letter read from the text (score.ts).
//   One native call per video for all its questions.
// Several ranks (`tpo eval --nproc N`, torchrun): rank r scores every N-th video, the samples are gathered and put in
// file order, so the results are one process's; rank 0 writes them.
import { z } from 'zod';

import { DataError } from '../data/errors.js';
import { encodeSft } from '../data/encode.js';
import { writeJsonFile } from '../data/jsonl.js';
import { assertVideosExist, groupByVideo } from '../data/videos.js';
import { DistributedConfig } from '../dist/config.js';
import { Group, roundRobin } from '../dist/group.js';
import { defaultFrames } from '../model/files.js';
import { type EncodedVideo, isVideoError, ModelSession, ON_VIDEO_ERROR, SAMPLINGS } from '../model/session.js';
import type { SamplePlan } from '../video/decode.js';
import type { Tensor } from '../native.js';
import { prepareOutputFile, prepareWritableDir } from '../paths.js';
import { tensor } from '../tensor.js';
import { parse } from '../validate.js';
import { packageVersion } from '../version.js';
import { EVAL_FORMATS, type EvalFormat, type EvalItem, readEvalBenchmark } from './formats.js';
import { isLmmsEvalOut, writeLmmsEval } from './lmms-eval.js';
import { aggregate, argmax, type CategoryScore, formatOptions, OPTION_LETTERS, parseChoice } from './score.js';

/** A path the run cannot do without: "required" when absent rather than zod's type message. */
const Required = z.string({ error: (issue) => (issue.input === undefined ? 'required' : undefined) }).min(1);

export const EvalConfig = z.strictObject({
  /** The model folder: config.json, safetensors weights, tokenizer, preprocessor_config.json. */
  model: Required,
  /** A LoRA adapter folder (PEFT layout) to load onto the model. */
  adapter: z.string().min(1).optional(),
  /** The benchmark file (JSON array or JSONL). */
  benchmark: Required,
  format: z.enum([...EVAL_FORMATS, 'auto']).default('auto'),
  /** Relative video paths resolve under this folder; by default, beside the benchmark file. */
  videoRoot: z.string().min(1).optional(),
  /** Frames sampled uniformly over each video (sampling 'uniform'). Default: the model's (Video-LLaVA 8, else 16). */
  frames: z.int().min(1).max(100_000).optional(),
  /** uniform: `frames` evenly spaced (TPO's recipe, lmms-eval's max_frames_num); processor: as the model's own
   * processor samples each video (VideoLLaMA3, Qwen2.5-VL, InternVL: their sample_frames with the model folder's
   * video processor config, samplingFps / samplingFrames over it; ModelSession.processorSamplePlan). */
  sampling: z.enum(SAMPLINGS).default('uniform'),
  /** sampling 'processor': the processor call's fps (frames a second), over the folder's config. */
  samplingFps: z.number().positive().optional(),
  /** sampling 'processor': the processor call's num_frames, over the folder's config. */
  samplingFrames: z.int().min(1).max(100_000).optional(),
  method: z.enum(['loglik', 'generate']).default('loglik'),
  /** Only the first N questions of the file. */
  limit: z.int().min(1).optional(),
  /** Generation length (method generate). */
  maxNewTokens: z.int().min(1).max(4096).default(16),
  /** Where the results go (checked before the evaluation runs): a .json file (tpo's results, written atomically), or
   * a folder in lmms-eval's layout (lmms-eval.ts); none: not written. */
  out: z.string().min(1).optional(),
  /** A video that cannot be decoded: skip its questions and list them in `skipped` (default), or stop. */
  onVideoError: z.enum(ON_VIDEO_ERROR).default('skip'),
  /** Several ranks (torchrun's variables, `--nproc N`): c10d's backend and timeout (lib/dist/config.ts). */
  distributed: DistributedConfig.prefault({}),
}).superRefine((c, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  for (const key of ['samplingFps', 'samplingFrames'] as const) {
    if (c[key] !== undefined && c.sampling !== 'processor') issue(key, "is the processor's sampling setting: it needs sampling 'processor'");
  }
  if (c.samplingFps !== undefined && c.samplingFrames !== undefined) issue('samplingFrames', 'give samplingFps or samplingFrames, not both (they are exclusive, as in the processor)');
  if (c.sampling === 'processor' && c.frames !== undefined) issue('frames', "is uniform sampling's frame count: with sampling 'processor' give samplingFrames");
}).transform((c) => ({ ...c, frames: c.frames ?? defaultFrames(c.model) }));
export type EvalConfig = z.input<typeof EvalConfig>;
export type ResolvedEvalConfig = z.output<typeof EvalConfig>;

export interface EvalSample {
  id: string;
  video: string;
  category: Record<string, string>;
  /** The right option's letter. */
  answer: string;
  /** The predicted option's letter; null when a generated answer names none. */
  prediction: string | null;
  correct: boolean;
  /** loglik: each option's summed log-probability, in option order. */
  scores?: number[];
  /** loglik: each option's token count (its text and the end-of-turn token), what acc_norm divides by. */
  answerTokens?: number[];
  /** loglik: the option of highest mean per-token log-probability. */
  predictionNorm?: string;
  correctNorm?: boolean;
  /** sampling 'processor': the frames (indices) the processor's rule took from the video (uniform: `frames` evenly). */
  frames?: number[];
  /** generate: the model's text, and how the prediction was read from it. */
  response?: string;
  parsed?: 'letter' | 'text' | 'unparsed';
}

export interface EvalResults {
  /** The config as run (defaults filled in), with the format that was detected. */
  config: ResolvedEvalConfig & { format: EvalFormat };
  results: {
    accuracy: number;
    acc_norm?: number;
    n: number;
    /** generate: answers that named no option (counted wrong). */
    unparsed?: number;
    /** Questions not scored because their video could not be decoded (not in n). */
    skipped: number;
    /** Per `name=value`, e.g. `kind=localized`. */
    byCategory: Record<string, CategoryScore>;
  };
  samples: EvalSample[];
  /** The questions skipped, and why (onVideoError 'skip'). */
  skipped: { id: string; video: string; reason: string }[];
  /** How frames were sampled: `frames` uniformly, or the model's processor rule with its settings. */
  sampling: { kind: 'uniform'; frames: number } | { kind: 'processor'; rule: string };
  seconds: number;
  model: { path: string; adapter: string | null; architecture: string; modelType: string; parameters: number };
  tpoVersion: string;
  date: string;
}

/** Called with 0 once the model is loaded, then as each video's questions are scored. */
export type EvalProgress = (done: number, total: number) => void;

interface Runner {
  session: ModelSession;
  config: ResolvedEvalConfig;
  /** Whether one log-likelihood has shown the model computes finite numbers (method generate checks once). */
  finite?: boolean;
}

/** Scores that are not numbers: the model's weights or config produce NaN or Inf (code ERR_TPO_NON_FINITE). */
export class NonFiniteScoreError extends Error {
  readonly code = 'ERR_TPO_NON_FINITE';
  constructor(model: string, what: string, options?: ErrorOptions) {
    super(`${model}: ${what} is not finite: the model's weights or config (e.g. weights so large their products overflow) produce ` +
      'NaN or Inf, so no answer can be scored', options);
    this.name = 'NonFiniteScoreError';
  }
}

// A copy, not a view: a tensor may keep the memory it was made from.
const ids = (values: Int32Array) => tensor(values.slice(), [values.length]);

/** A video's visual tokens as generate / logprobs take them (Qwen2.5-VL's with their grid and second_per_grid_ts). */
type VideoInput = EncodedVideo;

/**
 * Log-likelihood scoring: the question with its video (where it places `<image>`, else first, as training puts it),
 * each option as the assistant's answer. Every question of the video in one native call: what the prompts share (the
 * system text and the video) runs once.
 */
async function scoreLoglik(runner: Runner, items: EvalItem[], video: VideoInput): Promise<EvalSample[]> {
  // The answer as lmms-eval's LLaVA models score a continuation: the option's text closing the assistant's turn
  // (its end-of-turn token included), so an option that is a prefix of another does not win by stopping early.
  const encoded = items.map((item) => item.options.map((answer) =>
    encodeSft(runner.session.tokenizer, { prompt: item.question, answer, source: item.source })));
  const batch = encoded.map((options) => ({
    prompt: ids(options[0]!.inputIds.subarray(0, options[0]!.promptLength)),
    answers: options.map((e) => ids(e.inputIds.subarray(e.promptLength))),
  }));
  try {
    const results = await runner.session.model.logprobsBatch({ items: batch, ...video }).catch((error: unknown) => {
      // The native call refuses non-finite scores itself (they never leave it): said as this module says it.
      if ((error as { code?: string }).code !== 'ERR_TPO_NON_FINITE') throw error;
      throw new NonFiniteScoreError(runner.config.model, `a log-likelihood of the questions on ${items[0]!.video}`, { cause: error });
    });
    return items.map((item, q) => {
      const { sums, tokenLogprobs } = results[q]!;
      const scores = Array.from(sums.toTypedArray());
      sums.dispose();
      for (const t of tokenLogprobs) t.dispose();
      const bad = scores.findIndex((s) => !Number.isFinite(s));
      if (bad >= 0) throw new NonFiniteScoreError(runner.config.model, `the log-likelihood of ${item.id}'s option ${OPTION_LETTERS[bad]} (${scores[bad]})`);
      const answerTokens = encoded[q]!.map((e) => e.inputIds.length - e.promptLength);
      const predicted = argmax(scores);
      const predictedNorm = argmax(scores.map((s, i) => s / answerTokens[i]!));
      return {
        ...sampleBase(item), prediction: OPTION_LETTERS[predicted]!, correct: predicted === item.answer, scores, answerTokens,
        predictionNorm: OPTION_LETTERS[predictedNorm]!, correctNorm: predictedNorm === item.answer,
      };
    });
  } finally {
    for (const b of batch) {
      b.prompt.dispose();
      for (const a of b.answers) a.dispose();
    }
  }
}

/** Generative scoring: every question of the video, lettered options, greedy, in one native call. */
async function scoreGenerate(runner: Runner, items: EvalItem[], video: VideoInput): Promise<EvalSample[]> {
  const { session } = runner;
  const prompts = items.map((item) => session.prompt(formatOptions(item.question, item.options)));
  try {
    // Greedy decoding over NaN logits still picks tokens: one log-likelihood tells whether the model computes numbers.
    if (!runner.finite) await scoreLoglik(runner, [{ ...items[0]!, options: items[0]!.options.slice(0, 1), answer: 0 }], video);
    runner.finite = true;
    const { tokens } = await session.model.generate({
      prompts, ...video, maxNewTokens: runner.config.maxNewTokens, temperature: 0, stopIds: session.stopIds,
    });
    return items.map((item, i) => {
      const response = session.tokenizer.decode(tokens[i]!, { skipSpecialTokens: true }).trim();
      const { index, how } = parseChoice(response, item.options);
      return {
        ...sampleBase(item), prediction: index === null ? null : OPTION_LETTERS[index]!, correct: index === item.answer,
        response, parsed: how,
      };
    });
  } finally {
    for (const p of prompts) p.dispose();
  }
}

function sampleBase(item: EvalItem): Pick<EvalSample, 'id' | 'video' | 'category' | 'answer'> {
  return { id: item.id, video: item.video, category: item.category, answer: item.answerLetter };
}

/**
 * Evaluates `config.model` (with `config.adapter`) on `config.benchmark`. Every missing video is reported before
 * the model loads; the results JSON is written to `config.out` when given.
 */
export async function evaluate(config: EvalConfig, onProgress?: EvalProgress, options: { group?: Group } = {}): Promise<EvalResults> {
  const c = parse(EvalConfig, config, 'eval config');
  const group = options.group ?? await Group.fromEnvironment(c.distributed, { command: 'eval', config: c });
  const results = await evaluateShare(c, onProgress, group);
  if (group && !options.group) await group.close();
  return results;
}

async function evaluateShare(c: ResolvedEvalConfig, onProgress: EvalProgress | undefined, group: Group | undefined): Promise<EvalResults> {
  const started = performance.now();
  const main = !group || group.isMain;
  // The output is checked before hours of work: not a folder, a FIFO or under /proc, and its folder takes files.
  if (c.out && main && isLmmsEvalOut(c.out)) prepareWritableDir(c.out, 'the results folder (--out)');
  else if (c.out && main) prepareOutputFile(c.out, 'the results file (--out)', { createDir: true, probe: true });
  const { format, items: all } = await readEvalBenchmark(c.benchmark, { format: c.format, ...(c.videoRoot ? { videoRoot: c.videoRoot } : {}) });
  const items = c.limit === undefined ? all : all.slice(0, c.limit);
  if (!items.length) throw new DataError('has no questions to evaluate', { file: c.benchmark });
  await assertVideosExist(items);

  using session = await ModelSession.open(c.model, c.adapter ? { adapter: c.adapter } : {});
  const runner: Runner = { session, config: c };
  // A model without a processor rule fails here, before any video is read.
  const processorOptions = { fps: c.samplingFps, numFrames: c.samplingFrames };
  const sampling: EvalResults['sampling'] = c.sampling === 'processor'
    ? { kind: 'processor', rule: session.processorSampling(processorOptions) } : { kind: 'uniform', frames: c.frames };
  const planFor = async (videoPath: string): Promise<SamplePlan> => c.sampling === 'processor'
    ? session.processorSamplePlan(videoPath, processorOptions) : { kind: 'uniform', frames: c.frames };

  const byId = new Map<string, EvalSample>();
  const skipped: EvalResults['skipped'] = [];
  const done = () => byId.size + skipped.length;
  // Once before the first question, so a progress bar's clock starts after the model has loaded.
  onProgress?.(0, items.length);
  const videos = groupByVideo(items);
  for (const { videoPath, records } of group ? roundRobin(videos, group.rank, group.size) : videos) {
    let videoTokens: Tensor;
    let video: VideoInput;
    let indices: number[];
    try {
      ({ tokens: videoTokens, video, indices } = await session.videoTokens(videoPath, await planFor(videoPath)));
    } catch (error) {
      if (!isVideoError(error) || c.onVideoError === 'stop') throw error;
      for (const item of records) skipped.push({ id: item.id, video: item.video, reason: error.message });
      onProgress?.(done(), items.length);
      continue;
    }
    try {
      const scored = c.method === 'generate' ? await scoreGenerate(runner, records, video) : await scoreLoglik(runner, records, video);
      for (const sample of scored) byId.set(sample.id, c.sampling === 'processor' ? { ...sample, frames: indices } : sample);
      onProgress?.(done(), items.length);
    } finally {
      videoTokens.dispose();
      video.videoGridThw?.dispose();
    }
  }
  if (group) {
    // Every rank's samples and skips; the skips in the order one process meets them (by video, then file order).
    const shares = await group.allGather({ samples: [...byId.values()], skipped }, 'eval: gathering the samples');
    for (const share of shares) for (const sample of share.samples) byId.set(sample.id, sample);
    const order = new Map(videos.flatMap((v) => v.records).map((item, i) => [item.id, i]));
    skipped.splice(0, skipped.length, ...shares.flatMap((share) => share.skipped).sort((a, b) => order.get(a.id)! - order.get(b.id)!));
  }
  if (byId.size === 0) {
    throw new DataError(`no question could be scored: every video failed to decode (the first: ${skipped[0]?.reason})`, { file: c.benchmark });
  }

  // Samples in file order, whatever order the videos ran in.
  const samples = items.flatMap((item) => byId.get(item.id) ?? []);
  const { byCategory, ...overall } = aggregate(samples);
  const info = session.model.info;
  const results: EvalResults = {
    config: { ...c, format },
    results: {
      ...overall,
      ...(c.method === 'generate' ? { unparsed: samples.filter((s) => s.parsed === 'unparsed').length } : {}),
      skipped: skipped.length,
      byCategory,
    },
    samples,
    skipped,
    sampling,
    seconds: (performance.now() - started) / 1000,
    model: { path: c.model, adapter: c.adapter ?? null, architecture: info.architecture, modelType: info.modelType, parameters: info.parameters },
    tpoVersion: packageVersion(),
    date: new Date().toISOString(),
  };
  if (c.out && main && isLmmsEvalOut(c.out)) await writeLmmsEval(results, c.out);  // a folder: lmms-eval's layout
  else if (c.out && main) await writeJsonFile(c.out, results);
  return results;
}

const percent = (x: number) => `${(100 * x).toFixed(1)} %`;

function samplingText(s: EvalResults['sampling']): string {
  return s.kind === 'uniform' ? `${s.frames} frames` : `frames by ${s.rule}`;
}

/** A console table: the overall figures, then one row per category value. */
export function formatResults(r: EvalResults): string {
  const norm = r.results.acc_norm !== undefined;
  const rows: [string, CategoryScore][] = [['overall', r.results], ...Object.entries(r.results.byCategory)];
  const width = Math.max(...rows.map(([name]) => name.length), 'category'.length);
  const line = (name: string, acc: string, accNorm: string, n: string) =>
    `${name.padEnd(width)}  ${acc.padStart(8)}${norm ? `  ${accNorm.padStart(8)}` : ''}  ${n.padStart(6)}`;
  const c = r.config;
  const unparsed = r.results.unparsed !== undefined ? `, ${r.results.unparsed} answers named no option (counted wrong)` : '';
  const skipped = r.results.skipped ? `, ${r.results.skipped} skipped (their videos could not be decoded: \`skipped\` in the results)` : '';
  return [
    `${c.benchmark} (${c.format}): ${r.results.n} questions, ${c.method}, ${samplingText(r.sampling)}, ${r.seconds.toFixed(1)} s${unparsed}${skipped}`,
    `model ${r.model.path}${r.model.adapter ? ` + adapter ${r.model.adapter}` : ''}`,
    '',
    line('category', 'accuracy', 'acc_norm', 'n'),
    ...rows.map(([name, s]) => line(name, percent(s.accuracy), s.acc_norm !== undefined ? percent(s.acc_norm) : '', String(s.n))),
  ].join('\n');
}
