#include "runtime/memory.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tpo::runtime {
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

}  // namespace tpo::runtime
