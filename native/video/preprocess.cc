#include "video/preprocess.h"

#include <stdexcept>

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

torch::Tensor preprocess(const torch::Tensor& frames, const PreprocessConfig& config) {
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("preprocess: frames must be uint8 [T, H, W, 3], got " +
                                std::string(c10::toString(frames.scalar_type())) + " " + c10::str(frames.sizes()));
  if (config.mean.size() != 3 || config.std.size() != 3)
    throw std::invalid_argument("preprocess: image_mean and image_std need 3 values each");
  torch::NoGradGuard no_grad;
  const int64_t h = frames.size(1), w = frames.size(2);
  torch::Tensor x = frames.permute({0, 3, 1, 2}).to(torch::kFloat32);  // [T, 3, H, W]

  int64_t out_h = h, out_w = w;
  if (config.resize == PreprocessConfig::Resize::Exact) {
    out_h = config.height;
    out_w = config.width;
  } else if (config.resize == PreprocessConfig::Resize::ShortestEdge) {
    std::tie(out_h, out_w) = shortest_edge_size(h, w, config.shortest_edge);
  }
  if (out_h < 1 || out_w < 1) throw std::invalid_argument("preprocess: resize target must be positive");
  // PIL (which transformers' processors resize with) filters the width first, then the height, and stores each
  // pass as uint8: values the filter's negative lobes push past 0 or 255 are clipped between the passes. We do the
  // same two passes with libtorch's antialiased filters (PIL's kernels), rounding and clamping after each.
  if (out_w != w) x = resize_pass(x, x.size(2), out_w, config.bicubic);
  if (out_h != h) x = resize_pass(x, out_h, x.size(3), config.bicubic);
  if (config.center_crop) {
    const int64_t ch = config.crop_height, cw = config.crop_width;
    if (ch < 1 || cw < 1 || ch > out_h || cw > out_w)
      throw std::invalid_argument("preprocess: crop " + std::to_string(ch) + "x" + std::to_string(cw) +
                                  " does not fit in the resized " + std::to_string(out_h) + "x" + std::to_string(out_w));
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
  return x.contiguous();
}

}  // namespace tpo::video
