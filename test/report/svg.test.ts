// lib/report/svg.ts: charts are well-formed XML, values land where the axes say, text is escaped, gaps are handled.
import assert from 'node:assert/strict';

import { barChart, ema, escapeXml, formatTick, lineChart, niceAxis } from '../../lib/report/svg.js';
import { ValidationError } from '../../lib/validate.js';
import { byClass, findAll, parseXml, pathPoints, textOf, type XmlElement } from './xml.js';

interface Area {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

function plotArea(svg: XmlElement): Area {
  const [rect] = byClass(svg, 'plot-area');
  assert.ok(rect, 'the chart has a plot area');
  const [x, y, w, h] = ['x', 'y', 'width', 'height'].map((k) => Number(rect.attrs[k]));
  return { left: x!, top: y!, right: x! + w!, bottom: y! + h! };
}

function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 0.02, `${what}: ${actual} is not ${expected}`);
}

describe('report/svg: checker', () => {
  it('the XML checker rejects what a parser would', () => {
    assert.doesNotThrow(() => parseXml('<?xml version="1.0"?>\n<a x="1"><b/>t &amp; &lt;u&gt; &#39;</a>\n'));
    for (const bad of ['<a><b></a></b>', '<a>', '<a>x & y</a>', '<a x=1/>', '<a x="1" x="2"/>', '<a/><b/>', 'x<a/>', '<a>1 < 2</a>', '<a>&nope;</a>']) {
      assert.throws(() => parseXml(bad), /./, bad);
    }
  });
});

describe('report/svg: axes', () => {
  it('niceAxis covers the range with a 1/2/5 × 10^k step and evenly spaced ticks', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let k = 0; k < 500; k++) {
      const scale = 10 ** Math.floor(random() * 12 - 6);
      const a = (random() - 0.3) * scale;
      const b = a + random() * scale * (random() < 0.1 ? 0 : 1);
      const axis = niceAxis(a, b);
      const mantissa = axis.step / 10 ** Math.floor(Math.log10(axis.step) + 1e-9);
      assert.ok([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-6), `step ${axis.step} for [${a}, ${b}]`);
      assert.ok(axis.min <= a && axis.max >= b, `[${axis.min}, ${axis.max}] covers [${a}, ${b}]`);
      assert.ok(axis.max > axis.min);
      assert.equal(axis.ticks[0], axis.min);
      assert.equal(axis.ticks.at(-1), axis.max);
      assert.ok(axis.ticks.length >= 2 && axis.ticks.length <= 12, `${axis.ticks.length} ticks for [${a}, ${b}]`);
      for (let i = 1; i < axis.ticks.length; i++) {
        assert.ok(Math.abs(axis.ticks[i]! - axis.ticks[i - 1]! - axis.step) < axis.step * 1e-6);
      }
    }
  });

  it('niceAxis: known cases, exact tick values, and a constant widened around itself', () => {
    assert.deepEqual(niceAxis(0, 1).ticks, [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceAxis(0.13, 0.87).ticks, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
    assert.deepEqual(niceAxis(1, 1000).ticks, [0, 200, 400, 600, 800, 1000]);
    assert.deepEqual(niceAxis(0.1 + 0.2, 0.9).ticks, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], '0.30000000000000004 is on the tick 0.3');
    assert.deepEqual(niceAxis(1e-5, 3e-5).ticks, [1e-5, 1.5e-5, 2e-5, 2.5e-5, 3e-5]);
    const flat = niceAxis(0.3, 0.3);
    assert.ok(flat.min < 0.3 && flat.max > 0.3);
    assert.deepEqual(niceAxis(0, 0).ticks, [-1, -0.5, 0, 0.5, 1]);
    assert.throws(() => niceAxis(0, NaN), RangeError);
  });

  it('formatTick gives the step its decimals and small steps an exponent', () => {
    assert.equal(formatTick(0.4, 0.2), '0.4');
    assert.equal(formatTick(1, 0.2), '1.0');
    assert.equal(formatTick(200, 200), '200');
    assert.equal(formatTick(2.5e-5, 5e-6), '2.5e-5');
    assert.equal(formatTick(0, 5e-6), '0');
  });

  it('ema keeps a constant constant, starts at the first value, and follows a step', () => {
    assert.deepEqual(ema([2, 2, 2, 2], 5), [2, 2, 2, 2]);
    const s = ema([0, 0, 0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10], 3);
    assert.equal(s[0], 0);
    assert.ok(s[3]! > 0 && s[3]! < 10);
    assert.ok(s.at(-1)! > 9.99);
    assert.deepEqual(ema([1, 5], 1), [1, 5]);
  });
});

describe('report/svg: lineChart', () => {
  it('is well-formed and puts points where the axes say', () => {
    const svg = parseXml(lineChart({
      title: 'Loss', xLabel: 'step', yLabel: 'loss',
      series: [{ name: 'loss', points: [[0, 0], [5, 0.5], [10, 1]] }],
    }));
    assert.equal(svg.name, 'svg');
    assert.equal(svg.attrs['xmlns'], 'http://www.w3.org/2000/svg');
    const area = plotArea(svg);
    const [line] = findAll(svg, (e) => e.name === 'path');
    const points = pathPoints(line!.attrs['d']!);
    assert.equal(points.length, 3);
    near(points[0]![0], area.left, 'x of the minimum');
    near(points[0]![1], area.bottom, 'y of the minimum: the bottom');
    near(points[2]![0], area.right, 'x of the maximum');
    near(points[2]![1], area.top, 'y of the maximum: the top');
    near(points[1]![0], (area.left + area.right) / 2, 'x of the middle');
    near(points[1]![1], (area.top + area.bottom) / 2, 'y of the middle');
  });

  it('an un-round maximum lands below the top, where the tick labels say', () => {
    const svg = parseXml(lineChart({
      title: 't', xLabel: 'x', yLabel: 'y',
      series: [{ name: 'a', points: [[1, 0.13], [2, 0.87]] }],
    }));
    const area = plotArea(svg);
    const [axis] = byClass(svg, 'y-axis');
    // Tick labels sit 4 px below their value's height; the first is at the bottom, the last at the top.
    const labels = findAll(axis!, (e) => e.name === 'text' && !e.attrs['transform']).map((t) => [Number(textOf(t)), Number(t.attrs['y']) - 4] as const);
    const [lo, hi] = [labels[0]![0], labels.at(-1)![0]];
    assert.ok(lo <= 0.13 && lo > 0.13 - 0.2 && hi >= 0.87 && hi < 0.87 + 0.2, `axis [${lo}, ${hi}] fits [0.13, 0.87]`);
    near(labels[0]![1], area.bottom, `tick ${lo}`);
    near(labels.at(-1)![1], area.top, `tick ${hi}`);
    const y = (v: number) => area.bottom - ((v - lo) / (hi - lo)) * (area.bottom - area.top);
    for (const [v, at] of labels) near(at, Math.round(y(v) * 100) / 100, `tick ${v}`);
    const points = pathPoints(findAll(svg, (e) => e.name === 'path')[0]!.attrs['d']!);
    near(points[0]![1], Math.round(y(0.13) * 100) / 100, 'y of 0.13');
    near(points[1]![1], Math.round(y(0.87) * 100) / 100, 'y of 0.87');
  });

  it('skips non-finite points, sorts by x, and says "no data" when nothing is left', () => {
    const svg = parseXml(lineChart({
      title: 't', xLabel: 'x', yLabel: 'y',
      series: [{ name: 'a', points: [[3, 3], [1, NaN], [2, Infinity], [1, 1], [NaN, 2]] }, { name: 'empty', points: [] }],
    }));
    const paths = findAll(svg, (e) => e.name === 'path');
    assert.equal(paths.length, 1, 'the empty series draws nothing');
    const points = pathPoints(paths[0]!.attrs['d']!);
    assert.equal(points.length, 2);
    assert.ok(points[0]![0] < points[1]![0], 'in x order');
    assert.equal(byClass(svg, 'no-data').length, 0);
    for (const series of [[], [{ name: 'nan', points: [[NaN, NaN], [1, -Infinity]] as [number, number][] }]]) {
      const empty = parseXml(lineChart({ title: 'nothing', xLabel: 'x', yLabel: 'y', series }));
      assert.equal(textOf(byClass(empty, 'no-data')[0]!), 'no data');
      assert.equal(findAll(empty, (e) => e.name === 'path').length, 0);
    }
  });

  it('smooth draws each long series raw and faint with its EMA bold, and leaves short series as logged', () => {
    const noisy: [number, number][] = Array.from({ length: 60 }, (_, i) => [i + 1, (i % 2) * 2]);
    const svg = parseXml(lineChart({
      title: 't', xLabel: 'x', yLabel: 'y', smooth: 10,
      series: [{ name: 'train', points: noisy }, { name: 'eval', points: [[20, 1], [40, 0.5], [60, 0.2]] }],
    }));
    const [train, evaluation] = byClass(svg, 'series');
    assert.equal(train!.attrs['data-name'], 'train');
    const raw = pathPoints(byClass(train!, 'raw')[0]!.attrs['d']!);
    const smoothed = pathPoints(byClass(train!, 'smoothed')[0]!.attrs['d']!);
    assert.equal(raw.length, 60);
    assert.equal(smoothed.length, 60);
    const spread = (ps: [number, number][]) => Math.max(...ps.slice(30).map((p) => p[1])) - Math.min(...ps.slice(30).map((p) => p[1]));
    assert.ok(spread(smoothed) < spread(raw) / 3, 'the smoothed line is smoother');
    assert.equal(byClass(evaluation!, 'smoothed').length, 0);
    assert.equal(pathPoints(byClass(evaluation!, 'line')[0]!.attrs['d']!).length, 3);
    assert.equal(findAll(evaluation!, (e) => e.name === 'circle').length, 3, 'sparse points are marked');
  });

  it('escapes text, so names with <&>"\' stay text', () => {
    const nasty = `a<b>&"c"'d' </svg><script>x</script>\u0001`;
    const text = lineChart({ title: nasty, xLabel: nasty, yLabel: nasty, series: [{ name: nasty, points: [[0, 1], [1, 2]] }] });
    assert.ok(!text.includes('<script>'));
    const svg = parseXml(text);
    const clean = nasty.replace('\u0001', '');
    assert.equal(textOf(findAll(svg, (e) => e.name === 'title')[0]!), clean);
    assert.equal(textOf(byClass(svg, 'chart-title')[0]!), clean);
    assert.equal(textOf(byClass(svg, 'x-label')[0]!), clean);
    assert.equal(textOf(byClass(svg, 'legend')[0]!), clean);
    assert.equal(byClass(svg, 'series')[0]!.attrs['data-name'], clean);
    assert.equal(escapeXml(`<&>"'`), '&lt;&amp;&gt;&quot;&#39;');
    assert.equal(escapeXml('ok \ud83c\udfac \ud800 x'), 'ok \ud83c\udfac  x', 'a lone surrogate is dropped, a pair kept');
  });

  it('rejects options that are not what the types say', () => {
    assert.throws(() => lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[1, '2' as unknown as number]] }] }), ValidationError);
    assert.throws(() => lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [], width: 10 }), ValidationError);
  });
});

describe('report/svg: barChart', () => {
  const chart = (extra: Partial<Parameters<typeof barChart>[0]> = {}) => parseXml(barChart({
    title: 'Accuracy', yLabel: '%', yMax: 100, groups: ['overall', 'kind=localized', 'type=count'],
    series: [
      { name: 'base', values: [50, 25, NaN], errors: [5, 0, 3] },
      { name: 'tpo', values: [100, 0, 40] },
    ],
    valueFormat: (v) => `${v.toFixed(1)}%`,
    ...extra,
  }));

  it('is well-formed, with a bar per finite value whose height is what the axis says', () => {
    const svg = chart();
    const area = plotArea(svg);
    const bars = byClass(svg, 'bar');
    assert.deepEqual(bars.map((b) => `${b.attrs['data-series']}/${b.attrs['data-group']}=${b.attrs['data-value']}`),
      ['base/overall=50', 'tpo/overall=100', 'base/kind=localized=25', 'tpo/kind=localized=0', 'tpo/type=count=40']);
    const height = area.bottom - area.top;
    for (const bar of bars) {
      const v = Number(bar.attrs['data-value']);
      near(Number(bar.attrs['height']), Math.round((v / 100) * height * 100) / 100, `height of ${v}`);
      near(Number(bar.attrs['y']) + Number(bar.attrs['height']), area.bottom, `${v} stands on 0`);
    }
    near(Number(bars[1]!.attrs['y']), area.top, '100 reaches the top (yMax)');
    const ticks = findAll(byClass(svg, 'y-axis')[0]!, (e) => e.name === 'text' && !e.attrs['transform']).map(textOf);
    assert.deepEqual(ticks, ['0', '20', '40', '60', '80', '100']);
  });

  it('labels values with valueFormat, marks missing ones n/a, and draws whiskers only for positive errors', () => {
    const svg = chart();
    assert.deepEqual(byClass(svg, 'value').map(textOf), ['50.0%', '100.0%', '25.0%', '0.0%', '40.0%']);
    assert.deepEqual(byClass(svg, 'missing').map(textOf), ['n/a']);
    const whiskers = byClass(svg, 'whisker');
    assert.equal(whiskers.length, 1, 'error 0 draws no whisker, and NaN values none');
    const area = plotArea(svg);
    const ys = pathPoints(whiskers[0]!.attrs['d']!).map((p) => p[1]);
    const y = (v: number) => Math.round((area.bottom - (v / 100) * (area.bottom - area.top)) * 100) / 100;
    near(Math.max(...ys), y(45), 'whisker bottom at 50 − 5');
    near(Math.min(...ys), y(55), 'whisker top at 50 + 5');
    assert.deepEqual(textOf(byClass(svg, 'legend')[0]!), 'basetpo');
  });

  it('finds its own axis without yMax, and handles negative values', () => {
    const svg = parseXml(barChart({ title: 't', yLabel: 'y', groups: ['a', 'b'], series: [{ name: 's', values: [-3, 7] }] }));
    const ticks = findAll(byClass(svg, 'y-axis')[0]!, (e) => e.name === 'text' && !e.attrs['transform']).map((t) => Number(textOf(t)));
    assert.ok(ticks[0]! <= -3 && ticks.at(-1)! >= 7);
    const [neg, pos] = byClass(svg, 'bar');
    near(Number(neg!.attrs['y']), Number(pos!.attrs['y']) + Number(pos!.attrs['height']), 'the negative bar hangs from 0');
  });

  it('says "no data" for no groups or no finite values, and rejects mismatched lengths', () => {
    for (const o of [
      { groups: [], series: [] },
      { groups: ['a'], series: [] },
      { groups: ['a', 'b'], series: [{ name: 's', values: [NaN, NaN] }] },
    ]) {
      const svg = parseXml(barChart({ title: 't', yLabel: 'y', ...o }));
      assert.equal(textOf(byClass(svg, 'no-data')[0]!), 'no data');
      assert.equal(byClass(svg, 'bar').length, 0);
    }
    assert.throws(() => barChart({ title: 't', yLabel: 'y', groups: ['a', 'b'], series: [{ name: 's', values: [1] }] }), /1 values for 2 groups/);
    assert.throws(() => barChart({ title: 't', yLabel: 'y', groups: ['a'], series: [{ name: 's', values: [1], errors: [] }] }), /0 errors for 1 groups/);
  });

  it('escapes group and series names, and rotates labels that do not fit', () => {
    const long = 'type=<order & "sequence">';
    const svg = parseXml(barChart({ title: 't', yLabel: 'y', groups: Array.from({ length: 12 }, (_, i) => `${long} ${i}`), series: [{ name: '<s>', values: Array.from({ length: 12 }, (_, i) => i) }] }));
    const labels = findAll(byClass(svg, 'x-axis')[0]!, (e) => e.name === 'text');
    assert.equal(textOf(labels[3]!), `${long} 3`);
    assert.match(labels[3]!.attrs['transform']!, /^rotate\(-45 /);
    assert.equal(byClass(svg, 'bar')[0]!.attrs['data-series'], '<s>');
    const few = parseXml(barChart({ title: 't', yLabel: 'y', groups: ['a', 'b'], series: [{ name: 's', values: [1, 2] }] }));
    assert.equal(findAll(byClass(few, 'x-axis')[0]!, (e) => e.name === 'text')[0]!.attrs['transform'], undefined);
  });
});
