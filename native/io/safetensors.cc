#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "io/paths.h"

namespace tpo::io {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so must the host be");

// The reference implementation refuses headers above 100 MB; so do we (a bigger one is a corrupt length).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeName {
  const char* name;
  torch::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", torch::kFloat64},   {"F32", torch::kFloat32},         {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16}, {"I64", torch::kInt64},           {"I32", torch::kInt32},
    {"I16", torch::kInt16},     {"I8", torch::kInt8},             {"U8", torch::kUInt8},
    {"BOOL", torch::kBool},     {"U16", torch::kUInt16},          {"U32", torch::kUInt32},
    {"U64", torch::kUInt64},    {"F8_E4M3", torch::kFloat8_e4m3fn}, {"F8_E5M2", torch::kFloat8_e5m2},
};

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw std::runtime_error(path + ": " + why);
}

std::string errno_text() { return std::strerror(errno); }

torch::ScalarType parse_dtype(const std::string& path, const std::string& key, const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.dtype;
  fail(path, "tensor '" + key + "' has unknown dtype '" + name + "'");
}

uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& path, const std::string& key) {
  uint64_t out;
  if (__builtin_mul_overflow(a, b, &out)) fail(path, "tensor '" + key + "': shape overflows 64-bit size");
  return out;
}


// Parses and validates the JSON header against the data region's size. Everything a malicious file could use to
// make us read out of bounds is checked here, before any tensor exists.
void parse_header(const std::string& path, const char* text, size_t size, uint64_t data_size,
                  std::vector<TensorEntry>& entries, Metadata& metadata) {
  // (No depth limit: the header is parsed and freed, never printed or compared, which is what recursion limits.)
  const json header = parse_json(std::string_view(text, size), path, INT32_MAX, "header");
  if (!header.is_object()) fail(path, "header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const json& value = it.value();
    if (key == "__metadata__") {
      if (!value.is_object()) fail(path, "__metadata__ must be an object of strings");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) fail(path, "__metadata__['" + m.key() + "'] is not a string");
        metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!value.is_object()) fail(path, "tensor '" + key + "' is not an object");
    const auto dtype_it = value.find("dtype");
    const auto shape_it = value.find("shape");
    const auto offsets_it = value.find("data_offsets");
    if (dtype_it == value.end() || !dtype_it->is_string()) fail(path, "tensor '" + key + "' has no string 'dtype'");
    if (shape_it == value.end() || !shape_it->is_array()) fail(path, "tensor '" + key + "' has no array 'shape'");
    if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2)
      fail(path, "tensor '" + key + "' needs 'data_offsets': [begin, end]");

    TensorEntry entry;
    entry.name = key;
    entry.dtype_name = dtype_it->get<std::string>();
    entry.dtype = parse_dtype(path, key, entry.dtype_name);
    uint64_t numel = 1;
    for (const json& dim : *shape_it) {
      if (!dim.is_number_unsigned()) fail(path, "tensor '" + key + "': shape entries must be non-negative integers");
      const uint64_t d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(INT64_MAX)) fail(path, "tensor '" + key + "': dimension too large");
      numel = checked_mul(numel, d, path, key);
      entry.shape.push_back(static_cast<int64_t>(d));
    }
    for (const json& off : *offsets_it)
      if (!off.is_number_unsigned()) fail(path, "tensor '" + key + "': data_offsets must be non-negative integers");
    entry.begin = (*offsets_it)[0].get<uint64_t>();
    entry.end = (*offsets_it)[1].get<uint64_t>();
    if (entry.begin > entry.end)
      fail(path, "tensor '" + key + "': data_offsets [" + std::to_string(entry.begin) + ", " +
                     std::to_string(entry.end) + "] are reversed");
    if (entry.end > data_size)
      fail(path, "tensor '" + key + "': data_offsets end " + std::to_string(entry.end) +
                     " lies past the end of the data (" + std::to_string(data_size) + " bytes): truncated file?");
    const uint64_t nbytes = checked_mul(numel, c10::elementSize(entry.dtype), path, key);
    if (entry.end - entry.begin != nbytes)
      fail(path, "tensor '" + key + "': " + entry.dtype_name + " " + c10::str(c10::IntArrayRef(entry.shape)) + " needs " +
                     std::to_string(nbytes) + " bytes but data_offsets span " +
                     std::to_string(entry.end - entry.begin));
    entries.push_back(std::move(entry));
  }

  // As the reference implementation does: tensors must tile the data region exactly, with no overlap and no hole.
  std::sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const TensorEntry& e = entries[i];
    if (e.begin < expected)
      fail(path, "tensors '" + entries[i - 1].name + "' and '" + e.name + "' overlap (bytes " +
                     std::to_string(e.begin) + " to " + std::to_string(expected) + ")");
    if (e.begin > expected)
      fail(path, "bytes " + std::to_string(expected) + " to " + std::to_string(e.begin) +
                     " of the data belong to no tensor (before '" + e.name + "')");
    expected = e.end;
  }
  if (expected != data_size)
    fail(path, "the data region holds " + std::to_string(data_size) + " bytes but the tensors cover " +
                   std::to_string(expected));
}

}  // namespace

std::string safetensors_dtype_name(torch::ScalarType dtype) {
  for (const auto& d : kDtypes)
    if (d.dtype == dtype) return d.name;
  throw std::runtime_error(std::string("safetensors cannot hold dtype ") + c10::toString(dtype));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, LoadMode mode) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->self_ = file;
  file->path_ = path;
  file->mode_ = mode;
  file->fd_ = open_regular_file(path);  // a FIFO or a device is an error here, not an open that never returns
  struct stat st {};
  if (::fstat(file->fd_, &st) != 0) fail(path, "cannot stat: " + errno_text());
  file->file_size_ = static_cast<uint64_t>(st.st_size);
  file->mtime_ns_ = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  file->inode_ = st.st_ino;
  file->device_ = st.st_dev;
  const uint64_t file_size = file->file_size_;
  if (file_size < 8)
    fail(path, "too short for a safetensors file (" + std::to_string(file_size) + " bytes; the header length alone is 8)");

  uint64_t header_size = 0;
  file->read_bytes(&header_size, 8, 0);
  if (header_size > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_size) + " exceeds the 100 MB limit: not a safetensors file?");
  if (header_size > file_size - 8)
    fail(path, "header length " + std::to_string(header_size) + " runs past the end of the file (" +
                   std::to_string(file_size) + " bytes): truncated or not a safetensors file");
  std::string header(header_size, '\0');
  if (header_size > 0) file->read_bytes(header.data(), header_size, 8);
  if (header_size == 0 || header[0] != '{') fail(path, "header does not start with '{': not a safetensors file");
  parse_header(path, header.data(), header_size, file_size - 8 - header_size, file->entries_, file->metadata_);
  file->data_offset_ = 8 + header_size;
  for (size_t i = 0; i < file->entries_.size(); ++i) file->index_[file->entries_[i].name] = i;

  if (mode == LoadMode::Map) {
    // MAP_PRIVATE + PROT_WRITE: copy-on-write. Tensors are views of this memory; an in-place op on one must
    // neither fault (as a read-only mapping would) nor reach the file.
    void* map = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file->fd_, 0);
    if (map == MAP_FAILED) fail(path, "cannot map: " + errno_text());
    file->map_ = map;
    file->map_size_ = file_size;
    file->data_ = static_cast<const uint8_t*>(map) + file->data_offset_;
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

void SafetensorsFile::read_bytes(void* dst, uint64_t size, uint64_t offset) const {
  auto* out = static_cast<uint8_t*>(dst);
  while (size > 0) {
    const ssize_t n = ::pread(fd_, out, std::min<uint64_t>(size, 1u << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path_, "read failed at byte " + std::to_string(offset) + ": " + errno_text());
    }
    if (n == 0) fail(path_, "ends at byte " + std::to_string(offset) + ", before its header says: truncated while reading?");
    out += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<uint64_t>(n);
  }
}

void SafetensorsFile::read_into(const std::string& name, const torch::Tensor& dst) const {
  const TensorEntry* e = find(name);
  if (!e) fail(path_, "has no tensor '" + name + "'");
  if (!dst.is_cpu() || !dst.is_contiguous() || dst.scalar_type() != e->dtype || dst.nbytes() != e->end - e->begin)
    throw std::invalid_argument(path_ + ": tensor '" + name + "' (" + e->dtype_name + " " +
                                c10::str(c10::IntArrayRef(e->shape)) + ") cannot be read into a " +
                                c10::toString(dst.scalar_type()) + " " + c10::str(dst.sizes()) + " tensor");
  if (mode_ == LoadMode::Map) {
    std::memcpy(dst.data_ptr(), data_ + e->begin, e->end - e->begin);
    return;
  }
  if (e->end > e->begin) read_bytes(dst.data_ptr(), e->end - e->begin, data_offset_ + e->begin);
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorEntry* e = find(name);
  if (!e) fail(path_, "has no tensor '" + name + "'");
  auto options = torch::TensorOptions().dtype(e->dtype);
  if (mode_ == LoadMode::Read) {
    auto out = torch::empty(e->shape, options);
    read_into(name, out);
    return out;
  }
  void* ptr = const_cast<uint8_t*>(data_ + e->begin);
  const size_t align = c10::elementSize(e->dtype);
  if (reinterpret_cast<uintptr_t>(ptr) % align != 0) {
    // A writer that did not align its header: kernels may assume aligned elements, so copy this one.
    auto out = torch::empty(e->shape, options);
    std::memcpy(out.data_ptr(), ptr, e->end - e->begin);
    return out;
  }
  std::shared_ptr<const SafetensorsFile> keep_alive = self_.lock();
  return torch::from_blob(ptr, e->shape, [keep_alive](void*) {}, options);
}

void SafetensorsFile::check_unchanged() const {
  if (mode_ != LoadMode::Map) return;
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail(path_, "cannot stat: " + errno_text());
  const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (static_cast<uint64_t>(st.st_size) != file_size_ || mtime != mtime_ns_)
    fail(path_, "changed on disk while memory-mapped (" + std::to_string(file_size_) + " bytes when loaded, " +
                    std::to_string(st.st_size) + " now" + (mtime != mtime_ns_ ? ", modified since" : "") +
                    "): its weights can no longer be trusted; load the model again (or without mmap)");
}

// ------------------------------------------------------------------------------------------------- checkpoints

namespace {

const char* kIndexName = "model.safetensors.index.json";
const char* kSingleName = "model.safetensors";

json read_json_file(const std::string& path) { return parse_json(read_text_file(path), path, 16); }

}  // namespace

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& path, LoadMode mode) : path_(path), mode_(mode) {
  std::string index_path;
  std::string single_path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / kIndexName)) {
      index_path = (fs::path(path) / kIndexName).string();
    } else if (fs::exists(fs::path(path) / kSingleName)) {
      single_path = (fs::path(path) / kSingleName).string();
    } else {
      fail(path, std::string("folder has neither ") + kIndexName + " nor " + kSingleName);
    }
  } else if (path.size() >= 11 && path.compare(path.size() - 11, 11, ".index.json") == 0) {
    index_path = path;
  } else {
    single_path = path;
  }

  path_ = single_path.empty() ? index_path : single_path;  // errors name the file read, not the folder
  if (!single_path.empty()) {
    files_.push_back(SafetensorsFile::open(single_path, mode));
    for (const auto& e : files_[0]->entries()) where_[e.name] = 0;
    metadata_ = files_[0]->metadata();
  } else {
    const json index = read_json_file(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(index_path, "has no 'weight_map' object");
    const fs::path dir = fs::path(index_path).parent_path();
    std::map<std::string, size_t> file_ids;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail(index_path, "weight_map['" + it.key() + "'] is not a file name");
      const std::string name = it.value().get<std::string>();
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        fail(index_path, "weight_map['" + it.key() + "'] = '" + name + "' is not a file name in the same folder");
      auto found = file_ids.find(name);
      if (found == file_ids.end()) {
        const std::string shard = (dir / name).string();
        if (!fs::exists(shard, ec))
          fail(index_path, "weight_map['" + it.key() + "'] names '" + name + "', which does not exist");
        files_.push_back(SafetensorsFile::open(shard, mode));
        found = file_ids.emplace(name, files_.size() - 1).first;
      }
      if (!files_[found->second]->find(it.key()))
        fail(index_path, "weight_map['" + it.key() + "'] names '" + name + "', which has no such tensor");
      where_[it.key()] = found->second;
    }
    if (!files_.empty()) metadata_ = files_[0]->metadata();
    if (index.contains("metadata") && index["metadata"].is_object())
      for (auto it = index["metadata"].begin(); it != index["metadata"].end(); ++it)
        metadata_[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
  }
  for (const auto& [key, _] : where_) keys_.push_back(key);
}

const TensorEntry& SafetensorsCheckpoint::entry(const std::string& key) const {
  const auto it = where_.find(key);
  if (it == where_.end()) fail(path_, "has no tensor '" + key + "'");
  return *files_[it->second]->find(key);
}

const std::string& SafetensorsCheckpoint::file_of(const std::string& key) const {
  const auto it = where_.find(key);
  if (it == where_.end()) fail(path_, "has no tensor '" + key + "'");
  return files_[it->second]->path();
}

torch::Tensor SafetensorsCheckpoint::tensor(const std::string& key) const {
  const auto it = where_.find(key);
  if (it == where_.end()) fail(path_, "has no tensor '" + key + "'");
  return files_[it->second]->tensor(key);
}

void SafetensorsCheckpoint::read_into(const std::string& key, const torch::Tensor& dst) const {
  const auto it = where_.find(key);
  if (it == where_.end()) fail(path_, "has no tensor '" + key + "'");
  files_[it->second]->read_into(key, dst);
}

// ------------------------------------------------------------------------------------------------- writing

void write_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  struct Item {
    const std::string* name;
    torch::Tensor data;  // contiguous, on the CPU
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  std::map<std::string, int> seen;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, "'__metadata__' is reserved and cannot name a tensor");
    if (name.empty()) fail(path, "a tensor has an empty name");
    if (!seen.emplace(name, 0).second) fail(path, "tensor '" + name + "' is given twice");
    if (!t.defined()) fail(path, "tensor '" + name + "' is undefined (disposed?)");
    safetensors_dtype_name(t.scalar_type());  // throws for complex and other dtypes the format lacks
    items.push_back({&name, t.detach().to(torch::kCPU).contiguous()});
  }
  // Largest elements first: with an 8-byte-aligned header every tensor then starts aligned to its element size.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    const size_t ea = a.data.element_size(), eb = b.data.element_size();
    return ea != eb ? ea > eb : *a.name < *b.name;
  });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const Item& item : items) {
    const uint64_t nbytes = item.data.nbytes();
    header[*item.name] = {{"dtype", safetensors_dtype_name(item.data.scalar_type())},
                          {"shape", item.data.sizes().vec()},
                          {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_size = header_text.size();

  AtomicFile out(path);
  out.write(&header_size, 8);
  out.write(header_text.data(), header_text.size());
  for (const Item& item : items) out.write(item.data.data_ptr(), item.data.nbytes());
  out.commit();
}

std::vector<std::string> write_safetensors_sharded(const std::string& dir, const NamedTensors& tensors,
                                                   uint64_t max_shard_bytes, const Metadata& metadata,
                                                   const std::string& prefix) {
  if (max_shard_bytes == 0) fail(dir, "max shard size must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create folder: " + ec.message());

  // Greedy in the given order, as transformers' shard_checkpoint: a tensor larger than the limit gets a shard alone.
  std::vector<NamedTensors> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& named : tensors) {
    const uint64_t nbytes = named.second.defined() ? named.second.nbytes() : 0;
    if (current > 0 && current + nbytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(named);
    current += nbytes;
    total += nbytes;
  }

  if (shards.size() == 1) {
    const std::string name = prefix + ".safetensors";
    write_safetensors((fs::path(dir) / name).string(), tensors, metadata);
    return {name};
  }
  std::vector<std::string> names;
  json weight_map = json::object();
  char buf[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    const std::string name = prefix + buf;
    write_safetensors((fs::path(dir) / name).string(), shards[i], metadata);
    for (const auto& named : shards[i]) weight_map[named.first] = name;
    names.push_back(name);
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string index_name = prefix + ".safetensors.index.json";
  const std::string text = index.dump(2) + "\n";
  AtomicFile out((fs::path(dir) / index_name).string());
  out.write(text.data(), text.size());
  out.commit();
  names.push_back(index_name);
  return names;
}

}  // namespace tpo::io
