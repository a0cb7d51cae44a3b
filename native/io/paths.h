// What a path is, checked before anything opens it. open(2) of a FIFO waits for a writer, and FFmpeg reads a
// character device or a pipe until it ends: a checkpoint, config or video path that is not a regular file must be
// an error naming it, never a call that hangs (and keeps the process from exiting).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tpo::io {

enum class PathKind { Missing, File, Directory, Other };

// path_kind follows symlinks (`Other`: a FIFO, socket or device); describe_path says "a FIFO", "a character
// device", ... for messages ("missing" when there is nothing); open_regular_file opens for reading without ever
// blocking on what the path turns out to be (O_NONBLOCK for the open, the type checked on the opened descriptor: no
// window between a check and the open); read_text_file reads a small regular file (config.json, an index,
// adapter_config.json) whole, at most max_bytes.
// (Header-only: a translation unit of its own would cost a build the torch PCH once more for a few lines.)
namespace detail {

[[noreturn]] inline void fail(const std::string& path, const std::string& why) { throw std::runtime_error(path + ": " + why); }

inline const char* kind_of(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

}  // namespace detail

inline PathKind path_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return PathKind::Missing;
  if (S_ISREG(st.st_mode)) return PathKind::File;
  if (S_ISDIR(st.st_mode)) return PathKind::Directory;
  return PathKind::Other;
}

inline std::string describe_path(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return detail::kind_of(st.st_mode);
}

inline int open_regular_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) detail::fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string kind = detail::kind_of(st.st_mode);
    ::close(fd);
    detail::fail(path, "is " + kind + ", not a regular file");
  }
  // Regular files ignore O_NONBLOCK; cleared anyway, so the descriptor reads as any other.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

inline std::string read_text_file(const std::string& path, size_t max_bytes = 64u << 20) {
  const int fd = open_regular_file(path);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      detail::fail(path, "read failed: " + why);
    }
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > max_bytes) {
      ::close(fd);
      detail::fail(path, "is larger than " + std::to_string(max_bytes >> 20) + " MB: not a config file");
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace tpo::io
