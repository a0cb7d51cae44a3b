// native/model/config.cc: config.json fields that would make a model fail later with a raw libtorch message, or
// run and give silently wrong numbers (a negative eps, theta <= 0), are errors at load naming the file and field.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { VideoLM } from '../../lib/index.js';
import { FIXTURES, removeDir, tempDir } from '../helpers.js';

const HF = join(FIXTURES, 'hf');
type Json = Record<string, unknown>;
const base = (name: string): Json => JSON.parse(readFileSync(join(HF, name, 'config.json'), 'utf8')) as Json;
const withVision = (config: Json, vision: Json): Json => ({ ...config, vision_config: { ...(config.vision_config as Json), ...vision } });

// [what, the config's change, the field the error must name, what it must say]
const CASES: [string, (c: Json) => Json, string, RegExp][] = [
  ['head_dim 0', (c) => ({ ...c, head_dim: 0 }), 'head_dim', /must be positive, got 0/],
  ['a negative head_dim', (c) => ({ ...c, head_dim: -16 }), 'head_dim', /must be positive/],
  ['an odd head_dim', (c) => ({ ...c, head_dim: 15 }), 'head_dim', /must be even/],
  ['heads not dividing hidden_size', (c) => ({ ...c, num_attention_heads: 3, num_key_value_heads: 1 }), 'hidden_size', /\(64\) must be divisible by num_attention_heads \(3\)/],
  ['KV heads not dividing the heads', (c) => ({ ...c, num_key_value_heads: 3 }), 'num_key_value_heads', /\(3\) must divide num_attention_heads \(4\)/],
  ['more KV heads than heads', (c) => ({ ...c, num_key_value_heads: 8 }), 'num_key_value_heads', /must divide/],
  ['vocab_size 0', (c) => ({ ...c, vocab_size: 0 }), 'vocab_size', /must be positive/],
  ['a negative hidden_size', (c) => ({ ...c, hidden_size: -64 }), 'hidden_size', /must be positive/],
  ['no layers', (c) => ({ ...c, num_hidden_layers: 0 }), 'num_hidden_layers', /must be positive/],
  ['an absurd intermediate_size', (c) => ({ ...c, intermediate_size: 2 ** 40 }), 'intermediate_size', /implausibly large/],
  ['max_position_embeddings 0', (c) => ({ ...c, max_position_embeddings: 0 }), 'max_position_embeddings', /must be positive/],
  ['a negative rms_norm_eps', (c) => ({ ...c, rms_norm_eps: -1e-6 }), 'rms_norm_eps', /positive finite number/],
  ['rope_theta 0', (c) => ({ ...c, rope_theta: 0 }), 'rope_theta', /positive finite number/],
  ['a negative rope_theta', (c) => ({ ...c, rope_theta: -10000 }), 'rope_theta', /positive finite number/],
  ['an activation Qwen2 does not have', (c) => ({ ...c, hidden_act: 'gelu' }), 'hidden_act', /'gelu' is not supported/],
  ['a sliding window', (c) => ({ ...c, use_sliding_window: true, sliding_window: 64 }), 'use_sliding_window', /not supported/],
  ['an integer field given as a float', (c) => ({ ...c, hidden_size: 64.5 }), 'hidden_size', /must be an integer/],
  ['image_token_index inside the vocabulary', (c) => ({ ...c, image_token_index: 5 }), 'image_token_index', /\(5\) is a token of the vocabulary \[0, 128\)/],
  ['image_token_index 0', (c) => ({ ...c, image_token_index: 0 }), 'image_token_index', /is a token of the vocabulary/],
  ['num_channels 0', (c) => withVision(c, { num_channels: 0 }), 'vision_config.num_channels', /must be positive/],
  ['vision heads not dividing its hidden size', (c) => withVision(c, { num_attention_heads: 5 }), 'vision_config.hidden_size', /\(48\) must be divisible by num_attention_heads \(5\)/],
  ['a patch larger than the image', (c) => withVision(c, { patch_size: 64 }), 'vision_config.patch_size', /\(64\) is larger than image_size \(32\)/],
  ['a negative layer_norm_eps', (c) => withVision(c, { layer_norm_eps: -1 }), 'vision_config.layer_norm_eps', /positive finite number/],
  ['more layers in the checkpoint than the tower has', (c) => withVision(c, { num_hidden_layers_in_checkpoint: 5 }), 'vision_config.num_hidden_layers_in_checkpoint', /\[1, num_hidden_layers = 3\], got 5/],
  ['a pool stride larger than the grid', (c) => ({ ...c, mm_spatial_pool_stride: 8 }), 'mm_spatial_pool_stride', /\(8\) is larger than the tower's 4x4 patch grid/],
  ['a pool stride of 0', (c) => ({ ...c, mm_spatial_pool_stride: 0 }), 'mm_spatial_pool_stride', /must be positive/],
  ['a select layer outside the tower', (c) => ({ ...c, mm_vision_select_layer: -10 }), 'mm_vision_select_layer', /\(-10\) is outside the tower's 3 layers/],
  ['a select layer past the stored layers', (c) => ({ ...c, mm_vision_select_layer: 3 }), 'mm_vision_select_layer', /needs 3 vision layers; the checkpoint holds 2/],
  ['grid newlines without image_newline', (c) => ({ ...c, mm_patch_merge_type: 'spatial' }), 'mm_newline_position', /grid needs image_newline, which mm_patch_merge_type spatial does not create/],
  ['mm_hidden_size unlike the tower', (c) => ({ ...c, mm_hidden_size: 50 }), 'mm_hidden_size', /\(50\) differs from the vision tower's hidden_size \(48\)/],
];

describe('model configs', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = tempDir('tpo-config-');
  });
  afterEach(() => removeDir(dir));

  /** A model folder with the fixture's weights and `config` as config.json. */
  function folder(name: string, config: Json | string): string {
    const out = join(dir, name.replace(/\W+/g, '-'));
    mkdirSync(out);
    copyFileSync(join(HF, 'llava_video', 'model.safetensors'), join(out, 'model.safetensors'));
    writeFileSync(join(out, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
    return out;
  }

  it('the fixture config itself loads', async () => {
    using model = await VideoLM.load(folder('ok', base('llava_video')));
    assert.equal(model.info.architecture, 'LlavaQwenForCausalLM');
  });

  for (const [what, change, field, message] of CASES) {
    it(`refuses ${what}, naming config.json and ${field}`, async () => {
      const path = folder(what, change(base('llava_video')));
      const file = join(path, 'config.json');
      await assert.rejects(VideoLM.load(path), (e: Error) => {
        assert.ok(e.message.includes(`${file}: ${field} `), `names ${file} and ${field}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      });
      // The same config without a checkpoint (modelCreate) is refused by the same parser.
      await assert.rejects(VideoLM.create(change(base('llava_video'))), (e: Error) => e.message.includes(`config: ${field} `));
    });
  }

  it("refuses CLIP's class token with video pooling (LongVA's tower)", async () => {
    const config = { ...base('longva'), mm_vision_select_feature: 'cls_patch' };
    await assert.rejects(VideoLM.create(config), /config: mm_vision_select_feature cls_patch keeps CLIP's class token/);
  });

  it('refuses a bad initializer_range and JSON nested past any config', async () => {
    await assert.rejects(VideoLM.create({ ...base('qwen2'), initializer_range: 'wide' }), /initializer_range must be a finite number >= 0/);
    await assert.rejects(VideoLM.create({ ...base('qwen2'), initializer_range: -1 }), /initializer_range must be a finite number >= 0/);
    const deep = JSON.stringify(base('llava_video')).replace(/}$/, `, "x": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    await assert.rejects(VideoLM.load(folder('deep', deep)), /config\.json: JSON nested deeper than 64 levels/);
  });
});
