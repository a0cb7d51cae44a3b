// What `tpo plan` predicts for tpo-check's bench (native/check/device_check.cc bench_shape "full"): written beside the
// device check's report so the measured peak CUDA memory of each mode can be set against the planner's.
//   node dist/scripts/device-check/plan-bench.js > scripts/device-check/plan-bench.json
import { CUDA_OVERHEAD, modelShape, planMemory } from '../../lib/train/plan.js';

// The bench's model: Qwen2-7B's widths with 4 layers, SigLIP-so400m (26 layers kept), 2x2 average pooling, no newline.
const config = {
  model_type: 'llava_qwen', vocab_size: 152064, hidden_size: 3584, intermediate_size: 18944, num_hidden_layers: 4,
  num_attention_heads: 28, num_key_value_heads: 4, tie_word_embeddings: false, mm_vision_tower: 'google/siglip-so400m-patch14-384',
  mm_projector_type: 'mlp2x_gelu', mm_patch_merge_type: 'flat', mm_newline_position: 'no_token', mm_spatial_pool_mode: 'average',
  mm_spatial_pool_stride: 2,
};
const shape = modelShape(config);
const plan = planMemory(shape, {
  dtype: 'bfloat16', autocast: true, lora: { r: 128 }, reference: 'lora-disabled', frames: 64, promptTokens: 64, answerTokens: 64,
  batchSize: 1,
});
const persistent = plan.persistent.reduce((s, t) => s + t.bytes, 0);
const GiB = 1024 ** 3;
console.log(JSON.stringify({
  what: "tpo plan's prediction for tpo-check's bench (the process's peak allocated CUDA memory: what persists + the step's peak)",
  visualTokens: plan.visualTokens,
  parameters: plan.parameters,
  trainable: plan.trainable,
  persistentGiB: persistent / GiB,
  modes: plan.activations.map((a) => ({ checkpointing: a.checkpointing, stepPeakGiB: a.bytes / GiB, phase: a.phase, predictedPeakAllocatedGiB: (persistent + a.bytes) / GiB })),
  cudaOverheadGiB: CUDA_OVERHEAD / GiB,
}, null, 2));
