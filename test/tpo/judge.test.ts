// lib/tpo/judge.ts: the synthetic and graded judges keep and drop the right pairs, and say why.
import assert from 'node:assert/strict';

import { answerMatches, closeness, judgeGraded, judgeSynthetic, normalizeAnswer } from '../../lib/tpo/judge.js';

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

describe('the graded judge (closer to the truth, as an LLM judge keeps the better answer)', () => {
  it('grades counts by distance, captions by their right parts, orders by the pairs in place', () => {
    assert.equal(closeness('count', '10', '9'), -1);
    assert.equal(closeness('count-color', '0', '3'), -3);
    assert.equal(closeness('count', '10', 'red'), undefined);
    assert.equal(closeness('after', 'a red circle moves left', 'A red square moves left.'), 2);
    assert.equal(closeness('first', 'a red circle moves left', 'a blue square blinks'), 0);
    assert.equal(closeness('order', 'the circle, then the red shape, then the ring', 'the circle, then the ring, then the red shape'), 2);
    assert.equal(closeness('order', 'the circle, then the red shape, then the ring', 'the ring, then the red shape, then the circle'), 0);
    assert.equal(closeness('order', 'the circle, then the red shape, then the ring', 'the circle, then the circle'), undefined);
    assert.equal(closeness('color', 'cyan', 'Cyan'), 1);
    assert.equal(closeness('color', 'cyan', 'red'), 0);
  });

  it('keeps a nearer wrong answer, drops a preferred answer that is no closer or has nothing right', () => {
    assert.deepEqual(judgeGraded('count', '10', '9', '5'), { keep: true, preferredCorrect: false, dispreferredCorrect: false });
    assert.equal(judgeGraded('count', '10', '5', '9').reason, 'not-better');
    assert.equal(judgeGraded('count', '10', '11', '9').reason, 'not-better');
    assert.equal(judgeGraded('count', '10', '10', '10').reason, 'same-answers');
    assert.equal(judgeGraded('after', 'a red circle moves left', 'a red square moves up', 'a blue ring blinks').keep, true);
    assert.equal(judgeGraded('color', 'cyan', 'red', 'blue').reason, 'preferred-wrong');
    assert.equal(judgeGraded('color', 'cyan', 'cyan', 'blue').keep, true);
    assert.equal(judgeGraded('order', 'the circle, then the ring, then the square', 'the circle, then the square, then the ring',
      'the square, then the ring, then the circle').keep, true);
  });
});
