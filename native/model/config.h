// Model configs as Hugging Face, LLaVA-NeXT and Video-LLaVA write them (config.json): the decoder's text config
// (Qwen2's or LLaMA's), SigLIP and CLIP vision configs, LLaVA's mm_* fields and VideoLlavaConfig's. Parsing names
// the file and the field at fault.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tpo::model {

// RoPE's variants as transformers' ROPE_INIT_FUNCTIONS compute them (config.json's rope_scaling or, since
// transformers 5, rope_parameters).
enum class RopeType { Default, Linear, Dynamic, Llama3 };
struct RopeScaling {
  RopeType type = RopeType::Default;
  double factor = 1.0;            // linear, dynamic, llama3
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 0;  // llama3 (default: max_position_embeddings)
};
const char* rope_type_name(RopeType type);

// The decoder-only LM: Qwen2's config, and LLaMA's (LlamaForCausalLM), which differs only in its biases and RoPE
// variants, so one decoder (model/qwen2.h) runs both.
struct Qwen2Config {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless given
  int64_t max_position_embeddings = 32768;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;
  // Qwen2: biases on q, k, v (not o); LLaMA: attention_bias on all four, mlp_bias on the MLP's three.
  bool qkv_bias = true;
  bool o_bias = false;
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  int64_t pad_token_id = -1;
  // Qwen2.5-VL's 3D multimodal RoPE (rope_parameters.mrope_section): the head's rotary frequencies split in three
  // sections that rotate by the temporal, height and width position each. Empty: plain RoPE.
  std::vector<int64_t> mrope_section{};
};

// VideoLlama3: VideoLLaMA3's SigLIP-style encoder over variable-size patch grids (no learned positions: 2D RoPE).
// InternVL: InternVLVisionModel (InternViT: class token, learned positions, layer scale, optional qk-norm).
// Qwen2_5_VL: Qwen2_5_VisionTransformerPretrainedModel (Conv3d patches over temporal_patch_size frames, 2D RoPE,
// window attention but in fullatt_block_indexes, RMSNorm, SwiGLU, the patch merger).
enum class VisionKind { Siglip, Clip, VideoLlama3, InternVL, Qwen2_5_VL };
enum class Activation { GeluTanh, GeluErf, QuickGelu, Silu };

struct VisionConfig {
  VisionKind kind = VisionKind::Siglip;
  int64_t image_size = 0;
  int64_t patch_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_channels = 3;
  double layer_norm_eps = 1e-6;
  Activation hidden_act = Activation::GeluTanh;
  // Layers the checkpoint holds: LLaVA-NeXT deletes SigLIP's last layer before saving.
  int64_t layers_in_checkpoint = 0;
  double rope_theta = 10000.0;  // VideoLlama3's axial 2D RoPE (rope_parameters.rope_theta)
  // InternVL (InternVLVisionConfig): norm_type rms_norm (else layer_norm), use_qk_norm, attention_bias (q, k, v),
  // use_mean_pooling (true: no final layernorm), layer_scale_init_value (lambda_1 / lambda_2's initial value).
  bool rms_norm = false;
  bool qk_norm = false;
  bool attention_bias = false;
  bool mean_pooling = true;
  double layer_scale_init_value = 0.1;
  // Qwen2.5-VL (Qwen2_5_VLVisionConfig): frames per patch, merge_size x merge_size patches a visual token, the
  // attention window in pixels, the blocks that attend over the whole frame, the merger's output width, and the
  // temporal RoPE's scale (tokens_per_second x second_per_grid_t per temporal patch).
  int64_t temporal_patch_size = 1;
  int64_t spatial_merge_size = 1;
  int64_t window_size = 0;
  std::vector<int64_t> fullatt_block_indexes{};
  int64_t out_hidden_size = 0;
  double tokens_per_second = 1;
  int64_t grid() const { return image_size / patch_size; }  // the conv drops leftover pixels
};

// LLaVA's multimodal settings (LLaVA-Video: spatial_unpad + grid newlines; LongVA: unires, no newline).
struct MultimodalConfig {
  std::string projector_type = "mlp2x_gelu";
  int64_t mm_hidden_size = 0;
  int64_t select_layer = -2;
  std::string select_feature = "patch";  // "patch" drops CLIP's class token; "cls_patch" keeps it
  std::string patch_merge_type = "flat";
  std::string newline_position = "grid";  // grid | frame | one_token | no_token
  std::string pool_mode = "average";      // average | bilinear | max
  int64_t pool_stride = 2;
  int64_t image_token_index = -200;
  // Video-LLaVA (VideoLlavaConfig): vision_feature_layer as a list concatenates those layers' features; the
  // projector's biases (multimodal_projector_bias); the in-vocabulary id transformers' processor repeats once per
  // visual token (video_token_index), accepted beside the single image_token_index placeholder.
  std::vector<int64_t> select_layers;
  bool projector_bias = true;
  int64_t video_token_index = -1;
  // VideoLLaMA3 (VideoLlama3Config + its video processor's defaults): the tower's features are merged merge_size x
  // merge_size (pixel_unshuffle's bilinear downsampling); its processor drops the tokens of a frame that barely
  // change from the frame before (use_token_compression, _get_compression_mask's threshold 0.1 and 1 token a frame).
  int64_t merge_size = 2;
  bool token_compression = true;
  // InternVL (InternVLConfig): pixel_shuffle by downsample_ratio = 1 / shuffle (0.5: 2 x 2 patches a token, their
  // features side by side), then multi_modal_projector (LayerNorm, Linear, projector_hidden_act, Linear).
  int64_t shuffle = 2;
  Activation projector_act = Activation::GeluErf;
};

enum class Architecture {
  Qwen2ForCausalLM,
  LlamaForCausalLM,
  VisionModel,
  LlavaQwenForCausalLM,
  VideoLlavaForConditionalGeneration,  // transformers' video_llava, and the original Video-LLaVA repo's llava config
  VideoLlama3ForConditionalGeneration,  // transformers' video_llama_3
  InternVLForConditionalGeneration,     // transformers' internvl (InternVL3-*-hf, InternVideo2.5's architecture)
  Qwen2_5_VLForConditionalGeneration,   // transformers' qwen2_5_vl (Qwen2.5-VL-*-Instruct)
};

struct ModelConfig {
  Architecture architecture = Architecture::Qwen2ForCausalLM;
  std::string model_type;
  std::optional<Qwen2Config> text;
  std::optional<VisionConfig> vision;
  std::optional<MultimodalConfig> mm;
  std::string json;  // the config.json text it was read from, written back verbatim on save
};

// Reads `dir/config.json` (or a config.json path).
ModelConfig load_config(const std::string& path);
ModelConfig parse_config(const std::string& json_text, const std::string& source);

const char* activation_name(Activation a);

}  // namespace tpo::model
