// Training on VideoLLaMA3's architecture: the training savings (prefix sharing, batched pairs, one video encoding
// per pair) give the plain computation's loss and gradients on the transformers-made parity fixture, with the
// video's compressed tokens spliced at tpo's -200; and setTrainable tells its vision model and projector apart.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { FIXTURES } from '../helpers.js';
import { assertSavingsHold } from './savings.js';

const FIXTURE = join(FIXTURES, 'hf', 'video_llama3');
const GRADIENTS = ['model.layers.0.self_attn.q_proj.weight', 'model.projector.readout.0.weight', 'lm_head.weight'];

describe('VideoLLaMA3 training', function () {
  this.timeout(300_000);

  it('setTrainable: the vision model, the projector and the language model apart', async () => {
    using model = await VideoLM.load(FIXTURE);
    const weights = (await readSafetensors(join(FIXTURE, 'model.safetensors'))).tensors;
    const size = (prefix: string) => Object.entries(weights).filter(([k]) => k.startsWith(prefix))
      .reduce((n, [, t]) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(model.setTrainable({ vision: true, lora: false }), size('model.vision_model.'));
    assert.equal(model.setTrainable({ projector: true, lora: false }), size('model.projector.'));
    assert.equal(model.setTrainable({ language: true, lora: false }), size('model.language_model.') + size('lm_head.'));
  });

  it('prefix sharing, batched pairs and encode-once give the unshared loss and gradients', async () => {
    using policy = await VideoLM.load(FIXTURE);
    const inputs = (await readSafetensors(join(FIXTURE, 'inputs.safetensors'))).tensors;
    await assertSavingsHold(policy, inputs.frames!, GRADIENTS);
  });

  it('the same with its processor\'s time stamps before each frame\'s kept tokens (frame text)', async () => {
    using policy = await VideoLM.load(FIXTURE);
    const inputs = (await readSafetensors(join(FIXTURE, 'inputs.safetensors'))).tensors;
    const frames = inputs.frames!.shape[0]!;
    // the fixture's stand-ins: TIME (40) before each frame, COMMA (41) between frames
    policy.setFrameText(Array.from({ length: frames }, (_, f) => ({ before: f ? [41, 40] : [40] })));
    await assertSavingsHold(policy, inputs.frames!, GRADIENTS);
  });
});
