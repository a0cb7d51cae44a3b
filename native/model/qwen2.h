// Qwen2, layer for layer as transformers' modeling_qwen2.py: RMSNorm, rotary embeddings, grouped-query attention
// with q/k/v biases, SwiGLU MLP. LLaMA (modeling_llama.py) is the same decoder with its biases as the config says
// (attention_bias, mlp_bias) and RoPE's scaled variants, so LlamaForCausalLM runs on these modules too. Forward runs over input embeddings (LLaVA splices visual tokens into them) with
// explicit position ids, a padding mask, and an optional KV cache for generation.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "model/config.h"
#include "model/lora.h"

namespace tpo::model {

class Qwen2RMSNormImpl : public torch::nn::Module {
 public:
  Qwen2RMSNormImpl(int64_t hidden_size, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(Qwen2RMSNorm);

// transformers' ROPE_INIT_FUNCTIONS: the inverse frequencies of RoPE's variant for a sequence of `seq_len`
// positions (only dynamic NTK depends on it), and the factor cos and sin are scaled by.
std::pair<torch::Tensor, double> rope_inverse_frequencies(const Qwen2Config& config, int64_t seq_len);

class Qwen2RotaryEmbeddingImpl : public torch::nn::Module {
 public:
  explicit Qwen2RotaryEmbeddingImpl(const Qwen2Config& config);
  // cos and sin for each position: [B, L, head_dim], in x's dtype.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& position_ids);

 private:
  Qwen2Config config_;
  torch::Tensor inv_freq_;  // a buffer: not a weight, not saved
  double attention_scaling_ = 1.0;
};
TORCH_MODULE(Qwen2RotaryEmbedding);

// Keys and values of every layer for the positions seen so far: keys[l], values[l] are [B, kv_heads, length, d].
// By default an append concatenates (autograd flows through it: the answers of a training step attend to their
// prompt's keys this way). reserve() preallocates room instead, and appends then write in place: generation
// appends one position a step, and concatenating would copy the whole cache every step.
class KVCache {
 public:
  std::vector<torch::Tensor> keys, values;

  int64_t length() const { return length_; }
  // Room for `capacity` positions of `batch` rows in every layer (no-grad use only).
  void reserve(int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim,
               const torch::TensorOptions& options);
  // Every row of this (reserved) cache starts with the `prefix` cache's positions: a prefix computed once with
  // batch 1 and shared by every row (the video and the text before the questions).
  void start_with(const KVCache& prefix);
  // Layer `layer`'s keys and values after appending `k`, `v` ([B, kv_heads, L, d]) at position length().
  std::pair<torch::Tensor, torch::Tensor> append(size_t layer, const torch::Tensor& k, const torch::Tensor& v);
  // Called once every layer has appended its L positions.
  void advance(int64_t positions) { length_ += positions; }

 private:
  std::vector<torch::Tensor> key_storage_, value_storage_;  // [B, kv_heads, capacity, d] when reserved
  int64_t length_ = 0;
};

// What attention may see, as libtorch's scaled_dot_product_attention takes it: no mask at all where none is needed
// (then its fused kernel skips the blocks a causal mask would hide), else an additive float mask built once per
// forward and shared by every layer.
struct AttentionMask {
  torch::Tensor mask;  // [B or 1, 1, L, T] in the compute dtype: 0 where a query may attend, -inf where not
  bool is_causal = false;
};

// What the outputs at padding positions must be. AsTransformers: what transformers computes (a padding query
// attends to the row's real tokens), for forward() and the parity fixtures. Unused: nobody reads them (scoring
// reads answer positions only), so a right-padded batch runs with no mask at all: causal attention never reaches
// padding that follows every real token of its row.
enum class PaddingOutputs { AsTransformers, Unused };

// The mask for L new positions after `past` cached ones. attention_mask: [B, past + L] (1 = token), or undefined.
AttentionMask attention_mask_for(const torch::Tensor& attention_mask, int64_t batch, int64_t new_len, int64_t past,
                                 torch::ScalarType dtype, torch::Device device, PaddingOutputs padding);

// A video's M-RoPE positions (Qwen2.5-VL's 3D RoPE) from its first position: offsets [3, V] int64 (temporal, height,
// width of each of its V tokens), and how far the text after it starts from its first position.
struct VideoRope {
  torch::Tensor offsets;
  int64_t span = 0;
};

// M-RoPE position ids [3, B, L] of sequences holding one video each, from their plain positions [B, L] (each row's
// tokens counted, as positions are everywhere else): before the video the plain positions, at its V tokens the
// video's start plus its offsets, after it the plain positions moved by span - V (get_rope_index's layout). start
// [B] (or [1], for every row): each row's plain position of its first video token, -1 for a row without one.
torch::Tensor mrope_positions(const torch::Tensor& plain, const torch::Tensor& start, const VideoRope& rope);

// What a decoder layer needs besides its input: the same for every layer of one forward (queries aside).
struct LayerInputs {
  std::pair<torch::Tensor, torch::Tensor> rope;  // cos, sin [B, L, d]
  AttentionMask mask;                            // over this forward's keys (and the cache's)
  KVCache* cache = nullptr;                      // this forward's keys and values are appended here
  // A prefix every row continues, computed once with batch 1 (the video and the text before the questions): its
  // keys and values are read once for all rows, never copied per row. Read only.
  const KVCache* shared = nullptr;
  int64_t queries = -1;  // >= 0: the output at the last `queries` positions only (keys and values at all)
};

class Qwen2AttentionImpl : public torch::nn::Module {
 public:
  Qwen2AttentionImpl(const Qwen2Config& config, int64_t layer_index);
  torch::Tensor forward(const torch::Tensor& hidden, const LayerInputs& in);
  LoraLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  // Attention over [shared prefix | own keys] as one softmax; the prefix's keys stay batch 1.
  torch::Tensor attend_with_shared_prefix(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          const LayerInputs& in) const;
  int64_t layer_index_, heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(Qwen2Attention);

class Qwen2MLPImpl : public torch::nn::Module {
 public:
  explicit Qwen2MLPImpl(const Qwen2Config& config);
  torch::Tensor forward(const torch::Tensor& x);
  LoraLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Qwen2MLP);

class Qwen2DecoderLayerImpl : public torch::nn::Module {
 public:
  Qwen2DecoderLayerImpl(const Qwen2Config& config, int64_t layer_index);
  torch::Tensor forward(const torch::Tensor& hidden, const LayerInputs& in);
  Qwen2Attention self_attn{nullptr};
  Qwen2MLP mlp{nullptr};
  Qwen2RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(Qwen2DecoderLayer);

struct Qwen2Output {
  torch::Tensor last_hidden_state;           // after the final norm
  std::vector<torch::Tensor> hidden_states;  // transformers' output_hidden_states: embeddings, each layer's output
                                             // but the last, then last_hidden_state (normed)
  torch::Tensor last_layer_output;           // the last layer's raw output (before the final norm)
};

// Qwen2Model: embeddings, decoder layers, final norm. Subclassed by LLaVA's model, as LLaVA-NeXT does.
class Qwen2ModelImpl : public torch::nn::Module {
 public:
  explicit Qwen2ModelImpl(const Qwen2Config& config);
  struct Options {
    KVCache* cache = nullptr;                // earlier positions' keys and values; this forward's are appended
    const KVCache* shared_prefix = nullptr;  // a batch-1 prefix every row continues (see LayerInputs::shared)
    bool output_hidden_states = false;
    PaddingOutputs padding = PaddingOutputs::AsTransformers;
    // >= 0: only the last that many positions' outputs are wanted (a prompt pass whose later positions read its
    // keys and values): the last layer runs its queries, attention and MLP for those alone, and
    // last_hidden_state is [B, outputs_for_last, D].
    int64_t outputs_for_last = -1;
    // A mask the caller built (generation builds one for all its steps); else one is made from attention_mask.
    const AttentionMask* attention = nullptr;
    // M-RoPE (Qwen2.5-VL): the positions [B, L] given (or 0, 1, ... after the cache and the shared prefix) are the
    // plain ones, mapped to [3, B, L] by mrope_positions with this video and its start in each row.
    const VideoRope* video_rope = nullptr;
    torch::Tensor video_start;
  };
  // attention_mask: [B, cached + L] (1 = token, 0 = padding) or undefined (all tokens); position_ids: [B, L] (M-RoPE: [3, B, L]) or
  // undefined (0, 1, ... after the cache and the shared prefix).
  Qwen2Output forward(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask,
                      const torch::Tensor& position_ids, const Options& options);
  Qwen2Output forward(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask = {},
                      const torch::Tensor& position_ids = {}) {
    return forward(inputs_embeds, attention_mask, position_ids, Options{});
  }
  const Qwen2Config& config() const { return config_; }

  // Recompute each decoder layer's activations in the backward pass instead of keeping them (transformers'
  // gradient_checkpointing_enable): for long video contexts, at the cost of one more forward per layer.
  bool gradient_checkpointing = false;

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  Qwen2RMSNorm norm{nullptr};
  Qwen2RotaryEmbedding rotary_emb{nullptr};

 private:
  Qwen2Config config_;
};
TORCH_MODULE(Qwen2Model);

// The boolean attention mask [B, 1, L, T] for L new positions after `past` cached ones: causal, and no attention
// to padding keys. A query with no key to attend (left padding) attends everything: its output is ignored, but
// must not be NaN.
torch::Tensor causal_padding_mask(const torch::Tensor& attention_mask, int64_t batch, int64_t new_len, int64_t past,
                                  torch::Device device);

}  // namespace tpo::model
