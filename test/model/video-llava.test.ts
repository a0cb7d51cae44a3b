// Video-LLaVA (LLaVA-Hound) and the LLaMA decoder against transformers 5.18 itself: test/fixtures/hf/video_llava*,
// llama_rope (made by scripts/fixtures/video_llava_reference.py) hold tiny random models, their inputs and what
// VideoLlavaForConditionalGeneration / LlamaForCausalLM / PEFT computed.
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors, writeSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';
import { assertClose, int64, placeholderForm as placeholderPrompt, readFixture } from './parity.js';

const HF = join(FIXTURES, 'hf');
const VIDEO_ID = 63n; // the fixtures' video_token_index
const fixture = (name: string) => readFixture(join(HF, name));
const placeholderForm = (ids: bigint[]) => placeholderPrompt(ids, VIDEO_ID);

async function logitsOf(model: VideoLM, inputs: Record<string, Tensor>): Promise<Tensor> {
  const out = await model.forward({ inputIds: inputs.input_ids_placeholder, attentionMask: undefined, pixelValues: inputs.pixel_values });
  return out.logits!;
}

describe('Video-LLaVA parity with transformers (VideoLlavaForConditionalGeneration)', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  after(() => dirs.forEach(removeDir));

  it('video_llava: the video tower, projector, token layout, logits and hidden states', async () => {
    const { inputs, expected } = await fixture('video_llava');
    using model = await VideoLM.load(join(HF, 'video_llava'));
    assert.equal(model.info.architecture, 'VideoLlavaForConditionalGeneration');
    // as transformers 5's save_pretrained writes it: language_model.model.*, video_tower.*
    assert.equal(model.info.layout, 'hf-legacy');
    assert.deepEqual(model.info.ignoredKeys, []);
    // 8 frames x (2 x 2 patches + the class token)
    assert.equal(model.videoTokenCount(8), 40);
    // tpo's form: the video at one -200 per row, the mask given before splicing (the rows are right-padded)
    const mask = int64(inputs.attention_mask!);
    const width = inputs.input_ids_placeholder!.shape[1]!;
    const shortMask = [0, 1].flatMap((row) => {
      const real = mask.slice(row * 48, row * 48 + 48).filter((m) => m === 1n).length - 40 + 1;
      return Array.from({ length: width }, (_, i) => (i < real ? 1n : 0n));
    });
    const out = await model.forward({
      inputIds: inputs.input_ids_placeholder, attentionMask: tensor(BigInt64Array.from(shortMask), [2, width]),
      pixelValues: inputs.pixel_values, outputHiddenStates: true,
    });
    for (const key of ['vision_features', 'projected', 'video_tokens', 'inputs_embeds', 'logits', 'last_hidden_state',
      'hidden_states.0', 'hidden_states.1', 'hidden_states.2']) {
      assertClose(out[key], expected[key]!, key);
    }
    // transformers' form: video_token_index once per visual token
    const hf = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValuesVideos: inputs.pixel_values_videos });
    assertClose(hf.logits, expected.logits!, 'logits (expanded input ids, pixelValuesVideos)');
    await assert.rejects(
      model.forward({ inputIds: tensor(BigInt64Array.from([1n, VIDEO_ID, 5n]), [1, 3]), pixelValues: inputs.pixel_values }),
      /holds 1 video tokens \(63\), the video has 40 visual tokens/,
    );
  });

  it('video_llava: answer log-probs, and greedy KV-cache generation equal to generate()', async () => {
    const { inputs, expected } = await fixture('video_llava');
    using model = await VideoLM.load(join(HF, 'video_llava'));
    const prompt = placeholderForm(int64(inputs.answer_prompt!));
    for (const sharePrefix of [true, false]) {
      const { sums } = await model.logprobs({ prompt, answers: [inputs.answer_0!, inputs.answer_1!], pixelValues: inputs.pixel_values, sharePrefix });
      assertClose(sums, expected.answer_logps!, `answer_logps (sharePrefix ${sharePrefix})`);
    }
    const want = int64(expected.generated!).map(Number);
    const prompts = [placeholderForm(int64(inputs.generate_prompt!))];
    for (const useCache of [true, false]) {
      const { tokens } = await model.generate({ prompts, pixelValues: inputs.pixel_values, maxNewTokens: 8, useCache });
      assert.deepEqual(tokens[0], want, `generate (useCache ${useCache})`);
    }
    // two prompts about the video: the shared prefix runs once, each row as if alone
    const other = placeholderForm(int64(inputs.answer_prompt!));
    const both = await model.generate({ prompts: [other, prompts[0]!], pixelValues: inputs.pixel_values, maxNewTokens: 8 });
    assert.deepEqual(both.tokens[1], want);
  });

  it("video_llava: PEFT's adapter loads by transformers' module names, saves by them, and reloads", async () => {
    const { inputs, expected } = await fixture('video_llava');
    using model = await VideoLM.load(join(HF, 'video_llava'));
    const base = await logitsOf(model, inputs);
    await model.loadLora(join(HF, 'video_llava', 'lora'));
    const withAdapter = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValues: inputs.pixel_values });
    assertClose(withAdapter.logits, expected['lora.logits']!, 'lora.logits');
    const dir = tempDir();
    dirs.push(dir);
    await model.saveLora(join(dir, 'adapter'));
    const saved = (await readSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'))).tensors;
    const peft = (await readSafetensors(join(HF, 'video_llava', 'lora', 'adapter_model.safetensors'))).tensors;
    assert.deepEqual(Object.keys(saved).sort(), Object.keys(peft).sort());
    using again = await VideoLM.load(join(HF, 'video_llava'));
    await again.loadLora(join(dir, 'adapter'));
    assertClose(await logitsOf(again, inputs), await logitsOf(model, inputs), 'reloaded adapter');
    model.setLoraEnabled(false);
    assertClose(await logitsOf(model, inputs), base, 'adapter disabled = the base model');
    // an adapter holding a tower's layers (which tpo does not adapt) is refused, not half applied
    const bad = join(dir, 'bad');
    cpSync(join(HF, 'video_llava', 'lora'), bad, { recursive: true });
    await writeSafetensors(join(bad, 'adapter_model.safetensors'), {
      ...peft, 'base_model.model.model.video_tower.encoder.layers.0.self_attn.q_proj.lora_A.weight': tensor(new Float32Array(96), [4, 24]),
    });
    using fresh = await VideoLM.load(join(HF, 'video_llava'));
    await assert.rejects(fresh.loadLora(bad), /1 adapter tensor\(s\) match no layer tpo adapts, e\.g\. base_model\.model\.model\.video_tower/);
  });

  it('video_llava: save and load in every layout gives the same model; the original layout is named as Video-LLaVA writes it', async () => {
    const { inputs } = await fixture('video_llava');
    using model = await VideoLM.load(join(HF, 'video_llava'));
    const reference = await logitsOf(model, inputs);
    const dir = tempDir();
    dirs.push(dir);
    const keysOf = async (d: string) => Object.keys((await readSafetensors(join(d, 'model.safetensors'))).tensors);
    const expectedKey = {
      hf: 'model.video_tower.embeddings.class_embedding',
      'hf-legacy': 'video_tower.vision_model.embeddings.class_embedding',
      'video-llava': 'model.video_tower.video_tower.embeddings.class_embedding',
    } as const;
    for (const layout of ['hf', 'hf-legacy', 'video-llava'] as const) {
      const out = join(dir, layout);
      await model.save(out, { layout });
      const keys = await keysOf(out);
      assert.ok(keys.includes(expectedKey[layout]), `${layout}: ${expectedKey[layout]}`);
      if (layout === 'video-llava') assert.ok(keys.includes('model.mm_projector.0.weight') && keys.includes('model.layers.0.self_attn.q_proj.weight'));
      using loaded = await VideoLM.load(out);
      assert.equal(loaded.info.layout, layout);
      assert.deepEqual((await logitsOf(loaded, inputs)).toTypedArray(), reference.toTypedArray(), `${layout} round trip`);
    }
    await assert.rejects(async () => model.save(join(dir, 'wrong'), { layout: 'llava-next' }), /not this model's original layout \(video-llava\)/);
    // The original repository's config.json (LlavaLlamaForCausalLM: LLaMA's fields and mm_* at the top, the towers
    // named), with the towers' shape added, over the weights in the original layout: the same model.
    const config = JSON.parse(readFileSync(join(HF, 'video_llava', 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    const originalConfig = {
      ...config.text_config, architectures: ['LlavaLlamaForCausalLM'], model_type: 'llava',
      mm_video_tower: 'LanguageBind/LanguageBind_Video_merge', mm_image_tower: 'LanguageBind/LanguageBind_Image',
      mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2, mm_vision_select_feature: 'patch', mm_hidden_size: 24,
      vision_config: config.vision_config,
    };
    const repo = join(dir, 'original-config');
    cpSync(join(dir, 'video-llava'), repo, { recursive: true });
    writeFileSync(join(repo, 'config.json'), JSON.stringify(originalConfig));
    {
      using loaded = await VideoLM.load(repo);
      assert.equal(loaded.info.architecture, 'VideoLlavaForConditionalGeneration');
      assert.equal(loaded.info.layout, 'video-llava');
      assertClose(await logitsOf(loaded, inputs), reference, 'the original config over the original layout');
    }
    // The original checkpoint's LanguageBind temporal attention has no place in transformers' model: refused by name.
    const original = join(dir, 'video-llava');
    const weights = (await readSafetensors(join(original, 'model.safetensors'))).tensors;
    await writeSafetensors(join(original, 'model.safetensors'), {
      ...weights, 'model.video_tower.video_tower.encoder.layers.0.temporal_attn.q_proj.weight': tensor(new Float32Array(576), [24, 24]),
    });
    await assert.rejects(VideoLM.load(original), /temporal_attn[\s\S]*LanguageBind's temporal attention/);
  });

  it('video_llava_variant: transformers 4 layout (the towers under vision_model), tied embeddings, a list of feature layers, biases, llama3 RoPE', async () => {
    const { inputs, expected } = await fixture('video_llava_variant');
    using model = await VideoLM.load(join(HF, 'video_llava_variant'));
    assert.equal(model.info.layout, 'hf-legacy');
    assert.ok(model.info.ignoredKeys.every((k) => k === 'language_model.lm_head.weight'), model.info.ignoredKeys.join());
    const out = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValues: inputs.pixel_values, outputHiddenStates: true });
    for (const key of ['vision_features', 'projected', 'video_tokens', 'inputs_embeds', 'logits', 'last_hidden_state', 'hidden_states.1']) {
      assertClose(out[key], expected[key]!, key);
    }
    const { sums } = await model.logprobs({ prompt: placeholderForm(int64(inputs.answer_prompt!)), answers: [inputs.answer_0!, inputs.answer_1!], pixelValues: inputs.pixel_values });
    assertClose(sums, expected.answer_logps!, 'answer_logps');
    const { tokens } = await model.generate({ prompts: [placeholderForm(int64(inputs.generate_prompt!))], pixelValues: inputs.pixel_values, maxNewTokens: 8 });
    assert.deepEqual(tokens[0], int64(expected.generated!).map(Number));
  });

  it("the original Video-LLaVA config (llava with mm_video_tower) must say its towers' shape", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const config = JSON.parse(readFileSync(join(HF, 'video_llava', 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config.text_config, model_type: 'llava', mm_video_tower: 'LanguageBind/LanguageBind_Video_merge' }));
    writeFileSync(join(dir, 'model.safetensors'), readFileSync(join(HF, 'video_llava', 'model.safetensors')));
    await assert.rejects(VideoLM.load(dir), /vision_config is missing: the original Video-LLaVA config names its towers/);
  });
});

describe('Video-LLaVA and LLaMA configs: errors name the field', function () {
  interface Config { text_config: Record<string, unknown>; vision_config: Record<string, unknown>; [field: string]: unknown }
  const base = () => JSON.parse(readFileSync(join(HF, 'video_llava', 'config.json'), 'utf8')) as Config;
  const CASES: [string, (c: Config) => void, RegExp][] = [
    ['a RoPE type tpo does not compute', (c) => { c.text_config.rope_parameters = { rope_type: 'yarn', factor: 4, rope_theta: 1e4 }; },
      /config: text_config\.rope_parameters\.rope_type 'yarn' is not supported \(default, linear, dynamic, llama3\)/],
    ['llama3 RoPE without its band factors', (c) => { c.text_config.rope_parameters = { rope_type: 'llama3', factor: 8, rope_theta: 1e4 }; },
      /config: text_config\.rope_parameters\.low_freq_factor must be a positive finite number/],
    ['a scaling factor below 1', (c) => { c.text_config.rope_parameters = { rope_type: 'linear', factor: 0.5, rope_theta: 1e4 }; },
      /config: text_config\.rope_parameters\.factor must be a finite number >= 1, got 0\.5/],
    ['a projector activation tpo does not have', (c) => { c.projector_hidden_act = 'relu'; }, /config: projector_hidden_act 'relu' is not supported/],
    ['a language model other than LLaMA', (c) => { c.text_config.model_type = 'qwen2'; }, /config: text_config\.model_type 'qwen2' is not supported/],
    ['a SigLIP tower', (c) => { c.vision_config.model_type = 'siglip_vision_model'; }, /config: vision_config\.model_type must be clip_vision_model/],
    ['a feature layer outside the tower', (c) => { c.vision_feature_layer = [-2, 7]; }, /config: vision_feature_layer \(7\) is outside the tower's 3 layers/],
  ];
  for (const [what, change, message] of CASES) {
    it(`refuses ${what}`, async () => {
      const config = base();
      change(config);
      await assert.rejects(VideoLM.create(config), message);
    });
  }
});

describe('LlamaForCausalLM parity with transformers: RoPE variants', function () {
  this.timeout(60_000);
  for (const variant of ['default', 'linear', 'dynamic', 'llama3']) {
    it(`${variant}`, async () => {
      const { inputs, expected } = await fixture('llama_rope');
      using model = await VideoLM.load(join(HF, 'llama_rope', variant));
      assert.equal(model.info.architecture, 'LlamaForCausalLM');
      const out = await model.forward({ inputIds: inputs.input_ids });
      assertClose(out.logits, expected[`${variant}.logits`]!, `${variant}.logits`);
    });
  }
});
