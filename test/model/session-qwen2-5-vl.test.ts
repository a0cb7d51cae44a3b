// ModelSession lays a Qwen2.5-VL video out as its processor does: a real checkpoint's preprocessor_config.json
// (Qwen2.5-VL-7B-Instruct's: min_pixels / max_pixels, patch 14, merge 2, 2 frames a temporal patch) gives each
// video's frame size, grid and second_per_grid_ts as qwen25vlVideoLayout computes them from the same numbers, and
// generation and scoring take the video's own second_per_grid_ts.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ModelSession } from '../../lib/model/session.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { writeModelFiles } from '../../lib/synthetic/index.js';
import { tensor } from '../../lib/tensor.js';
import { probeVideo } from '../../lib/video/decode.js';
import { encodeVideo } from '../../lib/video/encode.js';
import { qwen25vlVideoLayout } from '../../lib/video/qwen2-5-vl.js';
import { removeDir, tempDir } from '../helpers.js';
import { int64 } from './parity.js';

/** Qwen/Qwen2.5-VL-7B-Instruct's preprocessor_config.json. */
const QWEN2_5_VL_7B_PREPROCESSOR = {
  min_pixels: 3136, max_pixels: 12845056, patch_size: 14, temporal_patch_size: 2, merge_size: 2,
  image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
  image_processor_type: 'Qwen2VLImageProcessor', processor_class: 'Qwen2_5_VLProcessor',
};

describe("ModelSession on Qwen2.5-VL: each video's own layout", function () {
  this.timeout(300_000);

  it("a real checkpoint's preprocessor config gives the processor's frame size, grid and second_per_grid_ts, which every call takes", async () => {
    const dir = tempDir('tpo-session-qwen-');
    try {
      // the world's tiny Qwen2.5-VL with the real tower's patch (14; windows of 2 x 2 merged tokens) and processor
      const modelDir = join(dir, 'model');
      await writeModelFiles(modelDir, 'qwen2.5-vl');
      const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
      Object.assign(config.vision_config, { patch_size: 14, window_size: 56 });
      writeFileSync(join(modelDir, 'config.json'), JSON.stringify(config));
      rmSync(join(modelDir, 'video_preprocessor_config.json'));
      writeFileSync(join(modelDir, 'preprocessor_config.json'), JSON.stringify(QWEN2_5_VL_7B_PREPROCESSOR));
      {
        using created = await VideoLM.create(config, { seed: 1 });
        await created.save(modelDir);
      }
      // a 20-frame 100 x 180 video at 10 fps, 6 frames of it
      const video = join(dir, 'video.mp4');
      const values = Uint8Array.from({ length: 20 * 100 * 180 * 3 }, (_, i) => (i * 7 + (i >> 9)) % 251);
      await encodeVideo(tensor(values, [20, 100, 180, 3]), video, { fps: 10 });
      const info = await probeVideo(video);
      assert.deepEqual([info.frameCount, info.fps], [20, 10]);
      using session = await ModelSession.open(modelDir);
      const layout = qwen25vlVideoLayout({ totalFrames: info.frameCount, height: info.height, width: info.width, fps: info.fps },
        { ...QWEN2_5_VL_7B_PREPROCESSOR, do_sample_frames: true, num_frames: 6 });
      assert.equal(layout.indices.length, 6);
      // smart_resize by 28: 100 x 180 -> 112 x 168; 3 temporal patches of 8 x 12 patches; 2 / (6 / 20 x 10) s
      assert.deepEqual(layout.resized, { height: 112, width: 168 });

      const { pixels, secondPerGridTs } = await session.pixels(video, { kind: 'uniform', frames: 6 });
      assert.deepEqual(pixels.shape, [6, 3, layout.resized.height, layout.resized.width]);
      assert.equal(secondPerGridTs, layout.secondPerGridT);
      assert.ok(Math.abs(secondPerGridTs! - 2 / 3) < 1e-12);
      const { tokens, video: input } = await session.videoTokens(video, { kind: 'uniform', frames: 6 });
      assert.equal(tokens.shape[0], layout.tokens);
      assert.deepEqual(int64(input.videoGridThw!), [layout.grid.t, layout.grid.h, layout.grid.w].map(BigInt));
      assert.equal(input.secondPerGridTs, layout.secondPerGridT);

      // a kept segment (1 s, 10 frames) is a video of its own: 4 of its frames are 4 a second
      const segment = await session.pixels(video, { kind: 'uniform', frames: 4, range: [0.5, 1.5] });
      const short = qwen25vlVideoLayout({ totalFrames: 10, height: info.height, width: info.width, fps: info.fps },
        { ...QWEN2_5_VL_7B_PREPROCESSOR, do_sample_frames: true, num_frames: 4 });
      assert.equal(segment.secondPerGridTs, short.secondPerGridT);
      assert.equal(segment.secondPerGridTs, 0.5);
      segment.pixels.dispose();

      // the tokens with their grid and seconds score as the frames with those seconds; the model's default (1 s) is
      // another video's time scale
      using prompt = session.prompt('<image>\nwhat is first ?');
      const answers = [tensor(BigInt64Array.from([BigInt(session.stopIds[0]!)]), [1])];
      const sums = async (o: object) => Array.from((await session.model.logprobs({ prompt, answers, ...o })).sums.toTypedArray());
      const fromTokens = await sums(input);
      assert.deepEqual(await sums({ pixelValues: pixels, secondPerGridTs }), fromTokens);
      assert.notDeepEqual(await sums({ pixelValues: pixels }), fromTokens);
      pixels.dispose();
      tokens.dispose();
      input.videoGridThw!.dispose();
    } finally {
      removeDir(dir);
    }
  });
});
