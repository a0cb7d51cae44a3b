// lib/train/trainer.ts and `tpo train`: a run on the synthetic world (real encoded videos, the world's tokenizer,
// a tiny LLaVA-Video model), its checkpoints, and a resume after SIGKILL that ends with the same weights.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { writeJsonl } from '../../lib/data/jsonl.js';
import { readBenchmark } from '../../lib/data/records.js';
import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { Trainer } from '../../lib/train/trainer.js';
import { removeDir, ROOT, tempDir, whenReady } from '../helpers.js';
import { makeWorld } from '../world-fixture.js';
import { readScalars, tensorboardUnavailable } from './tensorboard-reader.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');

async function adapterBytes(dir: string): Promise<Record<string, string>> {
  const { tensors } = await readSafetensors(join(dir, 'adapter_model.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Buffer.from((t.toTypedArray() as Float32Array).buffer).toString('base64')]));
}

describe('Trainer', function () {
  this.timeout(300_000);
  let dir: string;
  let config: Record<string, unknown>;

  before(async () => {
    dir = tempDir('tpo-train-');
    await makeWorld(dir);
    const items = await readBenchmark(join(dir, 'train-benchmark.jsonl')).toArray();
    const pairs = items.slice(0, 16).map((b) => ({
      id: b.id, video: b.video, prompt: b.question, chosen: b.options[b.answer], rejected: b.options[(b.answer + 1) % b.options.length],
    }));
    pairs.push({ ...pairs[0]!, id: 'same-answers', rejected: pairs[0]!.chosen });
    await writeJsonl(join(dir, 'pairs.jsonl'), pairs);
    await writeJsonl(join(dir, 'val-pairs.jsonl'), pairs.slice(0, 4));
    config = {
      model: join(dir, 'model'), output: join(dir, 'run'), data: { train: join(dir, 'pairs.jsonl') },
      objective: 'tpo', lora: { r: 4, alpha: 8 }, lr: 2e-3, batchSize: 4, gradientAccumulation: 2, epochs: 2, frames: 8,
      checkpoint: { every: 2, keepLast: 2 },
    };
  });
  after(() => removeDir(dir));

  it('trains TPO with LoRA on real videos, logging TRL metrics, checkpointing and exporting the adapter', async () => {
    const trainer = new Trainer({ ...config, output: join(dir, 'run-api'), data: { train: join(dir, 'pairs.jsonl'), validation: join(dir, 'val-pairs.jsonl') } } as never);
    const steps: number[] = [];
    trainer.on('step', ({ step }) => steps.push(step));
    const result = await trainer.fit();
    assert.equal(result.stopped, 'done');
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(trainer.skipped.map((s) => s.id).sort(), ['same-answers', 'same-answers']);
    const lines = readFileSync(join(dir, 'run-api', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const last = lines.filter((l) => l.loss !== undefined).at(-1);
    for (const key of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'nll_loss', 'grad_norm', 'lr', 'pairs/s', 'tokens/s']) {
      assert.ok(Number.isFinite(last[key]), `${key} logged`);
    }
    assert.ok(lines.some((l) => l['eval_rewards/accuracies'] !== undefined), 'validation ran (TRL: eval_rewards/accuracies)');
    // The same curves in TensorBoard's event files beside metrics.jsonl, as TensorBoard's own reader sees them.
    assert.ok(readdirSync(join(dir, 'run-api')).some((n) => n.startsWith('events.out.tfevents.')), 'TensorBoard event file');
    if (!tensorboardUnavailable()) {
      const scalars = readScalars(join(dir, 'run-api'));
      const logged = lines.filter((l) => l.loss !== undefined);
      assert.deepEqual(scalars['train/loss'], logged.map((l) => [l.step, Math.fround(l.loss)]));
      assert.deepEqual(scalars['train/rewards/accuracies']!.map(([s]) => s), logged.map((l) => l.step));
      assert.deepEqual(scalars['train/learning_rate'], logged.map((l) => [l.step, Math.fround(l.lr)]));
      assert.ok(scalars['eval/rewards/accuracies']?.length, 'validation curve');
    }
    assert.deepEqual(readdirSync(join(dir, 'run-api')).filter((n) => n.startsWith('checkpoint-')).sort(), ['checkpoint-10', 'checkpoint-8']);
    assert.ok(existsSync(join(dir, 'run-api', 'final', 'adapter_config.json')));
  });

  it('precomputes reference log-probs once, reuses them across runs, and can export merged weights', async () => {
    const run = (name: string) => new Trainer({ ...config, output: join(dir, name), reference: 'precomputed', epochs: 1, export: { merge: true } } as never).fit();
    const saved = process.env.TPO_CACHE_DIR;
    process.env.TPO_CACHE_DIR = join(dir, 'cache');
    let first;
    try {
      first = await run('pre-a');
      const cached = readdirSync(join(dir, 'cache', 'reference-logps'));
      assert.equal(cached.length, 1);
      const written = statSync(join(dir, 'cache', 'reference-logps', cached[0]!)).mtimeMs;
      await run('pre-b');
      assert.equal(statSync(join(dir, 'cache', 'reference-logps', cached[0]!)).mtimeMs, written, 'the second run reused the cache');
    } finally {
      if (saved === undefined) delete process.env.TPO_CACHE_DIR;
      else process.env.TPO_CACHE_DIR = saved;
    }
    assert.ok(existsSync(join(first.final!, 'model.safetensors')) && existsSync(join(first.final!, 'config.json')));
    const a = readFileSync(join(dir, 'pre-a', 'metrics.jsonl'), 'utf8');
    const b = readFileSync(join(dir, 'pre-b', 'metrics.jsonl'), 'utf8');
    const losses = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l).loss);
    assert.deepEqual(losses(a), losses(b));
    using merged = await VideoLM.load(first.final!);
    assert.equal(merged.info.architecture, 'LlavaQwenForCausalLM');
  });

  it('stops at an aborted signal after finishing the step and saving a checkpoint, and resumes from it', async () => {
    const output = join(dir, 'run-abort');
    const controller = new AbortController();
    const trainer = new Trainer({ ...config, output } as never);
    trainer.once('step', () => controller.abort());
    const stopped = await trainer.fit({ signal: controller.signal });
    assert.deepEqual([stopped.stopped, stopped.steps], ['aborted', 1]);
    assert.ok(existsSync(join(output, 'checkpoint-1', 'optimizer.safetensors')));
    const resumed = await new Trainer({ ...config, output } as never).fit({ resume: true });
    assert.deepEqual([resumed.stopped, resumed.steps], ['done', 10]);
  });

  it('names the config field at fault', () => {
    assert.throws(() => new Trainer({ ...config, batchSize: 0 } as never), /train config: batchSize/);
    assert.throws(() => new Trainer({ ...config, learningRate: 1 } as never), /Unrecognized key: "learningRate"/);
    assert.throws(() => new Trainer({ ...config, lora: undefined, visionLr: 1e-4 } as never),
      /visionLr: visionLr is set but nothing of the vision tower trains/);
  });

  it('trains the vision tower at visionLr on the lr\'s schedule', async () => {
    // Only the tower trains: a run at lr 2e-3 with visionLr 5e-4 is, weight for weight, a run at lr 5e-4.
    const towerRun = async (name: string, rates: Record<string, number>) => {
      const output = join(dir, name);
      await new Trainer({ ...config, ...rates, output, objective: 'sft', lora: undefined, train: { vision: true },
        data: { train: join(dir, 'sft.jsonl') }, maxSteps: 2, schedule: { type: 'constant', warmupSteps: 0 } } as never).fit();
      const { tensors } = await readSafetensors(join(output, 'final', 'model.safetensors'));
      return Object.fromEntries(Object.entries(tensors).filter(([k]) => k.includes('vision_tower.')).map(([k, t]) => [k, t.toTypedArray() as Float32Array]));
    };
    const pairs = readFileSync(join(dir, 'pairs.jsonl'), 'utf8').trim().split('\n').slice(0, 8).map((l) => JSON.parse(l) as Record<string, string>);
    await writeJsonl(join(dir, 'sft.jsonl'), pairs.map((p) => ({ id: p.id, video: p.video, prompt: p.prompt, answer: p.chosen })));
    const [parts, slow, fast] = [await towerRun('tower-parts', { lr: 2e-3, visionLr: 5e-4 }), await towerRun('tower-slow', { lr: 5e-4 }), await towerRun('tower-fast', { lr: 2e-3 })];
    const worst = (a: Record<string, Float32Array>, b: Record<string, Float32Array>) =>
      Math.max(...Object.entries(a).map(([k, x]) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - b[k]![i]!)), 0)));
    assert.ok(Object.keys(parts).length > 0, 'the saved model has a vision tower');
    assert.ok(worst(parts, slow) < 1e-6, `visionLr 5e-4 vs lr 5e-4: ${worst(parts, slow)}`);
    assert.ok(worst(parts, fast) > 1e-4, `visionLr 5e-4 vs lr 2e-3: ${worst(parts, fast)}`);
  });

  it('resumed after SIGKILL, `tpo train` ends with exactly the weights of an uninterrupted run', async () => {
    const file = join(dir, 'run.json');
    writeFileSync(file, JSON.stringify(config));
    const straight = spawnSync(process.execPath, [TPO, 'train', '--config', file, '--set', `output="${join(dir, 'straight')}"`], { encoding: 'utf8' });
    assert.equal(straight.status, 0, straight.stderr);

    // Kill the second run as soon as its first checkpoint lands (mid-way through the following steps).
    const output = join(dir, 'killed');
    const child = spawn(process.execPath, [TPO, 'train', '--config', file, '--set', `output="${output}"`], { stdio: 'ignore' });
    await whenReady(output, () => existsSync(join(output, 'checkpoint-2')), () => child.kill('SIGKILL'),
      { alive: () => child.exitCode === null && child.signalCode === null });
    await new Promise((r) => child.once('exit', r));
    assert.ok(!existsSync(join(output, 'final')), 'killed before the end');

    const resumed = spawnSync(process.execPath, [TPO, 'train', '--config', file, '--set', `output="${output}"`, '--resume'], { encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    const metrics = (run: string) => readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss: number; grad_norm: number });
    const [resumedSteps, straightSteps] = [metrics(output), metrics(join(dir, 'straight'))];
    assert.deepEqual(resumedSteps.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'each step logged once');
    // Step by step first (the killed run made steps 1-2, the resumed one 3-10), so that a difference says where it
    // starts: before the checkpoint (the runs are not reproducible) or after it (the resume is not exact).
    for (const [i, m] of resumedSteps.entries()) {
      const s = straightSteps[i]!;
      assert.deepEqual([m.loss, m.grad_norm], [s.loss, s.grad_norm], `step ${m.step}'s loss and grad_norm (${m.step <= 2 ? 'killed' : 'resumed'} run vs uninterrupted)`);
    }
    assert.deepEqual(await adapterBytes(join(output, 'final')), await adapterBytes(join(dir, 'straight', 'final')));
    // TensorBoard too: the resumed run's event file replaces what the killed one logged after its checkpoint.
    if (!tensorboardUnavailable()) assert.deepEqual(readScalars(output)['train/loss']!.map(([s]) => s), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.match(resumed.stderr, /train 10\/10 steps in \S+.*loss \d/, 'the progress bar\'s final line');
  });
});
