// TPO's manipulated inputs as frame-sampling plans the native decoder runs (lib/video/decode.ts):
//   localized:     preferred = frames of the target segment only; dis-preferred = the video with the segment removed
//   comprehensive: preferred = the whole video, densely sampled; dis-preferred = a sparse downsample
//   TimeWarp explicit: the same frames in the true order vs with the scenes shuffled
//   TimeWarp implicit: the same frames clean vs corrupted (the corruption runs after decoding)
import { z } from 'zod';

import { mulberry32, seededShuffle } from '../data/videos.js';
import { parse } from '../validate.js';
import type { SamplePlan } from '../video/decode.js';

export interface PlanPair {
  preferred: SamplePlan;
  dispreferred: SamplePlan;
}

const Span = z.tuple([z.number().nonnegative(), z.number().nonnegative()]).refine(([s, e]) => s < e, 'a span is [start, end) with start < end');

/** Plans for a question about the segment `span` (seconds): `frames` from it, vs `frames` from the rest. */
export function localizedPlans(span: readonly [number, number], frames: number): PlanPair {
  const [start, end] = parse(Span, span, 'localizedPlans: span');
  const n = parse(z.int().min(1), frames, 'localizedPlans: frames');
  return {
    preferred: { kind: 'uniform', frames: n, range: [start, end] },
    dispreferred: { kind: 'uniform', frames: n, exclude: [[start, end]] },
  };
}

/** Plans for a question about the whole video: `frames` uniformly vs `frames * sparseRatio` (at least one). */
export function comprehensivePlans(frames: number, sparseRatio = 0.25): PlanPair {
  const n = parse(z.int().min(1), frames, 'comprehensivePlans: frames');
  const ratio = parse(z.number().gt(0).max(1), sparseRatio, 'comprehensivePlans: sparseRatio');
  return {
    preferred: { kind: 'uniform', frames: n },
    dispreferred: { kind: 'uniform', frames: Math.max(1, Math.round(n * ratio)) },
  };
}

export interface ScenePlans extends PlanPair {
  /** The scenes (indices into `scenes`) in the order the dis-preferred input shows them. */
  order: number[];
}

/**
 * TimeWarp's explicit pair: the same `frames` frames (uniform over the video, as frame indices), in the true order
 * vs with the scenes shuffled. A frame belongs to the last scene starting at or before it (a gap joins the scene
 * before it); scenes without a sampled frame drop out; the shuffle never returns the true order. Needs two scenes
 * with frames.
 */
export function shuffledScenePlans(
  scenes: readonly (readonly [number, number])[], video: { frameCount: number; fps: number }, frames: number, seed: number,
): ScenePlans {
  const n = parse(z.int().min(2), frames, 'shuffledScenePlans: frames');
  const spans = parse(z.array(Span).min(2, 'needs at least two scenes'), scenes, 'shuffledScenePlans: scenes');
  const count = parse(z.int().min(1), video.frameCount, 'shuffledScenePlans: frameCount');
  const fps = parse(z.number().positive(), video.fps, 'shuffledScenePlans: fps');
  const starts = spans.map(([s]) => s).sort((a, b) => a - b);
  // np.linspace(0, count - 1, n).astype(int): the frames 'uniform' would sample.
  const indices = [...new Set(Array.from({ length: n }, (_, i) => Math.floor(n === 1 ? 0 : (i * (count - 1)) / (n - 1))))];
  const groups = new Map<number, number[]>();
  for (const index of indices) {
    const t = index / fps;
    let scene = 0;
    for (let s = 0; s < starts.length; s++) if (starts[s]! <= t + 1e-9) scene = s;
    groups.set(scene, [...(groups.get(scene) ?? []), index]);
  }
  const present = [...groups.keys()].sort((a, b) => a - b);
  if (present.length < 2) throw new Error(`shuffledScenePlans: only ${present.length} scene(s) hold a sampled frame; shuffling needs two`);
  const random = mulberry32(parse(z.int().nonnegative(), seed, 'shuffledScenePlans: seed'));
  let order = present;
  while (order.every((s, i) => s === present[i])) order = seededShuffle(present, random);
  return {
    preferred: { kind: 'indices', indices: present.flatMap((s) => groups.get(s)!) },
    dispreferred: { kind: 'indices', indices: order.flatMap((s) => groups.get(s)!) },
    order,
  };
}

/** TimeWarp's implicit pair: the same uniform frames, clean vs corrupted (lib/video/corrupt.ts). */
export function corruptedPlans(frames: number): PlanPair {
  const n = parse(z.int().min(1), frames, 'corruptedPlans: frames');
  return { preferred: { kind: 'uniform', frames: n }, dispreferred: { kind: 'uniform', frames: n } };
}
