// lib/tpo/generate.ts and `tpo generate`: pairs from the model's own answers to manipulated synthetic videos.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { PACKAGED_BASE } from '../../lib/demo/demo.js';
import { writeSynthDataset } from '../../lib/synthetic/dataset.js';
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

  it('TimeWarp explicit: order questions only, the same frames with the scenes shuffled', async () => {
    const out = join(dir, 'explicit', 'pairs.jsonl');
    const annotations = join(dir, 'train-annotations.jsonl');
    await generatePairs({ ...base, out, annotations, manipulation: 'timewarp-explicit', judge: 'none', temperature: 1, seed: 2 });
    const records = [...lines(out), ...lines(`${out}.dropped.jsonl`)];
    const answered = records.filter((r) => r.frames);
    assert.ok(answered.length > 0);
    for (const r of answered) {
      assert.ok(['order', 'first', 'last', 'first-of', 'before', 'after'].includes(r.type), r.type);
      assert.equal(r.manipulation, 'timewarp-explicit');
      assert.deepEqual([...r.frames.dispreferred].sort((a: number, b: number) => a - b), r.frames.preferred);
      assert.notDeepEqual(r.frames.dispreferred, r.frames.preferred);
      assert.ok(Array.isArray(r.sceneOrder));
    }
    assert.ok(records.some((r) => r.reason === 'not-order-question'), 'other questions are counted skips');
  });

  it('TimeWarp implicit and the no-manipulation baseline answer from the same frames', async () => {
    for (const manipulation of ['timewarp-implicit', 'none'] as const) {
      const out = join(dir, manipulation, 'pairs.jsonl');
      const summary = await generatePairs({ ...base, out, manipulation, judge: 'none', temperature: 1, seed: 3, targetPairs: 4 });
      assert.ok(summary.kept > 0 && summary.kept <= 4, `${manipulation}: ${summary.kept}`);
      for (const r of lines(out)) {
        assert.deepEqual(r.frames.preferred, r.frames.dispreferred);
        assert.notEqual(r.chosen, r.rejected);
      }
    }
    await assert.rejects(generatePairs({ ...base, out: join(dir, 'x.jsonl'), manipulation: 'none' }), /temperature: .*above 0/);
  });

  it('asks a repeated question once and counts the repeat', async () => {
    const file = join(dir, 'dup-benchmark.jsonl');
    const first = lines(base.questions).filter((r) => r.kind === 'localized').slice(0, 2);
    writeFileSync(file, [...first, { ...first[0], id: `${first[0].id}-again` }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(dir, 'dup', 'pairs.jsonl');
    const summary = await generatePairs({ ...base, questions: file, out, judge: 'none', mix: [1, 0] });
    assert.equal(summary.dropped['duplicate-question'], 1);
  });

  it('an undecodable video drops its questions as counted skips; onVideoError stop stops', async () => {
    const records = lines(base.questions);
    const video = records[0].video;
    const file = join(dir, 'broken-benchmark.jsonl');
    writeFileSync(join(dir, 'videos', 'broken.mp4'), Buffer.alloc(4096, 3));
    const picked = records.filter((r) => r.video === video).slice(0, 2).concat(records.filter((r) => r.video !== video).slice(0, 2));
    writeFileSync(file, picked.map((r, i) => JSON.stringify(i < 2 ? { ...r, video: 'videos/broken.mp4' } : r)).join('\n') + '\n');
    const out = join(dir, 'broken', 'pairs.jsonl');
    const summary = await generatePairs({ ...base, questions: file, out, judge: 'none', temperature: 1, seed: 2, mix: [1, 1], targetPairs: 4 });
    const skipped = lines(`${out}.dropped.jsonl`).filter((r) => r.reason === 'undecodable-video');
    assert.equal(skipped.length, 2);
    for (const r of skipped) assert.match(r.detail, /broken\.mp4: .*cannot open as a video/);
    assert.equal(summary.dropped['undecodable-video'], 2);
    assert.equal(lines(out).length + lines(`${out}.dropped.jsonl`).length, 4, 'the other video was answered');
    const onlyBroken = join(dir, 'only-broken-benchmark.jsonl');
    writeFileSync(onlyBroken, picked.slice(0, 2).map((r) => JSON.stringify({ ...r, video: 'videos/broken.mp4' })).join('\n') + '\n');
    await assert.rejects(generatePairs({ ...base, questions: onlyBroken, out: join(dir, 'broken-stop', 'pairs.jsonl'), judge: 'none', temperature: 1, mix: [1, 1], targetPairs: 4, onVideoError: 'stop' }),
      { code: 'ERR_TPO_VIDEO' } as never);
  });

  it('an empty questions file, an output that is a folder: errors before the model loads; nothing kept: exit 1', async () => {
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, '');
    await assert.rejects(generatePairs({ ...base, model: join(dir, 'no-model'), questions: empty, out: join(dir, 'e', 'pairs.jsonl') }),
      /empty\.jsonl: has no questions: nothing to generate pairs from/);
    await assert.rejects(generatePairs({ ...base, model: join(dir, 'no-model'), out: dir }), /is a folder, not a file \(the pairs file\)/);
    // The random model's answers are never right: the synthetic judge keeps nothing, and `tpo generate` says so.
    const config = join(dir, 'gen-none.json');
    writeFileSync(config, JSON.stringify({ ...base, out: join(dir, 'none-kept', 'pairs.jsonl'), targetPairs: 1, mix: [1, 0] }));
    const run = spawnSync(process.execPath, [TPO, 'generate', '--config', config], { encoding: 'utf8' });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /tpo generate: no pair was kept \(\d+ [a-z-]+/);
  });

  describe('real videos: questions and judgements from an LLM over captions', () => {
    let server: Server;
    let url: string;
    let requests = 0;
    before(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          requests++;
          const prompt = (JSON.parse(body) as { messages: { content: string }[] }).messages.at(-1)!.content;
          const reply = prompt.includes('Answer A:')
            ? '{"correct": true, "consistent": true, "better": true}'
            : prompt.includes('between')
              ? (prompt.includes('blinks') ? 'I would rather not.' : 'Question: What does the shape do?\nAnswer: it moves')
              : 'Question: How many shapes appear?\nAnswer: three';
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ choices: [{ message: { content: reply } }] }));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    });
    after(() => new Promise((resolve) => server.close(resolve)));

    it('writes pairs from LLM questions, counts videos it cannot ask about, and stops on a dead endpoint without losing a line', async () => {
      const world = lines(join(dir, 'train-annotations.jsonl'));
      const annotations = join(dir, 'real-annotations.jsonl');
      const videos = [
        { video: world[0].video, description: world[0].description, scene_timestamps: world[0].scene_timestamps },
        { video: world[1].video, description: [], scene_timestamps: [] },
        { video: world[2].video, description: ['a red circle grows'], scene_timestamps: [[0, 999]] },
      ];
      writeFileSync(annotations, videos.map((v) => JSON.stringify(v)).join('\n') + '\n');
      const out = join(dir, 'real', 'pairs.jsonl');
      const llm = { baseUrl: url, model: 'judge', retries: 0 };
      const config = { model: base.model, annotations, llm, out, frames: 8, maxNewTokens: 6, temperature: 1, seed: 1 };
      const summary = await generatePairs(config);
      assert.equal(summary.dropped['no-captions'], 1);
      assert.equal(summary.dropped['caption-outside-video'], 1);
      const records = [...lines(out), ...lines(`${out}.dropped.jsonl`)];
      const asked = records.filter((r) => r.frames);
      assert.equal(asked.length, 2, 'one comprehensive and one localized question for the captioned video');
      for (const r of asked) {
        assert.ok(r.judge.llm || ['same-answers', 'empty-answer'].includes(r.reason), JSON.stringify(r));
        if (r.kind === 'localized') assert.deepEqual(r.span, world[0].scene_timestamps.find((s: number[]) => s[0] === r.span[0]));
      }
      for (const p of lines(out)) assert.deepEqual(p.judge.llm, { correct: true, consistent: true, better: true });

      // A fourth video, the endpoint gone: a clear error, and the files as they were.
      const before = [readFileSync(out, 'utf8'), readFileSync(`${out}.dropped.jsonl`, 'utf8')];
      writeFileSync(annotations, [...videos, { video: world[3].video, description: world[3].description, scene_timestamps: world[3].scene_timestamps }]
        .map((v) => JSON.stringify(v)).join('\n') + '\n');
      const dead = { ...config, llm: { ...llm, baseUrl: 'http://127.0.0.1:9/v1', backoffMs: 1 } };
      await assert.rejects(generatePairs(dead), (e: Error & { code?: string }) => e.code === 'ERR_TPO_LLM' && /127\.0\.0\.1:9/.test(e.message));
      assert.deepEqual([readFileSync(out, 'utf8'), readFileSync(`${out}.dropped.jsonl`, 'utf8')], before);
      // Back up: the rerun asks only about the new video.
      const seen = requests;
      await generatePairs(config);
      assert.ok(requests - seen <= 4, `only the fourth video's questions and judgements (${requests - seen} requests)`);
      assert.ok([...lines(out), ...lines(`${out}.dropped.jsonl`)].some((r) => r.video === world[3].video));
    });
  });

  it('with the packaged SFT base, localized preferred answers are right far more often than dis-preferred ones', async () => {
    // The demo's world (long videos of 8-12 events), new videos; the base has seen none of them.
    const world = join(dir, 'measured');
    await writeSynthDataset({
      out: world, videos: 40, seed: 11, split: [1, 0, 0], concurrency: 2,
      world: { length: 'long', long: { events: [8, 12], eventFrames: [6, 12], gapFrames: [0, 3] } },
    });
    const out = join(world, 'pairs.jsonl');
    const s = await generatePairs({ model: PACKAGED_BASE, questions: join(world, 'train-benchmark.jsonl'), out, mix: [1, 0], maxNewTokens: 12 });
    // Measured against the events (docs/results.md: 26.5% against 8.1% over 1800 questions).
    assert.ok(s.judged >= 150, `${s.judged} questions`);
    assert.ok(s.preferredCorrect >= 2 * s.dispreferredCorrect && s.preferredCorrect > 0.15 * s.judged,
      `preferred right ${s.preferredCorrect}, dis-preferred right ${s.dispreferredCorrect} of ${s.judged}`);
    assert.equal(s.kept, lines(out).length);
  });
});
