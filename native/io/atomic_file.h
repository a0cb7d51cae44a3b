// A file that appears at its final path whole or not at all: data goes to a temporary file in the same folder,
// which commit() fsyncs and renames over the target (then fsyncs the folder, so the rename itself is durable).
// Destroyed without commit() — an exception on the way — the temporary file is removed and the target untouched.
#pragma once

#include <cstddef>
#include <string>

namespace tpo::io {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void commit();
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace tpo::io
