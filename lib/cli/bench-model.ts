// `tpo bench model`: the video LMM's speed on a documented small LLaVA-Video-shaped config, each figure beside a
// baseline measured in the same run (the machine's matmul rate; generation without the KV cache).
import { VideoLM } from '../model/video-lm.js';
import { benchMatmul } from '../runtime.js';
import { tensor } from '../tensor.js';
import type { BenchRow } from './bench.js';

/** SigLIP-style tower on 64x64 frames (8x8 patches) -> mlp2x_gelu -> 2x2 average pool + grid newlines -> Qwen2. */
export const BENCH_CONFIG = {
  model_type: 'llava_qwen', vocab_size: 2048, hidden_size: 256, intermediate_size: 704, num_hidden_layers: 4,
  num_attention_heads: 8, num_key_value_heads: 2, max_position_embeddings: 4096, rope_theta: 1e6, rms_norm_eps: 1e-6,
  tie_word_embeddings: false, mm_hidden_size: 192, mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2,
  mm_vision_select_feature: 'patch', mm_patch_merge_type: 'spatial_unpad', mm_newline_position: 'grid',
  mm_spatial_pool_mode: 'average', mm_spatial_pool_stride: 2,
  vision_config: {
    model_type: 'siglip_vision_model', image_size: 64, patch_size: 8, hidden_size: 192, intermediate_size: 768,
    num_hidden_layers: 4, num_attention_heads: 4, hidden_act: 'gelu_pytorch_tanh',
  },
};
const FRAMES = 16;
const PROMPT_TEXT = 64;

async function timed<T>(f: () => Promise<T>, repeats: number): Promise<number> {
  await f();  // warm-up
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const started = performance.now();
    await f();
    times.push((performance.now() - started) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

export async function benchModel(): Promise<BenchRow[]> {
  using model = await VideoLM.create(BENCH_CONFIG, { seed: 0 });
  const pixels = tensor(new Float32Array(FRAMES * 3 * 64 * 64).map((_, i) => Math.sin(i) * 0.5), [FRAMES, 3, 64, 64]);
  const videoTokens = await model.encodeVideo(pixels);
  const visual = videoTokens.shape[0]!;
  const promptIds = [...Array.from({ length: 8 }, (_, i) => 10 + i), -200, ...Array.from({ length: PROMPT_TEXT }, (_, i) => 100 + i)];
  const prompt = tensor(BigInt64Array.from(promptIds.map(BigInt)), [promptIds.length]);
  const sequence = promptIds.length - 1 + visual;
  const matmul = await benchMatmul({ size: 1024, seconds: 1 });

  const vision = await timed(() => model.encodeVideo(pixels), 3);
  const forward = await timed(() => model.forward({ inputIds: prompt.reshape([1, promptIds.length]), pixelValues: pixels }), 3);
  const newTokens = 32;
  const batch = [prompt, prompt, prompt, prompt];
  const cached = await timed(() => model.generate({ prompts: batch, videoTokens, maxNewTokens: newTokens }), 2);
  const uncached = await timed(() => model.generate({ prompts: batch, videoTokens, maxNewTokens: newTokens, useCache: false }), 1);

  // About 2 FLOP per weight per position (attention's own work is small at this length); counting the tower's
  // weights too makes this an upper bound on the work, so the ratio to matmul is an upper bound on utilisation.
  const forwardGflops = (2 * model.info.parameters * sequence) / forward / 1e9;
  const rate = (n: number, s: number) => n / s;
  return [
    { name: `vision: ${FRAMES} frames 64x64 -> ${visual} tokens`, baseline: 'matmul 1024', unit: 'frames/s',
      value: rate(FRAMES, vision), baselineValue: matmul.gflops, baselineUnit: 'GFLOP/s', ratio: NaN },
    { name: `forward: ${sequence} positions, frames encoded in the call`, baseline: `matmul 1024 (ratio: est. utilisation)`,
      unit: 'tokens/s', value: rate(sequence, forward), baselineValue: matmul.gflops, baselineUnit: 'GFLOP/s',
      ratio: forwardGflops / matmul.gflops },
    { name: `generate: 4 x ${newTokens} tokens, KV cache`, baseline: 'no cache (a full forward per token)', unit: 'tokens/s',
      value: rate(4 * newTokens, cached), baselineValue: rate(4 * newTokens, uncached), ratio: uncached / cached },
  ];
}
