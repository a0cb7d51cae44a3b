// The native runtime: threads, what libtorch and FFmpeg the addon runs on, a matmul probe.
import { readFileSync } from 'node:fs';

import { z } from 'zod';

import { parse } from './validate.js';
import { type MatmulResult, native, type RuntimeInfo } from './native.js';

export type { MatmulResult, RuntimeInfo };

export function runtimeInfo(): RuntimeInfo {
  return native().runtimeInfo();
}

/**
 * libtorch's intra-op thread count. The addon sets it at load time from TPO_NUM_THREADS, else to every core
 * this process may use (libtorch alone may pick one thread when embedded).
 */
export function setNumThreads(threads: number): void {
  native().setNumThreads(parse(z.number().int().min(1).max(4096), threads, 'setNumThreads: threads'));
}

/** Square float32 matmuls for about `seconds` seconds, off the event loop: achieved GFLOP/s. */
export function benchMatmul(options: { size?: number; seconds?: number } = {}): Promise<MatmulResult> {
  const { size, seconds } = parse(
    z.strictObject({ size: z.number().int().min(1).max(16384).default(1024), seconds: z.number().min(0).max(600).default(1) }),
    options,
    'benchMatmul',
  );
  return native().benchMatmul(size, seconds);
}

/**
 * This process's peak resident memory in bytes: VmHWM of /proc/self/status, the high-water mark of its own address
 * space. (`process.resourceUsage().maxRSS` is not: Linux carries the parent's RSS at fork into a child's maxrss
 * across exec, so a child of a large process reports at least its parent's size.) Elsewhere: maxRSS.
 */
export function peakRss(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) * 1024;
  } catch {
    // no procfs
  }
  return process.resourceUsage().maxRSS * 1024;
}
