#include "video/reader.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <regex>
#include <stdexcept>

#include "io/paths.h"
#include "runtime/memory.h"
#include "video/av_util.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace tpo::video {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Timestamps a hair below a target count as reaching it (pts x time_base is not exact in binary).
constexpr double kTimeEpsilon = 1e-6;

struct Deadline {
  Clock::time_point at;
  bool active = false;
  bool expired() const { return active && Clock::now() > at; }
};

int interrupt_callback(void* opaque) { return static_cast<const Deadline*>(opaque)->expired() ? 1 : 0; }

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  const std::string detail = last_log();
  throw std::runtime_error(path + ": " + why + (detail.empty() ? "" : " (ffmpeg: " + detail + ")"));
}

// One opened file (a video, or one image of a frame folder) with its best video stream and a decoder.
class Stream {
 public:
  Stream(const std::string& path, int threads, Deadline* deadline) : path_(path) {
    // FFmpeg reads a FIFO or a device until it ends (forever, for one nobody writes to): only regular files.
    const io::PathKind kind = io::path_kind(path);
    if (kind == io::PathKind::Missing) fail(path, "no such file");
    if (kind != io::PathKind::File) fail(path, "is " + io::describe_path(path) + ", not a video file");
    std::error_code ec;
    if (fs::file_size(path, ec) == 0) fail(path, "is empty (0 bytes)");
    AVFormatContext* raw = avformat_alloc_context();
    if (!raw) throw std::bad_alloc();
    raw->interrupt_callback = {interrupt_callback, deadline};
    // Local files only: "file:" keeps a name such as "pipe:0" or "http:x" a file name, and the whitelist keeps a
    // playlist or concat file from reaching other protocols (the network, or pipes).
    AVDictionary* opts = nullptr;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    int r = avformat_open_input(&raw, ("file:" + path).c_str(), nullptr, &opts);  // frees `raw` on failure
    av_dict_free(&opts);
    if (r < 0) fail(path, "cannot open as a video: " + av_error_text(r));
    fmt_.reset(raw);
    if ((r = avformat_find_stream_info(fmt_.get(), nullptr)) < 0)
      fail(path, "cannot read its streams: " + av_error_text(r));
    const AVCodec* decoder = nullptr;
    index_ = av_find_best_stream(fmt_.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
    if (index_ == AVERROR_STREAM_NOT_FOUND) fail(path, "has no video stream");
    if (index_ == AVERROR_DECODER_NOT_FOUND || !decoder) {
      const AVStream* s = fmt_->streams[std::max(index_, 0)];
      fail(path, std::string("no decoder for its video codec (") + avcodec_get_name(s->codecpar->codec_id) +
                     ") in this FFmpeg build");
    }
    if (index_ < 0) fail(path, "cannot find a video stream: " + av_error_text(index_));
    stream_ = fmt_->streams[index_];
    codec_.reset(avcodec_alloc_context3(decoder));
    if (!codec_) throw std::bad_alloc();
    if ((r = avcodec_parameters_to_context(codec_.get(), stream_->codecpar)) < 0)
      fail(path, "bad codec parameters: " + av_error_text(r));
    codec_->thread_count = threads;
    codec_->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    if ((r = avcodec_open2(codec_.get(), decoder, nullptr)) < 0)
      fail(path, std::string("cannot open the ") + decoder->name + " decoder: " + av_error_text(r));
    time_base_ = av_q2d(stream_->time_base);
    start_pts_ = stream_->start_time != AV_NOPTS_VALUE ? stream_->start_time : 0;
    packet_ = make_packet();
  }

  VideoInfo info(bool count_frames) {
    VideoInfo out;
    out.path = path_;
    const AVCodecParameters* par = stream_->codecpar;
    out.codec = avcodec_get_name(par->codec_id);
    const char* pix = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format));
    out.pixel_format = pix ? pix : "unknown";
    out.width = par->width;
    out.height = par->height;
    out.start_time = start_pts_ * time_base_;
    const AVRational rate = stream_->avg_frame_rate.num > 0 && stream_->avg_frame_rate.den > 0
                                ? stream_->avg_frame_rate
                                : stream_->r_frame_rate;
    out.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0;
    if (stream_->duration != AV_NOPTS_VALUE && stream_->duration > 0)
      out.duration = stream_->duration * time_base_;
    else if (fmt_->duration != AV_NOPTS_VALUE && fmt_->duration > 0)
      out.duration = static_cast<double>(fmt_->duration) / AV_TIME_BASE;
    if (stream_->nb_frames > 0) {
      out.frame_count = stream_->nb_frames;
      out.frame_count_exact = true;
    } else if (count_frames) {
      out.frame_count = count_packets();
      out.frame_count_exact = true;
    } else {
      out.frame_count = std::llround(out.duration * out.fps);
    }
    if (out.fps <= 0 && out.duration > 0 && out.frame_count > 0) out.fps = out.frame_count / out.duration;
    return out;
  }

  // The next frame in presentation order, or null at the end of the stream.
  FramePtr next() {
    FramePtr frame = make_frame();
    for (;;) {
      int r = avcodec_receive_frame(codec_.get(), frame.get());
      if (r == 0) return frame;
      if (r == AVERROR_EOF) return nullptr;
      if (r != AVERROR(EAGAIN)) return nullptr;  // a broken stream ends here; what was decoded stands
      if (drained_) return nullptr;
      if (demuxed_) {
        avcodec_send_packet(codec_.get(), nullptr);  // flush: the decoder returns its delayed frames
        drained_ = true;
        continue;
      }
      r = av_read_frame(fmt_.get(), packet_.get());
      if (r == AVERROR_EXIT) fail(path_, "timed out");
      if (r < 0) {
        demuxed_ = true;  // end of file, or a read error: decode what we have
        continue;
      }
      if (packet_->stream_index == index_) avcodec_send_packet(codec_.get(), packet_.get());  // a corrupt packet is skipped
      av_packet_unref(packet_.get());
    }
  }

  // Positions the demuxer at the keyframe at or before `seconds` (from the start). False when it cannot seek.
  bool seek(double seconds) {
    const auto ts = start_pts_ + static_cast<int64_t>(std::floor(seconds / time_base_));
    if (av_seek_frame(fmt_.get(), index_, ts, AVSEEK_FLAG_BACKWARD) < 0) return false;
    avcodec_flush_buffers(codec_.get());
    demuxed_ = drained_ = false;
    return true;
  }

  // A frame's timestamp in the stream's time base, relative to the stream's start; `fallback` when it has none.
  int64_t pts_of(const AVFrame* frame, int64_t fallback) const {
    const int64_t pts = frame->best_effort_timestamp != AV_NOPTS_VALUE ? frame->best_effort_timestamp : frame->pts;
    return pts == AV_NOPTS_VALUE ? fallback : pts - start_pts_;
  }
  double seconds(int64_t pts) const { return pts * time_base_; }
  // A time in the stream's time base, rounded as ffmpeg rounds `-ss T` (microseconds, then to nearest).
  int64_t to_pts(double seconds) const {
    return av_rescale_q(std::llround(seconds * 1e6), AVRational{1, 1000000}, stream_->time_base);
  }
  int64_t frame_duration_pts() const {
    const AVRational rate = stream_->avg_frame_rate.num > 0 ? stream_->avg_frame_rate : stream_->r_frame_rate;
    return rate.num > 0 ? std::max<int64_t>(1, av_rescale_q(1, av_inv_q(rate), stream_->time_base)) : 1;
  }

 private:
  int64_t count_packets() {
    int64_t n = 0;
    while (av_read_frame(fmt_.get(), packet_.get()) >= 0) {
      if (packet_->stream_index == index_) ++n;
      av_packet_unref(packet_.get());
    }
    av_seek_frame(fmt_.get(), index_, start_pts_, AVSEEK_FLAG_BACKWARD);
    return n;
  }

  std::string path_;
  FormatContextPtr fmt_;
  CodecContextPtr codec_;
  PacketPtr packet_;
  AVStream* stream_ = nullptr;
  int index_ = -1;
  double time_base_ = 0;
  int64_t start_pts_ = 0;
  bool demuxed_ = false;
  bool drained_ = false;
};

// Converts decoded frames to packed RGB at the output size. swscale's SIMD paths read and write whole vectors past
// a row's last pixel, and at small widths past the last row too (valgrind: invalid writes in sws_scale for frames
// under ~30 px), so it never writes into the tight [H, W, 3] tensor: it scales into a frame allocated with
// FFmpeg's own alignment and padding, and the rows are copied out.
class RgbConverter {
 public:
  RgbConverter(int width, int height) : width_(width), height_(height), scratch_(make_frame()) {
    scratch_->format = AV_PIX_FMT_RGB24;
    scratch_->width = width;
    scratch_->height = height;
    const int r = av_frame_get_buffer(scratch_.get(), kAlign);
    if (r < 0) throw std::runtime_error("cannot allocate a " + std::to_string(width) + "x" + std::to_string(height) +
                                        " RGB frame: " + av_error_text(r));
  }

  void convert(const AVFrame* f, uint8_t* dst) {
    ctx_.reset(sws_getCachedContext(ctx_.release(), f->width, f->height, static_cast<AVPixelFormat>(f->format), width_,
                                    height_, AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr));
    if (!ctx_) {
      const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format));
      throw std::runtime_error(std::string("swscale cannot convert this frame's pixel format (") + (name ? name : "unknown") +
                               ", " + std::to_string(f->width) + "x" + std::to_string(f->height) + ")");
    }
    // The matrix and range the frame says it uses (BT.601 limited range when it says nothing, as ffmpeg does).
    const int colorspace = f->colorspace != AVCOL_SPC_UNSPECIFIED ? f->colorspace : SWS_CS_DEFAULT;
    const bool full_range = f->color_range == AVCOL_RANGE_JPEG ||
                            f->format == AV_PIX_FMT_YUVJ420P || f->format == AV_PIX_FMT_YUVJ422P ||
                            f->format == AV_PIX_FMT_YUVJ444P;
    sws_setColorspaceDetails(ctx_.get(), sws_getCoefficients(colorspace), full_range ? 1 : 0,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    const int rows = sws_scale(ctx_.get(), f->data, f->linesize, 0, f->height, scratch_->data, scratch_->linesize);
    if (rows != height_) throw std::runtime_error("swscale converted " + std::to_string(rows) + " of " + std::to_string(height_) + " rows");
    const size_t row_bytes = static_cast<size_t>(width_) * 3;
    for (int y = 0; y < height_; ++y)
      std::memcpy(dst + static_cast<size_t>(y) * row_bytes, scratch_->data[0] + static_cast<ptrdiff_t>(y) * scratch_->linesize[0], row_bytes);
  }

 private:
  static constexpr int kAlign = 64;  // the widest SIMD store swscale makes (AVX-512)
  int width_, height_;
  FramePtr scratch_;
  SwsContextPtr ctx_;
};

std::pair<int, int> output_size(const VideoInfo& info, const ReadOptions& options, const std::string& path) {
  int w = options.width, h = options.height;
  if (w < 0 || h < 0) fail(path, "output size must not be negative");
  // A damaged header can claim any size; refuse what no real video has before allocating for it.
  constexpr int kMaxSide = 16384;
  if (info.width <= 0 || info.height <= 0 || info.width > kMaxSide || info.height > kMaxSide)
    fail(path, "has an implausible frame size " + std::to_string(info.width) + "x" + std::to_string(info.height));
  if (w > kMaxSide || h > kMaxSide) fail(path, "output size is larger than " + std::to_string(kMaxSide));
  const int aw = options.at_least_width, ah = options.at_least_height;
  if (aw < 0 || ah < 0 || aw > kMaxSide || ah > kMaxSide) fail(path, "at_least size must lie in [0, " + std::to_string(kMaxSide) + "]");
  if (w == 0 && h == 0 && (aw > 0 || ah > 0)) {
    // The largest scale that keeps both sides at or above the box (a side the box leaves 0 does not limit it).
    const double scale = std::max(static_cast<double>(aw) / info.width, static_cast<double>(ah) / info.height);
    if (scale >= 1) return {info.width, info.height};
    const int sw = std::max({1, aw, static_cast<int>(std::ceil(info.width * scale - 1e-9))});
    const int sh = std::max({1, ah, static_cast<int>(std::ceil(info.height * scale - 1e-9))});
    return {std::min(sw, info.width), std::min(sh, info.height)};
  }
  if (w == 0 && h == 0) return {info.width, info.height};
  if (w == 0) w = std::max(1, static_cast<int>(std::lround(static_cast<double>(h) * info.width / info.height)));
  if (h == 0) h = std::max(1, static_cast<int>(std::lround(static_cast<double>(w) * info.height / info.width)));
  return {w, h};
}

// Before the output tensor exists: a plan of 100,000 frames was allocated (overcommitted) and filled until the
// process was killed, with no message.
void check_frames_memory(const std::string& path, int64_t frames, int w, int h) {
  const uint64_t bytes = static_cast<uint64_t>(frames) * static_cast<uint64_t>(w) * static_cast<uint64_t>(h) * 3;
  runtime::check_allocation(bytes, path + ": " + std::to_string(frames) + " frames of " + std::to_string(w) + "x" +
                                       std::to_string(h) + " RGB");
}

Deadline make_deadline(const ReadOptions& options) {
  Deadline d;
  if (options.timeout > 0) {
    d.active = true;
    d.at = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(options.timeout * 1e6));
  }
  return d;
}

// ------------------------------------------------------------------------------------------------ frame folders

struct FrameFolder {
  std::vector<std::string> files;  // in frame order
};

FrameFolder list_frames(const std::string& dir) {
  static const std::regex pattern(R"(^(.*?)(\d+)\.(jpe?g|png)$)", std::regex::icase);
  std::map<int64_t, std::string> numbered;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, pattern)) continue;
    const int64_t number = std::stoll(m[2].str());
    const auto [it, fresh] = numbered.emplace(number, entry.path().string());
    if (!fresh) fail(dir, "frames '" + fs::path(it->second).filename().string() + "' and '" + name + "' have the same number");
  }
  if (ec) fail(dir, "cannot list: " + ec.message());
  if (numbered.empty()) fail(dir, "holds no numbered .jpg/.jpeg/.png frames");
  const int64_t first = numbered.begin()->first;
  const int64_t last = numbered.rbegin()->first;
  if (last - first + 1 != static_cast<int64_t>(numbered.size())) {
    std::string missing;
    int shown = 0;
    for (int64_t n = first; n <= last && shown < 5; ++n)
      if (!numbered.count(n)) missing += (shown++ ? ", " : "") + std::to_string(n);
    const int64_t gaps = last - first + 1 - static_cast<int64_t>(numbered.size());
    fail(dir, "frame numbers " + std::to_string(first) + " to " + std::to_string(last) + " have " +
                  std::to_string(gaps) + " gap(s): missing " + missing + (gaps > 5 ? ", ..." : ""));
  }
  FrameFolder out;
  for (auto& [_, file] : numbered) out.files.push_back(std::move(file));
  return out;
}

VideoInfo folder_info(const std::string& dir, const FrameFolder& folder, const ReadOptions& options,
                      Deadline* deadline) {
  if (!(options.folder_fps > 0)) fail(dir, "a frame folder needs folder_fps > 0");
  Stream first(folder.files.front(), 1, deadline);
  VideoInfo info = first.info(false);
  info.path = dir;
  info.is_frame_folder = true;
  info.fps = options.folder_fps;
  info.frame_count = static_cast<int64_t>(folder.files.size());
  info.frame_count_exact = true;
  info.duration = static_cast<double>(info.frame_count) / info.fps;
  info.start_time = 0;
  return info;
}

DecodedVideo decode_folder(const std::string& dir, const SamplePlan& plan, const ReadOptions& options,
                           Deadline* deadline) {
  const FrameFolder folder = list_frames(dir);
  DecodedVideo out;
  out.info = folder_info(dir, folder, options, deadline);
  const std::vector<Target> targets = resolve_plan(plan, out.info);
  const auto [w, h] = output_size(out.info, options, dir);
  check_frames_memory(dir, static_cast<int64_t>(targets.size()), w, h);
  out.frames = torch::empty({static_cast<int64_t>(targets.size()), h, w, 3}, torch::kUInt8);
  RgbConverter rgb(w, h);
  const int64_t last = out.info.frame_count - 1;
  for (size_t k = 0; k < targets.size(); ++k) {
    const Target& t = targets[k];
    int64_t i = t.nearest ? t.index : static_cast<int64_t>(std::ceil(t.time * out.info.fps - kTimeEpsilon));
    i = std::clamp<int64_t>(i, 0, last);
    const std::string& file = folder.files[static_cast<size_t>(i)];
    Stream image(file, 1, deadline);
    FramePtr frame = image.next();
    if (!frame) fail(file, "cannot be decoded as an image");
    rgb.convert(frame.get(), out.frames[static_cast<int64_t>(k)].data_ptr<uint8_t>());
    out.timestamps.push_back(static_cast<double>(i) / out.info.fps);
    out.indices.push_back(i);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ video files

DecodedVideo decode_file(const std::string& path, const SamplePlan& plan, const ReadOptions& options,
                         Deadline* deadline) {
  Stream stream(path, options.threads, deadline);
  DecodedVideo out;
  out.info = stream.info(false);
  const std::vector<Target> targets = resolve_plan(plan, out.info);
  const auto [w, h] = output_size(out.info, options, path);
  const auto n = static_cast<int64_t>(targets.size());
  check_frames_memory(path, n, w, h);
  out.frames = torch::empty({n, h, w, 3}, torch::kUInt8);
  out.timestamps.assign(targets.size(), 0);
  out.indices.assign(targets.size(), 0);
  RgbConverter rgb(w, h);

  // Visit targets in time order, so the decoder only moves forward; fill outputs in the plan's order.
  std::vector<size_t> order(targets.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return targets[a].time < targets[b].time; });

  // The frames decoded last: every target so far lies at or before `cur`. `last_good` survives seeks, for a
  // damaged file whose later part cannot be decoded: targets there take the last frame that could.
  struct Decoded {
    FramePtr frame;
    int64_t pts = 0;
  };
  Decoded prev, cur, last_good;
  bool at_end = false;
  const int64_t step = stream.frame_duration_pts();
  auto reached = [&](const Target& t, const Decoded& d) {
    // A timestamp takes the first frame at or after it, compared in the stream's time base as `ffmpeg -ss` does;
    // a frame index, the frame nearest its time.
    return t.nearest ? stream.seconds(d.pts) >= t.time - kTimeEpsilon : d.pts >= stream.to_pts(t.time);
  };
  for (size_t k : order) {
    const Target& target = targets[k];
    // Decoding forward costs time per frame; a seek costs up to one keyframe interval. Seek past long stretches.
    const double position = cur.frame ? stream.seconds(cur.pts) : 0;
    if (!at_end && target.time - position > options.seek_threshold && stream.seek(target.time)) {
      if (cur.frame) last_good = std::move(cur);
      prev = Decoded{};
      cur = Decoded{};
    }
    while (!at_end && (!cur.frame || !reached(target, cur))) {
      FramePtr frame = stream.next();
      if (!frame) {
        at_end = true;  // targets past the last frame take the last frame
        break;
      }
      const int64_t pts = stream.pts_of(frame.get(), cur.frame ? cur.pts + step : 0);
      prev = std::move(cur);
      cur = Decoded{std::move(frame), pts};
    }
    const Decoded* chosen = cur.frame ? &cur : &last_good;
    if (!chosen->frame) fail(path, "contains no decodable video frames");
    if (target.nearest && prev.frame && cur.frame && reached(target, cur) &&
        target.time - stream.seconds(prev.pts) < stream.seconds(cur.pts) - target.time)
      chosen = &prev;
    rgb.convert(chosen->frame.get(), out.frames[static_cast<int64_t>(k)].data_ptr<uint8_t>());
    out.timestamps[k] = stream.seconds(chosen->pts);
    out.indices[k] = std::llround(out.timestamps[k] * out.info.fps);
  }
  return out;
}

}  // namespace

VideoInfo probe(const std::string& path, const ReadOptions& options) {
  install_log_capture();
  clear_last_log();
  Deadline deadline = make_deadline(options);
  std::error_code ec;
  if (fs::is_directory(path, ec)) return folder_info(path, list_frames(path), options, &deadline);
  Stream stream(path, 1, &deadline);
  VideoInfo info = stream.info(options.count_frames);
  if (info.frame_count <= 0) fail(path, "contains no video frames");
  return info;
}

DecodedVideo decode(const std::string& path, const SamplePlan& plan, const ReadOptions& options) {
  install_log_capture();
  clear_last_log();
  Deadline deadline = make_deadline(options);
  std::error_code ec;
  try {
    if (fs::is_directory(path, ec)) return decode_folder(path, plan, options, &deadline);
    return decode_file(path, plan, options, &deadline);
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory for the frames asked (frames x height x width x 3 bytes)");
  } catch (const c10::Error& e) {
    fail(path, e.what_without_backtrace());
  }
}

}  // namespace tpo::video
