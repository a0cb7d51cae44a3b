// The preference loss and how a preference forward runs, as one schema each, imported by the trainer's config, the
// forward, the optimizer step and the addon's types: the defaults live here and nowhere else.
import { z } from 'zod';

/** TRL's loss_type: sigmoid (DPO; cDPO with labelSmoothing), hinge (SLiC), ipo (length-normalised), robust. */
export const LOSS_TYPES = ['sigmoid', 'hinge', 'ipo', 'robust'] as const;
export const LossType = z.enum(LOSS_TYPES);
export type LossType = z.output<typeof LossType>;

/** Where reference log-probs come from: computed once before training, the policy with its adapters switched off,
 * a frozen copy of the starting weights, or no reference (reference-free). */
export const REFERENCE_MODES = ['precomputed', 'lora-disabled', 'frozen-copy', 'none'] as const;
export const ReferenceMode = z.enum(REFERENCE_MODES);
export type ReferenceMode = z.output<typeof ReferenceMode>;

const lossFields = {
  type: LossType,
  beta: z.number().positive(),
  labelSmoothing: z.number().min(0).lt(0.5),
  /** No reference model: the implicit reward is beta * log p(answer). */
  referenceFree: z.boolean(),
  /** Weight of the NLL of the chosen answers: TPO's alpha, TRL's rpo_alpha. */
  sftWeight: z.number().min(0),
};

/** The loss, defaults filled (TRL's: sigmoid, beta 0.1, no smoothing, with a reference, no SFT term). */
export const LossConfig = z.strictObject({
  type: lossFields.type.default('sigmoid'),
  beta: lossFields.beta.default(0.1),
  labelSmoothing: lossFields.labelSmoothing.default(0),
  referenceFree: lossFields.referenceFree.default(false),
  sftWeight: lossFields.sftWeight.default(0),
});
export type LossConfig = z.input<typeof LossConfig>;

/** The loss fields a train config may set; those left out come from the preset, then the objective, then LossConfig. */
export const LossOverrides = z.strictObject(lossFields).partial();
export type LossOverrides = z.output<typeof LossOverrides>;

/** How a batch of pairs runs through the models (the forward and the training step take the same settings). */
export const ForwardSettings = z.strictObject({
  loss: LossConfig.prefault({}),
  /** TPO and TRL: a frozen copy of the starting weights; with LoRA, the adapters switched off. */
  referenceMode: ReferenceMode.default('lora-disabled'),
  /** Run each pair's prompt (video included) once; both answers attend to it. */
  sharePrefix: z.boolean().default(true),
  /** Every pair's answers in one padded forward per model (small models: fewer, larger operations). */
  batchPairs: z.boolean().default(false),
});
export type ForwardSettings = z.input<typeof ForwardSettings>;
