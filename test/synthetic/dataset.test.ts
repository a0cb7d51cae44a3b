// lib/synthetic/dataset.ts and `tpo synth`: the dataset folder is reproducible byte for byte from its seed, its
// records read back through lib/data, its answers agree with its annotations, its splits are disjoint, and a
// rerun resumes instead of redoing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { readAnnotations, readBenchmark, readSft } from '../../lib/data/records.js';
import { assertVideosExist } from '../../lib/data/videos.js';
import { type SynthOptions, writeSynthDataset } from '../../lib/synthetic/dataset.js';
import { SPLITS, splitOfSeed, splitSeeds } from '../../lib/synthetic/splits.js';
import { probeVideo } from '../../lib/video/decode.js';
import { removeDir, ROOT, tempDir } from '../helpers.js';
import { answerChoice, answerOpen } from './oracle.js';

/** Every file of a folder (recursively) with its sha256. */
function digests(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, prefix)).sort()) {
    const rel = join(prefix, name);
    if (statSync(join(dir, rel)).isDirectory()) Object.assign(out, digests(dir, rel));
    else out[rel] = createHash('sha256').update(readFileSync(join(dir, rel))).digest('hex');
  }
  return out;
}

describe('synthetic datasets', function () {
  this.timeout(120_000);
  let root: string;
  const options = (out: string, more: Partial<SynthOptions> = {}): SynthOptions => ({
    out, videos: 24, seed: 5, split: [0.5, 0.25, 0.25], concurrency: 2, ...more,
  });
  before(() => {
    root = tempDir('tpo-synth-');
  });
  after(() => removeDir(root));

  it('writes the same bytes for the same seed (videos, JSONL, tokenizer, config) and others for another', async () => {
    const a = await writeSynthDataset(options(join(root, 'a')));
    await writeSynthDataset(options(join(root, 'b')));
    await writeSynthDataset(options(join(root, 'c'), { seed: 6 }));
    assert.deepEqual(a.videos, { train: 12, val: 6, test: 6 });
    assert.equal(a.rendered, 24);
    const [da, db, dc] = ['a', 'b', 'c'].map((d) => digests(join(root, d)));
    assert.deepEqual(db, da);
    assert.equal(Object.keys(da!).filter((f) => f.startsWith('videos/')).length, 24);
    for (const f of ['test-benchmark.jsonl', 'train-sft.jsonl', 'val-annotations.jsonl', 'videos/train-00000.mp4']) {
      assert.notEqual(dc![f], da![f], f);
    }
    assert.equal(dc!['model/tokenizer.json'], da!['model/tokenizer.json']);
  });

  it('reads back through lib/data, with every video present and every answer agreeing with its annotation', async () => {
    const dir = join(root, 'a');
    for (const split of SPLITS) {
      const annotations = await readAnnotations(join(dir, `${split}-annotations.jsonl`)).toArray();
      const bench = await readBenchmark(join(dir, `${split}-benchmark.jsonl`)).toArray();
      const sft = await readSft(join(dir, `${split}-sft.jsonl`)).toArray();
      await assertVideosExist([...annotations, ...bench, ...sft]);
      assert.equal(sft.length, 2 * bench.length);
      const events = new Map(annotations.map((a) => [a.video, (a.meta['events'] as { color: string; shape: string; motion: string; frames: [number, number] }[])
        .map((e) => ({ ...e, start: e.frames[0] }))]));
      for (const a of annotations) {
        assert.deepEqual(a.captions.map((c) => c.text), (a.meta['events'] as { caption: string }[]).map((e) => e.caption));
        const info = await probeVideo(a.videoPath);
        assert.equal(info.frameCount, a.meta['frames']);
        assert.ok(Math.abs(info.duration - (a.meta['frames'] as number) / 8) < 1e-6);
      }
      for (const item of bench) {
        assert.equal(answerChoice(item.question, item.options, events.get(item.video)!), item.answer, item.id);
        assert.equal(answerOpen(item.meta['open_question'] as string, events.get(item.video)!), item.meta['open_answer']);
        assert.ok(['localized', 'comprehensive'].includes(item.meta['kind'] as string));
        assert.ok(['short', 'long'].includes(item.meta['length'] as string));
      }
      for (const r of sft.filter((s) => s.meta['form'] === 'open')) {
        assert.equal(answerOpen(r.prompt.replace('<image>\n', ''), events.get(r.video)!), r.answer, r.id);
      }
      // Letters: within one of each other across the split.
      const letters = [0, 0, 0, 0];
      for (const item of bench) letters[item.answer]! += 1;
      assert.ok(Math.max(...letters) - Math.min(...letters) <= 1, `${split}: ${letters}`);
    }
  });

  it('keeps splits disjoint by seed, whatever the dataset seed', async () => {
    const dir = join(root, 'a');
    const seeds: Record<string, number[]> = {};
    for (const split of SPLITS) {
      const annotations = await readAnnotations(join(dir, `${split}-annotations.jsonl`)).toArray();
      seeds[split] = annotations.map((a) => a.meta['seed'] as number);
      for (const s of seeds[split]!) assert.equal(splitOfSeed(s), split);
    }
    const all = Object.values(seeds).flat();
    assert.equal(new Set(all).size, all.length);
    for (const datasetSeed of [0, 1, 0xffffffff]) {
      const lists = SPLITS.map((s) => splitSeeds(datasetSeed, s, 3000));
      const union = new Set(lists.flat());
      assert.equal(union.size, 9000);
      // More videos keep the ones already there.
      assert.deepEqual(splitSeeds(datasetSeed, 'test', 100), lists[2]!.slice(0, 100));
    }
  });

  it('resumes: videos already written are kept, a larger run renders only the new ones', async () => {
    const dir = join(root, 'a');
    const before = digests(dir);
    const again = await writeSynthDataset(options(dir));
    assert.deepEqual([again.rendered, again.skipped], [0, 24]);
    assert.deepEqual(digests(dir), before);
    const more = await writeSynthDataset(options(dir, { videos: 32 }));
    assert.deepEqual([more.rendered, more.skipped], [8, 24]);
    const after = digests(dir);
    for (const [file, digest] of Object.entries(before)) if (file.startsWith('videos/')) assert.equal(after[file], digest, file);
  });

  it('refuses to mix options in one folder unless forced', async () => {
    const dir = join(root, 'b');
    await assert.rejects(writeSynthDataset(options(dir, { world: { noise: 0 } })), {
      code: 'ERR_TPO_ARGUMENT', message: /holds a synthetic dataset made with other options/,
    });
    const forced = await writeSynthDataset(options(dir, { world: { noise: 0 }, force: true }));
    assert.equal(forced.rendered, 24);
  });

  it('runs as `tpo synth`, with validated flags and a progress line', () => {
    const out = join(root, 'cli');
    const tpo = (...args: string[]) =>
      spawnSync(process.execPath, [join(ROOT, 'dist/lib/cli/main.js'), 'synth', ...args], { encoding: 'utf8', timeout: 120_000 });
    const r = tpo('--out', out, '--videos', '6', '--seed', '9', '--length', 'short', '--size', '32x32', '--json');
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.deepEqual([summary.rendered, summary.codec], [6, 'libx264']);
    assert.match(r.stderr, /synth: 6\/6 videos/);
    const manifest = JSON.parse(readFileSync(join(out, 'synth.json'), 'utf8'));
    assert.deepEqual([manifest.complete, manifest.identity.world.width, manifest.identity.world.length], [true, 32, 'short']);

    const bad = tpo('--out', out, '--length', 'medium');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /tpo synth: world\.length: Invalid option/);
    const odd = tpo('--out', out, '--size', '33x32');
    assert.match(odd.stderr, /world\.width/);
    writeFileSync(join(out, 'unrelated.txt'), 'left alone');
    assert.equal(tpo('--out', out, '--videos', '6', '--seed', '9', '--length', 'short', '--size', '32x32').status, 0);
    assert.equal(readFileSync(join(out, 'unrelated.txt'), 'utf8'), 'left alone');
  });
});
