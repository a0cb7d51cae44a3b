// The post-filter of TPO's self-generated pairs, one Judge interface for four judges: the synthetic world's, where
// every answer is known exactly (keep a pair only when the preferred answer is right, the dis-preferred one is not,
// and the two differ); graded, the synthetic world's imitation of an LLM judge (keep a pair when the preferred
// answer is closer to the truth: the nearer count, the caption with more of the right attributes, the order with
// more events in place, so the chosen answer is often better without being right); TPO's LLM checks against the
// captions (real videos); none (any two differing answers).
import { normalizeAnswer } from '../data/answers.js';
import type { Caption } from '../data/records.js';
import type { ChatClient } from './llm.js';
import { judgePair } from './questions.js';

export type DropReason =
  | 'empty-answer' | 'same-answers' | 'preferred-wrong' | 'dispreferred-also-right'
  // TPO's LLM filter (lib/tpo/questions.ts judgePair): the preferred answer contradicts the captions, or is no better
  | 'contradicts-captions' | 'not-better';

/** The synthetic world's question types whose answers the graded judge can grade (the rest: right or wrong). */
const CAPTION_TYPES = new Set(['before', 'after', 'first', 'last']);
const COUNT_TYPES = new Set(['count', 'count-color']);

export interface Verdict {
  keep: boolean;
  reason?: DropReason;
  preferredCorrect: boolean;
  dispreferredCorrect: boolean;
  /** The LLM judge's three checks, when it judged. */
  llm?: { correct: boolean; consistent: boolean; better: boolean };
}

export { normalizeAnswer };

/** Whether `answer` states `gold`: equal after normalisation, or its first line does. */
export function answerMatches(answer: string, gold: string): boolean {
  const want = normalizeAnswer(gold);
  if (!want) return false;
  return normalizeAnswer(answer) === want || normalizeAnswer(answer.split('\n')[0] ?? '') === want;
}

export function judgeSynthetic(gold: string, preferred: string, dispreferred: string): Verdict {
  const preferredCorrect = answerMatches(preferred, gold);
  const dispreferredCorrect = answerMatches(dispreferred, gold);
  const verdict = (reason?: DropReason): Verdict => ({ keep: !reason, ...(reason ? { reason } : {}), preferredCorrect, dispreferredCorrect });
  if (!normalizeAnswer(preferred) || !normalizeAnswer(dispreferred)) return verdict('empty-answer');
  if (normalizeAnswer(preferred) === normalizeAnswer(dispreferred)) return verdict('same-answers');
  if (!preferredCorrect) return verdict('preferred-wrong');
  if (dispreferredCorrect) return verdict('dispreferred-also-right');
  return verdict();
}

/**
 * How close `answer` is to `gold` for a question of `type`, by the world's structure; higher is closer, `gold`
 * itself scores highest, undefined when the answer cannot be read as one of the type's answers.
 * - count, count-color: minus the distance between the numbers;
 * - before, after, first, last (a caption: colour, shape, motion): how many of the three are right;
 * - order (three names joined by ", then "): how many of the three pairs are in the right order;
 * - anything else (one attribute, one name): 1 when right, 0 when wrong.
 */
export function closeness(type: string | undefined, gold: string, answer: string): number | undefined {
  const a = normalizeAnswer(answer.split('\n')[0] ?? '');
  const g = normalizeAnswer(gold);
  if (!a) return undefined;
  if (type && COUNT_TYPES.has(type)) {
    const n = /^\d+$/.test(a) ? Number(a) : NaN;
    return Number.isFinite(n) ? -Math.abs(n - Number(g)) : undefined;
  }
  if (type && CAPTION_TYPES.has(type)) {
    const [want, got] = [captionParts(g), captionParts(a)];
    if (!want || !got) return a === g ? 3 : undefined;
    return Number(want.color === got.color) + Number(want.shape === got.shape) + Number(want.motion === got.motion);
  }
  if (type === 'order') {
    const want = gold.split(', then ').map(normalizeAnswer);
    const got = answer.split('\n')[0]!.split(', then ').map(normalizeAnswer);
    if (got.length !== want.length || new Set(got).size !== got.length || got.some((x) => !want.includes(x))) return a === g ? 3 : undefined;
    let inPlace = 0;
    for (let i = 0; i < got.length; i++) for (let j = i + 1; j < got.length; j++) inPlace += Number(want.indexOf(got[i]!) < want.indexOf(got[j]!));
    return inPlace;
  }
  return a === g ? 1 : 0;
}

/** A normalised caption's colour, shape and motion ("red circle moves left"), or undefined. */
function captionParts(text: string): { color: string; shape: string; motion: string } | undefined {
  const [color, shape, ...motion] = text.split(' ');
  return color && shape && motion.length ? { color, shape, motion: motion.join(' ') } : undefined;
}

/**
 * The graded judge's verdict: keep when the preferred answer is strictly closer to the truth than the dis-preferred
 * one (an LLM judge's "better"), whether or not it is right. `preferredCorrect` still says whether it was exactly right.
 */
export function judgeGraded(type: string | undefined, gold: string, preferred: string, dispreferred: string): Verdict {
  const preferredCorrect = answerMatches(preferred, gold);
  const dispreferredCorrect = answerMatches(dispreferred, gold);
  const verdict = (reason?: DropReason): Verdict => ({ keep: !reason, ...(reason ? { reason } : {}), preferredCorrect, dispreferredCorrect });
  const early = unpairable(preferred, dispreferred);
  if (early) return verdict(early);
  const [p, d] = [closeness(type, gold, preferred), closeness(type, gold, dispreferred)];
  if (p === undefined) return verdict('preferred-wrong');
  // Nothing right in it (a wrong colour, a caption with no right part) is not better, whatever it is compared with.
  if (p === 0 && !(type && COUNT_TYPES.has(type))) return verdict('preferred-wrong');
  if (d !== undefined && d >= p) return verdict(dispreferredCorrect ? 'dispreferred-also-right' : 'not-better');
  return verdict();
}

/** What a judge needs of a question: its reference answer, text and captions (real videos). */
export interface JudgedQuestion {
  question: string;
  answer: string;
  /** The synthetic world's question type (the graded judge grades by it). */
  type?: string;
  captions?: Caption[];
}

/** One interface for TPO's post-filter: the synthetic world's exact judge, the LLM's three checks, or none. */
export interface Judge {
  readonly kind: JudgeKind;
  judge(question: JudgedQuestion, preferred: string, dispreferred: string): Promise<Verdict>;
}

export const JUDGES = ['synthetic', 'graded', 'llm', 'none'] as const;
export type JudgeKind = (typeof JUDGES)[number];

/** Two answers that cannot make a pair (one empty, or the same after normalisation), or undefined. */
function unpairable(preferred: string, dispreferred: string): DropReason | undefined {
  const [p, d] = [normalizeAnswer(preferred), normalizeAnswer(dispreferred)];
  return !p || !d ? 'empty-answer' : p === d ? 'same-answers' : undefined;
}

/** Exact answers (the synthetic world): keep a right preferred answer over a wrong dis-preferred one. */
export const syntheticJudge: Judge = {
  kind: 'synthetic',
  judge: async (q, preferred, dispreferred) => judgeSynthetic(q.answer, preferred, dispreferred),
};

/** The synthetic world's LLM-like judge: keep a preferred answer closer to the truth than the dis-preferred one. */
export const gradedJudge: Judge = {
  kind: 'graded',
  judge: async (q, preferred, dispreferred) => judgeGraded(q.type, q.answer, preferred, dispreferred),
};

/** Keep any two differing answers (the baseline without a filter). */
export const noneJudge: Judge = {
  kind: 'none',
  judge: async (_q, preferred, dispreferred) => {
    const reason = unpairable(preferred, dispreferred);
    return { keep: !reason, ...(reason ? { reason } : {}), preferredCorrect: false, dispreferredCorrect: false };
  },
};

/** TPO's LLM filter against the captions: the preferred answer is right, consistent with them, and better. */
export function llmJudge(client: ChatClient): Judge {
  return {
    kind: 'llm',
    judge: async (q, preferred, dispreferred) => {
      const early = unpairable(preferred, dispreferred);
      if (early) return { keep: false, reason: early, preferredCorrect: false, dispreferredCorrect: false };
      const v = await judgePair(client, q.captions ?? [], q.question, preferred, dispreferred);
      const reason: DropReason | undefined = !v.correct ? 'preferred-wrong' : !v.consistent ? 'contradicts-captions'
        : !v.better ? 'not-better' : undefined;
      const { keep, ...checks } = v;
      return { keep, ...(reason ? { reason } : {}), preferredCorrect: v.correct, dispreferredCorrect: false, llm: checks };
    },
  };
}

/** The judge of a kind (the llm judge needs its client). */
export function makeJudge(kind: JudgeKind, client?: ChatClient): Judge {
  if (kind === 'synthetic') return syntheticJudge;
  if (kind === 'graded') return gradedJudge;
  if (kind === 'none') return noneJudge;
  if (!client) throw new TypeError('the llm judge needs an llm client');
  return llmJudge(client);
}

/**
 * The verdict on answers `a` (preferred input) and `b` (dis-preferred), and whether the judge kept them the other
 * way round. `swappable` (the `none` manipulation: two samples of one input, no side is preferred by construction)
 * lets the judge try b over a when a over b fails for a reason the other order may pass.
 */
export async function settleSides(
  judge: Judge, q: JudgedQuestion, a: string, b: string, swappable: boolean,
): Promise<{ verdict: Verdict; swapped: boolean }> {
  const first = await judge.judge(q, a, b);
  if (!swappable || first.keep || !['preferred-wrong', 'not-better'].includes(first.reason ?? '')) return { verdict: first, swapped: false };
  const second = await judge.judge(q, b, a);
  return second.keep ? { verdict: second, swapped: true } : { verdict: first, swapped: false };
}
