// Answers and options as people write them: one normaliser for comparing texts (judges, benchmark answers,
// parsed generations) and one rule for which option a benchmark's `answer` field names.

/** Option letters: a multiple-choice question has at most 26 options, A to Z. */
export const OPTION_LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
export const MAX_OPTIONS = OPTION_LETTERS.length;

/** Lower case, no special tokens, no punctuation, no articles, single spaces: "The Red circle." equals "red circle". */
export function normalizeAnswer(text: string): string {
  return text
    .toLowerCase()
    .replace(/<\|[^|]*\|>/g, ' ')
    .replace(/[^\p{L}\p{N}\s]/gu, ' ')
    .split(/\s+/)
    .filter((w) => w && !['a', 'an', 'the'].includes(w))
    .join(' ');
}

/** Which option an answer names, or why none can be told. */
export type OptionMatch = { index: number; how: 'index' | 'text' | 'letter' | 'normalized-text' } | { error: string };

// A letter alone or closed by a delimiter: "B", "(B)", "B.", "B)", "B:", "(B) text", "B. text", "B: text".
const DELIMITED_LETTER = /^\(?([A-Z])(?:\)|[.:)])?(?:\s+(.*))?$/s;

function indicesOf(texts: readonly string[], want: string): number[] {
  return texts.flatMap((t, i) => (t === want ? [i] : []));
}

/**
 * The option `answer` names: a 0-based index; an option's exact text; a letter ("B", "(B)", "B. text" whose text,
 * if given, is not another option's); an option's text after normalisation (case, punctuation, spacing, articles),
 * when exactly one option matches. `textOnly` (benchmarks whose answers are texts, as MLVU's) skips letters.
 * "A red circle" is read as text, never as option A: a letter followed by a plain word is an article.
 */
export function matchOption(answer: string | number, options: readonly string[], mode: { textOnly?: boolean } = {}): OptionMatch {
  const notOne = `'${answer}' is not one of the ${options.length} options`;
  if (typeof answer === 'number') {
    return Number.isInteger(answer) && answer >= 0 && answer < options.length ? { index: answer, how: 'index' }
      : { error: `${notOne} (a 0-based index is below ${options.length})` };
  }
  const said = answer.trim();
  const exact = indicesOf(options.map((o) => o.trim()), said);
  if (exact.length === 1) return { index: exact[0]!, how: 'text' };
  const normalized = options.map(normalizeAnswer);
  if (!mode.textOnly) {
    const letter = letterOf(said, options, normalized);
    if (letter) return letter;
  }
  const loose = normalizeAnswer(said) ? indicesOf(normalized, normalizeAnswer(said)) : [];
  if (loose.length === 1) return { index: loose[0]!, how: 'normalized-text' };
  if (loose.length > 1 || exact.length > 1) {
    const which = (loose.length > 1 ? loose : exact).map((i) => OPTION_LETTERS[i]).join(', ');
    return { error: `'${answer}' matches options ${which} alike: the options must differ` };
  }
  const listed = options.map((o, i) => `${OPTION_LETTERS[i]}. ${o}`).join(' | ');
  if (mode.textOnly) return { error: `'${answer}' is not the text of any of the ${options.length} options (compared without case, punctuation and spacing): ${listed}` };
  return { error: `${notOne} (a letter, a 0-based index, or an option's text, compared without case, punctuation and spacing): ${listed}` };
}

function letterOf(said: string, options: readonly string[], normalized: readonly string[]): OptionMatch | undefined {
  const m = DELIMITED_LETTER.exec(said);
  if (!m) return undefined;
  const index = OPTION_LETTERS.indexOf(m[1]!);
  const rest = m[2] ? normalizeAnswer(m[2]) : '';
  const delimited = said.length === 1 || /^\(?[A-Z](?:\)|[.:)])/.test(said);
  if (!delimited) {
    // "B text" without a delimiter is a letter only when the text is that option's.
    return index < options.length && rest && normalized[index] === rest ? { index, how: 'letter' } : undefined;
  }
  if (index >= options.length) return { error: `'${said}' is not one of the ${options.length} options (the letters run A to ${OPTION_LETTERS[options.length - 1]})` };
  if (rest && normalized[index] !== rest) {
    const other = normalized.indexOf(rest);
    if (other >= 0) return { error: `'${said}' names option ${OPTION_LETTERS[index]} but its text is option ${OPTION_LETTERS[other]}'s` };
  }
  return { index, how: 'letter' };
}
