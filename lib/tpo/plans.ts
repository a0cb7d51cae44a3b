// TPO's manipulated inputs as frame-sampling plans the native decoder runs (lib/video/decode.ts):
//   localized:     preferred = frames of the target segment only; dis-preferred = the video with the segment removed
//   comprehensive: preferred = the whole video, densely sampled; dis-preferred = a sparse downsample
import { z } from 'zod';

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
