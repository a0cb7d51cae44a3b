// A multi-process run's process group from TypeScript: c10d's (native/dist) behind a small API of what the stages
// need: rank 0's decisions shared with every rank, JSON gathered from every rank, shards of a list.
//
// Every method is a collective: every rank calls it, in the same order (the native calls run on the one engine
// thread in call order, with the training steps' own all-reduces between them). A failed collective rejects with
// code ERR_TPO_DIST and a message naming the rank that stopped (native/dist/process_group.h).
import { createHash } from 'node:crypto';

import { native, type NativeProcessGroup } from '../native.js';
import { parse } from '../validate.js';
import { packageVersion } from '../version.js';
import { type DistEnv, distEnv, DistributedConfig } from './config.js';

/** Rank 0's error, re-thrown on every rank that was waiting for its decision. */
interface SharedError {
  error: { message: string; code?: string; name?: string };
}

export class Group {
  private constructor(readonly native: NativeProcessGroup, readonly env: DistEnv) {}

  /**
   * Joins the run `env` describes: rank 0 hosts the rendezvous (c10d's TCPStore at MASTER_ADDR:MASTER_PORT).
   * `identity` is what every rank must share (the command and its config): ranks that differ, or run another tpo
   * version, are refused here, before any work.
   */
  static async connect(env: DistEnv, settings: DistributedConfig, identity: unknown): Promise<Group> {
    const s = parse(DistributedConfig, settings, 'distributed');
    // The machine's cores shared by its ranks (torchrun sets no thread count tpo reads): cores / LOCAL_WORLD_SIZE,
    // unless TPO_NUM_THREADS says (`--nproc` sets it).
    if (!process.env.TPO_NUM_THREADS && env.localWorldSize > 1) {
      native().setNumThreads(Math.max(1, Math.floor(native().runtimeInfo().threads.cores / env.localWorldSize)));
    }
    const digest = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 16);
    const group = await native().connectProcessGroup({
      backend: s.backend, masterAddr: env.masterAddr, masterPort: env.masterPort, rank: env.rank, worldSize: env.worldSize,
      localRank: env.localRank, timeoutMs: s.timeout * 1000, identity: `tpo ${packageVersion()} (world size ${env.worldSize}, config ${digest})`,
    });
    return new Group(group, env);
  }

  /** The group of this process's run when torchrun's variables say it is one of several ranks; else undefined. */
  static async fromEnvironment(settings: DistributedConfig, identity: unknown): Promise<Group | undefined> {
    const env = distEnv();
    if (!env || env.worldSize === 1) return undefined;
    return Group.connect(env, settings, identity);
  }

  get rank(): number {
    return this.env.rank;
  }

  get size(): number {
    return this.env.worldSize;
  }

  get isMain(): boolean {
    return this.env.rank === 0;
  }

  /** Every rank's `value` (JSON), in rank order. */
  async allGather<T>(value: T, what: string): Promise<T[]> {
    const parts = await this.native.allGather(JSON.stringify(value ?? null), what);
    return parts.map((p) => JSON.parse(p) as T);
  }

  /**
   * What rank 0's `decide` returns, on every rank; the others wait. An error on rank 0 is every rank's error (same
   * message and code), so no rank waits for a decision that never comes.
   */
  async decide<T>(what: string, decide: () => Promise<T>): Promise<T> {
    let mine: T | SharedError | null = null;
    if (this.isMain) {
      try {
        mine = await decide();
      } catch (error) {
        const e = error as Error & { code?: string };
        mine = { error: { message: e.message, ...(e.code ? { code: e.code } : {}), name: e.name } };
        await this.allGather(mine, what);
        throw error;
      }
    }
    const [decision] = await this.allGather(mine, what);
    if (decision && typeof decision === 'object' && 'error' in decision && Object.keys(decision).length === 1) {
      const { message, code, name } = (decision as SharedError).error;
      throw Object.assign(new Error(`rank 0: ${message}`), { ...(code ? { code } : {}), name: name ?? 'Error' });
    }
    return decision as T;
  }

  /** The element-wise sum of every rank's `values`. */
  async sum(values: readonly number[], what: string): Promise<number[]> {
    return Array.from(await this.native.allReduce(Float64Array.from(values), what));
  }

  barrier(what: string): Promise<void> {
    return this.native.barrier(what);
  }

  /** Communication so far: collectives, bytes each rank sent into them, seconds in them. */
  stats(): { calls: number; bytes: number; seconds: number } {
    return this.native.stats();
  }

  /** A last barrier, then the group is released. Call it only when every rank got here (not after an error). */
  close(): Promise<void> {
    return this.native.close();
  }
}

/** The items rank `rank` of `size` takes: every size-th, from its rank on (balanced whatever the order). */
export function roundRobin<T>(items: readonly T[], rank: number, size: number): T[] {
  return items.filter((_, i) => i % size === rank);
}

/** `items` cut into exactly `parts` contiguous runs, as even as possible (some empty when there are fewer items). */
export function contiguousParts<T>(items: readonly T[], parts: number): T[][] {
  return Array.from({ length: parts }, (_, i) => items.slice(Math.floor((i * items.length) / parts), Math.floor(((i + 1) * items.length) / parts)));
}
