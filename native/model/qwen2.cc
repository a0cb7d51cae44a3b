#include "model/qwen2.h"

#include "model/checkpoint.h"

#include <cmath>
#include <limits>
#include <tuple>

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

std::pair<torch::Tensor, double> rope_inverse_frequencies(const Qwen2Config& c, int64_t seq_len) {
  const int64_t dim = c.head_dim;
  const RopeScaling& r = c.rope_scaling;
  double base = c.rope_theta;
  if (r.type == RopeType::Dynamic) {
    // _compute_dynamic_ntk_parameters: the base grows with the sequence past max_position_embeddings.
    const double len = static_cast<double>(std::max(seq_len, c.max_position_embeddings));
    base = base * std::pow(r.factor * len / static_cast<double>(c.max_position_embeddings) - (r.factor - 1.0),
                           static_cast<double>(dim) / static_cast<double>(dim - 2));
  }
  // float32 throughout, as transformers computes them (base ** (arange(0, dim, 2) / dim) in float32).
  const auto exponents = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim);
  auto inv_freq = 1.0 / torch::pow(torch::tensor(base, torch::kFloat32), exponents);
  if (r.type == RopeType::Linear) inv_freq = inv_freq / r.factor;
  if (r.type == RopeType::Llama3) {
    // _compute_llama3_parameters: long wavelengths divided by factor, short ones kept, a smooth blend between.
    const double old_len = static_cast<double>(r.original_max_position_embeddings);
    const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
    const auto wavelen = 2 * M_PI / inv_freq;
    auto scaled = torch::where(wavelen > low_wavelen, inv_freq / r.factor, inv_freq);
    const auto smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    const auto smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
    const auto medium = (wavelen < high_wavelen).logical_not() & (wavelen > low_wavelen).logical_not();
    inv_freq = torch::where(medium, smoothed, scaled);
  }
  return {inv_freq, 1.0};
}

Qwen2RotaryEmbeddingImpl::Qwen2RotaryEmbeddingImpl(const Qwen2Config& config) : config_(config) {
  auto [inv_freq, scaling] = rope_inverse_frequencies(config, config.max_position_embeddings);
  inv_freq_ = register_buffer("inv_freq", inv_freq);
  attention_scaling_ = scaling;
}

std::pair<torch::Tensor, torch::Tensor> Qwen2RotaryEmbeddingImpl::forward(const torch::Tensor& x,
                                                                          const torch::Tensor& position_ids) {
  torch::Tensor inv_freq = inv_freq_;
  if (config_.rope_scaling.type == RopeType::Dynamic && position_ids.numel() > 0) {
    // dynamic_rope_update: past max_position_embeddings the frequencies follow this forward's longest position.
    const int64_t seq_len = position_ids.max().item<int64_t>() + 1;
    if (seq_len > config_.max_position_embeddings) inv_freq = rope_inverse_frequencies(config_, seq_len).first;
  }
  // freqs[b, l, i] = position[b, l] * inv_freq[i], in float32 (transformers disables autocast here).
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq.to(x.device()).view({1, 1, -1});
  if (position_ids.dim() == 3) {
    // M-RoPE (Qwen2_5_VLRotaryEmbedding.recomposition_frequencies): positions [3, B, L] (temporal, height, width);
    // section s of the frequencies rotates by position row s.
    if (config_.mrope_section.empty() || position_ids.size(0) != 3)
      throw std::invalid_argument("position ids [3, batch, length] are M-RoPE's; this model's RoPE takes [batch, length]");
    std::vector<torch::Tensor> sections;
    int64_t start = 0;
    for (size_t i = 0; i < config_.mrope_section.size(); ++i) {
      const int64_t n = config_.mrope_section[i];
      sections.push_back(freqs[static_cast<int64_t>(i % 3)].narrow(-1, start, n));
      start += n;
    }
    freqs = torch::cat(sections, -1);
  }
  // (Positions [B, L] under M-RoPE are text's: the three rows equal, which is plain RoPE.)
  const auto emb = torch::cat({freqs, freqs}, -1);
  if (attention_scaling_ != 1.0)
    return {(emb.cos() * attention_scaling_).to(x.scalar_type()), (emb.sin() * attention_scaling_).to(x.scalar_type())};
  return {emb.cos().to(x.scalar_type()), emb.sin().to(x.scalar_type())};
}

Qwen2AttentionImpl::Qwen2AttentionImpl(const Qwen2Config& c, int64_t layer_index)
    : layer_index_(layer_index), heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  q_proj = register_module("q_proj", LoraLinear(c.hidden_size, heads_ * head_dim_, c.qkv_bias));
  k_proj = register_module("k_proj", LoraLinear(c.hidden_size, kv_heads_ * head_dim_, c.qkv_bias));
  v_proj = register_module("v_proj", LoraLinear(c.hidden_size, kv_heads_ * head_dim_, c.qkv_bias));
  o_proj = register_module("o_proj", LoraLinear(heads_ * head_dim_, c.hidden_size, c.o_bias));
}

namespace {

torch::Tensor additive_from(const torch::Tensor& allowed, const torch::TensorOptions& options) {
  return torch::zeros(allowed.sizes(), options).masked_fill_(allowed.logical_not(), -std::numeric_limits<double>::infinity());
}

// Causal with an offset: n queries at the last positions of `total` keys (SDPA's is_causal aligns top-left).
torch::Tensor offset_causal(int64_t n, int64_t total, const torch::TensorOptions& options) {
  const auto index = torch::TensorOptions().dtype(torch::kInt64).device(options.device());
  const auto allowed = torch::arange(0, total, index).view({1, total}) <= torch::arange(total - n, total, index).view({n, 1});
  return additive_from(allowed.view({1, 1, n, total}), options);
}

}  // namespace

torch::Tensor Qwen2AttentionImpl::forward(const torch::Tensor& hidden, const LayerInputs& in) {
  const int64_t b = hidden.size(0), l = hidden.size(1);
  const int64_t n = in.queries < 0 ? l : in.queries;  // the positions whose output is wanted: the last n
  const auto& [cos, sin] = in.rope;
  auto k = k_proj(hidden).view({b, l, kv_heads_, head_dim_}).transpose(1, 2);
  auto v = v_proj(hidden).view({b, l, kv_heads_, head_dim_}).transpose(1, 2);
  k = apply_rotary(k, cos, sin);
  if (in.cache) std::tie(k, v) = in.cache->append(static_cast<size_t>(layer_index_), k, v);
  if (n == 0) return hidden.narrow(1, l, 0);
  const auto last = [&](const torch::Tensor& t) { return n == l ? t : t.narrow(1, l - n, n); };
  auto q = q_proj(last(hidden)).view({b, n, heads_, head_dim_}).transpose(1, 2);
  q = apply_rotary(q, last(cos), last(sin));
  torch::Tensor out;
  if (in.shared) {
    out = attend_with_shared_prefix(q, k, v, in);
  } else {
    // The mask's rows for the queries kept; fewer queries than keys under is_causal make the mask causal with an
    // offset, and for one query no mask at all.
    AttentionMask m = in.mask;
    if (n != l && m.mask.defined()) m.mask = m.mask.narrow(2, l - n, n);
    if (n != l && m.is_causal) {
      m.is_causal = false;
      if (n > 1) m.mask = offset_causal(n, k.size(2), hidden.options());
    }
    // libtorch's fused attention; grouped-query heads share keys and values (enable_gqa) without copies.
    const std::optional<torch::Tensor> additive = m.mask.defined() ? std::optional(m.mask) : std::nullopt;
    out = at::scaled_dot_product_attention(q, k, v, additive, 0.0, m.is_causal, std::nullopt,
                                           /*enable_gqa=*/heads_ != kv_heads_);
  }
  out = out.transpose(1, 2).reshape({b, n, heads_ * head_dim_});
  return o_proj(out);
}

torch::Tensor Qwen2AttentionImpl::attend_with_shared_prefix(const torch::Tensor& q, const torch::Tensor& k,
                                                             const torch::Tensor& v, const LayerInputs& in) const {
  // q [R, H, n, d]; own k, v [R, kv, L, d]; the prefix's [1, kv, s, d]. Query head h reads kv head h / g, as
  // transformers' repeat_kv lays them out, so the g query heads of a kv head are folded into its query rows.
  const auto& pk = in.shared->keys[static_cast<size_t>(layer_index_)];
  const auto& pv = in.shared->values[static_cast<size_t>(layer_index_)];
  const int64_t r = q.size(0), n = q.size(2), d = head_dim_, kv = kv_heads_, g = heads_ / kv_heads_;
  const int64_t s = pk.size(2), own = k.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const auto qg = q.reshape({r, kv, g * n, d});
  // Against the prefix: every row's queries in one matmul per kv head, [kv, R*g*n, d] x [kv, d, s].
  const auto folded = qg.transpose(0, 1).reshape({kv, r * g * n, d});
  const auto prefix_scores = torch::bmm(folded, pk[0].transpose(1, 2)).view({kv, r, g * n, s}).transpose(0, 1);
  // Against the row's own keys, with the layer's mask (causal, or padding) over them.
  auto own_scores = torch::matmul(qg, k.transpose(-1, -2));  // [R, kv, g*n, own]
  AttentionMask m = in.mask;
  torch::Tensor own_mask = m.mask.defined() ? m.mask.narrow(2, m.mask.size(2) - n, n) : torch::Tensor();
  if (!own_mask.defined() && m.is_causal) own_mask = offset_causal(n, own, q.options());
  if (own_mask.defined()) {
    // [B or 1, 1, n, own] -> [B or 1, 1, g*n, own]: the same mask for each folded head.
    own_mask = own_mask.unsqueeze(2).expand({own_mask.size(0), 1, g, n, own}).reshape({own_mask.size(0), 1, g * n, own});
    own_scores = own_scores + own_mask;
  }
  const auto probs = (torch::cat({prefix_scores, own_scores}, -1) * scale).softmax(-1);  // [R, kv, g*n, s + own]
  const auto from_prefix = torch::bmm(probs.narrow(-1, 0, s).transpose(0, 1).reshape({kv, r * g * n, s}), pv[0])
                               .view({kv, r, g * n, d}).transpose(0, 1);
  const auto from_own = torch::matmul(probs.narrow(-1, s, own), v);
  return (from_prefix + from_own).reshape({r, heads_, n, d});
}

Qwen2MLPImpl::Qwen2MLPImpl(const Qwen2Config& c) {
  gate_proj = register_module("gate_proj", LoraLinear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  up_proj = register_module("up_proj", LoraLinear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  down_proj = register_module("down_proj", LoraLinear(c.intermediate_size, c.hidden_size, c.mlp_bias));
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

torch::Tensor Qwen2DecoderLayerImpl::forward(const torch::Tensor& hidden, const LayerInputs& in) {
  const auto residual = in.queries < 0 ? hidden : hidden.narrow(1, hidden.size(1) - in.queries, in.queries);
  auto h = residual + self_attn->forward(input_layernorm(hidden), in);
  return h + mlp(post_attention_layernorm(h));
}

Qwen2ModelImpl::Qwen2ModelImpl(const Qwen2Config& c) : config_(c) {
  embed_tokens = register_module("embed_tokens", make_embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(Qwen2DecoderLayer(c, i));
  norm = register_module("norm", Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps));
  rotary_emb = register_module("rotary_emb", Qwen2RotaryEmbedding(c));
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

void KVCache::reserve(int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim,
                      const torch::TensorOptions& options) {
  key_storage_.clear();
  value_storage_.clear();
  for (int64_t i = 0; i < layers; ++i) {
    key_storage_.push_back(torch::empty({batch, kv_heads, capacity, head_dim}, options));
    value_storage_.push_back(torch::empty({batch, kv_heads, capacity, head_dim}, options));
  }
  keys.assign(static_cast<size_t>(layers), torch::Tensor());
  values.assign(static_cast<size_t>(layers), torch::Tensor());
  length_ = 0;
}

void KVCache::start_with(const KVCache& prefix) {
  if (key_storage_.size() != prefix.keys.size()) throw std::logic_error("KVCache::start_with: reserve the same layers first");
  const int64_t n = prefix.length();
  for (size_t i = 0; i < key_storage_.size(); ++i) {
    key_storage_[i].narrow(2, 0, n).copy_(prefix.keys[i]);  // [1, kv, n, d] broadcast to every row
    value_storage_[i].narrow(2, 0, n).copy_(prefix.values[i]);
    keys[i] = key_storage_[i].narrow(2, 0, n);
    values[i] = value_storage_[i].narrow(2, 0, n);
  }
  length_ = n;
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(size_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  if (keys.size() <= layer) {
    keys.resize(layer + 1);
    values.resize(layer + 1);
  }
  if (!key_storage_.empty()) {
    const int64_t n = k.size(2), capacity = key_storage_[layer].size(2);
    if (length_ + n > capacity)
      throw std::logic_error("KVCache: " + std::to_string(length_ + n) + " positions exceed the reserved " + std::to_string(capacity));
    key_storage_[layer].narrow(2, length_, n).copy_(k);
    value_storage_[layer].narrow(2, length_, n).copy_(v);
    keys[layer] = key_storage_[layer].narrow(2, 0, length_ + n);
    values[layer] = value_storage_[layer].narrow(2, 0, length_ + n);
  } else if (keys[layer].defined()) {
    keys[layer] = torch::cat({keys[layer], k}, 2);
    values[layer] = torch::cat({values[layer], v}, 2);
  } else {
    keys[layer] = k;
    values[layer] = v;
  }
  return {keys[layer], values[layer]};
}

AttentionMask attention_mask_for(const torch::Tensor& attention_mask, int64_t batch, int64_t new_len, int64_t past,
                                 torch::ScalarType dtype, torch::Device device, PaddingOutputs padding) {
  const int64_t total = past + new_len;
  bool padded = false;
  if (attention_mask.defined()) {
    if (attention_mask.dim() != 2 || attention_mask.size(0) != batch || attention_mask.size(1) != total)
      throw std::invalid_argument("attention_mask must be [batch, cached + new tokens] = [" + std::to_string(batch) +
                                  ", " + std::to_string(total) + "]");
    const auto tokens = attention_mask.to(torch::kBool);
    if (!tokens.all().item<bool>()) {
      // Right padding (each row: its tokens, then padding) is invisible to causal attention from a real token.
      const bool right_padded =
          total < 2 || !(tokens.narrow(1, 1, total - 1) & tokens.narrow(1, 0, total - 1).logical_not()).any().item<bool>();
      padded = padding == PaddingOutputs::AsTransformers || !right_padded;
    }
  }
  // Additive masks (0 where allowed, -inf elsewhere), built once per forward: a boolean mask would be converted in
  // every layer's call.
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  if (padded) return {additive_from(causal_padding_mask(attention_mask, batch, new_len, past, device), options), false};
  if (past == 0) return {torch::Tensor(), true};      // a fresh sequence: the fused kernel's own causal mask
  if (new_len == 1) return {torch::Tensor(), false};  // one new token after a cache sees every cached position
  // Several new positions after a cache (answers after their prompt): causal with an offset, one mask for all rows.
  return {offset_causal(new_len, total, options), false};
}

namespace {

// One decoder layer under activation checkpointing. The layer's keys and values leave it as outputs (the cache
// holds them for later positions, and gradients flow back into them), and a shared prefix's keys and values enter
// as inputs, so the recomputation in the backward pass never touches a cache.
torch::Tensor checkpointed_layer(Qwen2DecoderLayerImpl& layer, size_t index, const torch::Tensor& hidden, const LayerInputs& in) {
  const bool past = in.cache && in.cache->keys.size() > index && in.cache->keys[index].defined();
  std::vector<torch::Tensor> inputs{hidden};
  if (past) {
    inputs.push_back(in.cache->keys[index]);
    inputs.push_back(in.cache->values[index]);
  }
  if (in.shared) {
    inputs.push_back(in.shared->keys[index]);
    inputs.push_back(in.shared->values[index]);
  }
  const bool with_cache = in.cache != nullptr, with_shared = in.shared != nullptr;
  LayerInputs context = in;
  auto outputs = checkpointed(
      [&layer, index, context, with_cache, with_shared, past](const std::vector<torch::Tensor>& x) -> std::vector<torch::Tensor> {
        // Caches that concatenate: the recomputation gets the same keys and values back.
        KVCache cache, shared;
        size_t next = 1;
        if (past) {
          cache.keys.resize(index + 1);
          cache.values.resize(index + 1);
          cache.keys[index] = x[next++];
          cache.values[index] = x[next++];
        }
        if (with_shared) {
          shared.keys.resize(index + 1);
          shared.values.resize(index + 1);
          shared.keys[index] = x[next++];
          shared.values[index] = x[next++];
        }
        LayerInputs local = context;
        local.cache = with_cache ? &cache : nullptr;
        local.shared = with_shared ? &shared : nullptr;
        auto out = layer.forward(x[0], local);
        if (!with_cache) return {out};
        return {out, cache.keys[index], cache.values[index]};
      },
      inputs);
  if (with_cache) {
    if (in.cache->keys.size() <= index) {
      in.cache->keys.resize(index + 1);
      in.cache->values.resize(index + 1);
    }
    in.cache->keys[index] = outputs[1];
    in.cache->values[index] = outputs[2];
  }
  return outputs[0];
}

}  // namespace

torch::Tensor mrope_positions(const torch::Tensor& plain, const torch::Tensor& start, const VideoRope& rope) {
  const int64_t b = plain.size(0), l = plain.size(1), v = rope.offsets.size(1);
  const auto offsets = rope.offsets.to(plain.device());
  const auto s = start.to(plain.device()).view({-1, 1}).expand({b, 1});
  const auto from_start = plain - s;  // [B, L]
  const auto has_video = s >= 0;
  const auto in_video = has_video & (from_start >= 0) & (from_start < v);
  const auto after = has_video & (from_start >= v);
  const auto video = offsets.index_select(1, from_start.clamp(0, std::max<int64_t>(v - 1, 0)).reshape({-1})).view({3, b, l}) + s;
  const auto text = torch::where(after, plain + (rope.span - v), plain).unsqueeze(0).expand({3, b, l});
  return torch::where(in_video.unsqueeze(0), video, text);
}

Qwen2Output Qwen2ModelImpl::forward(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask,
                                    const torch::Tensor& position_ids, const Options& o) {
  const int64_t b = inputs_embeds.size(0), l = inputs_embeds.size(1);
  if (o.shared_prefix && o.cache) throw std::invalid_argument("a shared prefix and a cache in one forward are not supported");
  const int64_t past = o.cache ? o.cache->length() : 0;
  const int64_t offset = past + (o.shared_prefix ? o.shared_prefix->length() : 0);
  torch::Tensor positions = position_ids;
  if (!positions.defined())
    positions = torch::arange(offset, offset + l, torch::TensorOptions().dtype(torch::kInt64).device(inputs_embeds.device()))
                    .unsqueeze(0).expand({b, l});
  if (o.video_rope && o.video_rope->offsets.defined() && positions.dim() == 2)
    positions = mrope_positions(positions, o.video_start, *o.video_rope);
  if (o.outputs_for_last > l) throw std::invalid_argument("outputs_for_last exceeds the positions given");
  LayerInputs in;
  in.mask = o.attention ? *o.attention
                        : attention_mask_for(attention_mask, b, l, past, inputs_embeds.scalar_type(), inputs_embeds.device(), o.padding);
  in.rope = rotary_emb(inputs_embeds, positions);
  in.cache = o.cache;
  in.shared = o.shared_prefix;

  Qwen2Output out;
  torch::Tensor h = inputs_embeds;
  const bool checkpoint = gradient_checkpointing && torch::GradMode::is_enabled();
  for (size_t i = 0; i < layers->size(); ++i) {
    if (o.output_hidden_states) out.hidden_states.push_back(h);
    auto& layer = *layers[i]->as<Qwen2DecoderLayerImpl>();
    // Earlier layers run every position (later layers read their keys and values); the last only what is wanted.
    in.queries = i + 1 == layers->size() ? o.outputs_for_last : -1;
    h = checkpoint ? checkpointed_layer(layer, i, h, in) : layer.forward(h, in);
  }
  if (o.cache) o.cache->advance(l);
  out.last_layer_output = h;
  out.last_hidden_state = norm(h);
  if (o.output_hidden_states) out.hidden_states.push_back(out.last_hidden_state);
  return out;
}

}  // namespace tpo::model
