// lib/tpo/generate.ts and `tpo generate`: pairs from the model's own answers to manipulated synthetic videos.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { generatePairs, type GenerateConfig } from '../../lib/tpo/generate.js';
import { removeDir, ROOT, tempDir } from '../helpers.js';
import { makeWorld } from '../world-fixture.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

describe('TPO pair generation', function () {
  this.timeout(300_000);
  let dir: string;
  let base: GenerateConfig & { questions: string };
  before(async () => {
    dir = tempDir('tpo-generate-');
    const world = await makeWorld(dir);
    base = { model: world.model, questions: world.benchmark!, out: '', frames: 8, maxNewTokens: 6 };
  });
  after(() => removeDir(dir));

  it('answers each question from both manipulations, keeps differing pairs with provenance, and says why others dropped', async () => {
    const out = join(dir, 'a', 'pairs.jsonl');
    const summary = await generatePairs({ ...base, out, judge: 'none', temperature: 1, topP: 0.9, seed: 5 });
    const kept = lines(out);
    const dropped = lines(`${out}.dropped.jsonl`);
    // The 5:5 mix asks as many localized as comprehensive questions: all of the scarcer kind, as many of the other.
    const records = lines(base.questions);
    const scarcer = Math.min(...['localized', 'comprehensive'].map((k) => records.filter((r) => r.kind === k).length));
    const questions = 2 * scarcer;
    assert.equal(kept.length + dropped.length, questions);
    for (const kind of ['localized', 'comprehensive'])
      assert.equal([...kept, ...dropped].filter((r) => r.kind === kind).length, scarcer, kind);
    assert.equal(summary.kept, kept.length);
    assert.equal(summary.judged, questions);
    for (const p of kept) {
      assert.ok(p.id && p.video && p.prompt && p.chosen !== p.rejected, JSON.stringify(p));
      if (p.kind === 'localized') {
        const fps = 8;  // the world's frame rate
        const [start, end] = p.span;
        assert.ok(p.frames.preferred.every((i: number) => i / fps >= start - 1e-9 && i / fps < end), 'preferred frames inside the span');
        assert.ok(p.frames.dispreferred.every((i: number) => i / fps < start || i / fps >= end), 'dis-preferred frames outside it');
      } else {
        assert.equal(p.frames.preferred.length, 8);
        assert.equal(p.frames.dispreferred.length, 2);
      }
    }
    for (const d of dropped) assert.ok(['same-answers', 'empty-answer'].includes(d.reason), d.reason);
    assert.deepEqual(JSON.parse(readFileSync(`${out}.summary.json`, 'utf8')), summary);
  });

  it('follows the mix and stops at the target', async () => {
    const out = join(dir, 'b', 'pairs.jsonl');
    const summary = await generatePairs({ ...base, out, judge: 'none', temperature: 1, seed: 5, mix: [1, 0], targetPairs: 3 });
    assert.ok(lines(out).length <= 3);
    assert.equal(summary.byKind.comprehensive, undefined);
    assert.ok(lines(out).every((p) => p.kind === 'localized'));
  });

  it('a killed `tpo generate` resumes: no record twice, none lost, no broken line', async () => {
    const config = join(dir, 'gen.json');
    const write = (out: string) => writeFileSync(config, JSON.stringify({ ...base, out, judge: 'none', maxNewTokens: 6 }));
    write(join(dir, 'straight', 'pairs.jsonl'));
    assert.equal(spawnSync(process.execPath, [TPO, 'generate', '--config', config]).status, 0);
    const straight = join(dir, 'straight', 'pairs.jsonl');
    const all = [...lines(straight), ...lines(`${straight}.dropped.jsonl`)].map((r) => r.id).sort();

    const out = join(dir, 'killed', 'pairs.jsonl');
    write(out);
    const child = spawn(process.execPath, [TPO, 'generate', '--config', config], { stdio: 'ignore' });
    const deadline = Date.now() + 120_000;
    while (lines(`${out}.dropped.jsonl`).length + lines(out).length < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.equal(spawnSync(process.execPath, [TPO, 'generate', '--config', config]).status, 0);
    const resumed = [...lines(out), ...lines(`${out}.dropped.jsonl`)].map((r) => r.id).sort();
    assert.deepEqual(resumed, all);
  });
});
