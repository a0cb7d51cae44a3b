// The records TPO's generation writes, one zod schema each: a kept pair (pairs.jsonl, the TPO / LLaVA-Hound field
// names plus provenance), a dropped pair or skipped question (<out>.dropped.jsonl, with its reason), and what a
// resumed run reads back from either file.
import { z } from 'zod';

const Verdict = z.object({
  keep: z.boolean(),
  reason: z.string().optional(),
  preferredCorrect: z.boolean(),
  dispreferredCorrect: z.boolean(),
  llm: z.object({ correct: z.boolean(), consistent: z.boolean(), better: z.boolean() }).optional(),
});

export const QuestionKind = z.enum(['localized', 'comprehensive']);

/** Where a pair came from: the question's kind and type, the manipulation, the frames each answer saw. */
const Provenance = {
  kind: QuestionKind,
  type: z.string().nullable(),
  manipulation: z.string(),
  span: z.tuple([z.number(), z.number()]).nullable(),
  frames: z.object({ preferred: z.array(z.int()), dispreferred: z.array(z.int()) }),
  /** timewarp-explicit: the scene order the dis-preferred input shows. */
  sceneOrder: z.array(z.int()).optional(),
  /** The `none` manipulation: the judge kept the answers the other way round. */
  swapped: z.boolean().optional(),
  /** The reference answer the judge compared against. */
  reference: z.string(),
  judge: Verdict,
};

/** A kept pair, as training reads it (lib/data/records.ts readPairs). */
export const PairRecord = z.strictObject({
  id: z.string().min(1),
  video: z.string().min(1),
  prompt: z.string().min(1),
  chosen: z.string(),
  rejected: z.string(),
  ...Provenance,
});
export type PairRecord = z.infer<typeof PairRecord>;

/** A judged pair that was dropped, with both answers and the reason. */
export const DroppedPair = z.strictObject({
  id: z.string().min(1),
  video: z.string().min(1),
  prompt: z.string().min(1),
  preferred: z.string(),
  dispreferred: z.string(),
  reason: z.string().min(1),
  ...Provenance,
});
export type DroppedPair = z.infer<typeof DroppedPair>;

/** A question (or a whole video, kind 'video') not asked, and why: no pair was made. */
export const SkipRecord = z.strictObject({
  id: z.string().min(1),
  video: z.string().min(1),
  kind: z.union([QuestionKind, z.literal('video')]),
  prompt: z.string().optional(),
  reason: z.string().min(1),
  detail: z.string().optional(),
});
export type SkipRecord = z.infer<typeof SkipRecord>;

/** What a resumed run needs of a line of either file (older files may hold more or fewer fields). */
export const WrittenRecord = z.looseObject({
  id: z.string().min(1),
  kind: z.string(),
  reason: z.string().optional(),
  prompt: z.string().optional(),
  video: z.string().optional(),
  judge: Verdict.optional(),
});
export type WrittenRecord = z.infer<typeof WrittenRecord>;
