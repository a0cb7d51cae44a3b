// Sharded data stages: `tpo eval --nproc 2` and `tpo generate --nproc 2` give what one process gives (each rank takes
// every other video; rank 0 merges in one process's order).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { removeDir, ROOT, tempDir } from '../helpers.js';
import { makeWorld } from '../world-fixture.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');

const tpo = (args: string[]) => {
  const r = spawnSync(process.execPath, [TPO, ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, TPO_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, `tpo ${args.join(' ')}: ${r.stderr}`);
  return r;
};

describe('distributed: sharded evaluation and pair generation', function () {
  this.timeout(600_000);
  let dir: string;
  let world: { model: string; benchmark: string };
  before(async () => {
    dir = tempDir('tpo-dist-stages-');
    world = await makeWorld(dir);
  });
  after(() => removeDir(dir));

  it('tpo eval --nproc 2: the results and samples of one process', () => {
    const run = (name: string, nproc: number) => {
      const out = join(dir, `${name}.json`);
      tpo(['eval', '--model', world.model, '--benchmark', world.benchmark, '--frames', '4', '--limit', '20', '--out', out, '--json',
        ...(nproc > 1 ? ['--nproc', String(nproc)] : [])]);
      return JSON.parse(readFileSync(out, 'utf8'));
    };
    const one = run('eval-1', 1);
    const two = run('eval-2', 2);
    assert.equal(one.samples.length, 20);
    assert.ok(new Set(one.samples.map((s: { video: string }) => s.video)).size > 1, 'several videos, so both ranks work');
    assert.deepEqual(two.samples, one.samples);
    assert.deepEqual(two.results, one.results);
    assert.deepEqual(two.skipped, one.skipped);
  });

  it('tpo generate --nproc 2: the pairs and drops of one process byte for byte, and its summary; a rerun adds nothing', () => {
    const run = (name: string, nproc: number) => {
      const out = join(dir, name, 'pairs.jsonl');
      const config = join(dir, `${name}.json`);
      writeFileSync(config, JSON.stringify({ model: world.model, questions: world.benchmark, out, frames: 4, maxNewTokens: 4, judge: 'none' }));
      tpo(['generate', '--config', config, ...(nproc > 1 ? ['--nproc', String(nproc)] : [])]);
      // The summary as an object: its counts' key order follows the order events happened in, which a merge does not keep.
      return { out, config, read: () => [readFileSync(out, 'utf8'), readFileSync(`${out}.dropped.jsonl`, 'utf8'), JSON.parse(readFileSync(`${out}.summary.json`, 'utf8'))] };
    };
    const one = run('gen-1', 1);
    const two = run('gen-2', 2);
    const [pairs, dropped, summary] = one.read();
    assert.ok(pairs!.split('\n').filter(Boolean).length + dropped!.split('\n').filter(Boolean).length > 4, 'some questions asked');
    assert.ok(pairs!.trim().length > 0, 'some pairs kept');
    assert.deepEqual(two.read(), [pairs, dropped, summary]);
    assert.deepEqual(readdirSync(join(dir, 'gen-2')).sort(), ['pairs.jsonl', 'pairs.jsonl.dropped.jsonl', 'pairs.jsonl.summary.json'],
      'the ranks\' files are merged and removed');
    tpo(['generate', '--config', two.config, '--nproc', '2']);
    assert.deepEqual(two.read(), [pairs, dropped, summary]);
    // Rank files left by an interrupted 3-rank run (here: one process's records dealt out to them by video, as the
    // ranks share the work) are taken as done by a rerun in one process, which merges them.
    const three = join(dir, 'gen-3');
    mkdirSync(three);
    const out = join(three, 'pairs.jsonl');
    const videos: string[] = [];
    for (const [kind, text] of [['', pairs!], ['.dropped', dropped!]] as const) {
      const records: string[] = (text as string).split('\n').filter(Boolean);
      const rankOf = (line: string) => {
        const video = JSON.parse(line).video as string;
        if (!videos.includes(video)) videos.push(video);
        return videos.indexOf(video) % 3;
      };
      const ranks = records.map(rankOf);
      for (let r = 0; r < 3; r++) {
        writeFileSync(`${out}.rank-0000${r}-of-00003${kind}.jsonl`, records.filter((_, i) => ranks[i] === r).map((l) => `${l}\n`).join(''));
      }
    }
    const config = join(dir, 'gen-3.json');
    writeFileSync(config, readFileSync(two.config, 'utf8').replace(join(dir, 'gen-2'), three));
    tpo(['generate', '--config', config]);
    assert.deepEqual([readFileSync(out, 'utf8'), readFileSync(`${out}.dropped.jsonl`, 'utf8')], [pairs, dropped]);
    assert.deepEqual(readdirSync(three).sort(), ['pairs.jsonl', 'pairs.jsonl.dropped.jsonl', 'pairs.jsonl.summary.json']);
  });
});
