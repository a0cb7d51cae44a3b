// The preference loss and how a preference forward runs, as one schema each, imported by the trainer's config, the
// forward, the optimizer step and the addon's types: the defaults live here and nowhere else. The loss has TRL 1.x's
// config shape (DPOConfig loss_type / loss_weights, ld_alpha, use_weighting, discopop_tau; CPOConfig simpo_gamma);
// native/train/losses.cc computes every loss as TRL 1.13's code does, and test/fixtures/trl holds TRL's own numbers.
import { z } from 'zod';

/**
 * TRL's loss_type names (DPOTrainer 1.13), plus `simpo` (CPOTrainer's loss_type="simpo") and `orpo` (ORPOTrainer's
 * odds-ratio loss, its NLL term included).
 */
export const LOSS_TYPES = [
  'sigmoid', 'hinge', 'ipo', 'exo_pair', 'nca_pair', 'robust', 'bco_pair', 'sppo_hard', 'aot', 'aot_unpaired',
  'apo_zero', 'apo_down', 'discopop', 'sigmoid_norm', 'sft', 'simpo', 'orpo',
] as const;
export const LossType = z.enum(LOSS_TYPES);
export type LossType = z.output<typeof LossType>;

/** The losses simpo and orpo may be combined with (themselves and sft). */
const REFERENCE_FREE_LOSSES: readonly LossType[] = ['sft', 'simpo', 'orpo'];

const fields = {
  /** One loss, or several summed with `weights` (TRL's loss_type list: MPO is ["sigmoid", "bco_pair", "sft"]). */
  type: z.union([LossType, z.array(LossType).min(1)]),
  /** TRL's loss_weights: one per entry of `type` (default 1 each). */
  weights: z.array(z.number()).min(1),
  beta: z.number().positive(),
  /** robust's flip probability, exo_pair's epsilon (> 0), aot's and simpo's smoothing; on sigmoid, cDPO. */
  labelSmoothing: z.number().min(0).lt(0.5),
  /** No reference model: its log-probs are 0 (the implicit reward is beta * log p(answer)). */
  referenceFree: z.boolean(),
  /** Weight of an added sft term (the NLL of the chosen answers): TPO's alpha, TRL 0.x's rpo_alpha. */
  sftWeight: z.number().min(0),
  /** LD-DPO's alpha: answer tokens past the shorter answer's length count this much (TRL's ld_alpha). */
  ldAlpha: z.number().min(0).max(1),
  /** WPO: each pair's loss weighted by the policy's length-normalised probabilities (TRL's use_weighting). */
  useWeighting: z.boolean(),
  /** DiscoPOP's temperature (TRL's discopop_tau). */
  discopopTau: z.number().positive(),
  /** SimPO's target reward margin gamma (CPOConfig's simpo_gamma). */
  simpoGamma: z.number(),
};

type LossFields = { [K in keyof typeof fields]?: z.output<(typeof fields)[K]> };

/** The entries of `type` as a list. */
export function lossTypes(type: LossType | LossType[] | undefined): LossType[] {
  return type === undefined ? ['sigmoid'] : Array.isArray(type) ? type : [type];
}

/** The combinations TRL refuses (or that have no meaning), each an issue on the field to change. */
function checkLoss(loss: LossFields, ctx: z.core.$RefinementCtx): void {
  const types = lossTypes(loss.type);
  const has = (t: LossType) => types.includes(t);
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (loss.weights && loss.weights.length !== types.length) {
    issue('weights', `has ${loss.weights.length} entries for ${types.length} loss type${types.length === 1 ? '' : 's'}`);
  }
  if (has('exo_pair') && !(loss.labelSmoothing! > 0)) issue('labelSmoothing', 'exo_pair needs it > 0 (its epsilon; the EXO paper recommends 1e-3)');
  if (loss.useWeighting && (has('aot') || has('aot_unpaired'))) issue('useWeighting', 'cannot weigh aot or aot_unpaired, which sort the pairs');
  if (has('sft') && loss.sftWeight !== undefined && loss.sftWeight > 0) issue('sftWeight', "and an 'sft' entry in type both set the SFT term; keep one");
  const own = has('simpo') ? 'simpo' : has('orpo') ? 'orpo' : undefined;
  if (own) {
    if (has('simpo') && has('orpo')) issue('type', 'simpo and orpo are two objectives; pick one');
    const other = types.find((t) => !REFERENCE_FREE_LOSSES.includes(t));
    if (other) issue('type', `${own} combines with sft only, not ${other} (their rewards differ: mean log-probs against log-ratios)`);
    if (loss.ldAlpha !== undefined) issue('ldAlpha', `applies to DPOTrainer's losses, not ${own}`);
    if (loss.useWeighting) issue('useWeighting', `applies to DPOTrainer's losses, not ${own}`);
  }
}

/** The loss, defaults filled (TRL's: sigmoid, beta 0.1, no smoothing, with a reference, no SFT term). */
export const LossConfig = z.strictObject({
  type: fields.type.default('sigmoid'),
  weights: fields.weights.optional(),
  beta: fields.beta.default(0.1),
  labelSmoothing: fields.labelSmoothing.default(0),
  referenceFree: fields.referenceFree.default(false),
  sftWeight: fields.sftWeight.default(0),
  ldAlpha: fields.ldAlpha.optional(),
  useWeighting: fields.useWeighting.default(false),
  discopopTau: fields.discopopTau.default(0.05),
  simpoGamma: fields.simpoGamma.default(0.5),
}).superRefine(checkLoss);
export type LossConfig = z.input<typeof LossConfig>;
export type ResolvedLossConfig = z.output<typeof LossConfig>;

/** The loss fields a train config may set; those left out come from the preset, then the objective, then LossConfig. */
export const LossOverrides = z.strictObject(fields).partial().superRefine(checkLoss);
export type LossOverrides = z.output<typeof LossOverrides>;

/**
 * Whether the loss reads a reference model's log-probs: always, unless reference-free or simpo / orpo (TRL's
 * DPOTrainer keeps a reference even for sft alone, for its rewards).
 */
export function needsReference(loss: LossFields): boolean {
  const types = lossTypes(loss.type);
  return !loss.referenceFree && !types.includes('simpo') && !types.includes('orpo');
}

/** Where reference log-probs come from: computed once before training, the policy with its adapters switched off,
 * a frozen copy of the starting weights, or no reference (reference-free). */
export const REFERENCE_MODES = ['precomputed', 'lora-disabled', 'frozen-copy', 'none'] as const;
export const ReferenceMode = z.enum(REFERENCE_MODES);
export type ReferenceMode = z.output<typeof ReferenceMode>;

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
