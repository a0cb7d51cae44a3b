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
  if (c.kind == VisionKind::VideoLlama3) return;  // positions come from the 2D RoPE
  const int64_t positions = c.grid() * c.grid() + (clip ? 1 : 0);
  position_embedding = register_module("position_embedding", make_embedding(positions, c.hidden_size));
  if (clip) class_embedding = register_parameter("class_embedding", new_parameter({c.hidden_size}));
}

torch::Tensor VisionEmbeddingsImpl::forward(const torch::Tensor& pixel_values) {
  if (config_.kind == VisionKind::VideoLlama3) {
    const int64_t c = config_.num_channels, p = config_.patch_size;
    if (pixel_values.dim() != 2 || pixel_values.size(1) != c * p * p)
      throw std::invalid_argument("vision model: pixel_values_videos must be flattened patches [patches, " + std::to_string(c * p * p) +
                                  "] (channels x patch_size^2), got " + c10::str(pixel_values.sizes()));
    const auto& w = patch_embedding->weight;
    return patch_embedding(pixel_values.to(w.device(), w.scalar_type()).view({-1, c, p, p})).view({-1, config_.hidden_size});
  }
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

namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

torch::Tensor rotate_vision(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const auto xf = x.to(torch::kFloat32);
  const auto c = cos.unsqueeze(-2), s = sin.unsqueeze(-2);  // [N, 1, hd]
  return (xf * c + rotate_half(xf) * s).to(x.scalar_type());
}

torch::Tensor VisionAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t b = x.size(0), n = x.size(1);
  auto heads = [&](const torch::Tensor& t) { return t.view({b, n, heads_, head_dim_}); };
  auto q = heads(linear(q_proj, x)), k = heads(linear(k_proj, x));
  if (cos.defined()) {
    q = rotate_vision(q, cos, sin);
    k = rotate_vision(k, cos, sin);
  }
  auto out = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), heads(linear(v_proj, x)).transpose(1, 2));
  return linear(out_proj, out.transpose(1, 2).reshape({b, n, heads_ * head_dim_}));
}

VisionMLPImpl::VisionMLPImpl(const VisionConfig& c) : act_(c.hidden_act) {
  fc1 = register_module("fc1", Dense(c.hidden_size, c.intermediate_size));
  fc2 = register_module("fc2", Dense(c.intermediate_size, c.hidden_size));
}

torch::Tensor activate(Activation act, const torch::Tensor& x) {
  switch (act) {
    case Activation::GeluTanh: return torch::gelu(x, "tanh");
    case Activation::GeluErf: return torch::gelu(x);
    case Activation::QuickGelu: return x * torch::sigmoid(1.702 * x);
    case Activation::Silu: return torch::silu(x);
  }
  return x;
}

torch::Tensor VisionMLPImpl::forward(const torch::Tensor& x) { return linear(fc2, activate(act_, linear(fc1, x))); }

VisionEncoderLayerImpl::VisionEncoderLayerImpl(const VisionConfig& c) {
  self_attn = register_module("self_attn", VisionAttention(c));
  layer_norm1 = register_module("layer_norm1", layer_norm(c.hidden_size, c.layer_norm_eps));
  mlp = register_module("mlp", VisionMLP(c));
  layer_norm2 = register_module("layer_norm2", layer_norm(c.hidden_size, c.layer_norm_eps));
}

torch::Tensor VisionEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto h = x + self_attn(layer_norm1(x), cos, sin);
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
  const bool checkpoint = checkpointing_pays(*this, gradient_checkpointing);
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

std::pair<torch::Tensor, torch::Tensor> video_llama3_rotary(const VisionConfig& c, const PatchGrid& g, torch::Device device) {
  const int64_t head_dim = c.hidden_size / c.num_attention_heads, spatial = head_dim / 2;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto inv_freq = 1.0 / torch::pow(c.rope_theta, torch::arange(0, spatial, 2, f32) / static_cast<double>(spatial));
  // get_vision_position_ids: (h, w) of each patch, in the processor's block-major order.
  const int64_t m = g.merge;
  auto block = [&](const torch::Tensor& ids) { return ids.reshape({g.h / m, m, g.w / m, m}).transpose(1, 2).flatten(); };
  const auto hpos = block(torch::arange(g.h, f32).view({-1, 1}).expand({g.h, g.w}));
  const auto wpos = block(torch::arange(g.w, f32).view({1, -1}).expand({g.h, g.w}));
  // recomposition_frequencies: [h freqs, w freqs] twice over the head.
  const auto hw = torch::cat({hpos.unsqueeze(1) * inv_freq, wpos.unsqueeze(1) * inv_freq}, 1);
  const auto freqs = torch::cat({hw, hw}, 1);
  return {freqs.cos(), freqs.sin()};
}

torch::Tensor video_llama3_patchify(const torch::Tensor& frames, int64_t p, int64_t m) {
  if (frames.dim() != 4 || frames.size(2) % (p * m) != 0 || frames.size(3) % (p * m) != 0)
    throw std::invalid_argument("a VideoLLaMA3 video must be frames [t, channels, H, W] with H and W multiples of patch_size x merge_size (" +
                                std::to_string(p * m) + "), got " + c10::str(frames.sizes()));
  const int64_t t = frames.size(0), ch = frames.size(1), gh = frames.size(2) / p, gw = frames.size(3) / p;
  return frames.reshape({t, ch, gh / m, m, p, gw / m, m, p}).permute({0, 2, 5, 3, 6, 1, 4, 7}).reshape({t * gh * gw, ch * p * p});
}

torch::Tensor video_llama3_compression_mask(const torch::Tensor& patches, const PatchGrid& g) {
  const int64_t tokens = (g.h / g.merge) * (g.w / g.merge);
  const auto options = torch::TensorOptions().dtype(torch::kBool).device(patches.device());
  if (g.t == 1) return torch::ones({tokens}, options);
  constexpr double kThreshold = 0.1;
  constexpr int64_t kMinTokens = 1;
  const auto images = patches.view({g.t, tokens, -1});
  auto diff = (images.narrow(0, 1, g.t - 1) - images.narrow(0, 0, g.t - 1)).abs().mean(-1) * 255;
  diff = torch::cat({torch::full_like(diff.narrow(0, 0, 1), kThreshold + 1), diff}, 0);
  auto mask = diff > kThreshold;
  const auto sparse = (mask.sum(1) < kMinTokens).nonzero().view({-1});
  if (sparse.numel() > 0) mask.index_put_({sparse, torch::indexing::Slice(0, kMinTokens)}, true);
  return mask.flatten();
}

VideoLlama3VisionModelImpl::VideoLlama3VisionModelImpl(const VisionConfig& c) : config_(c) {
  embeddings = register_module("embeddings", VisionEmbeddings(c));
  encoder = register_module("encoder", VisionEncoder(c, c.num_hidden_layers));
  post_layernorm = register_module("post_layernorm", layer_norm(c.hidden_size, c.layer_norm_eps));
}

void check_patch_grid(const torch::Tensor& patches, const PatchGrid& g) {
  constexpr int64_t kMaxSide = int64_t{1} << 20;
  if (g.t < 1 || g.h < 1 || g.w < 1 || g.merge < 1 || g.t > kMaxSide || g.h > kMaxSide || g.w > kMaxSide ||
      g.h % g.merge != 0 || g.w % g.merge != 0)
    throw std::invalid_argument("video grid [t=" + std::to_string(g.t) + ", h=" + std::to_string(g.h) + ", w=" + std::to_string(g.w) +
                                "] must be positive with h and w multiples of the merge size (" + std::to_string(g.merge) + ")");
  if (patches.dim() != 2 || patches.size(0) != g.t * g.h * g.w)
    throw std::invalid_argument("video grid [" + std::to_string(g.t) + ", " + std::to_string(g.h) + ", " + std::to_string(g.w) +
                                "] needs " + std::to_string(g.t * g.h * g.w) + " patches, got " + c10::str(patches.sizes()));
}

torch::Tensor VideoLlama3VisionModelImpl::forward(const torch::Tensor& patches, const PatchGrid& g) {
  check_patch_grid(patches, g);
  const int64_t d = config_.hidden_size;
  // Each frame is its own attention sequence (get_vision_cu_seqlens): frames are the batch.
  auto h = embeddings(patches).view({g.t, g.h * g.w, d});
  const auto [cos, sin] = video_llama3_rotary(config_, g, h.device());
  const bool checkpoint = checkpointing_pays(*this, gradient_checkpointing);
  for (const auto& module : *encoder->layers) {
    auto layer = module->as<VisionEncoderLayerImpl>();
    const auto run = [layer, c = cos, s = sin](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{layer->forward(in[0], c, s)}; };
    h = checkpoint ? checkpointed(run, {h})[0] : layer->forward(h, cos, sin);
  }
  h = post_layernorm(h);
  // pixel_unshuffle: block-major back to raster order, then bilinear downsampling by the merge size.
  const int64_t m = g.merge;
  auto grid = h.view({g.t, g.h / m, g.w / m, m, m, d}).permute({0, 1, 3, 2, 4, 5}).reshape({g.t, g.h, g.w, d}).permute({0, 3, 1, 2});
  grid = torch::nn::functional::interpolate(grid, torch::nn::functional::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{g.h / m, g.w / m})
                                                      .mode(torch::kBilinear)
                                                      .align_corners(false));
  return grid.permute({0, 2, 3, 1}).reshape({-1, d});
}

}  // namespace tpo::model
