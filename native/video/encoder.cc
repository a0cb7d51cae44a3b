#include "video/encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "io/atomic_file.h"
#include "video/av_util.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace tpo::video {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  const std::string detail = last_log();
  throw std::runtime_error(path + ": " + why + (detail.empty() ? "" : " (ffmpeg: " + detail + ")"));
}

void check(int r, const std::string& path, const std::string& what) {
  if (r < 0) fail(path, what + ": " + av_error_text(r));
}

const AVCodec* choose_encoder(const std::string& codec, const std::string& path) {
  const AVCodec* h264 = avcodec_find_encoder_by_name("libx264");
  if (codec == "h264") {
    if (!h264) fail(path, "this FFmpeg has no libx264 encoder (use codec 'mpeg4' or 'auto')");
    return h264;
  }
  if (codec == "auto" && h264) return h264;
  if (codec != "auto" && codec != "mpeg4") throw std::invalid_argument("codec must be auto, h264 or mpeg4, got '" + codec + "'");
  const AVCodec* mpeg4 = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
  if (!mpeg4) fail(path, "this FFmpeg has neither libx264 nor an MPEG-4 encoder");
  return mpeg4;
}

struct IoCloser {
  void operator()(AVFormatContext* ctx) const {
    if (ctx->pb) avio_closep(&ctx->pb);
    avformat_free_context(ctx);
  }
};

class Encoder {
 public:
  Encoder(const torch::Tensor& frames, const std::string& path, const std::string& temp, const EncodeOptions& o)
      : path_(path), width_(static_cast<int>(frames.size(2))), height_(static_cast<int>(frames.size(1))) {
    const AVOutputFormat* format = av_guess_format(nullptr, path.c_str(), nullptr);
    if (!format) fail(path, "no container for this file name's extension (use .mp4, .mkv, .avi, ...)");
    AVFormatContext* raw = nullptr;
    check(avformat_alloc_output_context2(&raw, format, nullptr, temp.c_str()), path, "cannot set up the container");
    fmt_.reset(raw);

    const AVCodec* codec = choose_encoder(o.codec, path);
    codec_name_ = codec->name;
    stream_ = avformat_new_stream(fmt_.get(), nullptr);
    if (!stream_) throw std::bad_alloc();
    ctx_.reset(avcodec_alloc_context3(codec));
    if (!ctx_) throw std::bad_alloc();
    const AVRational rate = av_d2q(o.fps, 1 << 20);
    ctx_->width = width_;
    ctx_->height = height_;
    ctx_->pix_fmt = AV_PIX_FMT_YUV420P;
    ctx_->time_base = av_inv_q(rate);
    ctx_->framerate = rate;
    ctx_->gop_size = o.gop > 0 ? o.gop : std::max(1, static_cast<int>(std::lround(2 * o.fps)));
    // No B-frames. Measured with libx264 (FFmpeg 5.1) on 64 x 64 frames: with B-frames, the same frames encoded
    // twice in one process came out as different bytes now and then (5 of 24 videos over 10 runs; a fresh process
    // each time did not show it, so something reads memory left from before). Without them: 0 of 48 over 20
    // runs, files 15% larger, as fast. Frames in presentation order also make every decoded timestamp exact.
    ctx_->max_b_frames = 0;
    ctx_->thread_count = o.threads;
    ctx_->color_range = AVCOL_RANGE_MPEG;
    ctx_->colorspace = AVCOL_SPC_SMPTE170M;
    ctx_->color_primaries = AVCOL_PRI_SMPTE170M;
    ctx_->color_trc = AVCOL_TRC_SMPTE170M;
    if (fmt_->oformat->flags & AVFMT_GLOBALHEADER) ctx_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* opts = nullptr;
    if (codec->id == AV_CODEC_ID_H264) {
      av_dict_set(&opts, "preset", o.preset.c_str(), 0);
      av_dict_set_int(&opts, "crf", o.crf, 0);
    } else {
      // MPEG-4 part 2 has no CRF: a fixed quantiser, 1 (best) .. 31, scaled from the CRF range.
      ctx_->flags |= AV_CODEC_FLAG_QSCALE;
      ctx_->global_quality = FF_QP2LAMBDA * std::clamp(1 + o.crf * 30 / 51, 1, 31);
    }
    const int r = avcodec_open2(ctx_.get(), codec, &opts);
    av_dict_free(&opts);
    check(r, path, std::string("cannot open the ") + codec->name + " encoder");
    check(avcodec_parameters_from_context(stream_->codecpar, ctx_.get()), path, "bad codec parameters");
    stream_->time_base = ctx_->time_base;
    stream_->avg_frame_rate = rate;

    check(avio_open(&fmt_->pb, temp.c_str(), AVIO_FLAG_WRITE), path, "cannot open " + temp);
    check(avformat_write_header(fmt_.get(), nullptr), path, "cannot write the container header");

    frame_ = make_frame();
    frame_->format = ctx_->pix_fmt;
    frame_->width = width_;
    frame_->height = height_;
    frame_->color_range = ctx_->color_range;
    frame_->colorspace = ctx_->colorspace;
    check(av_frame_get_buffer(frame_.get(), 64), path, "cannot allocate a frame");
    rgb_ = make_frame();
    rgb_->format = AV_PIX_FMT_RGB24;
    rgb_->width = width_;
    rgb_->height = height_;
    check(av_frame_get_buffer(rgb_.get(), 64), path, "cannot allocate a frame");
    // Full chroma input: chroma is computed from every pixel of a row, not every other one (small shapes).
    sws_.reset(sws_getContext(width_, height_, AV_PIX_FMT_RGB24, width_, height_, AV_PIX_FMT_YUV420P,
                              SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
    if (!sws_) fail(path, "swscale cannot convert RGB to yuv420p");
    const int* bt601 = sws_getCoefficients(SWS_CS_ITU601);
    sws_setColorspaceDetails(sws_.get(), bt601, 1, bt601, 0, 0, 1 << 16, 1 << 16);
    packet_ = make_packet();
  }

  void add(const uint8_t* rgb, int64_t pts) {
    check(av_frame_make_writable(frame_.get()), path_, "frame not writable");  // the encoder may still hold it
    // swscale's SIMD input readers read whole vectors past a row's end (and past the last row at small sizes):
    // the tight [H, W, 3] rows are copied into a padded frame first, as FFmpeg allocates its own.
    const size_t row_bytes = static_cast<size_t>(width_) * 3;
    for (int y = 0; y < height_; ++y)
      std::memcpy(rgb_->data[0] + static_cast<ptrdiff_t>(y) * rgb_->linesize[0], rgb + static_cast<size_t>(y) * row_bytes, row_bytes);
    sws_scale(sws_.get(), rgb_->data, rgb_->linesize, 0, height_, frame_->data, frame_->linesize);
    frame_->pts = pts;
    send(frame_.get());
  }

  void finish() {
    send(nullptr);  // flush: the encoder hands over the frames it held back
    check(av_write_trailer(fmt_.get()), path_, "cannot finish the container");
    avio_closep(&fmt_->pb);
  }

  const std::string& codec_name() const { return codec_name_; }

 private:
  void send(const AVFrame* frame) {
    check(avcodec_send_frame(ctx_.get(), frame), path_, "encoding failed");
    for (;;) {
      const int r = avcodec_receive_packet(ctx_.get(), packet_.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      check(r, path_, "encoding failed");
      av_packet_rescale_ts(packet_.get(), ctx_->time_base, stream_->time_base);
      packet_->stream_index = stream_->index;
      check(av_interleaved_write_frame(fmt_.get(), packet_.get()), path_, "cannot write a packet");
    }
  }

  std::string path_;
  int width_, height_;
  std::unique_ptr<AVFormatContext, IoCloser> fmt_;
  CodecContextPtr ctx_;
  AVStream* stream_ = nullptr;
  FramePtr frame_;
  FramePtr rgb_;  // the input, padded for swscale
  PacketPtr packet_;
  SwsContextPtr sws_;
  std::string codec_name_;
};

}  // namespace

EncodeResult encode(const torch::Tensor& frames, const std::string& path, const EncodeOptions& options) {
  install_log_capture();
  clear_last_log();
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("frames must be uint8 [T, H, W, 3], got " + std::string(c10::toString(frames.scalar_type())) +
                                " " + c10::str(frames.sizes()));
  if (frames.size(0) < 1) throw std::invalid_argument("frames: a video needs at least one frame");
  if (frames.size(1) % 2 || frames.size(2) % 2 || frames.size(1) > 8192 || frames.size(2) > 8192)
    throw std::invalid_argument("frames: yuv420p needs an even width and height (at most 8192), got " +
                                std::to_string(frames.size(2)) + "x" + std::to_string(frames.size(1)));
  if (!(options.fps > 0 && options.fps <= 1000)) throw std::invalid_argument("fps must be in (0, 1000]");
  if (options.crf < 0 || options.crf > 51) throw std::invalid_argument("crf must be in [0, 51]");

  const torch::Tensor rgb = frames.to(torch::kCPU).contiguous();
  io::AtomicFile file(path);  // the temporary file, removed unless committed
  Encoder encoder(rgb, path, file.temp_path(), options);
  const uint8_t* data = rgb.data_ptr<uint8_t>();
  const int64_t frame_bytes = rgb.size(1) * rgb.size(2) * 3;
  for (int64_t t = 0; t < rgb.size(0); ++t) encoder.add(data + t * frame_bytes, t);
  encoder.finish();
  file.commit();
  EncodeResult result;
  result.codec = encoder.codec_name();
  result.frames = rgb.size(0);
  result.bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  return result;
}

}  // namespace tpo::video
