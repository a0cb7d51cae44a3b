// runtimeInfo(), setNumThreads(n), benchMatmul(size, seconds, device?, dtype?), smokeTest(device),
// deviceMemory(device), resetPeakMemory(device): what `tpo doctor`, the loader's child-process test and the memory
// planner's measurements read.
#include <napi.h>

#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/tensor.h"
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
  cuda.Set("runtimeVersion", static_cast<double>(r.cuda_runtime_version));
  cuda.Set("cudnnVersion", static_cast<double>(r.cudnn_version));
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

// A device name ("cpu", "cuda", "cuda:N"); undefined is the CPU.
std::string device_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (value.IsUndefined()) return "cpu";
  if (!value.IsString()) throw_argument_error(env, what + ": device must be a string (cpu, cuda, cuda:N)");
  const std::string name = value.As<Napi::String>().Utf8Value();
  try {
    const torch::Device device(name);
    if (!device.is_cpu() && !device.is_cuda()) throw_argument_error(env, what + ": device '" + name + "' is not cpu or cuda");
  } catch (const c10::Error&) {
    throw_argument_error(env, what + ": '" + name + "' is not a device name (cpu, cuda, cuda:N)");
  }
  return name;
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
  const std::string device = device_arg(env, info[2], "benchMatmul");
  const torch::ScalarType dtype =
      info[3].IsUndefined() ? torch::kFloat32 : parse_dtype(env, info[3], "benchMatmul: dtype");
  return run_async(
      env, "benchMatmul", [size, seconds, device, dtype] { return runtime::bench_matmul(size, seconds, device, dtype); },
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

Napi::Value smoke_test(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string device = device_arg(env, info[0], "smokeTest");
  return Napi::Number::New(env, guarded(env, "smokeTest(" + device + ")", [&] { return runtime::smoke_test(device); }));
}

Napi::Value device_memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string device = device_arg(env, info[0], "deviceMemory");
  const auto m = guarded(env, "deviceMemory", [&] { return runtime::device_memory(torch::Device(device)); });
  auto out = Napi::Object::New(env);
  out.Set("available", m.available);
  out.Set("allocated", static_cast<double>(m.allocated));
  out.Set("peakAllocated", static_cast<double>(m.peak_allocated));
  out.Set("reserved", static_cast<double>(m.reserved));
  out.Set("peakReserved", static_cast<double>(m.peak_reserved));
  return out;
}

Napi::Value reset_peak_memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string device = device_arg(env, info[0], "resetPeakMemory");
  guarded(env, "resetPeakMemory", [&] { runtime::reset_peak_memory(torch::Device(device)); });
  return env.Undefined();
}

}  // namespace

void register_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("runtimeInfo", Napi::Function::New(env, runtime_info, "runtimeInfo"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads, "setNumThreads"));
  exports.Set("benchMatmul", Napi::Function::New(env, bench_matmul, "benchMatmul"));
  exports.Set("smokeTest", Napi::Function::New(env, smoke_test, "smokeTest"));
  exports.Set("deviceMemory", Napi::Function::New(env, device_memory, "deviceMemory"));
  exports.Set("resetPeakMemory", Napi::Function::New(env, reset_peak_memory, "resetPeakMemory"));
}

}  // namespace tpo::binding
