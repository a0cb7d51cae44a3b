// The whole pipeline on VideoLLaMA3's architecture: the synthetic world's tiny video_llama_3 model through
// `tpo generate`, `tpo train` (TPO with LoRA) and `tpo eval` (test/tpo/pipeline.ts), each video resized by its
// processor's rule and its frame tokens compressed as its processor does.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { ModelSession, videoLlama3FrameText } from '../../lib/model/session.js';
import { tensor } from '../../lib/tensor.js';
import { probeVideo } from '../../lib/video/decode.js';
import { encodeVideo } from '../../lib/video/encode.js';
import { removeDir, tempDir } from '../helpers.js';
import { lines, runPipeline, writeWorld } from './pipeline.js';

describe('VideoLLaMA3 through the pipeline', function () {
  this.timeout(300_000);

  it('`tpo generate`, `tpo train` and `tpo eval` on the synthetic world\'s tiny VideoLLaMA3', async () => {
    const dir = tempDir('tpo-video-llama3-');
    try {
      const modelDir = await writeWorld(dir, 'video-llama3');
      {
        using session = await ModelSession.open(modelDir);
        assert.equal(session.model.info.architecture, 'VideoLlama3ForConditionalGeneration');
        // Qwen2's chat format (VideoLLaMA3's), the video at one -200
        using prompt = session.prompt('<image>\nwhat is first ?');
        const promptIds = Array.from(prompt.toTypedArray() as Int32Array);
        assert.equal(promptIds.filter((id) => id === -200).length, 1);
        assert.ok(session.tokenizer.decode(promptIds.slice(0, promptIds.indexOf(-200))).includes('<|im_start|>user'));
        const video = join(dir, lines(join(dir, 'train-benchmark.jsonl'))[0].video);
        // 64 x 64 frames stay 64 x 64 (the tiny processor's budget): 8 x 8 patches, 4 x 4 merged tokens a frame,
        // fewer where a frame repeats the one before
        const { pixels, indices, frameText } = await session.pixels(video, { kind: 'uniform', frames: 8 });
        assert.deepEqual(pixels.shape, [8, 3, 64, 64]);
        const tokens = await session.model.encodeVideo(pixels);
        assert.ok(tokens.shape[0]! >= 16 + 7 && tokens.shape[0]! <= 8 * 16, `visual tokens: ${tokens.shape[0]}`);
        // the processor's "Time t.ts:" before each frame's kept tokens (",Time t.ts:" from the second on), the time
        // stamps the frames' indices over the video's frame rate
        const info = await probeVideo(video);
        assert.deepEqual(frameText, videoLlama3FrameText(session.tokenizer, indices.map((i) => i / info.fps)));
        const text = frameText!.reduce((n, t) => n + t.before!.length, 0);
        const { tokens: withText } = await session.videoTokens(video, { kind: 'uniform', frames: 8 });
        assert.equal(withText.shape[0], tokens.shape[0]! + text);
        // the same frames in another order (TimeWarp's shuffled scenes) are shown at the same times: the time stamps
        // do not give the true order away
        const reversed = await session.pixels(video, { kind: 'indices', indices: [...indices].reverse() });
        assert.deepEqual(reversed.indices, [...indices].reverse());
        assert.deepEqual(reversed.frameText, frameText);
        // A 192 x 192 video (resized to 80 x 80 for 8 frames): the same frames by indices (TimeWarp's plans) are
        // decoded and resized as the uniform plan's
        const big = join(dir, 'big.mp4');
        const values = Uint8Array.from({ length: 8 * 192 * 192 * 3 }, (_, i) => (i * 7 + (i >> 9)) % 251);
        await encodeVideo(tensor(values, [8, 192, 192, 3]), big, { fps: 8 });
        const uniform = await session.pixels(big, { kind: 'uniform', frames: 8 });
        const byIndices = await session.pixels(big, { kind: 'indices', indices: uniform.indices });
        assert.deepEqual(uniform.pixels.shape, [8, 3, 80, 80]);
        assert.deepEqual(byIndices.pixels.toTypedArray(), uniform.pixels.toTypedArray());
      }
      const { pairs, results } = await runPipeline(dir, modelDir, 8);
      // generate's default 16 frames, fewer for the sparse side of a comprehensive pair
      const comprehensive = pairs.filter((q) => q.kind === 'comprehensive');
      for (const p of comprehensive) assert.ok(p.frames.preferred.length === 16 && p.frames.dispreferred.length < 16, JSON.stringify(p.frames));
      assert.equal(results.model.architecture, 'VideoLlama3ForConditionalGeneration');
    } finally {
      removeDir(dir);
    }
  });
});
