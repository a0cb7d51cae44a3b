// Reading a video's own layout from JS arguments: the text around each frame (InternVL's, VideoLLaMA3's time
// stamps) and Qwen2.5-VL's grid and seconds per temporal patch, as encodeVideo, setFrameText and the training
// steps take them. Every failure is a TypeError (ERR_TPO_ARGUMENT) naming the field.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "binding/js_args.h"
#include "model/video_lm.h"

namespace tpo::binding {

// [{before, after}, ...]: token ids around each frame, one entry per frame.
std::vector<model::VideoLMImpl::FrameText> frame_text_arg(Napi::Env env, const Napi::Value& value, const std::string& what);

// video_grid_thw of one video: an integer Tensor of 3 values ([3] or [1, 3]).
model::Qwen2_5_VLGrid video_grid_arg(Napi::Env env, const Napi::Value& value, const std::string& what);

// A record's video: `video` (frames or visual tokens) and beside it `frameText`, `videoGridThw`, `secondPerGridTs`.
model::VideoInput video_input_arg(Napi::Env env, const Args& args, const std::string& what);

}  // namespace tpo::binding
