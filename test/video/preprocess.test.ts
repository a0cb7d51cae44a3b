// native/video/preprocess.cc and lib/video/preprocess.ts: the vision towers' pixel preprocessing, against values
// computed with PIL and numpy as transformers' slow image processors compute them (scripts/fixtures/
// video_preprocess_reference.py).
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { CLIP_336, loadPreprocessorConfig, preprocessFrames, SIGLIP_384 } from '../../lib/video/preprocess.js';
import { FIXTURES } from '../helpers.js';

const DIR = join(FIXTURES, 'video');

function compare(ours: Tensor, expected: Tensor) {
  assert.deepEqual(ours.shape, expected.shape);
  const a = ours.toTypedArray() as Float32Array;
  const b = expected.toTypedArray() as Float32Array;
  let max = 0;
  let off = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    max = Math.max(max, d);
    if (d > 1e-6) off++;
  }
  return { max, offFraction: off / a.length };
}

describe('frame preprocessing', () => {
  let frames: Tensor<'uint8'>;
  let expected: Record<string, Tensor>;
  before(async () => {
    const { tensors } = await readSafetensors(join(DIR, 'preprocess.safetensors'));
    frames = tensors.frames as Tensor<'uint8'>;
    expected = tensors;
  });

  // PIL resizes uint8 images in fixed point and rounds between its horizontal and vertical passes; libtorch's
  // antialiased bicubic does neither, so a few pixels land one grey level apart: at most 1/255 before
  // normalisation, i.e. 1/255/std after it.
  for (const name of ['siglip', 'clip']) {
    it(`${name}: matches the processor's pixel values within one grey level`, async () => {
      const config = await loadPreprocessorConfig(join(DIR, `${name}_preprocessor_config.json`));
      const pixels = await preprocessFrames(frames, config);
      const std = Math.min(...config.image_std);
      const { max, offFraction } = compare(pixels, expected[name]!);
      assert.ok(max <= 1 / 255 / std + 1e-6, `max difference ${max}`);
      assert.ok(offFraction < 0.05, `${(offFraction * 100).toFixed(2)}% of values differ`);
    });
  }

  it('gives the shapes of the real towers: SigLIP 384x384, CLIP 336x336 after its shortest-edge resize', async () => {
    assert.deepEqual((await preprocessFrames(frames, SIGLIP_384)).shape, [3, 3, 384, 384]);
    assert.deepEqual((await preprocessFrames(frames, CLIP_336)).shape, [3, 3, 336, 336]);
  });

  it('rescales and normalises exactly: a flat grey frame becomes (v / 255 - mean) / std', async () => {
    const grey = tensor(new Uint8Array(2 * 8 * 8 * 3).fill(200), [2, 8, 8, 3], 'uint8');
    const out = (await preprocessFrames(grey, { ...SIGLIP_384, size: { height: 4, width: 4 } })).toTypedArray() as Float32Array;
    const expectedValue = Math.fround((Math.fround(200 / 255) - 0.5) / 0.5);
    assert.ok(out.every((v) => Math.abs(v - expectedValue) < 1e-6), `${out[0]} vs ${expectedValue}`);
  });

  it('refuses frames that are not uint8 [T, H, W, 3], and configs it cannot follow, naming the field', async () => {
    await assert.rejects(preprocessFrames(tensor(new Float32Array(12), [1, 2, 2, 3]) as never, SIGLIP_384), /frames must be uint8 \[T, H, W, 3\], got Float/);
    await assert.rejects(preprocessFrames(frames, { ...CLIP_336, crop_size: { height: 400, width: 400 } }), /crop 400x400 does not fit/);
    await assert.rejects(preprocessFrames(frames, { image_mean: [0.5] } as never), { code: 'ERR_TPO_ARGUMENT', message: /image_mean/ });
    await assert.rejects(loadPreprocessorConfig(join(DIR, 'missing.json')), /missing\.json: ENOENT/);
  });
});
