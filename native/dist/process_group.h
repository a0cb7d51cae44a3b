// Data parallelism over PyTorch's c10d: a process group (TCPStore rendezvous, ProcessGroupGloo on CPU,
// ProcessGroupNCCL on a CUDA build with NCCL) and the collectives tpo's training, generation and evaluation use.
//
// Plain libtorch C++; c10d's and Gloo's headers stay inside process_group.cc (they are heavy to parse), so this
// header costs the files that include it nothing beyond torch.
//
// Every call is a collective: each rank makes the same calls in the same order (tpo runs them all on its one
// engine thread, in call order). A rank that dies or stops answering makes the others' calls fail within the
// timeout with a DistError that names it, never hang; after a failure the group refuses further calls.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tpo::dist {

// The group failed: a rank died or stopped answering, the rendezvous did not complete, or the ranks disagree.
struct DistError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct GroupConfig {
  std::string backend = "gloo";  // gloo | nccl
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  // This rank's place on its machine (torchrun's LOCAL_RANK): with NCCL, the GPU it communicates through.
  int local_rank = 0;
  // How long a rendezvous or a collective may wait for the slowest rank before it fails.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // What every rank must agree on (tpo's version, the run's config digest): ranks that differ are refused at
  // rendezvous, before any work.
  std::string identity;
};

// Communication so far: calls, bytes moved (each rank's input), seconds spent in collectives.
struct CommStats {
  int64_t calls = 0;
  int64_t bytes = 0;
  double seconds = 0;
};

class ProcessGroup {
 public:
  // Rendezvous: rank 0 hosts the TCPStore at master_addr:master_port, every rank checks the others' identity,
  // then the backend connects. Throws DistError naming what failed (a rank that never arrived, a port in use).
  explicit ProcessGroup(const GroupConfig& config);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int size() const;
  const std::string& backend() const;
  CommStats stats() const;

  // Sums each tensor over the ranks, in place (one collective per tensor, all in flight together).
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors, const std::string& what);
  // Root's values into every rank's tensors, in place.
  void broadcast(const std::vector<torch::Tensor>& tensors, int root, const std::string& what);
  // Every rank's 1-D tensor (lengths may differ; same dtype), in rank order.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& mine, const std::string& what);
  // Every rank's bytes, in rank order.
  std::vector<std::string> all_gather_bytes(const std::string& mine, const std::string& what);
  void barrier(const std::string& what);
  // A last barrier, then the group is closed (heartbeat, backend and store released); later collectives throw.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether this build has the backend compiled in.
bool backend_built(const std::string& backend);

// Data-parallel gradients: sums every parameter's gradient over the group in flat buckets of about
// `bucket_bytes` (one all-reduce each, all in flight together), in place. A parameter that has a gradient on some
// rank takes part as zeros where it has none; one that has none anywhere keeps none (AdamW then skips it, as it
// would in one process).
void all_reduce_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& params, int64_t bucket_bytes,
                          const std::string& what);

// Rank `root`'s values of `tensors` on every rank, bucketed as above (the starting weights every rank trains).
void broadcast_tensors(ProcessGroup& group, const std::vector<torch::Tensor>& tensors, int root, int64_t bucket_bytes,
                       const std::string& what);

}  // namespace tpo::dist
