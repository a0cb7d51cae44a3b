// The synthetic world's questions as dataset records (lib/data/records.ts reads them): SFT records
// `{id, video, prompt, answer}` in open and multiple-choice form, and benchmark items
// `{id, video, question, options, answer}`, each with its category (question kind, question type, video length
// bin) for per-category accuracy. Answer letters are balanced: every run of four multiple-choice questions puts
// the right answer once under each letter, in a seeded order.
import { IMAGE_PLACEHOLDER } from '../data/encode.js';
import { Random } from './random.js';
import type { WorldQuestion } from './questions.js';
import { LETTERS } from './vocabulary.js';

/** What the model is told after the options of a multiple-choice question. */
export const CHOICE_INSTRUCTION = 'Answer with the letter of the correct option.';

/** A multiple-choice question as the model reads it: the question, one option a line, the instruction. */
export function formatChoices(question: string, options: readonly string[]): string {
  return [question, ...options.map((o, i) => `${LETTERS[i]}. ${o}`), CHOICE_INSTRUCTION].join('\n');
}

/** Hands out answer positions 0..3, each once in every block of four, the blocks' orders from a seed. */
export class LetterSchedule {
  readonly #random: Random;
  #block: number[] = [];

  constructor(seed: number) {
    this.#random = new Random(seed);
  }

  next(): number {
    if (!this.#block.length) this.#block = this.#random.shuffle([0, 1, 2, 3]);
    return this.#block.pop()!;
  }
}

/** The options in lettered order with the right one at `position`, the distractors shuffled around it. */
export function placeAnswer(question: WorldQuestion, position: number, random: Random): { options: string[]; answer: string } {
  const [right, ...wrong] = question.choices;
  const options = random.shuffle(wrong);
  options.splice(position, 0, right);
  return { options, answer: LETTERS[position]! };
}

export interface VideoRef {
  id: string;
  /** The video file, relative to the dataset's folder. */
  video: string;
  length: string;
}

export interface SftRecord {
  id: string;
  video: string;
  prompt: string;
  answer: string;
  kind: string;
  type: string;
  form: 'open' | 'choice';
  length: string;
}

export interface BenchmarkRecord {
  id: string;
  video: string;
  question: string;
  options: string[];
  answer: string;
  kind: string;
  type: string;
  length: string;
  /** The open form and its answer, for generative evaluation of the same item. */
  open_question: string;
  open_answer: string;
  /** The events the question is about (indices into the annotation's events) and the seconds that answer it. */
  events: number[];
  span: [number, number];
}

/** One question as an open SFT record, a multiple-choice SFT record and a benchmark item (sharing one lettering). */
export function questionRecords(
  video: VideoRef, question: WorldQuestion, position: number, random: Random,
): { open: SftRecord; choice: SftRecord; benchmark: BenchmarkRecord } {
  const { options, answer } = placeAnswer(question, position, random);
  const id = `${video.id}-${question.type}`;
  const category = { kind: question.kind, type: question.type };
  return {
    open: {
      id, video: video.video, prompt: `${IMAGE_PLACEHOLDER}\n${question.question}`, answer: question.answer, ...category,
      form: 'open', length: video.length,
    },
    choice: {
      id: `${id}-choice`, video: video.video, prompt: `${IMAGE_PLACEHOLDER}\n${formatChoices(question.choiceQuestion, options)}`,
      answer, ...category, form: 'choice', length: video.length,
    },
    benchmark: {
      id, video: video.video, question: question.choiceQuestion, options, answer, ...category, length: video.length,
      open_question: question.question, open_answer: question.answer, events: question.events, span: question.span,
    },
  };
}
