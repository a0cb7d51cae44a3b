// lib/eval/score.ts: reading the chosen option from a generated answer, the multiple-choice prompt, accuracy per
// category.
import assert from 'node:assert/strict';

import { aggregate, argmax, formatOptions, parseChoice } from '../../lib/eval/score.js';
import { formatChoices } from '../../lib/synthetic/records.js';

const OPTIONS = ['a red diamond grows', 'a blue circle stays still', 'a cyan triangle moves left', 'a cyan triangle moves right'];

describe('multiple-choice scoring', () => {
  describe('parseChoice', () => {
    const cases: [string, number | null, 'letter' | 'text' | 'unparsed'][] = [
      ['B', 1, 'letter'],
      ['(B)', 1, 'letter'],
      ['B.', 1, 'letter'],
      ['B)', 1, 'letter'],
      ['  C. a cyan triangle moves left', 2, 'letter'],
      ['D: a cyan triangle moves right', 3, 'letter'],
      ['The best answer is: C', 2, 'letter'],
      ['The answer is (D).', 3, 'letter'],
      ['Answer: A', 0, 'letter'],
      ['Best option: (B', 1, 'letter'],
      ['Option C', 2, 'letter'],
      ['I pick D.', 3, 'letter'],
      // "A" as an article is the option's text, not option A.
      ['A blue circle stays still.', 1, 'text'],
      ['The cyan triangle moves right', 3, 'text'],
      ['It shows a red diamond grows at the start', 0, 'text'],
      // Two options' words (cyan triangle moves ...) but neither whole: nothing to go on.
      ['a cyan triangle moves', null, 'unparsed'],
      ['E', null, 'unparsed'],
      ['', null, 'unparsed'],
      ['purple purple 99', null, 'unparsed'],
    ];
    for (const [response, index, how] of cases) {
      it(`${JSON.stringify(response)} -> ${index === null ? 'unparsed' : 'ABCD'[index]} (${how})`, () => {
        assert.deepEqual(parseChoice(response, OPTIONS), { index, how });
      });
    }

    it('takes letters up to the number of options (five for LongVideoBench)', () => {
      const five = ['red', 'blue', 'cyan', 'purple', 'green'];
      assert.deepEqual(parseChoice('E', five), { index: 4, how: 'letter' });
      assert.deepEqual(parseChoice('E', five.slice(0, 4)), { index: null, how: 'unparsed' });
      assert.deepEqual(parseChoice('green', five), { index: 4, how: 'text' });
    });
  });

  it('formats options as the synthetic world writes its multiple-choice prompts, for any count', () => {
    assert.equal(formatOptions('What happens first?', OPTIONS), formatChoices('What happens first?', OPTIONS));
    const five = formatOptions('Q?', ['a', 'b', 'c', 'd', 'e']).split('\n');
    assert.deepEqual(five.slice(0, 6), ['Q?', 'A. a', 'B. b', 'C. c', 'D. d', 'E. e']);
  });

  it('argmax takes the first of equal scores', () => {
    assert.equal(argmax([-3, -1, -2]), 1);
    assert.equal(argmax([-1, -1]), 0);
  });

  it('aggregates accuracy overall and per category value, acc_norm only when scored', () => {
    const s = (kind: string, length: string, correct: boolean, correctNorm?: boolean) => ({
      category: { kind, length }, correct, ...(correctNorm === undefined ? {} : { correctNorm }),
    });
    const generated = aggregate([s('localized', 'long', true), s('localized', 'short', false), s('comprehensive', 'long', true), s('comprehensive', 'long', true)]);
    assert.deepEqual(generated, {
      accuracy: 0.75, n: 4,
      byCategory: {
        'kind=comprehensive': { accuracy: 1, n: 2 },
        'kind=localized': { accuracy: 0.5, n: 2 },
        'length=long': { accuracy: 1, n: 3 },
        'length=short': { accuracy: 0, n: 1 },
      },
    });
    const ranked = aggregate([s('localized', 'long', true, false), s('localized', 'long', false, false)]);
    assert.deepEqual(ranked, {
      accuracy: 0.5, acc_norm: 0, n: 2,
      byCategory: { 'kind=localized': { accuracy: 0.5, acc_norm: 0, n: 2 }, 'length=long': { accuracy: 0.5, acc_norm: 0, n: 2 } },
    });
  });
});
