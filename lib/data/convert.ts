// Datasets users already have, read as tpo's records (`tpo convert --from FORMAT IN OUT`):
// - `trl`: TRL's preference datasets: `prompt` / `chosen` / `rejected`, each a string (standard) or a list of
//   messages `{role, content}` (conversational; content a string or parts `{type: 'text', text}` / `{type: 'video'}`
//   / `{type: 'image'}`), the prompt implicit when absent (the messages chosen and rejected share); the video in
//   `videos` (a list of one path, or of `{path}`) or `video`;
// - `llamafactory`: LLaMA-Factory's sharegpt-style ranking data: `conversations` or `messages` (`{from, value}` or
//   `{role, content}`), `chosen` and `rejected` one message each, `videos`, `<video>` in the text, `system`;
// - `llava`: LLaVA's SFT `{id, video, conversations: [{from: 'human', value}, {from: 'gpt', value}, ...]}`, one SFT
//   record per human/gpt exchange;
// - `llava-hound`, `timewarp`: their pair files, through the readers of records.ts (`{id, video, prompt, chosen,
//   rejected, chosen_score, rejected_score}`; `{id: <video file>, question, answer, rejected}`).
// Input files are JSONL, JSON arrays or Parquet. Every error names the file, the row (JSONL line, array index or
// Parquet row) and the field. Output: tpo's JSONL (schema.ts, docs/schema/), videos relative to the output's folder.
import { mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';

import { z } from 'zod';

import { parse } from '../validate.js';
import { IMAGE_PLACEHOLDER } from './encode.js';
import { DataError, type RecordSource } from './errors.js';
import { readJsonValues, writeJsonl, type JsonRecord } from './jsonl.js';
import { PARQUET_FILE, readParquetValues } from './parquet.js';
import { parsePairRecord } from './records.js';
import { PairRecord, SftRecord } from './schema.js';

export const CONVERT_FORMATS = ['trl', 'llamafactory', 'llava', 'llava-hound', 'timewarp'] as const;
export type ConvertFormat = (typeof CONVERT_FORMATS)[number];

/** Raw rows of a JSONL, JSON array or Parquet file. */
export function readRows(file: string): AsyncGenerator<JsonRecord | DataError> {
  return PARQUET_FILE.test(file) ? readParquetValues(file) : readJsonValues(file);
}

type Fail = (field: string, message: string) => never;

function failer(source: RecordSource): Fail {
  return (field, message) => {
    throw new DataError(message, source, field);
  };
}

interface Message {
  role: string;
  text: string;
}

// Roles as each format spells them.
const USER = new Set(['user', 'human']);
const ASSISTANT = new Set(['assistant', 'gpt', 'model']);

/** A message's content as text: parts joined, a video or image part as '<image>', LLaMA-Factory's '<video>' too. */
function contentText(content: unknown, field: string, fail: Fail): string {
  if (typeof content === 'string') return content.replaceAll('<video>', IMAGE_PLACEHOLDER);
  if (!Array.isArray(content)) fail(field, 'must be a string or a list of parts ({type: "text", text} or {type: "video"})');
  return content.map((part, i) => {
    const at = `${field}.${i}`;
    if (typeof part === 'string') return part;
    if (!part || typeof part !== 'object') fail(at, 'must be a part object {type, ...}');
    const p = part as Record<string, unknown>;
    if (p.type === 'text') {
      if (typeof p.text !== 'string') fail(`${at}.text`, 'must be a string');
      return (p.text as string).replaceAll('<video>', IMAGE_PLACEHOLDER);
    }
    if (p.type === 'video' || p.type === 'image') return IMAGE_PLACEHOLDER;
    return fail(`${at}.type`, `'${String(p.type)}' is not a part tpo reads (text, video, image)`);
  }).join('');
}

/** A `{role, content}` or `{from, value}` message. */
function messageOf(m: unknown, at: string, fail: Fail): Message {
  if (!m || typeof m !== 'object' || Array.isArray(m)) fail(at, 'must be a message {role, content} or {from, value}');
  const r = m as Record<string, unknown>;
  const role = r.role ?? r.from;
  if (typeof role !== 'string') fail(`${at}.role`, 'missing (a message has role/content or from/value)');
  const key = 'content' in r ? 'content' : 'value';
  return { role: role as string, text: contentText(r[key], `${at}.${key}`, fail) };
}

function messagesOf(value: unknown, field: string, fail: Fail): Message[] {
  if (!Array.isArray(value)) fail(field, 'must be a list of messages');
  return (value as unknown[]).map((m, i) => messageOf(m, `${field}.${i}`, fail));
}

function nonEmpty(text: string, field: string, fail: Fail): string {
  if (text.trim() === '') fail(field, 'must not be empty');
  return text;
}

/** A prompt's messages as tpo's one user turn; system messages go to `system`. */
function promptOf(messages: Message[], field: string, fail: Fail): { prompt: string; system?: string } {
  const system = messages.filter((m) => m.role === 'system').map((m) => m.text).join('\n');
  const turns = messages.filter((m) => m.role !== 'system');
  if (turns.length === 0) fail(field, 'has no user message');
  const [user] = turns;
  if (turns.length > 1) {
    fail(field, `has ${turns.length} turns (${turns.map((t) => t.role).join(', ')}); tpo's records are one user turn about one video`);
  }
  if (!USER.has(user!.role)) fail(`${field}.${messages.indexOf(user!)}.role`, `'${user!.role}' is not a user turn`);
  return { prompt: nonEmpty(user!.text, field, fail), ...(system ? { system } : {}) };
}

/** An answer: a string, one message, or a list holding one assistant message. */
function answerOf(value: unknown, field: string, fail: Fail): string {
  if (typeof value === 'string') return nonEmpty(value, field, fail);
  const list = Array.isArray(value) ? messagesOf(value, field, fail) : [messageOf(value, field, fail)];
  if (list.length !== 1) fail(field, `has ${list.length} messages; an answer is one assistant message`);
  if (!ASSISTANT.has(list[0]!.role)) fail(Array.isArray(value) ? `${field}.0.role` : `${field}.role`, `'${list[0]!.role}' is not an assistant turn`);
  return nonEmpty(list[0]!.text, field, fail);
}

/** The row's one video: `videos: [path | {path}]` or `video`. */
function videoOf(r: Record<string, unknown>, fail: Fail): string {
  if (typeof r.video === 'string' && r.video.trim() !== '') return r.video;
  const videos = r.videos;
  if (videos === undefined || videos === null) {
    if (r.images !== undefined && r.images !== null) fail('images', 'this row has images but no video; tpo trains on videos (a video file or a folder of frames in `videos`)');
    return fail('videos', 'missing (a list of one video path)');
  }
  if (!Array.isArray(videos)) fail('videos', 'must be a list of one video path');
  if (videos.length !== 1) fail('videos', `has ${videos.length} videos; a tpo record is about one video`);
  const v = videos[0];
  const path = typeof v === 'string' ? v : v && typeof v === 'object' ? (v as Record<string, unknown>).path : undefined;
  if (typeof path !== 'string' || path.trim() === '') {
    fail('videos.0', 'must be a path, or {path} (embedded video bytes cannot be read: write the videos out as files)');
  }
  return path as string;
}

function rowId(r: Record<string, unknown>, source: RecordSource): string {
  if (typeof r.id === 'string' && r.id !== '') return r.id;
  if (typeof r.id === 'number') return String(r.id);
  return `row-${source.line ?? source.index}`;
}

function rest(r: Record<string, unknown>, known: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(r).filter(([k]) => !known.includes(k)));
}

type Converted = { kind: 'pair'; record: PairRecord } | { kind: 'sft'; record: SftRecord };

const TRL_FIELDS = ['id', 'prompt', 'chosen', 'rejected', 'videos', 'video', 'images'];

function fromTrl(r: Record<string, unknown>, source: RecordSource, fail: Fail): Converted[] {
  let prompt: string, system: string | undefined, chosen: string, rejected: string;
  if (r.prompt === undefined || r.prompt === null) {
    // Implicit prompt (TRL's extract_prompt): the messages chosen and rejected begin with alike.
    const c = messagesOf(r.chosen, 'chosen', fail), j = messagesOf(r.rejected, 'rejected', fail);
    let shared = 0;
    while (shared < Math.min(c.length, j.length) - 1 && c[shared]!.role === j[shared]!.role && c[shared]!.text === j[shared]!.text) shared += 1;
    if (shared === 0) fail('prompt', 'missing, and chosen and rejected share no first messages to take it from');
    ({ prompt, system } = promptOf(c.slice(0, shared), 'chosen', fail));
    chosen = answerOf((r.chosen as unknown[]).slice(shared), 'chosen', fail);
    rejected = answerOf((r.rejected as unknown[]).slice(shared), 'rejected', fail);
  } else {
    if (typeof r.prompt === 'string') prompt = nonEmpty(contentText(r.prompt, 'prompt', fail), 'prompt', fail);
    else ({ prompt, system } = promptOf(messagesOf(r.prompt, 'prompt', fail), 'prompt', fail));
    chosen = answerOf(r.chosen, 'chosen', fail);
    rejected = answerOf(r.rejected, 'rejected', fail);
  }
  const record = { id: rowId(r, source), video: videoOf(r, fail), prompt, chosen, rejected, ...(system ? { system } : {}), ...rest(r, TRL_FIELDS) };
  return [{ kind: 'pair', record }];
}

const LF_FIELDS = ['id', 'conversations', 'messages', 'chosen', 'rejected', 'videos', 'video', 'images', 'system'];

function fromLlamaFactory(r: Record<string, unknown>, source: RecordSource, fail: Fail): Converted[] {
  const key = r.conversations !== undefined ? 'conversations' : 'messages';
  const { prompt, system: inline } = promptOf(messagesOf(r[key], key, fail), key, fail);
  const system = typeof r.system === 'string' && r.system !== '' ? r.system : inline;
  const record = {
    id: rowId(r, source), video: videoOf(r, fail), prompt, chosen: answerOf(r.chosen, 'chosen', fail),
    rejected: answerOf(r.rejected, 'rejected', fail), ...(system ? { system } : {}), ...rest(r, LF_FIELDS),
  };
  return [{ kind: 'pair', record }];
}

const LLAVA_FIELDS = ['id', 'video', 'conversations'];

function fromLlava(r: Record<string, unknown>, source: RecordSource, fail: Fail): Converted[] {
  if (typeof r.video !== 'string' || r.video.trim() === '') {
    fail('video', typeof r.image === 'string' ? "missing (this is an image record: tpo's records are about a video)" : 'missing');
  }
  const messages = messagesOf(r.conversations, 'conversations', fail).filter((m) => m.role !== 'system');
  if (messages.length === 0) fail('conversations', 'has no turns');
  const id = rowId(r, source);
  const out: Converted[] = [];
  for (let k = 0; k < messages.length; k += 2) {
    const [q, a] = [messages[k]!, messages[k + 1]];
    if (!USER.has(q.role)) fail(`conversations.${k}.from`, `'${q.role}' where a human turn is due (turns alternate human, gpt)`);
    if (!a) fail(`conversations.${k}`, 'has no gpt answer after it');
    if (!ASSISTANT.has(a!.role)) fail(`conversations.${k + 1}.from`, `'${a!.role}' where a gpt turn is due (turns alternate human, gpt)`);
    const record = {
      id: messages.length > 2 ? `${id}-${k / 2}` : id, video: r.video as string,
      prompt: nonEmpty(q.text, `conversations.${k}.value`, fail), answer: nonEmpty(a!.text, `conversations.${k + 1}.value`, fail),
      ...(messages.length > 2 ? { turn: k / 2 } : {}), ...rest(r, LLAVA_FIELDS),
    };
    out.push({ kind: 'sft', record });
  }
  return out;
}

function fromPairFile(value: unknown, source: RecordSource): Converted[] {
  const p = parsePairRecord(value, source);
  const record = {
    id: p.id, video: p.video, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected,
    ...(p.chosenScore !== undefined ? { chosen_score: p.chosenScore } : {}),
    ...(p.rejectedScore !== undefined ? { rejected_score: p.rejectedScore } : {}), ...p.meta,
  };
  return [{ kind: 'pair', record }];
}

/** One row of `format` as tpo records (a DataError names the file, the row and the field). */
export function convertRow(format: ConvertFormat, value: unknown, source: RecordSource): Converted[] {
  if (format === 'llava-hound' || format === 'timewarp') return fromPairFile(value, source);
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new DataError(`a row must be an object, not ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`, source);
  }
  const fail = failer(source);
  const r = value as Record<string, unknown>;
  return format === 'trl' ? fromTrl(r, source, fail) : format === 'llamafactory' ? fromLlamaFactory(r, source, fail) : fromLlava(r, source, fail);
}

export const ConvertOptions = z.strictObject({
  from: z.enum(CONVERT_FORMATS),
  input: z.string().min(1),
  output: z.string().min(1),
  /** Relative video paths in the input start here (default: the input file's folder). */
  videoRoot: z.string().min(1).optional(),
  /** Only the first N rows. */
  limit: z.int().min(1).optional(),
});
export type ConvertOptions = z.input<typeof ConvertOptions>;

export interface ConvertSummary {
  rows: number;
  records: number;
  kind: 'pair' | 'sft';
  output: string;
}

/**
 * Converts `input` (format `from`) to tpo's JSONL at `output`, written atomically. Relative videos are rewritten
 * relative to the output's folder, so the output reads wherever it is. Ids must be unique.
 */
export async function convertDataset(options: ConvertOptions): Promise<ConvertSummary> {
  const o = parse(ConvertOptions, options, 'convert');
  const root = resolve(o.videoRoot ?? dirname(o.input));
  const outDir = resolve(dirname(o.output));
  const records: unknown[] = [];
  const seen = new Map<string, RecordSource>();
  let rows = 0;
  let kind: 'pair' | 'sft' = o.from === 'llava' ? 'sft' : 'pair';
  for await (const row of readRows(o.input)) {
    if (row instanceof DataError) throw row;
    if (o.limit !== undefined && rows >= o.limit) break;
    rows += 1;
    for (const c of convertRow(o.from, row.value, row.source)) {
      kind = c.kind;
      const first = seen.get(c.record.id);
      if (first) throw new DataError(`'${c.record.id}' is also the id of row ${first.line ?? first.index}; ids must be unique`, row.source, 'id');
      seen.set(c.record.id, row.source);
      const video = isAbsolute(c.record.video) ? c.record.video : relative(outDir, resolve(root, c.record.video)) || '.';
      const record = { ...c.record, video };
      // What is written is what docs/schema/ documents.
      const check = (c.kind === 'pair' ? PairRecord : SftRecord).safeParse(record);
      if (!check.success) throw new DataError(check.error.issues[0]!.message, row.source, check.error.issues[0]!.path.join('.'));
      records.push(record);
    }
  }
  if (rows === 0) throw new DataError('has no rows', { file: o.input });
  await mkdir(outDir, { recursive: true });
  await writeJsonl(o.output, records);
  return { rows, records: records.length, kind, output: o.output };
}
