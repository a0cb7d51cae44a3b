// What a multi-process run is told: torchrun's environment variables (set by `--nproc N`, torchrun, or any launcher
// that follows its conventions) and the `distributed` settings of a config. One schema per concept, zod at the edge.
import { z } from 'zod';

import { parse } from '../validate.js';

/** The `distributed` field of a train or generate config (and `tpo eval`'s --dist-* flags). */
export const DistributedConfig = z.strictObject({
  /** c10d's backend: gloo (CPU tensors; the default) or nccl (CUDA builds with NCCL). */
  backend: z.enum(['gloo', 'nccl']).default('gloo'),
  /** Seconds a rendezvous or a collective waits for the slowest rank before the run fails, naming it. */
  timeout: z.number().positive().max(86_400).default(600),
  /** Gradient all-reduce bucket size in MiB (PyTorch DDP's default: 25). */
  bucketMB: z.number().positive().max(4096).default(25),
  /** ZeRO stage 1: each rank keeps AdamW's moments of its partition of the parameters only. */
  shardOptimizer: z.boolean().default(false),
});
export type DistributedConfig = z.input<typeof DistributedConfig>;
export type ResolvedDistributedConfig = z.output<typeof DistributedConfig>;

const integer = z.string().trim().regex(/^\d+$/, 'must be a non-negative integer').transform(Number);

/** torchrun's variables, as the environment holds them (strings). */
export const TorchrunEnv = z.object({
  RANK: integer,
  WORLD_SIZE: integer.refine((n) => n >= 1, 'must be >= 1'),
  LOCAL_RANK: integer.optional(),
  LOCAL_WORLD_SIZE: integer.refine((n) => n >= 1, 'must be >= 1').optional(),
  MASTER_ADDR: z.string().trim().min(1).default('127.0.0.1'),
  MASTER_PORT: integer.refine((n) => n >= 1 && n <= 65_535, 'must be a port (1-65535)').default(29_500),
}).superRefine((e, ctx) => {
  if (e.RANK >= e.WORLD_SIZE) ctx.addIssue({ code: 'custom', path: ['RANK'], message: `must be below WORLD_SIZE (${e.WORLD_SIZE})` });
  const localSize = e.LOCAL_WORLD_SIZE ?? e.WORLD_SIZE;
  if (e.LOCAL_RANK !== undefined && e.LOCAL_RANK >= localSize) {
    ctx.addIssue({ code: 'custom', path: ['LOCAL_RANK'], message: `must be below LOCAL_WORLD_SIZE (${localSize})` });
  }
});

/** This process's place in a multi-process run. */
export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

/**
 * The run this process is a rank of, from torchrun's variables; undefined when WORLD_SIZE is not set (one
 * process). A variable that is set but wrong is an error naming it.
 */
export function distEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | undefined {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return undefined;
  const names = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const;
  const given = Object.fromEntries(names.filter((n) => env[n] !== undefined && env[n] !== '').map((n) => [n, env[n]]));
  const e = parse(TorchrunEnv, given, 'the environment (torchrun\'s variables)');
  return {
    rank: e.RANK, worldSize: e.WORLD_SIZE, localRank: e.LOCAL_RANK ?? e.RANK, localWorldSize: e.LOCAL_WORLD_SIZE ?? e.WORLD_SIZE,
    masterAddr: e.MASTER_ADDR, masterPort: e.MASTER_PORT,
  };
}

/** Whether this process is a rank other than 0 of a multi-process run (it prints and writes nothing of its own). */
export function isSecondaryRank(env: NodeJS.ProcessEnv = process.env): boolean {
  const e = distEnv(env);
  return e !== undefined && e.rank > 0;
}
