// Learning-rate schedules with warm-up, as transformers' get_{cosine,linear,constant}_schedule_with_warmup define
// them: the step's learning rate is the peak times the schedule's factor.
import { z } from 'zod';

import { parse } from '../validate.js';

export const Schedule = z.strictObject({
  type: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
  /** Warm-up as a fraction of all steps (TPO: 0.1); `warmupSteps` wins when given. */
  warmupRatio: z.number().min(0).max(1).default(0),
  warmupSteps: z.int().nonnegative().optional(),
});
export type Schedule = z.input<typeof Schedule>;

/** The learning rate of optimizer step `step` (0-based) of `totalSteps`. */
export function learningRate(peak: number, step: number, totalSteps: number, schedule: Schedule = {}): number {
  const s = parse(Schedule, schedule, 'learningRate: schedule');
  const warmup = s.warmupSteps ?? Math.ceil(s.warmupRatio * totalSteps);
  if (step < warmup) return (peak * step) / Math.max(1, warmup);
  if (s.type === 'constant') return peak;
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  if (s.type === 'linear') return peak * Math.max(0, 1 - progress);
  return peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
