// InternVL (transformers' internvl: InternVL3-*-hf, InternVideo2.5's architecture) against transformers 5.18 itself:
// test/fixtures/hf/internvl and internvl_variant (made by scripts/fixtures/internvl_reference.py) hold tiny random
// InternVLForConditionalGeneration models, their inputs (frames normalised as InternVLVideoProcessor does, prompts
// in InternVLProcessor's video layout) and what transformers / PEFT computed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';
import { assertClose, int64, INTERNVL_FIXTURE_FRAME_TEXT, placeholderForm as placeholderPrompt, readFixture } from './parity.js';

const DIR = join(FIXTURES, 'hf', 'internvl');
const VARIANT = join(FIXTURES, 'hf', 'internvl_variant');
const IMG_CONTEXT = 63n; // the fixture's image_token_id
const fixture = () => readFixture(DIR);
const placeholderForm = (ids: bigint[]) => placeholderPrompt(ids, IMG_CONTEXT);
const row = (t: Tensor) => t.reshape([1, t.shape[0]!]);

describe('InternVL parity with transformers (InternVLForConditionalGeneration)', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  after(() => dirs.forEach(removeDir));

  it("transformers' inputs: InternViT (qk-norm, layer scale, final layernorm), pixel_shuffle, projector, logits, hidden states", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    assert.equal(model.info.architecture, 'InternVLForConditionalGeneration');
    // as transformers 5's save_pretrained writes it: language_model.model.*, vision_tower.*, multi_modal_projector.*
    assert.equal(model.info.layout, 'hf-legacy');
    assert.deepEqual(model.info.ignoredKeys, []);
    assert.equal(model.videoTokenCount(3), 12);
    // the batch of 2, each row holding the video in InternVLProcessor's layout (IMG_CONTEXT once per visual token)
    const out = await model.forward({
      inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValues: inputs.pixel_values, outputHiddenStates: true,
    });
    for (const key of ['vision_features', 'projected', 'video_tokens', 'logits', 'last_hidden_state', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2']) {
      assertClose(out[key], expected[key]!, key);
    }
    // tpo's form: the video once at -200
    const contiguous = await model.forward({ inputIds: row(placeholderForm(int64(inputs.contiguous!))), pixelValues: inputs.pixel_values });
    assertClose(contiguous.logits, expected['contiguous.logits']!, 'contiguous.logits (-200 placeholder)');
    assertClose(await model.encodeVideo(inputs.pixel_values!), expected.video_tokens!, 'encodeVideo');
  });

  it('answer log-probs, and greedy KV-cache generation equal to generate()', async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    const prompt = placeholderForm(int64(inputs.contiguous!));
    for (const sharePrefix of [true, false]) {
      const { sums } = await model.logprobs({ prompt, answers: [inputs.answer_0!, inputs.answer_1!], pixelValues: inputs.pixel_values, sharePrefix });
      assertClose(sums, expected.answer_logps!, `answer_logps (sharePrefix ${sharePrefix})`);
    }
    const want = int64(expected.generated!).map(Number);
    for (const useCache of [true, false]) {
      const { tokens } = await model.generate({ prompts: [prompt], pixelValues: inputs.pixel_values, maxNewTokens: 8, useCache });
      assert.deepEqual(tokens[0], want, `generate (useCache ${useCache})`);
    }
  });

  it("the processor's frame layout at one -200: frame text around each frame's tokens (logits, log-probs, generate)", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    model.setFrameText(INTERNVL_FIXTURE_FRAME_TEXT);
    // 3 x 4 visual tokens, "Frame1: <img>" (4 stand-in ids), "\nFrameN: <img>" (5) twice, "</img>" (1) thrice
    assert.equal(model.videoTokenCount(3), 12 + 4 + 5 + 5 + 3);
    const labelled = int64(inputs.labelled!);
    const prompt = tensor(BigInt64Array.from([...labelled.slice(0, 3), -200n, ...labelled.slice(-2)]), [6]);
    const out = await model.forward({ inputIds: row(prompt), pixelValues: inputs.pixel_values });
    assertClose(out.logits, expected['labelled.logits']!, 'labelled.logits');
    for (const sharePrefix of [true, false]) {
      const { sums } = await model.logprobs({ prompt, answers: [inputs.answer_0!, inputs.answer_1!], pixelValues: inputs.pixel_values, sharePrefix });
      assertClose(sums, expected['labelled.answer_logps']!, `labelled.answer_logps (sharePrefix ${sharePrefix})`);
    }
    const { tokens } = await model.generate({ prompts: [prompt], pixelValues: inputs.pixel_values, maxNewTokens: 8 });
    assert.deepEqual(tokens[0], int64(expected['labelled.generated']!).map(Number), 'labelled generate');
    // more frames than the text is set for; ids outside the vocabulary; another architecture
    await assert.rejects(model.encodeVideo(tensor(new Float32Array(4 * 3 * 16 * 16), [4, 3, 16, 16])), /the frame text is set for 3 frames; the video has 4/);
    assert.throws(() => model.setFrameText([{ before: [64] }]), /frame text of frame 1 holds id 64, outside the vocabulary \[0, 64\)/);
    using other = await VideoLM.load(join(FIXTURES, 'hf', 'video_llava'));
    assert.throws(() => other.setFrameText(INTERNVL_FIXTURE_FRAME_TEXT), /frame text is InternVL's and VideoLLaMA3's video layout/);
    model.setFrameText([]);
    assert.equal(model.videoTokenCount(3), 12);
  });

  it('the variant: RMSNorm layers, no qk-norm, vision_feature_layer -2, a LLaMA LM, untied', async () => {
    const { inputs, expected } = await readFixture(VARIANT);
    using model = await VideoLM.load(VARIANT);
    assert.deepEqual(model.info.ignoredKeys, []);
    const out = await model.forward({ inputIds: inputs.input_ids, pixelValues: inputs.pixel_values });
    assertClose(out.vision_features, expected.vision_features!, 'vision_features');
    assertClose(out.logits, expected.logits!, 'logits');
  });

  it("PEFT's adapter loads by transformers' module names and saves by them", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    await model.loadLora(join(DIR, 'lora'));
    const out = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValues: inputs.pixel_values });
    assertClose(out.logits, expected['lora.logits']!, 'lora.logits');
    const dir = tempDir();
    dirs.push(dir);
    await model.saveLora(join(dir, 'adapter'));
    const saved = (await readSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'))).tensors;
    const peft = (await readSafetensors(join(DIR, 'lora', 'adapter_model.safetensors'))).tensors;
    assert.deepEqual(Object.keys(saved).sort(), Object.keys(peft).sort());
    using reloaded = await VideoLM.load(DIR);
    await reloaded.loadLora(join(dir, 'adapter'));
    const again = await reloaded.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValues: inputs.pixel_values });
    assertClose(again.logits, expected['lora.logits']!, 'lora.logits after saveLora / loadLora');
  });

  it("save and load round trip in transformers' layout", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    const dir = tempDir();
    dirs.push(dir);
    await model.save(join(dir, 'legacy'));
    const keys = Object.keys((await readSafetensors(join(dir, 'legacy', 'model.safetensors'))).tensors);
    const original = Object.keys((await readSafetensors(join(DIR, 'model.safetensors'))).tensors);
    assert.deepEqual(keys.sort(), original.sort());
    // and transformers' other layout (model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*)
    await model.save(join(dir, 'hf'), { layout: 'hf' });
    const hfKeys = Object.keys((await readSafetensors(join(dir, 'hf', 'model.safetensors'))).tensors);
    assert.ok(hfKeys.includes('model.multi_modal_projector.layer_norm.weight') && hfKeys.includes('model.vision_tower.embeddings.cls_token') &&
      hfKeys.includes('model.language_model.embed_tokens.weight'), hfKeys.join(' '));
    for (const saved of ['legacy', 'hf']) {
      using loaded = await VideoLM.load(join(dir, saved));
      const out = await loaded.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValues: inputs.pixel_values });
      assertClose(out.logits, expected.logits!, `logits after the round trip (${saved})`);
    }
    await assert.rejects(async () => model.save(join(dir, 'other'), { layout: 'llava-next' }), /an InternVL model is saved in transformers' layouts \(hf-legacy, as its save_pretrained writes, or hf\), not llava-next/);
  });

  it('bad inputs are errors naming what is wrong', async () => {
    const { inputs } = await fixture();
    using model = await VideoLM.load(DIR);
    await assert.rejects(model.encodeVideo(tensor(new Float32Array(3 * 3 * 8 * 8), [3, 3, 8, 8])),
      /InternVL vision tower: pixel_values must be \[frames, 3, 16, 16\] \(its image_size\), got \[3, 3, 8, 8\]/);
    await assert.rejects(model.forward({ inputIds: tensor(BigInt64Array.from([1n, IMG_CONTEXT, 5n]), [1, 3]), pixelValues: inputs.pixel_values }),
      /holds 1 video tokens \(63\), the video has 12 visual tokens/);
    const config = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as { text_config: Record<string, unknown> };
    config.text_config.max_position_embeddings = 10;
    using small = await VideoLM.create(config);
    await assert.rejects(small.encodeVideo(inputs.pixel_values!), /3 frames make 12 visual tokens, more than max_position_embeddings \(10\)/);
  });
});

describe('InternVL config: errors name the field', function () {
  interface Config { text_config: Record<string, unknown>; vision_config: Record<string, unknown>; [field: string]: unknown }
  const base = () => JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as Config;
  const CASES: [string, (c: Config) => void, RegExp][] = [
    ['an InternLM2 language model', (c) => { c.text_config.model_type = 'internlm2'; },
      /config: text_config\.model_type 'internlm2' is not supported: tpo runs InternVL on Qwen2 or LLaMA language models \(the -hf checkpoints/],
    ["OpenGVLab's remote-code config", (c) => { c.model_type = 'internvl_chat'; },
      /config: model_type 'internvl_chat' \(OpenGVLab's remote-code InternVLChatModel\) is not supported: tpo loads transformers' internvl checkpoints/],
    ['a norm type other than layer_norm / rms_norm', (c) => { c.vision_config.norm_type = 'batch_norm'; },
      /config: vision_config\.norm_type 'batch_norm' is not supported \(layer_norm, rms_norm\)/],
    ['a downsample ratio that is not 1 / k', (c) => { c.downsample_ratio = 0.3; },
      /config: downsample_ratio \(0\.3\) must be 1 \/ k for an integer k >= 1/],
    ['a downsample ratio that does not divide the grid', (c) => { c.downsample_ratio = 1 / 3; },
      /config: downsample_ratio \(0\.333333\) does not divide the tower's 4x4 patch grid/],
    ['the full feature strategy', (c) => { c.vision_feature_select_strategy = 'full'; },
      /config: vision_feature_select_strategy full is not supported: InternVL's pixel_shuffle needs the square patch grid/],
    ['a feature layer outside the tower', (c) => { c.vision_feature_layer = -4; },
      /config: vision_feature_layer \(-4\) is outside the tower's 2 layers/],
    ['non-square frames', (c) => { c.vision_config.image_size = [16, 32]; },
      /config: vision_config\.image_size \[16, 32\] is not square/],
    ['an unknown projector activation', (c) => { c.projector_hidden_act = 'relu'; }, /config: projector_hidden_act 'relu' is not supported/],
    ['an image token outside the vocabulary', (c) => { c.image_token_id = 64; }, /config: image_token_id \(64\) is outside the vocabulary \[0, 64\)/],
    ['a vision model of another kind', (c) => { c.vision_config.model_type = 'siglip_vision_model'; },
      /config: vision_config\.model_type 'siglip_vision_model' is not supported \(InternVL's vision model is internvl_vision\)/],
  ];
  for (const [what, change, message] of CASES) {
    it(`refuses ${what}`, async () => {
      const config = base();
      change(config);
      await assert.rejects(VideoLM.create(config), message);
    });
  }
});
