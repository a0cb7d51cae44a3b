// Training on InternVL's architecture: the training savings (prefix sharing, batched pairs, one video encoding per
// pair) give the plain computation's loss and gradients on the transformers-made parity fixture, with the video at
// tpo's -200 in InternVL's frame layout ("Frame1: <img>" ... "</img>" around each frame's tokens); and
// setTrainable tells its vision tower and projector apart.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { FIXTURES } from '../helpers.js';
import { INTERNVL_FIXTURE_FRAME_TEXT } from '../model/parity.js';
import { assertSavingsHold } from './savings.js';

const FIXTURE = join(FIXTURES, 'hf', 'internvl');
// (the fixture ties lm_head to the embeddings, which also embed the frame text)
const GRADIENTS = ['model.layers.0.self_attn.q_proj.weight', 'model.mm_projector.0.weight', 'model.mm_projector.layer_norm.weight',
  'model.embed_tokens.weight'];


describe('InternVL training', function () {
  this.timeout(300_000);

  it('setTrainable: the vision tower, the projector and the language model apart', async () => {
    using model = await VideoLM.load(FIXTURE);
    const weights = (await readSafetensors(join(FIXTURE, 'model.safetensors'))).tensors;
    const size = (prefix: string) => Object.entries(weights).filter(([k]) => k.startsWith(prefix))
      .reduce((n, [, t]) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(model.setTrainable({ vision: true, lora: false }), size('vision_tower.'));
    assert.equal(model.setTrainable({ projector: true, lora: false }), size('multi_modal_projector.'));
    assert.equal(model.setTrainable({ language: true, lora: false }), size('language_model.'));
  });

  it('prefix sharing, batched pairs and encode-once give the unshared loss and gradients (frame text around the frames)', async () => {
    using policy = await VideoLM.load(FIXTURE);
    policy.setFrameText(INTERNVL_FIXTURE_FRAME_TEXT);
    const inputs = (await readSafetensors(join(FIXTURE, 'inputs.safetensors'))).tensors;
    // 1e-6: this fixture's gradients reach 0.6-0.8 (VideoLLaMA3's 0.2-0.3); the shared and plain runs differ by
    // 1e-6 of the largest element in either (float32), which is above 1e-7 on elements near zero
    await assertSavingsHold(policy, inputs.pixel_values!, GRADIENTS, 1e-6);
  });
});
