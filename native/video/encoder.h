// Writes RGB frames as a real video file with libavcodec / libavformat, so that videos tpo makes (the synthetic
// world's) go through the same decode path as any other. H.264 (libx264) when this FFmpeg has it, else MPEG-4
// part 2 (FFmpeg's own encoder, always built in); yuv420p, BT.601 limited range, tagged so, as the reader assumes
// for untagged video; constant frame rate. The container follows the file's extension (.mp4, .mkv, .avi, ...).
// The file appears whole or not at all: it is written to a temporary name beside it and renamed (io/atomic_file).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace tpo::video {

struct EncodeOptions {
  double fps = 8;
  std::string codec = "auto";       // "auto" (h264, else mpeg4), "h264" or "mpeg4"
  int crf = 18;                     // libx264's constant rate factor: 0 best .. 51 worst; mpeg4 maps it to a qscale
  std::string preset = "veryfast";  // libx264's speed / size trade-off
  int gop = 0;                      // frames between keyframes; 0: two seconds' worth
  int threads = 1;                  // encoder threads; small frames gain nothing from more
};

struct EncodeResult {
  std::string codec;  // the encoder used ("libx264", "mpeg4")
  int64_t frames = 0;
  int64_t bytes = 0;  // the file's size
};

// `frames`: uint8 [T, H, W, 3] RGB, T >= 1, H and W even (yuv420p halves them for colour).
EncodeResult encode(const torch::Tensor& frames, const std::string& path, const EncodeOptions& options);

}  // namespace tpo::video
