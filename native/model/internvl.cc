#include "model/internvl.h"

#include "model/checkpoint.h"
#include "model/linear.h"

namespace tpo::model {

InternVLVisionPatchEmbeddingsImpl::InternVLVisionPatchEmbeddingsImpl(const VisionConfig& c) {
  projection = register_module(
      "projection", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size).stride(c.patch_size)));
}

InternVLVisionEmbeddingsImpl::InternVLVisionEmbeddingsImpl(const VisionConfig& c) : config_(c) {
  cls_token = register_parameter("cls_token", new_parameter({1, 1, c.hidden_size}));
  patch_embeddings = register_module("patch_embeddings", InternVLVisionPatchEmbeddings(c));
  position_embeddings = register_parameter("position_embeddings", new_parameter({1, c.grid() * c.grid() + 1, c.hidden_size}));
}

torch::Tensor InternVLVisionEmbeddingsImpl::forward(const torch::Tensor& pixel_values) {
  // Frames at the tower's image_size: interpolate_pos_encoding then returns position_embeddings as they are.
  if (pixel_values.dim() != 4 || pixel_values.size(1) != config_.num_channels || pixel_values.size(2) != config_.image_size ||
      pixel_values.size(3) != config_.image_size)
    throw std::invalid_argument("InternVL vision tower: pixel_values must be [frames, " + std::to_string(config_.num_channels) +
                                ", " + std::to_string(config_.image_size) + ", " + std::to_string(config_.image_size) +
                                "] (its image_size), got " + c10::str(pixel_values.sizes()));
  const auto& w = patch_embeddings->projection->weight;
  auto x = patch_embeddings->projection(pixel_values.to(w.device(), w.scalar_type())).flatten(2).transpose(1, 2);
  x = torch::cat({cls_token.expand({x.size(0), 1, -1}), x}, 1);
  return x + position_embeddings;
}

InternVLVisionAttentionImpl::InternVLVisionAttentionImpl(const VisionConfig& c)
    : heads_(c.num_attention_heads), head_dim_(c.hidden_size / c.num_attention_heads) {
  q_proj = register_module("q_proj", Dense(c.hidden_size, c.hidden_size, c.attention_bias));
  k_proj = register_module("k_proj", Dense(c.hidden_size, c.hidden_size, c.attention_bias));
  v_proj = register_module("v_proj", Dense(c.hidden_size, c.hidden_size, c.attention_bias));
  projection_layer = register_module("projection_layer", Dense(c.hidden_size, c.hidden_size));
  if (c.qk_norm) {  // InternVLVisionRMSNorm(embed_dim): its default eps, not the config's
    q_norm = register_module("q_norm", Qwen2RMSNorm(c.hidden_size, 1e-6));
    k_norm = register_module("k_norm", Qwen2RMSNorm(c.hidden_size, 1e-6));
  }
}

torch::Tensor InternVLVisionAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), n = x.size(1);
  auto q = linear(q_proj, x), k = linear(k_proj, x);
  if (q_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  auto heads = [&](const torch::Tensor& t) { return t.reshape({b, n, heads_, head_dim_}).transpose(1, 2); };
  auto out = at::scaled_dot_product_attention(heads(q), heads(k), heads(linear(v_proj, x)));
  return linear(projection_layer, out.transpose(1, 2).reshape({b, n, heads_ * head_dim_}));
}

namespace {

// NORM2FN[norm_type]: torch's LayerNorm, or Qwen2's RMSNorm (InternVLVisionRMSNorm computes the same), under `name`.
void register_norm(torch::nn::Module& m, const std::string& name, const VisionConfig& c, torch::nn::LayerNorm& ln, Qwen2RMSNorm& rms) {
  if (c.rms_norm) rms = m.register_module(name, Qwen2RMSNorm(c.hidden_size, c.layer_norm_eps));
  else ln = m.register_module(name, torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

}  // namespace

InternVLVisionLayerImpl::InternVLVisionLayerImpl(const VisionConfig& c) {
  attention = register_module("attention", InternVLVisionAttention(c));
  mlp = register_module("mlp", VisionMLP(c));
  register_norm(*this, "layernorm_before", c, layernorm_before, rms_before);
  register_norm(*this, "layernorm_after", c, layernorm_after, rms_after);
  lambda_1 = register_parameter("lambda_1", new_parameter({c.hidden_size}));
  lambda_2 = register_parameter("lambda_2", new_parameter({c.hidden_size}));
}

torch::Tensor InternVLVisionLayerImpl::forward(const torch::Tensor& x) {
  const auto before = [this](const torch::Tensor& t) { return layernorm_before ? layernorm_before(t) : rms_before(t); };
  const auto after = [this](const torch::Tensor& t) { return layernorm_after ? layernorm_after(t) : rms_after(t); };
  const auto h = lambda_1 * attention(before(x)) + x;
  return lambda_2 * mlp(after(h)) + h;
}

InternVLVisionEncoderImpl::InternVLVisionEncoderImpl(const VisionConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(InternVLVisionLayer(c));
}

InternVLVisionModelImpl::InternVLVisionModelImpl(const VisionConfig& c) : config_(c) {
  embeddings = register_module("embeddings", InternVLVisionEmbeddings(c));
  encoder = register_module("encoder", InternVLVisionEncoder(c));
  if (!c.mean_pooling)
    layernorm = register_module("layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

VisionOutput InternVLVisionModelImpl::forward(const torch::Tensor& pixel_values, int64_t run_layers) {
  const auto total = static_cast<int64_t>(encoder->layer->size());
  const int64_t n = run_layers < 0 ? total : std::min(run_layers, total);
  VisionOutput out;
  auto h = embeddings(pixel_values);
  out.hidden_states.push_back(h);
  const bool checkpoint = checkpointing_pays(*this, gradient_checkpointing);
  for (int64_t i = 0; i < n; ++i) {
    auto layer = encoder->layer[i]->as<InternVLVisionLayerImpl>();
    h = checkpoint ? checkpointed([layer](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{layer->forward(in[0])}; }, {h})[0]
                   : layer->forward(h);
    out.hidden_states.push_back(h);
  }
  if (n == total) out.last_hidden_state = layernorm ? layernorm(h) : h;
  return out;
}

InternVLMultiModalProjectorImpl::InternVLMultiModalProjectorImpl(int64_t in, int64_t out, Activation act) : act_(act) {
  // nn.LayerNorm's default eps
  layer_norm = register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({in}).eps(1e-5)));
  linear_1 = register_module("0", Dense(in, out));
  linear_2 = register_module("2", Dense(out, out));
}

torch::Tensor InternVLMultiModalProjectorImpl::forward(const torch::Tensor& x) {
  return linear(linear_2, activate(act_, linear(linear_1, layer_norm(x))));
}

InternVLModelImpl::InternVLModelImpl(const Qwen2Config& text, const VisionConfig& vision, const MultimodalConfig& mm)
    : Qwen2ModelImpl(text), vision_(vision), mm_(mm) {
  vision_tower = register_module("vision_tower", InternVLVisionModel(vision));
  const int64_t in = vision.hidden_size * mm.shuffle * mm.shuffle;
  mm_projector = register_module("mm_projector", InternVLMultiModalProjector(in, text.hidden_size, mm.projector_act));
}

torch::Tensor internvl_pixel_shuffle(const torch::Tensor& x, int64_t k) {
  const int64_t b = x.size(0), w = x.size(1), h = x.size(2), c = x.size(3);
  if (h % k != 0 || w % k != 0)
    throw std::invalid_argument("pixel_shuffle: the " + std::to_string(w) + "x" + std::to_string(h) +
                                " feature grid is not divisible by " + std::to_string(k));
  auto y = x.reshape({b, w, h / k, c * k});
  y = y.permute({0, 2, 1, 3}).contiguous();
  y = y.view({b, h / k, w / k, c * k * k});
  return y.permute({0, 2, 1, 3}).contiguous();
}

int64_t internvl_tokens_per_frame(const VisionConfig& vision, const MultimodalConfig& mm) {
  const int64_t side = vision.grid() / mm.shuffle;
  return side * side;
}

torch::Tensor InternVLModelImpl::vision_features(const torch::Tensor& pixel_values) {
  const int64_t total = vision_.num_hidden_layers;
  const int64_t index = mm_.select_layer < 0 ? total + 1 + mm_.select_layer : mm_.select_layer;
  // vision_feature_layer -1 takes last_hidden_state (after the final layernorm, if any); others hidden_states[i].
  const auto out = vision_tower->forward(pixel_values, mm_.select_layer == -1 ? total : index);
  auto features = mm_.select_layer == -1 ? out.last_hidden_state : out.hidden_states[static_cast<size_t>(index)];
  features = features.narrow(1, 1, features.size(1) - 1);  // "default": the class token dropped
  const int64_t frames = features.size(0), side = vision_.grid();
  features = internvl_pixel_shuffle(features.reshape({frames, side, side, -1}), mm_.shuffle);
  return features.reshape({frames, -1, features.size(-1)});
}

}  // namespace tpo::model
