// TPO's localized : comprehensive mix (5:5 in the paper): the order questions are asked in, and how many pairs of
// each kind are still wanted when a target is set.
import { mulberry32, seededShuffle } from '../data/videos.js';
import type { QuestionKind } from './sources.js';
import type { GenerateSummary } from './state.js';

/**
 * The questions in the mix's order: localized and comprehensive interleaved at the ratio (seeded). Without a target
 * (`untilRunOut`), asking stops when a kind the mix asks for runs out, so the questions asked keep the ratio; with
 * one, the other kind's remaining questions follow, for the kept quotas (which keep the ratio) to fill from.
 */
export function mixed<Q extends { kind: QuestionKind }>(questions: readonly Q[], mix: readonly [number, number], seed: number, untilRunOut: boolean): Q[] {
  const random = mulberry32(seed);
  const local = seededShuffle(questions.filter((q) => q.kind === 'localized'), random);
  const global = seededShuffle(questions.filter((q) => q.kind === 'comprehensive'), random);
  const share = mix[0] / (mix[0] + mix[1]);
  const out: Q[] = [];
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
export function quotas(targetPairs: number | undefined, mix: readonly [number, number], summary: GenerateSummary): Record<QuestionKind, number> {
  if (targetPairs === undefined) return { localized: Infinity, comprehensive: Infinity };
  const local = Math.round((targetPairs * mix[0]) / (mix[0] + mix[1]));
  return {
    localized: local - (summary.byKind.localized?.kept ?? 0),
    comprehensive: targetPairs - local - (summary.byKind.comprehensive?.kept ?? 0),
  };
}

/** Whether every quota is filled. */
export const quotasFilled = (want: Record<QuestionKind, number>) => want.localized <= 0 && want.comprehensive <= 0;
