// The post-filter of TPO's self-generated pairs, for the synthetic world, where every answer is known exactly:
// keep a pair only when the preferred answer is right, the dis-preferred one is not, and the two differ.
// (Real videos take TPO's LLM judge through lib/tpo/llm.ts; this judge needs no model.)
import { normalizeAnswer } from '../data/answers.js';

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
