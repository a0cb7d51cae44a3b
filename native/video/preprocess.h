// The vision tower's image preprocessing, on decoded frames: what Hugging Face's SiglipImageProcessor and
// CLIPImageProcessor do with PIL and numpy, done with libtorch on the whole [T, H, W, 3] batch at once.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace tpo::video {

struct PreprocessConfig {
  enum class Resize { None, Exact, ShortestEdge };
  Resize resize = Resize::Exact;
  int height = 0, width = 0;    // Exact: the output size (SigLIP: 384 x 384)
  int shortest_edge = 0;        // ShortestEdge: the short side's length, aspect kept (CLIP: 336)
  bool bicubic = true;          // else bilinear (PIL resample 3 / 2)
  bool center_crop = false;
  int crop_height = 0, crop_width = 0;
  bool rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool normalize = true;
  std::vector<double> mean{0.5, 0.5, 0.5};
  std::vector<double> std{0.5, 0.5, 0.5};
};

// uint8 [T, H, W, 3] RGB frames -> float32 [T, 3, S_h, S_w] pixel values.
torch::Tensor preprocess(const torch::Tensor& frames, const PreprocessConfig& config);

// TimeWarp's implicit dis-preferred input: frames degraded so that details are lost but the scene stays
// recognisable. Each frame is down-scaled by `scale` (area average) and back up (bilinear), and its colours jittered:
// brightness, contrast and saturation each multiplied by a factor drawn uniformly from [1 - j, 1 + j] per frame.
struct CorruptConfig {
  double scale = 0.25;
  double brightness = 0.4, contrast = 0.4, saturation = 0.4;
  uint64_t seed = 0;
};

// uint8 [T, H, W, 3] -> uint8 [T, H, W, 3], the same frames corrupted (a function of the frames and the seed).
torch::Tensor corrupt_frames(const torch::Tensor& frames, const CorruptConfig& config);

}  // namespace tpo::video
