// The post-filter of TPO's self-generated pairs, one Judge interface for three judges: the synthetic world's, where
// every answer is known exactly (keep a pair only when the preferred answer is right, the dis-preferred one is not,
// and the two differ); TPO's LLM checks against the captions (real videos); none (any two differing answers).
import { normalizeAnswer } from '../data/answers.js';
import type { Caption } from '../data/records.js';
import type { ChatClient } from './llm.js';
import { judgePair } from './questions.js';

export type DropReason =
  | 'empty-answer' | 'same-answers' | 'preferred-wrong' | 'dispreferred-also-right'
  // TPO's LLM filter (lib/tpo/questions.ts judgePair): the preferred answer contradicts the captions, or is no better
  | 'contradicts-captions' | 'not-better';

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

/** What a judge needs of a question: its reference answer, text and captions (real videos). */
export interface JudgedQuestion {
  question: string;
  answer: string;
  captions?: Caption[];
}

/** One interface for TPO's post-filter: the synthetic world's exact judge, the LLM's three checks, or none. */
export interface Judge {
  readonly kind: JudgeKind;
  judge(question: JudgedQuestion, preferred: string, dispreferred: string): Promise<Verdict>;
}

export const JUDGES = ['synthetic', 'llm', 'none'] as const;
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
