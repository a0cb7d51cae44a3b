// lib/train/tensorboard.ts: TFRecord framing with masked CRC32C, tensorflow.Event protos, read back by TensorBoard's
// own EventAccumulator (skipped, saying why, when the bench venv with tensorboard is absent).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';

import { crc32c, maskedCrc32c, TensorBoardWriter, tensorboardTag, tfRecord } from '../../lib/train/tensorboard.js';
import { removeDir, tempDir } from '../helpers.js';
import { readScalars, tensorboardUnavailable } from './tensorboard-reader.js';

describe('TensorBoard event files', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('CRC-32C and TFRecord framing', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);  // the Castagnoli check value
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);       // RFC 3720's 32 zero bytes
    const record = tfRecord(Buffer.from('abc'));
    assert.equal(record.length, 8 + 4 + 3 + 4);
    assert.equal(record.readBigUInt64LE(0), 3n);
    assert.equal(record.readUInt32LE(8), maskedCrc32c(record.subarray(0, 8)));
    assert.equal(record.readUInt32LE(15), maskedCrc32c(Buffer.from('abc')));
  });

  it("tags are the Hugging Face Trainer's names for TRL's metrics", () => {
    assert.deepEqual(['loss', 'rewards/accuracies', 'lr', 'grad_norm', 'eval/loss', 'eval_rewards/margins'].map(tensorboardTag),
      ['train/loss', 'train/rewards/accuracies', 'train/learning_rate', 'train/grad_norm', 'eval/loss', 'eval/rewards/margins']);
  });

  it("TensorBoard's EventAccumulator reads the scalars back; a resumed run replaces what followed its step", async function () {
    const why = tensorboardUnavailable();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const first = await TensorBoardWriter.open(dir);
    for (let step = 1; step <= 5; step++) await first.scalars(step, { loss: 1 / step, 'rewards/accuracies': step / 10, lr: 1e-5, bad: Number.NaN });
    await first.scalars(5, { 'eval/loss': 0.75 });
    await first.close();
    assert.deepEqual(readScalars(dir), {
      'train/loss': [1, 2, 3, 4, 5].map((s) => [s, Math.fround(1 / s)]),
      'train/rewards/accuracies': [1, 2, 3, 4, 5].map((s) => [s, Math.fround(s / 10)]),
      'train/learning_rate': [1, 2, 3, 4, 5].map((s) => [s, Math.fround(1e-5)]),
      'eval/loss': [[5, 0.75]],
    });
    // Killed after step 5, resumed from the checkpoint at step 3: steps 4 and 5 are logged anew.
    const resumed = await TensorBoardWriter.open(dir, { resumeStep: 3 });
    for (let step = 4; step <= 6; step++) await resumed.scalars(step, { loss: 10 * step });
    await resumed.close();
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('events.out.tfevents.')).length, 2);
    assert.deepEqual(readScalars(dir)['train/loss'], [[1, 1], [2, 0.5], [3, Math.fround(1 / 3)], [4, 40], [5, 50], [6, 60]]);
    // A fresh run in the folder starts a clean set.
    (await TensorBoardWriter.open(dir)).close();
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('events.out.tfevents.')).length, 1);
    assert.ok(readFileSync(`${dir}/${readdirSync(dir)[0]}`).includes('brain.Event:2'));
  });
});
