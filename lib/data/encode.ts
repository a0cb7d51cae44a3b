// Model inputs for SFT records and preference pairs, in LLaVA's convention (LLaVA-Video, LongVA):
// - the question goes through the tokenizer's chat template with a generation prompt, `<image>` in the user turn;
// - the text on each side of `<image>` is tokenized on its own and the placeholder becomes the single id -200
//   (IMAGE_TOKEN_INDEX), which the model later replaces with every visual token of the video;
// - the answer is tokenized apart from the prompt, followed by the template's end-of-turn token (`<|im_end|>` for
//   Qwen2); labels are -100 on the prompt and the answer's ids on the answer, end-of-turn included.
// Chosen and rejected answers share the prompt ids exactly, so the model can run the prompt once for both.
import { z } from 'zod';

import type { ChatMessage, Tokenizer } from '../model/tokenizer.js';
import { parse } from '../validate.js';
import { DataError, type RecordSource } from './errors.js';

/** LLaVA's IMAGE_TOKEN_INDEX: the id that stands for the video's visual tokens in input_ids. */
export const IMAGE_TOKEN_INDEX = -200;
/** The label of a position that does not count in the loss (PyTorch's cross-entropy ignore_index). */
export const IGNORE_INDEX = -100;
/** Where the video goes in a question. */
export const IMAGE_PLACEHOLDER = '<image>';

const Options = z.strictObject({
  /** A system message; without one the template's default applies (Qwen2: "You are a helpful assistant."). */
  system: z.string().optional(),
  /** A template name or string instead of the tokenizer's chat template. */
  chatTemplate: z.string().optional(),
  /** The longest sequence the model may see, counting `visualTokens` for the image. No limit when unset. */
  maxLength: z.int().positive().optional(),
  /** How many embeddings replace the image id (frames × tokens per frame); counts against `maxLength`. */
  visualTokens: z.int().nonnegative().default(0),
  /** Truncation keeps at least this many tokens of each answer (or all of a shorter one). */
  minAnswerTokens: z.int().positive().default(16),
  /** Which end of the question text survives when it must be shortened: 'end' keeps what is nearest the
   * answer (TRL's keep_end), 'start' keeps what follows the image. */
  keepQuestion: z.enum(['end', 'start']).default('end'),
});
export type InputOptions = z.input<typeof Options>;
type Resolved = z.output<typeof Options>;

/** One part of a sequence that truncation removed, and its text. */
export interface DroppedSpan {
  part: 'question' | 'answer' | 'chosen' | 'rejected';
  /** The question loses its start (keepQuestion 'end') or its end; an answer always loses its end. */
  side: 'start' | 'end';
  tokens: number;
  /** The part's length before truncation. */
  of: number;
  text: string;
}

export interface Truncation {
  maxLength: number;
  visualTokens: number;
  /** The longest sequence (prompt + visual tokens + longest answer) before and after. */
  lengthBefore: number;
  lengthAfter: number;
  dropped: DroppedSpan[];
  /** One line saying what was dropped, for logs. */
  summary: string;
}

export interface SftInputs {
  /** The prompt's ids, then the answer's; IMAGE_TOKEN_INDEX at `imageIndex`. */
  inputIds: Int32Array;
  /** IGNORE_INDEX over the prompt, the answer's ids over the answer. */
  labels: Int32Array;
  promptLength: number;
  imageIndex: number;
  /** The sequence length the model sees: `inputIds.length - 1 + visualTokens`. */
  length: number;
  truncation: Truncation | null;
}

export interface PairInputs {
  /** Shared by both answers; IMAGE_TOKEN_INDEX at `imageIndex`. */
  promptIds: Int32Array;
  /** Each answer's ids with the end-of-turn token (unless truncation cut the answer's end). */
  chosenIds: Int32Array;
  rejectedIds: Int32Array;
  imageIndex: number;
  truncation: Truncation | null;
}

interface Prompt {
  ids: number[];
  imageIndex: number;
  /** The question text's tokens after the image (and after a marker the model writes there, Tokenizer.setVideoMarkup):
   * [questionStart, questionEnd). Only these may be dropped. */
  questionStart: number;
  questionEnd: number;
}

/** The user turn's content: the question with `<image>` once (put first, joined by `separator`: LLaVA's newline, when absent). */
function userContent(question: string, separator: string, source?: RecordSource): string {
  const count = question.split(IMAGE_PLACEHOLDER).length - 1;
  if (count > 1) {
    throw new DataError(`has ${count} ${IMAGE_PLACEHOLDER} placeholders; a record has one video`, source, 'prompt');
  }
  return count === 1 ? question : `${IMAGE_PLACEHOLDER}${separator}${question}`;
}

function encodeText(tokenizer: Tokenizer, text: string): number[] {
  return tokenizer.encode(text, { addSpecialTokens: false });
}

function endsWith(ids: readonly number[], tail: readonly number[]): boolean {
  return tail.length <= ids.length && tail.every((id, i) => ids[ids.length - tail.length + i] === id);
}

function encodePromptParts(tokenizer: Tokenizer, question: string, o: Resolved, source?: RecordSource): Prompt {
  const markup = tokenizer.videoMarkup;
  const content = userContent(question, markup.separator, source);
  const messages: ChatMessage[] = [
    ...(o.system !== undefined ? [{ role: 'system', content: o.system }] : []),
    { role: 'user', content },
  ];
  const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, chatTemplate: o.chatTemplate });
  const pieces = text.split(IMAGE_PLACEHOLDER);
  if (pieces.length !== 2) {
    const n = pieces.length - 1;
    throw new DataError(`the rendered prompt has ${n} ${IMAGE_PLACEHOLDER} placeholders, not 1`, source, 'prompt');
  }
  const [before, after] = pieces as [string, string];
  const beforeIds = encodeText(tokenizer, before);
  const afterIds = encodeText(tokenizer, after);
  // The model's markers around the video where the template wrote none (Qwen2.5-VL's <|vision_start|> ...)
  const marked = before.endsWith(markup.before) && after.startsWith(markup.after);
  const markerBefore = marked ? [] : encodeText(tokenizer, markup.before);
  const markerAfter = marked ? [] : encodeText(tokenizer, markup.after);
  // The question's own tokens are those of `after` up to the template's tail ("<|im_end|>\n<|im_start|>assistant\n").
  // They are known exactly when the template wrote the text verbatim and the tail tokenizes the same on its own;
  // otherwise nothing of the question may be dropped.
  const userAfter = content.slice(content.indexOf(IMAGE_PLACEHOLDER) + IMAGE_PLACEHOLDER.length);
  let questionLength = 0;
  if (after.startsWith(userAfter)) {
    const tailIds = encodeText(tokenizer, after.slice(userAfter.length));
    if (endsWith(afterIds, tailIds)) questionLength = afterIds.length - tailIds.length;
  }
  const imageIndex = beforeIds.length + markerBefore.length;
  const questionStart = imageIndex + 1 + markerAfter.length;
  return {
    ids: [...beforeIds, ...markerBefore, IMAGE_TOKEN_INDEX, ...markerAfter, ...afterIds],
    imageIndex,
    questionStart,
    questionEnd: questionStart + questionLength,
  };
}

// The text a template writes after an assistant answer, up to and including its end-of-turn token, found once per
// tokenizer and template by rendering a probe answer: "<|im_end|>" for Qwen2 (its trailing "\n" belongs to the
// next turn). A template that writes no special token there gets the EOS token, as TRL appends it.
const endOfTurnCache = new WeakMap<Tokenizer, Map<string, string>>();
const PROBE = '\u0000tpo-answer\u0000';

function endOfTurn(tokenizer: Tokenizer, chatTemplate: string | undefined): string {
  const cache = endOfTurnCache.get(tokenizer) ?? new Map<string, string>();
  endOfTurnCache.set(tokenizer, cache);
  const key = chatTemplate ?? '';
  const cached = cache.get(key);
  if (cached !== undefined) return cached;

  const user: ChatMessage[] = [{ role: 'user', content: 'q' }];
  const prompt = tokenizer.applyChatTemplate(user, { addGenerationPrompt: true, chatTemplate });
  const full = tokenizer.applyChatTemplate([...user, { role: 'assistant', content: PROBE }], { chatTemplate });
  if (!full.startsWith(prompt + PROBE)) {
    throw Object.assign(
      new Error(
        'encode: the chat template does not render an answer right after its generation prompt, ' +
          'so prompt and answer cannot be split',
      ),
      { code: 'ERR_TPO_ARGUMENT' },
    );
  }
  const suffix = full.slice(prompt.length + PROBE.length);
  const specials = [...tokenizer.specialIds].map((id) => tokenizer.idToToken(id)).filter((t) => t !== undefined);
  const ends = specials.map((t) => [suffix.indexOf(t), t] as const).filter(([at]) => at >= 0).sort((a, b) => a[0] - b[0]);
  const found = ends[0];
  const result = found ? suffix.slice(0, found[0] + found[1].length) : suffix.trimEnd() + (tokenizer.eos?.token ?? '');
  cache.set(key, result);
  return result;
}

function encodeAnswer(tokenizer: Tokenizer, answer: string, o: Resolved): number[] {
  return encodeText(tokenizer, answer + endOfTurn(tokenizer, o.chatTemplate));
}

interface Plan {
  questionCut: number;
  answerKeep: number[];
}

/** How much to drop so prompt + visual tokens + the longest answer fit: answers' ends first, then question text. */
function planTruncation(prompt: Prompt, answers: number[][], o: Resolved, source?: RecordSource): Plan | null {
  const promptLength = prompt.ids.length - 1 + o.visualTokens;
  const lengths = answers.map((a) => a.length);
  const longest = Math.max(...lengths);
  if (o.maxLength === undefined || promptLength + longest <= o.maxLength) return null;
  const floors = lengths.map((n) => Math.min(n, o.minAnswerTokens));
  const budget = o.maxLength - promptLength;
  if (budget >= Math.max(...floors)) return { questionCut: 0, answerKeep: lengths.map((n) => Math.min(n, budget)) };
  const need = promptLength + Math.max(...floors) - o.maxLength;
  const questionLength = prompt.questionEnd - prompt.questionStart;
  if (need > questionLength) {
    const fixed = promptLength - questionLength + Math.max(...floors);
    throw new DataError(
      `cannot fit in maxLength ${o.maxLength}: what truncation keeps (the template, any text before the image, ` +
        `${o.visualTokens} visual tokens, the first ${Math.max(...floors)} answer tokens) takes ${fixed}`,
      source,
    );
  }
  return { questionCut: need, answerKeep: floors };
}

function applyPlan(
  tokenizer: Tokenizer, prompt: Prompt, answers: number[][], names: DroppedSpan['part'][], plan: Plan, o: Resolved,
): { prompt: Prompt; answers: number[][]; truncation: Truncation } {
  const dropped: DroppedSpan[] = [];
  let ids = prompt.ids;
  if (plan.questionCut > 0) {
    const start = o.keepQuestion === 'end' ? prompt.questionStart : prompt.questionEnd - plan.questionCut;
    const removed = ids.slice(start, start + plan.questionCut);
    ids = [...ids.slice(0, start), ...ids.slice(start + plan.questionCut)];
    dropped.push({
      part: 'question', side: o.keepQuestion === 'end' ? 'start' : 'end', tokens: removed.length,
      of: prompt.questionEnd - prompt.questionStart, text: tokenizer.decode(removed),
    });
  }
  const kept = answers.map((a, i) => {
    const keep = plan.answerKeep[i]!;
    if (keep < a.length) {
      const text = tokenizer.decode(a.slice(keep));
      dropped.push({ part: names[i]!, side: 'end', tokens: a.length - keep, of: a.length, text });
    }
    return a.slice(0, keep);
  });
  const length = (p: number[], as: number[][]) => p.length - 1 + o.visualTokens + Math.max(...as.map((a) => a.length));
  const summary = 'dropped ' + dropped
    .map((d) => `${d.side === 'start' ? 'the first' : 'the last'} ${d.tokens} of ${d.of} ${d.part} tokens`)
    .join(', ');
  return {
    prompt: { ids, imageIndex: prompt.imageIndex, questionStart: prompt.questionStart, questionEnd: prompt.questionEnd - plan.questionCut },
    answers: kept,
    truncation: {
      maxLength: o.maxLength!, visualTokens: o.visualTokens, lengthBefore: length(prompt.ids, answers),
      lengthAfter: length(ids, kept), dropped, summary,
    },
  };
}

function build(
  tokenizer: Tokenizer, question: string, answerTexts: string[], names: DroppedSpan['part'][], o: Resolved,
  source?: RecordSource,
) {
  const prompt = encodePromptParts(tokenizer, question, o, source);
  const answers = answerTexts.map((a) => encodeAnswer(tokenizer, a, o));
  const plan = planTruncation(prompt, answers, o, source);
  if (!plan) return { prompt, answers, truncation: null };
  return applyPlan(tokenizer, prompt, answers, names, plan, o);
}

/** The prompt ids alone (for generation): chat template with a generation prompt, -200 for the image. */
export function encodePrompt(
  tokenizer: Tokenizer,
  question: string,
  options: Omit<InputOptions, 'maxLength' | 'minAnswerTokens' | 'keepQuestion'> = {},
): { ids: Int32Array; imageIndex: number } {
  const o = parse(Options, options, 'encodePrompt: options');
  const prompt = encodePromptParts(tokenizer, question, o);
  return { ids: Int32Array.from(prompt.ids), imageIndex: prompt.imageIndex };
}

/** Input ids and labels for supervised fine-tuning on one answer. */
export function encodeSft(
  tokenizer: Tokenizer, record: { prompt: string; answer: string; source?: RecordSource }, options: InputOptions = {},
): SftInputs {
  const o = parse(Options, options, 'encodeSft: options');
  const { prompt, answers, truncation } = build(tokenizer, record.prompt, [record.answer], ['answer'], o, record.source);
  const answer = answers[0]!;
  const inputIds = new Int32Array(prompt.ids.length + answer.length);
  inputIds.set(prompt.ids);
  inputIds.set(answer, prompt.ids.length);
  const labels = new Int32Array(inputIds.length).fill(IGNORE_INDEX);
  labels.set(answer, prompt.ids.length);
  return {
    inputIds, labels, promptLength: prompt.ids.length, imageIndex: prompt.imageIndex,
    length: inputIds.length - 1 + o.visualTokens, truncation,
  };
}

/** Shared prompt ids and the two answers' ids of a preference pair, truncated together. */
export function encodePair(
  tokenizer: Tokenizer, record: { prompt: string; chosen: string; rejected: string; source?: RecordSource },
  options: InputOptions = {},
): PairInputs {
  const o = parse(Options, options, 'encodePair: options');
  const { prompt, answers, truncation } = build(
    tokenizer, record.prompt, [record.chosen, record.rejected], ['chosen', 'rejected'], o, record.source,
  );
  return {
    promptIds: Int32Array.from(prompt.ids),
    chosenIds: Int32Array.from(answers[0]!),
    rejectedIds: Int32Array.from(answers[1]!),
    imageIndex: prompt.imageIndex,
    truncation,
  };
}

/** One side of a pair as a full sequence: input ids and labels (IGNORE_INDEX over the prompt). */
export function pairSequence(pair: PairInputs, side: 'chosen' | 'rejected'): { inputIds: Int32Array; labels: Int32Array } {
  const answer = side === 'chosen' ? pair.chosenIds : pair.rejectedIds;
  const inputIds = new Int32Array(pair.promptIds.length + answer.length);
  inputIds.set(pair.promptIds);
  inputIds.set(answer, pair.promptIds.length);
  const labels = new Int32Array(inputIds.length).fill(IGNORE_INDEX);
  labels.set(answer, pair.promptIds.length);
  return { inputIds, labels };
}
