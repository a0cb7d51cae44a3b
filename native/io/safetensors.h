// safetensors files: read (memory-mapped, header validated before any tensor is touched) and write (atomic).
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

// One opened and validated .safetensors file. Tensors it returns are copy-on-write views of the mapping: no copy
// of the weights is made, writing to a tensor never touches the file, and the mapping lives as long as any tensor.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorEntry>& entries() const { return entries_; }  // in data-offset order
  const Metadata& metadata() const { return metadata_; }
  const TensorEntry* find(const std::string& name) const;
  torch::Tensor tensor(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data region
  std::vector<TensorEntry> entries_;
  std::map<std::string, size_t> index_;
  Metadata metadata_;
  std::weak_ptr<SafetensorsFile> self_;
};

// A checkpoint: one .safetensors file, or the shards an index names. Opened from a file, a folder
// (model.safetensors.index.json, else model.safetensors) or an index file.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::string& path);

  const std::vector<std::string>& keys() const { return keys_; }  // sorted
  bool contains(const std::string& key) const { return where_.count(key) != 0; }
  const TensorEntry& entry(const std::string& key) const;
  const std::string& file_of(const std::string& key) const;
  torch::Tensor tensor(const std::string& key) const;
  const Metadata& metadata() const { return metadata_; }  // the first file's __metadata__ (+ the index's, if any)
  const std::string& path() const { return path_; }

 private:
  std::string path_;
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
