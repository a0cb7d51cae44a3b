// safetensors files: read (into private memory, or memory-mapped when asked; the header validated before any tensor
// is touched) and write (atomic).
// Format: https://github.com/huggingface/safetensors — an 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data region.
// Sharded checkpoints (`model.safetensors.index.json` + `model-0000i-of-0000n.safetensors`) as transformers writes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace tpo::io {

using Metadata = std::map<std::string, std::string>;
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct TensorEntry {
  std::string name;
  std::string dtype_name;  // as written in the file: "F32", "BF16", ...
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets inside the data region
  uint64_t end = 0;
};

// torch dtype <-> safetensors dtype name. Throws for a dtype safetensors cannot hold.
std::string safetensors_dtype_name(torch::ScalarType dtype);

// How tensors come out of a file.
// - Read (the default): each tensor is read (pread) into memory of its own. Nothing refers to the file after, so
//   truncating or rewriting it while the tensors live changes nothing and cannot fault.
// - Map: tensors are copy-on-write views of a private mapping: no copy, pages shared with the page cache (and
//   with other processes mapping the same file). The file must not be truncated or rewritten in place while they
//   live: a truncated page raises SIGBUS when touched, a rewritten one silently reads the new bytes. Replacing the
//   file by rename (as every tpo writer does) is safe. check_unchanged() turns a change seen between calls into
//   an error; one during a call cannot be caught.
enum class LoadMode { Read, Map };

// One opened and validated .safetensors file.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path, LoadMode mode = LoadMode::Read);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorEntry>& entries() const { return entries_; }  // in data-offset order
  const Metadata& metadata() const { return metadata_; }
  const TensorEntry* find(const std::string& name) const;
  LoadMode mode() const { return mode_; }
  // Read: a new tensor holding the data. Map: a copy-on-write view of the mapping (a copy when misaligned).
  torch::Tensor tensor(const std::string& name) const;
  // Reads the tensor's bytes straight into `dst` (contiguous, CPU, the entry's dtype and element count).
  void read_into(const std::string& name, const torch::Tensor& dst) const;
  // Map: throws when the file's size, modification time or inode changed since it was opened.
  void check_unchanged() const;

 private:
  SafetensorsFile() = default;
  void read_bytes(void* dst, uint64_t size, uint64_t offset) const;

  std::string path_;
  LoadMode mode_ = LoadMode::Read;
  int fd_ = -1;
  uint64_t file_size_ = 0;
  int64_t mtime_ns_ = 0;
  uint64_t inode_ = 0, device_ = 0;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint64_t data_offset_ = 0;       // start of the data region in the file
  const uint8_t* data_ = nullptr;  // Map: start of the data region
  std::vector<TensorEntry> entries_;
  std::map<std::string, size_t> index_;
  Metadata metadata_;
  std::weak_ptr<SafetensorsFile> self_;
};

// A checkpoint: one .safetensors file, or the shards an index names. Opened from a file, a folder
// (model.safetensors.index.json, else model.safetensors) or an index file.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::string& path, LoadMode mode = LoadMode::Read);

  const std::vector<std::string>& keys() const { return keys_; }  // sorted
  bool contains(const std::string& key) const { return where_.count(key) != 0; }
  const TensorEntry& entry(const std::string& key) const;
  const std::string& file_of(const std::string& key) const;
  torch::Tensor tensor(const std::string& key) const;
  void read_into(const std::string& key, const torch::Tensor& dst) const;
  LoadMode mode() const { return mode_; }
  // The files, for check_unchanged() while their tensors live (LoadMode::Map).
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  const Metadata& metadata() const { return metadata_; }  // the first file's __metadata__ (+ the index's, if any)
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  LoadMode mode_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // key -> index into files_
  std::vector<std::string> keys_;
  Metadata metadata_;
};

// Writes one file atomically: a temporary file in the same folder, fsync, rename, fsync of the folder.
// Tensors are laid out by decreasing element size, so every tensor's data is aligned to its element size.
void write_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});

// Writes `tensors` into `dir` as transformers does: one `model.safetensors` when it fits in `max_shard_bytes`,
// else shards plus `model.safetensors.index.json` (written last, so an index never names a missing shard).
// Returns the file names written.
std::vector<std::string> write_safetensors_sharded(const std::string& dir, const NamedTensors& tensors,
                                                   uint64_t max_shard_bytes, const Metadata& metadata = {},
                                                   const std::string& prefix = "model");

}  // namespace tpo::io
