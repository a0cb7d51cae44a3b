// Train / validation / test splits of the synthetic world, disjoint by seed: a video's split is its seed modulo 3,
// so no seed can be in two splits, whatever the dataset seed or the split sizes. Split i's videos are the first n
// distinct seeds of its own stream, so asking for more videos keeps the ones already there (a resumed or grown
// dataset re-renders nothing it has).
import { deriveSeed } from './random.js';

export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

const THIRD = Math.floor(2 ** 32 / 3); // 3 * (THIRD - 1) + 2 < 2^32

export function splitOfSeed(seed: number): Split {
  return SPLITS[seed % 3]!;
}

/** The seeds of a split's first `count` videos. */
export function splitSeeds(datasetSeed: number, split: Split, count: number): number[] {
  const s = SPLITS.indexOf(split);
  const seeds: number[] = [];
  const seen = new Set<number>();
  for (let i = 0; seeds.length < count; i++) {
    const seed = 3 * (deriveSeed(datasetSeed, s, i) % THIRD) + s;
    if (!seen.has(seed)) seen.add(seed), seeds.push(seed);
  }
  return seeds;
}

/** How many of `total` videos each split gets, by fractions (the rounding remainder goes to train). */
export function splitSizes(total: number, fractions: readonly [number, number, number]): Record<Split, number> {
  const sum = fractions[0] + fractions[1] + fractions[2];
  const val = Math.round((total * fractions[1]) / sum);
  const test = Math.round((total * fractions[2]) / sum);
  return { train: total - val - test, val, test };
}
