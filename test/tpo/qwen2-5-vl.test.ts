// Training on Qwen2.5-VL's architecture: the training savings (prefix sharing, batched pairs, one video encoding per
// pair) give the plain computation's loss and gradients on the transformers-made parity fixture under M-RoPE, where
// the text after the video sits where the video's grid puts it (its rope deltas), so a shared prefix, a batched
// pair and an encoded video must carry those positions; and setTrainable tells the tower, the merger (its
// projector) and the language model apart.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { FIXTURES } from '../helpers.js';
import { assertSavingsHold } from './savings.js';

const FIXTURE = join(FIXTURES, 'hf', 'qwen2_5_vl');
const GRADIENTS = ['model.layers.0.self_attn.q_proj.weight', 'visual.merger.mlp.0.weight', 'visual.merger.ln_q.weight',
  'model.embed_tokens.weight'];

describe('Qwen2.5-VL training', function () {
  this.timeout(300_000);

  it('setTrainable: the vision tower, the merger and the language model apart', async () => {
    using model = await VideoLM.load(FIXTURE);
    const weights = (await readSafetensors(join(FIXTURE, 'model.safetensors'))).tensors;
    const size = (keep: (key: string) => boolean) => Object.entries(weights).filter(([k]) => keep(k))
      .reduce((n, [, t]) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(model.setTrainable({ vision: true, lora: false }), size((k) => k.startsWith('visual.') && !k.startsWith('visual.merger.')));
    assert.equal(model.setTrainable({ projector: true, lora: false }), size((k) => k.startsWith('visual.merger.')));
    assert.equal(model.setTrainable({ language: true, lora: false }), size((k) => k.startsWith('model.') || k.startsWith('lm_head.')));
  });

  it('prefix sharing, batched pairs and encode-once give the unshared loss and gradients under M-RoPE', async () => {
    using policy = await VideoLM.load(FIXTURE);
    const inputs = (await readSafetensors(join(FIXTURE, 'inputs.safetensors'))).tensors;
    await assertSavingsHold(policy, inputs.frames!, GRADIENTS, 1e-6);
  });
});
