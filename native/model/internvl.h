// InternVL as transformers' modeling_internvl.py writes it (InternVL3-*-hf; InternVideo2.5's architecture):
// InternVLVisionModel (InternViT: patch conv, class token, learned absolute positions, pre-norm layers with layer
// scale lambda_1 / lambda_2, optional qk-norm, LayerNorm or RMSNorm), InternVLModel.pixel_shuffle and
// InternVLMultiModalProjector (LayerNorm, Linear, act, Linear). The MLP is SigLIP/CLIP's (model/vision.h), the
// RMSNorm Qwen2's (model/qwen2.h): the same computations.
//
// Module names are the checkpoint's (model.vision_tower.embeddings.cls_token, ...encoder.layer.N.attention.q_proj,
// ...), but for the projector: tpo's LLaVA name for it (model.mm_projector.0 / .2 for linear_1 / linear_2, and
// model.mm_projector.layer_norm), so that one rename table (model/weights.cc) maps LLaVA's and InternVL's
// transformers keys (model.multi_modal_projector.*) alike.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/config.h"
#include "model/parameters.h"
#include "model/qwen2.h"
#include "model/vision.h"

namespace tpo::model {

// InternVLVisionPatchEmbeddings: the patch conv under `projection`.
class InternVLVisionPatchEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit InternVLVisionPatchEmbeddingsImpl(const VisionConfig& config);
  torch::nn::Conv2d projection{nullptr};
};
TORCH_MODULE(InternVLVisionPatchEmbeddings);

// InternVLVisionEmbeddings: [F, 3, S, S] -> cls_token, then the patches, + position_embeddings -> [F, 1 + g*g, D].
class InternVLVisionEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit InternVLVisionEmbeddingsImpl(const VisionConfig& config);
  torch::Tensor forward(const torch::Tensor& pixel_values);
  torch::Tensor cls_token;            // [1, 1, D]
  torch::Tensor position_embeddings;  // [1, 1 + g*g, D]
  InternVLVisionPatchEmbeddings patch_embeddings{nullptr};

 private:
  VisionConfig config_;
};
TORCH_MODULE(InternVLVisionEmbeddings);

// InternVLVisionAttention: q, k, v (biases as attention_bias), q_norm / k_norm (RMSNorm over the whole width, eps
// 1e-6) when use_qk_norm, projection_layer.
class InternVLVisionAttentionImpl : public torch::nn::Module {
 public:
  explicit InternVLVisionAttentionImpl(const VisionConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  Dense q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, projection_layer{nullptr};
  Qwen2RMSNorm q_norm{nullptr}, k_norm{nullptr};

 private:
  int64_t heads_, head_dim_;
};
TORCH_MODULE(InternVLVisionAttention);

// InternVLVisionLayer: h = x + lambda_1 * attention(layernorm_before(x)); h + lambda_2 * mlp(layernorm_after(h)).
class InternVLVisionLayerImpl : public torch::nn::Module {
 public:
  explicit InternVLVisionLayerImpl(const VisionConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  InternVLVisionAttention attention{nullptr};
  VisionMLP mlp{nullptr};
  // NORM2FN[norm_type]: layer_norm or rms_norm (one of each pair exists, under the checkpoint's name)
  torch::nn::LayerNorm layernorm_before{nullptr}, layernorm_after{nullptr};
  Qwen2RMSNorm rms_before{nullptr}, rms_after{nullptr};
  torch::Tensor lambda_1, lambda_2;
};
TORCH_MODULE(InternVLVisionLayer);

class InternVLVisionEncoderImpl : public torch::nn::Module {
 public:
  explicit InternVLVisionEncoderImpl(const VisionConfig& config);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(InternVLVisionEncoder);

// InternVLVisionModel: embeddings -> encoder -> layernorm (none when use_mean_pooling, transformers' default).
class InternVLVisionModelImpl : public torch::nn::Module {
 public:
  explicit InternVLVisionModelImpl(const VisionConfig& config);
  // hidden_states as transformers' output_hidden_states (the embeddings, then each layer's output) up to
  // `run_layers` layers; last_hidden_state (after layernorm) only when every layer ran.
  VisionOutput forward(const torch::Tensor& pixel_values, int64_t run_layers = -1);
  const VisionConfig& config() const { return config_; }
  bool gradient_checkpointing = false;

  InternVLVisionEmbeddings embeddings{nullptr};
  InternVLVisionEncoder encoder{nullptr};
  torch::nn::LayerNorm layernorm{nullptr};

 private:
  VisionConfig config_;
};
TORCH_MODULE(InternVLVisionModel);

// InternVLMultiModalProjector: layer_norm (eps 1e-5) -> linear_1 ("0") -> projector_hidden_act -> linear_2 ("2").
class InternVLMultiModalProjectorImpl : public torch::nn::Module {
 public:
  InternVLMultiModalProjectorImpl(int64_t in, int64_t out, Activation act);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::LayerNorm layer_norm{nullptr};
  Dense linear_1{nullptr}, linear_2{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(InternVLMultiModalProjector);

// InternVLModel = the decoder (transformers' model.language_model, tpo's model.*) + vision_tower + the projector.
class InternVLModelImpl : public Qwen2ModelImpl {
 public:
  InternVLModelImpl(const Qwen2Config& text, const VisionConfig& vision, const MultimodalConfig& mm);
  // get_image_features for frames [F, 3, S, S]: the selected layer's patch tokens (the class token dropped) after
  // pixel_shuffle -> features [F, (g/k)^2, D*k*k]; projected through the projector.
  torch::Tensor vision_features(const torch::Tensor& pixel_values);
  InternVLVisionModel vision_tower{nullptr};
  InternVLMultiModalProjector mm_projector{nullptr};

 private:
  VisionConfig vision_;
  MultimodalConfig mm_;
};

// InternVLModel.pixel_shuffle, step for step: [B, W, H, C] -> [B, W*s, H*s, C/s^2] for s = 1 / factor.
torch::Tensor internvl_pixel_shuffle(const torch::Tensor& features, int64_t factor);

// Visual tokens a frame gives: (grid / k)^2.
int64_t internvl_tokens_per_frame(const VisionConfig& vision, const MultimodalConfig& mm);

}  // namespace tpo::model
