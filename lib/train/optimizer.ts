// The native training step from TypeScript: one call per optimizer step (forward over micro-batches, backward,
// clipping, AdamW), the learning rate given by the schedule.
import { z } from 'zod';

import type { Group } from '../dist/group.js';
import type { VideoLM } from '../model/video-lm.js';
import { native, type NativePair, type NativeSftRecord, type NativeStepResult, type NativeTrainer } from '../native.js';
import { parse } from '../validate.js';
import { ForwardSettings } from './loss.js';

export const OptimizerConfig = z.strictObject({
  /** AdamW's decoupled weight decay, on weight matrices only (never norms, biases or image_newline). */
  weightDecay: z.number().min(0).default(0),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  eps: z.number().positive().default(1e-8),
  /** Global-norm clipping (0: none; the norm is reported as grad_norm either way). */
  maxGradNorm: z.number().min(0).default(1),
});
export type OptimizerConfig = z.input<typeof OptimizerConfig>;

/** The Optimizer's options: the config's, and each part's multiple of the step's learning rate (TrainConfig's
 * visionLr and projectorLr over its lr; the language model's is 1). */
export const OptimizerOptions = OptimizerConfig.extend({
  visionLrScale: z.number().positive().finite().default(1),
  projectorLrScale: z.number().positive().finite().default(1),
});
export type OptimizerOptions = z.input<typeof OptimizerOptions>;

const PreferenceStep = ForwardSettings.extend({
  /** Empty only for a rank of a data-parallel run whose shard of the step is empty. */
  microBatches: z.array(z.array(z.custom<NativePair>())),
  lr: z.number().min(0),
  /** Encode each pair's video once for both answers and both models (false: once per answer and model). */
  encodeOnce: z.boolean().default(true),
});
export type PreferenceStep = z.input<typeof PreferenceStep>;

/** Data parallelism over a process group: each rank steps on its shard, gradients summed over the ranks. */
export interface DataParallel {
  group: Group;
  /** Gradient all-reduce bucket (bytes). */
  bucketBytes?: number;
  /** ZeRO stage 1: this rank keeps (and saves) AdamW's moments of its partition of the parameters only. */
  shardOptimizer?: boolean;
}

export class Optimizer {
  readonly #trainer: NativeTrainer;

  /** Trains the parameters `policy.setTrainable(...)` left trainable; `reference` for the frozen-copy mode. With
   * `parallel`, every rank of its group must make the same calls (each step's shards may be empty on a rank). */
  constructor(policy: VideoLM, options: OptimizerOptions = {}, reference?: VideoLM, parallel?: DataParallel) {
    const o = parse(OptimizerOptions, options, 'Optimizer: options');
    this.#trainer = new (native().Trainer)({
      policy: policy.native, reference: reference?.native, ...o,
      ...(parallel ? { group: parallel.group.native, bucketBytes: parallel.bucketBytes, shardOptimizer: parallel.shardOptimizer ?? false } : {}),
    });
  }

  /** Bytes of AdamW moments this process holds (its partition under shardOptimizer). */
  get optimizerBytes(): number {
    return this.#trainer.optimizerBytes;
  }

  get steps(): number {
    return this.#trainer.steps;
  }

  get trainable(): number {
    return this.#trainer.trainable;
  }

  /** One preference (DPO / TPO) step. Rejects, leaving the weights untouched, when the loss is not finite. */
  preferenceStep(step: PreferenceStep): Promise<NativeStepResult> {
    return this.#trainer.preferenceStep(parse(PreferenceStep, step, 'Optimizer.preferenceStep'));
  }

  /** One SFT step: token-mean cross entropy over every answer token of the step (each record's video in its own
   * layout, as a pair's). */
  sftStep(step: { microBatches: NativeSftRecord[][]; lr: number }): Promise<NativeStepResult> {
    return this.#trainer.sftStep(step);
  }

  /** The optimizer's moments and step counts (safetensors, atomic). */
  saveState(path: string): Promise<void> {
    return this.#trainer.saveState(path);
  }

  /** One state file, or every shard of a sharded one (each rank takes its parameters' moments from them). */
  loadState(path: string | string[]): Promise<void> {
    return this.#trainer.loadState(path);
  }
}
