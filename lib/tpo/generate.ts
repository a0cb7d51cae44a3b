// TPO's self-training data: the model answers each question twice, from the preferred and from the dis-preferred
// manipulation of its video, and the judge keeps the pairs worth training on.
//
//   questions (synthetic benchmark records: open question, answer, kind, span)
//   -> per video: decode each manipulation once (lib/tpo/plans.ts), encode it once
//   -> one generate call per manipulation for every question that shares it
//   -> judge -> pairs JSONL (kept, with provenance) + <out>.dropped.jsonl (why) + <out>.summary.json
//
// Resumable: records already in either output file are skipped, a torn last line is repaired before appending.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';

import { encodePrompt } from '../data/encode.js';
import { JsonlAppender, writeJsonFile } from '../data/jsonl.js';
import { type BenchmarkItem, readBenchmark } from '../data/records.js';
import { mulberry32, seededShuffle } from '../data/videos.js';
import { Tokenizer } from '../model/tokenizer.js';
import { VideoLM } from '../model/video-lm.js';
import { type Tensor } from '../native.js';
import { tensor } from '../tensor.js';
import { parse } from '../validate.js';
import { type SamplePlan, decodeVideo } from '../video/decode.js';
import { loadPreprocessorConfig, preprocessFrames } from '../video/preprocess.js';
import { judgeSynthetic, type Verdict } from './judge.js';
import { comprehensivePlans, localizedPlans } from './plans.js';

export const GenerateConfig = z.strictObject({
  /** The model that answers (the one being trained): config, weights, tokenizer, preprocessor config. */
  model: z.string().min(1),
  /** A LoRA adapter folder to load onto it (PEFT layout). */
  adapter: z.string().min(1).optional(),
  /** Synthetic benchmark records (`tpo synth`'s <split>-benchmark.jsonl): open question and answer, kind, span. */
  questions: z.string().min(1),
  videoRoot: z.string().min(1).optional(),
  /** The pairs file (JSONL); <out>.dropped.jsonl and <out>.summary.json beside it. */
  out: z.string().min(1),
  frames: z.int().min(1).default(16),
  /** Comprehensive dis-preferred input: this fraction of `frames`. */
  sparseRatio: z.number().gt(0).max(1).default(0.25),
  /** Localized : comprehensive questions (TPO's best mix is 5:5). */
  mix: z.tuple([z.number().min(0), z.number().min(0)]).refine(([a, b]) => a + b > 0, 'the mix must not be 0:0').default([5, 5]),
  /** Stop once this many pairs are kept (default: every question). */
  targetPairs: z.int().min(1).optional(),
  maxNewTokens: z.int().min(1).default(16),
  temperature: z.number().min(0).default(0),
  topP: z.number().gt(0).max(1).default(1),
  seed: z.int().nonnegative().default(0),
  /** synthetic: exact answers from the world's events; none: keep every pair whose answers differ. */
  judge: z.enum(['synthetic', 'none']).default('synthetic'),
});
export type GenerateConfig = z.input<typeof GenerateConfig>;

interface Question {
  item: BenchmarkItem;
  kind: 'localized' | 'comprehensive';
  question: string;
  answer: string;
  span?: [number, number];
}

export interface GenerateSummary {
  kept: number;
  dropped: Record<string, number>;
  byKind: Record<string, { kept: number; dropped: number }>;
  /** Measured against the events: how often each side's answer was right. */
  preferredCorrect: number;
  dispreferredCorrect: number;
  judged: number;
}

function toQuestion(item: BenchmarkItem): Question {
  const m = item.meta as { kind?: string; open_question?: string; open_answer?: string; span?: [number, number] };
  if (m.kind !== 'localized' && m.kind !== 'comprehensive') throw new Error(`${item.source.file}:${item.source.line}: kind must be localized or comprehensive`);
  if (!m.open_question || !m.open_answer) throw new Error(`${item.source.file}:${item.source.line}: open_question and open_answer are needed`);
  if (m.kind === 'localized' && !(Array.isArray(m.span) && m.span[0] < m.span[1]))
    throw new Error(`${item.source.file}:${item.source.line}: a localized question needs its span [start, end]`);
  return { item, kind: m.kind, question: m.open_question, answer: m.open_answer, ...(m.kind === 'localized' ? { span: m.span } : {}) };
}

/** The questions in the order the mix asks for: localized and comprehensive interleaved at the ratio, seeded. */
function mixed(questions: Question[], mix: [number, number], seed: number): Question[] {
  const random = mulberry32(seed);
  const local = seededShuffle(questions.filter((q) => q.kind === 'localized'), random);
  const global = seededShuffle(questions.filter((q) => q.kind === 'comprehensive'), random);
  const out: Question[] = [];
  let l = 0, g = 0;
  const share = mix[0] / (mix[0] + mix[1]);
  while ((l < local.length && share > 0) || (g < global.length && share < 1)) {
    const wantLocal = share > 0 && (g >= global.length || share === 1 || l / Math.max(1, l + g) < share);
    if (wantLocal && l < local.length) out.push(local[l++]!);
    else if (g < global.length && share < 1) out.push(global[g++]!);
    else break;
  }
  return out;
}

interface Written {
  id: string;
  kind: string;
  reason?: string;
  judge: Verdict;
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

/** The summary of what the two files hold: rebuilt from them on a resume, so it can never lag behind them. */
function summarize(kept: Written[], dropped: Written[]): GenerateSummary {
  const s: GenerateSummary = { kept: 0, dropped: {}, byKind: {}, preferredCorrect: 0, dispreferredCorrect: 0, judged: 0 };
  for (const [records, keep] of [[kept, true], [dropped, false]] as const) {
    for (const r of records) {
      const kind = (s.byKind[r.kind] ??= { kept: 0, dropped: 0 });
      s.judged++;
      s.preferredCorrect += r.judge.preferredCorrect ? 1 : 0;
      s.dispreferredCorrect += r.judge.dispreferredCorrect ? 1 : 0;
      if (keep) {
        s.kept++;
        kind.kept++;
      } else {
        s.dropped[r.reason ?? 'unknown'] = (s.dropped[r.reason ?? 'unknown'] ?? 0) + 1;
        kind.dropped++;
      }
    }
  }
  return s;
}

export async function generatePairs(config: GenerateConfig, onProgress?: (done: number, total: number) => void): Promise<GenerateSummary> {
  const c = parse(GenerateConfig, config, 'generate config');
  const tokenizer = await Tokenizer.load(c.model);
  const processor = await loadPreprocessorConfig(c.model);
  const model = await VideoLM.load(c.model);
  try {
    if (c.adapter) await model.loadLora(c.adapter);
    const stopIds = [tokenizer.eos?.id, tokenizer.tokenToId('<|im_end|>')].filter((x): x is number => x !== undefined);
    const items = await readBenchmark(c.questions, { videoRoot: c.videoRoot }).toArray();
    await mkdir(dirname(c.out), { recursive: true });
    const droppedFile = `${c.out}.dropped.jsonl`;
    const [keptBefore, droppedBefore] = [await written(c.out), await written(droppedFile)];
    const done = new Set([...keptBefore, ...droppedBefore].map((r) => r.id));
    const order = mixed(items.map(toQuestion), c.mix, c.seed);
    const summaryFile = `${c.out}.summary.json`;
    const summary = summarize(keptBefore, droppedBefore);
    const pending = order.filter((q) => !done.has(q.item.id));

    await using kept = await JsonlAppender.open(c.out);
    await using dropped = await JsonlAppender.open(droppedFile);
    // Videos in order of their first pending question; every question of a video in one pass.
    const byVideo = new Map<string, Question[]>();
    for (const q of pending) byVideo.set(q.item.videoPath, [...(byVideo.get(q.item.videoPath) ?? []), q]);
    let processed = order.length - pending.length;
    for (const [videoPath, questions] of byVideo) {
      if (c.targetPairs !== undefined && summary.kept >= c.targetPairs) break;
      // Questions sharing a manipulation share its decode, its encoding and one generate call.
      const groups = new Map<string, { plans: ReturnType<typeof comprehensivePlans>; questions: Question[] }>();
      for (const q of questions) {
        const key = q.kind === 'localized' ? `span:${q.span}` : 'whole';
        const plans = q.kind === 'localized' ? localizedPlans(q.span!, c.frames) : comprehensivePlans(c.frames, c.sparseRatio);
        groups.set(key, { plans, questions: [...(groups.get(key)?.questions ?? []), q] });
      }
      for (const { plans, questions: group } of groups.values()) {
        const prompts = group.map((q) => {
          const ids = encodePrompt(tokenizer, q.question).ids;
          return tensor(ids, [ids.length]);
        });
        const answer = async (plan: SamplePlan) => {
          const decoded = await decodeVideo(videoPath, plan);
          const pixels = await preprocessFrames(decoded.frames, processor);
          decoded.frames.dispose();
          const videoTokens: Tensor = await model.encodeVideo(pixels);
          pixels.dispose();
          const { tokens } = await model.generate({
            prompts, videoTokens, maxNewTokens: c.maxNewTokens, temperature: c.temperature, topP: c.topP, seed: c.seed, stopIds,
          });
          videoTokens.dispose();
          return { texts: tokens.map((t) => tokenizer.decode(t, { skipSpecialTokens: true }).trim()), indices: decoded.indices };
        };
        const preferred = await answer(plans.preferred);
        const dispreferred = await answer(plans.dispreferred);
        const keptRecords: unknown[] = [];
        const droppedRecords: unknown[] = [];
        group.forEach((q, i) => {
          const [p, d] = [preferred.texts[i]!, dispreferred.texts[i]!];
          const verdict: Verdict = c.judge === 'synthetic'
            ? judgeSynthetic(q.answer, p, d)
            : p === d || !p || !d
              ? { keep: false, reason: p === d ? 'same-answers' : 'empty-answer', preferredCorrect: false, dispreferredCorrect: false }
              : { keep: true, preferredCorrect: false, dispreferredCorrect: false };
          const provenance = {
            kind: q.kind, type: (q.item.meta as { type?: string }).type, span: q.span ?? null,
            frames: { preferred: preferred.indices, dispreferred: dispreferred.indices }, judge: verdict,
          };
          summary.judged++;
          summary.preferredCorrect += verdict.preferredCorrect ? 1 : 0;
          summary.dispreferredCorrect += verdict.dispreferredCorrect ? 1 : 0;
          const kind = (summary.byKind[q.kind] ??= { kept: 0, dropped: 0 });
          if (verdict.keep && (c.targetPairs === undefined || summary.kept < c.targetPairs)) {
            summary.kept++;
            kind.kept++;
            keptRecords.push({ id: q.item.id, video: q.item.video, prompt: q.question, chosen: p, rejected: d, ...provenance });
          } else {
            const reason = verdict.reason ?? 'target-reached';
            summary.dropped[reason] = (summary.dropped[reason] ?? 0) + 1;
            kind.dropped++;
            droppedRecords.push({ id: q.item.id, video: q.item.video, prompt: q.question, preferred: p, dispreferred: d, reason, ...provenance });
          }
        });
        await kept.append(...keptRecords);
        await dropped.append(...droppedRecords);
        await kept.sync();
        await dropped.sync();
        await writeJsonFile(summaryFile, summary);
        processed += group.length;
        onProgress?.(processed, order.length);
      }
    }
    return summary;
  } finally {
    model.dispose();
  }
}
