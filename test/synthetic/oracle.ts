// An answer key written apart from lib/synthetic/questions.ts: it reads a question's text with its own grammar,
// finds the events it names among the video's events, and works the answer out from them. Questions and answers
// that agree with it are right for the reason the text gives, not because both sides share code.
import assert from 'node:assert/strict';

export interface OracleEvent {
  color: string;
  shape: string;
  motion: string;
  start: number;
}

const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'white', 'cyan'];
const SHAPES = ['circle', 'square', 'triangle', 'diamond', 'cross', 'ring'];
const PHRASES: Record<string, string> = {
  'stays still': 'still', 'moves left': 'left', 'moves right': 'right', 'moves up': 'up', 'moves down': 'down',
  grows: 'grow', shrinks: 'shrink', blinks: 'blink',
};
const PHRASE_OF = Object.fromEntries(Object.entries(PHRASES).map(([p, m]) => [m, p]));

const describe = (e: OracleEvent) => `${/^[aeiou]/.test(e.color) ? 'an' : 'a'} ${e.color} ${e.shape} ${PHRASE_OF[e.motion]}`;

/** The events a noun phrase fits: "the circle", "the red shape", "the red circle that moves left", ... */
function fits(phrase: string, events: readonly OracleEvent[]): number[] {
  const m = new RegExp(`^the (?:(${COLORS.join('|')}) )?(${[...SHAPES, 'shape'].join('|')})(?: that (.+))?$`).exec(phrase);
  assert.ok(m, `'${phrase}' is not a noun phrase of the world`);
  const [, color, noun, motionPhrase] = m;
  assert.ok(color || noun !== 'shape', `'${phrase}' names nothing`);
  const motion = motionPhrase === undefined ? undefined : PHRASES[motionPhrase];
  assert.ok(motionPhrase === undefined || motion, `'${motionPhrase}' is not a motion`);
  return events.flatMap((e, i) =>
    (!color || e.color === color) && (noun === 'shape' || e.shape === noun) && (!motion || e.motion === motion) ? [i] : []);
}

function theOne(phrase: string, events: readonly OracleEvent[]): OracleEvent {
  const found = fits(phrase, events);
  assert.equal(found.length, 1, `'${phrase}' fits ${found.length} events, not exactly one`);
  return events[found[0]!]!;
}

/** The answer to an open question about `events` (in time order). Throws when the question is not one it reads. */
export function answerOpen(question: string, events: readonly OracleEvent[]): string {
  let m: RegExpExecArray | null;
  if ((m = /^What color is (.+)\?$/.exec(question))) return theOne(m[1]!, events).color;
  if ((m = /^Which shape is (\w+)(?: and (.+))?\?$/.exec(question))) {
    const matching = events.filter((e) => e.color === m![1] && (m![2] === undefined || PHRASE_OF[e.motion] === m![2]));
    assert.equal(matching.length, 1, `'${question}' fits ${matching.length} events`);
    return matching[0]!.shape;
  }
  if ((m = /^What does (.+) do\?$/.exec(question))) return PHRASE_OF[theOne(m[1]!, events).motion]!;
  if ((m = /^What happens just (before|after) (.+)\?$/.exec(question))) {
    const i = events.indexOf(theOne(m[2]!, events)) + (m[1] === 'before' ? -1 : 1);
    assert.ok(events[i], `'${question}': there is nothing ${m[1]}`);
    return describe(events[i]!);
  }
  if (question === 'How many shapes appear in the video?') return String(events.length);
  if ((m = /^How many (\w+) shapes appear in the video\?$/.exec(question))) return String(events.filter((e) => e.color === m![1]).length);
  if ((m = /^Which comes first, (.+) or (.+)\?$/.exec(question))) {
    const [a, b] = [theOne(m[1]!, events), theOne(m[2]!, events)];
    assert.notEqual(a, b);
    return a.start < b.start ? m[1]! : m[2]!;
  }
  if ((m = /^What happens (first|last) in the video\?$/.exec(question))) {
    return describe(m[1] === 'first' ? events[0]! : events[events.length - 1]!);
  }
  if ((m = /^In what order do (.+), (.+) and (.+) appear\?$/.exec(question))) {
    const named = [m[1]!, m[2]!, m[3]!].map((p) => ({ p, e: theOne(p, events) }));
    return named.sort((x, y) => x.e.start - y.e.start).map((x) => x.p).join(', then ');
  }
  throw new Error(`the oracle cannot read '${question}'`);
}

/** The right option of a multiple-choice question (its index). Only 'Which of these comes first?' differs from
 * the open form: its options are the candidates, and some may name nothing in the video. */
export function answerChoice(question: string, options: readonly string[], events: readonly OracleEvent[]): number {
  if (question === 'Which of these comes first?') {
    const starts = options.map((o) => {
      const found = fits(o, events);
      assert.ok(found.length <= 1, `option '${o}' fits ${found.length} events`);
      return found.length ? events[found[0]!]!.start : Infinity;
    });
    const best = Math.min(...starts);
    assert.ok(Number.isFinite(best) && starts.filter((s) => s === best).length === 1);
    return starts.indexOf(best);
  }
  const right = answerOpen(question, events);
  const index = options.indexOf(right);
  assert.ok(index >= 0, `'${question}': the right answer '${right}' is not among ${JSON.stringify(options)}`);
  return index;
}
