#include "model/vision.h"

#include "model/checkpoint.h"
#include "model/linear.h"

namespace tpo::model {
namespace {

torch::nn::LayerNorm layer_norm(int64_t size, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({size}).eps(eps));
}

}  // namespace

VisionEmbeddingsImpl::VisionEmbeddingsImpl(const VisionConfig& c) : config_(c) {
  const bool clip = c.kind == VisionKind::Clip;
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size).stride(c.patch_size).bias(!clip)));
  const int64_t positions = c.grid() * c.grid() + (clip ? 1 : 0);
  position_embedding = register_module("position_embedding", make_embedding(positions, c.hidden_size));
  if (clip) class_embedding = register_parameter("class_embedding", new_parameter({c.hidden_size}));
}

torch::Tensor VisionEmbeddingsImpl::forward(const torch::Tensor& pixel_values) {
  if (pixel_values.dim() != 4 || pixel_values.size(1) != config_.num_channels || pixel_values.size(2) != config_.image_size ||
      pixel_values.size(3) != config_.image_size)
    throw std::invalid_argument("vision tower: pixel_values must be [frames, " + std::to_string(config_.num_channels) + ", " +
                                std::to_string(config_.image_size) + ", " + std::to_string(config_.image_size) + "]");
  // Frames come from the CPU (decoding); the tower may be on a GPU.
  const auto& w = patch_embedding->weight;
  auto x = patch_embedding(pixel_values.to(w.device(), w.scalar_type()));  // [F, D, g, g]
  x = x.flatten(2).transpose(1, 2);                                                     // [F, g*g, D]
  if (class_embedding.defined()) x = torch::cat({class_embedding.view({1, 1, -1}).expand({x.size(0), 1, -1}), x}, 1);
  return x + position_embedding->weight.unsqueeze(0);
}

VisionAttentionImpl::VisionAttentionImpl(const VisionConfig& c)
    : heads_(c.num_attention_heads), head_dim_(c.hidden_size / c.num_attention_heads) {
  q_proj = register_module("q_proj", Dense(c.hidden_size, c.hidden_size));
  k_proj = register_module("k_proj", Dense(c.hidden_size, c.hidden_size));
  v_proj = register_module("v_proj", Dense(c.hidden_size, c.hidden_size));
  out_proj = register_module("out_proj", Dense(c.hidden_size, c.hidden_size));
}

torch::Tensor VisionAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), n = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.view({b, n, heads_, head_dim_}).transpose(1, 2); };
  auto out = at::scaled_dot_product_attention(split(linear(q_proj, x)), split(linear(k_proj, x)), split(linear(v_proj, x)));
  return linear(out_proj, out.transpose(1, 2).reshape({b, n, heads_ * head_dim_}));
}

VisionMLPImpl::VisionMLPImpl(const VisionConfig& c) : act_(c.hidden_act) {
  fc1 = register_module("fc1", Dense(c.hidden_size, c.intermediate_size));
  fc2 = register_module("fc2", Dense(c.intermediate_size, c.hidden_size));
}

torch::Tensor VisionMLPImpl::forward(const torch::Tensor& x) {
  auto h = linear(fc1, x);
  switch (act_) {
    case Activation::GeluTanh: h = torch::gelu(h, "tanh"); break;
    case Activation::GeluErf: h = torch::gelu(h); break;
    case Activation::QuickGelu: h = h * torch::sigmoid(1.702 * h); break;
  }
  return linear(fc2, h);
}

VisionEncoderLayerImpl::VisionEncoderLayerImpl(const VisionConfig& c) {
  self_attn = register_module("self_attn", VisionAttention(c));
  layer_norm1 = register_module("layer_norm1", layer_norm(c.hidden_size, c.layer_norm_eps));
  mlp = register_module("mlp", VisionMLP(c));
  layer_norm2 = register_module("layer_norm2", layer_norm(c.hidden_size, c.layer_norm_eps));
}

torch::Tensor VisionEncoderLayerImpl::forward(const torch::Tensor& x) {
  auto h = x + self_attn(layer_norm1(x));
  return h + mlp(layer_norm2(h));
}

VisionEncoderImpl::VisionEncoderImpl(const VisionConfig& c, int64_t count) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < count; ++i) layers->push_back(VisionEncoderLayer(c));
}

VisionTransformerImpl::VisionTransformerImpl(const VisionConfig& c, int64_t layers) : config_(c) {
  embeddings = register_module("embeddings", VisionEmbeddings(c));
  if (c.kind == VisionKind::Clip) pre_layrnorm = register_module("pre_layrnorm", layer_norm(c.hidden_size, c.layer_norm_eps));
  encoder = register_module("encoder", VisionEncoder(c, layers));
  post_layernorm = register_module("post_layernorm", layer_norm(c.hidden_size, c.layer_norm_eps));
}

VisionOutput VisionTransformerImpl::forward(const torch::Tensor& pixel_values, int64_t run_layers) {
  const int64_t n = run_layers < 0 ? layer_count() : std::min(run_layers, layer_count());
  VisionOutput out;
  auto h = embeddings(pixel_values);
  if (pre_layrnorm) h = pre_layrnorm(h);
  out.hidden_states.push_back(h);
  // Checkpointing pays only where a backward pass will run through the tower.
  bool checkpoint = gradient_checkpointing && torch::GradMode::is_enabled();
  if (checkpoint) {
    const auto params = parameters();
    checkpoint = std::any_of(params.begin(), params.end(), [](const torch::Tensor& p) { return p.requires_grad(); });
  }
  for (int64_t i = 0; i < n; ++i) {
    auto layer = encoder->layers[i]->as<VisionEncoderLayerImpl>();
    h = checkpoint ? checkpointed([layer](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{layer->forward(in[0])}; }, {h})[0]
                   : layer->forward(h);
    out.hidden_states.push_back(h);
  }
  // CLIP applies its post-layernorm only to the pooled class token; SigLIP to every token.
  out.last_hidden_state = config_.kind == VisionKind::Siglip ? post_layernorm(h) : h;
  return out;
}

VisionModelImpl::VisionModelImpl(const VisionConfig& c, int64_t layers) {
  vision_model = register_module("vision_model", VisionTransformer(c, layers));
}

}  // namespace tpo::model
