// The synthetic world's pixels: coloured shapes over a noisy flat background, drawn frame by frame into one uint8
// [T, H, W, 3] tensor. The world (lib/synthetic/) decides what happens; this only draws it, and draws it the same
// bit for bit on every machine: integer noise from a fixed hash, shapes from +, -, * and comparisons on doubles.
// Plain libtorch C++; native/binding/synthetic_binding.cc is the Node side.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tpo::synthetic {

enum class Shape { Circle, Square, Triangle, Diamond, Cross, Ring };

std::optional<Shape> shape_from_name(const std::string& name);
// "circle, square, ..." for error messages.
std::string shape_names();

using Rgb = std::array<uint8_t, 3>;

// Where a shape is on one frame: its centre in pixels from the top-left corner, and its half-size. Every shape
// fits inside the square of side 2 * size around its centre.
struct Pose {
  double x = 0, y = 0, size = 0;
};

// One shape on screen for frames [start, end). Its pose moves linearly from `from` (first frame) to `to` (last
// frame): moving, growing and shrinking are all this one rule, so the renderer needs no list of motions.
struct ShapeEvent {
  Shape shape = Shape::Circle;
  Rgb color{255, 255, 255};
  int64_t start = 0, end = 0;
  Pose from, to;
  int blink_period = 0;  // > 0: shown for this many frames, hidden for as many, and so on from `start`
};

struct VideoSpec {
  int width = 0, height = 0;
  int64_t frames = 0;
  Rgb background{0, 0, 0};
  int noise = 0;       // each background pixel is offset by a value in [-noise, noise], the same for R, G and B
  uint32_t seed = 0;   // the noise's seed: frame f's noise depends on (seed, f) only
  std::vector<ShapeEvent> events;  // drawn in this order where they overlap
};

// The video as uint8 [frames, height, width, 3]. Throws std::invalid_argument for an impossible spec.
torch::Tensor render(const VideoSpec& spec);

}  // namespace tpo::synthetic
