// The whole pipeline on Qwen2.5-VL's architecture: the synthetic world's tiny qwen2.5-vl model through `tpo generate`,
// `tpo train` (TPO with LoRA) and `tpo eval` (test/tpo/pipeline.ts), each video's frames by tpo's uniform sampling,
// resized by its processor's smart resize (the world's video_preprocessor_config.json keeps 64 x 64 at 64 x 64),
// with the video's own second_per_grid_ts, and written in Qwen's chat format, the video between <|vision_start|>
// and <|vision_end|>.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { ModelSession } from '../../lib/model/session.js';
import { tensor } from '../../lib/tensor.js';
import { probeVideo } from '../../lib/video/decode.js';
import { qwen25vlSecondPerGridT } from '../../lib/video/qwen2-5-vl.js';
import { removeDir, tempDir } from '../helpers.js';
import { int64 } from '../model/parity.js';
import { lines, runPipeline, writeWorld } from './pipeline.js';

describe('Qwen2.5-VL through the pipeline', function () {
  this.timeout(300_000);

  it('`tpo generate`, `tpo train` and `tpo eval` on the synthetic world\'s tiny Qwen2.5-VL', async () => {
    const dir = tempDir('tpo-qwen2-5-vl-');
    try {
      const modelDir = await writeWorld(dir, 'qwen2.5-vl');
      {
        using session = await ModelSession.open(modelDir);
        assert.equal(session.model.info.architecture, 'Qwen2_5_VLForConditionalGeneration');
        using prompt = session.prompt('<image>\nwhat is first ?');
        const promptIds = Array.from(prompt.toTypedArray() as Int32Array);
        const at = promptIds.indexOf(-200);
        assert.ok(at > 0 && promptIds.filter((id) => id === -200).length === 1);
        assert.equal(session.tokenizer.decode([promptIds[at - 1]!, promptIds[at + 1]!]), '<|vision_start|><|vision_end|>');
        const video = join(dir, lines(join(dir, 'train-benchmark.jsonl'))[0].video);
        const { pixels, secondPerGridTs } = await session.pixels(video, { kind: 'uniform', frames: 5 });
        assert.deepEqual(pixels.shape, [5, 3, 64, 64]);
        const info = await probeVideo(video);
        assert.equal(secondPerGridTs, qwen25vlSecondPerGridT(5, info.frameCount, info.fps, session.qwen25vl));
        // 5 frames padded to 3 temporal patches of 8 x 8 patches, merged 2 x 2: 3 x 16 tokens, and their grid
        const { tokens, video: input } = await session.videoTokens(video, { kind: 'uniform', frames: 5 });
        assert.equal(tokens.shape[0], 3 * 16);
        assert.deepEqual(int64(input.videoGridThw!), [3n, 8n, 8n]);
        assert.equal(input.secondPerGridTs, secondPerGridTs);
        // the tokens with their grid score as the frames do
        const answers = [tensor(BigInt64Array.from([BigInt(session.stopIds[0]!)]), [1])];
        const fromFrames = await session.model.logprobs({ prompt, answers, pixelValues: pixels, secondPerGridTs });
        const fromTokens = await session.model.logprobs({ prompt, answers, ...input });
        assert.deepEqual(Array.from(fromTokens.sums.toTypedArray()), Array.from(fromFrames.sums.toTypedArray()));
      }
      const { results } = await runPipeline(dir, modelDir, 8);
      assert.equal(results.model.architecture, 'Qwen2_5_VLForConditionalGeneration');
    } finally {
      removeDir(dir);
    }
  });
});
