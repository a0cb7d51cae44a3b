// What a path is, checked before anything opens it. open(2) of a FIFO waits for a writer, and FFmpeg reads a
// character device or a pipe until it ends: a checkpoint, config or video path that is not a regular file must be
// an error naming it, never a call that hangs (and keeps the process from exiting).
#pragma once

#include <cstddef>
#include <string>

namespace tpo::io {

enum class PathKind { Missing, File, Directory, Other };

// Follows symlinks. `Other`: a FIFO, socket or device.
PathKind path_kind(const std::string& path);
// "a FIFO", "a character device", ... for error messages; "missing" when there is nothing.
std::string describe_path(const std::string& path);

// Throws `path: <what> is <kind>, not a regular file` unless the path is a regular file.
void require_regular_file(const std::string& path, const std::string& what = "");

// Opens a regular file for reading without ever blocking on what it turns out to be: O_NONBLOCK for the open, the
// type checked on the opened descriptor (no window between a check and the open). Returns the descriptor.
int open_regular_file(const std::string& path);

// The whole of a small regular file (config.json, an index, adapter_config.json), at most `max_bytes`.
std::string read_text_file(const std::string& path, size_t max_bytes = 64u << 20);

}  // namespace tpo::io
