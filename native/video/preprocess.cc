#include "video/preprocess.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "runtime/memory.h"

namespace tpo::video {
namespace {


// Output size of transformers' get_resize_output_image_size(default_to_square=False): the short side becomes
// `edge` and the long side int(edge * long / short) (truncated, as Python's int()).
std::pair<int64_t, int64_t> shortest_edge_size(int64_t h, int64_t w, int64_t edge) {
  if (h <= w) return {edge, static_cast<int64_t>(static_cast<double>(edge) * w / h)};
  return {static_cast<int64_t>(static_cast<double>(edge) * h / w), edge};
}

torch::Tensor resize_pass(const torch::Tensor& x, int64_t out_h, int64_t out_w, bool bicubic) {
  namespace F = torch::nn::functional;
  auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{out_h, out_w}).align_corners(false).antialias(true);
  if (bicubic) options.mode(torch::kBicubic);
  else options.mode(torch::kBilinear);
  return F::interpolate(x, options).round_().clamp_(0, 255);
}

}  // namespace

namespace {

// The whole pipeline on a few frames: uint8 [t, H, W, 3] -> float32 [t, 3, S_h, S_w].
torch::Tensor preprocess_chunk(const torch::Tensor& frames, const PreprocessConfig& config, int64_t out_h, int64_t out_w) {
  const int64_t h = frames.size(1), w = frames.size(2);
  torch::Tensor x = frames.permute({0, 3, 1, 2}).to(torch::kFloat32);  // [t, 3, H, W]
  // PIL (which transformers' processors resize with) filters the width first, then the height, and stores each
  // pass as uint8: values the filter's negative lobes push past 0 or 255 are clipped between the passes. We do the
  // same two passes with libtorch's antialiased filters (PIL's kernels), rounding and clamping after each.
  if (out_w != w) x = resize_pass(x, x.size(2), out_w, config.bicubic);
  if (out_h != h) x = resize_pass(x, out_h, x.size(3), config.bicubic);
  if (config.center_crop) {
    const int64_t ch = config.crop_height, cw = config.crop_width;
    const int64_t top = (out_h - ch) / 2, left = (out_w - cw) / 2;  // transformers: int((h - ch) / 2)
    x = x.narrow(2, top, ch).narrow(3, left, cw);
  }
  // transformers rescales in float64 and casts to float32; so do we, for the same bits.
  if (config.rescale) x = (x.to(torch::kFloat64) * config.rescale_factor).to(torch::kFloat32);
  if (config.normalize) {
    auto mean = torch::tensor(config.mean, torch::kFloat64).to(torch::kFloat32).view({1, 3, 1, 1});
    auto std = torch::tensor(config.std, torch::kFloat64).to(torch::kFloat32).view({1, 3, 1, 1});
    x = (x - mean) / std;
  }
  return x;
}

}  // namespace

torch::Tensor preprocess(const torch::Tensor& frames, const PreprocessConfig& config) {
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("preprocess: frames must be uint8 [T, H, W, 3], got " +
                                std::string(c10::toString(frames.scalar_type())) + " " + c10::str(frames.sizes()));
  if (config.mean.size() != 3 || config.std.size() != 3)
    throw std::invalid_argument("preprocess: image_mean and image_std need 3 values each");
  for (const double v : config.std)
    if (!(v != 0) || !std::isfinite(v)) throw std::invalid_argument("preprocess: image_std values must be finite and non-zero");
  for (const double v : config.mean)
    if (!std::isfinite(v)) throw std::invalid_argument("preprocess: image_mean values must be finite");
  if (config.rescale && !std::isfinite(config.rescale_factor)) throw std::invalid_argument("preprocess: rescale_factor must be finite");
  if (frames.size(1) < 1 || frames.size(2) < 1) throw std::invalid_argument("preprocess: frames are empty (" + c10::str(frames.sizes()) + ")");
  torch::NoGradGuard no_grad;
  const int64_t t = frames.size(0), h = frames.size(1), w = frames.size(2);

  int64_t out_h = h, out_w = w;
  if (config.resize == PreprocessConfig::Resize::Exact) {
    out_h = config.height;
    out_w = config.width;
  } else if (config.resize == PreprocessConfig::Resize::ShortestEdge) {
    if (config.shortest_edge < 1) throw std::invalid_argument("preprocess: shortest_edge must be positive");
    std::tie(out_h, out_w) = shortest_edge_size(h, w, config.shortest_edge);
  }
  constexpr int64_t kMaxSide = 16384;
  if (out_h < 1 || out_w < 1) throw std::invalid_argument("preprocess: resize target must be positive");
  if (out_h > kMaxSide || out_w > kMaxSide)
    throw std::invalid_argument("preprocess: resize target " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                                " is larger than " + std::to_string(kMaxSide));
  int64_t final_h = out_h, final_w = out_w;
  if (config.center_crop) {
    const int64_t ch = config.crop_height, cw = config.crop_width;
    if (ch < 1 || cw < 1 || ch > out_h || cw > out_w)
      throw std::invalid_argument("preprocess: crop " + std::to_string(ch) + "x" + std::to_string(cw) +
                                  " does not fit in the resized " + std::to_string(out_h) + "x" + std::to_string(out_w));
    final_h = ch;
    final_w = cw;
  }
  // A few frames at a time, so float32 copies exist for a chunk only (~64 MB of input), never for the whole video
  // at its own size (an 8K video of 16 frames was 6 GB of them); each frame's numbers are the same either way.
  runtime::check_allocation(static_cast<uint64_t>(t) * 3 * final_h * final_w * 4,
                            "preprocess: " + std::to_string(t) + " frames of float32 3x" + std::to_string(final_h) + "x" + std::to_string(final_w));
  constexpr int64_t kChunkBytes = int64_t{64} << 20;
  const int64_t per_frame = std::max({h * w, out_h * w, out_h * out_w}) * 3 * 4;
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / per_frame);
  if (chunk >= t) return preprocess_chunk(frames, config, out_h, out_w).contiguous();
  auto out = torch::empty({t, 3, final_h, final_w}, torch::kFloat32);
  for (int64_t begin = 0; begin < t; begin += chunk) {
    const int64_t n = std::min(chunk, t - begin);
    out.narrow(0, begin, n).copy_(preprocess_chunk(frames.narrow(0, begin, n), config, out_h, out_w));
  }
  return out;
}

torch::Tensor corrupt_frames(const torch::Tensor& frames, const CorruptConfig& config) {
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("corrupt_frames: frames must be uint8 [T, H, W, 3]");
  if (!(config.scale > 0 && config.scale <= 1)) throw std::invalid_argument("corrupt_frames: scale must lie in (0, 1]");
  for (const double j : {config.brightness, config.contrast, config.saturation})
    if (!(j >= 0 && j < 1)) throw std::invalid_argument("corrupt_frames: jitter amounts must lie in [0, 1)");
  namespace F = torch::nn::functional;
  const int64_t t = frames.size(0), h = frames.size(1), w = frames.size(2);
  if (t == 0 || h == 0 || w == 0) return frames.clone();
  torch::NoGradGuard no_grad;
  const int64_t sh = std::max<int64_t>(1, std::lround(h * config.scale)), sw = std::max<int64_t>(1, std::lround(w * config.scale));
  // One generator seeded here: the same frames and seed give the same corruption on every machine. Every factor
  // is drawn first, so the frames can then go through a chunk at a time (bounded float32 memory) with the same bits.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(config.seed);
  const auto factor = [&](double j) {
    return (torch::rand({t, 1, 1, 1}, gen, torch::TensorOptions().dtype(torch::kFloat64)) * 2 - 1).mul(j).add(1).to(torch::kFloat32);
  };
  const auto b_all = factor(config.brightness), c_all = factor(config.contrast), s_all = factor(config.saturation);
  const auto weights = torch::tensor({0.299f, 0.587f, 0.114f}).view({1, 3, 1, 1});
  constexpr int64_t kChunkBytes = int64_t{64} << 20;
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / (h * w * 3 * 4));
  auto out = torch::empty_like(frames, torch::MemoryFormat::Contiguous);
  for (int64_t begin = 0; begin < t; begin += chunk) {
    const int64_t n = std::min(chunk, t - begin);
    const auto b = b_all.narrow(0, begin, n), c = c_all.narrow(0, begin, n), s = s_all.narrow(0, begin, n);
    auto x = frames.narrow(0, begin, n).permute({0, 3, 1, 2}).to(torch::kFloat32) / 255.0;  // [n, 3, H, W]
    x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{sh, sw}).mode(torch::kArea));
    x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
    x = x * b;
    const auto gray = (x * weights).sum(1, true);
    x = (x - gray.mean({2, 3}, true)) * c + gray.mean({2, 3}, true);  // contrast about the frame's mean grey
    const auto gray2 = (x * weights).sum(1, true);
    x = (x - gray2) * s + gray2;  // saturation about each pixel's grey
    out.narrow(0, begin, n).copy_((x.clamp(0, 1) * 255.0).round().to(torch::kUInt8).permute({0, 2, 3, 1}));
  }
  return out;
}

}  // namespace tpo::video
