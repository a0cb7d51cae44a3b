// lib/tpo/judge.ts: the synthetic judge keeps and drops the right pairs, and says why.
import assert from 'node:assert/strict';

import { answerMatches, judgeSynthetic, normalizeAnswer } from '../../lib/tpo/judge.js';

describe('the synthetic judge', () => {
  it('compares answers after normalisation', () => {
    assert.equal(normalizeAnswer('The Red circle.<|im_end|>'), 'red circle');
    assert.ok(answerMatches('a red circle', 'red circle'));
    assert.ok(answerMatches('cyan\nbecause it is', 'cyan'));
    assert.ok(!answerMatches('purple', 'cyan'));
    assert.ok(!answerMatches('', 'cyan'));
  });

  it('keeps a right preferred answer over a wrong one', () => {
    assert.deepEqual(judgeSynthetic('cyan', 'Cyan.', 'purple'), { keep: true, preferredCorrect: true, dispreferredCorrect: false });
  });

  it('drops, with the reason: a wrong preferred answer, two right answers, the same answer, an empty one', () => {
    assert.equal(judgeSynthetic('cyan', 'purple', 'red').reason, 'preferred-wrong');
    assert.equal(judgeSynthetic('cyan', 'cyan', 'the cyan').reason, 'same-answers');
    assert.equal(judgeSynthetic('cyan', 'cyan', 'cyan\nit is cyan').reason, 'dispreferred-also-right');
    assert.equal(judgeSynthetic('8', '8', 'eight').reason, undefined);
    assert.equal(judgeSynthetic('cyan', 'cyan', 'cyan!').reason, 'same-answers');
    assert.equal(judgeSynthetic('cyan', '', 'red').reason, 'empty-answer');
    assert.equal(judgeSynthetic('moves left', 'moves left', 'moves left slowly').reason, undefined);
  });
});
