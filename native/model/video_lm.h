// The video LMM: LLaVA-NeXT's LlavaQwenForCausalLM (LLaVA-Video, LongVA), Video-LLaVA's
// VideoLlavaForConditionalGeneration (LLaVA-Hound), VideoLlama3ForConditionalGeneration and, with no vision
// config, plain Qwen2ForCausalLM / LlamaForCausalLM. Module names follow the original LLaVA-NeXT checkpoint layout
// (model.vision_tower.vision_tower.vision_model.*, model.mm_projector.{0,2}.*, model.image_newline, lm_head.*);
// native/model/weights.cc maps the Hugging Face layouts onto these names.
//
// The video path, as llava/model/llava_arch.py runs it for modalities=["video"]:
//   frames [F,3,S,S] -> vision tower -> feature select -> mm_projector (Linear, GELU(erf), Linear)
//   -> get_2dPool (per-frame 2D pooling) -> newline tokens (mm_newline_position) -> splice at the -200 id.
#pragma once

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/internvl.h"
#include "model/parameters.h"
#include "model/qwen2.h"
#include "model/qwen2_5_vl.h"
#include "model/vision.h"

namespace tpo::model {

// LLaVA-NeXT's SigLipVisionTower / CLIPVisionTower: the HF vision model under `vision_tower`.
class LlavaVisionTowerImpl : public torch::nn::Module {
 public:
  LlavaVisionTowerImpl(const VisionConfig& config, int64_t layers);
  VisionModel vision_tower{nullptr};
};
TORCH_MODULE(LlavaVisionTower);

// Video-LLaVA's LanguageBindVideoTower / LanguageBindImageTower: the CLIP vision transformer under the tower's
// own name (model.video_tower.video_tower.*, model.image_tower.image_tower.* in the original checkpoints).
class VideoLlavaTowerImpl : public torch::nn::Module {
 public:
  VideoLlavaTowerImpl(const std::string& name, const VisionConfig& config);
  VisionTransformer tower{nullptr};
};
TORCH_MODULE(VideoLlavaTower);

// Video-LLaVA's LlavaLlamaModel = the LLaMA decoder + both towers + mm_projector (Linear, GELU, Linear), as the
// original repository composes them; transformers' VideoLlavaModel holds the same weights under other names
// (model/weights.cc). The image tower is loaded and saved with the checkpoint; videos go through the video tower.
class VideoLlavaModelImpl : public Qwen2ModelImpl {
 public:
  VideoLlavaModelImpl(const Qwen2Config& text, const VisionConfig& vision, const MultimodalConfig& mm);
  VideoLlavaTower video_tower{nullptr}, image_tower{nullptr};
  torch::nn::Sequential mm_projector{nullptr};
};

// VideoLlama3Projector: readout = Linear, GELU (erf), Linear.
class VideoLlama3ProjectorImpl : public torch::nn::Module {
 public:
  VideoLlama3ProjectorImpl(int64_t in, int64_t out);
  torch::nn::Sequential readout{nullptr};
};
TORCH_MODULE(VideoLlama3Projector);

// VideoLlama3Model = the Qwen2 decoder (transformers' model.language_model, tpo's model.*) + vision_model +
// projector, as VideoLlama3ForConditionalGeneration holds them (model/weights.cc maps the names).
class VideoLlama3ModelImpl : public Qwen2ModelImpl {
 public:
  VideoLlama3ModelImpl(const Qwen2Config& text, const VisionConfig& vision);
  VideoLlama3VisionModel vision_model{nullptr};
  VideoLlama3Projector projector{nullptr};
};

// LlavaQwenModel = Qwen2Model + the multimodal parts, as LLaVA-NeXT composes them.
class LlavaQwenModelImpl : public Qwen2ModelImpl {
 public:
  LlavaQwenModelImpl(const Qwen2Config& text, const VisionConfig& vision, const MultimodalConfig& mm);
  LlavaVisionTower vision_tower{nullptr};
  torch::nn::Sequential mm_projector{nullptr};
  torch::Tensor image_newline;  // [hidden]; present when the merge type uses newlines
};

struct VideoTokens {
  torch::Tensor features;   // [F, N, C]   the selected vision features
  torch::Tensor projected;  // [F, N, D]   after mm_projector
  torch::Tensor pooled;     // [F, N', D]  after get_2dPool
  torch::Tensor tokens;     // [V, D]      with newline tokens, in sequence order
  torch::Tensor kept;       // VideoLLaMA3: [F*N'] bool, the compression mask (which pooled tokens are in `tokens`)
  VideoRope rope;           // Qwen2.5-VL: the tokens' M-RoPE positions from the video's first (offsets undefined: none)
};

struct LMOutput {
  torch::Tensor logits;          // [B, L, vocab]
  torch::Tensor inputs_embeds;   // [B, L, D] after splicing
  torch::Tensor attention_mask;  // [B, L] after splicing
  torch::Tensor position_ids;    // Qwen2.5-VL with a video: [3, B, L], get_rope_index's
  torch::Tensor rope_deltas;     // and [B]: how far the positions after the video lag (or lead) the token count
  Qwen2Output lm;
};

class VideoLMImpl : public torch::nn::Module {
 public:
  explicit VideoLMImpl(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  bool has_vision() const {
    return config_.architecture == Architecture::LlavaQwenForCausalLM ||
           config_.architecture == Architecture::VideoLlavaForConditionalGeneration ||
           config_.architecture == Architecture::VideoLlama3ForConditionalGeneration ||
           config_.architecture == Architecture::InternVLForConditionalGeneration ||
           config_.architecture == Architecture::Qwen2_5_VLForConditionalGeneration;
  }
  // The vision transformer videos go through (not VideoLLaMA3's: video_llama3->vision_model).
  VisionTransformerImpl& video_tower();
  void set_vision_gradient_checkpointing(bool on);

  // The text a processor writes around each frame's visual tokens, as token ids per frame (see set_frame_text).
  struct FrameText {
    std::vector<int64_t> before, after;
  };

  // Frames (already preprocessed, [F, 3, S, S]; VideoLLaMA3: [F, 3, H, W], H and W multiples of patch x merge)
  // to the visual tokens that replace the -200 id. `frame_text`: this call's text around each frame (VideoLLaMA3's
  // time stamps differ by video); nullptr: the model's (set_frame_text). `second_per_grid_t`: Qwen2.5-VL's seconds
  // a temporal patch of these frames spans (its processor's, per video); unset: the model's (set_second_per_grid_t).
  VideoTokens encode_video(const torch::Tensor& pixel_values, const std::vector<FrameText>* frame_text = nullptr,
                           std::optional<double> second_per_grid_t = std::nullopt);
  // VideoLLaMA3 in transformers' form: pixel_values_videos [t*h*w, 3*p*p] (its processor's patches), grid
  // (video_grid_thw, video_merge_sizes) and video_compression_mask ([t*h/m*w/m] bool; undefined: the
  // processor's rule when config's token_compression, else every token). With frame text, each frame's kept tokens
  // between its text.
  VideoTokens encode_video_patches(const torch::Tensor& patches, const PatchGrid& grid, const torch::Tensor& compression_mask,
                                   const std::vector<FrameText>* frame_text = nullptr);
  // input_ids: [B, L] with the image id once per row (tpo's placeholder, -200), or, for Video-LLaVA and VideoLLaMA3,
  // transformers' video token id once per visual token (Video-LLaVA's processor expands <video> so; VideoLLaMA3's
  // puts each frame's kept tokens after its time stamp).
  // input_ids [B, L] with at most one image id per row -> embeddings [B, L', D], the video tokens spliced in.
  std::pair<torch::Tensor, torch::Tensor> embed(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                const torch::Tensor& video_tokens);
  // transformers' layout of the same: one video_token_index per visual token in every row.
  std::pair<torch::Tensor, torch::Tensor> embed_expanded(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                         const torch::Tensor& video_tokens);
  // Qwen2.5-VL in transformers' form: pixel_values_videos [t*h*w, C*temporal*p*p] (its processor's patches), the
  // grid (video_grid_thw) and second_per_grid_ts (seconds a temporal patch spans) -> the merger's tokens and their
  // M-RoPE positions.
  VideoTokens encode_video_grid(const torch::Tensor& patches, const Qwen2_5_VLGrid& grid, double second_per_grid_t);
  // Qwen2.5-VL: the seconds a temporal patch of frames given to encode_video spans (the processor's
  // temporal_patch_size / fps; by default its fps, 2).
  double second_per_grid_t() const { return second_per_grid_t_; }
  void set_second_per_grid_t(double seconds);
  // video_rope: Qwen2.5-VL's positions of the video's tokens (VideoTokens::rope); with them the language model runs
  // on M-RoPE position ids [3, B, L] as get_rope_index computes them.
  LMOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                   const torch::Tensor& video_tokens, bool output_hidden_states = false, const VideoRope& video_rope = {});
  torch::Tensor lm_head_weight() const;

  // InternVL and VideoLLaMA3: the text their processors write around each frame's visual tokens (InternVL's
  // "Frame1: <img>" ... "</img>", frames joined by "\n"; VideoLLaMA3's "Time 0.0s:" before each frame's kept
  // tokens, frames joined by ","), as token ids per frame (the tokenizer's, so set by the caller). With it set,
  // encode_video's tokens hold those ids' embeddings around each frame's tokens, so one -200 placeholder stands for
  // the processor's whole video layout; without it (the default), the frames' tokens follow one another.
  void set_frame_text(std::vector<FrameText> text);
  // The text's tokens for the first `frames` frames (0 when none is set).
  int64_t frame_text_tokens(int64_t frames) const;

  std::shared_ptr<Qwen2ModelImpl> model;        // "model": Qwen2Model or LlavaQwenModel
  Dense lm_head{nullptr};                       // absent when tie_word_embeddings
  std::shared_ptr<LlavaQwenModelImpl> llava;    // the same module as `model`, for LLaVA-NeXT's architecture
  std::shared_ptr<VideoLlavaModelImpl> video_llava;  // the same module as `model`, for Video-LLaVA's
  std::shared_ptr<VideoLlama3ModelImpl> video_llama3;  // the same module as `model`, for VideoLLaMA3's
  std::shared_ptr<InternVLModelImpl> internvl;          // the same module as `model`, for InternVL's
  Qwen2_5_VisionTransformer visual{nullptr};            // Qwen2.5-VL's tower and merger, beside `model` (visual.*)

 private:
  ModelConfig config_;
  std::vector<FrameText> frame_text_;
  // Ids outside the vocabulary, or a model that lays its frames out itself, are an error.
  void check_frame_text(const std::vector<FrameText>& text) const;
  // Each frame's tokens [n_f, D] with the embeddings of its text around them, one after the other.
  torch::Tensor with_frame_text(const std::vector<torch::Tensor>& frames, const std::vector<FrameText>& text);
  double second_per_grid_t_ = 1.0;
};
TORCH_MODULE(VideoLM);

// One video as a call carries it, with its own layout: frames (encoded in the call) or the visual tokens
// encode_video made of them, and what its processor lays out by the video itself, which a frames tensor or bare
// tokens do not hold: VideoLLaMA3's time stamps (frame_text, with frames) and Qwen2.5-VL's grid and seconds per
// temporal patch (with tokens, the grid they were made on, from which their M-RoPE positions follow; with frames
// the grid is the frames').
struct VideoInput {
  torch::Tensor video;  // frames [F, 3, H, W] or visual tokens [V, D]; undefined: none
  std::optional<std::vector<VideoLMImpl::FrameText>> frame_text;  // frames: this video's text around each frame
  std::optional<Qwen2_5_VLGrid> grid;                             // Qwen2.5-VL tokens: their video_grid_thw
  std::optional<double> second_per_grid_t;                        // Qwen2.5-VL: this video's second_per_grid_ts
};

// The visual tokens of `input` under `lm` (frames encoded, tokens as given), with their M-RoPE positions for
// Qwen2.5-VL. Errors name what does not fit: frame text with tokens, a grid that is not the tokens', a grid or
// seconds on another architecture.
VideoTokens encode_video_input(VideoLMImpl& lm, const VideoInput& input);

// get_rope_index for rows holding one video each: position ids [3, B, L] and rope deltas [B]. attention_mask [B, L]
// (1 = token; padding gets position 0, as transformers writes), is_video [B, L] bool (each row's video tokens, one
// run of rope.offsets' length, or none). Text counts up from 0 before the video and from the video's first position
// plus rope.span after it.
std::pair<torch::Tensor, torch::Tensor> mrope_position_ids(const torch::Tensor& attention_mask, const torch::Tensor& is_video,
                                                           const VideoRope& rope);

// How many visual tokens `frames` frames become (the rows of encode_video's `tokens`), from the config alone: a
// caller checks that a video fits max_position_embeddings before decoding it. Throws for a model without vision.
int64_t video_token_count(const ModelConfig& config, int64_t frames);

// Which hidden state LLaVA's feature_select takes (Video-LLaVA: the deepest of its vision_feature_layer) (mm_vision_select_layer counts from the full tower) and how
// many layers must run for it.
int64_t vision_layers_to_run(const VisionConfig& vision, const MultimodalConfig& mm);

}  // namespace tpo::model
