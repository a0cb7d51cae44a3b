#include "model/video_lm.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "model/checkpoint.h"
#include "model/linear.h"

namespace tpo::model {
namespace {

namespace F = torch::nn::functional;

// llava_arch.py get_2dPool: [F, h*w, D] -> [F, h'*w', D]. average/max pooling round the grid down (27 -> 13),
// bilinear rounds it up (27 -> 14).
torch::Tensor pool_2d(const torch::Tensor& x, int64_t side, const MultimodalConfig& mm) {
  const int64_t frames = x.size(0), dim = x.size(2);
  auto grid = x.view({frames, side, side, dim}).permute({0, 3, 1, 2}).contiguous();
  const int64_t s = mm.pool_stride;
  if (mm.pool_mode == "average") {
    grid = F::avg_pool2d(grid, F::AvgPool2dFuncOptions(s));
  } else if (mm.pool_mode == "max") {
    grid = F::max_pool2d(grid, F::MaxPool2dFuncOptions(s));
  } else {
    const auto up = [&](int64_t n) { return static_cast<int64_t>(std::ceil(static_cast<double>(n) / s)); };
    grid = F::interpolate(grid, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{up(grid.size(2)), up(grid.size(3))})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
  }
  return grid.permute({0, 2, 3, 1}).reshape({frames, -1, dim});
}

// llava_arch.py add_token_per_grid: a newline after every pooled row of every frame -> [F*h*(w+1), D].
torch::Tensor newline_per_row(const torch::Tensor& pooled, const torch::Tensor& newline) {
  const int64_t frames = pooled.size(0), dim = pooled.size(2);
  const auto side = static_cast<int64_t>(std::sqrt(static_cast<double>(pooled.size(1))));
  auto rows = pooled.reshape({frames, side, side, dim});
  auto nl = newline.view({1, 1, 1, dim}).expand({frames, side, 1, dim}).to(pooled.scalar_type());
  return torch::cat({rows, nl}, 2).reshape({-1, dim});
}

// llava_arch.py add_token_per_frame: a newline after every frame -> [F*(N+1), D].
torch::Tensor newline_per_frame(const torch::Tensor& pooled, const torch::Tensor& newline) {
  const int64_t frames = pooled.size(0), dim = pooled.size(2);
  auto nl = newline.view({1, 1, dim}).expand({frames, 1, dim}).to(pooled.scalar_type());
  return torch::cat({pooled, nl}, 1).reshape({-1, dim});
}

bool uses_newline(const MultimodalConfig& mm) {
  if (mm.patch_merge_type.rfind("spatial", 0) != 0) return false;  // flat, unires (LongVA): none
  if (mm.newline_position == "grid" || mm.newline_position == "frame") return true;
  return mm.newline_position == "one_token" && mm.patch_merge_type.find("unpad") != std::string::npos;
}

}  // namespace

int64_t video_token_count(const ModelConfig& config, int64_t frames) {
  if (!config.vision || !config.mm) throw std::invalid_argument("this model has no vision tower");
  if (frames < 0) throw std::invalid_argument("a video cannot have " + std::to_string(frames) + " frames");
  if (frames == 0) return 0;
  const MultimodalConfig& mm = *config.mm;
  if (config.architecture == Architecture::VideoLlama3ForConditionalGeneration)
    throw std::invalid_argument("a VideoLLaMA3 video's visual tokens depend on its frame size and on its token compression "
                                "(which frames change): encode it to count them");
  if (config.architecture == Architecture::Qwen2_5_VLForConditionalGeneration)
    throw std::invalid_argument("a Qwen2.5-VL video's visual tokens depend on its frame size (the processor resizes each "
                                "video to its own grid): encode it to count them");
  if (config.architecture == Architecture::InternVLForConditionalGeneration)
    return std::min(frames, (config.text ? config.text->max_position_embeddings : INT64_MAX / 4) + 1) *
           internvl_tokens_per_frame(*config.vision, mm);
  if (config.architecture == Architecture::VideoLlavaForConditionalGeneration) {
    // Every frame's tokens, its class token included (VideoLlavaProcessor: (S/p)^2 + 1 a frame).
    const int64_t per_frame = config.vision->grid() * config.vision->grid() + 1;
    const int64_t limit = config.text ? config.text->max_position_embeddings : INT64_MAX / 4;
    return std::min(frames, limit + 1) * per_frame;
  }
  const int64_t grid = config.vision->grid(), s = mm.pool_stride;
  // get_2dPool: average and max pooling round the grid down, bilinear rounds it up (pool_2d).
  const int64_t side = mm.pool_mode == "bilinear" ? (grid + s - 1) / s : grid / s;
  // Every frame gives at least side * side >= 1 tokens: past max_position_embeddings frames, counting could
  // only overflow.
  const int64_t limit = config.text ? config.text->max_position_embeddings : INT64_MAX / 4;
  const int64_t f = std::min(frames, limit + 1);
  if (!uses_newline(mm) || mm.newline_position == "no_token") return f * side * side;
  if (mm.newline_position == "grid") return f * side * (side + 1);
  if (mm.newline_position == "frame") return f * (side * side + 1);
  return f * side * side + 1;  // one_token
}

namespace {

// hidden_states[index] is the output of `index` layers; negative layers count from the full tower's end.
int64_t hidden_state_index(const VisionConfig& vision, int64_t layer) {
  const int64_t total = vision.num_hidden_layers;
  const int64_t index = layer < 0 ? total + 1 + layer : layer;
  if (index < 0 || index > total)
    throw std::invalid_argument("vision feature layer " + std::to_string(layer) + " is outside the tower's " +
                                std::to_string(total) + " layers");
  return index;
}

}  // namespace

int64_t vision_layers_to_run(const VisionConfig& vision, const MultimodalConfig& mm) {
  int64_t deepest = hidden_state_index(vision, mm.select_layer);
  for (const int64_t layer : mm.select_layers) deepest = std::max(deepest, hidden_state_index(vision, layer));
  return deepest;
}

VideoLlavaTowerImpl::VideoLlavaTowerImpl(const std::string& name, const VisionConfig& config) {
  tower = register_module(name, VisionTransformer(config, config.num_hidden_layers));
}

VideoLlavaModelImpl::VideoLlavaModelImpl(const Qwen2Config& text, const VisionConfig& vision, const MultimodalConfig& mm)
    : Qwen2ModelImpl(text) {
  video_tower = register_module("video_tower", VideoLlavaTower("video_tower", vision));
  image_tower = register_module("image_tower", VideoLlavaTower("image_tower", vision));
  const int64_t layers = std::max<int64_t>(1, static_cast<int64_t>(mm.select_layers.size()));
  mm_projector = torch::nn::Sequential();
  mm_projector->push_back(Dense(vision.hidden_size * layers, text.hidden_size, mm.projector_bias));
  mm_projector->push_back(torch::nn::GELU());  // projector_hidden_act "gelu": the erf form
  mm_projector->push_back(Dense(text.hidden_size, text.hidden_size, mm.projector_bias));
  register_module("mm_projector", mm_projector);
}

VideoLlama3ProjectorImpl::VideoLlama3ProjectorImpl(int64_t in, int64_t out) {
  readout = torch::nn::Sequential();
  readout->push_back(Dense(in, out));
  readout->push_back(torch::nn::GELU());  // nn.GELU(): the erf form
  readout->push_back(Dense(out, out));
  register_module("readout", readout);
}

VideoLlama3ModelImpl::VideoLlama3ModelImpl(const Qwen2Config& text, const VisionConfig& vision) : Qwen2ModelImpl(text) {
  vision_model = register_module("vision_model", VideoLlama3VisionModel(vision));
  projector = register_module("projector", VideoLlama3Projector(vision.hidden_size, text.hidden_size));
}

LlavaVisionTowerImpl::LlavaVisionTowerImpl(const VisionConfig& config, int64_t layers) {
  vision_tower = register_module("vision_tower", VisionModel(config, layers));
}

LlavaQwenModelImpl::LlavaQwenModelImpl(const Qwen2Config& text, const VisionConfig& vision, const MultimodalConfig& mm)
    : Qwen2ModelImpl(text) {
  const int64_t needed = vision_layers_to_run(vision, mm);
  if (vision.layers_in_checkpoint < needed)
    throw std::invalid_argument("mm_vision_select_layer " + std::to_string(mm.select_layer) + " needs " +
                                std::to_string(needed) + " vision layers; the checkpoint has " +
                                std::to_string(vision.layers_in_checkpoint));
  vision_tower = register_module("vision_tower", LlavaVisionTower(vision, vision.layers_in_checkpoint));
  mm_projector = torch::nn::Sequential();
  mm_projector->push_back(Dense(vision.hidden_size, text.hidden_size));
  if (mm.projector_type == "mlp2x_gelu") {
    mm_projector->push_back(torch::nn::GELU());  // exact (erf) GELU: LLaVA's builder uses nn.GELU()
    mm_projector->push_back(Dense(text.hidden_size, text.hidden_size));
  }
  register_module("mm_projector", mm_projector);
  // LLaVA-NeXT's LlavaMetaModel creates the newline embedding whenever the merge type says "unpad".
  if (mm.patch_merge_type.find("unpad") != std::string::npos)
    image_newline = register_parameter("image_newline", new_parameter({text.hidden_size}));
}

VideoLMImpl::VideoLMImpl(const ModelConfig& config) : config_(config) {
  if (!config.text) throw std::invalid_argument("VideoLM needs a language model config");
  if (config.architecture == Architecture::VideoLlama3ForConditionalGeneration) {
    video_llama3 = std::make_shared<VideoLlama3ModelImpl>(*config.text, *config.vision);
    model = register_module("model", std::static_pointer_cast<Qwen2ModelImpl>(video_llama3));
  } else if (config.architecture == Architecture::InternVLForConditionalGeneration) {
    internvl = std::make_shared<InternVLModelImpl>(*config.text, *config.vision, *config.mm);
    model = register_module("model", std::static_pointer_cast<Qwen2ModelImpl>(internvl));
  } else if (config.architecture == Architecture::Qwen2_5_VLForConditionalGeneration) {
    model = register_module("model", std::make_shared<Qwen2ModelImpl>(*config.text));
    visual = register_module("visual", Qwen2_5_VisionTransformer(*config.vision));
    // The processor's default sampling: fps 2, so a temporal patch spans temporal_patch_size / 2 seconds.
    second_per_grid_t_ = static_cast<double>(config.vision->temporal_patch_size) / 2.0;
  } else if (config.architecture == Architecture::VideoLlavaForConditionalGeneration) {
    video_llava = std::make_shared<VideoLlavaModelImpl>(*config.text, *config.vision, *config.mm);
    model = register_module("model", std::static_pointer_cast<Qwen2ModelImpl>(video_llava));
  } else if (has_vision()) {
    llava = std::make_shared<LlavaQwenModelImpl>(*config.text, *config.vision, *config.mm);
    model = register_module("model", std::static_pointer_cast<Qwen2ModelImpl>(llava));
  } else {
    model = register_module("model", std::make_shared<Qwen2ModelImpl>(*config.text));
  }
  if (!config.text->tie_word_embeddings)
    lm_head = register_module("lm_head", Dense(config.text->hidden_size, config.text->vocab_size, /*bias=*/false));
}

VisionTransformerImpl& VideoLMImpl::video_tower() {
  if (video_llava) return *video_llava->video_tower->tower;
  if (llava) return *llava->vision_tower->vision_tower->vision_model;
  throw std::invalid_argument("this model has no vision tower");
}

void VideoLMImpl::set_vision_gradient_checkpointing(bool on) {
  if (video_llama3) video_llama3->vision_model->gradient_checkpointing = on;
  else if (internvl) internvl->vision_tower->gradient_checkpointing = on;
  else if (visual) visual->gradient_checkpointing = on;
  else video_tower().gradient_checkpointing = on;
}

namespace {

// mm_projector: Linear (, GELU, Linear), each Linear through ATen's linear (the bias folded into the matmul).
torch::Tensor project_features(torch::nn::Sequential& projector, const torch::Tensor& x) {
  torch::Tensor h = x;
  for (const auto& layer : projector->children()) {
    if (auto lin = std::dynamic_pointer_cast<DenseImpl>(layer)) h = linear(h, lin->weight, lin->bias);
    else if (std::dynamic_pointer_cast<torch::nn::GELUImpl>(layer)) h = torch::gelu(h);  // nn.GELU(): the erf form
    else throw std::logic_error("mm_projector: a layer that is neither Dense nor GELU");
  }
  return h;
}

}  // namespace

void VideoLMImpl::check_frame_text(const std::vector<FrameText>& text) const {
  if (!internvl && !video_llama3 && !text.empty())
    throw std::invalid_argument("frame text is InternVL's and VideoLLaMA3's video layout; this model lays its frames' tokens out itself");
  const int64_t vocab = config_.text->vocab_size;
  for (size_t f = 0; f < text.size(); ++f)
    for (const auto* ids : {&text[f].before, &text[f].after})
      for (const int64_t id : *ids)
        if (id < 0 || id >= vocab)
          throw std::invalid_argument("frame text of frame " + std::to_string(f + 1) + " holds id " + std::to_string(id) +
                                      ", outside the vocabulary [0, " + std::to_string(vocab) + ")");
}

void VideoLMImpl::set_frame_text(std::vector<FrameText> text) {
  check_frame_text(text);
  frame_text_ = std::move(text);
}

namespace {

// The tokens of `text` for the first `frames` frames (0 when there is none).
int64_t count_frame_text(const std::vector<VideoLMImpl::FrameText>& text, int64_t frames) {
  if (text.empty() || frames <= 0) return 0;
  if (frames > static_cast<int64_t>(text.size()))
    throw std::invalid_argument("the frame text is set for " + std::to_string(text.size()) + " frames; the video has " +
                                std::to_string(frames));
  int64_t n = 0;
  for (int64_t f = 0; f < frames; ++f) {
    const VideoLMImpl::FrameText& t = text[static_cast<size_t>(f)];
    n += static_cast<int64_t>(t.before.size() + t.after.size());
  }
  return n;
}

}  // namespace

int64_t VideoLMImpl::frame_text_tokens(int64_t frames) const { return count_frame_text(frame_text_, frames); }

torch::Tensor VideoLMImpl::with_frame_text(const std::vector<torch::Tensor>& frames, const std::vector<FrameText>& text) {
  count_frame_text(text, static_cast<int64_t>(frames.size()));  // (enough frames of text)
  std::vector<torch::Tensor> parts;
  const auto device = model->embed_tokens->weight.device();
  const auto embed_ids = [&](const std::vector<int64_t>& ids, const torch::Tensor& like) {
    return model->embed_tokens(torch::tensor(ids, torch::kInt64).to(device)).to(like.scalar_type());
  };
  for (size_t f = 0; f < frames.size(); ++f) {
    const FrameText& t = text[f];
    if (!t.before.empty()) parts.push_back(embed_ids(t.before, frames[f]));
    parts.push_back(frames[f]);
    if (!t.after.empty()) parts.push_back(embed_ids(t.after, frames[f]));
  }
  return torch::cat(parts, 0);
}

torch::Tensor VideoLMImpl::lm_head_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

void VideoLMImpl::set_second_per_grid_t(double seconds) {
  if (!visual) throw std::invalid_argument("second_per_grid_ts is Qwen2.5-VL's; this model has no temporal RoPE");
  if (!std::isfinite(seconds) || seconds < 0) throw std::invalid_argument("second_per_grid_ts must be a finite number >= 0");
  second_per_grid_t_ = seconds;
}

VideoTokens VideoLMImpl::encode_video_grid(const torch::Tensor& patches, const Qwen2_5_VLGrid& grid, double second_per_grid_t) {
  if (!visual) throw std::invalid_argument("video_grid_thw with second_per_grid_ts is Qwen2.5-VL's input; this model takes frames");
  if (!std::isfinite(second_per_grid_t) || second_per_grid_t < 0)
    throw std::invalid_argument("second_per_grid_ts must be a finite number >= 0, got " + std::to_string(second_per_grid_t));
  const VisionConfig& v = *config_.vision;
  check_qwen2_5_vl_grid(v, patches, grid);
  const int64_t m = v.spatial_merge_size, tokens = grid.t * (grid.h / m) * (grid.w / m);
  // Before the tower runs: visual tokens the language model could never place are an error now.
  if (tokens > config_.text->max_position_embeddings)
    throw std::invalid_argument("video_grid_thw [" + std::to_string(grid.t) + ", " + std::to_string(grid.h) + ", " +
                                std::to_string(grid.w) + "] makes " + std::to_string(tokens) +
                                " visual tokens, more than max_position_embeddings (" +
                                std::to_string(config_.text->max_position_embeddings) + ")");
  const auto device = model->embed_tokens->weight.device();
  VideoTokens out;
  out.features = visual->forward(patches.to(device), grid).pooler_output;
  out.projected = out.pooled = out.tokens = out.features.to(model->embed_tokens->weight.scalar_type());
  out.rope = qwen2_5_vl_rope_positions(v, grid, second_per_grid_t);
  out.rope.offsets = out.rope.offsets.to(device);
  return out;
}

VideoTokens VideoLMImpl::encode_video_patches(const torch::Tensor& patches, const PatchGrid& grid,
                                              const torch::Tensor& compression_mask, const std::vector<FrameText>* frame_text) {
  if (!video_llama3) throw std::invalid_argument("video grids (video_grid_thw) are VideoLLaMA3's input; this model takes frames");
  check_patch_grid(patches, grid);
  if (frame_text) check_frame_text(*frame_text);
  const std::vector<FrameText>& text = frame_text ? *frame_text : frame_text_;
  const auto device = model->embed_tokens->weight.device();
  const int64_t tokens = grid.t * (grid.h / grid.merge) * (grid.w / grid.merge);
  torch::Tensor kept;
  if (compression_mask.defined()) {
    if (compression_mask.dim() != 1 || compression_mask.size(0) != tokens)
      throw std::invalid_argument("video_compression_mask must be [" + std::to_string(tokens) + "] (one per merged token), got " +
                                  c10::str(compression_mask.sizes()));
    kept = compression_mask.to(device, torch::kBool);
  } else if (config_.mm->token_compression) {
    kept = video_llama3_compression_mask(patches.to(device, torch::kFloat32), grid);
  }
  // Before the tower runs (its activations are the big allocation): the kept tokens are known from the mask.
  const int64_t kept_count = (kept.defined() ? kept.sum().item<int64_t>() : tokens) + count_frame_text(text, grid.t);
  if (kept_count > config_.text->max_position_embeddings)
    throw std::invalid_argument(std::to_string(grid.t) + " frames make " + std::to_string(kept_count) +
                                " visual tokens, more than max_position_embeddings (" +
                                std::to_string(config_.text->max_position_embeddings) + ")");
  VideoTokens out;
  out.features = video_llama3->vision_model->forward(patches.to(device), grid);
  const auto features = out.features.to(model->embed_tokens->weight.scalar_type());
  const auto project = [this](const torch::Tensor& x) { return project_features(video_llama3->projector->readout, x); };
  out.projected = model->gradient_checkpointing
                      ? checkpointed([project](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{project(in[0])}; },
                                     {features})[0]
                      : project(features);
  out.pooled = out.projected;
  out.kept = kept.defined() ? kept : torch::ones({out.projected.size(0)}, torch::TensorOptions().dtype(torch::kBool).device(device));
  out.tokens = kept.defined() ? out.projected.index({kept}) : out.projected;
  if (!text.empty()) {
    // Each frame's kept tokens after its text, as VideoLlama3Processor.replace_video_token writes a video.
    const int64_t per_frame = (grid.h / grid.merge) * (grid.w / grid.merge);
    std::vector<torch::Tensor> frames;
    for (int64_t f = 0; f < grid.t; ++f)
      frames.push_back(out.projected.narrow(0, f * per_frame, per_frame).index({out.kept.narrow(0, f * per_frame, per_frame)}));
    out.tokens = with_frame_text(frames, text);
  }
  return out;
}

VideoTokens VideoLMImpl::encode_video(const torch::Tensor& pixel_values, const std::vector<FrameText>* frame_text,
                                      std::optional<double> second_per_grid_t) {
  if (!has_vision()) throw std::invalid_argument("this model has no vision tower");
  if (second_per_grid_t && !visual) throw std::invalid_argument("second_per_grid_ts is Qwen2.5-VL's; this model has no temporal RoPE");
  if (frame_text) check_frame_text(*frame_text);
  const std::vector<FrameText>& text = frame_text ? *frame_text : frame_text_;
  if (visual) {
    // Qwen2VLVideoProcessor's patchify of already resized and normalised frames.
    Qwen2_5_VLGrid grid;
    const auto patches = qwen2_5_vl_patchify(*config_.vision, pixel_values, grid);
    return encode_video_grid(patches, grid, second_per_grid_t.value_or(second_per_grid_t_));
  }
  if (video_llama3) {
    // VideoLlama3VideoProcessor's patchify of already resized and normalised frames (temporal_patch_size 1).
    const VisionConfig& v = *config_.vision;
    const int64_t m = config_.mm->merge_size;
    const auto patches = video_llama3_patchify(pixel_values, v.patch_size, m);
    const PatchGrid grid{pixel_values.size(0), pixel_values.size(2) / v.patch_size, pixel_values.size(3) / v.patch_size, m};
    return encode_video_patches(patches, grid, {}, &text);
  }
  const VisionConfig& vision = *config_.vision;
  const MultimodalConfig& mm = *config_.mm;
  if (pixel_values.dim() != 4 || pixel_values.size(0) == 0)
    throw std::invalid_argument("a video must be [frames >= 1, 3, " + std::to_string(vision.image_size) + ", " +
                                std::to_string(vision.image_size) + "]");
  // Before the tower runs (its activations are the big allocation): visual tokens the language model could
  // never place are an error now, not after minutes of encoding.
  const int64_t tokens = video_token_count(config_, pixel_values.size(0)) + count_frame_text(text, pixel_values.size(0));
  if (tokens > config_.text->max_position_embeddings)
    throw std::invalid_argument(std::to_string(pixel_values.size(0)) + " frames make " + std::to_string(tokens) +
                                " visual tokens, more than max_position_embeddings (" +
                                std::to_string(config_.text->max_position_embeddings) + ")");
  const auto device = model->embed_tokens->weight.device();
  VideoTokens out;
  if (internvl) {
    // get_image_features, each frame an image: pixel_shuffle'd features, multi_modal_projector; the frames' tokens
    // one after the other (the processor writes each frame's between <img> and </img>).
    out.features = internvl->vision_features(pixel_values.to(device));
    const auto features = out.features.to(model->embed_tokens->weight.scalar_type());
    const auto project = [this](const torch::Tensor& x) { return internvl->mm_projector->forward(x); };
    out.projected = model->gradient_checkpointing
                        ? checkpointed([project](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{project(in[0])}; },
                                       {features})[0]
                        : project(features);
    out.pooled = out.projected;
    if (text.empty()) {
      out.tokens = out.projected.reshape({-1, out.projected.size(2)});
      return out;
    }
    std::vector<torch::Tensor> frames;
    for (int64_t f = 0; f < out.projected.size(0); ++f) frames.push_back(out.projected[f]);
    out.tokens = with_frame_text(frames, text);
    return out;
  }
  const int64_t layers = vision_layers_to_run(vision, mm);
  auto hidden = video_tower().forward(pixel_values.to(device), layers).hidden_states;
  torch::nn::Sequential& projector = video_llava ? video_llava->mm_projector : llava->mm_projector;
  if (video_llava) {
    // get_video_features: the chosen layers' hidden states (concatenated when several), every token kept.
    std::vector<torch::Tensor> chosen;
    for (const int64_t layer : mm.select_layers) chosen.push_back(hidden[static_cast<size_t>(hidden_state_index(vision, layer))]);
    out.features = chosen.size() == 1 ? chosen[0] : torch::cat(chosen, -1);
  } else {
    out.features = hidden[static_cast<size_t>(layers)];
    if (vision.kind == VisionKind::Clip && mm.select_feature == "patch") out.features = out.features.narrow(1, 1, out.features.size(1) - 1);
  }
  const auto features = out.features.to(model->embed_tokens->weight.scalar_type());
  // Under activation checkpointing the projector keeps only its input: its two [F, N, D] activations are the
  // largest a long video leaves behind.
  const auto project = [&projector](const torch::Tensor& x) { return project_features(projector, x); };
  out.projected = model->gradient_checkpointing
                      ? checkpointed([project](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{project(in[0])}; },
                                     {features})[0]
                      : project(features);
  if (video_llava) {
    // Frame after frame, each frame's tokens in the tower's order (class token first): no pooling, no newline.
    out.pooled = out.projected;
    out.tokens = out.projected.reshape({-1, out.projected.size(2)});
    return out;
  }
  out.pooled = pool_2d(out.projected, vision.grid(), mm);
  if (uses_newline(mm) && !llava->image_newline.defined())
    throw std::invalid_argument("mm_newline_position " + mm.newline_position + " needs image_newline, which merge type " +
                                mm.patch_merge_type + " does not create");
  if (!uses_newline(mm) || mm.newline_position == "no_token") {
    out.tokens = out.pooled.reshape({-1, out.pooled.size(2)});
  } else if (mm.newline_position == "grid") {
    out.tokens = newline_per_row(out.pooled, llava->image_newline);
  } else if (mm.newline_position == "frame") {
    out.tokens = newline_per_frame(out.pooled, llava->image_newline);
  } else {  // one_token
    out.tokens = torch::cat({out.pooled.reshape({-1, out.pooled.size(2)}),
                             llava->image_newline.view({1, -1}).to(out.pooled.scalar_type())}, 0);
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> VideoLMImpl::embed(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                           const torch::Tensor& video_tokens) {
  if (input_ids.dim() != 2) throw std::invalid_argument("input_ids must be [batch, length]");
  const auto device = model->embed_tokens->weight.device();
  const int64_t image_id = config_.mm ? config_.mm->image_token_index : -200;
  if ((video_llava || video_llama3 || internvl || visual) && config_.mm->video_token_index >= 0 && (input_ids == config_.mm->video_token_index).any().item<bool>())
    return embed_expanded(input_ids, attention_mask, video_tokens);
  const auto is_image = input_ids == image_id;
  const auto per_row = is_image.sum(1);
  const int64_t vocab = config_.text->vocab_size;
  const auto text_ids = input_ids.masked_fill(is_image, 0);
  if ((text_ids < 0).any().item<bool>() || (text_ids >= vocab).any().item<bool>())
    throw std::invalid_argument("input_ids hold ids outside the vocabulary [0, " + std::to_string(vocab) + ")");
  auto embeds = model->embed_tokens(text_ids.to(device));
  torch::Tensor mask = (attention_mask.defined() ? attention_mask : torch::ones_like(input_ids)).to(device);
  if (!is_image.any().item<bool>()) {
    if (video_tokens.defined()) throw std::invalid_argument("a video was given but input_ids hold no image id (" + std::to_string(image_id) + ")");
    return {embeds, mask};
  }
  if (!video_tokens.defined()) throw std::invalid_argument("input_ids hold an image id but no video was given");
  if ((per_row != 1).any().item<bool>()) throw std::invalid_argument("each row of input_ids must hold exactly one image id");
  // Every row holds one video, the same one: the image id's position differs per row only by left padding.
  std::vector<torch::Tensor> rows, masks;
  const auto where = is_image.to(torch::kInt64).argmax(1);
  const auto tokens = video_tokens.to(device, embeds.scalar_type());
  const auto video_mask = torch::ones({tokens.size(0)}, mask.options());
  for (int64_t b = 0; b < input_ids.size(0); ++b) {
    const int64_t at = where[b].item<int64_t>();
    const int64_t len = input_ids.size(1);
    rows.push_back(torch::cat({embeds[b].narrow(0, 0, at), tokens, embeds[b].narrow(0, at + 1, len - at - 1)}, 0));
    masks.push_back(torch::cat({mask[b].narrow(0, 0, at), video_mask, mask[b].narrow(0, at + 1, len - at - 1)}, 0));
  }
  return {torch::stack(rows), torch::stack(masks)};
}

std::pair<torch::Tensor, torch::Tensor> VideoLMImpl::embed_expanded(const torch::Tensor& input_ids,
                                                                    const torch::Tensor& attention_mask,
                                                                    const torch::Tensor& video_tokens) {
  // VideoLlavaModel's masked_scatter: each row holds one video_token_index per visual token, in order.
  const auto device = model->embed_tokens->weight.device();
  const int64_t vocab = config_.text->vocab_size, video_id = config_.mm->video_token_index;
  if ((input_ids < 0).any().item<bool>() || (input_ids >= vocab).any().item<bool>())
    throw std::invalid_argument("input_ids hold ids outside the vocabulary [0, " + std::to_string(vocab) + ")");
  if (!video_tokens.defined()) throw std::invalid_argument("input_ids hold video tokens (" + std::to_string(video_id) + ") but no video was given");
  const auto ids = input_ids.to(device);
  auto embeds = model->embed_tokens(ids);
  const auto tokens = video_tokens.to(device, embeds.scalar_type());
  const auto is_video = ids == video_id;
  std::vector<torch::Tensor> rows;
  for (int64_t b = 0; b < ids.size(0); ++b) {
    const auto where = is_video[b].nonzero().view({-1});
    if (where.size(0) != tokens.size(0))
      throw std::invalid_argument("row " + std::to_string(b) + " of input_ids holds " + std::to_string(where.size(0)) +
                                  " video tokens (" + std::to_string(video_id) + "), the video has " +
                                  std::to_string(tokens.size(0)) + " visual tokens");
    rows.push_back(embeds[b].index_copy(0, where, tokens));
  }
  return {torch::stack(rows), (attention_mask.defined() ? attention_mask : torch::ones_like(input_ids)).to(device)};
}

VideoTokens encode_video_input(VideoLMImpl& lm, const VideoInput& input) {
  const auto& video = input.video;
  if (!video.defined()) {
    if (input.frame_text || input.grid || input.second_per_grid_t)
      throw std::invalid_argument("frame text, video_grid_thw and second_per_grid_ts go with a video; there is none");
    return {};
  }
  if (video.dim() == 4) {
    if (input.grid) throw std::invalid_argument("video_grid_thw goes with visual tokens (frames carry their own grid)");
    return lm.encode_video(video, input.frame_text ? &*input.frame_text : nullptr, input.second_per_grid_t);
  }
  if (video.dim() != 2)
    throw std::invalid_argument("a video is frames [F, 3, H, W] or visual tokens [V, D], got " + c10::str(video.sizes()));
  // Tokens were encoded with their frame text already: a second one here would be text nobody placed.
  if (input.frame_text) throw std::invalid_argument("frame text goes with frames (visual tokens hold theirs already)");
  VideoTokens given;
  given.tokens = video;
  if (!lm.visual) {
    if (input.grid || input.second_per_grid_t)
      throw std::invalid_argument("video_grid_thw and second_per_grid_ts are Qwen2.5-VL's; this model's visual tokens carry no grid");
    return given;
  }
  if (!input.grid) {
    if (input.second_per_grid_t) throw std::invalid_argument("second_per_grid_ts goes with the tokens' video_grid_thw");
    return given;  // (no positions: where they are scored, Qwen2.5-VL's tokens without them are refused)
  }
  const VisionConfig& v = *lm.config().vision;
  const Qwen2_5_VLGrid& g = *input.grid;
  const int64_t m = v.spatial_merge_size;
  if (g.t < 1 || g.h < 1 || g.w < 1 || g.h % m != 0 || g.w % m != 0)
    throw std::invalid_argument("video_grid_thw must be positive with h and w multiples of spatial_merge_size (" + std::to_string(m) + ")");
  const int64_t tokens = g.t * (g.h / m) * (g.w / m);
  if (tokens != video.size(0))
    throw std::invalid_argument("video_grid_thw [" + std::to_string(g.t) + ", " + std::to_string(g.h) + ", " + std::to_string(g.w) +
                                "] makes " + std::to_string(tokens) + " visual tokens, but " + std::to_string(video.size(0)) + " were given");
  const double seconds = input.second_per_grid_t.value_or(lm.second_per_grid_t());
  if (!std::isfinite(seconds) || seconds < 0)
    throw std::invalid_argument("second_per_grid_ts must be a finite number >= 0, got " + std::to_string(seconds));
  given.rope = qwen2_5_vl_rope_positions(v, g, seconds);
  given.rope.offsets = given.rope.offsets.to(video.device());
  return given;
}

std::pair<torch::Tensor, torch::Tensor> mrope_position_ids(const torch::Tensor& attention_mask, const torch::Tensor& is_video,
                                                           const VideoRope& rope) {
  const auto mask = attention_mask.to(torch::kInt64);
  const int64_t b = mask.size(0);
  const auto plain = (mask.cumsum(1) - 1).clamp_min(0);
  const auto video = is_video.to(mask.device(), torch::kBool) & mask.to(torch::kBool);
  std::vector<int64_t> starts;
  for (int64_t r = 0; r < b; ++r) {
    const auto where = video[r].nonzero().view({-1});
    if (where.size(0) == 0) {
      starts.push_back(-1);
      continue;
    }
    const int64_t count = where.size(0), first = plain[r][where[0]].item<int64_t>();
    if (!rope.offsets.defined() || count != rope.offsets.size(1) || plain[r][where[-1]].item<int64_t>() != first + count - 1)
      throw std::invalid_argument("row " + std::to_string(r) + ": the video's tokens must be one run of " +
                                  std::to_string(rope.offsets.defined() ? rope.offsets.size(1) : 0) +
                                  " (the video's M-RoPE positions), got " + std::to_string(count));
    starts.push_back(first);
  }
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(mask.device());
  auto positions = mrope_positions(plain, torch::tensor(starts, index_options), rope)
                       .masked_fill(mask.logical_not().unsqueeze(0), 0);  // padding: 0, as get_rope_index leaves it
  // rope deltas: the row's largest position + 1 - its tokens
  const auto largest = std::get<0>(positions.amax(0).max(1));
  return {positions, largest + 1 - mask.sum(1)};
}

LMOutput VideoLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                              const torch::Tensor& video_tokens, bool output_hidden_states, const VideoRope& video_rope) {
  LMOutput out;
  std::tie(out.inputs_embeds, out.attention_mask) = embed(input_ids, attention_mask, video_tokens);
  if (out.inputs_embeds.size(1) > config_.text->max_position_embeddings)
    throw std::invalid_argument("the sequence (" + std::to_string(out.inputs_embeds.size(1)) +
                                " positions with the video) is longer than max_position_embeddings (" +
                                std::to_string(config_.text->max_position_embeddings) + ")");
  Qwen2ModelImpl::Options o;
  o.output_hidden_states = output_hidden_states;
  if (visual && video_tokens.defined()) {
    // Where each row's video lies after splicing: transformers' form holds video ids, tpo's one -200 per row.
    const auto ids = input_ids.to(out.attention_mask.device());
    const int64_t v = video_tokens.size(0);
    torch::Tensor is_video;
    if ((ids == config_.mm->video_token_index).any().item<bool>()) {
      is_video = ids == config_.mm->video_token_index;
    } else {
      is_video = torch::zeros(out.attention_mask.sizes(), torch::TensorOptions().dtype(torch::kBool).device(ids.device()));
      const auto where = (ids == config_.mm->image_token_index).to(torch::kInt64).argmax(1);
      for (int64_t r = 0; r < ids.size(0); ++r) is_video[r].narrow(0, where[r].item<int64_t>(), v).fill_(true);
    }
    std::tie(out.position_ids, out.rope_deltas) = mrope_position_ids(out.attention_mask, is_video, video_rope);
  }
  out.lm = model->forward(out.inputs_embeds, out.attention_mask, out.position_ids, o);
  out.logits = torch::nn::functional::linear(out.lm.last_hidden_state, lm_head_weight());
  return out;
}

}  // namespace tpo::model
