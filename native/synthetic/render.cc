#include "synthetic/render.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace tpo::synthetic {
namespace {

constexpr const char* kShapeNames[] = {"circle", "square", "triangle", "diamond", "cross", "ring"};

// SplitMix64's finaliser. torch's generators are not promised to give the same numbers across versions; this
// hash is, on every platform, so a seed means the same noise forever.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Whether a point (dx, dy) from the centre lies inside a shape of half-size r (y grows downwards).
bool inside(Shape shape, double dx, double dy, double r) {
  const double ax = std::abs(dx), ay = std::abs(dy);
  switch (shape) {
    case Shape::Circle: return dx * dx + dy * dy <= r * r;
    case Shape::Square: return ax <= 0.85 * r && ay <= 0.85 * r;  // a little smaller: about the circle's area
    case Shape::Triangle: return dy >= -r && dy <= r && ax <= 0.5 * (dy + r);  // apex up, base 2r wide
    case Shape::Diamond: return ax + ay <= r;
    case Shape::Cross: {
      const double arm = 0.34 * r;
      return (ax <= arm && ay <= r) || (ay <= arm && ax <= r);
    }
    case Shape::Ring: {
      const double d2 = dx * dx + dy * dy;
      return d2 <= r * r && d2 >= 0.3025 * r * r;  // inner radius 0.55 r
    }
  }
  return false;
}

void fill_background(uint8_t* frame, const VideoSpec& spec, int64_t f) {
  const int64_t pixels = static_cast<int64_t>(spec.width) * spec.height;
  const Rgb& bg = spec.background;
  if (spec.noise <= 0) {
    for (int64_t p = 0; p < pixels; ++p) std::copy(bg.begin(), bg.end(), frame + 3 * p);
    return;
  }
  const uint64_t key = mix64((static_cast<uint64_t>(spec.seed) << 32) ^ static_cast<uint64_t>(f));
  const auto span = static_cast<uint64_t>(2 * spec.noise + 1);
  for (int64_t p = 0; p < pixels; ++p) {
    const int n = static_cast<int>(mix64(key + static_cast<uint64_t>(p) * 0x9e3779b97f4a7c15ULL) % span) - spec.noise;
    for (int c = 0; c < 3; ++c) frame[3 * p + c] = static_cast<uint8_t>(std::clamp(bg[c] + n, 0, 255));
  }
}

bool shown(const ShapeEvent& e, int64_t f) {
  if (f < e.start || f >= e.end) return false;
  return e.blink_period <= 0 || ((f - e.start) / e.blink_period) % 2 == 0;
}

void draw(uint8_t* frame, int width, int height, const ShapeEvent& e, int64_t f) {
  const double t = e.end - e.start > 1 ? static_cast<double>(f - e.start) / static_cast<double>(e.end - e.start - 1) : 0.0;
  const double x = e.from.x + (e.to.x - e.from.x) * t;
  const double y = e.from.y + (e.to.y - e.from.y) * t;
  const double r = e.from.size + (e.to.size - e.from.size) * t;
  // Pixel (px, py) covers [px, px + 1) x [py, py + 1); its centre decides.
  const int x0 = std::max(0, static_cast<int>(std::floor(x - r)));
  const int x1 = std::min(width - 1, static_cast<int>(std::ceil(x + r)));
  const int y0 = std::max(0, static_cast<int>(std::floor(y - r)));
  const int y1 = std::min(height - 1, static_cast<int>(std::ceil(y + r)));
  for (int py = y0; py <= y1; ++py)
    for (int px = x0; px <= x1; ++px)
      if (inside(e.shape, px + 0.5 - x, py + 0.5 - y, r))
        std::copy(e.color.begin(), e.color.end(), frame + 3 * (static_cast<int64_t>(py) * width + px));
}

void validate(const VideoSpec& spec) {
  auto fail = [](const std::string& why) { throw std::invalid_argument("video spec: " + why); };
  if (spec.width < 1 || spec.height < 1 || spec.width > 4096 || spec.height > 4096)
    fail("width and height must be in [1, 4096]");
  if (spec.frames < 1 || spec.frames > 1'000'000) fail("frames must be in [1, 1000000]");
  if (spec.noise < 0 || spec.noise > 255) fail("noise must be in [0, 255]");
  for (size_t i = 0; i < spec.events.size(); ++i) {
    const ShapeEvent& e = spec.events[i];
    const std::string where = "events[" + std::to_string(i) + "]: ";
    if (e.start < 0 || e.end <= e.start || e.end > spec.frames)
      fail(where + "frames [" + std::to_string(e.start) + ", " + std::to_string(e.end) + ") are not inside [0, " +
           std::to_string(spec.frames) + ")");
    for (const Pose& p : {e.from, e.to})
      if (!std::isfinite(p.x) || !std::isfinite(p.y) || !std::isfinite(p.size) || p.size < 0)
        fail(where + "a pose needs finite x, y and a size >= 0");
  }
}

}  // namespace

std::optional<Shape> shape_from_name(const std::string& name) {
  for (size_t i = 0; i < std::size(kShapeNames); ++i)
    if (name == kShapeNames[i]) return static_cast<Shape>(i);
  return std::nullopt;
}

std::string shape_names() {
  std::string out;
  for (const char* name : kShapeNames) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

torch::Tensor render(const VideoSpec& spec) {
  validate(spec);
  torch::Tensor out = torch::empty({spec.frames, spec.height, spec.width, 3}, torch::kUInt8);
  uint8_t* data = out.data_ptr<uint8_t>();
  const int64_t frame_bytes = static_cast<int64_t>(spec.width) * spec.height * 3;
  for (int64_t f = 0; f < spec.frames; ++f) {
    uint8_t* frame = data + f * frame_bytes;
    fill_background(frame, spec, f);
    for (const ShapeEvent& e : spec.events)
      if (shown(e, f)) draw(frame, spec.width, spec.height, e, f);
  }
  return out;
}

}  // namespace tpo::synthetic
