// native/model/inference.cc and lora.cc: generation with a KV cache, answer log-probs, LoRA adapters.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

const LLAVA = join(FIXTURES, 'hf', 'llava_video');
const ids = (values: number[]) => tensor(BigInt64Array.from(values.map(BigInt)), [values.length]);
const floats = (t: Tensor) => Array.from(t.toTypedArray() as Float32Array);

function assertNear(a: number[], b: number[], tolerance: number, what: string) {
  assert.equal(a.length, b.length, what);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= tolerance, `${what}[${i}]: ${x} vs ${b[i]}`));
}

describe('VideoLM inference', function () {
  this.timeout(120_000);
  let model: VideoLM;
  let prompt: number[];
  let pixels: Tensor;
  before(async () => {
    model = await VideoLM.load(LLAVA);
    const inputs = (await readSafetensors(join(LLAVA, 'inputs.safetensors'))).tensors;
    prompt = Array.from(inputs.input_ids!.toTypedArray() as BigInt64Array, Number);
    pixels = inputs.pixel_values!;
  });
  after(() => model.dispose());

  it('generates the same tokens with the KV cache as with a full forward per token', async () => {
    const prompts = [ids(prompt), ids(prompt.slice(2))];
    const cached = await model.generate({ prompts, pixelValues: pixels, maxNewTokens: 16 });
    const full = await model.generate({ prompts, pixelValues: pixels, maxNewTokens: 16, useCache: false });
    assert.deepEqual(cached.tokens, full.tokens);
    assert.equal(cached.tokens[0]!.length, 16);
  });

  it('batches prompts of different lengths as if each ran alone (left padding, position ids)', async () => {
    const together = await model.generate({ prompts: [ids(prompt), ids(prompt.slice(3))], pixelValues: pixels, maxNewTokens: 10 });
    const alone = await model.generate({ prompts: [ids(prompt.slice(3))], pixelValues: pixels, maxNewTokens: 10 });
    assert.deepEqual(together.tokens[1], alone.tokens[0]);
  });

  it('greedy generation follows the argmax of a full forward', async () => {
    const { tokens } = await model.generate({ prompts: [ids(prompt)], pixelValues: pixels, maxNewTokens: 1 });
    const out = await model.forward({ inputIds: tensor(BigInt64Array.from(prompt.map(BigInt)), [1, prompt.length]), pixelValues: pixels });
    const logits = out.logits!.toTypedArray() as Float32Array;
    const vocab = out.logits!.shape[2]!;
    const last = logits.subarray(logits.length - vocab);
    assert.equal(tokens[0]![0], last.indexOf(Math.max(...last)));
  });

  it('stops a row at a stop id and says why each row ended', async () => {
    const greedy = await model.generate({ prompts: [ids(prompt)], pixelValues: pixels, maxNewTokens: 8 });
    const stopAt = greedy.tokens[0]![2]!;
    const stopped = await model.generate({ prompts: [ids(prompt)], pixelValues: pixels, maxNewTokens: 8, stopIds: [stopAt] });
    assert.deepEqual(stopped.tokens[0], greedy.tokens[0]!.slice(0, greedy.tokens[0]!.indexOf(stopAt) + 1));
    assert.deepEqual(stopped.finishReasons, ['stop']);
    assert.deepEqual(greedy.finishReasons, ['length']);
  });

  it('samples reproducibly from a seed, and differently from another', async () => {
    const run = (seed: number) => model.generate({ prompts: [ids(prompt)], pixelValues: pixels, maxNewTokens: 12, temperature: 1, topP: 0.95, seed });
    assert.deepEqual((await run(5)).tokens, (await run(5)).tokens);
    assert.notDeepEqual((await run(5)).tokens, (await run(6)).tokens);
  });

  it('scores answers at answer positions only, shared prefix or not, as the full forward does', async () => {
    const answers = [ids([5, 6, 7, 8]), ids([9, 10])];
    const shared = await model.logprobs({ prompt: ids(prompt), answers, pixelValues: pixels });
    const unshared = await model.logprobs({ prompt: ids(prompt), answers, pixelValues: pixels, sharePrefix: false });
    assertNear(floats(shared.sums), floats(unshared.sums), 1e-4, 'sums');
    // The reference: log_softmax of the full forward's logits over prompt + answer.
    for (const [k, answer] of [[5, 6, 7, 8], [9, 10]].entries()) {
      const sequence = [...prompt, ...answer];
      const out = await model.forward({ inputIds: tensor(BigInt64Array.from(sequence.map(BigInt)), [1, sequence.length]), pixelValues: pixels });
      const logits = out.logits!.toTypedArray() as Float32Array;
      const [, length, vocab] = out.logits!.shape as [number, number, number];
      const expected = answer.map((token, j) => {
        const row = logits.subarray((length - answer.length - 1 + j) * vocab, (length - answer.length + j) * vocab);
        const max = Math.max(...row);
        const logSum = Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) + max;
        return row[token]! - logSum;
      });
      assertNear(floats(shared.tokenLogprobs[k]!), expected, 1e-4, `answer ${k}`);
    }
  });

  it('scores several prompts about one video in one call, as one call per prompt does', async () => {
    const prompts = [prompt, [...prompt, 9, 10], [...prompt.slice(0, -1), 11]];
    const answers = [[ids([3, 4]), ids([5])], [ids([6, 7, 8])], [ids([12]), ids([13, 14]), ids([15])]];
    const items = prompts.map((p, i) => ({ prompt: ids(p), answers: answers[i]! }));
    for (const sharePrefix of [true, false]) {
      const batch = await model.logprobsBatch({ items, pixelValues: pixels, sharePrefix });
      assert.equal(batch.length, items.length);
      for (let i = 0; i < items.length; i++) {
        const alone = await model.logprobs({ prompt: items[i]!.prompt, answers: items[i]!.answers, pixelValues: pixels, sharePrefix: false });
        assertNear(floats(batch[i]!.sums), floats(alone.sums), 2e-5, `sharePrefix ${sharePrefix}: prompt ${i} sums`);
        batch[i]!.tokenLogprobs.forEach((t, j) => assertNear(floats(t), floats(alone.tokenLogprobs[j]!), 2e-5, `prompt ${i} answer ${j} tokens`));
      }
    }
  });

  it('reuses visual tokens from encodeVideo', async () => {
    const tokens = await model.encodeVideo(pixels);
    const a = await model.logprobs({ prompt: ids(prompt), answers: [ids([3, 4])], videoTokens: tokens });
    const b = await model.logprobs({ prompt: ids(prompt), answers: [ids([3, 4])], pixelValues: pixels });
    assert.deepEqual(floats(a.sums), floats(b.sums));
  });

  it('refuses an answer with no tokens, a prompt too long, naming the problem', async () => {
    await assert.rejects(model.logprobs({ prompt: ids(prompt), answers: [ids([])], pixelValues: pixels }), /answer 0 has no tokens/);
    await assert.rejects(model.generate({ prompts: [ids(prompt)], pixelValues: pixels, maxNewTokens: 1000 }), /exceeds max_position_embeddings \(512\)/);
  });
});

describe('LoRA', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  const logits = async (model: VideoLM) => {
    const inputs = (await readSafetensors(join(LLAVA, 'inputs.safetensors'))).tensors;
    return floats((await model.forward({ inputIds: inputs.input_ids, pixelValues: inputs.pixel_values })).logits!);
  };

  it('a fresh adapter (B = 0) changes nothing; trained weights do; disabling restores the base; merging keeps them', async () => {
    using model = await VideoLM.load(LLAVA);
    const base = await logits(model);
    assert.equal(model.addLora({ r: 4, alpha: 8, seed: 1 }), 2 * 7);
    assert.deepEqual(await logits(model), base);

    // Give B values: save, perturb the file's B tensors, load into a fresh model.
    await model.saveLora(dir);
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.deepEqual([config.peft_type, config.r, config.lora_alpha], ['LORA', 4, 8]);
    const { tensors } = await readSafetensors(join(dir, 'adapter_model.safetensors'));
    assert.ok('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' in tensors, Object.keys(tensors)[0]);
    const { writeSafetensors } = await import('../../lib/model/safetensors.js');
    const perturbed: Record<string, Tensor> = {};
    for (const [key, t] of Object.entries(tensors)) {
      const values = (t.toTypedArray() as Float32Array).map((v, i) => (key.includes('lora_B') ? Math.sin(i) * 0.05 : v));
      perturbed[key] = tensor(values, t.shape);
    }
    await writeSafetensors(join(dir, 'adapter_model.safetensors'), perturbed);

    using adapted = await VideoLM.load(LLAVA);
    await adapted.loadLora(dir);
    const withAdapter = await logits(adapted);
    assert.ok(withAdapter.some((v, i) => Math.abs(v - base[i]!) > 1e-3), 'the adapter changes the output');
    adapted.setLoraEnabled(false);
    assert.deepEqual(await logits(adapted), base);
    adapted.setLoraEnabled(true);
    assert.equal(adapted.mergeLora(), 14);
    assertNear(await logits(adapted), withAdapter, 1e-4, 'merged');
  });

  it('freezes and unfreezes parts: only the adapter trains by default', async () => {
    using model = await VideoLM.load(LLAVA);
    model.addLora({ r: 2 });
    // r = 2 on hidden 64, 2 KV heads of 16, MLP 176: A is [2, in], B is [out, 2], per layer
    // q 128+128, k 128+64, v 128+64, o 128+128, gate 128+352, up 128+352, down 352+128; two layers.
    assert.equal(model.setTrainable({}), 2 * (256 + 192 + 192 + 256 + 480 + 480 + 480));
    const projector = model.setTrainable({ projector: true, lora: false });
    assert.equal(projector, 48 * 64 + 64 + 64 * 64 + 64 + 64 /* image_newline */);
    const everything = model.setTrainable({ vision: true, projector: true, language: true, lora: true });
    assert.equal(everything, model.info.parameters);
  });

  it('refuses an adapter folder that does not fit, naming the file', async () => {
    using model = await VideoLM.load(LLAVA);
    await assert.rejects(model.loadLora(join(dir, 'none')), /adapter_config\.json: cannot open/);
    assert.ok(!existsSync(join(dir, 'none')));
  });
});
