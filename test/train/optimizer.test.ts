// native/train/optimizer.cc, lib/train/optimizer.ts and schedule.ts: the training step.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor } from '../../lib/tensor.js';
import { Optimizer } from '../../lib/train/optimizer.js';
import type { PreferencePairInput } from '../../lib/train/preference.js';
import { learningRate } from '../../lib/train/schedule.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';
import { DPO, dpoPairs } from './dpo-fixture.js';

const pairs = dpoPairs;

/** A LoRA policy on the DPO fixture's model; the adapter-off model is the reference. */
async function loraPolicy(seed = 1): Promise<VideoLM> {
  const model = await VideoLM.load(join(DPO, 'policy'));
  model.addLora({ r: 4, alpha: 8, seed });
  model.setTrainable({ lora: true });
  return model;
}

async function adapter(model: VideoLM, dir: string): Promise<Record<string, Float32Array>> {
  await model.saveLora(dir);
  const { tensors } = await readSafetensors(join(dir, 'adapter_model.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.toTypedArray() as Float32Array]));
}

describe('learning-rate schedules', () => {
  it('follow transformers: linear warm-up, then cosine / linear decay or constant', () => {
    assert.equal(learningRate(1, 0, 100, { warmupRatio: 0.1 }), 0);
    assert.equal(learningRate(1, 5, 100, { warmupRatio: 0.1 }), 0.5);
    assert.equal(learningRate(1, 10, 100, { warmupRatio: 0.1 }), 1);
    assert.ok(Math.abs(learningRate(1, 55, 100, { warmupRatio: 0.1 }) - 0.5) < 1e-12);
    assert.ok(learningRate(1, 99, 100, { warmupRatio: 0.1 }) < 0.001);
    assert.equal(learningRate(2, 55, 100, { type: 'linear', warmupSteps: 10 }), 1);
    assert.equal(learningRate(3, 70, 100, { type: 'constant', warmupSteps: 10 }), 3);
  });
});

describe('the training step', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('lowers the DPO loss of its batch, with TRL metric names', async () => {
    using policy = await loraPolicy();
    const optimizer = new Optimizer(policy, { maxGradNorm: 1 });
    // r = 4, hidden 64, k/v 32 wide, MLP 176: A [4, in] + B [out, 4] per target, two layers.
    assert.equal(optimizer.trainable, 2 * (512 + 384 + 384 + 512 + 960 + 960 + 960));
    const batch = await pairs();
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) {
      const { metrics } = await optimizer.preferenceStep({ microBatches: [batch], lr: 5e-3, loss: { beta: 0.1 } });
      losses.push(metrics.loss!);
      for (const key of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'nll_loss', 'grad_norm', 'lr']) {
        assert.ok(Number.isFinite(metrics[key]), `${key} = ${metrics[key]}`);
      }
    }
    assert.equal(losses[0]!.toFixed(6), Math.log(2).toFixed(6), 'a fresh adapter is the reference: loss = log 2');
    assert.ok(losses.at(-1)! < losses[0]! - 0.05, `loss went ${losses[0]} -> ${losses.at(-1)}`);
    assert.equal(optimizer.steps, 8);
  });

  it('is deterministic on the CPU given the same start', async () => {
    const batch = await pairs();
    const run = async (sub: string) => {
      using policy = await loraPolicy(7);
      const optimizer = new Optimizer(policy);
      for (let s = 0; s < 3; s++) await optimizer.preferenceStep({ microBatches: [batch], lr: 1e-2, loss: { sftWeight: 0.5 } });
      return adapter(policy, join(dir, sub));
    };
    assert.deepEqual(await run('a'), await run('b'));
  });

  it('accumulates gradients: three micro-batches of one pair step as one batch of three', async () => {
    const batch = await pairs();
    const run = async (microBatches: PreferencePairInput[][], sub: string) => {
      using policy = await loraPolicy(3);
      // eps 1e-3: Adam divides by sqrt(v) + eps, so with the default 1e-8 a gradient element that is float32 noise
      // (~1e-8, different for a different summation order) would move its weight by up to lr either way.
      const optimizer = new Optimizer(policy, { maxGradNorm: 0, eps: 1e-3 });
      await optimizer.preferenceStep({ microBatches, lr: 1e-2 });
      await optimizer.preferenceStep({ microBatches, lr: 1e-2 });
      return adapter(policy, join(dir, sub));
    };
    const whole = await run([batch], 'whole');
    const split = await run(batch.map((p) => [p]), 'split');
    // Summation order differs (one batch scores the three pairs together, each micro-batch one): float32 noise.
    // A wrong accumulation (no 1/n, or n steps) moves a weight by a sizeable fraction of lr (1e-2).
    for (const key of Object.keys(whole)) {
      whole[key]!.forEach((v, i) => assert.ok(Math.abs(v - split[key]![i]!) < 5e-5, `${key}[${i}]: ${v} vs ${split[key]![i]}`));
    }
  });

  it('resumes from saved optimizer state exactly where an uninterrupted run would be', async () => {
    const batch = await pairs();
    const step = (o: Optimizer) => o.preferenceStep({ microBatches: [batch], lr: 1e-2, loss: { sftWeight: 1 } });
    let straight: Record<string, Float32Array>;
    {
      using policy = await loraPolicy(5);
      const optimizer = new Optimizer(policy);
      for (let s = 0; s < 4; s++) await step(optimizer);
      straight = await adapter(policy, join(dir, 'straight'));
    }
    {
      using policy = await loraPolicy(5);
      const optimizer = new Optimizer(policy);
      for (let s = 0; s < 2; s++) await step(optimizer);
      await policy.saveLora(join(dir, 'checkpoint'));
      await optimizer.saveState(join(dir, 'checkpoint', 'optimizer.safetensors'));
    }
    using resumed = await VideoLM.load(join(DPO, 'policy'));
    await resumed.loadLora(join(dir, 'checkpoint'));
    resumed.setTrainable({ lora: true });
    const optimizer = new Optimizer(resumed);
    await optimizer.loadState(join(dir, 'checkpoint', 'optimizer.safetensors'));
    assert.equal(optimizer.steps, 2);
    for (let s = 0; s < 2; s++) await step(optimizer);
    assert.deepEqual(await adapter(resumed, join(dir, 'resumed')), straight);
  });

  it('trains a LoRA adapter under activation checkpointing as without it (the frozen embeddings need no gradient)', async () => {
    const batch = await pairs();
    const run = async (checkpointing: boolean, sub: string) => {
      using policy = await loraPolicy(9);
      policy.setGradientCheckpointing(checkpointing);
      const optimizer = new Optimizer(policy, { eps: 1e-3 });
      for (let s = 0; s < 2; s++) await optimizer.preferenceStep({ microBatches: [batch], lr: 1e-2, loss: { sftWeight: 0.5 } });
      return adapter(policy, join(dir, sub));
    };
    const plain = await run(false, 'plain');
    const recomputed = await run(true, 'recomputed');
    for (const key of Object.keys(plain)) {
      plain[key]!.forEach((v, i) => assert.ok(Math.abs(v - recomputed[key]![i]!) < 1e-5, `${key}[${i}]: ${v} vs ${recomputed[key]![i]}`));
    }
  });

  it('refuses a non-finite loss without touching the weights', async () => {
    using policy = await loraPolicy();
    const optimizer = new Optimizer(policy);
    const batch = (await pairs()).map((p) => ({ ...p, reference: [Number.NaN, 0] as [number, number] }));
    const before = await adapter(policy, join(dir, 'before'));
    await assert.rejects(optimizer.preferenceStep({ microBatches: [batch], lr: 1, referenceMode: 'precomputed' }),
      /step 1: the loss \(-?nan\) or the gradient norm .* is not finite; the weights were not updated/);
    assert.deepEqual(await adapter(policy, join(dir, 'after')), before);
    assert.equal(optimizer.steps, 0);
  });

  it('trains SFT on answer tokens, and refuses a model with nothing trainable', async () => {
    using policy = await loraPolicy();
    const optimizer = new Optimizer(policy);
    const batch = (await pairs()).map((p) => ({ prompt: p.prompt, answer: p.chosen }));
    const first = await optimizer.sftStep({ microBatches: [batch], lr: 1e-2 });
    for (let s = 0; s < 5; s++) await optimizer.sftStep({ microBatches: [batch], lr: 1e-2 });
    const last = await optimizer.sftStep({ microBatches: [batch], lr: 1e-2 });
    assert.ok(last.metrics.loss! < first.metrics.loss!, `${first.metrics.loss} -> ${last.metrics.loss}`);
    using frozen = await VideoLM.load(join(DPO, 'policy'));
    frozen.setTrainable({});
    assert.throws(() => new Optimizer(frozen), /nothing to train/);
  });
});

describe('per-part learning rates (LLaVA-NeXT\'s mm_vision_tower_lr, mm_projector_lr)', function () {
  this.timeout(120_000);
  const llava = join(FIXTURES, 'hf', 'llava_video');
  const TOWER = 'model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight';
  const PROJECTOR = 'model.mm_projector.0.weight';
  const LANGUAGE = 'model.layers.0.mlp.up_proj.weight';

  /** The compared weights after one SFT step on the fixture's video, everything trained. */
  async function oneStep(lr: number, scales: { visionLrScale?: number; projectorLrScale?: number } = {}): Promise<Record<string, Float32Array>> {
    using model = await VideoLM.load(llava);
    model.setTrainable({ vision: true, projector: true, language: true });
    const optimizer = new Optimizer(model, { maxGradNorm: 0, ...scales });
    const inputs = (await readSafetensors(join(llava, 'inputs.safetensors'))).tensors;
    const prompt = inputs.input_ids!.reshape([inputs.input_ids!.numel]);
    await optimizer.sftStep({ microBatches: [[{ prompt, answer: tensor(BigInt64Array.from([5n, 6n, 7n]), [3]), video: inputs.pixel_values! }]], lr });
    const saved = tempDir();
    try {
      await model.save(saved);
      const { tensors } = await readSafetensors(join(saved, 'model.safetensors'));
      return Object.fromEntries([TOWER, PROJECTOR, LANGUAGE].map((name) => [name, tensors[name]!.toTypedArray() as Float32Array]));
    } finally {
      removeDir(saved);
    }
  }

  const worst = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

  it('steps the tower and the projector at their multiples of the lr, the language model at the lr', async () => {
    const parts = await oneStep(1e-2, { visionLrScale: 0.25, projectorLrScale: 0.5 });
    const [full, quarter, half] = [await oneStep(1e-2), await oneStep(2.5e-3), await oneStep(5e-3)];
    assert.ok(worst(parts[TOWER]!, quarter[TOWER]!) < 1e-7, 'the tower steps as at lr / 4');
    assert.ok(worst(parts[PROJECTOR]!, half[PROJECTOR]!) < 1e-7, 'the projector steps as at lr / 2');
    assert.ok(worst(parts[LANGUAGE]!, full[LANGUAGE]!) < 1e-7, 'the language model steps at the lr');
    // (and the comparison can fail: a quarter of Adam's first step, about lr per weight, is far from a whole one)
    assert.ok(worst(parts[TOWER]!, full[TOWER]!) > 1e-3, 'the tower did not step at the full lr');
    assert.ok(worst(parts[PROJECTOR]!, full[PROJECTOR]!) > 1e-3, 'the projector did not step at the full lr');
  });

  it('refuses a scale that is not positive', async () => {
    using model = await VideoLM.load(llava);
    model.setTrainable({ vision: true });
    assert.throws(() => new Optimizer(model, { visionLrScale: 0 }), /visionLrScale/);
    assert.throws(() => new Optimizer(model, { projectorLrScale: -1 }), /projectorLrScale/);
  });
});

describe('the training step against torch.optim.AdamW', function () {
  this.timeout(120_000);

  // test/fixtures/train/adamw: three TPO steps of the full model by transformers + torch (scripts/fixtures/adamw_reference.py).
  // Weight decay moves a weight by lr x 0.01 x |w| a step (~5e-6 here): the tolerance is below that, and a run
  // without weight decay must miss it (so the comparison can fail).
  const TOLERANCE = 4e-6;

  /** The largest difference from torch's weights after three steps, over the compared parameters. */
  async function worstDifference(weightDecay: number): Promise<{ worst: number; name: string }> {
    const expected = (await readSafetensors(join(FIXTURES, 'train', 'adamw', 'expected.safetensors'))).tensors;
    using policy = await VideoLM.load(join(DPO, 'policy'));
    policy.setTrainable({ language: true });
    const optimizer = new Optimizer(policy, { weightDecay, maxGradNorm: 1 });
    const ref = expected.ref_logps!.toTypedArray() as Float32Array;
    const batch = (await pairs()).map((p, i) => ({ ...p, reference: [ref[2 * i]!, ref[2 * i + 1]!] as [number, number] }));
    const losses = expected.loss!.toTypedArray() as Float32Array;
    const norms = expected.grad_norm!.toTypedArray() as Float32Array;
    for (let step = 0; step < losses.length; step++) {
      const { metrics } = await optimizer.preferenceStep({
        microBatches: [batch], lr: 1e-3, loss: { beta: 0.1, sftWeight: 0.5 }, referenceMode: 'precomputed',
      });
      if (weightDecay === 0) continue;
      assert.ok(Math.abs(metrics.loss! - losses[step]!) < 1e-5, `step ${step + 1} loss ${metrics.loss} vs ${losses[step]}`);
      assert.ok(Math.abs(metrics.grad_norm! - norms[step]!) < 1e-4, `step ${step + 1} grad_norm ${metrics.grad_norm} vs ${norms[step]}`);
    }
    const saved = tempDir();
    try {
      await policy.save(saved);
      const { tensors } = await readSafetensors(join(saved, 'model.safetensors'));
      let worst = { worst: 0, name: '' };
      for (const [key, want] of Object.entries(expected).filter(([k]) => k.startsWith('weight.'))) {
        const name = key.slice('weight.'.length);
        const got = tensors[name]!.toTypedArray() as Float32Array;
        const w = want.toTypedArray() as Float32Array;
        got.forEach((x, i) => { if (Math.abs(x - w[i]!) > worst.worst) worst = { worst: Math.abs(x - w[i]!), name }; });
      }
      return worst;
    } finally {
      removeDir(saved);
    }
  }

  it('gives the losses, gradient norms and weights of three TPO steps with weight decay and clipping', async () => {
    const { worst, name } = await worstDifference(0.01);
    assert.ok(worst < TOLERANCE, `${name}: max difference ${worst}`);
    assert.ok((await worstDifference(0)).worst > TOLERANCE, 'without weight decay the weights differ by more than the tolerance');
  });
});
