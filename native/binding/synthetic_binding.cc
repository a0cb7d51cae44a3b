// synthRender(spec) and videoEncode(frames, path, options): native/synthetic/render.h and native/video/encoder.h
// as Promises, one call per video. Arguments are read on the main thread; drawing and encoding run on the pool.
#include <napi.h>

#include <cmath>

#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/js_args.h"
#include "binding/tensor.h"
#include "synthetic/render.h"
#include "video/encoder.h"

namespace tpo::binding {
namespace {

using synthetic::Pose;
using synthetic::Rgb;
using synthetic::ShapeEvent;
using synthetic::VideoSpec;

Rgb rgb_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  const std::vector<double> c = number_array(env, value, what);
  if (c.size() != 3) throw_argument_error(env, what + " must be [r, g, b]");
  Rgb out{};
  for (size_t i = 0; i < 3; ++i) {
    if (!(c[i] >= 0 && c[i] <= 255) || c[i] != std::floor(c[i]))
      throw_argument_error(env, what + "[" + std::to_string(i) + "] must be an integer in [0, 255]");
    out[i] = static_cast<uint8_t>(c[i]);
  }
  return out;
}

Pose pose_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  const Args args(env, value, what);
  for (const char* key : {"x", "y", "size"})
    if (!args.has(key)) throw_argument_error(env, what + ": " + key + " is required");
  return {args.number("x", 0), args.number("y", 0), args.number("size", 0)};
}

ShapeEvent event_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  const Args args(env, value, what);
  ShapeEvent e;
  const std::string shape = args.string("shape");
  const auto parsed = synthetic::shape_from_name(shape);
  if (!parsed) throw_argument_error(env, what + ": shape '" + shape + "' is not one of " + synthetic::shape_names());
  e.shape = *parsed;
  e.color = rgb_arg(env, args.get("color"), what + ": color");
  e.start = args.integer("start", -1);
  e.end = args.integer("end", -1);
  e.from = pose_arg(env, args.get("from"), what + ": from");
  e.to = args.has("to") ? pose_arg(env, args.get("to"), what + ": to") : e.from;
  e.blink_period = args.integer("blinkPeriod", 0);
  return e;
}

VideoSpec spec_arg(Napi::Env env, const Napi::Value& value) {
  const std::string what = "synthRender: spec";
  const Args args(env, value, what);
  VideoSpec spec;
  spec.width = args.integer("width", 0);
  spec.height = args.integer("height", 0);
  spec.frames = args.integer("frames", 0);
  spec.background = rgb_arg(env, args.get("background"), what + ": background");
  spec.noise = args.integer("noise", 0);
  const double seed = args.number("seed", 0);
  if (!(seed >= 0 && seed <= 4294967295.0) || seed != std::floor(seed))
    throw_argument_error(env, what + ": seed must be an integer in [0, 2^32)");
  spec.seed = static_cast<uint32_t>(seed);
  if (args.has("events")) {
    if (!args.get("events").IsArray()) throw_argument_error(env, what + ": events must be an array");
    auto list = args.get("events").As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i)
      spec.events.push_back(event_arg(env, list.Get(i), what + ": events[" + std::to_string(i) + "]"));
  }
  return spec;
}

video::EncodeOptions encode_options(Napi::Env env, const Napi::Value& value) {
  const Args args(env, value, "videoEncode: options");
  video::EncodeOptions o;
  if (!args.has("fps")) throw_argument_error(env, "videoEncode: options: fps is required");
  o.fps = args.number("fps", o.fps);
  if (args.has("codec")) o.codec = args.string("codec");
  o.crf = args.integer("crf", o.crf);
  if (args.has("preset")) o.preset = args.string("preset");
  o.gop = args.integer("gop", o.gop);
  o.threads = args.integer("threads", o.threads);
  return o;
}

Napi::Value render(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  VideoSpec spec = spec_arg(env, info[0]);
  return run_async(
      env, "synthRender", [spec = std::move(spec)] { return synthetic::render(spec); },
      [](Napi::Env env, torch::Tensor frames) -> Napi::Value { return TensorHandle::wrap(env, std::move(frames)); }, Runs::OnPool);
}

Napi::Value encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor frames = TensorHandle::unwrap(env, info[0], "videoEncode: frames");
  const std::string path = string_arg(env, info[1], "videoEncode: path");
  const video::EncodeOptions options = encode_options(env, info[2]);
  return run_async(
      env, "videoEncode " + path, [frames, path, options] { return video::encode(frames, path, options); },
      [](Napi::Env env, video::EncodeResult r) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("codec", r.codec);
        out.Set("frames", static_cast<double>(r.frames));
        out.Set("bytes", static_cast<double>(r.bytes));
        return out;
      }, Runs::OnPool);
}

}  // namespace

void register_synthetic(Napi::Env env, Napi::Object exports) {
  exports.Set("synthRender", Napi::Function::New(env, render, "synthRender"));
  exports.Set("videoEncode", Napi::Function::New(env, encode, "videoEncode"));
}

}  // namespace tpo::binding
