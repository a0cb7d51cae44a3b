// native/binding/: values that TypeScript's schemas would stop, given to the addon directly (as any caller of
// `native()` can): errors naming the argument, never a crash, a wrapped-around size or a value cast out of range.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { native } from '../../lib/native.js';
import { Optimizer, readSafetensors, tensor, VideoLM, writeSafetensors } from '../../lib/index.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

const QWEN2 = join(FIXTURES, 'hf', 'qwen2');
const ids = (...xs: number[]) => tensor(new BigInt64Array(xs.map(BigInt)));

describe('hostile arguments to the addon', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = tempDir('tpo-hostile-');
  });
  after(() => removeDir(dir));

  it('shapes whose element count overflows int64', () => {
    // A zero anywhere makes a shape empty: legal, or libtorch's own error when its strides overflow.
    using wide = native().tensorFromTypedArray(new Float32Array(0), [0, 2 ** 20, 2 ** 20]);
    assert.deepEqual(wide.shape, [0, 2 ** 20, 2 ** 20]);
    assert.throws(() => native().tensorFromTypedArray(new Float32Array(0), [0, 2 ** 40, 2 ** 40]), /Stride calculation overflowed/);
    // 2^32 * 2^32 wraps to 0 in int64 arithmetic: it must not pass for the 0 elements of an empty array.
    assert.throws(() => native().tensorFromTypedArray(new Float32Array(0), [2 ** 32, 2 ** 32]), { code: 'ERR_TPO_ARGUMENT', message: /more elements than int64 can count/ });
    using empty = tensor(new Float32Array(0), [0]);
    assert.throws(() => empty.reshape([2 ** 32, 2 ** 32]), { code: 'ERR_TPO_ARGUMENT', message: /more elements than int64 can count/ });
  });

  it('seeds, indices and counts that are not integers in range', async () => {
    using model = await VideoLM.load(QWEN2);
    for (const seed of [-1, 0.5, 2 ** 60, NaN])
      assert.throws(() => model.native.generate({ prompts: [ids(1, 2)], seed }), { code: 'ERR_TPO_ARGUMENT', message: /seed must/ }, `seed ${seed}`);
    assert.throws(() => model.native.generate({ prompts: [ids(1, 2)], topP: 0 }), /topP must be in \(0, 1\]/);
    assert.throws(() => model.native.generate({ prompts: [ids(1, 2)], stopIds: [1.5] }), /stopIds must be integers/);
    assert.throws(() => native().videoDecode('x.mp4', { kind: 'indices', indices: [NaN] }), /indices must be integers >= 0/);
    assert.throws(() => native().videoDecode('x.mp4', { kind: 'indices', indices: [Infinity] }), /indices must be integers >= 0/);
    assert.throws(() => model.native.videoTokenCount(-1), /frames must be an integer >= 0/);
  });

  it('training inputs that are not 1-D integer ids, and optimizer state that does not fit', async () => {
    using model = await VideoLM.load(QWEN2);
    model.addLora({ r: 2, seed: 1 });
    model.setTrainable({ lora: true });
    const optimizer = new Optimizer(model);
    const pair = { prompt: ids(1, 5, 9), chosen: ids(3, 4), rejected: ids(7) };
    assert.throws(() => optimizer.preferenceStep({ microBatches: [[{ ...pair, chosen: tensor(new Float32Array([3, 4])) }]], lr: 0.01 }),
      /pairs\[0\]\.chosen must be a 1-D tensor of integer token ids, got float32/);
    assert.throws(() => optimizer.preferenceStep({ microBatches: [[{ ...pair, prompt: ids(1, 5, 9, 2).reshape([2, 2]) }]], lr: 0.01 }),
      /pairs\[0\]\.prompt must be a 1-D tensor/);
    await optimizer.preferenceStep({ microBatches: [[pair]], lr: 0.01 });
    const state = join(dir, 'state.safetensors');
    await optimizer.saveState(state);
    const { tensors } = await readSafetensors(state);
    const key = Object.keys(tensors).find((k) => k.endsWith('.exp_avg_sq'))!;
    tensors[key] = tensor(new Float32Array(1));
    const bad = join(dir, 'bad-state.safetensors');
    await writeSafetensors(bad, tensors);
    await assert.rejects(optimizer.loadState(bad), new RegExp(`${key.replace(/\./g, '\\.')} is Float \\[1\\]; this model's parameter is`));
    // The state it had is intact: another step runs.
    await optimizer.preferenceStep({ microBatches: [[pair]], lr: 0.01 });
    assert.equal(optimizer.steps, 2);
  });
});
