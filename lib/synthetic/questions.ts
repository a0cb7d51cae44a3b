// Temporal questions about a timeline, with answers computed from its events, so correctness is exact.
// - localized (one event, named by attributes no other event shares): its colour, its shape, its motion, what
//   happened just before or just after it;
// - comprehensive (the whole video): how many events, how many of a colour, which of some events came first, the
//   first and the last event, the order of three events.
// Each question has an open form (a short answer) and a multiple-choice form: the right answer and three
// distractors from the same video where it has them (other colours, shapes and captions seen in it; counts near
// the right one; other orders of the same events). Letters are assigned later (dataset.ts), balanced.
import { caption } from './captions.js';
import { Random } from './random.js';
import {
  type Color, COLOR_NAMES, type Motion, MOTION_PHRASES, MOTIONS, MAX_NUMBER, type Shape, SHAPES,
} from './vocabulary.js';
import { frameTime, type Timeline, type TimelineEvent } from './world.js';

export const LOCALIZED_TYPES = ['color', 'shape', 'motion', 'before', 'after'] as const;
export const COMPREHENSIVE_TYPES = ['count', 'count-color', 'first-of', 'first', 'last', 'order'] as const;
export type LocalizedType = (typeof LOCALIZED_TYPES)[number];
export type ComprehensiveType = (typeof COMPREHENSIVE_TYPES)[number];
export type QuestionType = LocalizedType | ComprehensiveType;
export type QuestionKind = 'localized' | 'comprehensive';

export interface WorldQuestion {
  kind: QuestionKind;
  type: QuestionType;
  /** Open form. */
  question: string;
  answer: string;
  /** Multiple-choice form: its question (the open one, except for 'first-of', which lists its candidates as
   * options) and four distinct options, the right one first. */
  choiceQuestion: string;
  choices: [string, string, string, string];
  /** The events the question is about, as indices into the timeline's events. */
  events: number[];
  /** Seconds [start, end): the part of the video that holds the answer (TPO's segment for localized questions). */
  span: [number, number];
}

type Attribute = 'color' | 'shape' | 'motion';

/** Ways to name an event, shortest first. */
const FORMS: readonly (readonly Attribute[])[] = [
  ['shape'], ['color'], ['color', 'shape'], ['shape', 'motion'], ['color', 'motion'], ['color', 'shape', 'motion'],
];

const same = (a: Pick<TimelineEvent, Attribute>, b: Pick<TimelineEvent, Attribute>, form: readonly Attribute[]) => form.every((k) => a[k] === b[k]);

/** "the circle", "the red shape", "the red circle", "the circle that moves left", ... */
export function nounPhrase(event: Pick<TimelineEvent, Attribute>, form: readonly Attribute[]): string {
  const color = form.includes('color') ? `${event.color} ` : '';
  const noun = form.includes('shape') ? event.shape : 'shape';
  const motion = form.includes('motion') ? ` that ${MOTION_PHRASES[event.motion]}` : '';
  return `the ${color}${noun}${motion}`;
}

/** Ways of naming events[i] that fit no other event, leaving out `without` (the attribute asked about). */
function uniqueForms(events: readonly TimelineEvent[], i: number, without?: Attribute): (readonly Attribute[])[] {
  const event = events[i]!;
  return FORMS.filter((form) => !(without && form.includes(without)) && events.every((e, j) => j === i || !same(e, event, form)));
}

/** Up to `count` distinct strings: `preferred` first (in order), then `others` shuffled; never `answer`. */
function distractors(answer: string, preferred: readonly string[], others: readonly string[], random: Random, count = 3): string[] {
  const out: string[] = [];
  for (const s of [...preferred, ...random.shuffle(others)]) {
    if (out.length === count) break;
    if (s !== answer && !out.includes(s)) out.push(s);
  }
  return out;
}

function choices(answer: string, wrong: string[], what: string): [string, string, string, string] {
  if (wrong.length !== 3) throw new Error(`questions: ${what} has ${wrong.length} distractors, not 3`);
  return [answer, wrong[0]!, wrong[1]!, wrong[2]!];
}

/** A caption of no event in `events` (a distractor for a video with fewer than four distinct captions). */
function absentCaptions(events: readonly TimelineEvent[], random: Random, count: number): string[] {
  const present = new Set(events.map(caption));
  const out: string[] = [];
  while (out.length < count) {
    const text = caption({ color: random.pick(COLOR_NAMES), shape: random.pick(SHAPES), motion: random.pick(MOTIONS) });
    if (!present.has(text) && !out.includes(text)) out.push(text);
  }
  return out;
}

/** Numbers near `n` (n + 1, n - 1, n + 2, ...) within [min, MAX_NUMBER], as strings. */
function nearNumbers(n: number, min: number): string[] {
  const out: string[] = [];
  for (let d = 1; out.length < 3; d++) {
    for (const m of [n + d, n - d]) if (m >= min && m <= MAX_NUMBER && out.length < 3) out.push(String(m));
  }
  return out;
}

class Asker {
  readonly events: readonly TimelineEvent[];
  readonly captions: string[];
  readonly whole: [number, number];

  constructor(readonly timeline: Timeline, readonly random: Random) {
    this.events = timeline.events;
    this.captions = this.events.map(caption);
    this.whole = [0, frameTime(timeline.frames, timeline.fps)];
  }

  span(indices: number[]): [number, number] {
    const start = Math.min(...indices.map((i) => this.events[i]!.start));
    const end = Math.max(...indices.map((i) => this.events[i]!.end));
    return [frameTime(start, this.timeline.fps), frameTime(end, this.timeline.fps)];
  }

  /** A random event that can be named without `without`, and a name for it. */
  target(candidates: number[], without?: Attribute): { index: number; form: readonly Attribute[] } | undefined {
    const named = candidates
      .map((index) => ({ index, forms: uniqueForms(this.events, index, without) }))
      .filter((c) => c.forms.length);
    if (!named.length) return undefined;
    const { index, forms } = this.random.pick(named);
    return { index, form: this.random.pick(forms) };
  }

  /** Indices of events that some description names uniquely, with their shortest such description. */
  nameable(): { index: number; name: string }[] {
    return this.events.flatMap((e, index) => {
      const form = uniqueForms(this.events, index)[0];
      return form ? [{ index, name: nounPhrase(e, form) }] : [];
    });
  }

  localized(type: LocalizedType, question: string, answer: string, wrong: string[], events: number[]): WorldQuestion {
    return {
      kind: 'localized', type, question, answer, choiceQuestion: question, choices: choices(answer, wrong, type), events,
      span: this.span(events),
    };
  }

  comprehensive(type: ComprehensiveType, question: string, answer: string, wrong: string[], events: number[],
    choiceQuestion = question): WorldQuestion {
    return {
      kind: 'comprehensive', type, question, answer, choiceQuestion, choices: choices(answer, wrong, type), events,
      span: this.whole,
    };
  }

  all(): number[] {
    return this.events.map((_, i) => i);
  }

  // -------------------------------------------------------------------------------------------- localized

  color(): WorldQuestion | undefined {
    const t = this.target(this.all(), 'color');
    if (!t) return undefined;
    const answer: Color = this.events[t.index]!.color;
    const seen = this.random.shuffle(this.events.map((e) => e.color));
    return this.localized('color', `What color is ${nounPhrase(this.events[t.index]!, t.form)}?`, answer,
      distractors(answer, seen, COLOR_NAMES, this.random), [t.index]);
  }

  shape(): WorldQuestion | undefined {
    const t = this.target(this.all(), 'shape');
    if (!t) return undefined;
    const e = this.events[t.index]!;
    const answer: Shape = e.shape;
    const what = t.form.includes('motion') ? `${e.color} and ${MOTION_PHRASES[e.motion]}` : e.color;
    const seen = this.random.shuffle(this.events.map((x) => x.shape));
    return this.localized('shape', `Which shape is ${what}?`, answer, distractors(answer, seen, SHAPES, this.random),
      [t.index]);
  }

  motion(): WorldQuestion | undefined {
    const t = this.target(this.all(), 'motion');
    if (!t) return undefined;
    const answer = MOTION_PHRASES[this.events[t.index]!.motion];
    const seen = this.random.shuffle(this.events.map((x) => MOTION_PHRASES[x.motion]));
    const all = MOTIONS.map((m: Motion) => MOTION_PHRASES[m]);
    return this.localized('motion', `What does ${nounPhrase(this.events[t.index]!, t.form)} do?`, answer,
      distractors(answer, seen, all, this.random), [t.index]);
  }

  /** What happened just before (-1) or just after (+1) a named event: the neighbour's caption. */
  neighbour(type: 'before' | 'after'): WorldQuestion | undefined {
    const step = type === 'before' ? -1 : 1;
    const t = this.target(this.all().filter((i) => this.events[i + step] !== undefined));
    if (!t) return undefined;
    const other = t.index + step;
    const answer = this.captions[other]!;
    // The likeliest confusions: the event itself, its other neighbour, and the events two steps away.
    const near = [t.index, t.index - step, t.index + 2 * step, t.index - 2 * step]
      .filter((i) => i >= 0 && i < this.events.length)
      .map((i) => this.captions[i]!);
    const wrong = distractors(answer, near, this.captions, this.random);
    wrong.push(...absentCaptions(this.events, this.random, 3 - wrong.length));
    const name = nounPhrase(this.events[t.index]!, t.form);
    return this.localized(type, `What happens just ${type} ${name}?`, answer, wrong, [t.index, other].sort((a, b) => a - b));
  }

  // -------------------------------------------------------------------------------------------- comprehensive

  count(): WorldQuestion {
    const n = this.events.length;
    return this.comprehensive('count', 'How many shapes appear in the video?', String(n), nearNumbers(n, 1), this.all());
  }

  countColor(): WorldQuestion {
    const present = [...new Set(this.events.map((e) => e.color))];
    const absent = COLOR_NAMES.filter((c) => !present.includes(c));
    // Mostly a colour the video has; sometimes one it has not (answer 0).
    const color = absent.length && this.random.chance(0.2) ? this.random.pick(absent) : this.random.pick(present);
    const matching = this.all().filter((i) => this.events[i]!.color === color);
    return this.comprehensive('count-color', `How many ${color} shapes appear in the video?`, String(matching.length),
      nearNumbers(matching.length, 0), matching);
  }

  /** Which of four named events came first. The open form asks about two of them: the first and another. */
  firstOf(): WorldQuestion | undefined {
    const named = this.nameable();
    if (named.length < 2) return undefined;
    const picked = this.random.sample(named, 4).sort((a, b) => a.index - b.index);
    const first = picked[0]!;
    const other = this.random.pick(picked.slice(1));
    const pair = this.random.shuffle([first, other]);
    const wrong = picked.slice(1).map((p) => p.name);
    // Too few nameable events: names of events the video does not have (never first, but plausible).
    while (wrong.length < 3) {
      const form = this.random.pick(FORMS.filter((f) => f.length === 2));
      const fake = { color: this.random.pick(COLOR_NAMES), shape: this.random.pick(SHAPES), motion: this.random.pick(MOTIONS) };
      const name = nounPhrase(fake, form);
      if (!this.events.some((e) => same(e, fake, form)) && !wrong.includes(name)) wrong.push(name);
    }
    return this.comprehensive('first-of', `Which comes first, ${pair[0]!.name} or ${pair[1]!.name}?`, first.name, wrong,
      picked.map((p) => p.index), 'Which of these comes first?');
  }

  firstOrLast(type: 'first' | 'last'): WorldQuestion {
    const n = this.events.length;
    const i = type === 'first' ? 0 : n - 1;
    const answer = this.captions[i]!;
    const near = [type === 'first' ? n - 1 : 0, type === 'first' ? 1 : n - 2].filter((j) => j >= 0 && j < n);
    const wrong = distractors(answer, near.map((j) => this.captions[j]!), this.captions, this.random);
    wrong.push(...absentCaptions(this.events, this.random, 3 - wrong.length));
    return this.comprehensive(type, `What happens ${type} in the video?`, answer, wrong, [i]);
  }

  /** The order of three named events; the distractors are other orders of the same three. */
  order(): WorldQuestion | undefined {
    const named = this.nameable();
    if (named.length < 3) return undefined;
    const three = this.random.sample(named, 3);
    const [a, b, c] = three.map((t) => t.name) as [string, string, string];
    const sequence = (xs: { name: string }[]) => xs.map((x) => x.name).join(', then ');
    const sorted = [...three].sort((x, y) => x.index - y.index);
    const answer = sequence(sorted);
    const [p, q, r] = sorted;
    const orders = [[q!, p!, r!], [p!, r!, q!], [r!, q!, p!], [q!, r!, p!], [r!, p!, q!]].map(sequence);
    return this.comprehensive('order', `In what order do ${a}, ${b} and ${c} appear?`, answer,
      this.random.sample(orders, 3), sorted.map((x) => x.index));
  }
}

/** One question of each type the timeline allows (a timeline too plain for a type gets none of it). */
export function makeQuestions(timeline: Timeline, seed: number): WorldQuestion[] {
  if (!timeline.events.length) return [];
  const ask = new Asker(timeline, new Random(seed));
  const questions = [
    ask.color(), ask.shape(), ask.motion(), ask.neighbour('before'), ask.neighbour('after'),
    ask.count(), ask.countColor(), ask.firstOf(), ask.firstOrLast('first'), ask.firstOrLast('last'), ask.order(),
  ];
  return questions.filter((q): q is WorldQuestion => q !== undefined);
}
