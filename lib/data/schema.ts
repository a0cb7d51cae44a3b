// tpo's dataset records as it writes them (`tpo convert`, `tpo generate`), documented for other tools: the zod
// schemas here are the one definition, and docs/schema/*.schema.json are generated from them (z.toJSONSchema; a
// test checks the committed files are current). The readers (records.ts) accept these and the field's aliases.
import { z } from 'zod';

const text = (description: string) => z.string().min(1).meta({ description });

/** A preference pair: one prompt about one video, a preferred and a dis-preferred answer. */
export const PairRecord = z.looseObject({
  id: text('Unique within the file.'),
  video: text(
    'The video: a file (mp4, mkv, webm, ...) or a folder of numbered frames, absolute or relative to the dataset ' +
      "file's folder (or to the reader's videoRoot).",
  ),
  prompt: text(
    "The user's question. '<image>' marks where the video's tokens go (once); without it the video comes first, on " +
      'its own line.',
  ),
  chosen: text('The preferred answer.'),
  rejected: text('The dis-preferred answer.'),
  chosen_score: z.number().optional().meta({ description: "A judge's score of the chosen answer (LLaVA-Hound)." }),
  rejected_score: z.number().optional().meta({ description: "A judge's score of the rejected answer (LLaVA-Hound)." }),
}).meta({
  title: 'tpo preference pair',
  description:
    'One line of a tpo pairs JSONL file. Fields beyond these are kept as provenance (e.g. kind, manipulation, ' +
    'source) and passed through untouched.',
});
export type PairRecord = z.output<typeof PairRecord>;

/** An SFT record: one prompt about one video and its answer. */
export const SftRecord = z.looseObject({
  id: text('Unique within the file.'),
  video: PairRecord.shape.video,
  prompt: PairRecord.shape.prompt,
  answer: text('The answer the model is trained to give.'),
}).meta({
  title: 'tpo SFT record',
  description: 'One line of a tpo SFT JSONL file. Fields beyond these are kept and passed through untouched.',
});
export type SftRecord = z.output<typeof SftRecord>;

/** docs/schema/<file> -> its JSON Schema (draft 2020-12). */
export const JSON_SCHEMAS: Record<string, () => Record<string, unknown>> = {
  'pair.schema.json': () => z.toJSONSchema(PairRecord, { target: 'draft-2020-12' }),
  'sft.schema.json': () => z.toJSONSchema(SftRecord, { target: 'draft-2020-12' }),
};
