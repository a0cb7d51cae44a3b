#include "model/qwen2.h"

#include <cmath>

#include "model/parameters.h"

namespace tpo::model {
namespace {

// transformers' rotate_half: [-x2, x1] for the two halves of the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  // x: [B, heads, L, d]; cos/sin: [B, L, d] -> [B, 1, L, d]
  const auto c = cos.unsqueeze(1);
  const auto s = sin.unsqueeze(1);
  return x * c + rotate_half(x) * s;
}

}  // namespace

Qwen2RMSNormImpl::Qwen2RMSNormImpl(int64_t hidden_size, double eps) : eps_(eps) {
  weight = register_parameter("weight", new_parameter({hidden_size}));
}

torch::Tensor Qwen2RMSNormImpl::forward(const torch::Tensor& x) {
  // In float32 whatever the input dtype, as transformers does.
  const auto input_dtype = x.scalar_type();
  auto h = x.to(torch::kFloat32);
  const auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * torch::rsqrt(variance + eps_);
  return weight * h.to(input_dtype);
}

Qwen2RotaryEmbeddingImpl::Qwen2RotaryEmbeddingImpl(int64_t head_dim, double theta) {
  auto exponents = torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(head_dim);
  inv_freq_ = register_buffer("inv_freq", 1.0 / torch::pow(torch::tensor(theta, torch::kFloat32), exponents));
}

std::pair<torch::Tensor, torch::Tensor> Qwen2RotaryEmbeddingImpl::forward(const torch::Tensor& x,
                                                                          const torch::Tensor& position_ids) {
  // freqs[b, l, i] = position[b, l] * inv_freq[i], in float32 (transformers disables autocast here).
  const auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq_.to(x.device()).view({1, 1, -1});
  const auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(x.scalar_type()), emb.sin().to(x.scalar_type())};
}

Qwen2AttentionImpl::Qwen2AttentionImpl(const Qwen2Config& c, int64_t layer_index)
    : layer_index_(layer_index), heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  q_proj = register_module("q_proj", LoraLinear(c.hidden_size, heads_ * head_dim_, true));
  k_proj = register_module("k_proj", LoraLinear(c.hidden_size, kv_heads_ * head_dim_, true));
  v_proj = register_module("v_proj", LoraLinear(c.hidden_size, kv_heads_ * head_dim_, true));
  o_proj = register_module("o_proj", LoraLinear(heads_ * head_dim_, c.hidden_size, false));
}

torch::Tensor Qwen2AttentionImpl::forward(const torch::Tensor& hidden, const std::pair<torch::Tensor, torch::Tensor>& rope,
                                          const torch::Tensor& mask, KVCache* cache) {
  const int64_t b = hidden.size(0), l = hidden.size(1);
  auto q = q_proj(hidden).view({b, l, heads_, head_dim_}).transpose(1, 2);
  auto k = k_proj(hidden).view({b, l, kv_heads_, head_dim_}).transpose(1, 2);
  auto v = v_proj(hidden).view({b, l, kv_heads_, head_dim_}).transpose(1, 2);
  q = apply_rotary(q, rope.first, rope.second);
  k = apply_rotary(k, rope.first, rope.second);
  if (cache) {
    auto& ck = cache->keys[layer_index_];
    auto& cv = cache->values[layer_index_];
    if (ck.defined()) {
      k = torch::cat({ck, k}, 2);
      v = torch::cat({cv, v}, 2);
    }
    ck = k;
    cv = v;
  }
  // libtorch's fused attention; grouped-query heads share keys and values (enable_gqa) without copies.
  auto out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, std::nullopt,
                                              /*enable_gqa=*/heads_ != kv_heads_);
  out = out.transpose(1, 2).reshape({b, l, heads_ * head_dim_});
  return o_proj(out);
}

Qwen2MLPImpl::Qwen2MLPImpl(const Qwen2Config& c) {
  gate_proj = register_module("gate_proj", LoraLinear(c.hidden_size, c.intermediate_size, false));
  up_proj = register_module("up_proj", LoraLinear(c.hidden_size, c.intermediate_size, false));
  down_proj = register_module("down_proj", LoraLinear(c.intermediate_size, c.hidden_size, false));
}

torch::Tensor Qwen2MLPImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

Qwen2DecoderLayerImpl::Qwen2DecoderLayerImpl(const Qwen2Config& c, int64_t layer_index) {
  self_attn = register_module("self_attn", Qwen2Attention(c, layer_index));
  mlp = register_module("mlp", Qwen2MLP(c));
  input_layernorm = register_module("input_layernorm", Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor Qwen2DecoderLayerImpl::forward(const torch::Tensor& hidden, const std::pair<torch::Tensor, torch::Tensor>& rope,
                                             const torch::Tensor& mask, KVCache* cache) {
  auto h = hidden + self_attn(input_layernorm(hidden), rope, mask, cache);
  return h + mlp(post_attention_layernorm(h));
}

Qwen2ModelImpl::Qwen2ModelImpl(const Qwen2Config& c) : config_(c) {
  embed_tokens = register_module("embed_tokens", make_embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(Qwen2DecoderLayer(c, i));
  norm = register_module("norm", Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps));
  rotary_emb = register_module("rotary_emb", Qwen2RotaryEmbedding(c.head_dim, c.rope_theta));
}

torch::Tensor causal_padding_mask(const torch::Tensor& attention_mask, int64_t batch, int64_t new_len, int64_t past,
                                  torch::Device device) {
  const int64_t total = past + new_len;
  auto query_pos = torch::arange(past, total, torch::TensorOptions().dtype(torch::kInt64).device(device)).view({new_len, 1});
  auto key_pos = torch::arange(0, total, torch::TensorOptions().dtype(torch::kInt64).device(device)).view({1, total});
  auto allowed = (key_pos <= query_pos).view({1, 1, new_len, total}).expand({batch, 1, new_len, total});
  if (attention_mask.defined()) {
    if (attention_mask.dim() != 2 || attention_mask.size(0) != batch || attention_mask.size(1) != total)
      throw std::invalid_argument("attention_mask must be [batch, cached + new tokens] = [" + std::to_string(batch) +
                                  ", " + std::to_string(total) + "]");
    allowed = allowed & attention_mask.to(device).to(torch::kBool).view({batch, 1, 1, total});
  }
  return allowed | ~allowed.any(-1, /*keepdim=*/true);
}

Qwen2Output Qwen2ModelImpl::forward(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask,
                                    const torch::Tensor& position_ids, KVCache* cache, bool output_hidden_states) {
  const int64_t b = inputs_embeds.size(0), l = inputs_embeds.size(1);
  const int64_t past = cache ? cache->length() : 0;
  if (cache && cache->keys.empty()) {
    cache->keys.resize(layers->size());
    cache->values.resize(layers->size());
  }
  torch::Tensor positions = position_ids;
  if (!positions.defined())
    positions = torch::arange(past, past + l, torch::TensorOptions().dtype(torch::kInt64).device(inputs_embeds.device()))
                    .unsqueeze(0).expand({b, l});
  const auto mask = causal_padding_mask(attention_mask, b, l, past, inputs_embeds.device());
  const auto rope = rotary_emb(inputs_embeds, positions);

  Qwen2Output out;
  torch::Tensor h = inputs_embeds;
  for (size_t i = 0; i < layers->size(); ++i) {
    if (output_hidden_states) out.hidden_states.push_back(h);
    h = layers[i]->as<Qwen2DecoderLayerImpl>()->forward(h, rope, mask, cache);
  }
  out.last_layer_output = h;
  out.last_hidden_state = norm(h);
  if (output_hidden_states) out.hidden_states.push_back(out.last_hidden_state);
  return out;
}

}  // namespace tpo::model
