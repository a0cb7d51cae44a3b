// Guards where numbers leave or enter the model (native/binding/model_binding.cc, native/model/video_lm.cc):
// scores that came out NaN or infinite are an error naming the model folder (ERR_TPO_NON_FINITE), never numbers an
// evaluation compares; a video's visual-token count is known from the config before anything is decoded
// (videoTokenCount), and a video too long for max_position_embeddings is refused before its tower runs.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { preferenceForward, readSafetensors, tensor, VideoLM, writeSafetensors } from '../../lib/index.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

const HF = join(FIXTURES, 'hf');
const ids = (...xs: number[]) => tensor(new BigInt64Array(xs.map(BigInt)));

describe('model guards', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = tempDir('tpo-guards-');
  });
  after(() => removeDir(dir));

  it('finite weights whose scores overflow are an error naming the model folder, not NaN scores', async () => {
    // Every weight finite (so loading accepts it), lm_head so large that the logits overflow float32.
    const folder = join(dir, 'overflow');
    mkdirSync(folder);
    copyFileSync(join(HF, 'qwen2', 'config.json'), join(folder, 'config.json'));
    const { tensors } = await readSafetensors(join(HF, 'qwen2'));
    const head = tensors['lm_head.weight']!.toTypedArray() as Float32Array;
    tensors['lm_head.weight'] = tensor(head.map((v) => (v >= 0 ? 3e38 : -3e38)), [128, 64]);
    await writeSafetensors(join(folder, 'model.safetensors'), tensors);
    using model = await VideoLM.load(folder);
    const nonFinite = (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_TPO_NON_FINITE');
      assert.match(e.message, new RegExp(`the model at ${folder} gives non-finite log-probs`));
      return true;
    };
    await assert.rejects(model.logprobs({ prompt: ids(1, 5, 9), answers: [ids(3, 4)] }), nonFinite);
    // The scoring a precomputed reference and the trainer's metrics come from.
    const pair = { prompt: ids(1, 5, 9), chosen: ids(3, 4), rejected: ids(7) };
    await assert.rejects(preferenceForward(model, [pair], { referenceMode: 'none', loss: { referenceFree: true } }), nonFinite);
    await assert.rejects(preferenceForward(model, [pair], { referenceMode: 'none', loss: { referenceFree: true }, batchPairs: true }), nonFinite);
  });

  it('videoTokenCount is the row count encodeVideo gives, for every newline and pooling setting', async () => {
    const cases: [string, Record<string, unknown>][] = [
      ['llava_video', {}],  // grid newlines: 4x4 patches pooled to 2x2, a newline per row -> 6 per frame
      ['llava_video', { mm_newline_position: 'frame' }],
      ['llava_video', { mm_newline_position: 'one_token' }],
      ['llava_video', { mm_newline_position: 'no_token' }],
      ['llava_video', { mm_spatial_pool_mode: 'bilinear' }],
      ['llava_video', { mm_spatial_pool_stride: 3 }],
      ['llava_video_oddgrid', {}],
      ['llava_video_oddgrid', { mm_spatial_pool_mode: 'bilinear' }],
      ['longva', {}],
    ];
    for (const [name, overrides] of cases) {
      using model = await VideoLM.load(join(HF, name), { overrides });
      const size = (model.config.vision_config as { image_size: number }).image_size;
      for (const frames of [1, 3]) {
        using pixels = tensor(new Float32Array(frames * 3 * size * size).fill(0.1), [frames, 3, size, size]);
        using tokens = await model.encodeVideo(pixels);
        assert.equal(model.videoTokenCount(frames), tokens.shape[0], `${name} ${JSON.stringify(overrides)} x${frames}`);
      }
      assert.equal(model.videoTokenCount(0), 0);
    }
    using qwen = await VideoLM.load(join(HF, 'qwen2'));
    assert.throws(() => qwen.videoTokenCount(4), /has no vision tower/);
  });

  it('tells before decoding that 100,000 frames do not fit, and refuses such a video before its tower runs', async () => {
    using model = await VideoLM.load(join(HF, 'llava_video'), { overrides: { max_position_embeddings: 64 } });
    assert.ok(model.videoTokenCount(100_000) > model.maxPositions);
    assert.equal(model.maxPositions, 64);
    model.assertVideoFits(10);
    assert.throws(() => model.assertVideoFits(10, 8, 'clip.mp4'), {
      code: 'ERR_TPO_ARGUMENT', message: /^clip\.mp4: 10 frames make 60 visual tokens \(\+ 8 text tokens\), more than max_position_embeddings \(64\)/,
    });
    assert.throws(() => model.assertVideoFits(100_000), /100000 frames make \d+ visual tokens/);
    using pixels = tensor(new Float32Array(11 * 3 * 32 * 32), [11, 3, 32, 32]);
    await assert.rejects(model.encodeVideo(pixels), /11 frames make 66 visual tokens, more than max_position_embeddings \(64\)/);
  });

  it('refuses float token ids instead of truncating them', async () => {
    using model = await VideoLM.load(join(HF, 'qwen2'));
    await assert.rejects(
      async () => model.logprobs({ prompt: tensor(new Float32Array([1.7, 5.2])), answers: [ids(3)] }),
      /Model\.logprobs: prompt must hold integer token ids, got float32/,
    );
  });
});
