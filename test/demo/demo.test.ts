// lib/demo/demo.ts and `tpo demo`: the whole pipeline, small, from the packaged SFT base: every stage runs, the
// report is written with both models, and a rerun resumes instead of redoing the work.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { PACKAGED_BASE, runDemo, type DemoEvent } from '../../lib/demo/demo.js';
import { removeDir, ROOT, tempDir } from '../helpers.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');

describe('tpo demo', function () {
  this.timeout(600_000);
  let dir: string;
  before(() => {
    dir = tempDir('tpo-demo-');
  });
  after(() => removeDir(dir));

  it('runs world -> base -> pairs -> TPO -> eval -> report, and a rerun resumes', async () => {
    assert.ok(existsSync(join(PACKAGED_BASE, 'model.safetensors')), 'the package ships its SFT base');
    const out = join(dir, 'demo');
    // Three epochs of one batch: the first step is all warm-up (lr 0), the others move the weights.
    const small = { out, videos: 60, pairs: 8, epochs: 3, seed: 3 };
    const events: DemoEvent[] = [];
    const result = await runDemo(small, (e) => events.push(e));
    const names = result.stages.map((s) => s.name);
    assert.deepEqual(names, ['world', 'base', 'pairs', 'tpo', 'eval base', 'eval tpo']);
    assert.ok(result.pairs.kept > 0 && result.pairs.kept <= 8, `kept ${result.pairs.kept}`);
    const pairs = readFileSync(join(out, 'pairs', 'tpo-pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(pairs.length, result.pairs.kept);
    assert.ok(pairs.every((p) => p.judge.preferredCorrect && !p.judge.dispreferredCorrect), 'the synthetic judge kept only right-vs-wrong pairs');
    // Both models scored on the same held-out items; TPO's weights differ from the base's, so its scores do.
    assert.equal(result.base.results.n, result.tpo.results.n);
    const scores = (r: typeof result.base) => r.samples.map((s) => s.scores!.join(','));
    assert.notDeepEqual(scores(result.tpo), scores(result.base));
    const html = readFileSync(result.report.html, 'utf8');
    const markdown = readFileSync(result.report.markdown, 'utf8');
    for (const text of [html, markdown]) {
      assert.match(text, /base \(SFT\)/);
      assert.match(text, /TPO/);
      assert.ok(text.includes((100 * result.tpo.results.accuracy).toFixed(1)), 'the TPO accuracy is in the report');
    }
    assert.match(markdown, /!\[[^\]]*\]\([^)]*\.svg\)/, 'the Markdown embeds its charts');
    assert.ok(events.some((e) => e.type === 'progress' && e.stage === 'tpo'));

    // Everything is on disk: a rerun redoes nothing and reports the same.
    const again = await runDemo(small);
    assert.ok(again.stages.every((s) => s.name === 'base' || s.detail === 'done by an earlier run'), JSON.stringify(again.stages));
    assert.equal(again.tpo.results.accuracy, result.tpo.results.accuracy);
  });

  it('names a bad flag', () => {
    const r = spawnSync(process.execPath, [TPO, 'demo', '--pairs', '0'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /pairs/);
  });
});
