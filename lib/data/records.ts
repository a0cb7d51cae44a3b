// The dataset records tpo reads, as the field writes them, each normalised to one internal type:
// - preference pairs: TPO and LLaVA-Hound `{id, video, prompt, chosen, rejected, chosen_score?, rejected_score?}`,
//   TimeWarp `{id, question, answer, rejected}` whose id is the video's file name;
// - SFT records: `{id, video, prompt, answer}` (TimeWarp: `{id, question, answer}`);
// - video annotations as TimeWarp writes them: `{video, description: [...], scene_timestamps: [[s, e], ...]}`;
// - multiple-choice benchmark items: `{id, video, question, options, answer}`.
// Fields tpo does not know are kept in `meta`.
import { z } from 'zod';

import { matchOption, MAX_OPTIONS, OPTION_LETTERS } from './answers.js';
import { DataError, type RecordSource } from './errors.js';
import { ReadOptions, RecordReader } from './jsonl.js';
import { resolveVideoPath } from './videos.js';
import { parse } from '../validate.js';

interface Located {
  /** The video as the record names it. */
  video: string;
  /** The video resolved against the video root or the dataset file's folder. */
  videoPath: string;
  source: RecordSource;
  /** Every field of the record that tpo does not read. */
  meta: Record<string, unknown>;
}

export interface PreferencePair extends Located {
  id: string;
  prompt: string;
  chosen: string;
  rejected: string;
  chosenScore?: number;
  rejectedScore?: number;
}

export interface SftRecord extends Located {
  id: string;
  prompt: string;
  answer: string;
}

export interface Caption {
  /** Seconds from the start of the video. */
  start: number;
  end: number;
  text: string;
}

export interface VideoAnnotation extends Located {
  id?: string;
  captions: Caption[];
}

export interface BenchmarkItem extends Located {
  id: string;
  question: string;
  options: string[];
  /** Index of the right option. */
  answer: number;
  /** Its letter: A, B, … */
  answerLetter: string;
}

const VIDEO_FILE = /\.(mp4|mkv|webm|avi|mov|m4v|mpe?g|flv|wmv|gif)$/i;
const Id = z.union([z.string().min(1), z.int()]).transform(String);
const Text = z.string().refine((s) => s.trim() !== '', 'must not be empty');
const Video = z.string().refine((s) => s.trim() !== '', 'must not be empty');
const Score = z.number().nullish();

type Ctx = z.core.$RefinementCtx;

/** The first present of `names`, or an issue on the first name saying what was expected. */
function either(r: Record<string, unknown>, names: string[], ctx: Ctx, what: string): string {
  for (const name of names) if (typeof r[name] === 'string') return r[name];
  ctx.addIssue({ code: 'custom', path: [names[0]!], message: `missing (${what})` });
  return '';
}

/** The record's video, or (TimeWarp) its id when that is a video file name. */
function videoOf(r: { video?: string | undefined; id?: string | undefined }, ctx: Ctx): string {
  if (r.video !== undefined) return r.video;
  if (r.id !== undefined && VIDEO_FILE.test(r.id)) return r.id;
  const message = "missing (and id is not a video file name, as TimeWarp's are)";
  ctx.addIssue({ code: 'custom', path: ['video'], message });
  return '';
}

function metaOf(r: Record<string, unknown>, known: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(r).filter(([k]) => !known.includes(k)));
}

const PAIR_FIELDS = ['id', 'video', 'prompt', 'question', 'chosen', 'answer', 'rejected', 'chosen_score', 'rejected_score'];
const PairSchema = z
  .looseObject({
    id: Id, video: Video.optional(), prompt: Text.optional(), question: Text.optional(), chosen: Text.optional(),
    answer: Text.optional(), rejected: Text, chosen_score: Score, rejected_score: Score,
  })
  .transform((r, ctx) => {
    const pair = {
      id: r.id,
      video: videoOf(r, ctx),
      prompt: either(r, ['prompt', 'question'], ctx, 'TPO and LLaVA-Hound write prompt, TimeWarp question'),
      chosen: either(r, ['chosen', 'answer'], ctx, 'TPO and LLaVA-Hound write chosen, TimeWarp answer'),
      rejected: r.rejected,
      ...(r.chosen_score != null ? { chosenScore: r.chosen_score } : {}),
      ...(r.rejected_score != null ? { rejectedScore: r.rejected_score } : {}),
      meta: metaOf(r, PAIR_FIELDS),
    };
    // LLaVA-Hound writes both answer (its SFT answer) and chosen; chosen is the preferred one, answer stays in meta.
    if (r.chosen !== undefined && r.answer !== undefined) pair.meta['answer'] = r.answer;
    return pair;
  });

const SFT_FIELDS = ['id', 'video', 'prompt', 'question', 'answer'];
const SftSchema = z
  .looseObject({ id: Id, video: Video.optional(), prompt: Text.optional(), question: Text.optional(), answer: Text })
  .transform((r, ctx) => ({
    id: r.id,
    video: videoOf(r, ctx),
    prompt: either(r, ['prompt', 'question'], ctx, 'write prompt or question'),
    answer: r.answer,
    meta: metaOf(r, SFT_FIELDS),
  }));

const Span = z
  .tuple([z.number().nonnegative(), z.number().nonnegative()])
  .refine(([s, e]) => s <= e, 'start is after end');
const ANNOTATION_FIELDS = ['id', 'video', 'description', 'scene_timestamps'];
const AnnotationSchema = z
  .looseObject({ id: Id.optional(), video: Video, description: z.array(z.string()), scene_timestamps: z.array(Span) })
  .transform((r, ctx) => {
    if (r.description.length !== r.scene_timestamps.length) {
      ctx.addIssue({
        code: 'custom', path: ['scene_timestamps'],
        message: `has ${r.scene_timestamps.length} spans but description has ${r.description.length} captions`,
      });
    }
    // TimeWarp joins a scene's activities with a trailing space each; the caption is the text without it.
    const captions = r.scene_timestamps.map(([start, end], i) => ({ start, end, text: (r.description[i] ?? '').trim() }));
    return { ...(r.id !== undefined ? { id: r.id } : {}), video: r.video, captions, meta: metaOf(r, ANNOTATION_FIELDS) };
  });

const LETTERS = OPTION_LETTERS;

function optionsOf(options: string[] | Record<string, string>, ctx: Ctx): string[] {
  const list = Array.isArray(options) ? options : keyedOptions(options, ctx);
  const count = optionCountIssue(list.length);
  if (count) ctx.addIssue({ code: 'custom', path: ['options'], message: count });
  return list;
}

function keyedOptions(options: Record<string, string>, ctx: Ctx): string[] {
  const keys = Object.keys(options).sort();
  if (!keys.every((k, i) => k === LETTERS[i])) {
    const message = `keys must be A, B, C, … in turn (got ${keys.join(', ')})`;
    ctx.addIssue({ code: 'custom', path: ['options'], message });
  }
  return keys.map((k) => options[k]!);
}

/** What is wrong with a question's option count: at least 2, at most 26 (A to Z: more cannot be lettered). */
export function optionCountIssue(count: number): string | undefined {
  if (count < 2) return `has ${count} option${count === 1 ? '' : 's'}; a multiple-choice question needs at least 2`;
  if (count > MAX_OPTIONS) return `has ${count} options; more than ${MAX_OPTIONS} cannot be lettered A to Z`;
  return undefined;
}

/** The right option's index (lib/data/answers.ts matchOption), or an issue on `answer` saying why none is. */
export function answerOf(answer: string | number, options: string[], ctx: Ctx, mode: { textOnly?: boolean } = {}): number {
  const match = matchOption(answer, options, mode);
  if ('error' in match) {
    ctx.addIssue({ code: 'custom', path: ['answer'], message: match.error });
    return -1;
  }
  return match.index;
}


const BENCHMARK_FIELDS = ['id', 'video', 'question', 'options', 'answer'];
const BenchmarkSchema = z
  .looseObject({
    id: Id, video: Video, question: Text,
    options: z.union([z.array(Text), z.record(z.string(), Text)]),
    answer: z.union([z.string(), z.int().nonnegative()]),
  })
  .transform((r, ctx) => {
    const options = optionsOf(r.options, ctx);
    const answer = answerOf(r.answer, options, ctx);
    return {
      id: r.id, video: r.video, question: r.question, options, answer, answerLetter: LETTERS[answer] ?? '?',
      meta: metaOf(r, BENCHMARK_FIELDS),
    };
  });

/** Reading options: error handling (throw or skip and count) and where relative video paths start. */
export const DatasetOptions = ReadOptions.extend({
  /** Relative video paths resolve under this folder; by default, beside the dataset file. */
  videoRoot: z.string().min(1).optional(),
});
export type DatasetOptions = z.input<typeof DatasetOptions>;

/** A parser for one record of `schema`: a DataError names the file, the line and the (first) bad field. */
/** `value` as one record of `schema`, or a DataError naming the source and the first bad field (then the rest). */
export function checkRecord<S extends z.ZodType>(schema: S, value: unknown, source: RecordSource): z.output<S> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const what = Array.isArray(value) ? 'an array' : JSON.stringify(value);
    throw new DataError(`a record must be a JSON object, not ${what}`, source);
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const [first, ...rest] = result.error.issues;
    const field = first!.path.map(String).join('.');
    const more = rest.map((i) => `; ${i.path.map(String).join('.') || '(record)'}: ${i.message}`).join('');
    throw new DataError(first!.message + more, source, field || undefined);
  }
  return result.data;
}

function recordParser<S extends z.ZodType<{ video: string }>>(schema: S, file: string, videoRoot?: string) {
  return (value: unknown, source: RecordSource) => {
    const record = checkRecord(schema, value, source);
    return { ...record, videoPath: resolveVideoPath(record.video, file, videoRoot), source };
  };
}

function reader<S extends z.ZodType<{ video: string }>, T>(schema: S, what: string, file: string, options: DatasetOptions) {
  const { videoRoot, ...readOptions } = parse(DatasetOptions, options, `${what}: options`);
  return new RecordReader(file, recordParser(schema, file, videoRoot) as (v: unknown, s: RecordSource) => T, readOptions);
}

/** One pair (TPO, LLaVA-Hound or TimeWarp field names) from a JSON value, e.g. a Parquet row (`tpo convert`). */
export function parsePairRecord(value: unknown, source: RecordSource): Omit<PreferencePair, 'videoPath' | 'source'> {
  return checkRecord(PairSchema, value, source);
}

/** Preference pairs (TPO, LLaVA-Hound or TimeWarp field names) from a JSONL or JSON array file. */
export function readPairs(file: string, options: DatasetOptions = {}): RecordReader<PreferencePair> {
  return reader<typeof PairSchema, PreferencePair>(PairSchema, 'readPairs', file, options);
}

/** SFT records `{id, video, prompt | question, answer}`. */
export function readSft(file: string, options: DatasetOptions = {}): RecordReader<SftRecord> {
  return reader<typeof SftSchema, SftRecord>(SftSchema, 'readSft', file, options);
}

/** Video annotations `{video, description: [...], scene_timestamps: [[s, e], ...]}`, one caption per span. */
export function readAnnotations(file: string, options: DatasetOptions = {}): RecordReader<VideoAnnotation> {
  return reader<typeof AnnotationSchema, VideoAnnotation>(AnnotationSchema, 'readAnnotations', file, options);
}

/** Multiple-choice items `{id, video, question, options, answer}`. */
export function readBenchmark(file: string, options: DatasetOptions = {}): RecordReader<BenchmarkItem> {
  return reader<typeof BenchmarkSchema, BenchmarkItem>(BenchmarkSchema, 'readBenchmark', file, options);
}
