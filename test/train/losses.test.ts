// Every preference loss against TRL 1.13's own code: test/fixtures/trl/losses holds, for each loss (and lists of
// them, LD-DPO, WPO, SimPO, ORPO), the per-pair losses, the loss, rewards, log-probs, TRL's logged metrics and
// gradients that DPOTrainer._compute_loss, CPOTrainer and ORPOTrainer computed on test/fixtures/hf/dpo's models
// (scripts/fixtures/trl_losses.py).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import type { Tensor } from '../../lib/tensor.js';
import { TrainConfig } from '../../lib/train/config.js';
import { LossConfig, needsReference } from '../../lib/train/loss.js';
import { type ForwardOptions, preferenceForward, preferenceMetrics, type PreferencePairInput } from '../../lib/train/preference.js';
import { parse } from '../../lib/validate.js';
import { FIXTURES } from '../helpers.js';
import { DPO, dpoPairs } from './dpo-fixture.js';

const TRL = join(FIXTURES, 'trl', 'losses');

interface TrlCase {
  trl_config: Record<string, unknown>;
  trl_metrics: Record<string, number>;
  loss: number;
}
const meta = JSON.parse(readFileSync(join(TRL, 'case.json'), 'utf8')) as { gradients: string[]; cases: Record<string, TrlCase> };

/** A TRL config as tpo's loss: DPOConfig's loss_type / loss_weights / ..., CPOConfig's simpo, ORPO's beta. */
function tpoLoss(name: string, c: Record<string, unknown>): LossConfig {
  if (name.startsWith('orpo')) return { type: 'orpo', beta: c.beta as number };
  if (c.loss_type === 'simpo') {
    const alpha = c.cpo_alpha as number;
    return {
      type: alpha > 0 ? ['simpo', 'sft'] : 'simpo', ...(alpha > 0 ? { weights: [1, alpha] } : {}),
      beta: c.beta as number, simpoGamma: c.simpo_gamma as number, labelSmoothing: c.label_smoothing as number,
    };
  }
  return {
    type: c.loss_type as LossConfig['type'],
    ...(c.loss_weights ? { weights: c.loss_weights as number[] } : {}),
    ...(c.beta !== undefined ? { beta: c.beta as number } : {}),
    ...(c.label_smoothing !== undefined ? { labelSmoothing: c.label_smoothing as number } : {}),
    ...(c.ld_alpha !== undefined ? { ldAlpha: c.ld_alpha as number } : {}),
    ...(c.use_weighting ? { useWeighting: true } : {}),
    ...(c.discopop_tau !== undefined ? { discopopTau: c.discopop_tau as number } : {}),
  };
}

/**
 * Gradients: float32 accumulation leaves an error proportional to the tensor's largest elements, not to each
 * element (sppo_hard's reach 4.6, where a summation order of another CPU moves a 1.6e-4 element by 1.2e-6), so
 * their absolute tolerance scales with the tensor's largest magnitude.
 */
function assertGradientClose(actual: Tensor | undefined, expected: Tensor | undefined, what: string): void {
  const largest = expected ? (expected.toTypedArray() as Float32Array).reduce((m, x) => Math.max(m, Math.abs(x)), 0) : 0;
  assertClose(actual, expected, what, 1e-6 * Math.max(1, largest), 1e-3);
}

function assertClose(actual: Tensor | undefined, expected: Tensor | undefined, what: string, atol = 2e-5, rtol = 1e-4): void {
  assert.ok(actual, `${what} is produced`);
  assert.ok(expected, `${what} is in the fixture`);
  const a = actual.toTypedArray() as Float32Array;
  const b = expected.toTypedArray() as Float32Array;
  assert.equal(a.length, b.length, `${what} size`);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= atol + rtol * Math.abs(b[i]!), `${what}[${i}]: ${x} vs TRL ${b[i]}`));
}

describe('preference losses against TRL 1.13', function () {
  this.timeout(300_000);
  let policy: VideoLM;
  let reference: VideoLM;
  let pairs: PreferencePairInput[];
  let expected: Record<string, Tensor>;

  before(async () => {
    policy = await VideoLM.load(join(DPO, 'policy'));
    reference = await VideoLM.load(join(DPO, 'reference'));
    expected = (await readSafetensors(join(TRL, 'expected.safetensors'))).tensors;
    pairs = await dpoPairs();
  });
  after(() => {
    policy.dispose();
    reference.dispose();
  });

  for (const [name, c] of Object.entries(meta.cases)) {
    it(`${name}: per-pair losses, loss, rewards, log-probs, TRL's metrics and gradients`, async () => {
      const loss = tpoLoss(name, c.trl_config);
      const referenceMode = needsReference(loss) ? 'frozen-copy' : 'none';
      const out = await preferenceForward(policy, pairs, { loss, referenceMode, gradients: meta.gradients }, reference);
      assertClose(out.losses, expected[`${name}.losses`], `${name}.losses`);
      assertClose(out.loss, expected[`${name}.loss`], `${name}.loss`);
      assertClose(out.chosenRewards, expected[`${name}.chosen_rewards`], `${name}.chosen_rewards`);
      assertClose(out.rejectedRewards, expected[`${name}.rejected_rewards`], `${name}.rejected_rewards`);
      assertClose(out.chosenLogps, expected[`${name}.chosen_logps`], `${name}.chosen_logps`);
      assertClose(out.rejectedLogps, expected[`${name}.rejected_logps`], `${name}.rejected_logps`);
      const metrics = preferenceMetrics(out);
      for (const key of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected'] as const) {
        const want = c.trl_metrics[key]!;
        assert.ok(Math.abs(metrics[key]! - want) <= 2e-5 + 1e-4 * Math.abs(want), `${name} ${key}: ${metrics[key]} vs TRL ${want}`);
      }
      for (const p of meta.gradients) assertGradientClose(out.gradients[p], expected[`${name}.grad.${p}`], `${name}.grad.${p}`);
    });
  }

  it('LD-DPO and WPO give TRL\'s numbers on every scoring path (shared prefix, unshared, batched pairs)', async () => {
    for (const name of ['ld_alpha0.5', 'ld_wpo_bco', 'wpo', 'mpo']) {
      const loss = tpoLoss(name, meta.cases[name]!.trl_config);
      for (const variant of [{ sharePrefix: false }, { batchPairs: true }] satisfies ForwardOptions[]) {
        const out = await preferenceForward(policy, pairs, { loss, referenceMode: 'frozen-copy', gradients: meta.gradients, ...variant }, reference);
        const what = `${name} ${JSON.stringify(variant)}`;
        assertClose(out.losses, expected[`${name}.losses`], `${what} losses`);
        assertClose(out.chosenLogps, expected[`${name}.chosen_logps`], `${what} chosen_logps`);
        for (const p of meta.gradients) assertGradientClose(out.gradients[p], expected[`${name}.grad.${p}`], `${what} grad.${p}`);
      }
    }
  });

  it("LD-DPO with a precomputed reference: the reference's LD-weighted log-probs as TRL precomputes them", async () => {
    const loss = tpoLoss('ld_alpha0.5', meta.cases['ld_alpha0.5']!.trl_config);
    // What the trainer's precompute pass runs: the reference alone, reference-free, with the same ldAlpha.
    const ref = await preferenceForward(reference, pairs, { loss: { referenceFree: true, ldAlpha: 0.5 }, referenceMode: 'none' });
    assertClose(ref.chosenLogps, expected['ld_alpha0.5.precomputed_ref_chosen_logps'], 'precomputed chosen');
    assertClose(ref.rejectedLogps, expected['ld_alpha0.5.precomputed_ref_rejected_logps'], 'precomputed rejected');
    const c = ref.chosenLogps.toTypedArray() as Float32Array;
    const r = ref.rejectedLogps.toTypedArray() as Float32Array;
    const withRef = pairs.map((p, i) => ({ ...p, reference: [c[i]!, r[i]!] as [number, number] }));
    const out = await preferenceForward(policy, withRef, { loss, referenceMode: 'precomputed' });
    assertClose(out.losses, expected['ld_alpha0.5.losses'], 'precomputed losses');
  });

  it('SimPO and ORPO need no reference model', async () => {
    for (const name of ['simpo', 'orpo']) {
      const loss = tpoLoss(name, meta.cases[name]!.trl_config);
      assert.equal(needsReference(loss), false);
      // Even when the caller asks for a frozen copy, the loss reads none.
      const out = await preferenceForward(policy, pairs, { loss, referenceMode: 'lora-disabled' });
      assert.equal(out.refChosen, undefined, `${name}: no reference scored`);
      assertClose(out.losses, expected[`${name}.losses`], `${name}.losses`);
    }
  });

  it("TPO's fields map onto the list: sigmoid + sftWeight is ['sigmoid', 'sft'] with weights [1, alpha]", async () => {
    const old = await preferenceForward(policy, pairs, { loss: { beta: 0.3, sftWeight: 0.5 }, referenceMode: 'frozen-copy' }, reference);
    assertClose(old.losses, expected['tpo.losses'], 'tpo.losses');
    assertClose(old.loss, expected['tpo.loss'], 'tpo.loss');
  });
});

describe('loss config', () => {
  const bad: [LossConfig, RegExp][] = [
    [{ type: ['sigmoid', 'sft'], weights: [1] }, /weights: has 1 entries for 2 loss types/],
    [{ type: 'exo_pair' }, /labelSmoothing: exo_pair needs it > 0/],
    [{ type: 'aot', useWeighting: true }, /useWeighting: cannot weigh aot/],
    [{ type: ['simpo', 'sigmoid'] }, /type: simpo combines with sft only, not sigmoid/],
    [{ type: ['simpo', 'orpo'] }, /simpo and orpo are two objectives/],
    [{ type: 'orpo', ldAlpha: 0.5 }, /ldAlpha: applies to DPOTrainer's losses, not orpo/],
    [{ type: ['sigmoid', 'sft'], sftWeight: 1 }, /sftWeight: and an 'sft' entry in type both set the SFT term/],
    [{ type: 'kto' as 'sigmoid' }, /type/],
    [{ ldAlpha: 1.5 }, /ldAlpha/],
  ];
  for (const [loss, message] of bad) {
    it(`refuses ${JSON.stringify(loss)}`, () => {
      assert.throws(() => parse(LossConfig, loss, 'loss'), message);
    });
  }

  it('the native side refuses the same, naming the setting', async function () {
    this.timeout(60_000);
    using policy = await VideoLM.load(join(DPO, 'policy'));
    const pairs = await dpoPairs();
    const { native } = await import('../../lib/native.js');
    const call = async (loss: Record<string, unknown>) => native().trainPreferenceForward({ policy: policy.native, pairs, loss: loss as never, referenceMode: 'none' } as never);
    await assert.rejects(call({ type: 'exo_pair' }), { code: 'ERR_TPO_ARGUMENT', message: /loss: exo_pair needs labelSmoothing > 0/ });
    await assert.rejects(call({ type: ['sigmoid', 'sft'], weights: [1, 2, 3] }), { code: 'ERR_TPO_ARGUMENT', message: /loss: weights has 3 entries for 2/ });
    await assert.rejects(call({ type: 'nope' }), { code: 'ERR_TPO_ARGUMENT', message: /loss: type: loss type 'nope' is not one of sigmoid, hinge/ });
  });

  it('a train config takes a name or a list with weights, and the old fields', () => {
    const base = { model: 'm', output: 'o', data: { train: 't.jsonl' } };
    assert.deepEqual(parse(TrainConfig, { ...base, loss: { type: ['sigmoid', 'bco_pair', 'sft'], weights: [0.8, 0.2, 1] } }, 'c').loss.type,
      ['sigmoid', 'bco_pair', 'sft']);
    assert.equal(parse(TrainConfig, { ...base, preset: 'longva', loss: { type: 'robust', labelSmoothing: 0.1 } }, 'c').loss.type, 'robust');
    assert.throws(() => parse(TrainConfig, { ...base, loss: { type: ['ipo', 'hinge'], weights: [1] } }, 'run.json'), /run.json: loss.weights: has 1 entries/);
  });
});
