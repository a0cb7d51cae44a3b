// Preference objectives (TRL's DPO losses and TPO's SFT term) over a batch of pairs, through the native model:
// the loss, TRL's metrics and, on request, gradients (the losses' schema is losses.ts). The training step runs the same forward.
import { z } from 'zod';

import { VideoLM } from '../model/video-lm.js';
import { type Tensor } from '../native.js';
import { parse } from '../validate.js';
import { native } from '../native.js';
import { LossConfig } from './losses.js';

export { LossConfig };

export interface PreferencePairInput {
  /** 1-D ids: the prompt (the image id once when there is a video). */
  prompt: Tensor;
  chosen: Tensor;
  rejected: Tensor;
  /** Frames [F, 3, S, S] or visual tokens [V, D]. */
  video?: Tensor;
  /** Precomputed reference log-probs [chosen, rejected]. */
  reference?: [number, number];
}

const ForwardOptions = z.strictObject({
  loss: LossConfig.prefault({}),
  /** Where reference log-probs come from (TPO and TRL: a frozen copy of the starting weights). */
  referenceMode: z.enum(['precomputed', 'lora-disabled', 'frozen-copy', 'none']).default('lora-disabled'),
  /** Run each pair's prompt (video included) once; both answers attend to it. */
  sharePrefix: z.boolean().default(true),
  /** Every pair's answers in one padded forward per model (small models: fewer, larger operations). */
  batchPairs: z.boolean().default(false),
  /** Parameter names whose gradients of the loss to return. */
  gradients: z.array(z.string()).optional(),
});
export type ForwardOptions = z.input<typeof ForwardOptions>;

export interface PreferenceOutput {
  loss: Tensor<'float32'>;
  losses: Tensor<'float32'>;
  nll: Tensor<'float32'>;
  chosenRewards: Tensor<'float32'>;
  rejectedRewards: Tensor<'float32'>;
  /** The log-probs TRL logs as logps/chosen and logps/rejected: ld-weighted with ldAlpha; simpo, orpo: per-token means. */
  chosenLogps: Tensor<'float32'>;
  rejectedLogps: Tensor<'float32'>;
  /** Summed log-probs of each answer under the policy. */
  policyChosen: Tensor<'float32'>;
  policyRejected: Tensor<'float32'>;
  refChosen?: Tensor<'float32'>;
  refRejected?: Tensor<'float32'>;
  gradients: Record<string, Tensor<'float32'>>;
}

/** The preference loss of `pairs` under `policy` (and `reference`, for the frozen-copy mode). */
export async function preferenceForward(
  policy: VideoLM, pairs: PreferencePairInput[], options: ForwardOptions = {}, reference?: VideoLM,
): Promise<PreferenceOutput> {
  const o = parse(ForwardOptions, options, 'preferenceForward: options');
  const out = await native().trainPreferenceForward({
    policy: policy.native, reference: reference?.native, pairs, ...o,
  });
  return out as unknown as PreferenceOutput;
}

/** TRL's metric names for a batch (means over pairs), from a forward's output. */
export function preferenceMetrics(out: PreferenceOutput): Record<string, number> {
  const mean = (t: Tensor) => {
    const a = t.toTypedArray() as Float32Array;
    return a.reduce((s, x) => s + x, 0) / a.length;
  };
  const chosen = out.chosenRewards.toTypedArray() as Float32Array;
  const rejected = out.rejectedRewards.toTypedArray() as Float32Array;
  return {
    loss: mean(out.loss),
    'rewards/chosen': mean(out.chosenRewards),
    'rewards/rejected': mean(out.rejectedRewards),
    'rewards/accuracies': chosen.reduce((s, c, i) => s + (c > rejected[i]! ? 1 : 0), 0) / chosen.length,
    'rewards/margins': chosen.reduce((s, c, i) => s + c - rejected[i]!, 0) / chosen.length,
    'logps/chosen': mean(out.chosenLogps),
    'logps/rejected': mean(out.rejectedLogps),
    nll_loss: mean(out.nll),
  };
}
