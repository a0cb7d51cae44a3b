// Vision towers as transformers writes them: SigLIP (patch conv with bias, learned positions, no class token,
// tanh-GELU, post-layernorm) and CLIP ViT (class token, patch conv without bias, pre-layernorm, quick-GELU).
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
  torch::Tensor forward(const torch::Tensor& pixel_values);  // [F, 3, H, W] -> [F, tokens, hidden]
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
  torch::Tensor forward(const torch::Tensor& x);
  Dense q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_, head_dim_;
};
TORCH_MODULE(VisionAttention);

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
  torch::Tensor forward(const torch::Tensor& x);
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

}  // namespace tpo::model
