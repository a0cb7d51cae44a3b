#include "binding/video_args.h"

#include <cmath>

#include "binding/errors.h"
#include "binding/tensor.h"

namespace tpo::binding {

std::vector<model::VideoLMImpl::FrameText> frame_text_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsArray()) throw_argument_error(env, what + ": expected an array of {before, after} id lists, one per frame");
  const auto list = value.As<Napi::Array>();
  std::vector<model::VideoLMImpl::FrameText> text;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    const std::string item = what + ": frame " + std::to_string(i + 1);
    const Args args(env, list.Get(i), item);
    model::VideoLMImpl::FrameText t;
    for (const auto& [key, out] : {std::pair{"before", &t.before}, {"after", &t.after}}) {
      if (!args.has(key)) continue;
      for (const double v : number_array(env, args.get(key), item + " " + key)) {
        if (!(v >= 0) || v != std::floor(v) || v > 9007199254740991.0) throw_argument_error(env, item + " " + key + ": ids must be integers >= 0");
        out->push_back(static_cast<int64_t>(v));
      }
    }
    text.push_back(std::move(t));
  }
  return text;
}

model::Qwen2_5_VLGrid video_grid_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  const auto thw = TensorHandle::unwrap(env, value, what);
  if (thw.numel() != 3 || c10::isFloatingType(thw.scalar_type()) || thw.scalar_type() == torch::kBool)
    throw_argument_error(env, what + " must be one video's integer [t, h, w], got " + c10::str(thw.sizes()));
  const auto v = thw.to(torch::kInt64).reshape({3});
  return {v[0].item<int64_t>(), v[1].item<int64_t>(), v[2].item<int64_t>()};
}

model::VideoInput video_input_arg(Napi::Env env, const Args& args, const std::string& what) {
  model::VideoInput in;
  if (args.has("video")) in.video = TensorHandle::unwrap(env, args.get("video"), what + ".video");
  if (args.has("frameText")) in.frame_text = frame_text_arg(env, args.get("frameText"), what + ".frameText");
  if (args.has("videoGridThw")) in.grid = video_grid_arg(env, args.get("videoGridThw"), what + ".videoGridThw");
  if (args.has("secondPerGridTs")) {
    const double s = args.number("secondPerGridTs", -1);
    if (!std::isfinite(s) || s < 0) throw_argument_error(env, what + ".secondPerGridTs must be a finite number >= 0");
    in.second_per_grid_t = s;
  }
  if (!in.video.defined() && (in.frame_text || in.grid || in.second_per_grid_t))
    throw_argument_error(env, what + ": frameText, videoGridThw and secondPerGridTs go with a video");
  return in;
}

}  // namespace tpo::binding
