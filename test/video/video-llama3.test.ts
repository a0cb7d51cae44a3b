// VideoLLaMA3's video processor rules against transformers' own (test/fixtures/hf/video_llama3/processor_cases.json,
// made by scripts/fixtures/video_llama3_reference.py with VideoLlama3VideoProcessor.sample_frames and smart_resize).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { videoLlama3FrameIndices, videoLlama3ResizeTarget } from '../../lib/video/video-llama3.js';
import { FIXTURES } from '../helpers.js';

interface Cases {
  sampling: { total_frames: number; video_fps: number; options: Record<string, number>; indices: number[] }[];
  resizing: { height: number; width: number; frames: number; size: { shortest_edge: number; longest_edge: number }; target: [number, number] }[];
}
const cases = JSON.parse(readFileSync(join(FIXTURES, 'hf', 'video_llama3', 'processor_cases.json'), 'utf8')) as Cases;

describe("VideoLLaMA3's video processor rules (transformers' VideoLlama3VideoProcessor)", () => {
  for (const c of cases.sampling) {
    it(`sample_frames: ${c.total_frames} frames at ${c.video_fps} fps, ${JSON.stringify(c.options)} -> ${c.indices.length} frames`, () => {
      assert.deepEqual(videoLlama3FrameIndices(c.total_frames, c.video_fps, c.options), c.indices);
    });
  }
  for (const c of cases.resizing) {
    it(`smart_resize: ${c.height}x${c.width}, ${c.frames} frames -> ${c.target.join('x')}`, () => {
      assert.deepEqual(videoLlama3ResizeTarget(c.height, c.width, c.frames, { size: c.size }), { height: c.target[0], width: c.target[1] });
    });
  }
  it('errors say what is wrong', () => {
    assert.throws(() => videoLlama3FrameIndices(10, 24, { num_frames: 20 }), /20 frames asked of a video of 10/);
    assert.throws(() => videoLlama3FrameIndices(10, 24, { num_frames: 2, fps: 1 }), /mutually exclusive/);
    assert.throws(() => videoLlama3FrameIndices(10, undefined, { fps: 1 }), /needs the video's frame rate/);
    assert.throws(() => videoLlama3ResizeTarget(10, 3000, 1), /aspect ratio must be smaller than 200/);
    assert.deepEqual(videoLlama3FrameIndices(3, 24), [0, 1, 2]); // neither: every frame
  });
});
