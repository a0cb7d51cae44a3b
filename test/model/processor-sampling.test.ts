// ModelSession.processorSamplePlan: the frames each architecture's own processor samples from a video (its
// sample_frames with the model folder's video processor config, a call's fps / num_frames over it), on the synthetic
// world's tiny model of that architecture; the rule functions themselves are checked against transformers in
// test/video/. An architecture without a rule, or a config that sets no rate or count, is a clear error.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ModelSession, VideoError } from '../../lib/model/session.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { writeModelFiles } from '../../lib/synthetic/index.js';
import type { WorldFamily } from '../../lib/synthetic/tokenizer.js';
import { tensor } from '../../lib/tensor.js';
import { probeVideo } from '../../lib/video/decode.js';
import { encodeVideo } from '../../lib/video/encode.js';
import { internvlFrameIndices } from '../../lib/video/internvl.js';
import { qwen25vlFrameIndices } from '../../lib/video/qwen2-5-vl.js';
import { videoLlama3FrameIndices } from '../../lib/video/video-llama3.js';
import { removeDir, tempDir } from '../helpers.js';

/** The world's tiny model of `family` in `dir`, its processor config's fields `processor` over the world's. */
async function tinyModel(dir: string, family: WorldFamily, processor: Record<string, unknown> = {}): Promise<string> {
  await writeModelFiles(dir, family);
  const file = join(dir, 'video_preprocessor_config.json');
  if (Object.keys(processor).length) writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...processor }));
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  using created = await VideoLM.create(config, { seed: 1 });
  await created.save(dir);
  return dir;
}

const RULES = {
  'video-llama3': { architecture: 'VideoLlama3ForConditionalGeneration', indices: videoLlama3FrameIndices },
  'qwen2.5-vl': { architecture: 'Qwen2_5_VLForConditionalGeneration', indices: qwen25vlFrameIndices },
  internvl: {
    architecture: 'InternVLForConditionalGeneration',
    indices: (total: number, fps: number | undefined, c: { fps?: number; num_frames?: number; initial_shift?: boolean | number }) =>
      internvlFrameIndices(total, fps, { fps: c.fps, num_frames: c.num_frames, initial_shift: c.initial_shift }),
  },
} as const;

describe("ModelSession.processorSamplePlan: the frames a model's own processor samples", function () {
  this.timeout(300_000);
  let dir: string;
  let video: string;
  let frameCount: number;
  let fps: number;
  before(async () => {
    dir = tempDir('tpo-processor-sampling-');
    // 53 frames of 64 x 64 at 8 fps: 6.6 s, so 2 fps is 13.25 frames, not a whole number nor a multiple of 2
    video = join(dir, 'video.mp4');
    const values = Uint8Array.from({ length: 53 * 64 * 64 * 3 }, (_, i) => (i * 7 + (i >> 10)) % 251);
    await encodeVideo(tensor(values, [53, 64, 64, 3]), video, { fps: 8 });
    ({ frameCount, fps } = await probeVideo(video, { countFrames: true }));
    assert.deepEqual([frameCount, fps], [53, 8]);
  });
  after(() => removeDir(dir));

  for (const [family, rule] of Object.entries(RULES) as [keyof typeof RULES, (typeof RULES)[keyof typeof RULES]][]) {
    it(`${family}: the plan's indices are ${rule.architecture}'s rule's, by a call's fps, by the config's num_frames, decoded as planned`, async () => {
      const modelDir = await tinyModel(join(dir, family), family);
      const processor = JSON.parse(readFileSync(join(modelDir, 'video_preprocessor_config.json'), 'utf8'));
      let plan: { kind: 'indices'; indices: number[] };
      {
        using session = await ModelSession.open(modelDir);
        assert.equal(session.model.info.architecture, rule.architecture);
        // the world's config sets neither fps nor num_frames: the processor would take every frame
        assert.throws(() => session.processorSampling(), (e: Error) =>
          e.message.includes(modelDir) && e.message.includes(rule.architecture) && /neither fps nor num_frames/.test(e.message));
        await assert.rejects(session.processorSamplePlan(video), /neither fps nor num_frames/);
        assert.throws(() => session.processorSampling({ fps: 2, numFrames: 4 }), /not both/);

        plan = await session.processorSamplePlan(video, { fps: 2 });
        const expected = rule.indices(frameCount, fps, { ...processor, fps: 2 });
        assert.deepEqual(plan, { kind: 'indices', indices: expected });
        assert.ok(expected.length > 1 && expected.length < frameCount, `${expected}`);
        assert.match(session.processorSampling({ fps: 2 }), /sample_frames .*: fps 2/);
        const pixels = await session.pixels(video, plan);
        try {
          assert.deepEqual(pixels.indices, expected);
          assert.equal(pixels.pixels.shape[0], expected.length);
        } finally {
          pixels.pixels.dispose();
        }
        // a video that has fewer frames than asked is the video's error (a skip mode counts it)
        await assert.rejects(session.processorSamplePlan(video, { numFrames: 1000 }), (e: Error) => e instanceof VideoError && e.message.includes(video));
      }
      // unset settings as save_pretrained writes them (null): unset, as the world's
      {
        using saved = await ModelSession.open(await tinyModel(join(dir, `${family}-nulls`), family, { fps: null, num_frames: null }));
        assert.throws(() => saved.processorSampling(), /neither fps nor num_frames/);
        assert.deepEqual(await saved.processorSamplePlan(video, { fps: 2 }), plan);
      }
      // the config's own num_frames, when no call overrides it
      const withCount = await tinyModel(join(dir, `${family}-num-frames`), family, { num_frames: 6 });
      using session = await ModelSession.open(withCount);
      const counted = await session.processorSamplePlan(video);
      assert.deepEqual(counted.indices, rule.indices(frameCount, fps, { ...processor, num_frames: 6 }));
      assert.equal(counted.indices.length, 6);
      // a call's fps replaces the config's num_frames
      assert.deepEqual((await session.processorSamplePlan(video, { fps: 1 })).indices, rule.indices(frameCount, fps, { ...processor, fps: 1 }));
    });
  }

  it("a bad sampling setting in the processor config is one error when the model opens, naming the file and field", async () => {
    for (const family of Object.keys(RULES) as (keyof typeof RULES)[]) {
      const bad = await tinyModel(join(dir, `${family}-bad-fps`), family, { fps: 'two' });
      await assert.rejects(ModelSession.open(bad), (e: Error) => /video_preprocessor_config\.json/.test(e.message) && /fps/.test(e.message));
    }
    const shift = await tinyModel(join(dir, 'internvl-bad-shift'), 'internvl', { initial_shift: 'yes' });
    await assert.rejects(ModelSession.open(shift), /video_preprocessor_config\.json.*initial_shift/s);
    const both = await tinyModel(join(dir, 'internvl-both'), 'internvl', { fps: 2, num_frames: 6 });
    await assert.rejects(ModelSession.open(both), /video_preprocessor_config\.json.*mutually exclusive/s);
  });

  it('an architecture whose processor has no rule (LLaVA-Video, Video-LLaVA): an error naming the folder and architecture, pointing to frames', async () => {
    for (const family of ['llava-video', 'video-llava'] as const) {
      const modelDir = await tinyModel(join(dir, family), family);
      using session = await ModelSession.open(modelDir);
      const architecture = session.model.info.architecture;
      const check = (e: Error) => e.message.includes(modelDir) && e.message.includes(architecture) && /sample frames uniformly/.test(e.message)
        && /frames/.test(e.message);
      assert.throws(() => session.processorSampling({ fps: 2 }), check);
      await assert.rejects(session.processorSamplePlan(video, { fps: 2 }), check);
    }
  });
});
