// videoProbe / videoDecode / videoPreprocess: native/video as Promises, one call per video.
#include <napi.h>

#include <cmath>

#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/js_args.h"
#include "binding/tensor.h"
#include "video/preprocess.h"
#include "video/reader.h"

namespace tpo::binding {
namespace {

using video::PreprocessConfig;
using video::ReadOptions;
using video::SamplePlan;
using video::TimeRange;
using video::VideoInfo;

Napi::Object info_to_js(Napi::Env env, const VideoInfo& info) {
  auto out = Napi::Object::New(env);
  out.Set("path", info.path);
  out.Set("isFrameFolder", info.is_frame_folder);
  out.Set("duration", info.duration);
  out.Set("fps", info.fps);
  out.Set("startTime", info.start_time);
  out.Set("frameCount", static_cast<double>(info.frame_count));
  out.Set("frameCountExact", info.frame_count_exact);
  out.Set("width", info.width);
  out.Set("height", info.height);
  out.Set("codec", info.codec);
  out.Set("pixelFormat", info.pixel_format);
  return out;
}

ReadOptions read_options(Napi::Env env, const Napi::Value& value) {
  ReadOptions o;
  if (value.IsUndefined() || value.IsNull()) return o;
  const Args args(env, value, "video options");
  o.width = args.integer("width", 0);
  o.height = args.integer("height", 0);
  if (args.has("atLeast")) {
    const Args box(env, args.get("atLeast"), "video options: atLeast");
    o.at_least_width = box.integer("width", 0);
    o.at_least_height = box.integer("height", 0);
  }
  o.threads = args.integer("threads", 0);
  if (o.threads < 0 || o.threads > 256) throw_argument_error(env, "video options: threads must be in [0, 256]");
  o.folder_fps = args.number("folderFps", o.folder_fps);
  o.count_frames = args.boolean("countFrames", false);
  o.seek_threshold = args.number("seekThreshold", o.seek_threshold);
  o.timeout = args.number("timeout", 0);
  return o;
}

TimeRange time_range(Napi::Env env, const Napi::Value& value, const std::string& what) {
  const std::vector<double> pair = number_array(env, value, what);
  if (pair.size() != 2 || !(pair[0] <= pair[1])) throw_argument_error(env, what + " must be [start, end] with start <= end");
  return {pair[0], pair[1]};
}

SamplePlan sample_plan(Napi::Env env, const Napi::Value& value) {
  const Args args(env, value, "sampling plan");
  SamplePlan plan;
  const std::string kind = args.string("kind");
  if (kind == "uniform") {
    plan.kind = SamplePlan::Kind::Uniform;
    plan.frames = args.integer("frames", 0);
  } else if (kind == "fps") {
    plan.kind = SamplePlan::Kind::Fps;
    plan.fps = args.number("fps", 0);
    plan.max_frames = args.integer("maxFrames", 0);
  } else if (kind == "timestamps") {
    plan.kind = SamplePlan::Kind::Timestamps;
    plan.timestamps = number_array(env, args.get("timestamps"), "sampling plan: timestamps");
  } else if (kind == "indices") {
    plan.kind = SamplePlan::Kind::Indices;
    for (double i : number_array(env, args.get("indices"), "sampling plan: indices")) {
      if (i != std::floor(i) || i < 0 || i > 9007199254740991.0)
        throw_argument_error(env, "sampling plan: indices must be integers >= 0");
      plan.indices.push_back(static_cast<int64_t>(i));
    }
  } else {
    throw_argument_error(env, "sampling plan: kind must be uniform, fps, timestamps or indices, got '" + kind + "'");
  }
  if (args.has("range")) plan.range = time_range(env, args.get("range"), "sampling plan: range");
  if (args.has("exclude")) {
    if (!args.get("exclude").IsArray()) throw_argument_error(env, "sampling plan: exclude must be an array of [start, end]");
    auto list = args.get("exclude").As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i)
      plan.exclude.push_back(time_range(env, list.Get(i), "sampling plan: exclude[" + std::to_string(i) + "]"));
  }
  return plan;
}

PreprocessConfig preprocess_config(Napi::Env env, const Napi::Value& value) {
  const Args args(env, value, "preprocess config");
  PreprocessConfig c;
  const std::string resize = args.string("resize");
  if (resize == "none") c.resize = PreprocessConfig::Resize::None;
  else if (resize == "exact") c.resize = PreprocessConfig::Resize::Exact;
  else if (resize == "shortestEdge") c.resize = PreprocessConfig::Resize::ShortestEdge;
  else throw_argument_error(env, "preprocess config: resize must be none, exact or shortestEdge");
  c.height = args.integer("height", 0);
  c.width = args.integer("width", 0);
  c.shortest_edge = args.integer("shortestEdge", 0);
  c.bicubic = args.string("resample") != "bilinear";
  c.center_crop = args.boolean("centerCrop", false);
  c.crop_height = args.integer("cropHeight", 0);
  c.crop_width = args.integer("cropWidth", 0);
  c.rescale = args.boolean("rescale", true);
  c.rescale_factor = args.number("rescaleFactor", c.rescale_factor);
  c.normalize = args.boolean("normalize", true);
  if (args.has("mean")) c.mean = number_array(env, args.get("mean"), "preprocess config: mean");
  if (args.has("std")) c.std = number_array(env, args.get("std"), "preprocess config: std");
  return c;
}

Napi::Value probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = string_arg(env, info[0], "videoProbe: path");
  const ReadOptions options = read_options(env, info[1]);
  return run_async(
      env, "videoProbe", [path, options] { return video::probe(path, options); },
      [](Napi::Env env, VideoInfo result) -> Napi::Value { return info_to_js(env, result); }, Runs::OnPool);
}

Napi::Value decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = string_arg(env, info[0], "videoDecode: path");
  const SamplePlan plan = sample_plan(env, info[1]);
  const ReadOptions options = read_options(env, info[2]);
  return run_async(
      env, "videoDecode", [path, plan, options] { return video::decode(path, plan, options); },
      [](Napi::Env env, video::DecodedVideo result) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("frames", TensorHandle::wrap(env, std::move(result.frames)));
        auto timestamps = Napi::Float64Array::New(env, result.timestamps.size());
        std::copy(result.timestamps.begin(), result.timestamps.end(), timestamps.Data());
        out.Set("timestamps", timestamps);
        auto indices = Napi::Array::New(env, result.indices.size());
        for (size_t i = 0; i < result.indices.size(); ++i) indices.Set(static_cast<uint32_t>(i), static_cast<double>(result.indices[i]));
        out.Set("indices", indices);
        out.Set("info", info_to_js(env, result.info));
        return out;
      }, Runs::OnPool);
}

Napi::Value preprocess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor frames = TensorHandle::unwrap(env, info[0], "videoPreprocess: frames");
  const PreprocessConfig config = preprocess_config(env, info[1]);
  return run_async(
      env, "videoPreprocess", [frames, config] { return video::preprocess(frames, config); },
      [](Napi::Env env, torch::Tensor pixels) -> Napi::Value { return TensorHandle::wrap(env, std::move(pixels)); });
}

Napi::Value corrupt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor frames = TensorHandle::unwrap(env, info[0], "videoCorrupt: frames");
  const Args args(env, info[1], "corrupt options");
  video::CorruptConfig c;
  c.scale = args.number("scale", c.scale);
  c.brightness = args.number("brightness", c.brightness);
  c.contrast = args.number("contrast", c.contrast);
  c.saturation = args.number("saturation", c.saturation);
  c.seed = args.seed("seed");
  return run_async(
      env, "videoCorrupt", [frames, c] { return video::corrupt_frames(frames, c); },
      [](Napi::Env env, torch::Tensor out) -> Napi::Value { return TensorHandle::wrap(env, std::move(out)); });
}

}  // namespace

void register_video(Napi::Env env, Napi::Object exports) {
  exports.Set("videoProbe", Napi::Function::New(env, probe, "videoProbe"));
  exports.Set("videoDecode", Napi::Function::New(env, decode, "videoDecode"));
  exports.Set("videoPreprocess", Napi::Function::New(env, preprocess, "videoPreprocess"));
  exports.Set("videoCorrupt", Napi::Function::New(env, corrupt, "videoCorrupt"));
}

}  // namespace tpo::binding
