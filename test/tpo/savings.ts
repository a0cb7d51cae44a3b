// The training savings checked on any architecture: prefix sharing, batched pairs and one video encoding per pair
// must give the plain computation's loss and gradients (each architecture places its visual tokens its own way).
import assert from 'node:assert/strict';

import type { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { Optimizer } from '../../lib/train/optimizer.js';
import { preferenceForward } from '../../lib/train/preference.js';
import { assertClose } from '../model/parity.js';

const ids = (values: number[]) => tensor(BigInt64Array.from(values.map(BigInt)), [values.length]);

/**
 * Two pairs about `video` on `policy` (a LoRA added, projector and LM trainable); `gradients`: parameters to compare;
 * `gradientAtol`: the absolute tolerance of their elements (float32 rounding grows with the gradients' size).
 */
export async function assertSavingsHold(policy: VideoLM, video: Tensor, gradients: string[], gradientAtol = 1e-7): Promise<void> {
  policy.addLora({ r: 4, alpha: 8, seed: 3 });
  policy.setTrainable({ projector: true, language: true, lora: true });
  const pairs = [
    { prompt: ids([1, 10, 11, -200, 13, 14]), chosen: ids([30, 31, 2]), rejected: ids([33, 2]), video },
    { prompt: ids([1, 10, 11, -200, 15]), chosen: ids([34, 2]), rejected: ids([35, 36, 37, 2]), video },
  ];
  const options = { loss: { beta: 0.2, sftWeight: 1 }, referenceMode: 'lora-disabled', gradients } as const;
  const plain = await preferenceForward(policy, pairs, { ...options, sharePrefix: false });
  for (const name of gradients) assert.ok(plain.gradients[name], `a gradient for ${name}`);
  for (const variant of [{ sharePrefix: true }, { batchPairs: true }]) {
    const out = await preferenceForward(policy, pairs, { ...options, ...variant });
    const what = JSON.stringify(variant);
    assertClose(out.loss, plain.loss, `${what} loss`, 1e-6, 1e-5);
    for (const name of gradients) assertClose(out.gradients[name], plain.gradients[name]!, `${what} ${name}`, gradientAtol, 1e-4);
  }
  // One encoding per pair (both answers, policy and reference) or one per answer and model: the same step.
  const optimizer = new Optimizer(policy);
  const step = async (encodeOnce: boolean) =>
    (await optimizer.preferenceStep({ microBatches: [pairs], lr: 0, encodeOnce, loss: { beta: 0.2, sftWeight: 1 } })).metrics.loss!;
  const once = await step(true);
  const each = await step(false);
  assert.ok(Math.abs(once - each) <= 1e-6 * Math.max(1, Math.abs(each)), `${once} vs ${each}`);
}
