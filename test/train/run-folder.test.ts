// A run folder holds one run (lib/train/run-folder.ts and the Trainer's use of it), runs that trained nothing fail,
// the precomputed reference belongs to the weights it was computed from, validation scores against the reference,
// and an undecodable video is a counted skip.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { writeJsonl } from '../../lib/data/jsonl.js';
import { readBenchmark } from '../../lib/data/records.js';
import { copyModelFiles } from '../../lib/model/files.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { RunFolder } from '../../lib/train/run-folder.js';
import { Trainer } from '../../lib/train/trainer.js';
import { removeDir, ROOT, tempDir } from '../helpers.js';
import { makeWorld } from '../world-fixture.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
const metricsOf = (output: string) => readFileSync(join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const checkpoints = (output: string) => readdirSync(output).filter((n) => n.startsWith('checkpoint-')).sort();

describe('run folders', function () {
  this.timeout(300_000);
  let dir: string;
  let config: Record<string, unknown>;

  before(async () => {
    dir = tempDir('tpo-runs-');
    await makeWorld(dir);
    const items = await readBenchmark(join(dir, 'train-benchmark.jsonl')).toArray();
    const pairs = items.slice(0, 8).map((b) => ({
      id: b.id, video: b.video, prompt: b.question, chosen: b.options[b.answer], rejected: b.options[(b.answer + 1) % b.options.length],
    }));
    await writeJsonl(join(dir, 'pairs.jsonl'), pairs);
    await writeJsonl(join(dir, 'same.jsonl'), pairs.map((p) => ({ ...p, rejected: p.chosen })));
    writeFileSync(join(dir, 'videos', 'broken.mp4'), Buffer.alloc(4096, 7));
    await writeJsonl(join(dir, 'some-broken.jsonl'), pairs.map((p, i) => (i < 2 ? { ...p, video: 'videos/broken.mp4' } : p)));
    await writeJsonl(join(dir, 'all-broken.jsonl'), pairs.map((p) => ({ ...p, video: 'videos/broken.mp4' })));
    config = {
      model: join(dir, 'model'), output: join(dir, 'run'), data: { train: join(dir, 'pairs.jsonl') },
      objective: 'tpo', lora: { r: 4, alpha: 8 }, lr: 2e-3, batchSize: 2, epochs: 1, frames: 4,
      checkpoint: { every: 2, keepLast: 2 },
    };
  });
  after(() => removeDir(dir));

  it('rotation keeps the checkpoint just written, whatever else the folder holds', async () => {
    const out = join(dir, 'rotation');
    for (const step of [2, 4, 8, 10]) mkdirSync(join(out, `checkpoint-${step}`), { recursive: true });
    const folder = await RunFolder.open(out);
    assert.deepEqual(await folder.rotate(2, 4), [], 'keepLast 2: the current one and the one before');
    assert.deepEqual(await folder.rotate(1, 4), [2]);
    assert.deepEqual(checkpoints(out), ['checkpoint-10', 'checkpoint-4', 'checkpoint-8'], 'checkpoints past the current step are not its to delete');
  });

  it('refuses another run in a folder that holds one, and with overwrite replaces it whole', async () => {
    // The issue's case: an older, longer run (two epochs, checkpoints 6 and 8) in the folder a shorter one is given.
    const output = join(dir, 'shared');
    await new Trainer({ ...config, output, epochs: 2 } as never).fit();
    assert.deepEqual(checkpoints(output), ['checkpoint-6', 'checkpoint-8']);
    const other = { ...config, output, lr: 1e-3 };
    await assert.rejects(new Trainer(other as never).fit(), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_TPO_RUN_FOLDER');
      assert.match(e.message, /holds another run .*lr 0\.002 -> 0\.001.*overwrite: true \(tpo train --force\)/);
      return true;
    });
    await assert.rejects(new Trainer(other as never).fit({ resume: true }), /holds another run/);
    assert.deepEqual(checkpoints(output), ['checkpoint-6', 'checkpoint-8'], 'the old run is untouched');

    const notices: string[] = [];
    const trainer = new Trainer({ ...other, overwrite: true } as never);
    trainer.on('notice', (m) => notices.push(m));
    const result = await trainer.fit();
    assert.equal(result.steps, 4);
    assert.match(notices.join('\n'), /overwrite: removing checkpoint-6, checkpoint-8, final, metrics\.jsonl, run\.json/);
    assert.deepEqual(checkpoints(output), ['checkpoint-2', 'checkpoint-4'], 'the new run keeps its own checkpoints');
    assert.deepEqual(metricsOf(output).map((l) => l.step), [1, 2, 3, 4]);
    // The same run again without --resume is refused too; with it, it is done.
    await assert.rejects(new Trainer(other as never).fit(), /holds this run, finished \(final\/\): --resume/);
    assert.equal((await new Trainer(other as never).fit({ resume: true })).steps, 4);
  });

  it('--resume with maxSteps below the checkpoint is an error; without a checkpoint it starts over and says so', async () => {
    const output = join(dir, 'short');
    await new Trainer({ ...config, output } as never).fit();
    await assert.rejects(new Trainer({ ...config, output, maxSteps: 2 } as never).fit({ resume: true }),
      /checkpoint-4 is past this run's last step \(2\): resuming from it would save later weights under an earlier step/);
    assert.ok(existsSync(join(output, 'checkpoint-4')));

    // A folder of metrics from an unknown run: refused, its metrics kept.
    const foreign = join(dir, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'metrics.jsonl'), '{"step": 1, "loss": 0.5}\n');
    await assert.rejects(new Trainer({ ...config, output: foreign } as never).fit({ resume: true }), /tpo cannot identify \(no run\.json\)/);
    assert.equal(readFileSync(join(foreign, 'metrics.jsonl'), 'utf8'), '{"step": 1, "loss": 0.5}\n');

    // This run, killed before its first checkpoint: --resume starts at step 0 and says what it redoes.
    const killed = join(dir, 'killed-early');
    const stop = new AbortController();
    const first = new Trainer({ ...config, output: killed, checkpoint: { every: 100, keepLast: 1 } } as never);
    first.once('step', () => stop.abort());
    await first.fit({ signal: stop.signal });
    removeDir(join(killed, 'checkpoint-1'));
    const notices: string[] = [];
    const again = new Trainer({ ...config, output: killed, checkpoint: { every: 100, keepLast: 1 } } as never);
    again.on('notice', (m) => notices.push(m));
    assert.equal((await again.fit({ resume: true })).steps, 4);
    assert.match(notices.join('\n'), /has no checkpoint yet: starting at step 0 \(the 1 metrics line\(s\) logged before the interruption are redone\)/);
    assert.deepEqual(metricsOf(killed).map((l) => l.step), [1, 2, 3, 4]);
  });

  it('a run that trains nothing fails and writes no final/: identical answers, every video undecodable', async () => {
    const same = join(dir, 'same');
    await assert.rejects(new Trainer({ ...config, output: same, data: { train: join(dir, 'same.jsonl') } } as never).fit(),
      (e: Error & { code?: string }) => e.code === 'ERR_TPO_NOTHING_TRAINED' && /every pair's chosen and rejected answers are the same \(8 pairs\)/.test(e.message));
    assert.ok(!existsSync(join(same, 'final')));
    const broken = join(dir, 'all-broken');
    await assert.rejects(new Trainer({ ...config, output: broken, data: { train: join(dir, 'all-broken.jsonl') } } as never).fit(),
      (e: Error & { code?: string }) => e.code === 'ERR_TPO_NOTHING_TRAINED' && /every batch was skipped, nothing was trained \(8 x video: .*broken\.mp4/.test(e.message));
    assert.ok(!existsSync(join(broken, 'final')));
    const cli = spawnSync(process.execPath, [TPO, 'train', '--config', join(dir, 'nope.json')], { encoding: 'utf8' });
    assert.equal(cli.status, 1);
    const usage = spawnSync(process.execPath, [TPO, 'train'], { encoding: 'utf8' });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /^tpo: tpo train: --config FILE is required\n\nusage: tpo <command>/);
  });

  it('an undecodable video skips its records (counted, with the reason); onVideoError stop stops', async () => {
    const trainer = new Trainer({ ...config, output: join(dir, 'skips'), data: { train: join(dir, 'some-broken.jsonl') } } as never);
    trainer.on('notice', () => undefined);
    const result = await trainer.fit();
    assert.equal(result.stopped, 'done');
    assert.equal(trainer.skipped.length, 2);
    for (const s of trainer.skipped) assert.match(s.reason, /^video: .*broken\.mp4/);
    await assert.rejects(new Trainer({ ...config, output: join(dir, 'stops'), onVideoError: 'stop', data: { train: join(dir, 'some-broken.jsonl') } } as never).fit(),
      (e: Error & { code?: string }) => e.code === 'ERR_TPO_VIDEO' && e.message.includes('broken.mp4'));
  });

  it('the precomputed reference is the starting weights\': a model with the same shapes and other values gets its own', async () => {
    const other = join(dir, 'other-model');
    mkdirSync(other);
    const cfg = JSON.parse(readFileSync(join(dir, 'model', 'config.json'), 'utf8'));
    {
      using model = await VideoLM.create(cfg, { seed: 2 });
      await model.save(other);
    }
    await copyModelFiles(join(dir, 'model'), other);
    const saved = process.env.TPO_CACHE_DIR;
    process.env.TPO_CACHE_DIR = join(dir, 'cache');
    try {
      for (const model of [join(dir, 'model'), other]) {
        const trainer = new Trainer({ ...config, model, output: join(dir, `ref-${model === other ? 'b' : 'a'}`), reference: 'precomputed', maxSteps: 1 } as never);
        const steps: Record<string, number>[] = [];
        trainer.on('step', ({ metrics }) => steps.push(metrics));
        await trainer.fit();
        // A fresh adapter (B = 0) is the starting weights: its implicit rewards against their reference are 0.
        for (const key of ['rewards/chosen', 'rewards/rejected']) assert.ok(Math.abs(steps[0]![key]!) < 1e-4, `${model}: ${key} ${steps[0]![key]}`);
      }
    } finally {
      if (saved === undefined) delete process.env.TPO_CACHE_DIR;
      else process.env.TPO_CACHE_DIR = saved;
    }
    assert.equal(readdirSync(join(dir, 'cache', 'reference-logps')).length, 2, 'one cache entry per model');
  });

  it('validation with a precomputed reference and no LoRA scores the policy against the reference, with TRL\'s eval_ names', async () => {
    const output = join(dir, 'val');
    const saved = process.env.TPO_CACHE_DIR;
    process.env.TPO_CACHE_DIR = join(dir, 'cache');
    try {
      const { lora: _, ...full } = config;
      await new Trainer({ ...full, output, reference: 'precomputed', train: { language: true }, lr: 1e-3, data: { train: join(dir, 'pairs.jsonl'), validation: join(dir, 'pairs.jsonl') } } as never).fit();
    } finally {
      if (saved === undefined) delete process.env.TPO_CACHE_DIR;
      else process.env.TPO_CACHE_DIR = saved;
    }
    const evals = metricsOf(output).filter((l) => l.eval_loss !== undefined);
    assert.equal(evals.length, 1);
    for (const key of ['eval_loss', 'eval_rewards/chosen', 'eval_rewards/rejected', 'eval_rewards/accuracies', 'eval_rewards/margins',
      'eval_logps/chosen', 'eval_logps/rejected', 'eval_nll_loss', 'eval_runtime', 'eval_samples_per_second']) {
      assert.ok(Number.isFinite(evals[0]![key]), key);
    }
    // Against itself the policy's rewards would all be 0 (and the accuracy 0); four steps at lr 1e-3 moved it.
    assert.notEqual(evals[0]!['eval_rewards/margins'], 0);
    assert.notEqual(evals[0]!['eval_rewards/chosen'], 0);
  });
});
