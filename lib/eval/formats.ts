// Multiple-choice video benchmarks as the field ships them, read into one item type for evaluation:
// - `tpo`: our JSONL `{id, video, question, options, answer}` (lib/data/records.ts), categories from the synthetic
//   world's kind / type / length;
// - `videomme`: Video-MME (lmms-eval's videomme task) `{video_id, duration, domain, sub_category, videoID,
//   question_id, task_type, question, options: ["A. ...", ...], answer: "C"}`, video `<videoID>.mp4` (else .MP4,
//   else .mkv, as lmms-eval looks);
// - `mlvu`: MLVU's per-task JSON `{video, duration, question, candidates: [...], answer: <option text>,
//   question_type}`;
// - `longvideobench`: LongVideoBench's lvb_val.json `{id, video_id, video_path, question, candidates,
//   correct_choice, duration_group, question_category}` (or the Hugging Face rows' option0..option4, "N/A" unused).
// Every file may be a JSON array or JSONL. Errors name the file, the line (JSONL) or index (array) and the field.
import { existsSync } from 'node:fs';
import { basename, extname } from 'node:path';

import { z } from 'zod';

import { DataError, type RecordSource } from '../data/errors.js';
import { readJsonValues, RecordReader } from '../data/jsonl.js';
import { OPTION_LETTERS } from '../data/answers.js';
import { answerOf, type BenchmarkItem, checkRecord, optionCountIssue, readBenchmark } from '../data/records.js';
import { resolveVideoPath } from '../data/videos.js';
import { parse } from '../validate.js';

export const EVAL_FORMATS = ['tpo', 'videomme', 'mlvu', 'longvideobench'] as const;
export type EvalFormat = (typeof EVAL_FORMATS)[number];

/** A benchmark item of any format, with the labels its accuracy is broken down by. */
export interface EvalItem extends BenchmarkItem {
  /** Category name -> value, e.g. {kind: 'localized', length: 'long'} or {duration: 'short', task_type: '…'}. */
  category: Record<string, string>;
}

export const ReadEvalOptions = z.strictObject({
  /** 'auto' (default) looks at the first record's fields. */
  format: z.enum([...EVAL_FORMATS, 'auto']).default('auto'),
  /** Relative video paths resolve under this folder; by default, beside the benchmark file. */
  videoRoot: z.string().min(1).optional(),
});
export type ReadEvalOptions = z.input<typeof ReadEvalOptions>;

const LETTERS = OPTION_LETTERS;
const Text = z.string().refine((s) => s.trim() !== '', 'must not be empty');
const Id = z.union([z.string().min(1), z.int()]).transform(String);
/** A category value: benchmarks write some as numbers (LongVideoBench's duration_group: 15, 60, 600, 3600). */
const Label = z.union([z.string(), z.number()]).transform(String);
const Options = z.array(Text).superRefine((options, ctx) => {
  const problem = optionCountIssue(options.length);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

type Ctx = z.core.$RefinementCtx;

/** What a format's schema yields; the reader adds the video's path and the record's source. */
interface Parsed {
  /** Absent when the format has none (MLVU): the reader names the record by its place in the file. */
  id: string | undefined;
  video: string;
  question: string;
  options: string[];
  answer: number;
  category: Record<string, string>;
  meta: Record<string, unknown>;
}

function metaOf(r: Record<string, unknown>, known: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(r).filter(([k]) => !known.includes(k)));
}

function issue(ctx: Ctx, field: string, message: string): void {
  ctx.addIssue({ code: 'custom', path: [field], message });
}

// Video-MME writes each option with its letter ("A. Apples."); the letter is the position, so it goes.
const LETTER_PREFIX = /^\s*([A-Z])[.)]\s*/;

const VIDEOMME_FIELDS = ['videoID', 'question_id', 'question', 'options', 'answer', 'duration', 'domain', 'task_type'];
const VideoMme = z
  .looseObject({
    videoID: Text, question_id: Id, question: Text, options: Options, answer: z.string().regex(/^[A-Z]$/, 'must be a letter A, B, …'),
    duration: Label, domain: Label, task_type: Label,
  })
  .transform((r, ctx): Parsed => {
    const options = r.options.map((o, i) => {
      const prefix = LETTER_PREFIX.exec(o);
      if (prefix && prefix[1] !== LETTERS[i]) issue(ctx, `options.${i}`, `starts with '${prefix[1]}.' but is option ${LETTERS[i]}`);
      return prefix ? o.slice(prefix[0].length) : o;
    });
    const answer = LETTERS.indexOf(r.answer);
    if (answer >= options.length) issue(ctx, 'answer', `'${r.answer}' is past the ${options.length} options`);
    return {
      id: r.question_id, video: `${r.videoID}.mp4`, question: r.question, options, answer,
      category: { duration: r.duration, domain: r.domain, task_type: r.task_type }, meta: metaOf(r, VIDEOMME_FIELDS),
    };
  });

const MLVU_FIELDS = ['video', 'question', 'candidates', 'answer', 'question_type', 'question_id'];
const Mlvu = z
  .looseObject({ video: Text, question: Text, candidates: Options, answer: Text, question_type: Label, question_id: Id.optional() })
  .transform((r, ctx): Parsed => {
    // MLVU's answers are candidate texts: matched as written, else without case, punctuation and spacing.
    const answer = answerOf(r.answer, r.candidates, ctx, { textOnly: true });
    return {
      id: r.question_id, video: r.video, question: r.question, options: r.candidates, answer,
      category: { question_type: r.question_type }, meta: metaOf(r, MLVU_FIELDS),
    };
  });

const LVB_OPTION_KEYS = ['option0', 'option1', 'option2', 'option3', 'option4'];
const LVB_FIELDS = ['id', 'video_path', 'question', 'candidates', 'correct_choice', 'duration_group', 'question_category', ...LVB_OPTION_KEYS];
const LongVideoBench = z
  .looseObject({
    id: Id, video_path: Text, question: Text, candidates: Options.optional(), correct_choice: z.int().nonnegative(),
    duration_group: Label, question_category: Label,
  })
  .transform((r, ctx): Parsed => {
    // lvb_val.json lists `candidates`; the Hugging Face rows spread them over option0..option4, "N/A" where unused.
    const spread = LVB_OPTION_KEYS.map((k) => r[k]).filter((o): o is string => typeof o === 'string' && o !== 'N/A');
    const options = r.candidates ?? spread;
    if (options.length < 2) issue(ctx, 'candidates', 'missing (LongVideoBench lists candidates, or option0..option4)');
    if (options.length >= 2 && r.correct_choice >= options.length) {
      issue(ctx, 'correct_choice', `${r.correct_choice} is past the ${options.length} candidates (0-based)`);
    }
    return {
      id: r.id, video: r.video_path, question: r.question, options, answer: r.correct_choice,
      category: { duration_group: r.duration_group, question_category: r.question_category },
      meta: metaOf(r, LVB_FIELDS),
    };
  });

/** The synthetic world's (and any tpo benchmark's) categories: whichever of kind, type, length a record has. */
const TPO_CATEGORIES = ['kind', 'type', 'length'];

function fromTpo(item: BenchmarkItem): EvalItem {
  const category: Record<string, string> = {};
  for (const key of TPO_CATEGORIES) {
    const value = item.meta[key];
    if (typeof value === 'string' || typeof value === 'number') category[key] = String(value);
  }
  return { ...item, category };
}

/** The format a record is written in, from the fields only that format has. */
export function detectFormat(record: unknown): EvalFormat | undefined {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return undefined;
  const has = (...keys: string[]) => keys.every((k) => k in record);
  if (has('videoID', 'question_id', 'options')) return 'videomme';
  if (has('correct_choice', 'video_path')) return 'longvideobench';
  if (has('candidates', 'question_type')) return 'mlvu';
  if (has('video', 'question', 'options', 'answer')) return 'tpo';
  return undefined;
}

async function detectFileFormat(file: string): Promise<EvalFormat> {
  for await (const item of readJsonValues(file)) {
    if (item instanceof DataError) throw item;
    const format = detectFormat(item.value);
    if (format) return format;
    throw new DataError(
      'cannot tell the benchmark format from this record (expected the fields of tpo {id, video, question, options, ' +
        'answer}, Video-MME {videoID, question_id, options, answer}, MLVU {video, candidates, question_type} or ' +
        'LongVideoBench {video_path, candidates, correct_choice}); give the format explicitly',
      item.source,
    );
  }
  throw new DataError('has no records', { file });
}

/** A parser for one record of `schema` whose DataError names the file, the line or index and the first bad field. */
function recordParser(schema: z.ZodType<Parsed>, file: string, videoRoot: string | undefined) {
  return (value: unknown, source: RecordSource): EvalItem => {
    const r = checkRecord(schema, value, source);
    // A record without an id of its own (MLVU) is named by its file and its place in it, which is unique.
    const id = r.id ?? `${basename(file, extname(file))}-${source.line ?? source.index}`;
    return {
      id, video: r.video, videoPath: resolveVideoPath(r.video, file, videoRoot), question: r.question,
      options: r.options, answer: r.answer, answerLetter: LETTERS[r.answer]!, category: r.category, meta: r.meta, source,
    };
  };
}

const SCHEMAS: Record<Exclude<EvalFormat, 'tpo'>, z.ZodType<Parsed>> = { videomme: VideoMme, mlvu: Mlvu, longvideobench: LongVideoBench };

/** Video-MME's files as lmms-eval finds them (videomme_doc_to_visual): <videoID>.mp4, else .MP4, else .mkv. */
const VIDEOMME_EXTENSIONS = ['.MP4', '.mkv'];

function withVideoMmeExtension(item: EvalItem): EvalItem {
  if (existsSync(item.videoPath)) return item;
  const stem = (path: string) => path.slice(0, -'.mp4'.length);
  const ext = VIDEOMME_EXTENSIONS.find((e) => existsSync(stem(item.videoPath) + e));
  // None there: the .mp4 name stays, and the missing-videos check names it.
  return ext ? { ...item, video: stem(item.video) + ext, videoPath: stem(item.videoPath) + ext } : item;
}

/** Ids must be unique: samples and reruns are keyed by them. */
function assertUniqueIds(items: readonly EvalItem[]): void {
  const seen = new Map<string, RecordSource>();
  for (const item of items) {
    const first = seen.get(item.id);
    if (first) {
      const where = first.line !== undefined ? `line ${first.line}` : `index ${first.index}`;
      throw new DataError(`'${item.id}' is also the id at ${where}; ids must be unique`, item.source, 'id');
    }
    seen.set(item.id, item.source);
  }
}

/**
 * Every item of a multiple-choice benchmark file (JSON array or JSONL) in file order, in one item type, and the
 * format it was read as. The first bad record is a DataError naming the file, its line or index, and the field.
 */
export async function readEvalBenchmark(
  file: string, options: ReadEvalOptions = {},
): Promise<{ format: EvalFormat; items: EvalItem[] }> {
  parse(z.string().min(1), file, 'readEvalBenchmark: file');
  const { format: requested, videoRoot } = parse(ReadEvalOptions, options, 'readEvalBenchmark: options');
  const format = requested === 'auto' ? await detectFileFormat(file) : requested;
  const items = format === 'tpo'
    ? (await readBenchmark(file, videoRoot ? { videoRoot } : {}).toArray()).map(fromTpo)
    : await new RecordReader(file, recordParser(SCHEMAS[format], file, videoRoot)).toArray();
  assertUniqueIds(items);
  return { format, items: format === 'videomme' ? items.map(withVideoMmeExtension) : items };
}
