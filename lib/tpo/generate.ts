// TPO's self-training data: the model answers each question twice, from a preferred and from a dis-preferred
// input of its video, and a judge keeps the pairs worth training on.
//
//   questions: synthetic benchmark records (exact answers), or captions + an LLM that writes them (real videos)
//   -> per video: decode each input once (lib/tpo/plans.ts), corrupt it (TimeWarp implicit), encode it once
//   -> one generate call per input for every question that shares it
//   -> judge (synthetic: exact; llm: TPO's three checks; none) -> pairs JSONL with provenance
//      + <out>.dropped.jsonl (every drop and skip, with its reason) + <out>.summary.json
//
// Manipulations: tpo (localized: the target segment vs the video without it; comprehensive: dense vs sparse),
// timewarp-explicit (true vs shuffled scene order), timewarp-implicit (clean vs corrupted frames), none (two
// sampled answers on the same full video: the baseline without temporal manipulation, the judge picks the side).
//
// Resumable: records already in either output file are skipped, a torn last line is repaired before appending.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { z } from 'zod';

import { encodePrompt } from '../data/encode.js';
import { JsonlAppender, writeJsonFile } from '../data/jsonl.js';
import { readAnnotations, readBenchmark, type VideoAnnotation } from '../data/records.js';
import { assertVideosExist, mulberry32, seededShuffle } from '../data/videos.js';
import { Tokenizer } from '../model/tokenizer.js';
import { VideoLM } from '../model/video-lm.js';
import type { Tensor } from '../native.js';
import { tensor } from '../tensor.js';
import { parse } from '../validate.js';
import { CorruptOptions, corruptFrames } from '../video/corrupt.js';
import { decodeVideo, probeVideo, type SamplePlan } from '../video/decode.js';
import { decodeSizeFor, loadPreprocessorConfig, preprocessFrames } from '../video/preprocess.js';
import { type DropReason, judgeSynthetic, normalizeAnswer, type Verdict } from './judge.js';
import { ChatClient, LlmConfig } from './llm.js';
import { type PlanPair, comprehensivePlans, corruptedPlans, localizedPlans, shuffledScenePlans } from './plans.js';
import { judgePair } from './questions.js';
import { captionQuestions, ORDER_TYPES, type QuestionKind, type Skip, syntheticQuestion, type TpoQuestion } from './sources.js';

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
  frames: z.int().min(1).default(16),
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
  /** synthetic: exact answers from the world's events; llm: TPO's filter at `llm`; none: keep differing answers.
   * Default: llm when `llm` is set, else synthetic. */
  judge: z.enum(['synthetic', 'llm', 'none']).optional(),
}).superRefine((c, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (!c.questions && !(c.annotations && c.llm)) issue('questions', 'give synthetic questions, or annotations and an llm to write them');
  if (c.questions && c.llm && c.annotations && c.judge !== 'llm') issue('questions', 'give either questions or annotations + llm as the source, not both');
  if (c.manipulation === 'timewarp-explicit' && !c.annotations) issue('annotations', 'timewarp-explicit needs the videos\' scenes (annotations)');
  if (c.manipulation === 'none' && c.temperature === 0) issue('temperature', 'the none manipulation samples two answers: set a temperature above 0');
  if ((c.judge ?? (c.llm ? 'llm' : 'synthetic')) === 'llm' && !c.llm) issue('judge', 'the llm judge needs llm');
});
export type GenerateConfig = z.input<typeof GenerateConfig>;
type Resolved = z.output<typeof GenerateConfig>;

export interface GenerateSummary {
  kept: number;
  /** Dropped pairs and skipped questions or videos, by reason. */
  dropped: Record<string, number>;
  byKind: Record<string, { kept: number; dropped: number }>;
  /** Against the reference answers: how often each side's answer was right (exact for the synthetic world). */
  preferredCorrect: number;
  dispreferredCorrect: number;
  /** Pairs judged (skips are not). */
  judged: number;
}

export interface GenerateProgress {
  /** Videos done, of `videos`. */
  done: number;
  videos: number;
  summary: GenerateSummary;
}

interface Written {
  id: string;
  kind: string;
  reason?: string;
  prompt?: string;
  video?: string;
  judge?: Verdict;
}

async function written(file: string): Promise<Written[]> {
  if (!existsSync(file)) return [];
  const out: Written[] = [];
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    try {
      out.push(JSON.parse(line) as Written);
    } catch {
      // a torn last line: JsonlAppender.open cuts it off before appending
    }
  }
  return out;
}

const newSummary = (): GenerateSummary => ({ kept: 0, dropped: {}, byKind: {}, preferredCorrect: 0, dispreferredCorrect: 0, judged: 0 });

function count(s: GenerateSummary, r: Written, keep: boolean): void {
  const kind = (s.byKind[r.kind] ??= { kept: 0, dropped: 0 });
  if (r.judge) {
    s.judged++;
    s.preferredCorrect += r.judge.preferredCorrect ? 1 : 0;
    s.dispreferredCorrect += r.judge.dispreferredCorrect ? 1 : 0;
  }
  if (keep) {
    s.kept++;
    kind.kept++;
  } else {
    s.dropped[r.reason ?? 'unknown'] = (s.dropped[r.reason ?? 'unknown'] ?? 0) + 1;
    kind.dropped++;
  }
}

/** The summary of what the two files hold: rebuilt from them on a resume, so it can never lag behind them. */
function summarize(kept: Written[], dropped: Written[]): GenerateSummary {
  const s = newSummary();
  for (const r of kept) count(s, r, true);
  for (const r of dropped) count(s, r, false);
  return s;
}

/** Same video, same question (after normalisation): asked once. */
const questionKey = (video: string, prompt: string) => `${video}\n${normalizeAnswer(prompt)}`;

/** The questions in the mix's order: localized and comprehensive interleaved at the ratio (seeded). Without a
 * target, asking stops when a kind the mix asks for runs out, so the questions asked keep the ratio; with one,
 * the other kind's remaining questions follow, for the kept quotas (which keep the ratio) to fill from. */
function mixed(questions: TpoQuestion[], mix: [number, number], seed: number, untilRunOut: boolean): TpoQuestion[] {
  const random = mulberry32(seed);
  const local = seededShuffle(questions.filter((q) => q.kind === 'localized'), random);
  const global = seededShuffle(questions.filter((q) => q.kind === 'comprehensive'), random);
  const share = mix[0] / (mix[0] + mix[1]);
  const out: TpoQuestion[] = [];
  let l = 0, g = 0;
  for (;;) {
    const wantLocal = share === 1 || (share > 0 && l <= share * (l + g));
    if (wantLocal ? l >= local.length : g >= global.length) break;
    out.push(wantLocal ? local[l++]! : global[g++]!);
  }
  if (untilRunOut) return out;
  return [...out, ...(share > 0 ? local.slice(l) : []), ...(share < 1 ? global.slice(g) : [])];
}

/** Pairs still wanted per kind: the target split by the mix (Infinity without a target). */
function quotas(c: Resolved, summary: GenerateSummary): Record<QuestionKind, number> {
  if (c.targetPairs === undefined) return { localized: Infinity, comprehensive: Infinity };
  const local = Math.round((c.targetPairs * c.mix[0]) / (c.mix[0] + c.mix[1]));
  return {
    localized: local - (summary.byKind.localized?.kept ?? 0),
    comprehensive: c.targetPairs - local - (summary.byKind.comprehensive?.kept ?? 0),
  };
}

/** A unit of work: one video and (possibly after an LLM call) its questions. */
interface VideoWork {
  video: string;
  videoPath: string;
  questions: () => Promise<{ questions: TpoQuestion[]; skips: Skip[] }>;
}

function scenesOf(annotations: VideoAnnotation[]): Map<string, [number, number][]> {
  return new Map(annotations.map((a) => [a.videoPath, a.captions.map((c) => [c.start, c.end] as [number, number])]));
}

/** The inputs a question is answered from, with a key shared by every question that can share them. */
async function inputsFor(
  c: Resolved, q: TpoQuestion, scenes: Map<string, [number, number][]>,
): Promise<{ key: string; plans: PlanPair; corrupt: boolean; scenes?: number[] } | { skip: string; detail?: string }> {
  switch (c.manipulation) {
    case 'tpo':
      return q.kind === 'localized'
        ? { key: `span:${q.span}`, plans: localizedPlans(q.span!, c.frames), corrupt: false }
        : { key: 'whole', plans: comprehensivePlans(c.frames, c.sparseRatio), corrupt: false };
    case 'timewarp-implicit':
      return { key: 'whole', plans: corruptedPlans(c.frames), corrupt: true };
    case 'none':
      return { key: 'whole', plans: { preferred: { kind: 'uniform', frames: c.frames }, dispreferred: { kind: 'uniform', frames: c.frames } }, corrupt: false };
    case 'timewarp-explicit': {
      if (q.type && !ORDER_TYPES.has(q.type)) return { skip: 'not-order-question' };
      const spans = scenes.get(q.videoPath);
      if (!spans || spans.length < 2) return { skip: 'too-few-scenes', detail: `${q.video}: ${spans?.length ?? 0} scene(s) in the annotations` };
      const info = await probeVideo(q.videoPath);
      try {
        const plans = shuffledScenePlans(spans, info, c.frames, c.seed);
        return { key: 'scenes', plans, corrupt: false, scenes: plans.order };
      } catch (error) {
        return { skip: 'too-few-scenes', detail: (error as Error).message };
      }
    }
  }
}

export async function generatePairs(
  config: GenerateConfig, onProgress?: (progress: GenerateProgress) => void,
): Promise<GenerateSummary> {
  const c = parse(GenerateConfig, config, 'generate config');
  const judge = c.judge ?? (c.llm ? 'llm' : 'synthetic');
  const client = c.llm ? new ChatClient(c.llm) : undefined;
  const annotations = c.annotations ? await readAnnotations(c.annotations, { videoRoot: c.videoRoot }).toArray() : [];
  const scenes = scenesOf(annotations);

  await mkdir(dirname(c.out), { recursive: true });
  // Records name their video relative to the pairs file's folder (as training resolves it), or absolutely when a
  // video root was given, so the pairs train wherever the questions came from.
  const videoField = (q: TpoQuestion) => (c.videoRoot ? q.videoPath : relative(dirname(resolve(c.out)), q.videoPath));
  const droppedFile = `${c.out}.dropped.jsonl`;
  const summaryFile = `${c.out}.summary.json`;
  const [keptBefore, droppedBefore] = [await written(c.out), await written(droppedFile)];
  const done = new Set([...keptBefore, ...droppedBefore].map((r) => r.id));
  const asked = new Set([...keptBefore, ...droppedBefore].filter((r) => r.prompt && r.video).map((r) => questionKey(r.video!, r.prompt!)));
  const summary = summarize(keptBefore, droppedBefore);

  // The work, video by video: synthetic questions in the mix's order, grouped by video in order of first use;
  // LLM questions written per video as it comes up.
  let work: VideoWork[];
  if (c.questions) {
    const items = await readBenchmark(c.questions, { videoRoot: c.videoRoot }).toArray();
    const order = mixed(items.map(syntheticQuestion), c.mix, c.seed, c.targetPairs === undefined);
    const byVideo = new Map<string, TpoQuestion[]>();
    for (const q of order) byVideo.set(q.videoPath, [...(byVideo.get(q.videoPath) ?? []), q]);
    work = [...byVideo.values()].map((qs) => ({ video: qs[0]!.video, videoPath: qs[0]!.videoPath, questions: async () => ({ questions: qs, skips: [] }) }));
  } else {
    const share = c.mix[0] / (c.mix[0] + c.mix[1]);
    const counts = {
      localized: share > 0 ? c.questionsPerVideo.localized : 0,
      comprehensive: share < 1 ? c.questionsPerVideo.comprehensive : 0,
    };
    work = annotations.map((a, i) => ({
      video: a.video, videoPath: a.videoPath,
      questions: async () => {
        const { duration } = await probeVideo(a.videoPath);
        return captionQuestions(client!, a, counts, { seed: c.seed + i, duration, done });
      },
    }));
  }
  await assertVideosExist(work);

  const tokenizer = await Tokenizer.load(c.model);
  const processor = await loadPreprocessorConfig(c.model);
  const model = await VideoLM.load(c.model);
  try {
    if (c.adapter) await model.loadLora(c.adapter);
    const stopIds = [tokenizer.eos?.id, tokenizer.tokenToId('<|im_end|>')].filter((x): x is number => x !== undefined);
    await using kept = await JsonlAppender.open(c.out);
    await using dropped = await JsonlAppender.open(droppedFile);

    /** Answers to `questions` from one input of the video: decoded, corrupted if asked, encoded once. */
    const answer = async (videoPath: string, questions: TpoQuestion[], plan: SamplePlan, corrupt: number | undefined, seed: number) => {
      const decoded = await decodeVideo(videoPath, plan, { atLeast: decodeSizeFor(processor) });
      let frames = decoded.frames;
      if (corrupt !== undefined) {
        frames = await corruptFrames(decoded.frames, { ...c.corrupt, seed: corrupt });
        decoded.frames.dispose();
      }
      const pixels = await preprocessFrames(frames, processor);
      frames.dispose();
      const videoTokens: Tensor = await model.encodeVideo(pixels);
      pixels.dispose();
      const prompts = questions.map((q) => {
        const ids = encodePrompt(tokenizer, `<image>\n${q.question}`).ids;
        return tensor(ids, [ids.length]);
      });
      const { tokens } = await model.generate({
        prompts, videoTokens, maxNewTokens: c.maxNewTokens, temperature: c.temperature, topP: c.topP, seed, stopIds,
      });
      videoTokens.dispose();
      return { texts: tokens.map((t) => tokenizer.decode(t, { skipSpecialTokens: true }).trim()), indices: decoded.indices };
    };

    /** The verdict on one pair, with its sides in the order the judge settled (`none` lets it pick). */
    const verdictOn = async (q: TpoQuestion, a: string, b: string): Promise<{ verdict: Verdict; swapped: boolean }> => {
      const once = async (p: string, d: string): Promise<Verdict> => {
        if (judge === 'synthetic') return judgeSynthetic(q.answer, p, d);
        const empty = !normalizeAnswer(p) || !normalizeAnswer(d);
        const same = normalizeAnswer(p) === normalizeAnswer(d);
        const base = { preferredCorrect: false, dispreferredCorrect: false };
        if (empty || same) return { keep: false, reason: empty ? 'empty-answer' : 'same-answers', ...base };
        if (judge === 'none') return { keep: true, ...base };
        const v = await judgePair(client!, q.captions ?? [], q.question, p, d);
        const reason: DropReason | undefined = !v.correct ? 'preferred-wrong' : !v.consistent ? 'contradicts-captions'
          : !v.better ? 'not-better' : p.trim() === d.trim() ? 'same-answers' : undefined;
        const { keep, ...checks } = v;
        return { keep, ...(reason ? { reason } : {}), preferredCorrect: v.correct, dispreferredCorrect: false, llm: checks };
      };
      const first = await once(a, b);
      if (c.manipulation !== 'none' || first.keep || !['preferred-wrong', 'not-better'].includes(first.reason ?? '')) return { verdict: first, swapped: false };
      const second = await once(b, a);
      return second.keep ? { verdict: second, swapped: true } : { verdict: first, swapped: false };
    };

    // LLM questions for the next videos are written while the model answers the current one.
    const lookahead = Math.max(1, c.llm ? LlmConfig.parse(c.llm).concurrency : 1);
    const pending = new Map<number, ReturnType<VideoWork['questions']>>();
    const fetchQuestions = (i: number) => {
      if (i < work.length && !pending.has(i)) pending.set(i, work[i]!.questions());
      return pending.get(i);
    };
    let videosDone = 0;
    for (let i = 0; i < work.length; i++) {
      const want = quotas(c, summary);
      if (want.localized <= 0 && want.comprehensive <= 0) break;
      for (let k = i; k < i + lookahead; k++) fetchQuestions(k)?.catch(() => undefined);
      const unit = work[i]!;
      const { questions, skips } = await fetchQuestions(i)!;
      pending.delete(i);
      const skipped: unknown[] = [];
      const skip = (s: Skip) => {
        if (done.has(s.id)) return;
        done.add(s.id);
        skipped.push(s);
        count(summary, s, false);
      };
      skips.forEach(skip);

      // Questions sharing an input share its decode, its encoding and one generate call.
      const groups = new Map<string, { plans: PlanPair; corrupt: boolean; scenes?: number[]; questions: TpoQuestion[] }>();
      for (const q of questions) {
        if (done.has(q.id) || want[q.kind] <= 0) continue;
        const key = questionKey(videoField(q), q.question);
        if (asked.has(key)) {
          skip({ id: q.id, video: videoField(q), kind: q.kind, prompt: q.question, reason: 'duplicate-question' });
          continue;
        }
        asked.add(key);
        const inputs = await inputsFor(c, q, scenes);
        if ('skip' in inputs) {
          skip({ id: q.id, video: videoField(q), kind: q.kind, prompt: q.question, reason: inputs.skip, ...(inputs.detail ? { detail: inputs.detail } : {}) });
          continue;
        }
        const group = groups.get(inputs.key) ?? { ...inputs, questions: [] };
        group.questions.push(q);
        groups.set(inputs.key, group);
      }

      const keptRecords: unknown[] = [];
      const droppedRecords: unknown[] = [...skipped];
      for (const group of groups.values()) {
        // Each video's corruption draws its own jitter (seeded by the run's seed and the video's place).
        const preferred = await answer(unit.videoPath, group.questions, group.plans.preferred, undefined, c.seed);
        const dispreferred = await answer(unit.videoPath, group.questions, group.plans.dispreferred,
          group.corrupt ? c.seed * 1_000_003 + i : undefined, c.seed + 1);
        for (const [j, q] of group.questions.entries()) {
          const { verdict, swapped } = await verdictOn(q, preferred.texts[j]!, dispreferred.texts[j]!);
          const [p, d] = swapped ? [dispreferred.texts[j]!, preferred.texts[j]!] : [preferred.texts[j]!, dispreferred.texts[j]!];
          const provenance = {
            kind: q.kind, type: q.type ?? null, manipulation: c.manipulation, span: q.span ?? null,
            frames: { preferred: preferred.indices, dispreferred: dispreferred.indices },
            ...(group.scenes ? { sceneOrder: group.scenes } : {}), ...(swapped ? { swapped } : {}), reference: q.answer, judge: verdict,
          };
          const record: Written = { id: q.id, kind: q.kind, judge: verdict };
          done.add(q.id);
          if (verdict.keep && quotas(c, summary)[q.kind] > 0) {
            count(summary, record, true);
            keptRecords.push({ id: q.id, video: videoField(q), prompt: q.question, chosen: p, rejected: d, ...provenance });
          } else {
            const reason = verdict.reason ?? 'target-reached';
            count(summary, { ...record, reason }, false);
            droppedRecords.push({ id: q.id, video: videoField(q), prompt: q.question, preferred: p, dispreferred: d, reason, ...provenance });
          }
        }
      }
      await kept.append(...keptRecords);
      await dropped.append(...droppedRecords);
      await kept.sync();
      await dropped.sync();
      await writeJsonFile(summaryFile, summary);
      videosDone = i + 1;
      onProgress?.({ done: videosDone, videos: work.length, summary });
    }
    await writeJsonFile(summaryFile, summary);
    return summary;
  } finally {
    model.dispose();
  }
}
