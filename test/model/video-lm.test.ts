// native/model/ and lib/model/video-lm.ts against the reference implementations: test/fixtures/hf/ holds tiny
// random models with the outputs Hugging Face transformers 4.57.6, LLaVA-NeXT's and LongVA's own multimodal code
// computed for given inputs (test/fixtures/hf/README.md says which code path made each).
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors, writeSafetensors } from '../../lib/model/safetensors.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { tensor, type Tensor } from '../../lib/tensor.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

const HF = join(FIXTURES, 'hf');

// float32 against float32: the fixtures' README reports at most 5.5e-6 between two correct implementations.
const ATOL = 1e-5;
const RTOL = 1e-4;

function assertClose(actual: Tensor | undefined, expected: Tensor, what: string): void {
  assert.ok(actual, `${what} is produced`);
  assert.deepEqual(actual.shape, expected.shape, `${what} shape`);
  const a = actual.toTypedArray() as Float32Array;
  const b = expected.toTypedArray() as Float32Array;
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const excess = Math.abs(a[i]! - b[i]!) - (ATOL + RTOL * Math.abs(b[i]!));
    if (excess > worst) [worst, at] = [excess, i];
  }
  assert.ok(at < 0, `${what}: element ${at} is ${a[at]}, expected ${b[at]}`);
}

async function fixture(name: string) {
  const inputs = (await readSafetensors(join(HF, name, 'inputs.safetensors'))).tensors;
  const expected = (await readSafetensors(join(HF, name, 'expected.safetensors'))).tensors;
  return { inputs, expected };
}

describe('VideoLM parity with the reference implementations', function () {
  this.timeout(120_000);

  for (const name of ['qwen2', 'qwen2_tied']) {
    it(`${name}: Qwen2ForCausalLM logits and hidden states, a right-padded batch, GQA`, async () => {
      const { inputs, expected } = await fixture(name);
      using model = await VideoLM.load(join(HF, name));
      assert.equal(model.info.architecture, 'Qwen2ForCausalLM');
      const out = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, outputHiddenStates: true });
      for (const key of ['logits', 'last_hidden_state', 'last_layer_output', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2']) {
        assertClose(out[key], expected[key]!, key);
      }
      // Row 1 alone, without its padding, gives the padded batch's logits at its real positions.
      const ids = inputs.input_ids!.toTypedArray() as BigInt64Array;
      const length = ids.length / 2;
      const mask = inputs.attention_mask!.toTypedArray() as BigInt64Array;
      const real = mask.subarray(length).filter((m) => m === 1n).length;
      const row1 = tensor(ids.slice(length, length + real), [1, real]);
      const alone = await model.forward({ inputIds: row1 });
      assertClose(alone.logits, expected.logits_row1_unpadded!, 'logits_row1_unpadded');
    });
  }

  it('siglip: SiglipVisionModel hidden states, post-layernorm, and the penultimate layer LLaVA takes', async () => {
    const { inputs, expected } = await fixture('siglip');
    using model = await VideoLM.load(join(HF, 'siglip'));
    assert.deepEqual(model.info.ignoredKeys.filter((k) => !k.includes('.head.')), []);
    const out = await model.forward({ pixelValues: inputs.pixel_values, outputHiddenStates: true });
    for (const key of ['last_hidden_state', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'hidden_states.3']) {
      assertClose(out[key], expected[key]!, key);
    }
    assertClose(out['hidden_states.2'], expected.llava_features!, 'llava_features = hidden_states[-2]');
  });

  it('clip: CLIPVisionModel with its class token and pre-layernorm', async () => {
    const { inputs, expected } = await fixture('clip');
    using model = await VideoLM.load(join(HF, 'clip'));
    const out = await model.forward({ pixelValues: inputs.pixel_values, outputHiddenStates: true });
    for (const key of ['last_hidden_state', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'hidden_states.3']) {
      assertClose(out[key], expected[key]!, key);
    }
    assertClose(out['hidden_states.2'], expected.select_layer_m2_with_cls!, 'select_layer_m2_with_cls');
  });

  // Each variant is the same checkpoint run with LLaVA-NeXT's config switches (as lmms-eval sets them).
  const VARIANTS: Record<string, Record<string, string>> = {
    average_grid: { mm_newline_position: 'grid' },
    average_frame: { mm_newline_position: 'frame' },
    average_one_token: { mm_newline_position: 'one_token' },
    average_no_token: { mm_newline_position: 'no_token' },
    average_flat: { mm_patch_merge_type: 'flat' },
    bilinear_grid: { mm_spatial_pool_mode: 'bilinear', mm_newline_position: 'grid' },
  };
  for (const name of ['llava_video', 'llava_video_oddgrid']) {
    it(`${name}: LLaVA-Video's video path, every pooling and newline variant`, async () => {
      const { inputs, expected } = await fixture(name);
      {
        using model = await VideoLM.load(join(HF, name));
        assert.equal(model.info.architecture, 'LlavaQwenForCausalLM');
        assert.equal(model.info.layout, 'llava-next');
        const out = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValues: inputs.pixel_values });
        for (const key of ['vision_features', 'projected', 'pooled', 'inputs_embeds', 'logits', 'last_hidden_state']) {
          assertClose(out[key], expected[key]!, key);
        }
        assertClose(out.video_tokens, expected.video_tokens_grid!, 'video_tokens_grid');
      }
      for (const [variant, overrides] of Object.entries(VARIANTS)) {
        using model = await VideoLM.load(join(HF, name), { overrides: { mm_spatial_pool_mode: 'average', ...overrides } });
        const out = await model.forward({ inputIds: inputs.input_ids, pixelValues: inputs.pixel_values });
        assertClose(out.inputs_embeds, expected[`${variant}.inputs_embeds`]!, `${variant}.inputs_embeds`);
        assertClose(out.logits, expected[`${variant}.logits`]!, `${variant}.logits`);
      }
    });
  }

  it("longva: CLIP tower, the config's pool stride, no newline", async () => {
    const { inputs, expected } = await fixture('longva');
    using model = await VideoLM.load(join(HF, 'longva'));
    const out = await model.forward({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, pixelValues: inputs.pixel_values });
    for (const key of Object.keys(expected)) assertClose(out[key], expected[key]!, key);
  });
});

describe('VideoLM checkpoints', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('reads weights into private memory, memory-maps them without a copy when asked, and converts when asked', async () => {
    using read = await VideoLM.load(join(HF, 'qwen2'));
    assert.deepEqual([read.info.convertedTensors, read.info.zeroCopyTensors, read.info.memoryMapped, read.info.dtype], [0, 0, false, 'float32']);
    using same = await VideoLM.load(join(HF, 'qwen2'), { mmap: true });
    assert.equal(same.info.convertedTensors, 0);
    assert.ok(same.info.zeroCopyTensors > 0);
    assert.equal(same.info.memoryMapped, true);
    using half = await VideoLM.load(join(HF, 'qwen2'), { dtype: 'bfloat16', mmap: true });
    assert.equal(half.info.zeroCopyTensors, 0);
    assert.equal(half.info.dtype, 'bfloat16');
  });

  for (const layout of ['llava-next', 'hf', 'hf-legacy'] as const) {
    it(`saves in the ${layout} layout and loads back bit for bit`, async () => {
      const { inputs } = await fixture('llava_video');
      using original = await VideoLM.load(join(HF, 'llava_video'));
      const files = await original.save(dir, { layout, maxShardSize: '200KB' });
      assert.ok(files.includes('model.safetensors.index.json') && files.includes('config.json'), files.join(', '));
      const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
      const keys = Object.keys(index.weight_map);
      const projector = { 'llava-next': 'model.mm_projector.0.weight', hf: 'model.multi_modal_projector.linear_1.weight', 'hf-legacy': 'multi_modal_projector.linear_1.weight' }[layout];
      assert.ok(keys.includes(projector), `${projector} in ${keys.slice(0, 5).join(', ')}...`);
      using reloaded = await VideoLM.load(dir);
      assert.equal(reloaded.info.layout, layout);
      const run = (m: VideoLM) => m.forward({ inputIds: inputs.input_ids, pixelValues: inputs.pixel_values });
      const [a, b] = [await run(original), await run(reloaded)];
      assert.deepEqual(b.logits!.toTypedArray(), a.logits!.toTypedArray());
    });
  }

  it('creates a model from a config with seeded random weights, which saves and loads back', async () => {
    const config = JSON.parse(readFileSync(join(HF, 'llava_video', 'config.json'), 'utf8'));
    const { inputs } = await fixture('llava_video');
    const run = async (m: VideoLM) => (await m.forward({ inputIds: inputs.input_ids, pixelValues: inputs.pixel_values })).logits!.toTypedArray();
    using a = await VideoLM.create(config, { seed: 3 });
    using b = await VideoLM.create(config, { seed: 3 });
    using c = await VideoLM.create(config, { seed: 4 });
    assert.deepEqual(await run(a), await run(b));
    assert.notDeepEqual(await run(a), await run(c));
    await a.save(dir);
    using reloaded = await VideoLM.load(dir);
    assert.deepEqual(await run(reloaded), await run(a));
    await assert.rejects(VideoLM.create({ ...config, model_type: 'gpt2' }), /config: model_type 'gpt2' is not an architecture/);
  });

  it("initialises a created SigLIP tower as transformers' SiglipPreTrainedModel._init_weights does, the rest N(0, initializer_range)", async () => {
    // The rule (transformers 5.x models/siglip/modeling_siglip.py; native/model/loader.cc init_siglip_parameter), as
    // statistics over every tensor of a kind: the fixture's tower is 48 wide (2 layers), so a std is known to ~1 %.
    const config = JSON.parse(readFileSync(join(HF, 'llava_video', 'config.json'), 'utf8'));
    using model = await VideoLM.create(config, { seed: 5 });
    await model.save(dir);
    const { tensors } = await readSafetensors(dir);
    const kind = (pattern: RegExp) => {
      const names = Object.keys(tensors).filter((k) => pattern.test(k));
      assert.ok(names.length > 0, `a created model has ${pattern}`);
      const values = names.flatMap((k) => Array.from(tensors[k]!.toTypedArray() as Float32Array));
      const mean = values.reduce((s, x) => s + x, 0) / values.length;
      const std = Math.sqrt(values.reduce((s, x) => s + (x - mean) ** 2, 0) / values.length);
      return { names, mean, std, max: Math.max(...values.map(Math.abs)), n: values.length };
    };
    const near = (what: string, actual: number, expected: number, relative: number) =>
      assert.ok(Math.abs(actual - expected) <= relative * expected, `${what}: ${actual}, expected ${expected} within ${relative * 100} %`);
    const tower = 'model\\.vision_tower\\.vision_tower\\.vision_model\\.';
    const hidden = config.vision_config.hidden_size as number;
    const inner = config.vision_config.intermediate_size as number;
    // xavier_uniform_: U(-b, b), b = sqrt(6 / (fan_in + fan_out)), std b / sqrt(3)
    for (const [pattern, fanIn, fanOut] of [[`${tower}encoder\\.layers\\.\\d+\\.self_attn\\.(q|k|v|out)_proj\\.weight$`, hidden, hidden],
      [`${tower}encoder\\.layers\\.\\d+\\.mlp\\.fc1\\.weight$`, hidden, inner], [`${tower}encoder\\.layers\\.\\d+\\.mlp\\.fc2\\.weight$`, inner, hidden]] as const) {
      const bound = Math.sqrt(6 / (fanIn + fanOut));
      const s = kind(new RegExp(pattern));
      near(`${pattern} std`, s.std, bound / Math.sqrt(3), 0.05);
      assert.ok(s.max <= bound && s.max > 0.98 * bound, `${pattern}: max |w| ${s.max}, bound ${bound}`);
    }
    const fcBias = kind(new RegExp(`${tower}encoder\\.layers\\.\\d+\\.mlp\\.fc[12]\\.bias$`));
    near('fc1/fc2 bias std', fcBias.std, 1e-6, 0.3);
    // lecun_normal_: trunc_normal_(std sqrt(1 / fan_in) / 0.8796...), cut at +-2 absolute (no cut at these sizes)
    const patch = kind(new RegExp(`${tower}embeddings\\.patch_embedding\\.weight$`));
    near('patch_embedding std', patch.std, Math.sqrt(1 / (3 * config.vision_config.patch_size ** 2)) / 0.87962566103423978, 0.05);
    near('position_embedding std', kind(new RegExp(`${tower}embeddings\\.position_embedding\\.weight$`)).std, 1 / Math.sqrt(hidden), 0.15);
    for (const pattern of [`${tower}.*\\.(q|k|v|out)_proj\\.bias$`, `${tower}.*(layer_norm\\d|post_layernorm)\\.bias$`, `${tower}embeddings\\.patch_embedding\\.bias$`]) {
      assert.equal(kind(new RegExp(pattern)).max, 0, `${pattern} is zero`);
    }
    const norms = kind(new RegExp(`${tower}.*(layer_norm\\d|post_layernorm)\\.weight$`));
    assert.ok(norms.mean === 1 && norms.std === 0, 'layer norms start at 1');
    // The language model and the projector keep Qwen2's N(0, initializer_range).
    for (const pattern of [/^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/, /^model\.mm_projector\.\d\.weight$/, /^model\.embed_tokens\.weight$/]) {
      near(`${pattern} std`, kind(pattern).std, config.initializer_range as number, 0.05);
    }
  });

  it('a tied head is saved without lm_head.weight, as transformers saves it', async () => {
    using model = await VideoLM.load(join(HF, 'qwen2_tied'));
    await model.save(dir);
    const { tensors } = await readSafetensors(dir);
    assert.ok(!('lm_head.weight' in tensors));
    assert.ok('model.embed_tokens.weight' in tensors);
  });

  describe('refuses what does not fit, naming the problem', () => {
    const copyModel = (name: string) => {
      const to = join(dir, name);
      cpSync(join(HF, name), to, { recursive: true });
      return to;
    };
    const editConfig = (folder: string, edit: (c: Record<string, unknown>) => void) => {
      const file = join(folder, 'config.json');
      const config = JSON.parse(readFileSync(file, 'utf8'));
      edit(config);
      writeFileSync(file, JSON.stringify(config));
    };

    it('a CUDA device on a CPU build', async function () {
      const { runtimeInfo } = await import('../../lib/runtime.js');
      if (runtimeInfo().cuda.built) this.skip(); // a CUDA build on a machine with a GPU loads; checked on such machines
      await assert.rejects(VideoLM.load(join(HF, 'qwen2'), { device: 'cuda' }), /device 'cuda': this tpo addon was built against a CPU libtorch/);
      await assert.rejects(VideoLM.load(join(HF, 'qwen2'), { device: 'tpu' as never }), { code: 'ERR_TPO_ARGUMENT', message: /cpu, cuda or cuda:N/ });
    });

    it('an unknown architecture', async () => {
      const folder = copyModel('qwen2');
      editConfig(folder, (c) => (c.model_type = 'mamba'));
      await assert.rejects(VideoLM.load(folder), /config\.json: model_type 'mamba' is not an architecture tpo knows/);
    });

    it('a missing field', async () => {
      const folder = copyModel('qwen2');
      editConfig(folder, (c) => delete c.num_hidden_layers);
      await assert.rejects(VideoLM.load(folder), /config\.json: num_hidden_layers is missing/);
    });

    it('weights of another model: missing, unexpected and mis-shaped keys, each named', async () => {
      const folder = copyModel('qwen2');
      editConfig(folder, (c) => {
        c.num_hidden_layers = 3;
        c.intermediate_size = 100;
      });
      await assert.rejects(VideoLM.load(folder), (e: Error) => {
        assert.match(e.message, /model\.safetensors does not fit this model \(llava-next layout\)/);
        assert.match(e.message, /missing key\(s\):\n  model\.layers\.2\./);
        assert.match(e.message, /shape mismatch\(es\):\n(  .*\n)*  model\.layers\.0\.mlp\.down_proj\.weight: checkpoint \[64, 176\], model \[64, 100\]/);
        return true;
      });
      const llava = copyModel('llava_video');
      await writeSafetensors(join(llava, 'model.safetensors'), {
        ...(await readSafetensors(join(HF, 'qwen2', 'model.safetensors'))).tensors,
        'vision.extra': tensor(new Float32Array(2)),
      });
      await assert.rejects(VideoLM.load(llava), /unexpected key\(s\):\n  vision\.extra/);
    });

    it('an input longer than the context, a video with no frames, ids outside the vocabulary', async () => {
      const { inputs } = await fixture('llava_video');
      using model = await VideoLM.load(join(HF, 'llava_video'), { overrides: { max_position_embeddings: 20 } });
      await assert.rejects(model.forward({ inputIds: inputs.input_ids, pixelValues: inputs.pixel_values }), /max_position_embeddings \(20\)/);
      await assert.rejects(model.encodeVideo(tensor(new Float32Array(0), [0, 3, 32, 32])), /a video must be \[frames >= 1, 3, 32, 32\]/);
      await assert.rejects(model.forward({ inputIds: tensor(new BigInt64Array([1n, 999n]), [1, 2]) }), /outside the vocabulary \[0, 128\)/);
      await assert.rejects(model.forward({ inputIds: inputs.input_ids }), /image id but no video/);
    });
  });
});
