// lib/report/report.ts: the demo report's files, its numbers (accuracies, Δ in points), escaping, and its charts.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { writeTextFile } from '../../lib/data/jsonl.js';
import {
  escapeMarkdown, formatComparisonTable, formatPercent, formatPoints, formatSeconds, writeReport,
  type DemoReport, type ModelScores,
} from '../../lib/report/report.js';
import { ValidationError } from '../../lib/validate.js';
import { removeDir, tempDir } from '../helpers.js';
import { byClass, findAll, parseXml, textOf } from './xml.js';

const BASE: ModelScores = {
  name: 'base', accuracy: 5 / 12, n: 120,
  byCategory: { 'kind=localized': { accuracy: 0.3, n: 40 }, 'kind=global': { accuracy: 0.475, n: 80 }, 'type=count': { accuracy: 0.2, n: 20 } },
};
const TPO: ModelScores = {
  name: 'tpo', accuracy: 58 / 120, n: 120,
  byCategory: { 'kind=localized': { accuracy: 0.45, n: 40 }, 'kind=global': { accuracy: 0.5, n: 80 }, 'length=long': { accuracy: 0.55, n: 60 } },
};

/** A table as rows of cells, for checking values by row and column rather than by layout. */
function tableRows(text: string): string[][] {
  return text.split('\n').map((line) => line.trim().split(/\s{2,}/));
}

describe('report: formatting', () => {
  it('formatPercent, formatPoints (signed, no -0.0) and formatSeconds', () => {
    assert.equal(formatPercent(5 / 12), '41.7%');
    assert.equal(formatPercent(1), '100.0%');
    assert.equal(formatPoints(58 / 120 - 5 / 12), '+6.7');
    assert.equal(formatPoints(-0.123), '-12.3');
    assert.equal(formatPoints(-0.0004), '0.0');
    assert.equal(formatPoints(0), '0.0');
    assert.equal(formatSeconds(0.4), '0.40 s');
    assert.equal(formatSeconds(12.34), '12.3 s');
    assert.equal(formatSeconds(125), '2 min 05 s');
    assert.equal(formatSeconds(3900), '1 h 05 min');
  });

  it('escapeMarkdown makes text literal', () => {
    assert.equal(escapeMarkdown('a*b*_c_ `d` [e](f) <g> & h|i'), 'a\\*b\\*\\_c\\_ \\`d\\` \\[e\\](f) \\<g\\> \\& h\\|i');
    assert.equal(escapeMarkdown('- not a list'), '\\- not a list');
    assert.equal(escapeMarkdown('12. not numbered'), '12\\. not numbered');
    assert.equal(escapeMarkdown('# not a heading\nnext line'), '\\# not a heading next line');
    assert.equal(escapeMarkdown('plain kind=localized 41.7%'), 'plain kind=localized 41.7%');
  });
});

describe('report: formatComparisonTable', () => {
  it('has a row per category, overall first, accuracies in %, Δ last minus first in points, and n', () => {
    const rows = tableRows(formatComparisonTable([BASE, TPO]));
    assert.deepEqual(rows[0], ['category', 'base', 'tpo', 'Δ pts', 'n']);
    assert.deepEqual(rows.slice(2), [
      ['overall', '41.7%', '48.3%', '+6.7', '120'],
      ['kind=localized', '30.0%', '45.0%', '+15.0', '40'],
      ['kind=global', '47.5%', '50.0%', '+2.5', '80'],
      ['type=count', '20.0%', '–', '–', '20 / –'],
      ['length=long', '–', '55.0%', '–', '– / 60'],
    ]);
  });

  it('Δ is the last model against the first, whatever is between; one model has no Δ', () => {
    const middle: ModelScores = { name: 'sft', accuracy: 0.9, n: 120, byCategory: {} };
    const worse: ModelScores = { ...TPO, name: 'worse', accuracy: 0.25 };
    const rows = tableRows(formatComparisonTable([BASE, middle, worse]));
    assert.deepEqual(rows[0], ['category', 'base', 'sft', 'worse', 'Δ pts', 'n']);
    assert.deepEqual(rows[2], ['overall', '41.7%', '90.0%', '25.0%', '-16.7', '120']);
    assert.deepEqual(tableRows(formatComparisonTable([BASE]))[0], ['category', 'base', 'n']);
    assert.equal(formatComparisonTable([]), 'no models to compare');
  });

  it('a category scored on no items shows no accuracy and no Δ', () => {
    const a: ModelScores = { name: 'a', accuracy: 0.5, n: 2, byCategory: { x: { accuracy: 0, n: 0 } } };
    const b: ModelScores = { name: 'b', accuracy: 1, n: 2, byCategory: { x: { accuracy: 1, n: 0 } } };
    assert.deepEqual(tableRows(formatComparisonTable([a, b]))[3], ['x', '–', '–', '–', '0']);
  });

  it('rejects scores outside [0, 1]', () => {
    assert.throws(() => formatComparisonTable([{ ...BASE, accuracy: 41.7 }]), ValidationError);
  });
});

describe('report: writeReport', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  function metrics(name: string, lines: object[], tail = ''): string {
    const file = join(dir, `${name}.jsonl`);
    writeFileSync(file, lines.map((l) => JSON.stringify(l) + '\n').join('') + tail);
    return file;
  }

  function demo(extra: Partial<DemoReport> = {}): DemoReport {
    const sft = metrics('sft', Array.from({ length: 30 }, (_, i) => ({ step: i + 1, epoch: 0, loss: 3 / (i + 1), nll_loss: 3 / (i + 1) })));
    const tpo = metrics('tpo', Array.from({ length: 50 }, (_, i) => ({
      step: i + 1, loss: 0.69 - i / 100, 'rewards/chosen': -i / 100, 'rewards/rejected': -i / 40,
      'rewards/margins': i / 100 - i / 40 + 0.3, 'rewards/accuracies': Math.min(1, 0.5 + i / 50),
    })).concat([{ step: 50, 'eval/loss': 0.4, 'eval/rewards/accuracies': 0.8 } as never]), '{"step": 51, "lo');
    return {
      title: 'TPO demo',
      createdAt: '2026-01-02T03:04:05.000Z',
      command: 'tpo demo --out runs/demo --seed 1',
      stages: [{ name: 'synth', seconds: 3.2, detail: '200 videos' }, { name: 'sft', seconds: 125 }, { name: 'tpo', seconds: 71.8 }],
      models: [BASE, TPO],
      training: [{ name: 'SFT base', metricsFile: sft }, { name: 'TPO', metricsFile: tpo }],
      pairs: { kept: 120, judged: 200, preferredCorrect: 180, dispreferredCorrect: 10, byKind: { reorder: { kept: 70, dropped: 30 }, shuffle: { kept: 50, dropped: 50 } }, dropped: { 'same-answers': 30, 'both-correct': 50 } },
      notes: ['Synthetic world: exact answers.'],
      ...extra,
    };
  }

  it('writes report.md, report.html and the charts, and leaves no temporary file', async () => {
    const out = join(dir, 'report');
    const files = await writeReport(out, demo());
    assert.equal(files.markdown, join(out, 'report.md'));
    assert.equal(files.html, join(out, 'report.html'));
    assert.deepEqual(files.images.map((f) => basename(f)), [
      'accuracy.svg', 'pairs.svg', 'sft-base-loss.svg',
      'tpo-loss.svg', 'tpo-rewards-accuracies.svg', 'tpo-rewards-margins.svg', 'tpo-rewards.svg',
    ], 'SFT runs plot loss only; TPO runs loss, reward accuracy, margin, chosen vs rejected');
    assert.deepEqual(readdirSync(out).sort(), [...files.images.map((f) => basename(f)), 'report.html', 'report.md'].sort());
    for (const image of files.images) {
      const svg = parseXml(readFileSync(image, 'utf8'));
      assert.equal(svg.name, 'svg', image);
    }
    const md = readFileSync(files.markdown, 'utf8');
    for (const image of files.images) assert.ok(md.includes(`](${basename(image)})`), `report.md embeds ${basename(image)}`);
  });

  it('report.md has the accuracy table with Δ, the pair statistics and the stage timings', async () => {
    const files = await writeReport(dir, demo());
    const md = readFileSync(files.markdown, 'utf8');
    assert.ok(md.startsWith('# TPO demo\n'));
    assert.ok(md.includes('```sh\ntpo demo --out runs/demo --seed 1\n```'));
    assert.ok(md.includes('| Category | base | tpo | Δ tpo − base (pts) | n |\n| --- | --: | --: | --: | --: |\n'));
    assert.ok(md.includes('| overall | 41.7% | 48.3% | +6.7 | 120 |'));
    assert.ok(md.includes('| kind=localized | 30.0% | 45.0% | +15.0 | 40 |'));
    assert.ok(md.includes('| type=count | 20.0% | – | – | 20 / – |'));
    assert.ok(md.includes('- Kept 120 of 200 judged pairs (60.0%).'));
    assert.ok(md.includes('| reorder | 70 | 30 | 70.0% |'));
    assert.ok(md.indexOf('| both-correct | 50 |') < md.indexOf('| same-answers | 30 |'), 'drop reasons, most first');
    assert.ok(md.includes('| sft | 2 min 05 s | 62.5% |  |'));
    assert.ok(md.includes('| total | 3 min 20 s | 100.0% |  |'));
    assert.ok(md.includes('Steps 1–50 logged.'), 'the torn last line (step 51) is not counted');
    assert.ok(md.includes('- Synthetic world: exact answers.'));
  });

  it('report.html is self-contained, well-formed, and holds every model\'s accuracy and every chart inline', async () => {
    const files = await writeReport(dir, demo());
    const text = readFileSync(files.html, 'utf8');
    assert.ok(text.startsWith('<!DOCTYPE html>'));
    assert.ok(!/(src|href)=/.test(text), 'nothing is loaded from elsewhere');
    const html = parseXml(text, { voidElements: ['meta'] });
    const svgs = findAll(html, (e) => e.name === 'svg');
    assert.equal(svgs.length, files.images.length);
    const cells = findAll(html, (e) => e.name === 'td').map(textOf);
    for (const m of [BASE, TPO]) {
      assert.ok(cells.includes(formatPercent(m.accuracy)), `${m.name}: ${formatPercent(m.accuracy)}`);
      for (const c of Object.values(m.byCategory)) assert.ok(cells.includes(formatPercent(c.accuracy)));
    }
    const overall = findAll(html, (e) => e.name === 'tr').map((tr) => findAll(tr, (e) => e.name === 'td').map(textOf))
      .find((r) => r[0] === 'overall');
    assert.deepEqual(overall, ['overall', '41.7%', '48.3%', '+6.7', '120']);
    // The accuracy chart: one bar per model and category, at the model's accuracy in %.
    const bars = byClass(svgs[0]!, 'bar').filter((b) => b.attrs['data-group'] === 'overall');
    assert.deepEqual(bars.map((b) => [b.attrs['data-series'], Number(b.attrs['data-value']).toFixed(2)]), [['base', '41.67'], ['tpo', '48.33']]);
    // The same figures as the .svg files.
    assert.ok(readFileSync(files.images[0]!, 'utf8').includes(text.slice(text.indexOf('<svg'), text.indexOf('</svg>') + 6)));
  });

  it('escapes names and notes in both files', async () => {
    const evil = '<img src=x onerror="alert(1)"> & *bold* | pipe';
    const files = await writeReport(dir, demo({
      title: evil,
      models: [BASE, { ...TPO, name: evil, byCategory: { [evil]: { accuracy: 0.5, n: 2 } } }],
      notes: [evil, '- dash'],
      command: 'echo "```" && tpo demo',
    }));
    const text = readFileSync(files.html, 'utf8');
    assert.ok(!text.includes('<img'));
    const html = parseXml(text, { voidElements: ['meta'] });
    assert.equal(textOf(findAll(html, (e) => e.name === 'h1')[0]!), evil);
    assert.ok(findAll(html, (e) => e.name === 'li').map(textOf).includes(evil));
    assert.ok(findAll(html, (e) => e.name === 'th').map(textOf).includes(evil));
    const md = readFileSync(files.markdown, 'utf8');
    assert.ok(!/(^|[^\\])<img/m.test(md), 'every < in report.md is escaped');
    const escaped = '\\<img src=x onerror="alert(1)"\\> \\& \\*bold\\* \\| pipe';
    assert.ok(md.includes(`# ${escaped}\n`));
    assert.ok(md.includes(`- ${escaped}\n- \\- dash\n`));
    assert.ok(md.includes(`| ${escaped} | – | 50.0% | – | – / 2 |`), 'a table cell with a pipe stays one cell');
    assert.ok(md.includes('````sh\necho "```" && tpo demo\n````'), 'the fence outlasts backticks in the command');
  });

  it('a run whose metrics cannot be read costs its curves, not the report; an empty one says so', async () => {
    const empty = metrics('empty', []);
    const files = await writeReport(dir, demo({ training: [{ name: 'gone', metricsFile: join(dir, 'missing.jsonl') }, { name: 'empty', metricsFile: empty }], pairs: undefined }));
    assert.deepEqual(files.images.map((f) => basename(f)), ['accuracy.svg']);
    const md = readFileSync(files.markdown, 'utf8');
    assert.match(md, /### gone\n\nNo curves: .*missing\.jsonl/);
    assert.match(md, /### empty\n\nNo curves: .*holds no metrics\./);
    assert.ok(!md.includes('Preference pairs'));
  });

  it('two runs with one name get two sets of charts', async () => {
    const r = demo();
    const files = await writeReport(dir, { ...r, pairs: undefined, training: [r.training[1]!, r.training[1]!] });
    assert.deepEqual(files.images.map((f) => basename(f)).filter((f) => f.endsWith('-loss.svg')), ['tpo-loss.svg', 'tpo-2-loss.svg']);
  });

  it('validates the report', async () => {
    await assert.rejects(writeReport(dir, demo({ models: [] })), ValidationError);
    await assert.rejects(writeReport(dir, demo({ models: [{ ...BASE, accuracy: 1.2 }] })), /models\.0\.accuracy/);
    assert.ok(!existsSync(join(dir, 'report.md')), 'nothing written for a bad report');
  });
});

describe('report: writeTextFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('replaces the file whole, leaves no temporary file, and leaves the old file when it fails', async () => {
    const file = join(dir, 'a.txt');
    await writeTextFile(file, 'one');
    await Promise.all([writeTextFile(file, 'two'), writeTextFile(file, 'three')]);
    assert.ok(['two', 'three'].includes(readFileSync(file, 'utf8')));
    assert.deepEqual(readdirSync(dir), ['a.txt']);
    await assert.rejects(writeTextFile(join(dir, 'no', 'such', 'dir.txt'), 'x'), /ENOENT/);
    await assert.rejects(writeTextFile(file, 42 as unknown as string));
    assert.ok(['two', 'three'].includes(readFileSync(file, 'utf8')));
    assert.deepEqual(readdirSync(dir), ['a.txt']);
  });
});
