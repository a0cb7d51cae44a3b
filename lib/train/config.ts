// The training run's config (`tpo train --config run.json`): every field a user writes, validated with zod.
// Unknown fields are errors; defaults follow TPO's published settings where the paper gives them.
import { z } from 'zod';

import { DistributedConfig } from '../dist/config.js';
import { defaultFrames } from '../model/files.js';
import { ON_VIDEO_ERROR } from '../model/session.js';
import { LossOverrides, ReferenceMode } from './loss.js';
import { OptimizerConfig } from './optimizer.js';
import { Schedule } from './schedule.js';

/** TPO's published settings (the paper's summaries): LongVA beta 0.3, alpha 0.5, lr 4e-6; LLaVA-Video beta 0.2,
 * alpha 1.0, lr 3e-7; cosine with 0.1 warm-up. */
export const PRESETS = {
  longva: { loss: { type: 'sigmoid', beta: 0.3, sftWeight: 0.5 }, lr: 4e-6 },
  'llava-video': { loss: { type: 'sigmoid', beta: 0.2, sftWeight: 1.0 }, lr: 3e-7 },
} as const;

export const TrainConfig = z.strictObject({
  /** The model folder: config.json, safetensors weights, tokenizer.json, tokenizer_config.json, preprocessor_config.json. */
  model: z.string().min(1),
  /** Where the model runs: cpu, cuda or cuda:N (a CUDA build of the addon; bf16 autocast on CUDA). */
  device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'cpu, cuda or cuda:N').default('cpu'),
  /** The weights' dtype (default: as stored). bfloat16: LoRA adapters and AdamW's state stay float32, and a full
   * fine-tune keeps float32 master weights. */
  dtype: z.enum(['float32', 'bfloat16']).optional(),
  /** The run folder: metrics.jsonl, checkpoint-<step>/, final/. */
  output: z.string().min(1),
  data: z.strictObject({
    /** Preference pairs (dpo, tpo) or SFT records (sft), JSONL. */
    train: z.string().min(1),
    validation: z.string().min(1).optional(),
    /** Videos resolve against this folder (default: the dataset file's folder). */
    videoRoot: z.string().min(1).optional(),
  }),
  /** tpo = sigmoid DPO + alpha x SFT on the chosen answer; dpo = the preference loss alone; sft = cross entropy. */
  objective: z.enum(['tpo', 'dpo', 'sft']).default('tpo'),
  preset: z.enum(['longva', 'llava-video']).optional(),
  /** The loss in TRL 1.x's shape (lib/train/loss.ts); fields left out come from the preset, then the objective
   * (tpo adds an sft term of weight 1 unless type lists one). */
  loss: LossOverrides.prefault({}),
  /** Where reference log-probs come from; default lora-disabled with LoRA, else frozen-copy. */
  reference: ReferenceMode.optional(),
  lora: z.strictObject({
    r: z.int().min(1).default(8),
    alpha: z.number().positive().default(16),
    dropout: z.number().min(0).max(1).default(0),
    targetModules: z.array(z.string()).min(1).optional(),
  }).optional(),
  /** Which parts train besides a LoRA adapter (TPO freezes the vision tower). */
  train: z.strictObject({
    vision: z.boolean().default(false),
    projector: z.boolean().default(false),
    language: z.boolean().default(false),
  }).prefault({}),
  /** Peak learning rate (default: the preset's, else 1e-5). */
  lr: z.number().positive().optional(),
  /** Peak learning rates of the vision tower's and the projector's parameters (LLaVA-NeXT's mm_vision_tower_lr and
   * mm_projector_lr; LLaVA-Video trains its tower at a fifth of the language model's rate), on lr's schedule.
   * Default: lr. Each applies to what trains in that part: train.vision / train.projector, or a LoRA adapter there. */
  visionLr: z.number().positive().optional(),
  projectorLr: z.number().positive().optional(),
  optimizer: OptimizerConfig.prefault({}),
  schedule: Schedule.prefault({ type: 'cosine', warmupRatio: 0.1 }),
  /** Pairs (or records) per optimizer step. */
  batchSize: z.int().min(1).default(8),
  /** Micro-batches per step: the batch is split into this many forward/backward passes. */
  gradientAccumulation: z.int().min(1).default(1),
  epochs: z.int().min(1).default(1),
  maxSteps: z.int().min(1).optional(),
  seed: z.int().nonnegative().default(0),
  /** Frames sampled uniformly from each video, and their size before the tower's preprocessing. */
  /** Default: the model's (lib/model/files.ts defaultFrames: Video-LLaVA 8, else 16). */
  frames: z.int().min(1).optional(),
  /** Score a micro-batch's pairs in one padded forward per model instead of pair by pair with a shared prompt:
   * several times faster for small models (the cost is the number of operations), more compute for large ones. */
  batchPairs: z.boolean().default(false),
  /** Activation checkpointing per decoder layer (and tower layer, when the tower trains): for long video contexts,
   * much less memory for about one more forward pass of time (docs/performance.md measures both). */
  gradientCheckpointing: z.boolean().default(false),
  /** Longest sequence, visual tokens included; longer records are truncated by encodePair's rule. */
  maxLength: z.int().min(16).optional(),
  checkpoint: z.strictObject({
    every: z.int().min(1).default(50),
    keepLast: z.int().min(1).default(2),
  }).prefault({}),
  /** Validation every N steps (0: only at the end, if there is a validation file). */
  evalEvery: z.int().nonnegative().default(0),
  /** final/: the LoRA adapter in PEFT layout, or with `merge` the full weights with the adapter folded in. */
  export: z.strictObject({ merge: z.boolean().default(false) }).prefault({}),
  /** TensorBoard event files beside metrics.jsonl (train/loss, train/rewards/accuracies, ...: TRL's names). */
  tensorboard: z.boolean().default(true),
  /** A non-finite loss stops the run (default) or skips the batch. */
  onNonFinite: z.enum(['stop', 'skip']).default('stop'),
  /** A video that cannot be decoded: its records are skipped and reported (default), or the run stops. */
  onVideoError: z.enum(ON_VIDEO_ERROR).default('skip'),
  /** Multi-process runs (`tpo train --nproc N`, torchrun): c10d's backend, timeouts, buckets, ZeRO-1. Used only when
   * torchrun's variables (WORLD_SIZE > 1) say this process is one of several ranks. */
  distributed: DistributedConfig.prefault({}),
  /** The output folder may hold another run (or this one, not resumed): delete its checkpoints, metrics.jsonl,
   * final/ and run.json and start this run. Without it such a folder is an error (a folder holds one run). */
  overwrite: z.boolean().default(false),
}).superRefine((c, ctx) => {
  // A part's rate with nothing of that part trained would be silently ignored.
  for (const [field, part] of [['visionLr', 'vision'], ['projectorLr', 'projector']] as const)
    if (c[field] !== undefined && !c.train[part] && !c.lora)
      ctx.addIssue({ code: 'custom', path: [field], message: `${field} is set but nothing of the ${part === 'vision' ? 'vision tower' : 'projector'} trains (train.${part} is false and there is no LoRA adapter)` });
}).transform((c) => ({ ...c, frames: c.frames ?? defaultFrames(c.model) }));
export type TrainConfig = z.input<typeof TrainConfig>;
export type ResolvedTrainConfig = z.output<typeof TrainConfig>;
