#include "runtime/runtime.h"
#include "runtime/memory.h"

#include <dlfcn.h>
#include <sched.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <ATen/detail/CUDAHooksInterface.h>
// c10's device-generic allocator interface (libtorch >= 2.9): the CUDA caching allocator's statistics without CUDA
// headers, which tpo does not compile against.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9)
#define TPO_DEVICE_ALLOCATOR_STATS 1
#include <c10/core/CachingDeviceAllocator.h>
#endif

// The Node-free driver of scripts/device-check.sh (native/check/) builds without FFmpeg.
#ifndef TPO_WITHOUT_FFMPEG
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libswscale/swscale.h>
}
#endif

namespace tpo::runtime {
namespace {

#ifndef TPO_WITHOUT_FFMPEG
std::string version_text(unsigned v) {
  return std::to_string(AV_VERSION_MAJOR(v)) + "." + std::to_string(AV_VERSION_MINOR(v)) + "." +
         std::to_string(AV_VERSION_MICRO(v));
}

LibraryVersion av_library(const char* name, unsigned runtime, unsigned built) {
  return {name, version_text(runtime), version_text(built)};
}
#endif

std::string loaded_path_of(const void* symbol) {
  Dl_info dl{};
  if (dladdr(symbol, &dl) && dl.dli_fname) return dl.dli_fname;
  return "";
}

}  // namespace

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

namespace {
std::atomic<int> configured_threads{0};
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("thread count must be at least 1, got " + std::to_string(n));
  configured_threads = n;
  at::set_num_threads(n);
}

void apply_num_threads() {
  const int n = configured_threads;
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
}

Info info() {
  Info out;
  out.torch_version = TORCH_VERSION;
  // Any function defined in libtorch_cpu tells where that library was loaded from.
  out.libtorch_path = loaded_path_of(reinterpret_cast<const void*>(&at::get_cpu_capability));
  out.cpu_capability = at::get_cpu_capability();
#ifdef TPO_WITH_CUDA
  out.cuda_built = true;
#endif
  out.cuda_available = torch::cuda::is_available();
  out.cuda_device_count = out.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (out.cuda_built) {
    // The hooks libtorch_cuda registers answer without a device; a CPU build's default hooks would throw.
    const auto& hooks = at::detail::getCUDAHooks();
    out.cuda_runtime_version = hooks.versionCUDART();
    if (hooks.compiledWithCuDNN()) out.cudnn_version = hooks.versionCuDNN();
  }
  out.intra_op_threads = at::get_num_threads();
  out.inter_op_threads = at::get_num_interop_threads();
  out.hardware_threads = available_cores();
  out.parallel_info = at::get_parallel_info();
#ifndef TPO_WITHOUT_FFMPEG
  out.avformat = av_library("libavformat", avformat_version(), LIBAVFORMAT_VERSION_INT);
  out.avcodec = av_library("libavcodec", avcodec_version(), LIBAVCODEC_VERSION_INT);
  out.avutil = av_library("libavutil", avutil_version(), LIBAVUTIL_VERSION_INT);
  out.swscale = av_library("libswscale", swscale_version(), LIBSWSCALE_VERSION_INT);
  out.ffmpeg_version = av_version_info();
#endif
  return out;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

MatmulResult bench_matmul(int size, double seconds, const std::string& device_name, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const torch::Device device(device_name);
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  auto a = torch::randn({size, size}, options);
  auto b = torch::randn({size, size}, options);
  auto c = torch::empty({size, size}, options);
  torch::mm_out(c, a, b);  // warm-up: first call pays for kernel selection and page faults
  synchronize(device);
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  MatmulResult r;
  r.size = size;
  r.threads = at::get_num_threads();
  // On a device, matmuls are queued in groups and timed once the group is done.
  const int group = device.is_cuda() ? 16 : 1;
  do {
    for (int i = 0; i < group; ++i) torch::mm_out(c, a, b);
    synchronize(device);
    r.iterations += group;
    r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  } while (r.seconds < seconds);
  r.gflops = 2.0 * size * size * static_cast<double>(size) * r.iterations / r.seconds / 1e9;
  return r;
}

// ------------------------------------------------------------------------------------------------ memory (memory.h)
namespace {

// A number from a one-value file ("max" and missing files: none).
bool read_number(const char* path, uint64_t& out) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return false;
  try {
    out = std::stoull(text);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

std::string gigabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

}  // namespace

uint64_t available_memory() {
  uint64_t available = 0;
  {
    std::ifstream meminfo("/proc/meminfo");
    std::string line;
    while (std::getline(meminfo, line))
      if (line.rfind("MemAvailable:", 0) == 0) {
        std::istringstream fields(line.substr(13));
        uint64_t kb = 0;
        if (fields >> kb) available = kb * 1024;
        break;
      }
  }
  uint64_t limit = 0, usage = 0;
  if ((read_number("/sys/fs/cgroup/memory.max", limit) && read_number("/sys/fs/cgroup/memory.current", usage)) ||
      (read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) &&
       read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", usage))) {
    // (cgroup v1 reports an unlimited group as a huge number: it then caps nothing)
    const uint64_t left = limit > usage ? limit - usage : 0;
    available = available == 0 ? left : std::min(available, left);
  }
  return available;
}

void check_allocation(uint64_t bytes, const std::string& what) {
  const uint64_t available = available_memory();
  if (available != 0 && bytes > available)
    throw std::runtime_error(what + " needs " + gigabytes(bytes) + ", but only " + gigabytes(available) +
                             " of memory are available");
}

// ------------------------------------------------------------------------------------------------ devices
DeviceMemory device_memory(const torch::Device& device) {
  DeviceMemory out;
  if (!device.is_cuda()) return out;
#ifdef TPO_DEVICE_ALLOCATOR_STATS
  const auto stats = c10::getDeviceAllocator(c10::kCUDA)->getDeviceStats(device.index() < 0 ? 0 : device.index());
  // Index 0 of each StatArray is StatType::AGGREGATE (every pool); the enum's namespace moved between releases.
  constexpr size_t all = 0;
  out.available = true;
  out.allocated = stats.allocated_bytes[all].current;
  out.peak_allocated = stats.allocated_bytes[all].peak;
  out.reserved = stats.reserved_bytes[all].current;
  out.peak_reserved = stats.reserved_bytes[all].peak;
#endif
  return out;
}

void reset_peak_memory(const torch::Device& device) {
  if (!device.is_cuda()) return;
#ifdef TPO_DEVICE_ALLOCATOR_STATS
  c10::getDeviceAllocator(c10::kCUDA)->resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
}

double smoke_test(const std::string& device_name) {
  torch::NoGradGuard no_grad;
  const torch::Device device(device_name);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("libtorch sees no CUDA device (torch::cuda::is_available() is false)");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto a = torch::randn({64, 64}, gen, torch::TensorOptions());
  const auto b = torch::randn({64, 64}, gen, torch::TensorOptions());
  const auto expected = torch::softmax(torch::mm(a, b), -1);
  const auto got = torch::softmax(torch::mm(a.to(device), b.to(device)), -1).to(torch::kCPU);
  const double diff = (got - expected).abs().max().item<double>();
  // TF32 or reordered sums on a GPU differ by ~1e-3 at most on these sizes; more means broken kernels.
  if (!(diff < 1e-2)) throw std::runtime_error("a 64x64 matmul on " + device_name + " differs from the CPU's by " + std::to_string(diff));
  return diff;
}

// ------------------------------------------------------------------------------------------------ profiling
namespace {

class RecordingScope final : public ProfileScope {
 public:
  explicit RecordingScope(const std::string& file) : record_(file) {}

 private:
  torch::autograd::profiler::RecordProfile record_;
};

}  // namespace

std::unique_ptr<ProfileScope> profile_scope(const std::string& what) {
  const char* dir = std::getenv("TPO_PROFILE_DIR");
  if (!dir || !*dir) return nullptr;
  static std::atomic<int> calls{0};
  std::string name;
  for (char c : what.substr(0, what.find(' '))) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  std::filesystem::create_directories(dir);
  const auto file = std::filesystem::path(dir) / (name + "-" + std::to_string(calls++) + ".json");
  return std::make_unique<RecordingScope>(file.string());
}

}  // namespace tpo::runtime
