// TPO's self-training data: the model answers each question twice, from a preferred and from a dis-preferred
// input of its video, and a judge keeps the pairs worth training on.
//
//   questions: synthetic benchmark records (exact answers), or captions + an LLM that writes them (real videos)
//   -> per video: decode each input once (lib/tpo/plans.ts), corrupt it (TimeWarp implicit), encode it once
//   -> one generate call per input for every question that shares it
//   -> judge (synthetic: exact; graded: closer to the truth; llm: TPO's three checks; none) -> pairs JSONL with provenance
//      + <out>.dropped.jsonl (every drop and skip, with its reason) + <out>.summary.json
//
// Manipulations: tpo (localized: the target segment vs the video without it; comprehensive: dense vs sparse),
// timewarp-explicit (true vs shuffled scene order), timewarp-implicit (clean vs corrupted frames), none (two
// sampled answers on the same full video: the baseline without temporal manipulation, the judge picks the side).
//
// Resumable: records already in either output file are skipped, a torn last line is repaired before appending.
//
// Several ranks (`tpo generate --nproc N`, torchrun): rank r answers every N-th video (round robin, so long and short
// videos spread) into files of its own (<out>.rank-<r>-of-<N>.jsonl, .dropped.jsonl), which are its resumable state;
// when every rank is done, rank 0 merges them into <out> in the order one process writes (by video, in work order),
// and removes them. A rerun at any world size starts from every file there.
// The parts, each testable without a model: state.ts (what was written), work.ts (units of work and inputs),
// quotas.ts (the mix), judge.ts (one Judge interface), records.ts (the records' schemas).
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { z } from 'zod';

import { DataError } from '../data/errors.js';
import { JsonlAppender, writeJsonFile, writeJsonl } from '../data/jsonl.js';
import { DistributedConfig } from '../dist/config.js';
import { Group } from '../dist/group.js';
import { readAnnotations, readBenchmark } from '../data/records.js';
import { assertVideosExist } from '../data/videos.js';
import { defaultFrames } from '../model/files.js';
import { isVideoError, ModelSession, ON_VIDEO_ERROR, SAMPLINGS } from '../model/session.js';
import type { Tensor } from '../native.js';
import { prepareOutputFile } from '../paths.js';
import { parse } from '../validate.js';
import { CorruptOptions } from '../video/corrupt.js';
import type { SamplePlan } from '../video/decode.js';
import { JUDGES, makeJudge, settleSides } from './judge.js';
import { ChatClient, LlmConfig } from './llm.js';
import { quotas, quotasFilled } from './quotas.js';
import { DroppedPair, PairRecord, SkipRecord } from './records.js';
import { type Skip, syntheticQuestion, type TpoQuestion } from './sources.js';
import { GenerationState, type GenerateSummary, writtenRecords } from './state.js';
import { captionWork, inputsFor, type InputSettings, scenesOf, syntheticWork, type VideoWork } from './work.js';

export type { GenerateSummary };

export const MANIPULATIONS = ['tpo', 'timewarp-explicit', 'timewarp-implicit', 'none'] as const;
export type Manipulation = (typeof MANIPULATIONS)[number];

export const GenerateConfig = z.strictObject({
  /** The model that answers (the one being trained): config, weights, tokenizer, preprocessor config. */
  model: z.string().min(1),
  /** A LoRA adapter folder to load onto it (PEFT layout). */
  adapter: z.string().min(1).optional(),
  /** Synthetic benchmark records (`tpo synth`'s <split>-benchmark.jsonl): open question and answer, kind, span. */
  questions: z.string().min(1).optional(),
  /** Captions, TimeWarp's layout `{video, description, scene_timestamps}`: the scenes for timewarp-explicit, and
   * with `llm` the source of questions for real videos. */
  annotations: z.string().min(1).optional(),
  /** An OpenAI-compatible endpoint: writes questions from captions and judges pairs (TPO's three checks). */
  llm: LlmConfig.optional(),
  /** Questions the LLM writes per video. */
  questionsPerVideo: z.strictObject({
    localized: z.int().nonnegative().default(1),
    comprehensive: z.int().nonnegative().default(1),
  }).prefault({}),
  videoRoot: z.string().min(1).optional(),
  /** The pairs file (JSONL); <out>.dropped.jsonl and <out>.summary.json beside it. */
  out: z.string().min(1),
  manipulation: z.enum(MANIPULATIONS).default('tpo'),
  /** Default: the model's (Video-LLaVA 8, else 16). */
  frames: z.int().min(1).optional(),
  /** uniform: `frames` evenly spaced (TPO's and TimeWarp's recipes); processor: both answers of the `none`
   * manipulation from the frames the model's own processor samples (ModelSession.processorSamplePlan: VideoLLaMA3,
   * Qwen2.5-VL, InternVL). The manipulations are defined on uniform frames, so they refuse it (see the refinement). */
  sampling: z.enum(SAMPLINGS).default('uniform'),
  /** sampling 'processor': the processor call's fps (frames a second), over the folder's config. */
  samplingFps: z.number().positive().optional(),
  /** sampling 'processor': the processor call's num_frames, over the folder's config. */
  samplingFrames: z.int().min(1).optional(),
  /** Comprehensive dis-preferred input: this fraction of `frames`. */
  sparseRatio: z.number().gt(0).max(1).default(0.25),
  /** timewarp-implicit: how the dis-preferred frames are corrupted. */
  corrupt: CorruptOptions.omit({ seed: true }).prefault({}),
  /** Localized : comprehensive (TPO's best mix is 5:5): the share of each kind among the kept pairs when
   * targetPairs is set, else among the questions asked. */
  mix: z.tuple([z.number().min(0), z.number().min(0)]).refine(([a, b]) => a + b > 0, 'the mix must not be 0:0').default([5, 5]),
  /** Stop once this many pairs are kept (default: every question). */
  targetPairs: z.int().min(1).optional(),
  maxNewTokens: z.int().min(1).default(16),
  /** 0: greedy. The `none` manipulation samples two answers, so it needs a temperature above 0. */
  temperature: z.number().min(0).default(0),
  topP: z.number().gt(0).max(1).default(1),
  seed: z.int().nonnegative().default(0),
  /** synthetic: exact answers from the world's events; graded: the preferred answer closer to the world's truth (an
   * LLM judge's "better", lib/tpo/judge.ts); llm: TPO's filter at `llm`; none: keep differing answers.
   * Default: llm when `llm` is set, else synthetic. */
  judge: z.enum(JUDGES).optional(),
  /** A video that cannot be decoded: its questions are dropped as `undecodable-video` (default), or the run stops. */
  onVideoError: z.enum(ON_VIDEO_ERROR).default('skip'),
  /** Several ranks (torchrun's variables, `--nproc N`): c10d's backend and timeout (lib/dist/config.ts). */
  distributed: DistributedConfig.prefault({}),
}).superRefine((c, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (!c.questions && !(c.annotations && c.llm)) issue('questions', 'give synthetic questions, or annotations and an llm to write them');
  if (c.questions && c.llm && c.annotations && c.judge !== 'llm') issue('questions', 'give either questions or annotations + llm as the source, not both');
  if (c.manipulation === 'timewarp-explicit' && !c.annotations) issue('annotations', 'timewarp-explicit needs the videos\' scenes (annotations)');
  if (c.manipulation === 'none' && c.temperature === 0) issue('temperature', 'the none manipulation samples two answers: set a temperature above 0');
  if ((c.judge ?? (c.llm ? 'llm' : 'synthetic')) === 'llm' && !c.llm) issue('judge', 'the llm judge needs llm');
  // TPO's localized pair is `frames` from the segment vs `frames` from the rest, comprehensive's a dense count vs a
  // sparse share of it, TimeWarp's the same uniform frames shuffled or corrupted: each is defined on a count of
  // uniform frames. Processor sampling of one side only would make the answers differ by which frames they saw as
  // well as by the manipulation, and the preference would no longer say what the manipulation did.
  if (c.sampling === 'processor' && c.manipulation !== 'none') {
    issue('sampling', `sampling 'processor' applies to the none manipulation only (two answers on the same full video): ` +
      `${c.manipulation}'s pairs are defined on \`frames\` uniform frames, and sampling one side otherwise would confound the pair`);
  }
  for (const key of ['samplingFps', 'samplingFrames'] as const) {
    if (c[key] !== undefined && c.sampling !== 'processor') issue(key, "is the processor's sampling setting: it needs sampling 'processor'");
  }
  if (c.samplingFps !== undefined && c.samplingFrames !== undefined) issue('samplingFrames', 'give samplingFps or samplingFrames, not both (they are exclusive, as in the processor)');
  if (c.sampling === 'processor' && c.frames !== undefined) issue('frames', "is uniform sampling's frame count: with sampling 'processor' give samplingFrames");
}).transform((c) => ({ ...c, frames: c.frames ?? defaultFrames(c.model) }));
export type GenerateConfig = z.input<typeof GenerateConfig>;
type Resolved = z.output<typeof GenerateConfig>;


export interface GenerateProgress {
  /** Videos done, of `videos`. */
  done: number;
  videos: number;
  summary: GenerateSummary;
}

/** One input's answers to a group of questions, and the frames they saw. */
interface Answers {
  texts: string[];
  indices: number[];
}

/** The output files, checked before anything runs (not folders, FIFOs or under /proc; their folder takes files). */
function outputs(c: Resolved): { pairs: string; dropped: string; summary: string } {
  const files = { pairs: c.out, dropped: `${c.out}.dropped.jsonl`, summary: `${c.out}.summary.json` };
  for (const [what, file] of Object.entries(files)) prepareOutputFile(file, `the ${what} file`, { createDir: true, probe: what === 'pairs' });
  return files;
}

/** The run's units of work: synthetic questions from `questions`, or LLM questions from `annotations`. */
async function workOf(c: Resolved, state: GenerationState, client: ChatClient | undefined): Promise<VideoWork[]> {
  if (c.questions) {
    const items = await readBenchmark(c.questions, { videoRoot: c.videoRoot }).toArray();
    if (items.length === 0) throw new DataError('has no questions: nothing to generate pairs from', { file: c.questions });
    return syntheticWork(items.map(syntheticQuestion), c.mix, c.seed, c.targetPairs === undefined);
  }
  const annotations = await readAnnotations(c.annotations!, { videoRoot: c.videoRoot }).toArray();
  if (annotations.length === 0) throw new DataError('has no annotated videos: nothing to generate pairs from', { file: c.annotations! });
  return captionWork(annotations, client!, c.questionsPerVideo, c.mix, c.seed, state.done);
}

/** Answers to `questions` from one input of a video: decoded, corrupted if asked, encoded once, one generate call. */
async function answer(
  session: ModelSession, c: Resolved, videoPath: string, questions: TpoQuestion[], plan: SamplePlan, corrupt: number | undefined, seed: number,
): Promise<Answers> {
  const { tokens: videoTokens, indices, video } = await session.videoTokens(videoPath, plan, corrupt === undefined ? undefined : { ...c.corrupt, seed: corrupt });
  const prompts: Tensor[] = questions.map((q) => session.prompt(q.question));
  try {
    const { tokens } = await session.model.generate({
      prompts, ...video, maxNewTokens: c.maxNewTokens, temperature: c.temperature, topP: c.topP, seed, stopIds: session.stopIds,
    });
    return { texts: tokens.map((t) => session.tokenizer.decode(t, { skipSpecialTokens: true }).trim()), indices };
  } finally {
    videoTokens.dispose();
    video.videoGridThw?.dispose();
    for (const p of prompts) p.dispose();
  }
}

/** A rank's own output files: its resumable state until rank 0 merges them. */
function rankFiles(out: string, rank: number, size: number): { pairs: string; dropped: string } {
  const tag = `rank-${String(rank).padStart(5, '0')}-of-${String(size).padStart(5, '0')}`;
  return { pairs: `${out}.${tag}.jsonl`, dropped: `${out}.${tag}.dropped.jsonl` };
}

/** Every rank file of `out` there is (of any world size): pairs files and dropped files. */
async function allRankFiles(out: string): Promise<{ pairs: string[]; dropped: string[] }> {
  const dir = dirname(resolve(out));
  const name = /^(.*)\.rank-\d{5}-of-\d{5}(\.dropped)?\.jsonl$/;
  const found = { pairs: [] as string[], dropped: [] as string[] };
  if (!existsSync(dir)) return found;
  for (const entry of (await readdir(dir)).sort()) {
    const m = name.exec(entry);
    if (m?.[1] !== basename(out)) continue;
    (m[2] ? found.dropped : found.pairs).push(join(dir, entry));
  }
  return found;
}

/**
 * TPO's pairs from `config`. As one rank of several (torchrun's variables, or `group`), every rank calls this with
 * the same config and each answers its share of the videos; the returned summary is the merged run's.
 */
export async function generatePairs(
  config: GenerateConfig, onProgress?: (progress: GenerateProgress) => void, options: { group?: Group } = {},
): Promise<GenerateSummary> {
  const c = parse(GenerateConfig, config, 'generate config');
  const group = options.group ?? await Group.fromEnvironment(c.distributed, { command: 'generate', config: c });
  if (group && c.targetPairs !== undefined) {
    throw new DataError('targetPairs stops the run once that many pairs are kept, which needs one process to count them: ' +
      'leave it out with several ranks (every question is asked), or run one process', { file: 'generate config' });
  }
  const summary = await generateShare(c, onProgress, group);
  if (group && !options.group) await group.close();
  return summary;
}

async function generateShare(
  c: Resolved, onProgress: ((progress: GenerateProgress) => void) | undefined, group: Group | undefined,
): Promise<GenerateSummary> {
  const files = outputs(c);
  const mine = group ? rankFiles(c.out, group.rank, group.size) : files;
  if (group) for (const file of Object.values(mine)) prepareOutputFile(file, 'a rank\'s file', { createDir: true });
  const client = c.llm ? new ChatClient(c.llm) : undefined;
  const judge = makeJudge(c.judge ?? (c.llm ? 'llm' : 'synthetic'), client);
  const scenes = scenesOf(c.annotations ? await readAnnotations(c.annotations, { videoRoot: c.videoRoot }).toArray() : []);
  // Records name their video relative to the pairs file's folder (as training resolves it), or absolutely when a
  // video root was given, so the pairs train wherever the questions came from.
  const videoField = (q: { videoPath: string }) => (c.videoRoot ? q.videoPath : relative(dirname(resolve(c.out)), q.videoPath));
  // What was done already, by this run at any world size: the merged files and every rank's.
  const ranks = await allRankFiles(c.out);
  const state = await GenerationState.loadAll([files.pairs, ...ranks.pairs], [files.dropped, ...ranks.dropped]);
  const work = await workOf(c, state, client);
  await assertVideosExist(work);
  {
  using session = await ModelSession.open(c.model, c.adapter ? { adapter: c.adapter } : {});
  await using kept = await JsonlAppender.open(mine.pairs);
  await using dropped = await JsonlAppender.open(mine.dropped);
  const settings: InputSettings = c;
  // sampling 'processor' (the none manipulation only): a model without a rule fails here, before any video is read.
  const processorOptions = { fps: c.samplingFps, numFrames: c.samplingFrames };
  if (c.sampling === 'processor') session.processorSampling(processorOptions);

  // LLM questions for the next videos are written while the model answers the current one.
  const lookahead = Math.max(1, c.llm ? LlmConfig.parse(c.llm).concurrency : 1);
  const pending = new Map<number, ReturnType<VideoWork['questions']>>();
  const fetchQuestions = (i: number) => {
    if (i < work.length && !pending.has(i)) pending.set(i, work[i]!.questions());
    return pending.get(i);
  };
  const ours = (i: number) => !group || i % group.size === group.rank;
  for (let i = 0; i < work.length; i++) {
    if (!ours(i)) continue;
    if (quotasFilled(quotas(c.targetPairs, c.mix, state.summary))) break;
    for (let k = i, n = 0; k < work.length && n < lookahead; k++) if (ours(k)) n++, fetchQuestions(k)?.catch(() => undefined);
    const unit = work[i]!;
    const out = { kept: [] as PairRecord[], dropped: [] as (DroppedPair | SkipRecord)[] };
    const skip = (s: Skip) => {
      if (state.isDone(s.id)) return;
      state.markDone(s.id);
      out.dropped.push(parse(SkipRecord, s, 'generate: a skip record'));
      state.count(s, false);
    };
    /** A video that cannot be decoded: every question still open about it is a counted skip (or the run's error). */
    const undecodable = (error: unknown, questions: TpoQuestion[]) => {
      if (!isVideoError(error) || c.onVideoError === 'stop') throw error;
      if (questions.length === 0) skip({ id: unit.video, video: videoField(unit), kind: 'video', reason: 'undecodable-video', detail: error.message });
      for (const q of questions) skip({ id: q.id, video: videoField(q), kind: q.kind, prompt: q.question, reason: 'undecodable-video', detail: error.message });
    };
    let batch: Awaited<ReturnType<VideoWork['questions']>> | undefined;
    try {
      batch = await fetchQuestions(i)!;
    } catch (error) {
      undecodable(error, []);
    }
    pending.delete(i);
    if (batch) {
      batch.skips.forEach(skip);
      try {
        await answerUnit(batch.questions);
      } catch (error) {
        undecodable(error, batch.questions.filter((q) => !state.isDone(q.id)));
      }
    }
    await kept.append(...out.kept);
    await dropped.append(...out.dropped);
    await kept.sync();
    await dropped.sync();
    if (!group) await writeJsonFile(files.summary, state.summary);
    onProgress?.({ done: i + 1, videos: work.length, summary: state.summary });

    /** The unit's questions grouped by the input they share, answered from both inputs, judged, written out. */
    async function answerUnit(questions: TpoQuestion[]): Promise<void> {
      const want = quotas(c.targetPairs, c.mix, state.summary);
      // Questions sharing an input share its decode, its encoding and one generate call.
      const groups = new Map<string, { plans: { preferred: SamplePlan; dispreferred: SamplePlan }; corrupt: boolean; scenes?: number[]; questions: TpoQuestion[] }>();
      for (const q of questions) {
        if (state.isDone(q.id) || want[q.kind] <= 0) continue;
        if (!state.ask(videoField(q), q.question)) {
          skip({ id: q.id, video: videoField(q), kind: q.kind, prompt: q.question, reason: 'duplicate-question' });
          continue;
        }
        const inputs = await inputsFor(settings, q, scenes);
        if ('skip' in inputs) {
          skip({ id: q.id, video: videoField(q), kind: q.kind, prompt: q.question, reason: inputs.skip, ...(inputs.detail ? { detail: inputs.detail } : {}) });
          continue;
        }
        const group = groups.get(inputs.key) ?? { ...inputs, questions: [] };
        group.questions.push(q);
        groups.set(inputs.key, group);
      }
      if (c.sampling === 'processor' && groups.size) {
        // (the none manipulation's one input, the whole video: both answers from the processor's frames)
        const plan = await session.processorSamplePlan(unit.videoPath, processorOptions);
        for (const group of groups.values()) group.plans = { preferred: plan, dispreferred: plan };
      }
      for (const group of groups.values()) {
        // Each video's corruption draws its own jitter (seeded by the run's seed and the video's place).
        const preferred = await answer(session, c, unit.videoPath, group.questions, group.plans.preferred, undefined, c.seed);
        const dispreferred = await answer(session, c, unit.videoPath, group.questions, group.plans.dispreferred,
          group.corrupt ? c.seed * 1_000_003 + i : undefined, c.seed + 1);
        for (const [j, q] of group.questions.entries()) {
          const { verdict, swapped } = await settleSides(judge, q, preferred.texts[j]!, dispreferred.texts[j]!, c.manipulation === 'none');
          const [p, d] = swapped ? [dispreferred.texts[j]!, preferred.texts[j]!] : [preferred.texts[j]!, dispreferred.texts[j]!];
          const provenance = {
            kind: q.kind, type: q.type ?? null, manipulation: c.manipulation, span: q.span ?? null,
            frames: { preferred: preferred.indices, dispreferred: dispreferred.indices },
            ...(group.scenes ? { sceneOrder: group.scenes } : {}), ...(swapped ? { swapped } : {}), reference: q.answer, judge: verdict,
          };
          state.markDone(q.id);
          const base = { id: q.id, video: videoField(q), prompt: q.question };
          if (verdict.keep && quotas(c.targetPairs, c.mix, state.summary)[q.kind] > 0) {
            state.count({ kind: q.kind, judge: verdict }, true);
            out.kept.push(parse(PairRecord, { ...base, chosen: p, rejected: d, ...provenance }, 'generate: a pair record'));
          } else {
            const reason = verdict.reason ?? 'target-reached';
            state.count({ kind: q.kind, reason, judge: verdict }, false);
            out.dropped.push(parse(DroppedPair, { ...base, preferred: p, dispreferred: d, reason, ...provenance }, 'generate: a dropped record'));
          }
        }
      }
    }
  }
  }
  const unitOf = new Map(work.map((u, i) => [videoField(u), i]));
  if (!group) {
    // One process finishing what several ranks began: their files are merged in.
    if (ranks.pairs.length || ranks.dropped.length) return mergeRanks(c.out, files, unitOf);
    await writeJsonFile(files.summary, state.summary);
    return state.summary;
  }
  // Rank 0 merges once every rank's files are complete; every rank returns the merged summary.
  await group.barrier('generate: waiting for every rank to finish its videos');
  return group.decide('generate: merging the ranks\' files', () => mergeRanks(c.out, files, unitOf));
}

/**
 * The ranks' files (and an earlier merge) as one process writes them: records ordered by their video's place in
 * the work, each id once; then the rank files are removed. Written atomically: a crash leaves the rank files.
 */
async function mergeRanks(out: string, files: { pairs: string; dropped: string; summary: string }, unitOf: Map<string, number>): Promise<GenerateSummary> {
  const ranks = await allRankFiles(out);
  const read = async (paths: string[]) => {
    const seen = new Set<string>();
    const records = [];
    for (const path of paths) {
      for (const r of await writtenRecords(path)) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
        records.push(r);
      }
    }
    // Stable: within a video, the order its rank wrote them in.
    return records.map((r, k) => ({ r, k, unit: unitOf.get(r.video ?? '') ?? Infinity }))
      .sort((a, b) => a.unit - b.unit || a.k - b.k).map((x) => x.r);
  };
  const kept = await read([files.pairs, ...ranks.pairs]);
  const dropped = await read([files.dropped, ...ranks.dropped]);
  await writeJsonl(files.pairs, kept);
  await writeJsonl(files.dropped, dropped);
  const summary = new GenerationState(kept, dropped).summary;
  await writeJsonFile(files.summary, summary);
  for (const file of [...ranks.pairs, ...ranks.dropped]) await rm(file, { force: true });
  return summary;
}
