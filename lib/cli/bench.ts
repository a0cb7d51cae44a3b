// `tpo bench`: speed figures as ratios against a baseline measured in the same run (machines here are shared
// and noisy, so absolute numbers alone mean little). Each later stage adds its own benchmark here.
import { benchMatmul, runtimeInfo, setNumThreads } from '../runtime.js';
import { benchDpoRows } from './bench-dpo.js';
import { benchModel } from './bench-model.js';
import { benchVideoSampling } from './bench-video.js';

export interface BenchRow {
  name: string;
  baseline: string;
  value: number;
  baselineValue: number;
  unit: string;
  /** The baseline's unit, when it differs (the matmul rate beside a model figure). */
  baselineUnit?: string;
  /** How many times better than the baseline (NaN: no like-for-like baseline, the figure stands beside it). */
  ratio: number;
}

/** float32 matmul GFLOP/s on every core vs on one thread: is libtorch's threading set up? */
export async function benchMatmulThreads(sizes = [256, 1024, 2048], seconds = 1): Promise<BenchRow[]> {
  const cores = runtimeInfo().threads.intraOp;
  const rows: BenchRow[] = [];
  try {
    for (const size of sizes) {
      setNumThreads(1);
      const one = await benchMatmul({ size, seconds });
      setNumThreads(cores);
      const all = await benchMatmul({ size, seconds });
      rows.push({
        name: `matmul ${size}x${size} f32, ${cores} threads`,
        baseline: '1 thread',
        value: all.gflops,
        baselineValue: one.gflops,
        unit: 'GFLOP/s',
        ratio: all.gflops / one.gflops,
      });
    }
  } finally {
    setNumThreads(cores);
  }
  return rows;
}

export const BENCHMARKS: Record<string, () => Promise<BenchRow[]>> = {
  matmul: () => benchMatmulThreads(),
  video: () => benchVideoSampling(),
  model: () => benchModel(),
  dpo: () => benchDpoRows(),
};

export function formatBench(rows: BenchRow[]): string {
  const lines = rows.map(
    (r) =>
      `${r.name.padEnd(60)} ${r.value.toFixed(1).padStart(9)} ${r.unit}  vs ${r.baseline}: ` +
      `${r.baselineValue.toFixed(1)} ${r.baselineUnit ?? r.unit}` +
      (Number.isNaN(r.ratio) ? '' : `  ratio ${r.ratio.toFixed(2)}x`),
  );
  return lines.join('\n');
}
