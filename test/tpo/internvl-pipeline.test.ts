// The whole pipeline on InternVL's architecture: the synthetic world's tiny internvl model through `tpo generate`,
// `tpo train` (TPO with LoRA) and `tpo eval` (test/tpo/pipeline.ts), each video's frames resized to the tower's size
// and laid out as InternVL's processor writes a video ("Frame1: <img>" + the frame's tokens + "</img>", by line).
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { internvlFrameText, ModelSession } from '../../lib/model/session.js';
import { removeDir, tempDir } from '../helpers.js';
import { lines, runPipeline, writeWorld } from './pipeline.js';

describe('InternVL through the pipeline', function () {
  this.timeout(300_000);

  it('`tpo generate`, `tpo train` and `tpo eval` on the synthetic world\'s tiny InternVL', async () => {
    const dir = tempDir('tpo-internvl-');
    try {
      const modelDir = await writeWorld(dir, 'internvl');
      {
        using session = await ModelSession.open(modelDir);
        assert.equal(session.model.info.architecture, 'InternVLForConditionalGeneration');
        using prompt = session.prompt('<image>\nwhat is first ?');
        const promptIds = Array.from(prompt.toTypedArray() as Int32Array);
        assert.equal(promptIds.filter((id) => id === -200).length, 1);
        const video = join(dir, lines(join(dir, 'train-benchmark.jsonl'))[0].video);
        const { pixels } = await session.pixels(video, { kind: 'uniform', frames: 4 });
        assert.deepEqual(pixels.shape, [4, 3, 64, 64]);
        // 16 tokens a frame, each frame between "FrameN: <img>" ("Frame", N, ":", " ", <img>: 5 ids, and "\n" first
        // from the second frame on) and "</img>"
        const tokens = await session.model.encodeVideo(pixels);
        assert.equal(tokens.shape[0], 4 * 16 + 5 + 3 * 6 + 4);
        assert.equal(session.model.videoTokenCount(4), tokens.shape[0]);
        const [first, second] = internvlFrameText(session.tokenizer, 2);
        assert.equal(session.tokenizer.decode([...first!.before, 5, ...first!.after, ...second!.before]), 'Frame1: <img>' +
          session.tokenizer.decode([5]) + '</img>\nFrame2: <img>');
      }
      const { results } = await runPipeline(dir, modelDir, 8);
      assert.equal(results.model.architecture, 'InternVLForConditionalGeneration');
    } finally {
      removeDir(dir);
    }
  });
});
