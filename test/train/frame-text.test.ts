// Frame text among the visual tokens (InternVL's "FrameN: <img>" ... "</img>" around each frame's tokens) is made by
// embed_tokens: a full fine-tune of the language model must give those ids' embeddings their gradient, which tokens
// encoded once before training (the trainer's cache for a frozen tower) would not carry.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { writeJsonl } from '../../lib/data/jsonl.js';
import { readBenchmark } from '../../lib/data/records.js';
import { readSafetensors } from '../../lib/model/safetensors.js';
import { Tokenizer } from '../../lib/model/tokenizer.js';
import { Trainer } from '../../lib/train/trainer.js';
import { removeDir, tempDir } from '../helpers.js';
import { writeWorld } from '../tpo/pipeline.js';

async function embeddingRows(dir: string, ids: number[]): Promise<Float32Array[]> {
  const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
  const key = Object.keys(tensors).find((k) => k.endsWith('embed_tokens.weight'));
  assert.ok(key, `${dir}: no embed_tokens in ${Object.keys(tensors).slice(0, 4).join(', ')}`);
  const table = tensors[key]!;
  const width = table.shape[1]!;
  const values = table.toTypedArray() as Float32Array;
  return ids.map((id) => values.slice(id * width, (id + 1) * width));
}

describe('Training with frame text', function () {
  this.timeout(300_000);

  it('a full fine-tune of InternVL\'s language model updates the embeddings of its frame text ("<img>", "</img>")', async () => {
    const dir = tempDir('tpo-frame-text-');
    try {
      const modelDir = await writeWorld(dir, 'internvl');
      const items = await readBenchmark(join(dir, 'train-benchmark.jsonl')).toArray();
      await writeJsonl(join(dir, 'pairs.jsonl'), items.slice(0, 2).map((b) => ({
        id: b.id, video: b.video, prompt: b.question, chosen: b.options[b.answer], rejected: b.options[(b.answer + 1) % b.options.length],
      })));
      const tokenizer = await Tokenizer.load(modelDir);
      const frameIds = ['<img>', '</img>'].map((t) => tokenizer.tokenToId(t));
      assert.ok(frameIds.every((id) => id !== undefined), 'the world tokenizer has <img> and </img>');
      // (an id no prompt, answer or frame text holds: its row gets no gradient, and with weight decay 0 AdamW leaves it)
      const unused = tokenizer.tokenToId('<unk>');
      assert.ok(unused !== undefined);
      const ids = [...frameIds, unused] as number[];
      const before = await embeddingRows(modelDir, ids);

      const trainer = new Trainer({
        model: modelDir, output: join(dir, 'run'), data: { train: join(dir, 'pairs.jsonl') }, objective: 'tpo',
        train: { language: true }, lr: 1e-3, schedule: { type: 'constant' }, batchSize: 2, maxSteps: 1, frames: 4,
      } as never);
      const result = await trainer.fit();
      assert.equal(result.stopped, 'done');
      const after = await embeddingRows(result.final!, ids);
      const changed = (i: number) => before[i]!.some((v, k) => v !== after[i]![k]);
      assert.ok(changed(0), '<img>\'s embedding trained');
      assert.ok(changed(1), '</img>\'s embedding trained');
      assert.ok(!changed(2), 'an id the step never saw is left as it was');
    } finally {
      removeDir(dir);
    }
  });
});
