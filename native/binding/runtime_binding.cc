// runtimeInfo(), setNumThreads(n), benchMatmul(size, seconds): what `tpo doctor` reports and sets.
#include <napi.h>

#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "runtime/runtime.h"

namespace tpo::binding {
namespace {

Napi::Object library_to_js(Napi::Env env, const runtime::LibraryVersion& lib) {
  auto out = Napi::Object::New(env);
  out.Set("name", lib.name);
  out.Set("version", lib.version);
  out.Set("builtAgainst", lib.built);
  return out;
}

Napi::Value runtime_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const runtime::Info r = guarded(env, "runtimeInfo", [] { return runtime::info(); });
  auto out = Napi::Object::New(env);
  out.Set("torchVersion", r.torch_version);
  out.Set("libtorchPath", r.libtorch_path);
  out.Set("cpuCapability", r.cpu_capability);
  auto cuda = Napi::Object::New(env);
  cuda.Set("built", r.cuda_built);
  cuda.Set("available", r.cuda_available);
  cuda.Set("deviceCount", r.cuda_device_count);
  out.Set("cuda", cuda);
  auto threads = Napi::Object::New(env);
  threads.Set("intraOp", r.intra_op_threads);
  threads.Set("interOp", r.inter_op_threads);
  threads.Set("cores", r.hardware_threads);
  out.Set("threads", threads);
  out.Set("parallelInfo", r.parallel_info);
  auto ffmpeg = Napi::Object::New(env);
  ffmpeg.Set("version", r.ffmpeg_version);
  auto libs = Napi::Array::New(env, 4);
  libs.Set(0u, library_to_js(env, r.avformat));
  libs.Set(1u, library_to_js(env, r.avcodec));
  libs.Set(2u, library_to_js(env, r.avutil));
  libs.Set(3u, library_to_js(env, r.swscale));
  ffmpeg.Set("libraries", libs);
  out.Set("ffmpeg", ffmpeg);
  return out;
}

Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw_argument_error(env, "setNumThreads: expected a thread count");
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 1) || n != static_cast<int>(n))
    throw_argument_error(env, "setNumThreads: thread count must be an integer >= 1, got " + std::to_string(n));
  guarded(env, "setNumThreads", [&] { runtime::set_num_threads(static_cast<int>(n)); });
  return env.Undefined();
}

Napi::Value bench_matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber())
    throw_argument_error(env, "benchMatmul: expected (size, seconds)");
  const int size = info[0].As<Napi::Number>().Int32Value();
  const double seconds = info[1].As<Napi::Number>().DoubleValue();
  if (size < 1 || size > 16384) throw_argument_error(env, "benchMatmul: size must be in [1, 16384]");
  if (!(seconds >= 0) || seconds > 600) throw_argument_error(env, "benchMatmul: seconds must be in [0, 600]");
  return run_async(
      env, "benchMatmul", [size, seconds] { return runtime::bench_matmul(size, seconds); },
      [](Napi::Env env, runtime::MatmulResult r) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("size", r.size);
        out.Set("threads", r.threads);
        out.Set("iterations", r.iterations);
        out.Set("seconds", r.seconds);
        out.Set("gflops", r.gflops);
        return out;
      });
}

}  // namespace

void register_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("runtimeInfo", Napi::Function::New(env, runtime_info, "runtimeInfo"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads, "setNumThreads"));
  exports.Set("benchMatmul", Napi::Function::New(env, bench_matmul, "benchMatmul"));
}

}  // namespace tpo::binding
