// Charts as SVG strings, with no dependencies, for reports that must open offline: a line chart (training curves,
// optionally EMA-smoothed) and a grouped bar chart (accuracy per category). Both are plain SVG 1.1 with no ids, so
// several can sit inline in one HTML page, and every piece of user text goes through escapeXml.
import { z } from 'zod';

import { parse } from '../validate.js';

/** Series colours, in order (Tableau 10: distinct, and readable by most colour-blind viewers). */
export const PALETTE = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
] as const;

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
// Rough width of one character at font-size 12, for laying out legends and labels without measuring text.
const CHAR_WIDTH = 6.8;

/** Text made safe for XML content and attribute values; characters XML 1.0 forbids are dropped. */
export function escapeXml(text: string): string {
  return text
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** An axis over [min, max] with ticks every `step`, a round number (1, 2 or 5 × 10^k). */
export interface Axis {
  min: number;
  max: number;
  step: number;
  ticks: number[];
}

/**
 * A "nice" axis covering [lo, hi] with about `count` intervals: the step is 1, 2 or 5 × 10^k and the ends are
 * multiples of it. An empty range (lo = hi) is widened so the value sits inside the axis rather than on a zero span.
 */
export function niceAxis(lo: number, hi: number, count = 5): Axis {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new RangeError(`niceAxis: [${lo}, ${hi}] is not finite`);
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) / 2;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const rough = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const residual = rough / magnitude;
  // Rounded to the nearest nice step (not the next one up), so the axis keeps close to `count` intervals.
  const nice = residual < 1.5 ? 1 : residual < 3 ? 2 : residual < 7 ? 5 : 10;
  const step = Number((nice * magnitude).toPrecision(12)); // 5 * 1e-6 is 0.0000049999999999999996 otherwise
  const digits = decimals(step);
  const round = (v: number) => Number(v.toFixed(Math.min(20, digits + 2)));
  // A small tolerance keeps values that are multiples of the step up to rounding (0.30000000000000004) on the tick.
  const min = round(Math.floor(lo / step + 1e-9) * step);
  const max = round(Math.ceil(hi / step - 1e-9) * step);
  const ticks: number[] = [];
  for (let i = 0; ; i++) {
    const t = round(min + i * step);
    if (t > max + step / 2) break;
    ticks.push(t);
  }
  return { min, max, step, ticks };
}

function decimals(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/** A tick label: as many decimals as the step needs; exponent notation for very small or large steps. */
export function formatTick(value: number, step: number): string {
  if (value === 0) return '0';
  if (step < 1e-3 || Math.abs(value) >= 1e6) {
    // 2.50e-5 -> 2.5e-5, 1.00e+6 -> 1e+6: learning rates and large counts stay short
    return value.toExponential(2).replace(/\.?0+e/, 'e');
  }
  return value.toFixed(decimals(step));
}

/**
 * Exponential moving average with the span convention (alpha = 2 / (window + 1)), as TensorBoard-style smoothing:
 * each output is the average so far, bias-corrected so the first values are not pulled towards 0.
 */
export function ema(values: readonly number[], window: number): number[] {
  if (window <= 1) return [...values];
  const alpha = 2 / (window + 1);
  let average = 0;
  let weight = 0;
  return values.map((v) => {
    average = (1 - alpha) * average + alpha * v;
    weight = (1 - alpha) * weight + alpha;
    return average / weight;
  });
}

// Numbers may be NaN or ±Infinity (a missing value, a diverged loss): charts skip them rather than reject the call.
const AnyNumber = z.custom<number>((v) => typeof v === 'number', 'expected a number');
const Size = z.number().int().min(120).max(4000);

export const LineSeries = z.strictObject({
  name: z.string(),
  points: z.array(z.tuple([AnyNumber, AnyNumber])),
});
export type LineSeries = z.input<typeof LineSeries>;

export const LineChartOptions = z.strictObject({
  title: z.string(),
  xLabel: z.string(),
  yLabel: z.string(),
  series: z.array(LineSeries),
  width: Size.default(640),
  height: Size.default(360),
  /**
   * EMA window: when above 1, each series of at least twice that many points is drawn raw and faint with its
   * smoothed line bold on top. Shorter series (evaluations every N steps) are drawn as logged: an average over a
   * window longer than half the series would mostly show where it started.
   */
  smooth: z.number().min(0).optional(),
});
export type LineChartOptions = z.input<typeof LineChartOptions>;

export const BarSeries = z.strictObject({
  name: z.string(),
  /** One value per group; NaN (or any non-finite value) marks a missing bar. */
  values: z.array(AnyNumber),
  /** ± spread per group, drawn as whiskers. */
  errors: z.array(AnyNumber).optional(),
});
export type BarSeries = z.input<typeof BarSeries>;

export const BarChartOptions = z.strictObject({
  title: z.string(),
  yLabel: z.string(),
  /** Categories along the x axis. */
  groups: z.array(z.string()),
  series: z.array(BarSeries),
  /** Top of the y axis (say 1 or 100 for accuracies); default: from the data. */
  yMax: z.number().refine(Number.isFinite, 'expected a finite number').optional(),
  /** The label above each bar (default: up to three significant decimals). */
  valueFormat: z.custom<(value: number) => string>((f) => typeof f === 'function').optional(),
  width: Size.optional(),
  height: Size.default(360),
});
export type BarChartOptions = z.input<typeof BarChartOptions>;

/** A coordinate, rounded to 0.01 px so files stay small and diffs stable. */
function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

interface LegendItem {
  name: string;
  color: string;
}

/** Legend rows under the title, wrapped to the width; returns the markup and the height it takes. */
function legend(items: LegendItem[], x0: number, y0: number, width: number): { svg: string; height: number } {
  if (items.length === 0) return { svg: '', height: 0 };
  const parts: string[] = [];
  let x = x0;
  let y = y0;
  for (const item of items) {
    const w = 18 + item.name.length * CHAR_WIDTH + 16;
    if (x > x0 && x + w > x0 + width) {
      x = x0;
      y += 18;
    }
    parts.push(
      `<rect x="${px(x)}" y="${px(y - 9)}" width="12" height="12" rx="2" fill="${item.color}"/>`,
      `<text x="${px(x + 17)}" y="${px(y + 1)}">${escapeXml(item.name)}</text>`,
    );
    x += w;
  }
  return { svg: `<g class="legend" font-size="12">${parts.join('')}</g>`, height: y - y0 + 18 };
}

function open(width: number, height: number, title: string, kind: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart ${kind}" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" role="img" ${FONT} font-size="12" fill="#222">` +
    `<title>${escapeXml(title)}</title>` +
    `<rect class="background" x="0" y="0" width="${width}" height="${height}" fill="#fff"/>` +
    `<text class="chart-title" x="${px(width / 2)}" y="20" text-anchor="middle" font-size="15" font-weight="600">${escapeXml(title)}</text>`
  );
}

function plotArea(box: Box): string {
  return `<rect class="plot-area" x="${px(box.left)}" y="${px(box.top)}" width="${px(box.right - box.left)}" ` +
    `height="${px(box.bottom - box.top)}" fill="none" stroke="#999" stroke-width="1"/>`;
}

function noData(box: Box): string {
  return `<text class="no-data" x="${px((box.left + box.right) / 2)}" y="${px((box.top + box.bottom) / 2)}" ` +
    `text-anchor="middle" font-size="14" fill="#888">no data</text>`;
}

/** Horizontal grid lines and labels of a y axis. */
function yAxis(axis: Axis, box: Box, y: (v: number) => number, label: string): string {
  const parts = axis.ticks.map((t) =>
    `<line x1="${px(box.left)}" x2="${px(box.right)}" y1="${px(y(t))}" y2="${px(y(t))}" stroke="#e5e5e5"/>` +
    `<text x="${px(box.left - 6)}" y="${px(y(t) + 4)}" text-anchor="end">${escapeXml(formatTick(t, axis.step))}</text>`);
  const middle = (box.top + box.bottom) / 2;
  parts.push(`<text class="y-label" x="14" y="${px(middle)}" text-anchor="middle" transform="rotate(-90 14 ${px(middle)})">${escapeXml(label)}</text>`);
  return `<g class="y-axis">${parts.join('')}</g>`;
}

/** [min, max] of values, without spreading them into arguments (a long run has more points than a call takes). */
function extent(values: Iterable<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

function finitePoints(points: readonly (readonly [number, number])[]): [number, number][] {
  return points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => [x, y] as [number, number])
    .sort((a, b) => a[0] - b[0]);
}

function linePath(points: [number, number][], x: (v: number) => number, y: (v: number) => number): string {
  return points.map(([a, b], i) => `${i === 0 ? 'M' : 'L'}${px(x(a))} ${px(y(b))}`).join(' ');
}

// Series with this few points get a marker at each point, so sparse ones (evaluations every N steps, a single
// point) stay visible.
const MARKERS_UP_TO = 24;

/**
 * A line chart as an SVG string. Non-finite points are skipped; a chart whose series hold no finite point says
 * "no data". With `smooth` above 1 each long enough series is drawn faint as logged, with its EMA (window `smooth`)
 * bold.
 */
export function lineChart(options: LineChartOptions): string {
  const o = parse(LineChartOptions, options, 'lineChart: options');
  const series = o.series.map((s, i) => ({ name: s.name, color: PALETTE[i % PALETTE.length]!, points: finitePoints(s.points) }));
  const parts = [open(o.width, o.height, o.title, 'line-chart')];
  const lg = legend(series, 64, 42, o.width - 80);
  parts.push(lg.svg);
  const box: Box = { left: 64, right: o.width - 20, top: 34 + Math.max(lg.height, 8), bottom: o.height - 44 };
  const all = series.flatMap((s) => s.points);
  parts.push(`<text class="x-label" x="${px((box.left + box.right) / 2)}" y="${px(o.height - 8)}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  if (all.length === 0) {
    parts.push(plotArea(box), noData(box), '</svg>');
    return parts.join('');
  }
  const xs = niceAxis(...extent(all.map((p) => p[0])), Math.max(2, Math.round((box.right - box.left) / 90)));
  const ys = niceAxis(...extent(all.map((p) => p[1])), Math.max(2, Math.round((box.bottom - box.top) / 50)));
  const x = (v: number) => box.left + ((v - xs.min) / (xs.max - xs.min)) * (box.right - box.left);
  const y = (v: number) => box.bottom - ((v - ys.min) / (ys.max - ys.min)) * (box.bottom - box.top);
  parts.push(yAxis(ys, box, y, o.yLabel));
  parts.push(`<g class="x-axis">${xs.ticks.map((t) =>
    `<line x1="${px(x(t))}" x2="${px(x(t))}" y1="${px(box.bottom)}" y2="${px(box.bottom + 4)}" stroke="#999"/>` +
    `<text x="${px(x(t))}" y="${px(box.bottom + 17)}" text-anchor="middle">${escapeXml(formatTick(t, xs.step))}</text>`).join('')}</g>`);
  parts.push(plotArea(box));
  const smooth = o.smooth !== undefined && o.smooth > 1 ? o.smooth : 0;
  for (const s of series) {
    if (s.points.length === 0) continue;
    const g = [`<g class="series" data-name="${escapeXml(s.name)}" fill="none" stroke="${s.color}" stroke-linejoin="round" stroke-linecap="round">`];
    if (smooth && s.points.length >= 2 * smooth) {
      const smoothed = ema(s.points.map((p) => p[1]), smooth);
      g.push(`<path class="raw" d="${linePath(s.points, x, y)}" stroke-width="1" stroke-opacity="0.3"/>`);
      g.push(`<path class="smoothed" d="${linePath(s.points.map((p, i) => [p[0], smoothed[i]!]), x, y)}" stroke-width="2.2"/>`);
    } else {
      g.push(`<path class="line" d="${linePath(s.points, x, y)}" stroke-width="2"/>`);
    }
    if (s.points.length <= MARKERS_UP_TO) {
      for (const [a, b] of s.points) g.push(`<circle cx="${px(x(a))}" cy="${px(y(b))}" r="2.5" fill="${s.color}" stroke="none"/>`);
    }
    g.push('</g>');
    parts.push(g.join(''));
  }
  parts.push('</svg>');
  return parts.join('');
}

function defaultValueFormat(v: number): string {
  return Number(v.toPrecision(3)).toString();
}

/**
 * A grouped bar chart as an SVG string: one cluster per group, one bar per series, a value label above each bar
 * and ± whiskers where `errors` are given. Missing values (NaN) leave a gap marked "n/a"; no groups or series with
 * no finite value give a chart that says "no data". The y axis starts at 0 (or below, for negative values).
 */
export function barChart(options: BarChartOptions): string {
  const o = parse(BarChartOptions, options, 'barChart: options');
  for (const [i, s] of o.series.entries()) {
    if (s.values.length !== o.groups.length) {
      throw new RangeError(`barChart: series ${i} ("${s.name}") has ${s.values.length} values for ${o.groups.length} groups`);
    }
    if (s.errors && s.errors.length !== o.groups.length) {
      throw new RangeError(`barChart: series ${i} ("${s.name}") has ${s.errors.length} errors for ${o.groups.length} groups`);
    }
  }
  const format = o.valueFormat ?? defaultValueFormat;
  const slots = Math.max(1, o.groups.length) * (Math.max(1, o.series.length) * 22 + 26);
  const width = o.width ?? Math.min(1400, Math.max(480, slots + 90));
  const series = o.series.map((s, i) => ({ ...s, color: PALETTE[i % PALETTE.length]! }));
  // Group labels are rotated when they do not fit under their cluster, which needs more room below the plot.
  const groupWidth = (width - 84) / Math.max(1, o.groups.length);
  const longest = Math.max(0, ...o.groups.map((g) => g.length)) * CHAR_WIDTH;
  const rotate = longest > groupWidth - 6;
  const below = rotate ? 24 + Math.min(160, longest * Math.sin(Math.PI / 4)) : 30;
  const height = o.height + (rotate ? below - 30 : 0);
  const lg = legend(series, 64, 42, width - 80);
  const parts = [open(width, height, o.title, 'bar-chart'), lg.svg];
  const box: Box = { left: 64, right: width - 20, top: 34 + Math.max(lg.height, 8) + 14, bottom: height - below };
  const values = series.flatMap((s) => s.values.flatMap((v, i) => {
    const e = s.errors?.[i];
    return Number.isFinite(e) ? [v - e!, v + e!] : [v];
  })).filter(Number.isFinite);
  if (values.length === 0 || o.groups.length === 0) {
    parts.push(plotArea(box), noData(box), '</svg>');
    return parts.join('');
  }
  const [low, high] = extent(values);
  const lo = Math.min(0, low);
  const hi = o.yMax ?? Math.max(0, high);
  const ys = niceAxis(lo, hi > lo ? hi : lo + 1, Math.max(2, Math.round((box.bottom - box.top) / 50)));
  if (o.yMax !== undefined && o.yMax > lo) {
    // The axis ends at yMax exactly (an accuracy axis ends at 100%), with the ticks that fit under it.
    ys.max = o.yMax;
    ys.ticks = ys.ticks.filter((t) => t <= o.yMax! + ys.step * 1e-9);
  }
  const y = (v: number) => box.bottom - ((Math.min(Math.max(v, ys.min), ys.max) - ys.min) / (ys.max - ys.min)) * (box.bottom - box.top);
  parts.push(yAxis(ys, box, y, o.yLabel));
  const slot = (box.right - box.left) / o.groups.length;
  const barWidth = (slot * 0.8) / Math.max(1, series.length);
  const labels: string[] = [];
  const bars: string[] = [];
  for (const [g, group] of o.groups.entries()) {
    const x0 = box.left + g * slot + slot * 0.1;
    const centre = box.left + (g + 0.5) * slot;
    labels.push(rotate
      ? `<text x="${px(centre)}" y="${px(box.bottom + 14)}" text-anchor="end" transform="rotate(-45 ${px(centre)} ${px(box.bottom + 14)})">${escapeXml(group)}</text>`
      : `<text x="${px(centre)}" y="${px(box.bottom + 18)}" text-anchor="middle">${escapeXml(group)}</text>`);
    for (const [i, s] of series.entries()) {
      const v = s.values[g]!;
      const x = x0 + i * barWidth;
      const mid = x + barWidth / 2;
      if (!Number.isFinite(v)) {
        bars.push(`<text class="missing" x="${px(mid)}" y="${px(y(0) - 4)}" text-anchor="middle" font-size="10" fill="#888">n/a</text>`);
        continue;
      }
      const top = Math.min(y(v), y(0));
      bars.push(`<rect class="bar" data-series="${escapeXml(s.name)}" data-group="${escapeXml(group)}" data-value="${v}" ` +
        `x="${px(x + 1)}" y="${px(top)}" width="${px(Math.max(1, barWidth - 2))}" height="${px(Math.abs(y(0) - y(v)))}" fill="${s.color}"/>`);
      const e = s.errors?.[g];
      let labelY = y(v) - 4;
      if (e !== undefined && Number.isFinite(e) && e > 0) {
        const [a, b] = [y(v - e), y(v + e)];
        const cap = Math.min(6, barWidth / 4);
        bars.push(`<path class="whisker" d="M${px(mid)} ${px(a)} L${px(mid)} ${px(b)} M${px(mid - cap)} ${px(a)} L${px(mid + cap)} ${px(a)} ` +
          `M${px(mid - cap)} ${px(b)} L${px(mid + cap)} ${px(b)}" stroke="#333" stroke-width="1" fill="none"/>`);
        labelY = Math.min(labelY, b - 4);
      }
      if (v < 0) labelY = y(v) + 12;
      bars.push(`<text class="value" x="${px(mid)}" y="${px(labelY)}" text-anchor="middle" font-size="10">${escapeXml(format(v))}</text>`);
    }
  }
  parts.push(`<g class="bars">${bars.join('')}</g>`);
  parts.push(`<line x1="${px(box.left)}" x2="${px(box.right)}" y1="${px(y(0))}" y2="${px(y(0))}" stroke="#666"/>`);
  parts.push(`<g class="x-axis">${labels.join('')}</g>`);
  parts.push(plotArea(box), '</svg>');
  return parts.join('');
}
