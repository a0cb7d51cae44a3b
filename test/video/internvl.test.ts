// InternVL's video processor rules against transformers' own (test/fixtures/hf/internvl/processor_cases.json, made by
// scripts/fixtures/internvl_reference.py with InternVLVideoProcessor.sample_frames), and its config as tpo reads it.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { internvlFrameIndices, loadInternVLProcessorConfig } from '../../lib/video/internvl.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

interface Cases {
  size: { height: number; width: number };
  sampling: { total_frames: number; video_fps: number; options: { num_frames?: number; fps?: number; initial_shift?: boolean | number }; indices: number[] }[];
}
const cases = JSON.parse(readFileSync(join(FIXTURES, 'hf', 'internvl', 'processor_cases.json'), 'utf8')) as Cases;

describe("InternVL's video processor rules (transformers' InternVLVideoProcessor)", () => {
  for (const c of cases.sampling) {
    it(`sample_frames: ${c.total_frames} frames at ${c.video_fps} fps, ${JSON.stringify(c.options)} -> ${c.indices.length} frames`, () => {
      assert.deepEqual(internvlFrameIndices(c.total_frames, c.video_fps, c.options), c.indices);
    });
  }

  it('errors say what is wrong', () => {
    assert.throws(() => internvlFrameIndices(10, 24, { num_frames: 20 }), /20 frames asked of a video of 10/);
    assert.throws(() => internvlFrameIndices(10, 24, { num_frames: 2, fps: 1 }), /mutually exclusive/);
    assert.throws(() => internvlFrameIndices(10, undefined, { fps: 1 }), /needs the video's frame rate/);
    assert.throws(() => internvlFrameIndices(10, 24, {}), /give num_frames or fps/);
  });

  it("video_preprocessor_config.json with the processor's defaults for what it leaves out", async () => {
    const dir = tempDir('tpo-internvl-processor-');
    try {
      writeFileSync(join(dir, 'video_preprocessor_config.json'), JSON.stringify({ video_processor_type: 'InternVLVideoProcessor', size: { height: 448, width: 448 } }));
      const config = await loadInternVLProcessorConfig(dir);
      assert.deepEqual(config.size, { height: 448, width: 448 });
      assert.equal(config.resample, 3);
      assert.deepEqual(config.image_mean, [0.48145466, 0.4578275, 0.40821073]);
      writeFileSync(join(dir, 'video_preprocessor_config.json'), '{}');
      assert.deepEqual((await loadInternVLProcessorConfig(dir)).size, cases.size);
      writeFileSync(join(dir, 'video_preprocessor_config.json'), JSON.stringify({ resample: 7 }));
      await assert.rejects(loadInternVLProcessorConfig(dir), /video_preprocessor_config\.json.*resample/);
    } finally {
      removeDir(dir);
    }
  });
});
