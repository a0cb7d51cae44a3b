// Vision towers as transformers writes them: SigLIP (patch conv with bias, learned positions, no class token,
// tanh-GELU, post-layernorm) and CLIP ViT (class token, patch conv without bias, pre-layernorm, quick-GELU).
// VideoLLaMA3's encoder (VideoLlama3VisionModel) is SigLIP's blocks over variable-size patch grids: no learned
// positions but axial 2D RoPE on q and k, each frame attending within itself, then pixel_unshuffle's downsampling.
// Module names match the checkpoints' keys (vision_model.embeddings.patch_embedding.weight, ...).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/config.h"
#include "model/parameters.h"

namespace tpo::model {

class VisionEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit VisionEmbeddingsImpl(const VisionConfig& config);
  // [F, 3, H, W] -> [F, tokens, hidden]; VideoLlama3: flattened patches [N, 3*p*p] -> [N, hidden]
  torch::Tensor forward(const torch::Tensor& pixel_values);
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};
  torch::Tensor class_embedding;  // CLIP only

 private:
  VisionConfig config_;
};
TORCH_MODULE(VisionEmbeddings);

class VisionAttentionImpl : public torch::nn::Module {
 public:
  explicit VisionAttentionImpl(const VisionConfig& config);
  // x [B, N, D]; with rope (VideoLLaMA3), cos and sin [N, head_dim] rotate q and k (apply_rotary_pos_emb_vision).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos = {}, const torch::Tensor& sin = {});
  Dense q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_, head_dim_;
};
TORCH_MODULE(VisionAttention);

// apply_rotary_pos_emb_vision: in float32 whatever the weights' dtype, as transformers does. x [..., N, H, hd],
// cos and sin [N, hd].
torch::Tensor rotate_vision(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// ACT2FN[name] for the activations towers and projectors use (config.h's Activation).
torch::Tensor activate(Activation act, const torch::Tensor& x);

class VisionMLPImpl : public torch::nn::Module {
 public:
  explicit VisionMLPImpl(const VisionConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  Dense fc1{nullptr}, fc2{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(VisionMLP);

class VisionEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit VisionEncoderLayerImpl(const VisionConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos = {}, const torch::Tensor& sin = {});
  VisionAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  VisionMLP mlp{nullptr};
};
TORCH_MODULE(VisionEncoderLayer);

class VisionEncoderImpl : public torch::nn::Module {
 public:
  VisionEncoderImpl(const VisionConfig& config, int64_t layers);
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(VisionEncoder);

struct VisionOutput {
  std::vector<torch::Tensor> hidden_states;  // transformers' output_hidden_states: the embeddings (after CLIP's
                                             // pre-layernorm), then each layer's output
  torch::Tensor last_hidden_state;           // SigLIP: post_layernorm(last); CLIP: the last layer's raw output
};

// SiglipVisionTransformer / CLIPVisionTransformer. `layers`: how many to build (LLaVA-NeXT saves SigLIP without
// its last layer); `run_layers`: how many to run (feature selection needs no more).
class VisionTransformerImpl : public torch::nn::Module {
 public:
  VisionTransformerImpl(const VisionConfig& config, int64_t layers);
  VisionOutput forward(const torch::Tensor& pixel_values, int64_t run_layers = -1);
  const VisionConfig& config() const { return config_; }
  int64_t layer_count() const { return static_cast<int64_t>(encoder->layers->size()); }

  // Recompute each encoder layer's activations in the backward pass (when the tower trains).
  bool gradient_checkpointing = false;

  VisionEmbeddings embeddings{nullptr};
  torch::nn::LayerNorm pre_layrnorm{nullptr};  // CLIP only (transformers spells it so)
  VisionEncoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};

 private:
  VisionConfig config_;
};
TORCH_MODULE(VisionTransformer);

// SiglipVisionModel / CLIPVisionModel: the transformer under `vision_model`.
class VisionModelImpl : public torch::nn::Module {
 public:
  VisionModelImpl(const VisionConfig& config, int64_t layers);
  VisionTransformer vision_model{nullptr};
};
TORCH_MODULE(VisionModel);

// One video's patches as VideoLLaMA3's processor lays them out (patchify): grid [t, h, w] of patches, each
// merge x merge block of patches contiguous (block-major), each patch's pixels (channel, y, x) flattened.
struct PatchGrid {
  int64_t t = 0, h = 0, w = 0, merge = 1;
};

// VideoLlama3VisionModel: embeddings (the patch conv) -> encoder (SigLIP layers with 2D RoPE, per frame) ->
// post_layernorm -> pixel_unshuffle (bilinear downsampling of each frame by merge, to raster order).
class VideoLlama3VisionModelImpl : public torch::nn::Module {
 public:
  explicit VideoLlama3VisionModelImpl(const VisionConfig& config);
  // patches [t*h*w, C*p*p] -> [t * (h/merge) * (w/merge), hidden]
  torch::Tensor forward(const torch::Tensor& patches, const PatchGrid& grid);
  const VisionConfig& config() const { return config_; }
  bool gradient_checkpointing = false;

  VisionEmbeddings embeddings{nullptr};
  VisionEncoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};

 private:
  VisionConfig config_;
};
TORCH_MODULE(VideoLlama3VisionModel);

// Refuses a grid that is not positive or not a multiple of its merge size, and patches that do not fill it.
void check_patch_grid(const torch::Tensor& patches, const PatchGrid& grid);

// VideoLlama3VisionRotaryEmbedding for one frame's grid, in the block-major patch order: cos and sin [h*w, head_dim].
// Qwen2_5_VLVisionRotaryEmbedding is the same axial RoPE over the same order (model/qwen2_5_vl.cc).
std::pair<torch::Tensor, torch::Tensor> video_llama3_rotary(const VisionConfig& config, const PatchGrid& grid,
                                                            torch::Device device);
// The processor's patchify: frames [t, C, H, W] (H, W multiples of patch * merge) -> patches [t*h*w, C*p*p].
torch::Tensor video_llama3_patchify(const torch::Tensor& frames, int64_t patch, int64_t merge);
// VideoLlama3VideoProcessor._get_compression_mask: per merged token, whether it is kept (the first frame whole;
// later tokens whose patches changed by more than 0.1 of 255 on average; at least one token a frame).
torch::Tensor video_llama3_compression_mask(const torch::Tensor& patches, const PatchGrid& grid);

}  // namespace tpo::model
