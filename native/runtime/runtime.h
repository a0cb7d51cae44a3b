// What the addon runs on: libtorch's build and threads, the CPU kernels it picked, CUDA, FFmpeg's libraries.
// Plain C++: native/binding/runtime_binding.cc turns these into JS objects.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

namespace tpo::runtime {

struct LibraryVersion {
  std::string name;
  std::string version;  // as the library reports it at run time
  std::string built;    // the version of the headers the addon was compiled against
};

struct Info {
  std::string torch_version;      // compiled against (TORCH_VERSION)
  std::string libtorch_path;      // the libtorch_cpu.so actually loaded
  std::string cpu_capability;     // "AVX512", "AVX2", "DEFAULT", ... as ATen's dispatcher chose
  bool cuda_built = false;        // linked against libtorch_cuda
  bool cuda_available = false;
  int cuda_device_count = 0;
  long cuda_runtime_version = 0;  // the CUDA runtime libtorch_cuda was built with (13000 = 13.0); 0 on a CPU build
  long cudnn_version = 0;         // cuDNN's, as libtorch reports it (0: none)
  int intra_op_threads = 0;
  int inter_op_threads = 0;
  int hardware_threads = 0;       // cores this process may run on (affinity-aware)
  std::string parallel_info;      // at::get_parallel_info(): OpenMP / MKL threading details
  LibraryVersion avformat, avcodec, avutil, swscale;
  std::string ffmpeg_version;     // av_version_info()
};

Info info();

// Cores this process may use (sched_getaffinity), at least 1.
int available_cores();

// Sets libtorch's intra-op thread count. libtorch's own default can be one thread in an embedded process, so the
// addon calls this at load time with TPO_NUM_THREADS or available_cores().
void set_num_threads(int n);

// OpenMP keeps the thread count per calling thread: a count set on the main thread does not reach the libuv
// workers where native calls run (measured: a worker ran 2 threads after set_num_threads(1)). Every worker calls
// this before its work; it costs one omp_get_max_threads() when nothing changed.
void apply_num_threads();

struct MatmulResult {
  int size = 0;
  int threads = 0;  // libtorch's thread count where the matmuls ran
  int iterations = 0;
  double seconds = 0;
  double gflops = 0;
};

// Square matmuls for about `seconds`: the figure `tpo doctor` prints (2*n^3 FLOP per matmul), float32 on the CPU
// by default; on a CUDA device each timing waits for the device. The device check measures the bf16 rate model FLOP
// utilisation is stated against.
MatmulResult bench_matmul(int size, double seconds, const std::string& device = "cpu",
                          torch::ScalarType dtype = torch::kFloat32);

// Waits until `device`'s queued work is done (nothing to wait for on the CPU).
void synchronize(const torch::Device& device);

// The caching allocator's bytes on a CUDA device (what torch.cuda.memory_allocated / max_memory_allocated and the
// reserved figures report). `available` is false on the CPU and on libtorch builds without the device allocator API.
struct DeviceMemory {
  bool available = false;
  int64_t allocated = 0, peak_allocated = 0, reserved = 0, peak_reserved = 0;
};
DeviceMemory device_memory(const torch::Device& device);
void reset_peak_memory(const torch::Device& device);

// A small matmul and softmax on `device` against the same on the CPU: the loader's test that an addon and the
// libtorch under it work on this machine, run in a child process before the addon is used. Throws when the device
// is unusable; returns the largest difference.
double smoke_test(const std::string& device);

// libtorch's autograd profiler around one native call, when TPO_PROFILE_DIR names a folder: the call's ops are
// written there as a Chrome trace (`<what>-<n>.json`; scripts/bench/profile-summary.mjs tables them). Without the
// variable this is a null pointer and costs one getenv.
class ProfileScope {
 public:
  virtual ~ProfileScope() = default;
};
std::unique_ptr<ProfileScope> profile_scope(const std::string& what);

}  // namespace tpo::runtime
