// Qwen2.5-VL's vision side as transformers' modeling_qwen2_5_vl.py writes it: Qwen2_5_VisionTransformerPretrainedModel
// (patch_embed: a Conv3d over temporal_patch_size frames x patch_size^2 pixels; 2D vision RoPE; blocks of RMSNorm,
// attention within windows of window_size pixels, or over the whole frame in fullatt_block_indexes, RMSNorm and a
// SwiGLU MLP with biases; the tokens reordered window by window (window_index) before the blocks and back after
// the merger) and Qwen2_5_VLPatchMerger (RMSNorm, merge_size^2 patches side by side, Linear, GELU, Linear). The
// RMSNorm is Qwen2's (model/qwen2.h), the axial RoPE and its rotation VideoLLaMA3's (model/vision.h): the same
// computations. Module names are the checkpoint's (visual.patch_embed.proj.weight, visual.blocks.N.attn.qkv.*,
// visual.merger.mlp.0.*, ...). The language model's M-RoPE is the decoder's (model/qwen2.h, position ids [3, B, L]);
// qwen2_5_vl_rope_positions gives a video's.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/config.h"
#include "model/parameters.h"
#include "model/qwen2.h"
#include "model/vision.h"

namespace tpo::model {

// Qwen2_5_VisionPatchEmbed: proj is a Conv3d without bias whose kernel is its stride, over inputs exactly one kernel
// in size: each patch's [C, temporal, p, p] pixels times the kernel, which is a linear layer on the flattened patch.
class Qwen2_5_VisionPatchEmbedImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VisionPatchEmbedImpl(const VisionConfig& config);
  // patches [N, C * temporal * p * p] -> [N, hidden]
  torch::Tensor forward(const torch::Tensor& patches);
  torch::Tensor proj_weight;  // [hidden, C, temporal, p, p], as proj.weight

 private:
  VisionConfig config_;
};
TORCH_MODULE(Qwen2_5_VisionPatchEmbed);

// Qwen2_5_VLVisionAttention: qkv (one Linear, biases) and proj; each segment (window or frame) attends within itself.
class Qwen2_5_VLVisionAttentionImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VLVisionAttentionImpl(const VisionConfig& config);
  // x [N, D]; cos, sin [N, head_dim]; segments: consecutive lengths summing to N.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const std::vector<int64_t>& segments);
  Dense qkv{nullptr}, proj{nullptr};

 private:
  int64_t heads_, head_dim_;
};
TORCH_MODULE(Qwen2_5_VLVisionAttention);

// Qwen2_5_VLMLP(bias=True): down_proj(act(gate_proj(x)) * up_proj(x)).
class Qwen2_5_VLMLPImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VLMLPImpl(const VisionConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  Dense gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(Qwen2_5_VLMLP);

class Qwen2_5_VLVisionBlockImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VLVisionBlockImpl(const VisionConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const std::vector<int64_t>& segments);
  Qwen2RMSNorm norm1{nullptr}, norm2{nullptr};
  Qwen2_5_VLVisionAttention attn{nullptr};
  Qwen2_5_VLMLP mlp{nullptr};
};
TORCH_MODULE(Qwen2_5_VLVisionBlock);

// Qwen2_5_VLPatchMerger: ln_q, then merge_size^2 consecutive tokens side by side through mlp (Linear, GELU, Linear).
class Qwen2_5_VLPatchMergerImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VLPatchMergerImpl(const VisionConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  Qwen2RMSNorm ln_q{nullptr};
  torch::nn::Sequential mlp{nullptr};

 private:
  int64_t merged_width_;
};
TORCH_MODULE(Qwen2_5_VLPatchMerger);

// One video's grid of patches: t temporal patches (temporal_patch_size frames each), h x w patches a frame.
struct Qwen2_5_VLGrid {
  int64_t t = 0, h = 0, w = 0;
};

// get_vision_window_index for one video: the merged tokens' order window by window (window_index, [t*h/m*w/m]),
// and each window's length in patches (cu_window_seqlens' differences, empty windows dropped).
struct Qwen2_5_VLWindows {
  torch::Tensor index;
  std::vector<int64_t> lengths;
};
Qwen2_5_VLWindows qwen2_5_vl_windows(const VisionConfig& config, const Qwen2_5_VLGrid& grid);

struct Qwen2_5_VLVisionOutput {
  torch::Tensor last_hidden_state;  // [N, hidden], the last block's output in window order
  torch::Tensor pooler_output;      // [N / m^2, out_hidden], the merger's output in raster order (t, h, w)
};

// Qwen2_5_VisionTransformerPretrainedModel, under `visual`.
class Qwen2_5_VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VisionTransformerImpl(const VisionConfig& config);
  // patches [t*h*w, C * temporal * p * p] in the processor's order (merge x merge blocks contiguous)
  Qwen2_5_VLVisionOutput forward(const torch::Tensor& patches, const Qwen2_5_VLGrid& grid);
  const VisionConfig& config() const { return config_; }
  bool gradient_checkpointing = false;

  Qwen2_5_VisionPatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  Qwen2_5_VLPatchMerger merger{nullptr};

 private:
  VisionConfig config_;
};
TORCH_MODULE(Qwen2_5_VisionTransformer);

// Refuses a grid that is not positive or whose h and w are not multiples of spatial_merge_size, and patches that
// do not fill it.
void check_qwen2_5_vl_grid(const VisionConfig& config, const torch::Tensor& patches, const Qwen2_5_VLGrid& grid);

// Qwen2VLVideoProcessor's patchify of resized, normalised frames [T, C, H, W] (H, W multiples of patch x merge):
// T padded to a multiple of temporal_patch_size by repeating the last frame, then [t*h*w, C * temporal * p * p].
torch::Tensor qwen2_5_vl_patchify(const VisionConfig& config, const torch::Tensor& frames, Qwen2_5_VLGrid& grid);

// A video's M-RoPE positions (model/qwen2.h's VideoRope), from its first position (get_vision_position_ids with start
// 0): temporal floor(i * tokens_per_second * second_per_grid_t), height, width, in the merged tokens' raster order;
// the text after it starts max(h/m, w/m) after its first position, as transformers 5.18's get_rope_index advances.
VideoRope qwen2_5_vl_rope_positions(const VisionConfig& config, const Qwen2_5_VLGrid& grid, double second_per_grid_t);

}  // namespace tpo::model
