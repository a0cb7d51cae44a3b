#include "video/av_util.h"

#include <cstdio>
#include <mutex>

extern "C" {
#include <libavutil/log.h>
}

namespace tpo::video {
namespace {

thread_local std::string last_message;

void log_callback(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_WARNING) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, args, line, sizeof line, &print_prefix);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (!text.empty()) last_message = text;
}

}  // namespace

FramePtr make_frame() {
  FramePtr frame(av_frame_alloc());
  if (!frame) throw std::bad_alloc();
  return frame;
}

PacketPtr make_packet() {
  PacketPtr packet(av_packet_alloc());
  if (!packet) throw std::bad_alloc();
  return packet;
}

std::string av_error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

void install_log_capture() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(log_callback); });
}

void clear_last_log() { last_message.clear(); }

std::string last_log() { return last_message; }

}  // namespace tpo::video
