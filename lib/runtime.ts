// The native runtime: threads, what libtorch and FFmpeg the addon runs on, a matmul probe.
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
