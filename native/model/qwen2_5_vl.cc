#include "model/qwen2_5_vl.h"

#include <algorithm>

#include "model/checkpoint.h"
#include "model/linear.h"

namespace tpo::model {

Qwen2_5_VisionPatchEmbedImpl::Qwen2_5_VisionPatchEmbedImpl(const VisionConfig& c) : config_(c) {
  // Registered under a child named proj so that the key is proj.weight, as the checkpoint's Conv3d.
  auto proj = register_module("proj", std::make_shared<torch::nn::Module>());
  proj_weight = proj->register_parameter("weight", new_parameter({c.hidden_size, c.num_channels, c.temporal_patch_size,
                                                                  c.patch_size, c.patch_size}));
}

torch::Tensor Qwen2_5_VisionPatchEmbedImpl::forward(const torch::Tensor& patches) {
  const int64_t width = config_.num_channels * config_.temporal_patch_size * config_.patch_size * config_.patch_size;
  if (patches.dim() != 2 || patches.size(1) != width)
    throw std::invalid_argument("Qwen2.5-VL vision tower: pixel_values_videos must be flattened patches [patches, " +
                                std::to_string(width) + "] (channels x temporal_patch_size x patch_size^2), got " +
                                c10::str(patches.sizes()));
  return at::linear(patches.to(proj_weight.device(), proj_weight.scalar_type()), proj_weight.reshape({config_.hidden_size, width}));
}

Qwen2_5_VLVisionAttentionImpl::Qwen2_5_VLVisionAttentionImpl(const VisionConfig& c)
    : heads_(c.num_attention_heads), head_dim_(c.hidden_size / c.num_attention_heads) {
  qkv = register_module("qkv", Dense(c.hidden_size, 3 * c.hidden_size));
  proj = register_module("proj", Dense(c.hidden_size, c.hidden_size));
}

torch::Tensor Qwen2_5_VLVisionAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                                     const std::vector<int64_t>& segments) {
  const int64_t n = x.size(0);
  const auto qkv_out = linear(qkv, x).view({n, 3, heads_, head_dim_}).permute({1, 0, 2, 3});  // [3, N, H, hd]
  const auto q = rotate_vision(qkv_out[0], cos, sin).transpose(0, 1);  // [H, N, hd]
  const auto k = rotate_vision(qkv_out[1], cos, sin).transpose(0, 1);
  const auto v = qkv_out[2].transpose(0, 1);
  // Each window (or frame) is its own attention: runs of equal length attend as one batch.
  std::vector<torch::Tensor> outs;
  int64_t at = 0;
  for (size_t i = 0; i < segments.size();) {
    const int64_t len = segments[i];
    size_t j = i;
    while (j < segments.size() && segments[j] == len) ++j;
    const int64_t count = static_cast<int64_t>(j - i);
    const auto part = [&](const torch::Tensor& t) {
      return t.narrow(1, at, count * len).reshape({heads_, count, len, head_dim_}).transpose(0, 1);  // [count, H, len, hd]
    };
    const auto o = at::scaled_dot_product_attention(part(q), part(k), part(v));  // [count, H, len, hd]
    outs.push_back(o.permute({0, 2, 1, 3}).reshape({count * len, heads_ * head_dim_}));
    at += count * len;
    i = j;
  }
  return linear(proj, outs.size() == 1 ? outs[0] : torch::cat(outs, 0));
}

Qwen2_5_VLMLPImpl::Qwen2_5_VLMLPImpl(const VisionConfig& c) : act_(c.hidden_act) {
  gate_proj = register_module("gate_proj", Dense(c.hidden_size, c.intermediate_size));
  up_proj = register_module("up_proj", Dense(c.hidden_size, c.intermediate_size));
  down_proj = register_module("down_proj", Dense(c.intermediate_size, c.hidden_size));
}

torch::Tensor Qwen2_5_VLMLPImpl::forward(const torch::Tensor& x) {
  return linear(down_proj, activate(act_, linear(gate_proj, x)) * linear(up_proj, x));
}

Qwen2_5_VLVisionBlockImpl::Qwen2_5_VLVisionBlockImpl(const VisionConfig& c) {
  norm1 = register_module("norm1", Qwen2RMSNorm(c.hidden_size, c.layer_norm_eps));
  norm2 = register_module("norm2", Qwen2RMSNorm(c.hidden_size, c.layer_norm_eps));
  attn = register_module("attn", Qwen2_5_VLVisionAttention(c));
  mlp = register_module("mlp", Qwen2_5_VLMLP(c));
}

torch::Tensor Qwen2_5_VLVisionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                                 const std::vector<int64_t>& segments) {
  auto h = x + attn->forward(norm1(x), cos, sin, segments);
  return h + mlp(norm2(h));
}

Qwen2_5_VLPatchMergerImpl::Qwen2_5_VLPatchMergerImpl(const VisionConfig& c)
    : merged_width_(c.hidden_size * c.spatial_merge_size * c.spatial_merge_size) {
  ln_q = register_module("ln_q", Qwen2RMSNorm(c.hidden_size, 1e-6));
  mlp = register_module("mlp", torch::nn::Sequential());
  mlp->push_back(Dense(merged_width_, merged_width_));
  mlp->push_back(torch::nn::GELU());  // nn.GELU(): the erf form
  mlp->push_back(Dense(merged_width_, c.out_hidden_size));
}

torch::Tensor Qwen2_5_VLPatchMergerImpl::forward(const torch::Tensor& x) {
  return mlp->forward(ln_q(x).view({-1, merged_width_}));
}

void check_qwen2_5_vl_grid(const VisionConfig& c, const torch::Tensor& patches, const Qwen2_5_VLGrid& g) {
  constexpr int64_t kMaxSide = int64_t{1} << 20;
  const int64_t m = c.spatial_merge_size;
  if (g.t < 1 || g.h < 1 || g.w < 1 || g.t > kMaxSide || g.h > kMaxSide || g.w > kMaxSide || g.h % m != 0 || g.w % m != 0)
    throw std::invalid_argument("video_grid_thw [t=" + std::to_string(g.t) + ", h=" + std::to_string(g.h) + ", w=" +
                                std::to_string(g.w) + "] must be positive with h and w multiples of spatial_merge_size (" +
                                std::to_string(m) + ")");
  if (patches.dim() != 2 || patches.size(0) != g.t * g.h * g.w)
    throw std::invalid_argument("video_grid_thw [" + std::to_string(g.t) + ", " + std::to_string(g.h) + ", " + std::to_string(g.w) +
                                "] needs " + std::to_string(g.t * g.h * g.w) + " patches, got " + c10::str(patches.sizes()));
}

Qwen2_5_VLWindows qwen2_5_vl_windows(const VisionConfig& c, const Qwen2_5_VLGrid& g) {
  const int64_t m = c.spatial_merge_size, unit = m * m;
  const int64_t side = c.window_size / m / c.patch_size;  // vit_merger_window_size, in merged tokens
  const int64_t lh = g.h / m, lw = g.w / m;
  const auto index = torch::arange(g.t * lh * lw, torch::kInt64).reshape({g.t, lh, lw});
  // Padded to whole windows (a full window more where the side divides, as transformers pads), -100 marking padding.
  const int64_t pad_h = side - lh % side, pad_w = side - lw % side;
  const int64_t wh = (lh + pad_h) / side, ww = (lw + pad_w) / side;
  auto padded = torch::constant_pad_nd(index, {0, pad_w, 0, pad_h}, -100);
  padded = padded.reshape({g.t, wh, side, ww, side}).permute({0, 1, 3, 2, 4}).reshape({g.t, wh * ww, side, side});
  const auto real = padded != -100;
  const auto counts = real.sum({2, 3}).reshape({-1});
  Qwen2_5_VLWindows out;
  out.index = padded.reshape({-1}).masked_select(real.reshape({-1}));
  const auto* n = counts.data_ptr<int64_t>();
  for (int64_t i = 0; i < counts.numel(); ++i)
    if (n[i] > 0) out.lengths.push_back(n[i] * unit);
  return out;
}

Qwen2_5_VisionTransformerImpl::Qwen2_5_VisionTransformerImpl(const VisionConfig& c) : config_(c) {
  patch_embed = register_module("patch_embed", Qwen2_5_VisionPatchEmbed(c));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) blocks->push_back(Qwen2_5_VLVisionBlock(c));
  merger = register_module("merger", Qwen2_5_VLPatchMerger(c));
}

Qwen2_5_VLVisionOutput Qwen2_5_VisionTransformerImpl::forward(const torch::Tensor& patches, const Qwen2_5_VLGrid& g) {
  check_qwen2_5_vl_grid(config_, patches, g);
  const int64_t m = config_.spatial_merge_size, unit = m * m, n = g.t * g.h * g.w;
  const auto windows = qwen2_5_vl_windows(config_, g);
  auto h = patch_embed(patches);
  const auto device = h.device();
  const auto window_index = windows.index.to(device);
  // permute_input_for_window_attn: merge blocks (unit consecutive patches) reordered window by window.
  const auto by_window = [&](const torch::Tensor& x) {
    return x.view({n / unit, unit, x.size(-1)}).index_select(0, window_index).view({n, x.size(-1)});
  };
  h = by_window(h);
  // The 2D RoPE of one frame in block-major order (VideoLLaMA3's), repeated for every temporal patch.
  auto [cos, sin] = video_llama3_rotary(config_, PatchGrid{g.t, g.h, g.w, m}, device);
  cos = by_window(cos.repeat({g.t, 1}));
  sin = by_window(sin.repeat({g.t, 1}));
  const std::vector<int64_t> frames(static_cast<size_t>(g.t), g.h * g.w);  // cu_seqlens: each frame whole
  const bool checkpoint = checkpointing_pays(*this, gradient_checkpointing);
  for (int64_t i = 0; i < static_cast<int64_t>(blocks->size()); ++i) {
    const bool full = std::find(config_.fullatt_block_indexes.begin(), config_.fullatt_block_indexes.end(), i) !=
                      config_.fullatt_block_indexes.end();
    const std::vector<int64_t>& segments = full ? frames : windows.lengths;
    auto block = blocks[static_cast<size_t>(i)]->as<Qwen2_5_VLVisionBlockImpl>();
    const auto run = [block, c = cos, s = sin, segments](const std::vector<torch::Tensor>& in) {
      return std::vector<torch::Tensor>{block->forward(in[0], c, s, segments)};
    };
    h = checkpoint ? checkpointed(run, {h})[0] : block->forward(h, cos, sin, segments);
  }
  Qwen2_5_VLVisionOutput out;
  out.last_hidden_state = h;
  out.pooler_output = merger(h).index_select(0, torch::argsort(window_index));
  return out;
}

torch::Tensor qwen2_5_vl_patchify(const VisionConfig& c, const torch::Tensor& frames, Qwen2_5_VLGrid& grid) {
  const int64_t p = c.patch_size, m = c.spatial_merge_size, tp = c.temporal_patch_size;
  if (frames.dim() != 4 || frames.size(0) < 1 || frames.size(1) != c.num_channels || frames.size(2) % (p * m) != 0 ||
      frames.size(3) % (p * m) != 0)
    throw std::invalid_argument("a Qwen2.5-VL video must be frames [T >= 1, " + std::to_string(c.num_channels) +
                                ", H, W] with H and W multiples of patch_size x spatial_merge_size (" + std::to_string(p * m) +
                                "), got " + c10::str(frames.sizes()));
  auto video = frames;
  if (const int64_t pad = (tp - frames.size(0) % tp) % tp; pad > 0)
    video = torch::cat({frames, frames.narrow(0, frames.size(0) - 1, 1).expand({pad, -1, -1, -1})}, 0);
  const int64_t ch = video.size(1), gt = video.size(0) / tp, gh = video.size(2) / p, gw = video.size(3) / p;
  grid = {gt, gh, gw};
  // [gt, tp, C, gh/m, m, p, gw/m, m, p] -> (gt, gh/m, gw/m, m, m, C, tp, p, p)
  return video.reshape({gt, tp, ch, gh / m, m, p, gw / m, m, p})
      .permute({0, 3, 6, 4, 7, 2, 1, 5, 8})
      .reshape({gt * gh * gw, ch * tp * p * p});
}

VideoRope qwen2_5_vl_rope_positions(const VisionConfig& c, const Qwen2_5_VLGrid& g, double second_per_grid_t) {
  const int64_t m = c.spatial_merge_size, lt = g.t, lh = g.h / m, lw = g.w / m;
  // (torch.arange(t) * time_interval).long(), time_interval = tokens_per_second * second_per_grid_t in float32.
  const auto interval = torch::tensor(static_cast<float>(second_per_grid_t), torch::kFloat32) * c.tokens_per_second;
  const auto t = (torch::arange(lt, torch::kInt64).to(torch::kFloat32) * interval).to(torch::kInt64);
  const auto grids = torch::meshgrid({t, torch::arange(lh, torch::kInt64), torch::arange(lw, torch::kInt64)}, "ij");
  VideoRope out;
  out.offsets = torch::stack({grids[0], grids[1], grids[2]}, 0).reshape({3, -1});
  out.span = std::max(lh, lw);
  return out;
}

}  // namespace tpo::model
