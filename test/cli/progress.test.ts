// lib/cli/progress.ts: a line rewritten in place on a terminal, one final line anywhere else.
import assert from 'node:assert/strict';

import { formatDuration, ProgressBar } from '../../lib/cli/progress.js';

/** A stream that keeps what was written, and a clock the test moves. */
function fake(isTTY: boolean, columns?: number) {
  const writes: string[] = [];
  let ms = 0;
  return {
    writes,
    stream: { isTTY, ...(columns ? { columns } : {}), write: (text: string) => writes.push(text) },
    now: () => ms,
    advance: (by: number) => void (ms += by),
  };
}

describe('progress bar', () => {
  it('on a terminal redraws one line with done/total, percent, rate and time left', () => {
    const t = fake(true);
    const bar = new ProgressBar(10, { label: 'eval', unit: 'questions', stream: t.stream, now: t.now });
    t.advance(2000);
    bar.update(4);
    assert.deepEqual(t.writes, ['\reval [##########--------------] 4/10 40%  2.0 questions/s  ETA 3s\x1b[K']);
    t.advance(10);
    bar.tick(); // within the redraw interval: not drawn
    assert.equal(t.writes.length, 1);
    assert.equal(bar.done, 5);
    t.advance(1990);
    bar.tick(5); // the last one is always drawn
    assert.equal(t.writes.length, 2);
    assert.match(t.writes[1]!, /^\reval \[#{24}\] 10\/10 100%  2\.5 questions\/s  ETA 0s\x1b\[K$/);
    bar.finish();
    bar.finish();
    assert.deepEqual(t.writes.slice(2), ['\reval 10/10 questions in 4s (2.5 questions/s)\x1b[K\n']);
  });

  it('a resumed run starts at its step: the rate and ETA count only the steps this bar saw', () => {
    const t = fake(true);
    const bar = new ProgressBar(20, { label: 'train', unit: 'steps', stream: t.stream, now: t.now, initial: 10 });
    assert.equal(bar.done, 10);
    t.advance(4000);
    bar.update(12, 'loss 0.6931  acc 0.50');
    assert.deepEqual(t.writes, ['\rtrain [##############----------] 12/20 60%  2.0 s/step  ETA 16s  loss 0.6931  acc 0.50\x1b[K']);
    bar.finish();
    assert.equal(t.writes.at(-1), '\rtrain 12/20 steps in 4s (2.0 s/step), loss 0.6931  acc 0.50\x1b[K\n');
  });

  it('writes nothing but the final line when the stream is not a terminal', () => {
    const t = fake(false);
    const bar = new ProgressBar(3, { label: 'eval', unit: 'questions', stream: t.stream, now: t.now });
    for (let i = 1; i <= 3; i++) {
      t.advance(30_000);
      bar.update(i);
    }
    assert.deepEqual(t.writes, []);
    bar.finish();
    assert.deepEqual(t.writes, ['eval 3/3 questions in 1m30s (30.0 s/question)\n']);
  });

  it('clamps counts, fits a narrow terminal, and refuses a bad total', () => {
    const t = fake(true, 30);
    const bar = new ProgressBar(2, { stream: t.stream, now: t.now });
    bar.update(7);
    assert.equal(bar.done, 2);
    assert.equal(t.writes[0]!.replace('\x1b[K', '').length, 1 + 29);
    assert.throws(() => new ProgressBar(-1), /total must be a whole number/);
  });

  it('formats durations', () => {
    assert.deepEqual([formatDuration(5.2), formatDuration(75), formatDuration(3725), formatDuration(Infinity)], ['5s', '1m15s', '1h02m', '?']);
  });
});
