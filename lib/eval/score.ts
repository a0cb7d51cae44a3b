// Scoring multiple-choice answers: the prompt a generating model reads, the letter in what it wrote (as lmms-eval's
// Video-MME task extracts it), the choice a log-likelihood ranking makes, and accuracy overall and per category.
import { normalizeAnswer, OPTION_LETTERS } from '../data/answers.js';
import { CHOICE_INSTRUCTION } from '../synthetic/records.js';

export { OPTION_LETTERS };

/**
 * The question, one lettered option a line, the instruction: the layout of the synthetic world's multiple-choice
 * prompts (lib/synthetic/records.ts formatChoices), so a model trained on them is asked the same way, for any
 * number of options (LongVideoBench has five).
 */
export function formatOptions(question: string, options: readonly string[]): string {
  return [question, ...options.map((o, i) => `${OPTION_LETTERS[i]}. ${o}`), CHOICE_INSTRUCTION].join('\n');
}

// What models put before the letter; lmms-eval's extract_characters_regex strips the same phrases.
const ANSWER_PREFIX = new RegExp(
  '^(?:' +
    ['the best answer is', 'the correct answer is', 'the answer is', 'the answer', 'the best option is',
      'the correct option is', 'best answer', 'best option', 'answer', 'option'].join('|') +
    ')(?![a-z])[\\s:]*',
  'i',
);

/** How a response was read: its letter, the text of one option, or neither. */
export interface ParsedChoice {
  /** 0-based option index, or null when the response names no option. */
  index: number | null;
  how: 'letter' | 'text' | 'unparsed';
}

function stripPrefixes(response: string): string {
  let s = response.trim();
  for (let before = ''; before !== s;) [before, s] = [s, s.replace(ANSWER_PREFIX, '')];
  return s;
}

const normalize = normalizeAnswer;

/**
 * The option a generated answer picks. After the usual lead-ins ("The best answer is", "Answer:") are stripped:
 * a letter standing alone ("B", "(B)", "B.", "B)", "B. text", "B: text"); else an option's own text, when exactly one
 * option's text is what the response says or contains; else a lone capital letter later on ("I pick C"); else
 * unparsed. "A red circle" is read as text, not as option A: a letter followed by a lower-case word is an article.
 */
export function parseChoice(response: string, options: readonly string[]): ParsedChoice {
  const letters = OPTION_LETTERS.slice(0, options.length);
  const s = stripPrefixes(response);
  const inRange = (letter: string | undefined) => (letter !== undefined && letters.includes(letter) ? letters.indexOf(letter) : null);

  const leading = inRange(/^[([]?([A-Z])(?:[.):\]]|\s*$)/.exec(s)?.[1]);
  if (leading !== null) return { index: leading, how: 'letter' };

  const said = normalize(s);
  const firstLine = normalize(s.split('\n')[0] ?? '');
  const texts = options.map(normalize);
  const exact = texts.flatMap((t, i) => (t && (t === said || t === firstLine) ? [i] : []));
  if (exact.length === 1) return { index: exact[0]!, how: 'text' };
  const contained = texts.flatMap((t, i) => (t && ` ${said} `.includes(` ${t} `) ? [i] : []));
  if (contained.length === 1) return { index: contained[0]!, how: 'text' };

  for (const m of s.matchAll(/(?:^|[\s([])([A-Z])(?=$|[\s.,:;)\]])(?!\s+[a-z])/g)) {
    const index = inRange(m[1]);
    if (index !== null) return { index, how: 'letter' };
  }
  return { index: null, how: 'unparsed' };
}

/** The highest score's index (the first on a tie, as numpy's argmax). */
export function argmax(scores: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return best;
}

export interface CategoryScore {
  accuracy: number;
  /** Length-normalised log-likelihood accuracy (method loglik). */
  acc_norm?: number;
  n: number;
}

/** What the aggregate needs of a sample. */
export interface Scored {
  category: Record<string, string>;
  correct: boolean;
  correctNorm?: boolean;
}

export interface Aggregate extends CategoryScore {
  /** Per `name=value`, e.g. `kind=localized`, in name then value order. */
  byCategory: Record<string, CategoryScore>;
}

function score(samples: readonly Scored[]): CategoryScore {
  const n = samples.length;
  const rate = (count: number) => (n ? count / n : 0);
  const out: CategoryScore = { accuracy: rate(samples.filter((s) => s.correct).length), n };
  if (samples.some((s) => s.correctNorm !== undefined)) out.acc_norm = rate(samples.filter((s) => s.correctNorm).length);
  return out;
}

/** Accuracy over all samples and over the samples of each category value. */
export function aggregate(samples: readonly Scored[]): Aggregate {
  const groups = new Map<string, Scored[]>();
  for (const s of samples) {
    for (const [name, value] of Object.entries(s.category)) {
      const key = `${name}=${value}`;
      const group = groups.get(key);
      if (group) group.push(s);
      else groups.set(key, [s]);
    }
  }
  const keys = [...groups.keys()].sort((a, b) => a.localeCompare(b));
  return { ...score(samples), byCategory: Object.fromEntries(keys.map((k) => [k, score(groups.get(k)!)])) };
}
