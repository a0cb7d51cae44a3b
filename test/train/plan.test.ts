// lib/train/plan.ts and `tpo plan`: the memory planner against tpo's own models and measured peaks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensors } from '../../lib/model/safetensors.js';
import { tensor } from '../../lib/tensor.js';
import { VideoLM } from '../../lib/model/video-lm.js';
import { internvlFrameText } from '../../lib/model/session.js';
import { worldTokenizer } from '../../lib/synthetic/tokenizer.js';
import { internvlFrameTextTokens, modelShape, parameterCounts, parseGpus, planMemory, visualTokens } from '../../lib/train/plan.js';
import { FIXTURES, removeDir, ROOT, tempDir } from '../helpers.js';
import { type MeasureCase, measureStepPeak } from './plan-measure.js';

const HF = join(FIXTURES, 'hf');

/** A tiny LLaVA-Video config at the given language-model widths (SigLIP 64/8: 16 pooled tokens + 4 newlines a frame). */
function llava(hidden: number, intermediate: number, layers: number, heads: number, kvHeads: number, vocab: number) {
  return {
    architectures: ['LlavaQwenForCausalLM'], model_type: 'llava_qwen', vocab_size: vocab, hidden_size: hidden,
    intermediate_size: intermediate, num_hidden_layers: layers, num_attention_heads: heads, num_key_value_heads: kvHeads,
    max_position_embeddings: 8192, rope_theta: 10000, rms_norm_eps: 1e-6, tie_word_embeddings: false, hidden_act: 'silu',
    mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2, mm_patch_merge_type: 'spatial_unpad',
    mm_newline_position: 'grid', mm_spatial_pool_mode: 'average', mm_spatial_pool_stride: 2,
    vision_config: {
      model_type: 'siglip_vision_model', image_size: 64, patch_size: 8, hidden_size: 96, intermediate_size: 192,
      num_hidden_layers: 3, num_attention_heads: 4, num_hidden_layers_in_checkpoint: 2,
    },
  };
}

describe('memory planner', function () {
  this.timeout(900_000);

  it("counts every model's parameters and visual tokens as the native model has them", async () => {
    for (const name of ['qwen2', 'qwen2_tied', 'llava_video', 'llava_video_oddgrid', 'longva']) {
      const config = JSON.parse(readFileSync(join(HF, name, 'config.json'), 'utf8'));
      const shape = modelShape(config);
      const counts = parameterCounts(shape);
      using model = await VideoLM.load(join(HF, name));
      assert.equal(counts.language + counts.vision + counts.projector, model.info.parameters, name);
      if (shape.vision) {
        const pixels = (await readSafetensors(join(HF, name, 'inputs.safetensors'))).tensors.pixel_values!;
        for (const variant of [{}, { mm_newline_position: 'frame' }, { mm_newline_position: 'one_token' }, { mm_spatial_pool_mode: 'bilinear' }, { mm_patch_merge_type: 'flat' }]) {
          using m = await VideoLM.load(join(HF, name), { overrides: variant });
          const tokens = await m.encodeVideo(pixels);
          assert.equal(visualTokens(modelShape({ ...config, ...variant }), pixels.shape[0]!), tokens.shape[0], `${name} ${JSON.stringify(variant)}`);
        }
      }
    }
  });

  it('counts Video-LLaVA (both towers, LLaMA without biases) and VideoLLaMA3 (its merged grid) as the native model has them', async () => {
    for (const name of ['video_llava', 'video_llava_variant']) {
      const config = JSON.parse(readFileSync(join(HF, name, 'config.json'), 'utf8'));
      const shape = modelShape(config);
      const counts = parameterCounts(shape);
      using model = await VideoLM.load(join(HF, name));
      assert.equal(counts.language + counts.vision + counts.projector, model.info.parameters, name);
      const pixels = (await readSafetensors(join(HF, name, 'inputs.safetensors'))).tensors.pixel_values!;
      const frames = pixels.shape.length === 5 ? pixels.shape[1]! : pixels.shape[0]!;
      assert.equal(visualTokens(shape, frames), (await model.encodeVideo(pixels)).shape[0], name);
    }
    const dir = join(HF, 'video_llama3');
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    // The fixture's frames are 16 x 24, put through the processor's steps without resizing (a budget that keeps them).
    const shape = modelShape(config, 'config.json', { minPixels: 1 });
    using model = await VideoLM.load(dir);
    const counts = parameterCounts(shape);
    assert.equal(counts.language + counts.vision + counts.projector, model.info.parameters, 'video_llama3');
    const frames = (await readSafetensors(join(dir, 'inputs.safetensors'))).tensors.frames!;
    const [t, , h, w] = frames.shape as number[];
    const out = await model.forward({ inputIds: tensor(BigInt64Array.from([1n, -200n, 2n]), [1, 3]), pixelValues: frames });
    // Before its token compression (vision_features: every merged token); the compression only drops tokens.
    assert.equal(visualTokens(shape, t!, { height: h!, width: w! }), out.vision_features!.shape[0]);
    assert.ok((await model.encodeVideo(frames)).shape[0]! <= out.vision_features!.shape[0]!);
    // transformers' default budget (28 x 28 x 768 pixels a video): a 720p frame of 16 is resized to 140 x 252 (within
    // 37,632 pixels), 10 x 18 patches of 14, 5 x 9 merged tokens.
    const real = modelShape({ ...config, vision_config: { ...config.vision_config, patch_size: 14 } });
    assert.equal(visualTokens(real, 16), 16 * 5 * 9);
  });

  it('counts InternVL (InternViT, pixel_shuffle, its projector; Qwen2 or LLaMA) as the native model has them', async () => {
    for (const name of ['internvl', 'internvl_variant']) {
      const config = JSON.parse(readFileSync(join(HF, name, 'config.json'), 'utf8'));
      const shape = modelShape(config);
      const counts = parameterCounts(shape);
      using model = await VideoLM.load(join(HF, name));
      assert.equal(counts.language + counts.vision + counts.projector, model.info.parameters, name);
      const pixels = (await readSafetensors(join(HF, name, 'inputs.safetensors'))).tensors.pixel_values!;
      const frames = pixels.shape[0]!;
      // the tower's tokens alone (no frame text set), then with text of the lengths ModelSession's has around them
      assert.equal(visualTokens(shape, frames, undefined, { frameText: false }), (await model.encodeVideo(pixels)).shape[0], name);
      const text = internvlFrameText(worldTokenizer('internvl'), frames);
      model.setFrameText(text.map(({ before, after }) => ({ before: before.map(() => 1), after: after.map(() => 2) })));
      assert.equal(visualTokens(shape, frames), (await model.encodeVideo(pixels)).shape[0], name);
      assert.equal(visualTokens(shape, frames), model.videoTokenCount(frames), name);
    }
    // The frame text's length: the world's tokenizer writes "FrameN: " as Qwen2's does for N < 10 ("Frame", "N",
    // ":", " "); from frame 10 on Qwen2's writes a token a digit.
    const tokenizer = worldTokenizer('internvl');
    for (const frames of [1, 2, 9]) {
      assert.equal(internvlFrameText(tokenizer, frames).reduce((n, t) => n + t.before.length + t.after.length, 0), internvlFrameTextTokens(frames));
    }
    assert.equal(internvlFrameTextTokens(12) - internvlFrameTextTokens(9), 3 * (5 + 2 + 1));
    // InternVL3's 448 x 448 frames of 14 x 14 patches, pixel-shuffled by 2: 256 tokens a frame
    const internvl3 = { model_type: 'internvl', text_config: { model_type: 'qwen2', vocab_size: 151674, hidden_size: 896,
      intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2 } };
    assert.equal(visualTokens(modelShape(internvl3), 16, undefined, { frameText: false }), 16 * 256);
    assert.throws(() => modelShape({ ...internvl3, downsample_ratio: 0.3 }), /downsample_ratio \(0.3\) must be 1 \/ k/);
    assert.throws(() => modelShape({ ...internvl3, vision_config: { image_size: [448, 224] } }), /vision_config: image_size: .*square/);
  });

  it("counts Qwen2.5-VL as transformers builds it, and its video tokens as its processor makes them", () => {
    const dir = join(HF, 'qwen2_5_vl_processor');
    const reference = JSON.parse(readFileSync(join(dir, 'plan_counts.json'), 'utf8'));
    const cases = [
      { name: 'tiny', config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), counts: reference.tiny.counts },
      { name: 'qwen2.5-vl-7b', config: reference['qwen2.5-vl-7b'].config, counts: reference['qwen2.5-vl-7b'].counts },
    ];
    for (const c of cases) {
      const counts = parameterCounts(modelShape(c.config));
      assert.deepEqual({ vision: counts.vision, merger: counts.projector, language: counts.language - counts.lmHead, lm_head: counts.lmHead },
        { vision: c.counts.vision, merger: c.counts.merger, language: c.counts.language, lm_head: c.counts.lm_head }, c.name);
    }
    // The videos Qwen2_5_VLProcessor put through (processor_cases.json): the planner's tokens are its <|video_pad|> count.
    const seven = cases[1]!.config;
    const videos = JSON.parse(readFileSync(join(dir, 'processor_cases.json'), 'utf8')).videos as
      { height: number; width: number; options: Record<string, unknown>; indices: number[]; video_tokens: number }[];
    for (const v of videos) {
      const shape = modelShape(seven, 'config.json', { qwen25vl: v.options });
      assert.equal(visualTokens(shape, v.indices.length, { height: v.height, width: v.width }), v.video_tokens, JSON.stringify(v.options));
    }
    // transformers' defaults: a 720p frame is resized to 560 x 1008 (within 602,112 pixels), 40 x 72 patches, 20 x 36
    // tokens per temporal patch of two frames
    assert.equal(visualTokens(modelShape(seven), 16), 8 * 20 * 36);
    assert.throws(() => modelShape(seven, 'config.json', { qwen25vl: { merge_size: 0 } }), /video processor config: merge_size/);
  });

  it('knows LLaVA-Video-7B: 8.03 B parameters, 210 tokens a frame, LoRA r 128 = 323 M', () => {
    const shape = modelShape(JSON.parse(readFileSync(join(ROOT, 'docs', 'plan', 'llava-video-7b-qwen2', 'config.json'), 'utf8')));
    const c = parameterCounts(shape);
    // Qwen2-7B (7.62 B with its untied head) and 26 layers of SigLIP-so400m (0.40 B) and the projector.
    assert.equal(Math.round((c.language + c.vision + c.projector) / 1e7) / 100, 8.03);
    assert.equal(visualTokens(shape, 64), 64 * 14 * 15);
    // PEFT's count for r 128 on q, k, v, o, gate, up and down of Qwen2-7B.
    // Per layer: q and o 3584 + 3584 wide, k and v 3584 + 512, gate, up and down 3584 + 18944.
    assert.equal(planMemory(shape, { lora: { r: 128 }, frames: 64 }).trainable, 28 * 128 * (2 * 7168 + 2 * 4096 + 3 * 22528));
  });

  it('parses --gpus', () => {
    assert.deepEqual(parseGpus('8x80GB').count, 8);
    assert.equal(parseGpus('1x141GB').bytes, 141 * 1024 ** 3);
    assert.throws(() => parseGpus('eighty'), /expected COUNTxSIZE/);
  });

  // Three scaled configurations run for real, each in its own process: the planner's activations and gradients
  // (float32 on the CPU, no autocast) against the peak the second step adds to the process.
  const cases: (MeasureCase & { what: string })[] = [
    { what: 'LoRA r 16, 96 frames, no checkpointing', config: llava(256, 704, 4, 8, 2, 2048), frames: 96, promptTokens: 48, answerTokens: 32, pairs: 1, lora: { r: 16 }, checkpointing: false },
    { what: 'LoRA r 64, 2 pairs of 64 frames, activation checkpointing', config: llava(384, 1024, 4, 6, 2, 4096), frames: 64, promptTokens: 64, answerTokens: 48, pairs: 2, lora: { r: 64 }, checkpointing: true },
    { what: 'full fine-tune, 64 frames, no checkpointing', config: llava(320, 896, 3, 5, 1, 3072), frames: 64, promptTokens: 40, answerTokens: 40, pairs: 1, checkpointing: false },
  ];
  for (const c of cases) {
    it(`predicts the measured step peak within 15%: ${c.what}`, () => {
      const plan = planMemory(modelShape(c.config), {
        dtype: 'float32', lora: c.lora, frames: c.frames, promptTokens: c.promptTokens, answerTokens: c.answerTokens,
        batchSize: c.pairs, reference: c.lora ? 'lora-disabled' : 'none', autocast: false,
      });
      // The peak above what persists (the process had the weights and the optimizer state before the step).
      const predicted = plan.activations.find((a) => a.checkpointing === c.checkpointing)!.bytes;
      const measured = measureStepPeak(c);
      const error = (predicted - measured) / measured;
      console.log(`      ${c.what}: predicted ${(predicted / 2 ** 20).toFixed(1)} MiB, measured ${(measured / 2 ** 20).toFixed(1)} MiB (${(100 * error).toFixed(1)}%)`);
      assert.ok(Math.abs(error) <= 0.15,
        `predicted ${(predicted / 2 ** 20).toFixed(1)} MiB, measured ${(measured / 2 ** 20).toFixed(1)} MiB (${(100 * error).toFixed(1)}%)`);
    });
  }

  it('tpo plan prints each device setting and whether it fits', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'lib', 'cli', 'main.js'), 'plan', '--config', join(ROOT, 'docs', 'plan', 'run-lora.json'),
      '--gpus', '1x80GB', '--gpus', '8x80GB', '--json'], { encoding: 'utf8', cwd: ROOT });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { rows: { gpus: string; fits: { checkpointing: boolean; fits: boolean }[] }[] };
    assert.deepEqual(out.rows.map((row) => row.gpus), ['1 x 80 GB', '8 x 80 GB']);
    const bad = spawnSync(process.execPath, [join(ROOT, 'dist', 'lib', 'cli', 'main.js'), 'plan', '--config', join(ROOT, 'docs', 'plan', 'run-lora.json'), '--gpus', 'lots'],
      { encoding: 'utf8', cwd: ROOT });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--gpus 'lots': expected COUNTxSIZE/);
  });

  it("tpo plan reads a Qwen2.5-VL folder's video processor config, naming the file and field it refuses", () => {
    const dir = tempDir('tpo-plan-qwen25vl-');
    try {
      const seven = JSON.parse(readFileSync(join(HF, 'qwen2_5_vl_processor', 'plan_counts.json'), 'utf8'))['qwen2.5-vl-7b'].config;
      writeFileSync(join(dir, 'config.json'), JSON.stringify(seven));
      // Qwen2.5-VL-7B-Instruct's preprocessor_config.json budget: 720p frames become 728 x 1288, 26 x 46 tokens a
      // temporal patch of two frames
      writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ min_pixels: 3136, max_pixels: 12845056, image_processor_type: 'Qwen2VLImageProcessor' }));
      writeFileSync(join(dir, 'run.json'), JSON.stringify({ model: dir, output: join(dir, 'run'), data: { train: join(dir, 'pairs.jsonl') }, lora: { r: 64, alpha: 128 }, frames: 32 }));
      const plan = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'dist', 'lib', 'cli', 'main.js'), 'plan', '--config', join(dir, 'run.json'), ...args], { encoding: 'utf8' });
      const r = plan('--json');
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { rows: { plan: { visualTokens: number; parameters: number } }[] };
      assert.equal(out.rows[0]!.plan.visualTokens, 16 * 26 * 46);
      assert.equal(out.rows[0]!.plan.parameters, 8_292_166_656);
      writeFileSync(join(dir, 'video_preprocessor_config.json'), JSON.stringify({ size: { shortest_edge: 'small' } }));
      const bad = plan();
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /video_preprocessor_config\.json: size\.shortest_edge/);
    } finally {
      removeDir(dir);
    }
  });
});
