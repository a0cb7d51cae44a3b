// The pipeline run each architecture's test goes through: the synthetic world's tiny model of that architecture
// (random weights saved in its folder), then `tpo generate` (TPO's pairs, no judge; and TimeWarp's: the scenes
// shuffled, the frames corrupted), `tpo train` (TPO with LoRA, 2 steps) and `tpo eval` (4 questions) as the command
// line runs them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { writeSynthDataset } from '../../lib/synthetic/index.js';
import { ROOT } from '../helpers.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
export const lines = (file: string): any[] =>
  (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

/** The world (6 videos) with its tiny `model` in `dir`/model, random weights saved there. */
export async function writeWorld(dir: string, model: 'video-llava' | 'video-llama3' | 'internvl' | 'qwen2.5-vl'): Promise<string> {
  await writeSynthDataset({ out: dir, videos: 6, seed: 3, world: { length: 'short' }, concurrency: 2, model });
  const modelDir = join(dir, 'model');
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  using created = await VideoLM.create(config, { seed: 1 });
  await created.save(modelDir);
  return modelDir;
}

/** generate -> train -> eval on the world in `dir`; each command must succeed. `frames`: train's and eval's. */
export async function runPipeline(dir: string, modelDir: string, frames?: number) {
  const run = (args: string[]) => {
    const out = spawnSync(process.execPath, [TPO, ...args], { encoding: 'utf8' });
    assert.equal(out.status, 0, `tpo ${args[0]}: ${out.stderr}`);
    return out.stdout;
  };
  const pairsFile = join(dir, 'pairs', 'pairs.jsonl');
  const genConfig = join(dir, 'gen.json');
  writeFileSync(genConfig, JSON.stringify({
    model: modelDir, questions: join(dir, 'train-benchmark.jsonl'), out: pairsFile, maxNewTokens: 6, judge: 'none',
    temperature: 1, seed: 5,
  }));
  run(['generate', '--config', genConfig]);
  const pairs = lines(pairsFile);
  assert.ok(pairs.length >= 2, `pairs kept: ${pairs.length}`);
  const timewarp = runTimeWarp(dir, modelDir, run);

  const runConfig = join(dir, 'run.json');
  writeFileSync(runConfig, JSON.stringify({
    model: modelDir, output: join(dir, 'run'), data: { train: pairsFile }, objective: 'tpo', preset: 'longva',
    lora: { r: 4, alpha: 8 }, batchSize: 2, maxSteps: 2, checkpoint: { every: 1 }, ...(frames ? { frames } : {}),
  }));
  run(['train', '--config', runConfig]);
  const metrics = lines(join(dir, 'run', 'metrics.jsonl')).filter((m) => m.loss !== undefined);
  assert.equal(metrics.length, 2);
  assert.ok(metrics.every((m) => Number.isFinite(m.loss) && m['rewards/accuracies'] !== undefined));
  const adapter = join(dir, 'run', 'final');
  const adapterKeys = Object.keys((await readSafetensors(join(adapter, 'adapter_model.safetensors'))).tensors);
  assert.ok(adapterKeys.includes('base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight'), adapterKeys[0]);

  const results = JSON.parse(run(['eval', '--model', modelDir, '--adapter', adapter, '--benchmark',
    join(dir, 'test-benchmark.jsonl'), '--limit', '4', ...(frames ? ['--frames', String(frames)] : []), '--json']));
  assert.equal(results.results.n, 4);
  return { pairs, results, timewarp };
}

/**
 * TimeWarp's manipulations through `tpo generate` (no judge): explicit (the order questions answered from the
 * frames in true order and with the video's scenes shuffled, the world's annotations giving the scenes) and
 * implicit (the same frames clean and corrupted). Each must answer from the frames its plan says.
 */
function runTimeWarp(dir: string, modelDir: string, run: (args: string[]) => string) {
  const out: Record<'explicit' | 'implicit', any[]> = { explicit: [], implicit: [] };
  for (const kind of ['explicit', 'implicit'] as const) {
    const file = join(dir, `timewarp-${kind}`, 'pairs.jsonl');
    const config = join(dir, `timewarp-${kind}.json`);
    writeFileSync(config, JSON.stringify({
      model: modelDir, questions: join(dir, 'train-benchmark.jsonl'), annotations: join(dir, 'train-annotations.jsonl'),
      out: file, manipulation: `timewarp-${kind}`, maxNewTokens: 4, judge: 'none', temperature: 1, seed: 7, targetPairs: 4,
    }));
    run(['generate', '--config', config]);
    const records = [...lines(file), ...lines(`${file}.dropped.jsonl`)].filter((r) => r.frames);
    assert.ok(records.length > 0, `timewarp-${kind}: no question answered`);
    for (const r of records) {
      assert.equal(r.manipulation, `timewarp-${kind}`);
      if (kind === 'explicit') {
        // the same frames, the scenes in another order
        assert.deepEqual([...r.frames.dispreferred].sort((a: number, b: number) => a - b), r.frames.preferred);
        assert.notDeepEqual(r.frames.dispreferred, r.frames.preferred);
        assert.ok(Array.isArray(r.sceneOrder) && r.sceneOrder.length >= 2, JSON.stringify(r.sceneOrder));
      } else {
        assert.deepEqual(r.frames.dispreferred, r.frames.preferred);
      }
    }
    out[kind] = records;
  }
  return out;
}
