// A video's own layout through the training step: VideoLLaMA3's time stamps (frameText) and Qwen2.5-VL's grid and
// second_per_grid_ts travel in a pair / SFT record beside its frames or visual tokens, so the step encodes and
// places the video as eval does (ModelSession.pixels / videoTokens): frames with their layout give the loss of the
// tokens encodeVideo made of them, and a step without that layout is another one.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { writeJsonl } from '../../lib/data/jsonl.js';
import { readBenchmark } from '../../lib/data/records.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import type { NativeVideoInput } from '../../lib/native.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { Optimizer } from '../../lib/train/optimizer.js';
import { preferenceForward } from '../../lib/train/preference.js';
import { Trainer } from '../../lib/train/trainer.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';
import { readFixture } from '../model/parity.js';
import { writeWorld } from '../tpo/pipeline.js';

/** The first step's loss of a 1-step TPO run on two of the world's pairs, training `train` (with LoRA). */
async function firstLoss(dir: string, modelDir: string, name: string, train: { projector?: boolean }): Promise<number> {
  const trainer = new Trainer({
    model: modelDir, output: join(dir, name), data: { train: join(dir, 'pairs.jsonl') }, objective: 'tpo', lora: {}, train,
    lr: 1e-4, schedule: { type: 'constant' }, batchSize: 2, maxSteps: 1, frames: 4,
  } as never);
  const losses: number[] = [];
  trainer.on('step', ({ metrics }) => losses.push(metrics.loss!));
  assert.equal((await trainer.fit()).stopped, 'done');
  assert.equal(losses.length, 1);
  return losses[0]!;
}

const ids = (values: number[]) => tensor(BigInt64Array.from(values.map(BigInt)), [values.length]);
const LOSS = { beta: 0.2, sftWeight: 1 } as const;

/** The losses of one video's records under every form of the step: the forward (shared prefix, batched pairs) and
 * the optimizer's preference (encode once or per answer) and SFT steps at lr 0 (the weights stay). */
async function stepLosses(policy: VideoLM, optimizer: Optimizer, video: NativeVideoInput): Promise<number[]> {
  const pairs = [
    { prompt: ids([1, 10, 11, -200, 13, 14]), chosen: ids([30, 31, 2]), rejected: ids([33, 2]), ...video },
    { prompt: ids([1, 10, 11, -200, 15]), chosen: ids([34, 2]), rejected: ids([35, 36, 37, 2]), ...video },
  ];
  const losses: number[] = [];
  for (const variant of [{ sharePrefix: true }, { sharePrefix: false }, { batchPairs: true }]) {
    const out = await preferenceForward(policy, pairs, { loss: LOSS, referenceMode: 'lora-disabled', ...variant });
    losses.push((out.loss.toTypedArray() as Float32Array)[0]!);
  }
  for (const encodeOnce of [true, false]) {
    losses.push((await optimizer.preferenceStep({ microBatches: [pairs], lr: 0, encodeOnce, loss: LOSS })).metrics.loss!);
  }
  const records = pairs.map((p) => ({ prompt: p.prompt, answer: p.chosen, ...video }));
  losses.push((await optimizer.sftStep({ microBatches: [records], lr: 0 })).metrics.loss!);
  return losses;
}

function assertSame(actual: number[], expected: number[], what: string): void {
  for (let i = 0; i < expected.length; ++i) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= 1e-6 * Math.max(1, Math.abs(expected[i]!)), `${what} (form ${i}): ${actual[i]} vs ${expected[i]}`);
  }
}

function assertDiffer(actual: number[], expected: number[], what: string): void {
  for (let i = 0; i < expected.length; ++i) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) > 1e-5, `${what} (form ${i}): ${actual[i]} vs ${expected[i]} should differ`);
  }
}

async function trainable(dir: string): Promise<VideoLM> {
  const policy = await VideoLM.load(dir);
  policy.addLora({ r: 4, alpha: 8, seed: 3 });
  policy.setTrainable({ projector: true, language: true, lora: true });
  return policy;
}

describe("A video's own layout in the training step", function () {
  this.timeout(300_000);

  it("VideoLLaMA3: frames with their frameText train as the tokens encodeVideo(pixels, {frameText}) made, and not as frames without it", async () => {
    const dir = join(FIXTURES, 'hf', 'video_llama3');
    const { inputs } = await readFixture(dir);
    using policy = await trainable(dir);
    const optimizer = new Optimizer(policy);
    const frames = inputs.frames!;
    // the fixture's stand-ins for "Time t.ts:" (40) before each frame, "," (41) between frames
    const frameText = Array.from({ length: frames.shape[0]! }, (_, f) => ({ before: f ? [41, 40] : [40] }));
    using tokens = await policy.encodeVideo(frames, { frameText });
    const fromTokens = await stepLosses(policy, optimizer, { video: tokens });
    assertSame(await stepLosses(policy, optimizer, { video: frames, frameText }), fromTokens, 'frames + frameText = their tokens');
    assertDiffer(await stepLosses(policy, optimizer, { video: frames }), fromTokens, 'frames without their frameText');
    // tokens hold their text already: more of it is an error, as is text for the wrong number of frames
    await assert.rejects(preferenceForward(policy, [{ prompt: ids([1, -200]), chosen: ids([2]), rejected: ids([3]), video: tokens, frameText }]),
      /frame text goes with frames/);
    await assert.rejects(preferenceForward(policy, [{ prompt: ids([1, -200]), chosen: ids([2]), rejected: ids([3]), video: frames, frameText: frameText.slice(1) }]),
      /the frame text is set for 3 frames; the video has 4/);
  });

  it("Qwen2.5-VL: tokens with their grid and second_per_grid_ts train as the frames with that second_per_grid_ts, which the step uses", async () => {
    const dir = join(FIXTURES, 'hf', 'qwen2_5_vl');
    const { inputs } = await readFixture(dir);
    using policy = await trainable(dir);
    const optimizer = new Optimizer(policy);
    const frames = inputs.frames!;
    const videoGridThw: Tensor = inputs.video_grid_thw!;
    // (the fixture's video: 5 frames, 3 temporal patches; its second_per_grid_ts and one 4 times as long)
    const seconds = (inputs.second_per_grid_ts!.toTypedArray() as Float32Array)[0]!;
    using tokens = await policy.encodeVideo(frames);
    for (const secondPerGridTs of [seconds, 4 * seconds]) {
      const fromFrames = await stepLosses(policy, optimizer, { video: frames, secondPerGridTs });
      assertSame(await stepLosses(policy, optimizer, { video: tokens, videoGridThw, secondPerGridTs }), fromFrames,
        `tokens + grid + ${secondPerGridTs} s = frames + ${secondPerGridTs} s`);
    }
    // the step takes the video's own seconds (not the model's): another time scale is another loss
    assertDiffer(await stepLosses(policy, optimizer, { video: frames, secondPerGridTs: 4 * seconds }),
      await stepLosses(policy, optimizer, { video: frames, secondPerGridTs: seconds }), 'frames at another second_per_grid_ts');
    // without seconds, the model's (setSecondPerGridTs) for both
    assertSame(await stepLosses(policy, optimizer, { video: tokens, videoGridThw }), await stepLosses(policy, optimizer, { video: frames }),
      'tokens + grid = frames at the model\'s second_per_grid_ts');
    const pair = { prompt: ids([1, -200]), chosen: ids([2]), rejected: ids([3]) };
    await assert.rejects(preferenceForward(policy, [{ ...pair, video: tokens, videoGridThw: tensor(BigInt64Array.from([2n, 6n, 10n]), [1, 3]) }]),
      /video_grid_thw \[2, 6, 10\] makes 30 visual tokens, but 45 were given/);
    await assert.rejects(preferenceForward(policy, [{ ...pair, video: frames, videoGridThw }]), /video_grid_thw goes with visual tokens/);
    await assert.rejects(preferenceForward(policy, [{ ...pair, video: tokens, secondPerGridTs: seconds }]), /second_per_grid_ts goes with the tokens' video_grid_thw/);
    await assert.rejects(preferenceForward(policy, [{ ...pair, video: frames, frameText: [{ before: [1] }] }]), /frame text is InternVL's and VideoLLaMA3's/);
    await assert.rejects(preferenceForward(policy, [{ ...pair, secondPerGridTs: seconds }]), /go with a video/);
  });

  for (const world of ['video-llama3', 'qwen2.5-vl'] as const) {
    it(`${world}: a run that trains the projector (frames in the step) sees the layout a frozen tower's run (tokens kept) sees`, async () => {
      const dir = tempDir('tpo-video-layout-');
      try {
        const modelDir = await writeWorld(dir, world);
        const items = await readBenchmark(join(dir, 'train-benchmark.jsonl')).toArray();
        await writeJsonl(join(dir, 'pairs.jsonl'), items.slice(0, 2).map((b) => ({
          id: b.id, video: b.video, prompt: b.question, chosen: b.options[b.answer], rejected: b.options[(b.answer + 1) % b.options.length],
        })));
        // (the first step's loss is the starting weights': the same in both runs when both lay the video out alike)
        const frozen = await firstLoss(dir, modelDir, 'frozen', {});
        const projector = await firstLoss(dir, modelDir, 'projector', { projector: true });
        // (the same computation on both paths: a time scale other than the video's moves the loss by ~1e-6 here)
        assert.ok(Math.abs(frozen - projector) <= 1e-7 * Math.max(1, Math.abs(frozen)), `${frozen} vs ${projector}`);
      } finally {
        removeDir(dir);
      }
    });
  }
});
