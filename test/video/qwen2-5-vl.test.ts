// Qwen2.5-VL's video processor rules against transformers' own (test/fixtures/hf/qwen2_5_vl_processor/
// processor_cases.json, made by scripts/fixtures/qwen2_5_vl_processor_reference.py with Qwen2VLVideoProcessor's
// sample_frames and resize, and small videos through Qwen2_5_VLProcessor).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  loadQwen25VLProcessorConfig, qwen25vlFrameIndices, qwen25vlResizeTarget, qwen25vlVideoLayout,
} from '../../lib/video/qwen2-5-vl.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

interface Cases {
  sampling: { total_frames: number; video_fps: number; options: Record<string, number>; indices: number[] }[];
  resizing: { height: number; width: number; frames: number; options: Record<string, unknown>; target: [number, number] }[];
  videos: {
    total_frames: number; video_fps: number; height: number; width: number; options: Record<string, unknown>; indices: number[];
    video_grid_thw: [number, number, number]; second_per_grid_ts: [number]; pixel_values_videos: [number, number]; video_tokens: number;
  }[];
}
const cases = JSON.parse(readFileSync(join(FIXTURES, 'hf', 'qwen2_5_vl_processor', 'processor_cases.json'), 'utf8')) as Cases;

describe("Qwen2.5-VL's video processor rules (transformers' Qwen2VLVideoProcessor, Qwen2_5_VLProcessor)", () => {
  for (const c of cases.sampling) {
    it(`sample_frames: ${c.total_frames} frames at ${c.video_fps} fps, ${JSON.stringify(c.options)} -> ${c.indices.length} frames`, () => {
      assert.deepEqual(qwen25vlFrameIndices(c.total_frames, c.video_fps, c.options), c.indices);
    });
  }
  for (const c of cases.resizing) {
    it(`resize: ${c.height}x${c.width}, ${c.frames} frames, ${JSON.stringify(c.options)} -> ${c.target.join('x')}`, () => {
      assert.deepEqual(qwen25vlResizeTarget(c.height, c.width, c.frames, c.options), { height: c.target[0], width: c.target[1] });
    });
  }
  for (const c of cases.videos) {
    it(`a ${c.total_frames}-frame ${c.height}x${c.width} video at ${c.video_fps} fps, ${JSON.stringify(c.options)}: grid ${c.video_grid_thw.join('x')}`, () => {
      const layout = qwen25vlVideoLayout({ totalFrames: c.total_frames, height: c.height, width: c.width, fps: c.video_fps }, c.options);
      assert.deepEqual(layout.indices, c.indices);
      assert.deepEqual([layout.grid.t, layout.grid.h, layout.grid.w], c.video_grid_thw);
      assert.equal(layout.tokens, c.video_tokens);
      assert.equal(layout.tokensPerGrid * layout.grid.t, c.video_tokens);
      // pixel_values_videos: one row per patch (t x h x w), 3 x temporal_patch_size x patch^2 values each
      assert.equal(layout.grid.t * layout.grid.h * layout.grid.w, c.pixel_values_videos[0]);
      // (the processor hands second_per_grid_ts over as a float32 tensor)
      assert.equal(Math.fround(layout.secondPerGridT), c.second_per_grid_ts[0]);
    });
  }

  it('second_per_grid_ts of a video whose frame rate is unknown: 24 fps, as VideoMetadata.sampled_fps says', () => {
    assert.equal(qwen25vlVideoLayout({ totalFrames: 8, height: 56, width: 56 }).secondPerGridT, 2 / 24);
    // an odd frame count is padded by repeating the last frame: 7 frames, 4 temporal patches
    assert.equal(qwen25vlVideoLayout({ totalFrames: 7, height: 56, width: 56 }).grid.t, 4);
  });

  it('errors say what is wrong', () => {
    assert.throws(() => qwen25vlFrameIndices(10, 24, { num_frames: 20 }), /20 frames asked of a video of 10/);
    assert.throws(() => qwen25vlFrameIndices(10, 24, { num_frames: 2, fps: 1 }), /mutually exclusive/);
    assert.throws(() => qwen25vlFrameIndices(10, undefined, { fps: 1 }), /Qwen2.5-VL sampling: fps sampling needs the video's frame rate/);
    assert.throws(() => qwen25vlFrameIndices(10, 24, { num_frames: 1, temporal_patch_size: 4 }), /0 frames/);
    assert.throws(() => qwen25vlResizeTarget(10, 3000, 1), /Qwen2.5-VL resize: absolute aspect ratio must be smaller than 200/);
    assert.throws(() => qwen25vlResizeTarget(10, 30, 1, { patch_size: 0 }), /config: patch_size/);
    assert.deepEqual(qwen25vlFrameIndices(3, 24), [0, 1, 2]); // neither num_frames nor fps: every frame
  });

  it("reads a model folder's video_preprocessor_config.json (else preprocessor_config.json), naming the file and field", async () => {
    const dir = tempDir('tpo-qwen25vl-processor-');
    try {
      mkdirSync(join(dir, 'a'));
      // Qwen2.5-VL-7B-Instruct's preprocessor_config.json: the older min_pixels / max_pixels names
      writeFileSync(join(dir, 'a', 'preprocessor_config.json'), JSON.stringify({
        min_pixels: 3136, max_pixels: 12845056, patch_size: 14, temporal_patch_size: 2, merge_size: 2,
        image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
        image_processor_type: 'Qwen2VLImageProcessor', processor_class: 'Qwen2_5_VLProcessor',
      }));
      const config = await loadQwen25VLProcessorConfig(join(dir, 'a'));
      assert.equal(config.min_pixels, 3136);
      assert.deepEqual(qwen25vlResizeTarget(1080, 1920, 16, config), qwen25vlResizeTarget(1080, 1920, 16, { size: { shortest_edge: 3136, longest_edge: 12845056 } }));
      // save_pretrained writes unset attributes as null: unset, the processor's defaults (here: min/max pixels unset,
      // so size's budget)
      mkdirSync(join(dir, 'saved'));
      writeFileSync(join(dir, 'saved', 'video_preprocessor_config.json'), JSON.stringify({
        min_pixels: null, max_pixels: null, fps: null, num_frames: null, cap_pixels_per_frame: null,
        size: { shortest_edge: 3136, longest_edge: 12845056 }, patch_size: 14, temporal_patch_size: 2, merge_size: 2,
      }));
      const saved = await loadQwen25VLProcessorConfig(join(dir, 'saved'));
      assert.equal(saved.min_pixels, undefined);
      assert.deepEqual(qwen25vlResizeTarget(1080, 1920, 16, saved), qwen25vlResizeTarget(1080, 1920, 16, config));
      writeFileSync(join(dir, 'a', 'video_preprocessor_config.json'), JSON.stringify({ temporal_patch_size: 'two' }));
      await assert.rejects(loadQwen25VLProcessorConfig(join(dir, 'a')), /video_preprocessor_config\.json: temporal_patch_size/);
      await assert.rejects(loadQwen25VLProcessorConfig(join(dir, 'missing')), /preprocessor_config\.json/);
    } finally {
      removeDir(dir);
    }
  });
});
