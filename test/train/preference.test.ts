// native/train/preference.cc and lib/train/preference.ts against TRL: test/fixtures/hf/dpo holds a batch of pairs
// on a tiny Qwen2 policy and reference with the losses, metrics and gradients TRL v0.19.1's own dpo_loss,
// concatenated_forward and get_batch_loss_metrics computed (real autograd). TRL 1.13's whole loss family, on the
// same models and pairs, is test/train/losses.test.ts.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { FIXTURES } from '../helpers.js';
import { type LossConfig, preferenceForward, preferenceMetrics, type PreferenceOutput, type PreferencePairInput } from '../../lib/train/preference.js';
import { DPO, dpoPairs } from './dpo-fixture.js';

const GRADIENTS = [
  'model.layers.0.self_attn.q_proj.weight', 'model.norm.weight', 'lm_head.weight', 'model.layers.1.self_attn.k_proj.bias',
];

function assertClose(actual: Tensor | undefined, expected: Tensor, what: string, atol = 2e-5, rtol = 1e-4): void {
  assert.ok(actual, `${what} is produced`);
  const a = actual.toTypedArray() as Float32Array;
  const b = expected.toTypedArray() as Float32Array;
  assert.equal(a.length, b.length, `${what} size`);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= atol + rtol * Math.abs(b[i]!), `${what}[${i}]: ${x} vs ${b[i]}`));
}

describe('preference losses against TRL', function () {
  this.timeout(120_000);
  let policy: VideoLM;
  let reference: VideoLM;
  let pairs: PreferencePairInput[];
  let expected: Record<string, Tensor>;

  before(async () => {
    policy = await VideoLM.load(join(DPO, 'policy'));
    reference = await VideoLM.load(join(DPO, 'reference'));
    expected = (await readSafetensors(join(DPO, 'expected.safetensors'))).tensors;
    pairs = await dpoPairs();
  });
  after(() => {
    policy.dispose();
    reference.dispose();
  });

  const CASES: Record<string, LossConfig> = {
    sigmoid: { type: 'sigmoid', beta: 0.1 },
    'sigmoid_ls0.1': { type: 'sigmoid', beta: 0.1, labelSmoothing: 0.1 },
    hinge: { type: 'hinge', beta: 0.1 },
    hinge_beta5: { type: 'hinge', beta: 5 },
    ipo: { type: 'ipo', beta: 0.1 },
    robust: { type: 'robust', beta: 0.1, labelSmoothing: 0.1 },
  };
  for (const [name, loss] of Object.entries(CASES)) {
    it(`${name}: losses and loss as TRL computes them`, async () => {
      const out = await preferenceForward(policy, pairs, { loss, referenceMode: 'frozen-copy' }, reference);
      assertClose(out.losses, expected[`losses.${name}`]!, `losses.${name}`);
      assertClose(out.loss, expected[`loss.${name}`]!, `loss.${name}`);
    });
  }

  it('log-probs, rewards, accuracies and margins, with TRL metric names', async () => {
    const out = await preferenceForward(policy, pairs, { loss: { beta: 0.1 }, referenceMode: 'frozen-copy' }, reference);
    assertClose(out.policyChosen, expected.policy_chosen_logps!, 'policy_chosen_logps');
    assertClose(out.policyRejected, expected.policy_rejected_logps!, 'policy_rejected_logps');
    assertClose(out.refChosen, expected.ref_chosen_logps!, 'ref_chosen_logps');
    assertClose(out.refRejected, expected.ref_rejected_logps!, 'ref_rejected_logps');
    assertClose(out.chosenRewards, expected.chosen_rewards!, 'chosen_rewards');
    assertClose(out.rejectedRewards, expected.rejected_rewards!, 'rejected_rewards');
    const metrics = preferenceMetrics(out);
    const margins = expected.reward_margins!.toTypedArray() as Float32Array;
    assert.ok(Math.abs(metrics['rewards/margins']! - margins.reduce((s, x) => s + x, 0) / 3) < 1e-5);
    assert.equal(metrics['rewards/accuracies'], 2 / 3);
    // IPO: TRL 0.19.1 (this fixture) reported rewards from length-normalised log-probs; TRL 1.x normalises only
    // inside the loss and reports beta * (policy - reference) as for every loss. tpo follows 1.13 (test/fixtures/trl).
    const trl113 = (await readSafetensors(join(FIXTURES, 'trl', 'losses', 'expected.safetensors'))).tensors;
    const ipo = await preferenceForward(policy, pairs, { loss: { type: 'ipo', beta: 0.1 }, referenceMode: 'frozen-copy' }, reference);
    assertClose(ipo.chosenRewards, trl113['ipo.chosen_rewards']!, 'ipo.chosen_rewards (TRL 1.13)');
    assertClose(ipo.rejectedRewards, trl113['ipo.rejected_rewards']!, 'ipo.rejected_rewards (TRL 1.13)');
    assertClose(ipo.losses, expected['losses.ipo']!, 'ipo losses: the same in 0.19.1 and 1.13');
  });

  it("TPO's objective: sigmoid + 1.0 x NLL of the chosen answers, and its gradients", async () => {
    const out = await preferenceForward(policy, pairs,
      { loss: { beta: 0.1, sftWeight: 1 }, referenceMode: 'frozen-copy', gradients: GRADIENTS }, reference);
    assertClose(out.nll, expected.nll_loss!, 'nll_loss');
    assertClose(out.loss, expected.total_loss!, 'total_loss');
    for (const name of GRADIENTS) assertClose(out.gradients[name], expected[`grad.${name}`]!, `grad.${name}`, 1e-6, 1e-3);
  });

  it('prefix sharing gives the loss and gradients of the unshared computation', async () => {
    const options = { loss: { beta: 0.1, sftWeight: 0.5 }, referenceMode: 'frozen-copy', gradients: GRADIENTS } as const;
    const shared = await preferenceForward(policy, pairs, { ...options, sharePrefix: true }, reference);
    const unshared = await preferenceForward(policy, pairs, { ...options, sharePrefix: false }, reference);
    assertClose(shared.loss, unshared.loss, 'loss', 1e-6, 1e-5);
    for (const name of GRADIENTS) assertClose(shared.gradients[name], unshared.gradients[name]!, name, 1e-7, 1e-4);
  });

  it('activation checkpointing gives the plain loss and gradients (prefix shared, unshared, batched pairs)', async () => {
    for (const variant of [{ sharePrefix: true }, { sharePrefix: false }, { batchPairs: true }]) {
      const options = { loss: { beta: 0.1, sftWeight: 0.5 }, referenceMode: 'frozen-copy', gradients: GRADIENTS, ...variant } as const;
      const plain = await preferenceForward(policy, pairs, options, reference);
      policy.setGradientCheckpointing(true);
      try {
        const recomputed = await preferenceForward(policy, pairs, options, reference);
        const what = JSON.stringify(variant);
        assertClose(recomputed.loss, plain.loss, `${what} loss`, 1e-6, 1e-6);
        for (const name of GRADIENTS) assertClose(recomputed.gradients[name], plain.gradients[name]!, `${what} ${name}`, 1e-7, 1e-5);
      } finally {
        policy.setGradientCheckpointing(false);
      }
    }
  });

  it('batched pairs (one padded forward per model) give TRL\'s log-probs, loss and gradients', async () => {
    for (const referenceMode of ['frozen-copy', 'lora-disabled'] as const) {
      const out = await preferenceForward(policy, pairs, {
        loss: { beta: 0.1, sftWeight: 1 }, referenceMode, gradients: GRADIENTS, batchPairs: true,
      }, reference);
      assertClose(out.policyChosen, expected.policy_chosen_logps!, 'policy_chosen_logps');
      assertClose(out.policyRejected, expected.policy_rejected_logps!, 'policy_rejected_logps');
      if (referenceMode === 'lora-disabled') continue;  // without adapters the reference is the policy itself
      assertClose(out.refChosen, expected.ref_chosen_logps!, 'ref_chosen_logps');
      assertClose(out.nll, expected.nll_loss!, 'nll_loss');
      assertClose(out.loss, expected.total_loss!, 'total_loss');
      for (const name of GRADIENTS) assertClose(out.gradients[name], expected[`grad.${name}`]!, `grad.${name}`, 1e-6, 1e-3);
    }
  });

  it('precomputed reference log-probs give the frozen copy`s loss; reference-free ignores the reference', async () => {
    const rc = expected.ref_chosen_logps!.toTypedArray() as Float32Array;
    const rr = expected.ref_rejected_logps!.toTypedArray() as Float32Array;
    const withRefs = pairs.map((p, i) => ({ ...p, reference: [rc[i]!, rr[i]!] as [number, number] }));
    const precomputed = await preferenceForward(policy, withRefs, { referenceMode: 'precomputed' });
    assertClose(precomputed.losses, expected['losses.sigmoid']!, 'precomputed');
    const free = await preferenceForward(policy, pairs, { loss: { referenceFree: true }, referenceMode: 'none' });
    const pc = free.policyChosen.toTypedArray() as Float32Array;
    const pr = free.policyRejected.toTypedArray() as Float32Array;
    const losses = free.losses.toTypedArray() as Float32Array;
    losses.forEach((l, i) => assert.ok(Math.abs(l - Math.log1p(Math.exp(-0.1 * (pc[i]! - pr[i]!)))) < 1e-5));
    await assert.rejects(preferenceForward(policy, pairs, { referenceMode: 'precomputed' }), /pair 0: reference log-probs were to be precomputed but are missing/);
  });
});

describe('activation checkpointing through the video path', function () {
  this.timeout(120_000);

  it('gives the plain gradients of the tower, the projector and the language model', async () => {
    const llava = join(FIXTURES, 'hf', 'llava_video');
    using model = await VideoLM.load(llava);
    model.setTrainable({ vision: true, projector: true, language: true });
    const inputs = (await readSafetensors(join(llava, 'inputs.safetensors'))).tensors;
    const prompt = inputs.input_ids!.reshape([inputs.input_ids!.numel]);
    const answer = (values: number[]) => tensor(BigInt64Array.from(values.map(BigInt)), [values.length]);
    const videoPairs = [
      { prompt, chosen: answer([5, 6, 7]), rejected: answer([8, 9]), video: inputs.pixel_values! },
      { prompt, chosen: answer([10, 11]), rejected: answer([12, 13, 14, 15]), video: inputs.pixel_values! },
    ];
    const names = [
      'model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight', 'model.mm_projector.0.weight',
      'model.layers.0.mlp.up_proj.weight', 'model.layers.1.self_attn.v_proj.bias',
    ];
    const plainOf: Record<string, PreferenceOutput> = {};
    for (const sharePrefix of [true, false]) {
      const options = { loss: { beta: 0.1, sftWeight: 1, referenceFree: true }, referenceMode: 'none', gradients: names, sharePrefix } as const;
      const plain = await preferenceForward(model, videoPairs, options);
      plainOf[String(sharePrefix)] = plain;
      model.setGradientCheckpointing(true);
      try {
        const recomputed = await preferenceForward(model, videoPairs, options);
        assertClose(recomputed.loss, plain.loss, `sharePrefix ${sharePrefix}: loss`, 1e-6, 1e-6);
        for (const name of names) assertClose(recomputed.gradients[name], plain.gradients[name]!, `sharePrefix ${sharePrefix}: ${name}`, 1e-7, 1e-5);
      } finally {
        model.setGradientCheckpointing(false);
      }
    }
    // Both pairs are about one video: shared, the video runs once for both pairs' prompts and answers.
    const [shared, unshared] = [plainOf.true!, plainOf.false!];
    assertClose(shared.policyChosen, unshared.policyChosen, 'shared vs unshared chosen log-probs', 1e-5, 1e-5);
    assertClose(shared.policyRejected, unshared.policyRejected, 'shared vs unshared rejected log-probs', 1e-5, 1e-5);
    for (const name of names) assertClose(shared.gradients[name], unshared.gradients[name]!, `shared vs unshared ${name}`, 1e-6, 1e-4);
  });
});
