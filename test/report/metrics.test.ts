// lib/report/metrics.ts: metrics.jsonl to curves, with a torn last line, eval/ keys, resumed steps and bad lines.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DataError } from '../../lib/data/errors.js';
import { readMetrics } from '../../lib/report/metrics.js';
import { removeDir, tempDir } from '../helpers.js';

describe('report/metrics: readMetrics', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  function write(lines: string[], tail = ''): string {
    const file = join(dir, 'metrics.jsonl');
    writeFileSync(file, lines.map((l) => l + '\n').join('') + tail);
    return file;
  }

  it('turns lines into [step, value] curves per metric, eval/ keys their own, ignoring a torn last line', async () => {
    const file = write([
      JSON.stringify({ step: 1, epoch: 0, loss: 0.69, lr: 1e-5, 'rewards/chosen': 0.1, 'rewards/rejected': -0.1, 'rewards/accuracies': 0.5, 'rewards/margins': 0.2, 'logps/chosen': -12 }),
      JSON.stringify({ step: 2, epoch: 0, loss: 0.6, lr: 1e-5, 'rewards/accuracies': 0.75 }),
      JSON.stringify({ step: 2, 'eval/loss': 0.65, 'eval/rewards/accuracies': 0.6 }),
      '',
    ], '{"step": 3, "loss": 0.5');
    const m = await readMetrics(file);
    assert.deepEqual(m['loss'], [[1, 0.69], [2, 0.6]]);
    assert.deepEqual(m['rewards/accuracies'], [[1, 0.5], [2, 0.75]]);
    assert.deepEqual(m['eval/loss'], [[2, 0.65]]);
    assert.deepEqual(m['eval/rewards/accuracies'], [[2, 0.6]]);
    assert.deepEqual(m['logps/chosen'], [[1, -12]]);
    assert.deepEqual(m['epoch'], [[1, 0], [2, 0]]);
    assert.equal(m['step'], undefined, 'step is the x axis, not a metric');
    assert.deepEqual(Object.keys(m).sort(), [
      'epoch', 'eval/loss', 'eval/rewards/accuracies', 'logps/chosen', 'loss', 'lr',
      'rewards/accuracies', 'rewards/chosen', 'rewards/margins', 'rewards/rejected',
    ]);
  });

  it('a torn last line that ends in a newline is ignored too', async () => {
    const m = await readMetrics(write([JSON.stringify({ step: 1, loss: 1 }), '{"step": 2, "lo']));
    assert.deepEqual(m, { loss: [[1, 1]] });
  });

  it('a bad line before the last throws a DataError naming it', async () => {
    const file = write([JSON.stringify({ step: 1, loss: 1 }), '{"step": 2, "lo', JSON.stringify({ step: 3, loss: 0.5 })]);
    await assert.rejects(readMetrics(file), (error: unknown) => {
      assert.ok(error instanceof DataError);
      assert.equal(error.line, 2);
      return true;
    });
  });

  it('sorts by step, keeps the later of repeated steps, and skips non-numbers and lines without a step', async () => {
    const m = await readMetrics(write([
      JSON.stringify({ step: 3, loss: 0.3 }),
      JSON.stringify({ step: 1, loss: 1, grad_norm: null, note: 'warmup', nested: { a: 1 } }),
      JSON.stringify({ step: 2, loss: 0.9 }),
      JSON.stringify({ step: 2, loss: 0.5 }),  // a resumed run redid step 2
      JSON.stringify({ loss: 123 }),
      JSON.stringify({ step: '4', loss: 123 }),
      JSON.stringify([1, 2]),
      '{"step": 4, "__proto__": 7}',
    ]));
    assert.deepEqual(m['loss'], [[1, 1], [2, 0.5], [3, 0.3]]);
    assert.equal(m['grad_norm'], undefined);
    assert.equal(m['note'], undefined);
    assert.equal(m['nested'], undefined);
    assert.ok(Object.hasOwn(m, '__proto__'), 'a metric named __proto__ is an own key');
    assert.equal(Object.getPrototypeOf(m), Object.prototype);
  });

  it('an empty file has no curves; a missing file throws', async () => {
    assert.deepEqual(await readMetrics(write([])), {});
    await assert.rejects(readMetrics(join(dir, 'missing.jsonl')), DataError);
  });
});
