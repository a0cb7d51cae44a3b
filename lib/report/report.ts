// The `tpo demo` run report: did TPO help? One document model (headings, paragraphs, tables, figures) rendered
// twice, as report.md with its charts in .svg files beside it and as a self-contained report.html with the same
// charts inline, so the two never disagree. Every file is written atomically.
import { join, resolve } from 'node:path';

import { z } from 'zod';

import { writeTextFile } from '../data/jsonl.js';
import { prepareOutputDir } from '../paths.js';
import { parse } from '../validate.js';
import { readMetrics, type MetricSeries } from './metrics.js';
import { barChart, escapeXml, lineChart } from './svg.js';

export interface StageTiming {
  name: string;
  seconds: number;
  detail?: string;
}
export interface CategoryAccuracy {
  accuracy: number;
  n: number;
}
export interface ModelScores {
  name: string;
  accuracy: number;
  n: number;
  /** Keys like 'kind=localized', 'length=long', 'type=count'. */
  byCategory: Record<string, CategoryAccuracy>;
}
export interface PairStats {
  kept: number;
  judged: number;
  preferredCorrect: number;
  dispreferredCorrect: number;
  byKind: Record<string, { kept: number; dropped: number }>;
  dropped: Record<string, number>;
}
export interface DemoReport {
  title: string;
  /** ISO time. */
  createdAt: string;
  /** How to reproduce the run. */
  command: string;
  stages: StageTiming[];
  /** The models compared, the baseline first (e.g. base, then tpo): differences are last minus first. */
  models: ModelScores[];
  /** Training runs whose curves to plot. */
  training: { name: string; metricsFile: string }[];
  pairs?: PairStats;
  notes?: string[];
}

// Plain objects (not strict): scores and stats come from other modules that may carry more fields than the report
// shows, and those should not stop a report from being written.
const Count = z.number().int().min(0);
const Accuracy = z.number().min(0).max(1);
const CategoryAccuracySchema = z.object({ accuracy: Accuracy, n: Count });
const ModelScoresSchema = z.object({
  name: z.string().min(1),
  accuracy: Accuracy,
  n: Count,
  byCategory: z.record(z.string(), CategoryAccuracySchema),
});
const DemoReportSchema = z.object({
  title: z.string(),
  createdAt: z.string(),
  command: z.string(),
  stages: z.array(z.object({ name: z.string(), seconds: z.number().min(0), detail: z.string().optional() })),
  models: z.array(ModelScoresSchema).min(1),
  training: z.array(z.object({ name: z.string().min(1), metricsFile: z.string().min(1) })),
  pairs: z.object({
    kept: Count,
    judged: Count,
    preferredCorrect: Count,
    dispreferredCorrect: Count,
    byKind: z.record(z.string(), z.object({ kept: Count, dropped: Count })),
    dropped: z.record(z.string(), Count),
  }).optional(),
  notes: z.array(z.string()).optional(),
});

// ---------------------------------------------------------------------------------------------------------------
// Numbers as the report shows them

/** An accuracy in [0, 1] as a percentage with one decimal: 0.4167 -> "41.7%". */
export function formatPercent(accuracy: number): string {
  return `${(accuracy * 100).toFixed(1)}%`;
}

/** A difference of accuracies in percentage points, signed: 0.0667 -> "+6.7". */
export function formatPoints(difference: number): string {
  const rounded = Number((difference * 100).toFixed(1));
  if (rounded === 0) return '0.0'; // also -0.0: a difference that rounds away has no sign
  return rounded > 0 ? `+${rounded.toFixed(1)}` : rounded.toFixed(1);
}

/** Seconds for people: "0.42 s", "12.3 s", "4 min 05 s", "1 h 02 min". */
export function formatSeconds(seconds: number): string {
  if (seconds < 10) return `${seconds.toFixed(2)} s`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

function ratio(part: number, whole: number): string {
  return whole > 0 ? formatPercent(part / whole) : '–';
}

// ---------------------------------------------------------------------------------------------------------------
// The comparison of models

interface ComparisonRow {
  category: string;
  /** Per model; undefined where a model has no score for the category. */
  scores: (CategoryAccuracy | undefined)[];
  /** Last model minus first, in [−1, 1]; undefined with fewer than two models or a score missing (or n = 0). */
  delta?: number;
}

function usable(score: CategoryAccuracy | undefined): score is CategoryAccuracy {
  return score !== undefined && score.n > 0;
}

/** 'overall' first, then every category any model has, in the order they first appear. */
function comparisonRows(models: ModelScores[]): ComparisonRow[] {
  const categories: string[] = [];
  const seen = new Set<string>();
  for (const m of models) {
    for (const c of Object.keys(m.byCategory)) {
      if (!seen.has(c)) categories.push(c), seen.add(c);
    }
  }
  const rows: ComparisonRow[] = [
    { category: 'overall', scores: models.map((m) => ({ accuracy: m.accuracy, n: m.n })) },
    ...categories.map((category) => ({ category, scores: models.map((m) => Object.hasOwn(m.byCategory, category) ? m.byCategory[category] : undefined) })),
  ];
  for (const row of rows) {
    const [first, last] = [row.scores[0], row.scores.at(-1)];
    if (row.scores.length >= 2 && usable(first) && usable(last)) row.delta = last.accuracy - first.accuracy;
  }
  return rows;
}

/** The n column: one number when every model was scored on as many items, else each model's. */
function sampleSizes(scores: (CategoryAccuracy | undefined)[]): string {
  const ns = scores.map((s) => (s ? String(s.n) : '–'));
  return new Set(ns).size === 1 ? ns[0]! : ns.join(' / ');
}

function cell(score: CategoryAccuracy | undefined): string {
  return usable(score) ? formatPercent(score.accuracy) : '–';
}

function deltaHeader(models: ModelScores[]): string {
  return `Δ ${models.at(-1)!.name} − ${models[0]!.name} (pts)`;
}

/**
 * The comparison as a plain-text table for the terminal: a row per category ('overall' first), an accuracy column
 * per model in %, then Δ (last model minus first, in percentage points) and n.
 */
export function formatComparisonTable(models: ModelScores[]): string {
  parse(z.array(ModelScoresSchema), models, 'formatComparisonTable: models');
  if (models.length === 0) return 'no models to compare';
  const compare = models.length >= 2;
  const head = ['category', ...models.map((m) => m.name), ...(compare ? ['Δ pts'] : []), 'n'];
  const rows = comparisonRows(models).map((r) => [
    r.category,
    ...r.scores.map(cell),
    ...(compare ? [r.delta === undefined ? '–' : formatPoints(r.delta)] : []),
    sampleSizes(r.scores),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// The document, and its two renderings

type Block =
  | { kind: 'heading'; level: 1 | 2 | 3; text: string }
  | { kind: 'paragraph'; text: string }
  | { kind: 'code'; text: string }
  | { kind: 'list'; items: string[] }
  | { kind: 'table'; head: string[]; rows: string[][]; numeric: boolean[] }
  | { kind: 'figure'; file: string; caption: string; svg: string };

/**
 * Text made literal inside a Markdown line (a table cell): characters that would start emphasis, code, links, HTML,
 * entities or a new cell are backslash-escaped, and a line break becomes a space.
 */
function escapeInline(text: string): string {
  return text.replace(/\r?\n|\r/g, ' ').replace(/[\\`*_[\]<>|&~#!]/g, '\\$&');
}

/**
 * Text made literal as a Markdown paragraph, list item or heading: escapeInline, and a start that would open a
 * list, a numbered list or a setext heading underline escaped too.
 */
export function escapeMarkdown(text: string): string {
  return escapeInline(text)
    .replace(/^(\s*)([-+=])/, '$1\\$2')
    .replace(/^(\s*\d+)([.)])/, '$1\\$2');
}

function markdownFence(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  return '`'.repeat(Math.max(3, longest + 1));
}

function toMarkdown(blocks: Block[]): string {
  const out: string[] = [];
  for (const b of blocks) {
    switch (b.kind) {
      case 'heading':
        out.push(`${'#'.repeat(b.level)} ${escapeMarkdown(b.text)}`);
        break;
      case 'paragraph':
        out.push(escapeMarkdown(b.text));
        break;
      case 'code': {
        const fence = markdownFence(b.text);
        out.push(`${fence}sh\n${b.text}\n${fence}`);
        break;
      }
      case 'list':
        out.push(b.items.map((item) => `- ${escapeMarkdown(item)}`).join('\n'));
        break;
      case 'table': {
        const row = (cells: string[]) => `| ${cells.map(escapeInline).join(' | ')} |`;
        out.push([row(b.head), `|${b.numeric.map((n) => (n ? ' --: ' : ' --- ')).join('|')}|`, ...b.rows.map(row)].join('\n'));
        break;
      }
      case 'figure':
        // The file name is ours (slugged), so it needs no escaping in the link; the caption does.
        out.push(`![${escapeMarkdown(b.caption)}](${b.file})`);
        break;
    }
  }
  return out.join('\n\n') + '\n';
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0}th,td{border:1px solid #ccc;padding:.3em .7em;text-align:left}
th{background:#f4f4f4}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;border-radius:4px}figure{margin:1em 0}
figure svg{max-width:100%;height:auto}figcaption{color:#666;font-size:.9em}
`.trim();

function toHtml(title: string, blocks: Block[]): string {
  const out: string[] = [];
  for (const b of blocks) {
    switch (b.kind) {
      case 'heading':
        out.push(`<h${b.level}>${escapeXml(b.text)}</h${b.level}>`);
        break;
      case 'paragraph':
        out.push(`<p>${escapeXml(b.text)}</p>`);
        break;
      case 'code':
        out.push(`<pre><code>${escapeXml(b.text)}</code></pre>`);
        break;
      case 'list':
        out.push(`<ul>${b.items.map((i) => `<li>${escapeXml(i)}</li>`).join('')}</ul>`);
        break;
      case 'table': {
        const cls = (i: number) => (b.numeric[i] ? ' class="num"' : '');
        out.push(
          `<table><thead><tr>${b.head.map((h, i) => `<th${cls(i)}>${escapeXml(h)}</th>`).join('')}</tr></thead><tbody>` +
            b.rows.map((r) => `<tr>${r.map((c, i) => `<td${cls(i)}>${escapeXml(c)}</td>`).join('')}</tr>`).join('') +
            '</tbody></table>',
        );
        break;
      }
      case 'figure':
        out.push(`<figure>${b.svg}<figcaption>${escapeXml(b.caption)}</figcaption></figure>`);
        break;
    }
  }
  return (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `<title>${escapeXml(title)}</title>\n<style>\n${CSS}\n</style>\n</head>\n<body>\n` +
    out.join('\n') +
    '\n</body>\n</html>\n'
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Sections

/** A file-name-safe, lower-case form of a name, unique among those already `taken`. */
function slug(name: string, taken: Set<string>): string {
  const base = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'run';
  let s = base;
  for (let i = 2; taken.has(s); i++) s = `${base}-${i}`;
  taken.add(s);
  return s;
}

function accuracySection(models: ModelScores[], figures: Block[]): Block[] {
  const rows = comparisonRows(models);
  const compare = models.length >= 2;
  const blocks: Block[] = [{ kind: 'heading', level: 2, text: 'Accuracy' }];
  if (compare) {
    const [first, last] = [models[0]!, models.at(-1)!];
    blocks.push({
      kind: 'paragraph',
      text: `${last.name}: ${formatPercent(last.accuracy)} against ${first.name}: ${formatPercent(first.accuracy)} overall, ` +
        `${formatPoints(last.accuracy - first.accuracy)} points (n = ${sampleSizes(rows[0]!.scores)}).`,
    });
  }
  blocks.push({
    kind: 'table',
    head: ['Category', ...models.map((m) => m.name), ...(compare ? [deltaHeader(models)] : []), 'n'],
    rows: rows.map((r) => [
      r.category,
      ...r.scores.map(cell),
      ...(compare ? [r.delta === undefined ? '–' : formatPoints(r.delta)] : []),
      sampleSizes(r.scores),
    ]),
    numeric: [false, ...models.map(() => true), ...(compare ? [true] : []), true],
  });
  // Whiskers: ±1 binomial standard error, so a difference of a few points on a few dozen items reads as noise.
  const chart = barChart({
    title: 'Accuracy by category',
    yLabel: 'accuracy (%)',
    groups: rows.map((r) => r.category),
    series: models.map((m, i) => ({
      name: m.name,
      values: rows.map((r) => (usable(r.scores[i]) ? r.scores[i]!.accuracy * 100 : NaN)),
      errors: rows.map((r) => {
        const s = r.scores[i];
        return usable(s) ? Math.sqrt((s.accuracy * (1 - s.accuracy)) / s.n) * 100 : NaN;
      }),
    })),
    yMax: 100,
    valueFormat: (v) => v.toFixed(1),
  });
  const figure: Block = { kind: 'figure', file: 'accuracy.svg', caption: 'Accuracy by category (whiskers: ±1 standard error)', svg: chart };
  figures.push(figure);
  blocks.push(figure);
  return blocks;
}

function pairsSection(pairs: PairStats, figures: Block[]): Block[] {
  const blocks: Block[] = [
    { kind: 'heading', level: 2, text: 'Preference pairs' },
    {
      kind: 'list',
      items: [
        `Kept ${pairs.kept} of ${pairs.judged} judged pairs (${ratio(pairs.kept, pairs.judged)}).`,
        `Preferred answer correct: ${pairs.preferredCorrect} of ${pairs.judged} (${ratio(pairs.preferredCorrect, pairs.judged)}).`,
        `Dispreferred answer correct: ${pairs.dispreferredCorrect} of ${pairs.judged} (${ratio(pairs.dispreferredCorrect, pairs.judged)}); ` +
          'a good pair has it wrong.',
      ],
    },
  ];
  const kinds = Object.entries(pairs.byKind);
  if (kinds.length > 0) {
    blocks.push({
      kind: 'table',
      head: ['Kind', 'Kept', 'Dropped', 'Kept %'],
      rows: kinds.map(([k, v]) => [k, String(v.kept), String(v.dropped), ratio(v.kept, v.kept + v.dropped)]),
      numeric: [false, true, true, true],
    });
    const figure: Block = {
      kind: 'figure',
      file: 'pairs.svg',
      caption: 'Pairs kept and dropped by kind',
      svg: barChart({
        title: 'Pairs by kind',
        yLabel: 'pairs',
        groups: kinds.map(([k]) => k),
        series: [
          { name: 'kept', values: kinds.map(([, v]) => v.kept) },
          { name: 'dropped', values: kinds.map(([, v]) => v.dropped) },
        ],
        valueFormat: (v) => String(v),
      }),
    };
    figures.push(figure);
    blocks.push(figure);
  }
  const dropped = Object.entries(pairs.dropped).sort((a, b) => b[1] - a[1]);
  if (dropped.length > 0) {
    blocks.push({
      kind: 'table',
      head: ['Drop reason', 'Pairs'],
      rows: dropped.map(([reason, count]) => [reason, String(count)]),
      numeric: [false, true],
    });
  }
  return blocks;
}

/** Mean of the first and of the last tenth of a curve: where it started and ended, less the step-to-step noise. */
function startAndEnd(points: [number, number][]): [number, number] {
  const k = Math.max(1, Math.floor(points.length / 10));
  const mean = (ps: [number, number][]) => ps.reduce((s, p) => s + p[1], 0) / ps.length;
  return [mean(points.slice(0, k)), mean(points.slice(-k))];
}

function short(v: number): string {
  return Number(v.toPrecision(4)).toString();
}

// The charts of one run: each lists the metrics it draws (training then evaluation); a chart is drawn when the
// run logged any of them, so an SFT run (no rewards/*) gets its loss curve only.
const RUN_CHARTS: { file: string; title: string; yLabel: string; metrics: string[] }[] = [
  // Validation as TRL names it (eval_*), and as runs before tpo 0.1's hardening logged it (eval/*).
  { file: 'loss', title: 'Loss', yLabel: 'loss', metrics: ['loss', 'eval_loss', 'eval/loss'] },
  { file: 'rewards-accuracies', title: 'Reward accuracy', yLabel: 'chosen > rejected', metrics: ['rewards/accuracies', 'eval_rewards/accuracies', 'eval/rewards/accuracies'] },
  { file: 'rewards-margins', title: 'Reward margin', yLabel: 'chosen − rejected', metrics: ['rewards/margins', 'eval_rewards/margins', 'eval/rewards/margins'] },
  { file: 'rewards', title: 'Rewards: chosen vs rejected', yLabel: 'reward', metrics: ['rewards/chosen', 'rewards/rejected'] },
];

async function trainingSection(training: DemoReport['training'], figures: Block[], taken: Set<string>): Promise<Block[]> {
  const blocks: Block[] = [{ kind: 'heading', level: 2, text: 'Training' }];
  for (const run of training) {
    blocks.push({ kind: 'heading', level: 3, text: run.name });
    let metrics: MetricSeries;
    try {
      metrics = await readMetrics(resolve(run.metricsFile));
    } catch (error) {
      // A report is written at the end of a long run: one unreadable log should cost its curves, not the report.
      blocks.push({ kind: 'paragraph', text: `No curves: ${(error as Error).message}` });
      continue;
    }
    let [first, last] = [Infinity, -Infinity];
    for (const points of Object.values(metrics)) {
      if (points.length === 0) continue;
      first = Math.min(first, points[0]![0]); // points are in step order
      last = Math.max(last, points.at(-1)![0]);
    }
    if (first > last) {
      blocks.push({ kind: 'paragraph', text: `No curves: ${run.metricsFile} holds no metrics.` });
      continue;
    }
    const loss = metrics['loss'];
    let summary = `Steps ${first}–${last} logged.`;
    if (loss && loss.length > 0) {
      const [start, end] = startAndEnd(loss);
      summary += ` Loss ${short(start)} → ${short(end)} (means of the first and last tenth of logged steps).`;
    }
    blocks.push({ kind: 'paragraph', text: summary });
    const name = slug(run.name, taken);
    for (const chart of RUN_CHARTS) {
      const series = chart.metrics.filter((m) => metrics[m]?.length).map((m) => ({ name: m, points: metrics[m]! }));
      if (series.length === 0) continue;
      const longest = Math.max(...series.map((s) => s.points.length));
      const svg = lineChart({
        title: `${run.name}: ${chart.title}`,
        xLabel: 'step',
        yLabel: chart.yLabel,
        series,
        // Per-step curves of small batches are noisy: past a few dozen points, smooth over about a twentieth.
        smooth: longest >= 40 ? Math.max(2, Math.round(longest / 20)) : 0,
      });
      const figure: Block = { kind: 'figure', file: `${name}-${chart.file}.svg`, caption: `${run.name}: ${chart.title}`, svg };
      figures.push(figure);
      blocks.push(figure);
    }
  }
  return blocks;
}

function stagesSection(stages: StageTiming[]): Block[] {
  const total = stages.reduce((s, t) => s + t.seconds, 0);
  return [
    { kind: 'heading', level: 2, text: 'Stage timings' },
    {
      kind: 'table',
      head: ['Stage', 'Time', 'Share', 'Detail'],
      rows: [
        ...stages.map((s) => [s.name, formatSeconds(s.seconds), ratio(s.seconds, total), s.detail ?? '']),
        ['total', formatSeconds(total), total > 0 ? '100.0%' : '–', ''],
      ],
      numeric: [false, true, true, false],
    },
  ];
}

/** Paths of what writeReport wrote. */
export interface ReportFiles {
  /** report.md */
  markdown: string;
  /** report.html, self-contained */
  html: string;
  /** The .svg charts beside report.md. */
  images: string[];
}

/**
 * Writes the demo's report into `dir` (created if missing): report.md with its charts as .svg files beside it, and
 * report.html with the same content and the charts inline. Each file is written atomically, the charts first, so a
 * report.md on disk always has its images. A training run whose metrics cannot be read is reported as such.
 */
export async function writeReport(dir: string, report: DemoReport): Promise<ReportFiles> {
  parse(z.string().min(1), dir, 'writeReport: dir');
  const r = parse(DemoReportSchema, report, 'writeReport: report') as DemoReport;
  const figures: Block[] = [];
  const blocks: Block[] = [
    { kind: 'heading', level: 1, text: r.title },
    { kind: 'paragraph', text: `Created ${r.createdAt}. Reproduce with:` },
    { kind: 'code', text: r.command },
    ...accuracySection(r.models, figures),
  ];
  if (r.pairs) blocks.push(...pairsSection(r.pairs, figures));
  if (r.training.length > 0) blocks.push(...(await trainingSection(r.training, figures, new Set())));
  if (r.stages.length > 0) blocks.push(...stagesSection(r.stages));
  if (r.notes && r.notes.length > 0) blocks.push({ kind: 'heading', level: 2, text: 'Notes' }, { kind: 'list', items: r.notes });

  prepareOutputDir(dir, 'a report folder');
  const images: string[] = [];
  const names = new Set<string>();
  for (const f of figures) {
    if (f.kind !== 'figure') continue;
    // Slugs keep runs apart; this is the last guard against two charts sharing one file (and one overwriting another).
    for (let i = 2; names.has(f.file); i++) f.file = f.file.replace(/(-\d+)?\.svg$/, `-${i}.svg`);
    names.add(f.file);
    const file = join(dir, f.file);
    await writeTextFile(file, `<?xml version="1.0" encoding="UTF-8"?>\n${f.svg}\n`);
    images.push(file);
  }
  const markdown = join(dir, 'report.md');
  const html = join(dir, 'report.html');
  await writeTextFile(markdown, toMarkdown(blocks));
  await writeTextFile(html, toHtml(r.title, blocks));
  return { markdown, html, images };
}
