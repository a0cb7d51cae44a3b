// Qwen2.5-VL (transformers' qwen2_5_vl) against transformers 5.18 itself: test/fixtures/hf/qwen2_5_vl (made by
// scripts/fixtures/qwen2_5_vl_reference.py) holds a tiny random Qwen2_5_VLForConditionalGeneration (windowed ViT over
// a non-square grid, full-attention blocks, the patch merger, an M-RoPE language model), its inputs (the video
// processor's patches of 5 frames, prompts in Qwen's video layout) and what transformers / PEFT computed.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';
import { assertClose, int64, placeholderForm as placeholderPrompt, readFixture } from './parity.js';

const DIR = join(FIXTURES, 'hf', 'qwen2_5_vl');
const VIDEO_PAD = 63n; // the fixture's video_token_id
const fixture = () => readFixture(DIR);
const placeholderForm = (ids: bigint[]) => placeholderPrompt(ids, VIDEO_PAD);
const row = (t: Tensor) => t.reshape([1, t.shape[0]!]);
/** transformers' inputs for the fixture's video: its processor's patches, grid and seconds per temporal patch. */
const videoInputs = (inputs: Record<string, Tensor>) => ({
  pixelValuesVideos: inputs.pixel_values_videos, videoGridThw: inputs.video_grid_thw, secondPerGridTs: inputs.second_per_grid_ts,
});

describe('Qwen2.5-VL parity with transformers (Qwen2_5_VLForConditionalGeneration)', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  after(() => dirs.forEach(removeDir));

  it("transformers' inputs: windowed ViT, merger, M-RoPE position ids and rope deltas, logits, hidden states", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    assert.equal(model.info.architecture, 'Qwen2_5_VLForConditionalGeneration');
    // as transformers 5's save_pretrained writes it: visual.*, model.*, lm_head.*
    assert.equal(model.info.layout, 'hf-legacy');
    assert.deepEqual(model.info.ignoredKeys, []);
    const out = await model.forward({
      inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, ...videoInputs(inputs), outputHiddenStates: true,
    });
    assert.deepEqual(int64(out.position_ids!), int64(expected.position_ids!), 'position_ids (get_rope_index)');
    assert.deepEqual(out.position_ids!.shape, expected.position_ids!.shape);
    assert.deepEqual(int64(out.rope_deltas!), int64(expected.rope_deltas!), 'rope_deltas');
    for (const key of ['vision_features', 'logits', 'last_hidden_state', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2']) {
      assertClose(out[key], expected[key]!, key);
    }
  });

  it("frames patchified as the processor does, and tpo's form: the video once at -200", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    // 5 frames: the last repeated to fill the temporal patch, as Qwen2VLVideoProcessor pads
    const fromFrames = await model.forward({
      inputIds: row(inputs.prompt!), pixelValues: inputs.frames, secondPerGridTs: inputs.second_per_grid_ts,
    });
    assertClose(fromFrames.vision_features, expected.vision_features!, 'vision_features from frames');
    assertClose(fromFrames.logits, expected['prompt.logits']!, 'prompt.logits from frames');
    const prompt = row(placeholderForm(int64(inputs.prompt!)));
    const contiguous = await model.forward({ inputIds: prompt, ...videoInputs(inputs) });
    assertClose(contiguous.logits, expected['prompt.logits']!, 'prompt.logits (-200 placeholder)');
    assert.deepEqual(int64(contiguous.position_ids!), int64(expected['prompt.position_ids']!), 'position ids (-200 placeholder)');
    assert.deepEqual(int64(contiguous.rope_deltas!), int64(expected['prompt.rope_deltas']!), 'rope_deltas (-200 placeholder)');
    // the model's default seconds per temporal patch (fps 2: 1 s) is not the fixture's 0.75: other positions
    const defaulted = await model.forward({ inputIds: prompt, pixelValues: inputs.frames });
    assert.notDeepEqual(int64(defaulted.position_ids!), int64(expected['prompt.position_ids']!));
  });

  it('answer log-probs, and greedy KV-cache generation equal to generate(): positions continue from the rope deltas', async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    model.setSecondPerGridTs(0.75);
    const prompt = placeholderForm(int64(inputs.prompt!));
    for (const sharePrefix of [true, false]) {
      const { sums } = await model.logprobs({ prompt, answers: [inputs.answer_0!, inputs.answer_1!], pixelValues: inputs.frames, sharePrefix });
      assertClose(sums, expected.answer_logps!, `answer_logps (sharePrefix ${sharePrefix})`);
    }
    const want = int64(expected.generated!).map(Number);
    for (const useCache of [true, false]) {
      for (const sharePrefix of [true, false]) {
        const { tokens } = await model.generate({ prompts: [prompt, prompt], pixelValues: inputs.frames, maxNewTokens: 8, useCache, sharePrefix });
        assert.deepEqual(tokens, [want, want], `generate (useCache ${useCache}, sharePrefix ${sharePrefix})`);
      }
    }
    // two prompts of different lengths before the video: each row's video starts where its prompt puts it
    const longer = tensor(BigInt64Array.from([5n, ...int64(prompt)]), [prompt.shape[0]! + 1]);
    const both = await model.logprobsBatch({ items: [{ prompt, answers: [inputs.answer_0!] }, { prompt: longer, answers: [inputs.answer_0!] }],
      pixelValues: inputs.frames });
    const first = expected.answer_logps!.toTypedArray() as Float32Array;
    assertClose(both[0]!.sums, tensor(Float32Array.from([first[0]!]), [1]), 'answer_logps of the first of two prompts');
    const alone = await model.logprobs({ prompt: longer, answers: [inputs.answer_0!], pixelValues: inputs.frames, sharePrefix: false });
    assertClose(both[1]!.sums, alone.sums, 'the second prompt (its video one position later) as it scores alone');
    // visual tokens with their grid (as encodeVideo returns them for the frames)
    const tokens = await model.encodeVideo(inputs.frames!);
    const withGrid = { videoTokens: tokens, videoGridThw: inputs.video_grid_thw };
    assertClose((await model.logprobs({ prompt, answers: [inputs.answer_0!, inputs.answer_1!], ...withGrid })).sums, expected.answer_logps!,
      'answer_logps of visual tokens with their grid');
    assert.deepEqual((await model.generate({ prompts: [prompt], ...withGrid, maxNewTokens: 8 })).tokens, [want], 'generate from visual tokens');
    // another seconds per temporal patch: other positions
    const other = await model.logprobs({ prompt, answers: [inputs.answer_0!], ...withGrid, secondPerGridTs: 2 });
    assert.notDeepEqual(Array.from(other.sums.toTypedArray()), [first[0]]);
    // visual tokens alone carry no grid: refused rather than run on plain RoPE
    await assert.rejects(model.logprobs({ prompt, answers: [inputs.answer_0!], videoTokens: tokens }),
      /a Qwen2.5-VL video's visual tokens need their M-RoPE positions \(its grid\)/);
    assert.throws(() => model.setSecondPerGridTs(-1), /VideoLM.setSecondPerGridTs/);
  });

  it("the Hub's config form: the text config at the top level, rope_scaling of type mrope", async () => {
    const { inputs, expected } = await fixture();
    const config = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as Record<string, unknown> & { text_config: Record<string, unknown> };
    const { rope_parameters: rope, model_type: _, ...text } = config.text_config as Record<string, unknown> & { rope_parameters: Record<string, unknown> };
    const flat: Record<string, unknown> = { ...config, ...text, rope_theta: rope.rope_theta,
      rope_scaling: { type: 'mrope', mrope_section: rope.mrope_section } };
    delete flat.text_config;
    const dir = tempDir();
    dirs.push(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(flat));
    copyFileSync(join(DIR, 'model.safetensors'), join(dir, 'model.safetensors'));
    using model = await VideoLM.load(dir);
    const out = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, ...videoInputs(inputs) });
    assertClose(out.logits, expected.logits!, 'logits with the flat config');
  });

  it("PEFT's adapter loads by transformers' module names and saves by them", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    await model.loadLora(join(DIR, 'lora'));
    const forward = (m: VideoLM) => m.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, ...videoInputs(inputs) });
    assertClose((await forward(model)).logits, expected['lora.logits']!, 'lora.logits');
    const dir = tempDir();
    dirs.push(dir);
    await model.saveLora(join(dir, 'adapter'));
    const saved = (await readSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'))).tensors;
    const peft = (await readSafetensors(join(DIR, 'lora', 'adapter_model.safetensors'))).tensors;
    assert.deepEqual(Object.keys(saved).sort(), Object.keys(peft).sort());
    using reloaded = await VideoLM.load(DIR);
    await reloaded.loadLora(join(dir, 'adapter'));
    assertClose((await forward(reloaded)).logits, expected['lora.logits']!, 'lora.logits after saveLora / loadLora');
  });

  it("save and load round trip in transformers' layouts", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    const dir = tempDir();
    dirs.push(dir);
    await model.save(join(dir, 'legacy'));
    const keys = Object.keys((await readSafetensors(join(dir, 'legacy', 'model.safetensors'))).tensors);
    const original = Object.keys((await readSafetensors(join(DIR, 'model.safetensors'))).tensors);
    assert.deepEqual(keys.sort(), original.sort());
    await model.save(join(dir, 'legacy-named'), { layout: 'hf-legacy' });
    const named = Object.keys((await readSafetensors(join(dir, 'legacy-named', 'model.safetensors'))).tensors);
    assert.deepEqual(named.sort(), original.sort());
    // and transformers' in-memory layout (model.language_model.*, model.visual.*)
    await model.save(join(dir, 'hf'), { layout: 'hf' });
    const hfKeys = Object.keys((await readSafetensors(join(dir, 'hf', 'model.safetensors'))).tensors);
    assert.ok(hfKeys.includes('model.visual.patch_embed.proj.weight') && hfKeys.includes('model.visual.merger.ln_q.weight') &&
      hfKeys.includes('model.language_model.embed_tokens.weight') && hfKeys.includes('lm_head.weight'), hfKeys.join(' '));
    for (const saved of ['legacy', 'hf']) {
      using loaded = await VideoLM.load(join(dir, saved));
      assert.equal(loaded.info.layout, saved === 'hf' ? 'hf' : 'hf-legacy');
      const out = await loaded.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, ...videoInputs(inputs) });
      assertClose(out.logits, expected.logits!, `logits after the round trip (${saved})`);
    }
    await assert.rejects(async () => model.save(join(dir, 'other'), { layout: 'llava-next' }),
      /a Qwen2.5-VL model is saved in transformers' layouts \(hf-legacy, as its save_pretrained writes, or hf\), not llava-next/);
  });

  it('bad inputs are errors naming what is wrong', async () => {
    const { inputs } = await fixture();
    using model = await VideoLM.load(DIR);
    await assert.rejects(model.encodeVideo(tensor(new Float32Array(2 * 3 * 8 * 12), [2, 3, 8, 12])),
      /a Qwen2.5-VL video must be frames \[T >= 1, 3, H, W\] with H and W multiples of patch_size x spatial_merge_size \(8\), got \[2, 3, 8, 12\]/);
    await assert.rejects(model.forward({ inputIds: inputs.input_ids, pixelValuesVideos: inputs.pixel_values_videos,
      videoGridThw: tensor(BigInt64Array.from([3n, 6n, 8n]), [1, 3]) }), /video_grid_thw \[3, 6, 8\] needs 144 patches, got \[180, 96\]/);
    await assert.rejects(model.forward({ inputIds: tensor(BigInt64Array.from([1n, VIDEO_PAD, 5n]), [1, 3]), ...videoInputs(inputs) }),
      /holds 1 video tokens \(63\), the video has 45 visual tokens/);
    assert.throws(() => model.videoTokenCount(3), /a Qwen2.5-VL video's visual tokens depend on its frame size/);
    const config = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as { text_config: Record<string, unknown> };
    config.text_config.max_position_embeddings = 40;
    using small = await VideoLM.create(config);
    await assert.rejects(small.encodeVideo(inputs.frames!), /video_grid_thw \[3, 6, 10\] makes 45 visual tokens, more than max_position_embeddings \(40\)/);
  });
});

describe('Qwen2.5-VL config: errors name the field', function () {
  interface Config { text_config: Record<string, unknown> & { rope_parameters: Record<string, unknown> }; vision_config: Record<string, unknown>; [field: string]: unknown }
  const base = () => JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as Config;
  const CASES: [string, (c: Config) => void, RegExp][] = [
    ['an mrope_section not summing to head_dim / 2', (c) => { c.text_config.rope_parameters.mrope_section = [2, 2, 2]; },
      /config: text_config\.rope_parameters\.mrope_section sums to 6; it must be head_dim \/ 2 = 8/],
    ['no mrope_section', (c) => { delete c.text_config.rope_parameters.mrope_section; },
      /config: text_config\.rope_parameters\.mrope_section must be three section sizes \(temporal, height, width\)/],
    ['a rope type other than default / mrope', (c) => { c.text_config.rope_parameters.rope_type = 'yarn'; },
      /config: text_config\.rope_parameters\.rope_type 'yarn' is not supported \(default, linear, dynamic, llama3, mrope\)/],
    ['Qwen2-VL', (c) => { c.model_type = 'qwen2_vl'; }, /config: model_type 'qwen2_vl' \(Qwen2-VL\) is not supported: tpo runs Qwen2\.5-VL/],
    ['a merger width other than the LM hidden size', (c) => { c.vision_config.out_hidden_size = 48; },
      /config: vision_config\.out_hidden_size \(48\) must equal the language model's hidden_size \(32\)/],
    ['a full-attention block outside the tower', (c) => { c.vision_config.fullatt_block_indexes = [1, 4]; },
      /config: vision_config\.fullatt_block_indexes must hold block indexes in \[0, depth = 4\)/],
    ['a window smaller than a merged token', (c) => { c.vision_config.window_size = 4; },
      /config: vision_config\.window_size \(4\) must span at least one merged token/],
    ['a video token outside the vocabulary', (c) => { c.video_token_id = 64; }, /config: video_token_id \(64\) is outside the vocabulary \[0, 64\)/],
    ['a vision model of another kind', (c) => { c.vision_config.model_type = 'siglip_vision_model'; },
      /config: vision_config\.model_type 'siglip_vision_model' is not supported \(Qwen2\.5-VL's vision model is qwen2_5_vl_vision\)/],
  ];
  for (const [what, change, message] of CASES) {
    it(`refuses ${what}`, async () => {
      const config = base();
      change(config);
      await assert.rejects(VideoLM.create(config), message);
    });
  }
});
