#include "video/sampling.h"

#include <cmath>
#include <stdexcept>

namespace tpo::video {
namespace {

[[noreturn]] void fail(const VideoInfo& info, const std::string& why) {
  throw std::invalid_argument(info.path + ": " + why);
}

bool inside(double t, const TimeRange& r) { return t >= r.first && t < r.second; }

// The frame indices a Uniform or Fps plan may choose from: every frame, less those outside `range` or inside
// an excluded range.
std::vector<int64_t> candidate_frames(const SamplePlan& plan, const VideoInfo& info) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(info.frame_count));
  for (int64_t i = 0; i < info.frame_count; ++i) {
    const double t = static_cast<double>(i) / info.fps;
    if (plan.range && !inside(t, *plan.range)) continue;
    bool excluded = false;
    for (const TimeRange& r : plan.exclude) excluded = excluded || inside(t, r);
    if (!excluded) out.push_back(i);
  }
  return out;
}

std::vector<int64_t> pick(const std::vector<int64_t>& from, const std::vector<int64_t>& positions) {
  std::vector<int64_t> out;
  out.reserve(positions.size());
  for (int64_t p : positions) out.push_back(from[static_cast<size_t>(p)]);
  return out;
}

}  // namespace

std::vector<int64_t> linspace_indices(int64_t count, int64_t n) {
  std::vector<int64_t> out;
  if (n <= 0 || count <= 0) return out;
  out.reserve(static_cast<size_t>(n));
  if (n == 1) return {0};
  // numpy: step = (stop - start) / (num - 1); y = arange(num) * step + start; y[-1] = stop; then truncation.
  const double stop = static_cast<double>(count - 1);
  const double step = stop / static_cast<double>(n - 1);
  for (int64_t k = 0; k < n - 1; ++k) out.push_back(static_cast<int64_t>(static_cast<double>(k) * step));
  out.push_back(count - 1);
  return out;
}

std::vector<Target> resolve_plan(const SamplePlan& plan, const VideoInfo& info) {
  // More frames than any model could take: a count this large is a mistake, and its index list alone is gigabytes.
  constexpr int64_t kMaxFrames = 10'000'000;
  if (plan.frames > kMaxFrames || plan.max_frames > kMaxFrames)
    fail(info, "a plan of more than " + std::to_string(kMaxFrames) + " frames");
  std::vector<Target> targets;
  auto from_indices = [&](const std::vector<int64_t>& indices) {
    for (int64_t i : indices) targets.push_back({static_cast<double>(i) / info.fps, true, i});
  };
  switch (plan.kind) {
    case SamplePlan::Kind::Uniform:
    case SamplePlan::Kind::Fps: {
      if (info.frame_count <= 0 || info.fps <= 0) fail(info, "has no frames to sample");
      const std::vector<int64_t> candidates = candidate_frames(plan, info);
      if (candidates.empty()) fail(info, "no frame lies inside the requested range");
      const auto n = static_cast<int64_t>(candidates.size());
      if (plan.kind == SamplePlan::Kind::Uniform) {
        if (plan.frames < 1) fail(info, "uniform sampling needs frames >= 1");
        from_indices(pick(candidates, linspace_indices(n, plan.frames)));
      } else {
        if (!(plan.fps > 0)) fail(info, "fps sampling needs fps > 0");
        // LLaVA-Video's load_video: every round(avg_fps / fps)-th frame (Python's round: ties to even), then
        // uniform sampling when that exceeds frames_upbound.
        const auto step = std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(info.fps / plan.fps)));
        std::vector<int64_t> positions;
        for (int64_t p = 0; p < n; p += step) positions.push_back(p);
        if (plan.max_frames > 0 && static_cast<int64_t>(positions.size()) > plan.max_frames)
          positions = linspace_indices(n, plan.max_frames);
        from_indices(pick(candidates, positions));
      }
      break;
    }
    case SamplePlan::Kind::Indices:
      if (plan.indices.empty()) fail(info, "no frame indices given");
      for (int64_t i : plan.indices) {
        if (i < 0) fail(info, "frame index " + std::to_string(i) + " is negative");
        if (info.frame_count_exact && i >= info.frame_count)
          fail(info, "frame index " + std::to_string(i) + " is past the last frame (" +
                         std::to_string(info.frame_count - 1) + ")");
      }
      from_indices(plan.indices);
      break;
    case SamplePlan::Kind::Timestamps:
      if (plan.timestamps.empty()) fail(info, "no timestamps given");
      for (double t : plan.timestamps) {
        if (!(t >= 0) || !std::isfinite(t)) fail(info, "timestamp " + std::to_string(t) + " is not a time >= 0");
        targets.push_back({t, false, -1});
      }
      break;
  }
  return targets;
}

}  // namespace tpo::video
