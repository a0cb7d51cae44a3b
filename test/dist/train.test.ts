// Data-parallel training (`tpo train --nproc 2`, 2 ranks x 1 thread): after several steps the weights equal one
// process's with gradientAccumulation 2 -- LoRA with the TPO loss (its NLL term weighs tokens), full fine-tuning with
// a frozen-copy reference and ZeRO-1 optimizer shards, and a precomputed reference (computed sharded) -- and the
// logged metrics are one process's too.
//
// The tolerance: both runs compute each micro-batch's gradient from the same inputs on one thread, so they differ
// only in how the two micro-batches' gradients are added: one process accumulates g1 + g2 into .grad, two ranks
// all-reduce g1 and g2 (Gloo adds the same two float32 numbers; a sum of two is the same either way round). The
// weights come out bit for bit equal here; 1e-6 (relative, or absolute below 1) leaves room for a reduction that
// adds in another order (three or more ranks, another Gloo algorithm), whose float32 rounding is ~1e-7 per step.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { writeJsonl } from '../../lib/data/jsonl.js';
import { readBenchmark } from '../../lib/data/records.js';
import { readSafetensors } from '../../lib/model/safetensors.js';
import { removeDir, ROOT, tempDir, whenReady } from '../helpers.js';
import { makeWorld } from '../world-fixture.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
const TOLERANCE = 1e-6;

async function weights(file: string): Promise<Record<string, Float32Array>> {
  const { tensors } = await readSafetensors(file);
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.toTypedArray() as Float32Array]));
}

/** The largest difference between two weight files, scaled as TOLERANCE is (relative above 1). */
async function largestDifference(a: string, b: string, keys?: (k: string) => boolean): Promise<{ key: string; diff: number; compared: number }> {
  const [x, y] = [await weights(a), await weights(b)];
  assert.deepEqual(Object.keys(x).sort(), Object.keys(y).sort());
  let worst = { key: '', diff: 0, compared: 0 };
  for (const key of Object.keys(x)) {
    if (keys && !keys(key)) continue;
    worst.compared++;
    x[key]!.forEach((v, i) => {
      const diff = Math.abs(v - y[key]![i]!) / Math.max(1, Math.abs(v));
      if (diff > worst.diff) worst = { ...worst, key: `${key}[${i}]`, diff };
    });
  }
  return worst;
}

const metrics = (run: string) => readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  .filter((l) => l.loss !== undefined);

describe('distributed: data-parallel training equals one process with gradient accumulation', function () {
  this.timeout(900_000);
  let dir: string;
  let base: Record<string, unknown>;

  before(async () => {
    dir = tempDir('tpo-dist-train-');
    await makeWorld(dir);
    const items = await readBenchmark(join(dir, 'train-benchmark.jsonl')).toArray();
    // Answers of different lengths, so the NLL term's token weighting matters.
    const pairs = items.slice(0, 12).map((b, i) => ({
      id: b.id, video: b.video, prompt: b.question, chosen: i % 3 ? b.options[b.answer] : `${b.options[b.answer]} ${b.options[b.answer]}`,
      rejected: b.options[(b.answer + 1) % b.options.length],
    }));
    await writeJsonl(join(dir, 'pairs.jsonl'), pairs);
    base = {
      model: join(dir, 'model'), data: { train: join(dir, 'pairs.jsonl') }, objective: 'tpo', lora: { r: 4, alpha: 8 },
      lr: 5e-3, batchSize: 6, maxSteps: 3, frames: 4, tensorboard: false, checkpoint: { every: 2 }, seed: 7,
      // Adam divides by sqrt(v) + eps: with 1e-8 a gradient element of float32 noise size would move its weight by up
      // to lr; 1e-3 keeps such elements still, as in test/train/optimizer.test.ts.
      optimizer: { eps: 1e-3 },
    };
  });
  after(() => removeDir(dir));

  /** `tpo train` of `config` (one process, or --nproc 2), each rank on one thread; the run folder. */
  const train = (name: string, config: Record<string, unknown>, nproc: number, env: Record<string, string> = {}) => {
    const output = join(dir, name);
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ ...base, ...config, output }));
    const args = [TPO, 'train', '--config', file, ...(nproc > 1 ? ['--nproc', String(nproc)] : [])];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 400_000, env: { ...process.env, TPO_NUM_THREADS: '1', ...env } });
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    return { output, stderr: r.stderr };
  };

  const same = async (a: string, b: string, file: string, keys?: (k: string) => boolean, tolerance = TOLERANCE) => {
    const worst = await largestDifference(join(a, 'final', file), join(b, 'final', file), keys);
    assert.ok(worst.compared > 0, 'weights compared');
    assert.ok(worst.diff <= tolerance, `${worst.key} differs by ${worst.diff}`);
    if (process.env.TPO_TEST_VERBOSE) console.log(`      largest difference ${worst.diff} (${worst.key})`);
    // Every step's loss and metrics as one process logs them: the ranks' pairs gathered in one process's order.
    const [ma, mb] = [metrics(a), metrics(b)];
    assert.equal(ma.length, 3);
    for (const [i, m] of ma.entries()) {
      for (const key of ['loss', 'rewards/chosen', 'rewards/accuracies', 'rewards/margins', 'logps/rejected', 'nll_loss', 'grad_norm']) {
        assert.ok(Math.abs(m[key] - mb[i][key]) <= 1e-5 * Math.max(1, Math.abs(m[key])), `step ${i + 1} ${key}: ${m[key]} vs ${mb[i][key]}`);
      }
      assert.equal(m.lr, mb[i].lr);
    }
    return { worst, distributed: mb };
  };

  it('LoRA, TPO loss (DPO + token-weighted NLL)', async () => {
    const one = train('lora-1', { gradientAccumulation: 2 }, 1);
    const two = train('lora-2', { gradientAccumulation: 1 }, 2);
    const { distributed } = await same(one.output, two.output, 'adapter_model.safetensors');
    // Not equal for want of training: LoRA's B matrices start at zero.
    const adapter = await weights(join(two.output, 'final', 'adapter_model.safetensors'));
    assert.ok(Object.entries(adapter).some(([k, v]) => k.includes('lora_B') && v.some((x) => x !== 0)), 'the adapter trained');
    for (const m of distributed) {
      assert.ok(m['dist/comm_seconds'] >= 0 && m['dist/comm_mb'] > 0, 'communication is logged');
      assert.ok(m['pairs/s'] > 0);
    }
  });

  it('a step smaller than the ranks: a rank whose share is empty still takes part', async () => {
    const one = train('small-1', { gradientAccumulation: 2, batchSize: 1 }, 1);
    const two = train('small-2', { gradientAccumulation: 1, batchSize: 1 }, 2);
    await same(one.output, two.output, 'adapter_model.safetensors');
  });

  it('a rank killed mid-run stops the other with an error naming it; the run resumes from its checkpoint, at 2 ranks exactly, at 1', async () => {
    // The uninterrupted run is the LoRA test's lora-2; this one checkpoints every step (not part of its identity).
    const config = { gradientAccumulation: 1, checkpoint: { every: 1 } };
    const file = join(dir, 'killed.json');
    const output = join(dir, 'killed');
    writeFileSync(file, JSON.stringify({ ...base, ...config, output }));
    const launcher = spawn(process.execPath, [TPO, 'train', '--config', file, '--nproc', '2'], { env: { ...process.env, TPO_NUM_THREADS: '1' } });
    let stderr = '';
    launcher.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => launcher.on('exit', (code) => res(code)));
    const alive = () => assert.equal(launcher.exitCode, null, `the run ended before its first checkpoint: ${stderr}`);
    // The ranks: the launcher's children, by the RANK in their environment, found before any checkpoint lands.
    const ranks = new Map<number, number>();
    while (ranks.size < 2) {
      alive();
      const children = spawnSync('pgrep', ['-P', String(launcher.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
      for (const pid of children) {
        try {
          const rank = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((e) => e.startsWith('RANK='));
          if (rank) ranks.set(Number(rank.slice(5)), pid);
        } catch { /* exited or not yet exec'd: looked at again */ }
      }
      if (ranks.size < 2) await new Promise((res) => setTimeout(res, 20));
    }
    // The run is three short steps: both ranks are frozen (SIGSTOP) the moment a checkpoint is renamed into place,
    // and rank 1 is killed while they are; rank 0 then runs on into the dead peer.
    await whenReady(output, () => readdirSync(output).some((f) => /^checkpoint-\d+$/.test(f)),
      () => { for (const pid of ranks.values()) process.kill(pid, 'SIGSTOP'); },
      { alive: () => launcher.exitCode === null && launcher.signalCode === null })
      .catch((error: Error) => assert.fail(`${error.message} (the run ended before its first checkpoint?): ${stderr}`));
    assert.ok(!existsSync(join(output, 'final')), 'the ranks were frozen before the end');
    const rank1 = ranks.get(1)!;
    const killedAt = performance.now();
    process.kill(rank1, 'SIGKILL');
    process.kill(ranks.get(0)!, 'SIGCONT');
    const code = await exited;
    const seconds = (performance.now() - killedAt) / 1000;
    assert.notEqual(code, 0);
    assert.ok(seconds < 60, `the run stopped ${seconds} s after the kill`);
    assert.match(stderr, new RegExp(`rank 1 \\(pid ${rank1}\\) was killed by SIGKILL`));
    assert.match(stderr, /ERR_TPO_DIST|failed on rank 0 of 2: rank 1 stopped/);
    assert.ok(!existsSync(join(output, 'final')));
    // Resumed as 2 ranks: exactly the uninterrupted run's weights (lora-2, from the first test).
    cpSync(output, `${output}-1`, { recursive: true });
    const resume = (name: string, nproc: number) => {
      const f = join(dir, `${name}.json`);
      writeFileSync(f, JSON.stringify({ ...base, ...config, output: join(dir, name) }));
      const r = spawnSync(process.execPath, [TPO, 'train', '--config', f, '--resume', ...(nproc > 1 ? ['--nproc', String(nproc)] : [])],
        { encoding: 'utf8', timeout: 400_000, env: { ...process.env, TPO_NUM_THREADS: '1' } });
      assert.equal(r.status, 0, r.stderr);
      return join(dir, name);
    };
    const twice = resume('killed', 2);
    assert.deepEqual(await weights(join(twice, 'final', 'adapter_model.safetensors')), await weights(join(dir, 'lora-2', 'final', 'adapter_model.safetensors')));
    // Resumed as 1 process (its whole share in one micro-batch): the same run up to float32 summation order.
    const once = resume('killed-1', 1);
    await same(join(dir, 'lora-2'), once, 'adapter_model.safetensors', undefined, 5e-5);
    assert.ok(readdirSync(once).includes('final'));
  });

  it('full fine-tuning with a frozen-copy reference and ZeRO-1 optimizer shards', async () => {
    const config = { lora: undefined, objective: 'dpo', train: { language: true }, lr: 1e-3 };
    const one = train('full-1', { ...config, gradientAccumulation: 2 }, 1);
    const two = train('full-2', { ...config, gradientAccumulation: 1, distributed: { shardOptimizer: true } }, 2);
    await same(one.output, two.output, 'model.safetensors');
    const moved = await largestDifference(join(dir, 'model', 'model.safetensors'), join(two.output, 'final', 'model.safetensors'));
    assert.ok(moved.diff > 1e-4, 'the language model trained');
    // The checkpoint holds each rank's shard of the optimizer state, and records the world size.
    const checkpoint = join(two.output, 'checkpoint-2');
    const state = JSON.parse(readFileSync(join(checkpoint, 'trainer_state.json'), 'utf8'));
    assert.equal(state.worldSize, 2);
    const shards = await Promise.all([0, 1].map((r) => weights(join(checkpoint, `optimizer-0000${r}-of-00002.safetensors`))));
    const moments = shards.map((s) => Object.keys(s).filter((k) => k.endsWith('.exp_avg')));
    assert.ok(moments[0]!.length > 0 && moments[1]!.length > 0, 'both ranks hold moments');
    assert.equal(moments[0]!.filter((k) => moments[1]!.includes(k)).length, 0, 'no parameter in both shards');
    // Each rank holds its partition's moments only: rank 0's about half of one process's.
    const held = metrics(two.output).map((m) => m['dist/optimizer_mb'] as number);
    const all = (await weights(join(one.output, 'checkpoint-2', 'optimizer.safetensors')));
    const allMb = Object.entries(all).filter(([k]) => k.endsWith('.exp_avg') || k.endsWith('.exp_avg_sq')).reduce((n, [, v]) => n + v.length * 4, 0) / 2 ** 20;
    assert.ok(held.every((mb) => mb > 0.3 * allMb && mb < 0.7 * allMb), `rank 0 holds ${held} MiB of ${allMb}`);
    const unsharded = all;
    assert.equal(moments[0]!.length + moments[1]!.length, Object.keys(unsharded).filter((k) => k.endsWith('.exp_avg')).length);
    // Resumed from checkpoint-2 as one process, the two shards' moments re-partitioned into one: the last step
    // is the uninterrupted run's (up to float32 summation order: one micro-batch instead of two).
    const resumed = join(dir, 'full-resumed');
    cpSync(two.output, resumed, { recursive: true });
    for (const gone of ['final', 'checkpoint-3']) rmSync(join(resumed, gone), { recursive: true });
    const f = join(dir, 'full-resumed.json');
    writeFileSync(f, JSON.stringify({ ...base, ...config, gradientAccumulation: 1, distributed: { shardOptimizer: true }, output: resumed }));
    const r = spawnSync(process.execPath, [TPO, 'train', '--config', f, '--resume'], { encoding: 'utf8', timeout: 400_000, env: { ...process.env, TPO_NUM_THREADS: '1' } });
    assert.equal(r.status, 0, r.stderr);
    await same(two.output, resumed, 'model.safetensors', undefined, 5e-5);
  });

  it('a precomputed reference, computed by the two ranks', async () => {
    const one = train('pre-1', { gradientAccumulation: 2, reference: 'precomputed' }, 1, { TPO_CACHE_DIR: join(dir, 'cache-1') });
    const two = train('pre-2', { gradientAccumulation: 1, reference: 'precomputed' }, 2, { TPO_CACHE_DIR: join(dir, 'cache-2') });
    await same(one.output, two.output, 'adapter_model.safetensors');
  });
});
