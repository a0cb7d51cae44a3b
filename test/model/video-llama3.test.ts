// VideoLLaMA3 against transformers 5.18 itself: test/fixtures/hf/video_llama3 (made by
// scripts/fixtures/video_llama3_reference.py) holds a tiny random VideoLlama3ForConditionalGeneration, its inputs
// (the video processor's patches, grid and compression mask, the same frames in tpo's form) and what
// transformers / PEFT computed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';
import { assertClose, int64, placeholderForm as placeholderPrompt, readFixture } from './parity.js';

const DIR = join(FIXTURES, 'hf', 'video_llama3');
const VIDEO_ID = 63n; // the fixture's video_token_id
const fixture = () => readFixture(DIR);
const placeholderForm = (ids: bigint[]) => placeholderPrompt(ids, VIDEO_ID);

/** A bool tensor's values as numbers (0, 1). */
const bools = (t: Tensor) => Array.from(t.toTypedArray() as Uint8Array, Number);
const row = (t: Tensor) => t.reshape([1, t.shape[0]!]);

function hfInputs(inputs: Record<string, Tensor>) {
  return {
    pixelValuesVideos: inputs.pixel_values_videos, videoGridThw: inputs.video_grid_thw,
    videoMergeSizes: inputs.video_merge_sizes, videoCompressionMask: inputs.video_compression_mask,
  };
}

describe('VideoLLaMA3 parity with transformers (VideoLlama3ForConditionalGeneration)', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  after(() => dirs.forEach(removeDir));

  it("transformers' inputs: the vision model (2D RoPE, per-frame attention, pixel_unshuffle), projector, compressed tokens, logits, hidden states", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    assert.equal(model.info.architecture, 'VideoLlama3ForConditionalGeneration');
    assert.equal(model.info.layout, 'hf');
    assert.deepEqual(model.info.ignoredKeys, []);
    // the batch of 2, each row holding the video's kept tokens between its frames' time stamps
    const out = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, outputHiddenStates: true, ...hfInputs(inputs) });
    for (const key of ['vision_features', 'projected', 'video_tokens', 'logits', 'last_hidden_state', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2']) {
      assertClose(out[key], expected[key]!, key);
    }
    assert.deepEqual(bools(out.compression_mask!), bools(expected.compression_mask!));
  });

  it("the compression mask by the processor's rule when not given, and tpo's frames [T, 3, H, W] patchified as its processor does", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    const { videoCompressionMask: _, ...withoutMask } = hfInputs(inputs);
    const derived = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, ...withoutMask });
    assert.deepEqual(bools(derived.compression_mask!), bools(expected.compression_mask!));
    assertClose(derived.logits, expected.logits!, 'logits (mask derived from the patches)');
    // tpo's form: normalised frames, the video once at -200
    const frames = await model.forward({ inputIds: row(placeholderForm(int64(inputs.contiguous!))), pixelValues: inputs.frames });
    assertClose(frames.vision_features, expected.vision_features!, 'vision_features (from frames)');
    assertClose(frames.video_tokens, expected.video_tokens!, 'video_tokens (from frames)');
    assertClose(frames.logits, expected['contiguous.logits']!, 'contiguous.logits (-200 placeholder)');
    const tokens = await model.encodeVideo(inputs.frames!);
    assertClose(tokens, expected.video_tokens!, 'encodeVideo');
  });

  it('answer log-probs, and greedy KV-cache generation equal to generate()', async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    const prompt = placeholderForm(int64(inputs.contiguous!));
    for (const sharePrefix of [true, false]) {
      const { sums } = await model.logprobs({ prompt, answers: [inputs.answer_0!, inputs.answer_1!], pixelValues: inputs.frames, sharePrefix });
      assertClose(sums, expected.answer_logps!, `answer_logps (sharePrefix ${sharePrefix})`);
    }
    const want = int64(expected.generated!).map(Number);
    for (const useCache of [true, false]) {
      const { tokens } = await model.generate({ prompts: [prompt], pixelValues: inputs.frames, maxNewTokens: 8, useCache });
      assert.deepEqual(tokens[0], want, `generate (useCache ${useCache})`);
    }
  });

  it("PEFT's adapter loads by transformers' module names and saves by them", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    await model.loadLora(join(DIR, 'lora'));
    const out = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, ...hfInputs(inputs) });
    assertClose(out.logits, expected['lora.logits']!, 'lora.logits');
    const dir = tempDir();
    dirs.push(dir);
    await model.saveLora(join(dir, 'adapter'));
    const saved = (await readSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'))).tensors;
    const peft = (await readSafetensors(join(DIR, 'lora', 'adapter_model.safetensors'))).tensors;
    assert.deepEqual(Object.keys(saved).sort(), Object.keys(peft).sort());
  });

  it("save and load round trip in transformers' layout", async () => {
    const { inputs, expected } = await fixture();
    using model = await VideoLM.load(DIR);
    const dir = tempDir();
    dirs.push(dir);
    await model.save(join(dir, 'hf'));
    const keys = Object.keys((await readSafetensors(join(dir, 'hf', 'model.safetensors'))).tensors);
    const original = Object.keys((await readSafetensors(join(DIR, 'model.safetensors'))).tensors);
    assert.deepEqual(keys.sort(), original.sort());
    using loaded = await VideoLM.load(join(dir, 'hf'));
    const out = await loaded.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, ...hfInputs(inputs) });
    assertClose(out.logits, expected.logits!, 'logits after the round trip');
    await assert.rejects(async () => model.save(join(dir, 'other'), { layout: 'llava-next' }), /VideoLLaMA3 model is saved in transformers' layout \(hf\)/);
  });

  it('bad inputs are errors naming what is wrong', async () => {
    const { inputs } = await fixture();
    using model = await VideoLM.load(DIR);
    const ids = inputs.input_ids!, mask = inputs.attention_mask!;
    await assert.rejects(model.forward({ inputIds: ids, attentionMask: mask, ...hfInputs(inputs), videoGridThw: tensor(BigInt64Array.from([4n, 4n, 4n]), [1, 3]) }),
      /video grid \[4, 4, 4\] needs 64 patches, got \[96, 48\]/);
    await assert.rejects(model.forward({ inputIds: ids, attentionMask: mask, ...hfInputs(inputs), videoCompressionMask: tensor(new Uint8Array(5), [5], 'bool') }),
      /video_compression_mask must be \[24\]/);
    // frames whose size is not a multiple of patch x merge (8)
    await assert.rejects(model.encodeVideo(tensor(new Float32Array(3 * 12 * 16), [1, 3, 12, 16])), /H and W multiples of patch_size x merge_size \(8\)/);
    assert.throws(() => model.videoTokenCount(4), /depend on its frame size and on its token compression/);
    // a video whose kept tokens (17) cannot fit the language model is refused before its tower runs
    const config = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as { text_config: Record<string, unknown> };
    config.text_config.max_position_embeddings = 16;
    using small = await VideoLM.create(config);
    await assert.rejects(small.encodeVideo(inputs.frames!), /4 frames make 17 visual tokens, more than max_position_embeddings \(16\)/);
  });
});

describe('VideoLLaMA3 config: errors name the field', function () {
  interface Config { text_config: Record<string, unknown>; vision_config: Record<string, unknown>; [field: string]: unknown }
  const base = () => JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as Config;
  const CASES: [string, (c: Config) => void, RegExp][] = [
    ['a vision RoPE other than axial', (c) => { c.vision_config.rope_parameters = { rope_type: 'default', rope_theta: 1e4 }; },
      /config: vision_config\.rope_parameters\.rope_type 'default' is not supported \(VideoLLaMA3's vision RoPE is axial\)/],
    ['a head size the 2D RoPE cannot split', (c) => { c.vision_config.num_attention_heads = 4; },
      /config: vision_config\.hidden_size \/ num_attention_heads \(6\) must be a multiple of 4/],
    ['a language model other than Qwen2', (c) => { c.text_config.model_type = 'llama'; }, /config: text_config\.model_type 'llama' is not supported/],
    ['a video token outside the vocabulary', (c) => { c.video_token_id = 64; }, /config: video_token_id \(64\) is outside the vocabulary \[0, 64\)/],
  ];
  for (const [what, change, message] of CASES) {
    it(`refuses ${what}`, async () => {
      const config = base();
      change(config);
      await assert.rejects(VideoLM.create(config), message);
    });
  }
});
