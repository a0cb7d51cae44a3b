// Which frames to take from a video: the sampling conventions of LLaVA-Video, LongVA and TPO, as pure functions of
// the video's metadata. native/video/reader.cc then decodes exactly the frames chosen here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tpo::video {

struct VideoInfo {
  std::string path;
  bool is_frame_folder = false;
  double duration = 0;          // seconds
  double fps = 0;               // average frame rate
  double start_time = 0;        // seconds: the first frame's timestamp (timestamps we take and give are relative)
  int64_t frame_count = 0;
  bool frame_count_exact = false;  // from the container's index or a count; else duration x fps
  int width = 0;
  int height = 0;
  std::string codec;
  std::string pixel_format;
};

using TimeRange = std::pair<double, double>;  // [start, end) in seconds from the video's start

struct SamplePlan {
  enum class Kind { Uniform, Fps, Timestamps, Indices };
  Kind kind = Kind::Uniform;
  int64_t frames = 0;        // Uniform: how many
  double fps = 0;            // Fps: target rate
  int64_t max_frames = 0;    // Fps: LLaVA-Video's frames_upbound (0: no bound)
  std::optional<TimeRange> range;  // Uniform, Fps: only frames inside
  std::vector<TimeRange> exclude;  // Uniform, Fps: frames inside these are removed (TPO's segment removal)
  std::vector<double> timestamps;  // Timestamps: seconds from the start; each takes the first frame at or after it
  std::vector<int64_t> indices;    // Indices: frame numbers at the average frame rate
};

// A frame to take: either a frame index (the frame nearest index / fps) or a timestamp (the first frame shown at
// or after it, as `ffmpeg -ss T` picks).
struct Target {
  double time = 0;  // seconds from the video's start
  bool nearest = false;
  int64_t index = -1;
};

// np.linspace(0, count - 1, n, dtype=int): the uniform sampling of TPO, LongVA and LLaVA-Video.
std::vector<int64_t> linspace_indices(int64_t count, int64_t n);

// The targets of a plan, in the plan's order. Throws (naming the field) for a plan that selects nothing.
std::vector<Target> resolve_plan(const SamplePlan& plan, const VideoInfo& info);

}  // namespace tpo::video
