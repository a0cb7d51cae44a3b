// Video files (anything FFmpeg's libavformat opens: mp4, mkv, webm, avi, ...) and folders of numbered JPEG/PNG
// frames (as LLaVA-Hound stores videos): metadata, and the frames a SamplePlan chooses as one uint8 tensor.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "video/sampling.h"

namespace tpo::video {

struct ReadOptions {
  int width = 0;   // output size; 0 and 0: the video's own; one of them 0: keep the aspect ratio
  int height = 0;
  // With width and height 0: frames larger than this box on both sides are scaled down as they are decoded
  // (aspect ratio kept, never up) until one side meets it. A tower resizes frames to a few hundred pixels anyway;
  // an 8K frame then never exists in memory beyond FFmpeg's own decoded picture.
  int at_least_width = 0;
  int at_least_height = 0;
  int threads = 0;              // decoder threads; 0: FFmpeg picks (one per core)
  double folder_fps = 1.0;      // the frame rate a folder of frames stands for
  bool count_frames = false;    // probe: count packets for an exact frame count when the container has none
  double seek_threshold = 2.0;  // seconds: a target further ahead than this is reached by seeking, not decoding
  double timeout = 0;           // seconds for the whole call; 0: none
};

struct DecodedVideo {
  torch::Tensor frames;             // uint8 [T, H, W, 3], RGB, in the plan's order
  std::vector<double> timestamps;   // each frame's own timestamp, seconds from the video's start
  std::vector<int64_t> indices;     // each frame's index at the average frame rate
  VideoInfo info;
};

VideoInfo probe(const std::string& path, const ReadOptions& options);
DecodedVideo decode(const std::string& path, const SamplePlan& plan, const ReadOptions& options);

}  // namespace tpo::video
