// A training run's metrics.jsonl as curves: one JSON object a line ({step, epoch, loss, lr, "rewards/margins", ...},
// evaluations as {step, "eval/loss", ...}) turned into [step, value] pairs per metric, ready for lineChart.
import { z } from 'zod';

import { DataError } from '../data/errors.js';
import { readJsonValues } from '../data/jsonl.js';
import { parse } from '../validate.js';

/** Each metric's [step, value] points, in step order. */
export type MetricSeries = Record<string, [number, number][]>;

/**
 * Reads a metrics.jsonl into curves. The trainer appends a line per step, so a run killed mid-write leaves a torn
 * last line: that line is ignored. A bad line anywhere else is damage the curves would hide, so it throws a
 * DataError naming the line. Lines without a numeric `step` are skipped; so are values that are not finite numbers
 * (JSON has no NaN: a NaN logged as null). When a step appears twice (a resumed run that redid steps), the later
 * line wins.
 */
export async function readMetrics(file: string): Promise<MetricSeries> {
  parse(z.string().min(1), file, 'readMetrics: file');
  const byMetric = new Map<string, Map<number, number>>();
  // An error is held until the next line arrives: only then is it known not to be the last.
  let pending: DataError | undefined;
  for await (const item of readJsonValues(file)) {
    if (pending) throw pending;
    if (item instanceof DataError) {
      pending = item;
      continue;
    }
    const record = item.value;
    if (record === null || typeof record !== 'object' || Array.isArray(record)) continue;
    const { step, ...values } = record as Record<string, unknown>;
    if (typeof step !== 'number' || !Number.isFinite(step)) continue;
    for (const [key, value] of Object.entries(values)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      let points = byMetric.get(key);
      if (!points) byMetric.set(key, (points = new Map()));
      points.set(step, value);
    }
  }
  // fromEntries defines own properties, so even a metric named "__proto__" is just a metric.
  return Object.fromEntries([...byMetric].map(([key, points]) => [key, [...points].sort((a, b) => a[0] - b[0])]));
}
