// The whole pipeline on Video-LLaVA's architecture (LLaVA-Hound): the synthetic world's tiny video_llava model
// through `tpo generate`, `tpo train` (TPO with LoRA) and `tpo eval`, in Video-LLaVA's prompt format; and the
// training savings (prefix sharing, batched pairs, one video encoding per pair) giving the plain computation's
// loss and gradients on the transformers-made parity fixture.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ModelSession } from '../../lib/model/session.js';
import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { writeSynthDataset } from '../../lib/synthetic/index.js';
import { FIXTURES, removeDir, ROOT, tempDir } from '../helpers.js';
import { assertSavingsHold } from './savings.js';

const TPO = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
const FIXTURE = join(FIXTURES, 'hf', 'video_llava');
const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
const GRADIENTS = ['model.layers.0.self_attn.q_proj.weight', 'model.mm_projector.0.weight', 'lm_head.weight'];

describe('Video-LLaVA through the pipeline', function () {
  this.timeout(300_000);

  it('prefix sharing, batched pairs and encode-once give the unshared loss and gradients', async () => {
    using policy = await VideoLM.load(FIXTURE);
    const inputs = (await readSafetensors(join(FIXTURE, 'inputs.safetensors'))).tensors;
    await assertSavingsHold(policy, inputs.pixel_values!, GRADIENTS);
  });

  it('`tpo generate`, `tpo train` and `tpo eval` on the synthetic world\'s tiny Video-LLaVA, in its prompt format', async () => {
    const dir = tempDir('tpo-video-llava-');
    try {
      await writeSynthDataset({ out: dir, videos: 6, seed: 3, world: { length: 'short' }, concurrency: 2, model: 'video-llava' });
      const modelDir = join(dir, 'model');
      const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
      {
        using model = await VideoLM.create(config, { seed: 1 });
        await model.save(modelDir);
      }
      {
        // Video-LLaVA's conversation: "<s>USER: <video>\n{question} ASSISTANT:", the video at one -200.
        using session = await ModelSession.open(modelDir);
        assert.equal(session.model.info.architecture, 'VideoLlavaForConditionalGeneration');
        assert.equal(session.model.videoTokenCount(8), 8 * 17);
        using prompt = session.prompt('<image>\nwhat is first ?');
        const promptIds = Array.from(prompt.toTypedArray() as Int32Array);
        const at = promptIds.indexOf(-200);
        assert.equal(session.tokenizer.decode(promptIds.slice(0, at)), '<s>USER: ');
        assert.equal(session.tokenizer.decode(promptIds.slice(at + 1)), '\nwhat is first ? ASSISTANT:');
        assert.ok(session.stopIds.includes(session.tokenizer.tokenToId('</s>')!));
      }
      const questions = join(dir, 'train-benchmark.jsonl');
      const pairsFile = join(dir, 'pairs', 'pairs.jsonl');
      const genConfig = join(dir, 'gen.json');
      writeFileSync(genConfig, JSON.stringify({
        model: modelDir, questions, out: pairsFile, maxNewTokens: 6, judge: 'none', temperature: 1, seed: 5,
      }));
      const gen = spawnSync(process.execPath, [TPO, 'generate', '--config', genConfig], { encoding: 'utf8' });
      assert.equal(gen.status, 0, gen.stderr);
      const pairs = lines(pairsFile);
      assert.ok(pairs.length >= 2, `pairs kept: ${pairs.length}`);
      // Video-LLaVA's 8 frames when the run does not say (the model's default), 2 of them for the sparse side
      const comprehensive = pairs.filter((q) => q.kind === 'comprehensive');
      assert.ok(comprehensive.length > 0);
      for (const p of comprehensive) assert.deepEqual([p.frames.preferred.length, p.frames.dispreferred.length], [8, 2]);

      const runConfig = join(dir, 'run.json');
      writeFileSync(runConfig, JSON.stringify({
        model: modelDir, output: join(dir, 'run'), data: { train: pairsFile }, objective: 'tpo', preset: 'longva',
        lora: { r: 4, alpha: 8 }, batchSize: 2, maxSteps: 2, checkpoint: { every: 1 },
      }));
      const train = spawnSync(process.execPath, [TPO, 'train', '--config', runConfig], { encoding: 'utf8' });
      assert.equal(train.status, 0, train.stderr);
      const metrics = lines(join(dir, 'run', 'metrics.jsonl')).filter((m) => m.loss !== undefined);
      assert.equal(metrics.length, 2);
      assert.ok(metrics.every((m) => Number.isFinite(m.loss) && m['rewards/accuracies'] !== undefined));
      const adapter = join(dir, 'run', 'final');
      const saved = Object.keys((await readSafetensors(join(adapter, 'adapter_model.safetensors'))).tensors);
      assert.ok(saved.includes('base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight'), saved[0]);

      const evalRun = spawnSync(process.execPath, [TPO, 'eval', '--model', modelDir, '--adapter', adapter, '--benchmark',
        join(dir, 'test-benchmark.jsonl'), '--limit', '4', '--json'], { encoding: 'utf8' });
      assert.equal(evalRun.status, 0, evalRun.stderr);
      const results = JSON.parse(evalRun.stdout);
      assert.equal(results.results.n, 4);
      assert.equal(results.model.architecture, 'VideoLlavaForConditionalGeneration');
    } finally {
      removeDir(dir);
    }
  });
});
