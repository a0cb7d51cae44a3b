// (Implemented in runtime.cc.) Memory left for this process, checked before the few allocations whose size comes from input (frames asked of a
// video, a model's parameters). Linux overcommits: an allocation larger than what is left succeeds, and the
// process is killed as it fills it, with no message. An error naming what asked for the memory is better.
#pragma once

#include <cstdint>
#include <string>

namespace tpo::runtime {

// MemAvailable, capped by the cgroup's limit less its usage (cgroup v2, else v1). 0 when unknown.
uint64_t available_memory();

// Throws std::runtime_error "<what> needs N GB, but only M GB of memory are available" when `bytes` is more than
// available_memory() (unknown: no check).
void check_allocation(uint64_t bytes, const std::string& what);

}  // namespace tpo::runtime
