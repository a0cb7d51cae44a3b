// c10d's TCPStore and ProcessGroupGloo (ProcessGroupNCCL on a CUDA build with NCCL) behind dist::ProcessGroup.
// The only translation unit that includes c10d's and Gloo's headers: they are heavy, and nothing else needs them.
//
// Gloo's own headers come from Debian's libgloo-dev (the wheel ships c10d's headers and Gloo's compiled code inside
// libtorch_cpu, not Gloo's headers). This file only passes pointers to Gloo objects that libtorch made, so the
// headers' version need not match the one compiled into libtorch.
#ifndef USE_C10D_GLOO  // Torch's CMake config defines it for every file; the header needs it
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef TPO_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "dist/process_group.h"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

namespace tpo::dist {
namespace {

using Clock = std::chrono::steady_clock;

// A rank writes its heartbeat this often; a rank whose heartbeat did not move for kSilence after a failure is named
// as the one that stopped.
constexpr auto kHeartbeat = std::chrono::milliseconds(500);
constexpr auto kSilence = std::chrono::milliseconds(2000);

std::string message_of(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) {
    std::string m = c10->what_without_backtrace();
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
  }
  return e.what();
}

std::string ranks_text(const std::vector<int>& ranks) {
  std::ostringstream out;
  out << (ranks.size() == 1 ? "rank " : "ranks ");
  for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
  return out.str();
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
std::string string_of(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }

// Writes this rank's heartbeat into the store from a thread of its own, over a connection of its own. Detached:
// a store that went away (rank 0 died) may block a write for the store's timeout, and nothing waits for that.
struct Heartbeat {
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;

  static std::shared_ptr<Heartbeat> start(c10::intrusive_ptr<c10d::Store> store, int rank) {
    auto beat = std::make_shared<Heartbeat>();
    std::thread([beat, store = std::move(store), rank] {
      const std::string key = "heartbeat/" + std::to_string(rank);
      try {
        for (int64_t n = 1;; ++n) {
          store->set(key, bytes_of(std::to_string(n)));
          std::unique_lock lock(beat->mutex);
          if (beat->wake.wait_for(lock, kHeartbeat, [&] { return beat->stop; })) return;
        }
      } catch (...) {
        // The store is gone (rank 0 ended or died): the other ranks' collectives say so; nothing to do here.
      }
    }).detach();
    return beat;
  }

  void halt() {
    {
      std::lock_guard lock(mutex);
      stop = true;
    }
    wake.notify_all();
  }
};

// The bytes a collective moves, after checking every tensor is contiguous: the backends write results in place
// into the tensor's storage, so a strided view would be silently half-updated.
int64_t contiguous_bytes(const std::vector<torch::Tensor>& tensors, const std::string& what, const char* collective) {
  int64_t bytes = 0;
  for (const auto& t : tensors) {
    if (!t.is_contiguous()) throw std::invalid_argument(what + ": " + collective + " needs contiguous tensors");
    bytes += t.numel() * t.element_size();
  }
  return bytes;
}

}  // namespace

struct ProcessGroup::Impl {
  GroupConfig config;
  c10::intrusive_ptr<c10d::Store> store;  // "tpo/" keys of this run: identities, heartbeats
  c10::intrusive_ptr<c10d::Backend> backend;
  std::shared_ptr<Heartbeat> heartbeat;
  CommStats stats;
  std::string failure;  // set once a collective failed: the group is unusable
  bool closed = false;
  // Where the backend's tensors must be: any device for Gloo (it takes them where they are); this rank's GPU for
  // NCCL, which reduces CUDA tensors only. tpo's counts, flags and gathered metrics are CPU tensors: under NCCL they
  // travel through the GPU (to_comm / back_from_comm), a few bytes a step; gradients on the GPU go as they are.
  std::optional<torch::Device> comm_device;

  torch::Tensor to_comm(const torch::Tensor& t) const {
    return comm_device && t.device() != *comm_device ? t.to(*comm_device) : t;
  }
  std::vector<torch::Tensor> to_comm(const std::vector<torch::Tensor>& ts) const {
    std::vector<torch::Tensor> out;
    for (const auto& t : ts) out.push_back(to_comm(t));
    return out;
  }
  static void back_from_comm(const std::vector<torch::Tensor>& tensors, const std::vector<torch::Tensor>& moved) {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (!moved[i].is_same(tensors[i])) tensors[i].copy_(moved[i]);
  }

  std::string where() const {
    return "rank " + std::to_string(config.rank) + " of " + std::to_string(config.world_size);
  }
  std::string store_address() const { return config.master_addr + ":" + std::to_string(config.master_port); }

  void connect_store();
  void check_identities();
  void connect_backend();

  // Which ranks stopped: those whose heartbeat did not move over kSilence. Rank 0 hosts the store, so a store that
  // cannot be reached names rank 0.
  std::string diagnose(const std::string& what, const std::string& cause);

  // Runs one or more collectives started by `launch` and waits for them; a failure becomes a DistError that names
  // the rank that stopped.
  template <typename Launch>
  void run(const std::string& what, int64_t bytes, Launch&& launch) {
    if (closed) throw DistError(what + ": the process group is closed");
    if (!failure.empty()) throw DistError(what + ": the process group failed earlier: " + failure);
    const auto started = Clock::now();
    try {
      std::vector<c10::intrusive_ptr<c10d::Work>> works = launch();
      for (auto& w : works) w->wait(config.timeout);
    } catch (const std::exception& e) {
      failure = diagnose(what, message_of(e));
      throw DistError(failure);
    }
    stats.calls += 1;
    stats.bytes += bytes;
    stats.seconds += std::chrono::duration<double>(Clock::now() - started).count();
  }
};

void ProcessGroup::Impl::connect_store() {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(config.master_port);
  options.isServer = config.rank == 0;
  options.numWorkers = config.world_size;
  options.waitWorkers = false;  // check_identities waits, and says which ranks never came
  options.timeout = config.timeout;
  c10::intrusive_ptr<c10d::TCPStore> tcp;
  try {
    tcp = c10::make_intrusive<c10d::TCPStore>(config.master_addr, options);
  } catch (const std::exception& e) {
    const std::string cause = message_of(e);
    if (config.rank == 0)
      throw DistError("rank 0 could not host the rendezvous store at " + store_address() +
                      " (MASTER_ADDR:MASTER_PORT; another run may hold the port): " + cause);
    throw DistError(where() + " could not reach the rendezvous store at " + store_address() +
                    " (MASTER_ADDR:MASTER_PORT, hosted by rank 0) within " +
                    std::to_string(config.timeout.count() / 1000) + " s: " + cause);
  }
  store = c10::make_intrusive<c10d::PrefixStore>("tpo", tcp);
}

void ProcessGroup::Impl::check_identities() {
  const int n = config.world_size;
  store->set("identity/" + std::to_string(config.rank), bytes_of(config.identity));
  std::vector<std::string> keys;
  for (int r = 0; r < n; ++r) keys.push_back("identity/" + std::to_string(r));
  try {
    store->wait(keys, config.timeout);
  } catch (const std::exception& e) {
    std::vector<int> missing;
    for (int r = 0; r < n; ++r)
      if (!store->check({keys[r]})) missing.push_back(r);
    throw DistError("rendezvous at " + store_address() + ": " + (missing.empty() ? "the ranks" : ranks_text(missing)) +
                    " of " + std::to_string(n) + " did not arrive within " + std::to_string(config.timeout.count() / 1000) +
                    " s (was every rank started, with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE?)");
  }
  std::vector<std::string> identities;
  try {
    for (int r = 0; r < n; ++r) identities.push_back(string_of(store->get(keys[r])));
    // Rank 0 hosts the store: it waits (briefly) until every rank has read the identities, so that a refusal
    // reaches every rank as a refusal, not as a store that went away.
    store->add("identities-read", 1);
    const auto until = Clock::now() + std::min<std::chrono::milliseconds>(config.timeout, std::chrono::seconds(10));
    while (config.rank == 0 && store->add("identities-read", 0) < n && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } catch (const std::exception& e) {
    throw DistError("rendezvous at " + store_address() + ": rank 0, which hosts it, went away (" + message_of(e) + ")");
  }
  for (int r = 0; r < n; ++r) {
    if (identities[r] != config.identity)
      throw DistError("rendezvous at " + store_address() + ": rank " + std::to_string(r) + " runs " + identities[r] + ", rank " +
                      std::to_string(config.rank) + " runs " + config.identity +
                      ": every rank must run the same tpo version with the same config");
  }
}

void ProcessGroup::Impl::connect_backend() {
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("backend", store);
  if (config.backend == "gloo") {
    auto options = c10d::ProcessGroupGloo::Options::create(config.timeout);
    // GLOO_SOCKET_IFNAME picks the interface as in PyTorch; ranks that all run on this machine talk over loopback;
    // otherwise the address this machine's hostname resolves to.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (is_loopback(config.master_addr))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    backend = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, config.rank, config.world_size, options);
    return;
  }
#ifdef TPO_WITH_NCCL
  if (config.backend == "nccl") {
    // One GPU per rank of a machine, LOCAL_RANK's (check_backend made sure it exists). It becomes the engine
    // thread's current device, so that this rank's "cuda" tensors are there too.
    const auto device = static_cast<c10::DeviceIndex>(config.local_rank);
    c10::cuda::set_device(device);
    comm_device = torch::Device(torch::kCUDA, device);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = config.timeout;
    backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, config.rank, config.world_size, options);
    return;
  }
#endif
  throw DistError("distributed.backend '" + config.backend + "' is not one tpo knows (gloo, nccl)");
}

// Before the rendezvous, so that a rank that cannot run the backend says so at once instead of after the others came.
static void check_backend(const GroupConfig& config) {
  const std::string where = "rank " + std::to_string(config.rank) + " of " + std::to_string(config.world_size);
  if (config.backend == "gloo") return;
  if (config.backend != "nccl")
    throw DistError("distributed.backend '" + config.backend + "' is not one tpo knows (gloo, nccl)");
  if (!backend_built("nccl"))
    throw DistError("distributed.backend 'nccl': this tpo build has no NCCL (it was built against a CPU libtorch, or "
                    "without NCCL's headers: `tpo doctor` says which); use 'gloo'");
  if (!torch::cuda::is_available())
    throw DistError("distributed.backend 'nccl' needs an NVIDIA GPU for every rank, and " + where +
                    " has none that libtorch sees (no GPU or driver here, or CUDA_VISIBLE_DEVICES hides them); use "
                    "'gloo' on CPUs");
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  if (config.local_rank < 0 || config.local_rank >= gpus)
    throw DistError("distributed.backend 'nccl': " + where + " has LOCAL_RANK " + std::to_string(config.local_rank) +
                    " but its machine has " + std::to_string(gpus) + " GPU(s): NCCL takes one GPU per rank, so start at "
                    "most " + std::to_string(gpus) + " ranks a machine (--nproc, torchrun's --nproc-per-node)");
}

std::string ProcessGroup::Impl::diagnose(const std::string& what, const std::string& cause) {
  const std::string head = what + " failed on " + where() + ": ";
  const int n = config.world_size;
  auto read = [&] {
    std::vector<int64_t> beats(n, 0);
    for (int r = 0; r < n; ++r) {
      const std::string key = "heartbeat/" + std::to_string(r);
      if (r != config.rank && store->check({key})) beats[r] = std::stoll(string_of(store->get(key)));
    }
    return beats;
  };
  std::vector<int> stopped;
  try {
    const auto before = read();
    std::this_thread::sleep_for(kSilence);
    const auto after = read();
    for (int r = 0; r < n; ++r)
      if (r != config.rank && after[r] == before[r]) stopped.push_back(r);
  } catch (const std::exception&) {
    return head + "rank 0 stopped: the rendezvous store it hosts at " + store_address() +
           " cannot be reached (it died, or the network between the ranks failed) [" + cause + "]";
  }
  if (stopped.empty())
    return head + "every other rank is still running, but the collective failed or timed out after " +
           std::to_string(config.timeout.count() / 1000) + " s (a rank that is slow, or on another path) [" + cause + "]";
  return head + ranks_text(stopped) + " stopped (no heartbeat for " + std::to_string(kSilence.count() / 1000) +
         " s: it died or hangs) [" + cause + "]";
}

ProcessGroup::ProcessGroup(const GroupConfig& config) : impl_(std::make_unique<Impl>()) {
  // c10d logs every failed socket read with a C++ backtrace (a dead rank makes several); tpo's DistError says what
  // happened in one line. TORCH_CPP_LOG_LEVEL, as with PyTorch, brings them back.
  const char* level = std::getenv("TORCH_CPP_LOG_LEVEL");
  if (!level || !*level) FLAGS_caffe2_log_level = std::max(FLAGS_caffe2_log_level, 2);
  if (config.world_size < 1) throw DistError("WORLD_SIZE must be >= 1");
  if (config.rank < 0 || config.rank >= config.world_size)
    throw DistError("RANK " + std::to_string(config.rank) + " is not in [0, WORLD_SIZE " + std::to_string(config.world_size) + ")");
  if (config.master_port < 1 || config.master_port > 65535)
    throw DistError("MASTER_PORT " + std::to_string(config.master_port) + " is not a port (1-65535)");
  check_backend(config);
  impl_->config = config;
  impl_->connect_store();
  impl_->check_identities();
  impl_->heartbeat = Heartbeat::start(impl_->store->clone(), config.rank);
  try {
    impl_->connect_backend();
  } catch (const DistError&) {
    impl_->heartbeat->halt();
    throw;
  } catch (const std::exception& e) {
    impl_->heartbeat->halt();
    throw DistError(impl_->diagnose("connecting the " + config.backend + " backend", message_of(e)));
  }
}

ProcessGroup::~ProcessGroup() {
  if (impl_ && impl_->heartbeat) impl_->heartbeat->halt();
}

int ProcessGroup::rank() const { return impl_->config.rank; }
int ProcessGroup::size() const { return impl_->config.world_size; }
const std::string& ProcessGroup::backend() const { return impl_->config.backend; }
CommStats ProcessGroup::stats() const { return impl_->stats; }

void ProcessGroup::all_reduce_sum(const std::vector<torch::Tensor>& tensors, const std::string& what) {
  const int64_t bytes = contiguous_bytes(tensors, what, "all-reduce");
  const auto moved = impl_->to_comm(tensors);
  impl_->run(what, bytes, [&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (const auto& t : moved) {
      std::vector<at::Tensor> one{t};
      works.push_back(impl_->backend->allreduce(one, c10d::AllreduceOptions{}));
    }
    return works;
  });
  Impl::back_from_comm(tensors, moved);
}

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors, int root, const std::string& what) {
  const int64_t bytes = contiguous_bytes(tensors, what, "broadcast");
  const auto moved = impl_->to_comm(tensors);
  impl_->run(what, bytes, [&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    c10d::BroadcastOptions options;
    options.rootRank = root;
    for (const auto& t : moved) {
      std::vector<at::Tensor> one{t};
      works.push_back(impl_->backend->broadcast(one, options));
    }
    return works;
  });
  Impl::back_from_comm(tensors, moved);
}

std::vector<torch::Tensor> ProcessGroup::all_gather(const torch::Tensor& mine_in, const std::string& what) {
  const int n = size();
  const auto mine = mine_in.contiguous().reshape({-1});
  auto lengths = torch::zeros({n}, torch::kInt64);
  lengths[rank()] = mine.numel();
  all_reduce_sum({lengths}, what + " (lengths)");
  const int64_t longest = lengths.max().item<int64_t>();
  std::vector<torch::Tensor> out;
  if (longest == 0) {
    for (int r = 0; r < n; ++r) out.push_back(torch::empty({0}, mine.options()));
    return out;
  }
  const auto comm = mine.options().device(impl_->comm_device.value_or(mine.device()));
  auto padded = torch::zeros({longest}, comm);
  padded.narrow(0, 0, mine.numel()).copy_(mine);
  std::vector<std::vector<at::Tensor>> gathered(1);
  for (int r = 0; r < n; ++r) gathered[0].push_back(torch::empty({longest}, comm));
  std::vector<at::Tensor> input{padded};
  impl_->run(what, longest * padded.element_size(), [&] {
    return std::vector<c10::intrusive_ptr<c10d::Work>>{impl_->backend->allgather(gathered, input)};
  });
  for (int r = 0; r < n; ++r) out.push_back(gathered[0][r].narrow(0, 0, lengths[r].item<int64_t>()).to(mine.device()));
  return out;
}

std::vector<std::string> ProcessGroup::all_gather_bytes(const std::string& mine, const std::string& what) {
  auto t = torch::empty({static_cast<int64_t>(mine.size())}, torch::kUInt8);
  if (!mine.empty()) std::memcpy(t.data_ptr(), mine.data(), mine.size());
  std::vector<std::string> out;
  for (const auto& part : all_gather(t, what)) {
    const auto bytes = part.contiguous();
    out.emplace_back(reinterpret_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.numel()));
  }
  return out;
}

void ProcessGroup::barrier(const std::string& what) {
  impl_->run(what, 0, [&] {
    return std::vector<c10::intrusive_ptr<c10d::Work>>{impl_->backend->barrier(c10d::BarrierOptions{})};
  });
}

void ProcessGroup::close() {
  if (impl_->closed) return;
  if (impl_->failure.empty()) barrier("closing the process group");
  impl_->closed = true;
  impl_->heartbeat->halt();
  // The backend's threads end here, not in the process's exit (where libtorch's statics may already be gone).
  impl_->backend.reset();
  impl_->store.reset();
}

bool backend_built(const std::string& backend) {
  if (backend == "gloo") return true;
#ifdef TPO_WITH_NCCL
  if (backend == "nccl") return true;
#endif
  return false;
}

namespace {

// Consecutive tensors of one dtype and device, about `bucket_bytes` each (a larger tensor is a bucket of its own).
std::vector<std::vector<size_t>> buckets_of(const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& which,
                                            int64_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t i : which) {
    const auto& t = tensors[i];
    const int64_t bytes = t.numel() * t.element_size();
    const bool fits = !buckets.empty() && filled + bytes <= bucket_bytes &&
                      tensors[buckets.back().front()].scalar_type() == t.scalar_type() &&
                      tensors[buckets.back().front()].device() == t.device();
    if (!fits) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += bytes;
  }
  return buckets;
}

// Buckets in flight at once: enough to keep the backend busy, few enough that the flat copies stay small.
constexpr size_t kInFlight = 4;

// `apply` (all-reduce or broadcast) over flat copies of `tensors`' buckets, the results copied back.
template <typename Apply>
void bucketed(const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& which, int64_t bucket_bytes, Apply&& apply) {
  torch::NoGradGuard no_grad;
  const auto buckets = buckets_of(tensors, which, std::max<int64_t>(bucket_bytes, 1));
  for (size_t first = 0; first < buckets.size(); first += kInFlight) {
    const size_t last = std::min(buckets.size(), first + kInFlight);
    std::vector<torch::Tensor> flats;
    for (size_t b = first; b < last; ++b) {
      std::vector<torch::Tensor> parts;
      for (size_t i : buckets[b]) parts.push_back(tensors[i].reshape({-1}));
      flats.push_back(parts.size() == 1 ? parts[0].clone() : torch::cat(parts));
    }
    apply(flats);
    for (size_t b = first; b < last; ++b) {
      int64_t offset = 0;
      for (size_t i : buckets[b]) {
        const auto& t = tensors[i];
        t.copy_(flats[b - first].narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
  }
}

}  // namespace

void all_reduce_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& params, int64_t bucket_bytes,
                          const std::string& what) {
  if (params.empty()) return;
  torch::NoGradGuard no_grad;
  // Which parameters have a gradient anywhere: the same buckets on every rank, and none invented for a parameter
  // no rank touched.
  auto has = torch::zeros({static_cast<int64_t>(params.size())}, torch::kFloat32);
  auto flags = has.accessor<float, 1>();
  for (size_t i = 0; i < params.size(); ++i) flags[i] = params[i].grad().defined() ? 1.f : 0.f;
  group.all_reduce_sum({has}, what + " (which parameters have gradients)");
  std::vector<torch::Tensor> grads(params.size());
  std::vector<size_t> which;
  for (size_t i = 0; i < params.size(); ++i) {
    if (flags[i] == 0) continue;
    const auto& p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads[i] = p.grad();
    which.push_back(i);
  }
  bucketed(grads, which, bucket_bytes, [&](const std::vector<torch::Tensor>& flats) { group.all_reduce_sum(flats, what); });
}

void broadcast_tensors(ProcessGroup& group, const std::vector<torch::Tensor>& tensors, int root, int64_t bucket_bytes,
                       const std::string& what) {
  std::vector<size_t> which(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) which[i] = i;
  bucketed(tensors, which, bucket_bytes, [&](const std::vector<torch::Tensor>& flats) { group.broadcast(flats, root, what); });
}

}  // namespace tpo::dist
