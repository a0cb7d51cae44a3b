// The whole pipeline on Video-LLaVA's architecture (LLaVA-Hound): the synthetic world's tiny video_llava model
// through `tpo generate`, `tpo train` (TPO with LoRA) and `tpo eval`, in Video-LLaVA's prompt format; and the
// training savings (prefix sharing, batched pairs, one video encoding per pair) giving the plain computation's
// loss and gradients on the transformers-made parity fixture.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { ModelSession } from '../../lib/model/session.js';
import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';
import { runPipeline, writeWorld } from './pipeline.js';
import { assertSavingsHold } from './savings.js';

const FIXTURE = join(FIXTURES, 'hf', 'video_llava');
const GRADIENTS = ['model.layers.0.self_attn.q_proj.weight', 'model.mm_projector.0.weight', 'lm_head.weight'];

describe('Video-LLaVA through the pipeline', function () {
  this.timeout(300_000);

  it('prefix sharing, batched pairs and encode-once give the unshared loss and gradients', async () => {
    using policy = await VideoLM.load(FIXTURE);
    const inputs = (await readSafetensors(join(FIXTURE, 'inputs.safetensors'))).tensors;
    await assertSavingsHold(policy, inputs.pixel_values!, GRADIENTS);
  });

  it('`tpo generate`, `tpo train` and `tpo eval` on the synthetic world\'s tiny Video-LLaVA, in its prompt format', async () => {
    const dir = tempDir('tpo-video-llava-');
    try {
      const modelDir = await writeWorld(dir, 'video-llava');
      {
        // Video-LLaVA's conversation: "<s>USER: <video>\n{question} ASSISTANT:", the video at one -200.
        using session = await ModelSession.open(modelDir);
        assert.equal(session.model.info.architecture, 'VideoLlavaForConditionalGeneration');
        assert.equal(session.model.videoTokenCount(8), 8 * 17);
        using prompt = session.prompt('<image>\nwhat is first ?');
        const promptIds = Array.from(prompt.toTypedArray() as Int32Array);
        const at = promptIds.indexOf(-200);
        assert.equal(session.tokenizer.decode(promptIds.slice(0, at)), '<s>USER: ');
        assert.equal(session.tokenizer.decode(promptIds.slice(at + 1)), '\nwhat is first ? ASSISTANT:');
        assert.ok(session.stopIds.includes(session.tokenizer.tokenToId('</s>')!));
      }
      const { pairs, results } = await runPipeline(dir, modelDir);
      // Video-LLaVA's 8 frames when the run does not say (the model's default), 2 of them for the sparse side
      const comprehensive = pairs.filter((q: { kind: string }) => q.kind === 'comprehensive');
      assert.ok(comprehensive.length > 0);
      for (const p of comprehensive) assert.deepEqual([p.frames.preferred.length, p.frames.dispreferred.length], [8, 2]);
      assert.equal(results.model.architecture, 'VideoLlavaForConditionalGeneration');
    } finally {
      removeDir(dir);
    }
  });
});
