#include "model/config.h"

#include <cmath>
#include <stdexcept>

#include <c10/util/StringUtil.h>
#include <nlohmann/json.hpp>

#include "io/json.h"
#include "io/paths.h"

namespace tpo::model {
namespace {

using json = nlohmann::json;

// Reads fields of one JSON object, naming `source` and the field's path in every error.
class Fields {
 public:
  Fields(const json& object, std::string source, std::string prefix = "")
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }

  int64_t integer(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    const json& v = object_.at(key);
    if (!v.is_number_integer()) fail(key, "must be an integer");
    return v.get<int64_t>();
  }
  int64_t integer(const char* key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  // Required, unless `defaulted` (a nested config that leaves its class's defaults out).
  int64_t integer(const char* key, bool defaulted, int64_t fallback) const { return defaulted ? integer(key, fallback) : integer(key); }

  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_number()) fail(key, "must be a number");
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_boolean()) fail(key, "must be true or false");
    return v.get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_string()) fail(key, "must be a string");
    return v.get<std::string>();
  }
  // Token ids may be an integer or a list (eos_token_id in newer configs); we take the first.
  int64_t token_id(const char* key) const {
    if (!has(key)) return -1;
    const json& v = object_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
    fail(key, "must be a token id");
  }
  const json& raw(const char* key) const { return object_.at(key); }
  Fields object(const char* key) const {
    if (!has(key) || !object_.at(key).is_object()) fail(key, "must be an object");
    return Fields(object_.at(key), source_, prefix_ + key + ".");
  }
  // A nested config (vision_config, text_config) that may be left out: then its class's defaults, i.e. {}.
  Fields nested(const char* key) const {
    static const json empty = json::object();
    return has(key) ? object(key) : Fields(empty, source_, prefix_ + key + ".");
  }
  // model_type, when given, must be `expected` (the only one this architecture's part can be).
  void require_model_type(const std::string& expected, const char* why) const {
    if (const std::string type = string("model_type", expected); type != expected)
      fail("model_type", "'", type, "' is not supported (", why, ")");
  }
  // c10::str builds the message: GCC 12 warns (-Wstringop-overflow, a false positive) on "literal" + std::string.
  template <typename... Parts>
  [[noreturn]] void fail(const char* key, const Parts&... why) const {
    throw std::invalid_argument(c10::str(source_, ": ", prefix_, key, " ", why...));
  }
  const std::string& source() const { return source_; }

 private:
  const json& object_;
  std::string source_;
  std::string prefix_;
};

// Sizes past these are no real model's, and products of them would overflow the int64 shapes they become.
constexpr int64_t kMaxDim = int64_t{1} << 24;
constexpr int64_t kMaxLayers = 4096;

void require_positive(const Fields& f, const char* key, int64_t value, int64_t max = kMaxDim) {
  if (value < 1) f.fail(key, "must be positive, got ", value);
  if (value > max) f.fail(key, "is implausibly large (", value, " > ", max, ")");
}

// eps, theta: a negative eps makes RMSNorm/LayerNorm take the root of a negative number (NaN), theta <= 0 makes
// every rotary frequency NaN or infinite: both would give numbers, silently wrong.
void require_positive_number(const Fields& f, const char* key, double value) {
  if (!std::isfinite(value) || !(value > 0)) f.fail(key, "must be a positive finite number, got ", value);
}

// Fields a text config may leave out (transformers writes only the non-defaults into nested configs of older
// checkpoints): LlamaConfig's defaults. Qwen2's configs are read as they have always been written, in full.
// Qwen2_5_VL: Qwen2's, with M-RoPE's rope type (mrope) accepted.
enum class Decoder { Qwen2, Llama, Qwen2_5_VL };

RopeScaling parse_rope(const Fields& f, const char* key, Qwen2Config& c, bool mrope = false) {
  RopeScaling r;
  const Fields rope = f.object(key);
  const std::string type = rope.has("rope_type") ? rope.string("rope_type", "default") : rope.string("type", "default");
  // transformers 5 keeps rope_theta inside rope_parameters.
  c.rope_theta = rope.number("rope_theta", c.rope_theta);
  require_positive_number(rope, "rope_theta", c.rope_theta);
  if (rope.has("partial_rotary_factor") && rope.number("partial_rotary_factor", 1.0) != 1.0)
    rope.fail("partial_rotary_factor", "other than 1 is not supported");
  // Qwen2.5-VL's Hub configs name M-RoPE "mrope"; transformers reads it as the default RoPE with mrope_section.
  if (type == "default" || (mrope && type == "mrope")) return r;
  const auto factor = [&] {
    const double v = rope.number("factor", 0.0);
    if (!std::isfinite(v) || !(v >= 1.0)) rope.fail("factor", "must be a finite number >= 1, got ", v);
    return v;
  };
  if (type == "linear") {
    r.type = RopeType::Linear;
    r.factor = factor();
  } else if (type == "dynamic") {
    r.type = RopeType::Dynamic;
    r.factor = factor();
  } else if (type == "llama3") {
    r.type = RopeType::Llama3;
    r.factor = factor();
    r.low_freq_factor = rope.number("low_freq_factor", 0.0);
    r.high_freq_factor = rope.number("high_freq_factor", 0.0);
    require_positive_number(rope, "low_freq_factor", r.low_freq_factor);
    require_positive_number(rope, "high_freq_factor", r.high_freq_factor);
    if (!(r.high_freq_factor > r.low_freq_factor))
      rope.fail("high_freq_factor", "(", r.high_freq_factor, ") must exceed low_freq_factor (", r.low_freq_factor, ")");
    r.original_max_position_embeddings = rope.integer("original_max_position_embeddings", c.max_position_embeddings);
    require_positive(rope, "original_max_position_embeddings", r.original_max_position_embeddings, int64_t{1} << 30);
  } else {
    rope.fail("rope_type", "'", type, "' is not supported (default, linear, dynamic, llama3", mrope ? ", mrope)" : ")");
  }
  return r;
}

Qwen2Config parse_decoder(const Fields& f, Decoder decoder) {
  Qwen2Config c;
  const bool llama = decoder == Decoder::Llama;
  c.vocab_size = f.integer("vocab_size", llama, 32000);
  c.hidden_size = f.integer("hidden_size", llama, 4096);
  c.intermediate_size = f.integer("intermediate_size", llama, 11008);
  c.num_hidden_layers = f.integer("num_hidden_layers", llama, 32);
  c.num_attention_heads = f.integer("num_attention_heads", llama, 32);
  c.num_key_value_heads = f.integer("num_key_value_heads", c.num_attention_heads);
  for (auto [key, v] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                        {"intermediate_size", c.intermediate_size}, {"num_attention_heads", c.num_attention_heads},
                        {"num_key_value_heads", c.num_key_value_heads}})
    require_positive(f, key, v);
  require_positive(f, "num_hidden_layers", c.num_hidden_layers, kMaxLayers);
  if (!f.has("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    f.fail("hidden_size", "(", c.hidden_size, ") must be divisible by num_attention_heads (", c.num_attention_heads, ")");
  c.head_dim = f.integer("head_dim", c.hidden_size / c.num_attention_heads);
  require_positive(f, "head_dim", c.head_dim);
  if (c.head_dim % 2 != 0) f.fail("head_dim", "must be even (rotary embeddings rotate its two halves), got ", c.head_dim);
  if (c.num_key_value_heads > c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail("num_key_value_heads", "(", c.num_key_value_heads, ") must divide num_attention_heads (", c.num_attention_heads, ")");
  c.max_position_embeddings = f.integer("max_position_embeddings", llama ? 2048 : c.max_position_embeddings);
  require_positive(f, "max_position_embeddings", c.max_position_embeddings, int64_t{1} << 30);
  c.rope_theta = f.number("rope_theta", c.rope_theta);
  require_positive_number(f, "rope_theta", c.rope_theta);
  c.rms_norm_eps = f.number("rms_norm_eps", c.rms_norm_eps);
  require_positive_number(f, "rms_norm_eps", c.rms_norm_eps);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  // transformers 5 writes rope_parameters (rope_theta inside); older configs rope_scaling beside rope_theta.
  const bool mrope = decoder == Decoder::Qwen2_5_VL;
  if (f.has("rope_parameters")) c.rope_scaling = parse_rope(f, "rope_parameters", c, mrope);
  else if (f.has("rope_scaling")) c.rope_scaling = parse_rope(f, "rope_scaling", c, mrope);
  if (llama) {
    c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
    c.mlp_bias = f.boolean("mlp_bias", false);
    if (f.integer("pretraining_tp", 1) < 1) f.fail("pretraining_tp", "must be positive");
  }
  // What tpo's decoder computes: a config that asks for something else must not run as if it had not.
  if (const std::string act = f.string("hidden_act", "silu"); act != "silu")
    f.fail("hidden_act", "'", act, "' is not supported (the decoder's MLP is SwiGLU: silu)");
  if (f.boolean("use_sliding_window", false) && f.integer("sliding_window", 0) > 0 &&
      f.integer("sliding_window", 0) < c.max_position_embeddings)
    f.fail("use_sliding_window", "is not supported (tpo attends over the whole sequence)");
  c.bos_token_id = llama && !f.has("bos_token_id") ? 1 : f.token_id("bos_token_id");
  c.eos_token_id = llama && !f.has("eos_token_id") ? 2 : f.token_id("eos_token_id");
  c.pad_token_id = f.token_id("pad_token_id");
  return c;
}

Activation parse_activation(const Fields& f, const std::string& name, const char* key = "hidden_act") {
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::GeluTanh;
  if (name == "gelu") return Activation::GeluErf;
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "silu") return Activation::Silu;
  f.fail(key, "'", name, "' is not supported (gelu_pytorch_tanh, gelu, quick_gelu, silu)");
}

// VideoLlama3VisionConfig, its defaults for what it leaves out: no image_size (the patch grid is each video's own).
VisionConfig parse_video_llama3_vision(const Fields& f) {
  VisionConfig c;
  c.kind = VisionKind::VideoLlama3;
  c.patch_size = f.integer("patch_size", 16);
  c.hidden_size = f.integer("hidden_size", 768);
  c.intermediate_size = f.integer("intermediate_size", 3072);
  c.num_hidden_layers = f.integer("num_hidden_layers", 12);
  c.num_attention_heads = f.integer("num_attention_heads", 12);
  for (auto [key, v] : {std::pair{"patch_size", c.patch_size}, {"hidden_size", c.hidden_size},
                        {"intermediate_size", c.intermediate_size}, {"num_attention_heads", c.num_attention_heads}})
    require_positive(f, key, v);
  require_positive(f, "num_hidden_layers", c.num_hidden_layers, kMaxLayers);
  if (c.hidden_size % c.num_attention_heads != 0)
    f.fail("hidden_size", "(", c.hidden_size, ") must be divisible by num_attention_heads (", c.num_attention_heads, ")");
  // The axial RoPE gives a quarter of each head's dimensions to each of h and w, as cos and sin pairs.
  if ((c.hidden_size / c.num_attention_heads) % 4 != 0)
    f.fail("hidden_size", "/ num_attention_heads (", c.hidden_size / c.num_attention_heads,
           ") must be a multiple of 4 (the 2D RoPE rotates h and w in a quarter of the head each)");
  c.num_channels = f.integer("num_channels", 3);
  require_positive(f, "num_channels", c.num_channels, 64);
  c.layer_norm_eps = f.number("layer_norm_eps", 1e-6);
  require_positive_number(f, "layer_norm_eps", c.layer_norm_eps);
  c.hidden_act = parse_activation(f, f.string("hidden_act", "gelu_pytorch_tanh"));
  c.layers_in_checkpoint = c.num_hidden_layers;
  if (f.has("rope_parameters")) {
    const Fields rope = f.object("rope_parameters");
    if (const std::string type = rope.string("rope_type", "axial"); type != "axial")
      rope.fail("rope_type", "'", type, "' is not supported (VideoLLaMA3's vision RoPE is axial)");
    c.rope_theta = rope.number("rope_theta", c.rope_theta);
  }
  require_positive_number(f, "rope_parameters.rope_theta", c.rope_theta);
  return c;
}

// clip_defaults: CLIPVisionConfig's defaults for fields a nested vision_config leaves out (older transformers wrote
// only the non-defaults into VideoLlavaConfig's).
VisionConfig parse_vision(const Fields& f, bool clip_defaults = false) {
  VisionConfig c;
  const std::string type = f.string("model_type", clip_defaults ? "clip_vision_model" : "");
  if (type == "siglip_vision_model") c.kind = VisionKind::Siglip;
  else if (type == "clip_vision_model") c.kind = VisionKind::Clip;
  else if (type == "video_llama_3_vision") return parse_video_llama3_vision(f);
  else f.fail("model_type", "'", type, "' is not a vision tower tpo knows (siglip_vision_model, clip_vision_model, video_llama_3_vision)");
  const bool defaults = clip_defaults && c.kind == VisionKind::Clip;
  c.image_size = f.integer("image_size", defaults, 224);
  c.patch_size = f.integer("patch_size", defaults, 32);
  c.hidden_size = f.integer("hidden_size", defaults, 768);
  c.intermediate_size = f.integer("intermediate_size", defaults, 3072);
  c.num_hidden_layers = f.integer("num_hidden_layers", defaults, 12);
  c.num_attention_heads = f.integer("num_attention_heads", defaults, 12);
  for (auto [key, v] : {std::pair{"image_size", c.image_size}, {"patch_size", c.patch_size},
                        {"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
                        {"num_attention_heads", c.num_attention_heads}})
    require_positive(f, key, v);
  require_positive(f, "num_hidden_layers", c.num_hidden_layers, kMaxLayers);
  if (c.patch_size > c.image_size)
    f.fail("patch_size", "(", c.patch_size, ") is larger than image_size (", c.image_size, ")");
  if (c.hidden_size % c.num_attention_heads != 0)
    f.fail("hidden_size", "(", c.hidden_size, ") must be divisible by num_attention_heads (", c.num_attention_heads, ")");
  c.num_channels = f.integer("num_channels", 3);
  require_positive(f, "num_channels", c.num_channels, 64);
  c.layer_norm_eps = f.number("layer_norm_eps", c.kind == VisionKind::Clip ? 1e-5 : 1e-6);
  require_positive_number(f, "layer_norm_eps", c.layer_norm_eps);
  c.hidden_act = parse_activation(f, f.string("hidden_act", c.kind == VisionKind::Clip ? "quick_gelu" : "gelu_pytorch_tanh"));
  c.layers_in_checkpoint = f.integer("num_hidden_layers_in_checkpoint", c.num_hidden_layers);
  if (c.layers_in_checkpoint < 1 || c.layers_in_checkpoint > c.num_hidden_layers)
    f.fail("num_hidden_layers_in_checkpoint", "must lie in [1, num_hidden_layers = ", c.num_hidden_layers, "], got ",
           c.layers_in_checkpoint);
  return c;
}

// The real LLaVA-Video checkpoints carry no vision_config: LLaVA-NeXT hard-codes SigLIP-so400m-patch14-384 and
// drops its last layer; LongVA loads CLIP-ViT-L/14-336 whole. We do the same for those tower names.
std::optional<VisionConfig> known_tower(const std::string& name) {
  VisionConfig c;
  if (name.find("siglip-so400m-patch14-384") != std::string::npos) {
    c = {VisionKind::Siglip, 384, 14, 1152, 4304, 27, 16, 3, 1e-6, Activation::GeluTanh, 26};
    return c;
  }
  if (name.find("clip-vit-large-patch14-336") != std::string::npos) {
    c = {VisionKind::Clip, 336, 14, 1024, 4096, 24, 16, 3, 1e-5, Activation::QuickGelu, 24};
    return c;
  }
  return std::nullopt;
}

MultimodalConfig parse_mm(const Fields& f) {
  MultimodalConfig m;
  m.projector_type = f.string("mm_projector_type", m.projector_type);
  if (m.projector_type != "mlp2x_gelu" && m.projector_type != "linear")
    f.fail("mm_projector_type", "'", m.projector_type, "' is not supported (mlp2x_gelu, linear)");
  m.mm_hidden_size = f.integer("mm_hidden_size", 0);
  m.select_layer = f.integer("mm_vision_select_layer", m.select_layer);
  m.select_feature = f.string("mm_vision_select_feature", m.select_feature);
  if (m.select_feature != "patch" && m.select_feature != "cls_patch")
    f.fail("mm_vision_select_feature", "must be patch or cls_patch");
  m.patch_merge_type = f.string("mm_patch_merge_type", m.patch_merge_type);
  m.newline_position = f.string("mm_newline_position", "one_token");
  if (m.newline_position != "grid" && m.newline_position != "frame" && m.newline_position != "one_token" &&
      m.newline_position != "no_token")
    f.fail("mm_newline_position", "must be grid, frame, one_token or no_token");
  m.pool_mode = f.string("mm_spatial_pool_mode", m.pool_mode);
  if (m.pool_mode != "average" && m.pool_mode != "bilinear" && m.pool_mode != "max")
    f.fail("mm_spatial_pool_mode", "must be average, bilinear or max");
  m.pool_stride = f.integer("mm_spatial_pool_stride", m.pool_stride);
  require_positive(f, "mm_spatial_pool_stride", m.pool_stride);
  m.image_token_index = f.integer("image_token_index", m.image_token_index);
  return m;
}

// The multimodal settings against the towers and the language model they join.
void check_mm(const Fields& f, const MultimodalConfig& m, const VisionConfig& v, const Qwen2Config& text) {
  if (m.mm_hidden_size != 0 && m.mm_hidden_size != v.hidden_size)
    f.fail("mm_hidden_size", "(", m.mm_hidden_size, ") differs from the vision tower's hidden_size (", v.hidden_size, ")");
  if (m.image_token_index >= 0 && m.image_token_index < text.vocab_size)
    f.fail("image_token_index", "(", m.image_token_index, ") is a token of the vocabulary [0, ", text.vocab_size,
           "): text holding that token would be taken for the video (LLaVA-NeXT uses -200)");
  const int64_t total = v.num_hidden_layers;
  const int64_t index = m.select_layer < 0 ? total + 1 + m.select_layer : m.select_layer;
  if (index < 0 || index > total)
    f.fail("mm_vision_select_layer", "(", m.select_layer, ") is outside the tower's ", total, " layers");
  if (index > v.layers_in_checkpoint)
    f.fail("mm_vision_select_layer", "(", m.select_layer, ") needs ", index, " vision layers; the checkpoint holds ",
           v.layers_in_checkpoint);
  if (m.pool_stride > v.grid())
    f.fail("mm_spatial_pool_stride", "(", m.pool_stride, ") is larger than the tower's ", v.grid(), "x", v.grid(), " patch grid");
  if (v.kind == VisionKind::Clip && m.select_feature == "cls_patch")
    f.fail("mm_vision_select_feature", "cls_patch keeps CLIP's class token, which the 2D pooling of video frames has no "
                                       "place for (use patch)");
  const bool spatial = m.patch_merge_type.rfind("spatial", 0) == 0;
  if (spatial && (m.newline_position == "grid" || m.newline_position == "frame") &&
      m.patch_merge_type.find("unpad") == std::string::npos)
    f.fail("mm_newline_position", m.newline_position, " needs image_newline, which mm_patch_merge_type ",
           m.patch_merge_type, " does not create (use spatial_unpad)");
}

// VideoLlavaConfig (transformers' video_llava): text_config (LLaMA) and vision_config (CLIP) nested, with
// VideoLlavaConfig's defaults for what it leaves out.
void parse_video_llava(const Fields& f, ModelConfig& config) {
  config.architecture = Architecture::VideoLlavaForConditionalGeneration;
  if (f.has("vision_config")) {
    config.vision = parse_vision(f.object("vision_config"), /*clip_defaults=*/true);
  } else {  // VideoLlavaConfig's default tower: CLIP ViT-L/14 at 224
    config.vision = VisionConfig{VisionKind::Clip, 224, 14, 1024, 4096, 24, 16, 3, 1e-5, Activation::QuickGelu, 24};
  }
  if (config.vision->kind != VisionKind::Clip)
    f.fail("vision_config.model_type", "must be clip_vision_model (Video-LLaVA's towers are CLIP)");
  const Fields text = f.nested("text_config");
  text.require_model_type("llama", "Video-LLaVA's language model is llama");
  config.text = parse_decoder(text, Decoder::Llama);
  // The top-level flag decides, as VideoLlavaForConditionalGeneration ties lm_head to the embeddings by it.
  config.text->tie_word_embeddings = f.boolean("tie_word_embeddings", config.text->tie_word_embeddings);
  MultimodalConfig m;
  m.projector_type = "mlp2x_gelu";
  if (const std::string act = f.string("projector_hidden_act", "gelu"); act != "gelu")
    f.fail("projector_hidden_act", "'", act, "' is not supported (gelu)");
  m.projector_bias = f.boolean("multimodal_projector_bias", true);
  if (f.has("vision_feature_layer") && f.raw("vision_feature_layer").is_array()) {
    for (const auto& v : f.raw("vision_feature_layer")) {
      if (!v.is_number_integer()) f.fail("vision_feature_layer", "must be an integer or a list of integers");
      m.select_layers.push_back(v.get<int64_t>());
    }
    if (m.select_layers.empty()) f.fail("vision_feature_layer", "must not be an empty list");
  } else {
    m.select_layers.push_back(f.integer("vision_feature_layer", -2));
  }
  m.select_layer = m.select_layers.front();
  const std::string strategy = f.string("vision_feature_select_strategy", "default");
  if (strategy != "default" && strategy != "full") f.fail("vision_feature_select_strategy", "must be default or full");
  // Videos keep every token, the class token included, whatever the strategy (get_video_features applies none).
  m.select_feature = "cls_patch";
  m.mm_hidden_size = config.vision->hidden_size;
  m.image_token_index = -200;  // tpo's placeholder, Video-LLaVA's IMAGE_TOKEN_INDEX
  m.video_token_index = f.integer("video_token_index", 32001);
  f.integer("image_token_index", 32000);  // a type check only: tpo encodes videos, not images
  for (const int64_t layer : m.select_layers) {
    const int64_t total = config.vision->num_hidden_layers;
    const int64_t index = layer < 0 ? total + 1 + layer : layer;
    if (index < 0 || index > total)
      f.fail("vision_feature_layer", "(", layer, ") is outside the tower's ", total, " layers");
  }
  config.mm = m;
}

// The original Video-LLaVA repository's config.json (LlavaLlamaForCausalLM, model_type llava, mm_video_tower):
// a LLaMA config with mm_* fields. Its towers are named, not described: the config must carry their shape.
void parse_video_llava_original(const Fields& f, ModelConfig& config) {
  config.architecture = Architecture::VideoLlavaForConditionalGeneration;
  config.text = parse_decoder(f, Decoder::Llama);
  if (!f.has("vision_config"))
    f.fail("vision_config", "is missing: the original Video-LLaVA config names its towers (mm_video_tower '",
           f.string("mm_video_tower", ""), "') but not their shape; add the CLIP vision_config of that tower");
  config.vision = parse_vision(f.object("vision_config"), /*clip_defaults=*/true);
  MultimodalConfig m = parse_mm(f);
  if (m.projector_type != "mlp2x_gelu") f.fail("mm_projector_type", "must be mlp2x_gelu for Video-LLaVA");
  m.select_layers = {m.select_layer};
  m.select_feature = "cls_patch";  // LanguageBindVideoTower.feature_select returns every token
  m.mm_hidden_size = config.vision->hidden_size;
  m.image_token_index = -200;
  config.mm = m;
}

}  // namespace

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::GeluTanh: return "gelu_pytorch_tanh";
    case Activation::GeluErf: return "gelu";
    case Activation::QuickGelu: return "quick_gelu";
    case Activation::Silu: return "silu";
  }
  return "?";
}

const char* rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::Default: return "default";
    case RopeType::Linear: return "linear";
    case RopeType::Dynamic: return "dynamic";
    case RopeType::Llama3: return "llama3";
  }
  return "?";
}

// VideoLlama3Config (transformers' video_llama_3): vision_config (VideoLlama3VisionConfig), text_config (Qwen2, the
// default when absent), the projector (Linear, GELU, Linear) and the image/video token ids.
void parse_video_llama3(const Fields& f, ModelConfig& config) {
  config.architecture = Architecture::VideoLlama3ForConditionalGeneration;
  const Fields vision = f.nested("vision_config");
  vision.require_model_type("video_llama_3_vision", "VideoLLaMA3's vision model is video_llama_3_vision");
  config.vision = parse_video_llama3_vision(vision);
  const Fields text = f.nested("text_config");
  text.require_model_type("qwen2", "tpo runs VideoLLaMA3 on its Qwen2 language model");
  config.text = parse_decoder(text, Decoder::Qwen2);
  // VideoLlama3Config: the top-level flag, or the text config's when that one ties.
  config.text->tie_word_embeddings = f.boolean("tie_word_embeddings", false) || config.text->tie_word_embeddings;
  MultimodalConfig m;
  m.mm_hidden_size = config.vision->hidden_size;
  m.image_token_index = -200;  // tpo's placeholder
  m.video_token_index = f.integer("video_token_id", 151656);
  f.integer("image_token_id", 151655);  // a type check only: tpo encodes videos, not images
  if (m.video_token_index < 0 || m.video_token_index >= config.text->vocab_size)
    f.fail("video_token_id", "(", m.video_token_index, ") is outside the vocabulary [0, ", config.text->vocab_size, ")");
  config.mm = m;
}

namespace {

// A size InternVLVisionConfig may write as an integer or as [height, width]: tpo's tower takes square frames.
int64_t square_size(const Fields& f, const char* key, int64_t fallback) {
  if (!f.has(key)) return fallback;
  const json& v = f.raw(key);
  if (v.is_array()) {
    if (v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer())
      f.fail(key, "must be an integer or [height, width]");
    if (v[0].get<int64_t>() != v[1].get<int64_t>())
      f.fail(key, "[", v[0].get<int64_t>(), ", ", v[1].get<int64_t>(), "] is not square (tpo's InternVL tower takes square frames)");
    return v[0].get<int64_t>();
  }
  return f.integer(key);
}

// InternVLVisionConfig (internvl_vision), its defaults for what it leaves out.
VisionConfig parse_internvl_vision(const Fields& f) {
  VisionConfig c;
  c.kind = VisionKind::InternVL;
  c.image_size = square_size(f, "image_size", 448);
  c.patch_size = square_size(f, "patch_size", 14);
  c.hidden_size = f.integer("hidden_size", 1024);
  c.intermediate_size = f.integer("intermediate_size", 4096);
  c.num_hidden_layers = f.integer("num_hidden_layers", 24);
  c.num_attention_heads = f.integer("num_attention_heads", 16);
  for (auto [key, v] : {std::pair{"image_size", c.image_size}, {"patch_size", c.patch_size},
                        {"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
                        {"num_attention_heads", c.num_attention_heads}})
    require_positive(f, key, v);
  require_positive(f, "num_hidden_layers", c.num_hidden_layers, kMaxLayers);
  if (c.patch_size > c.image_size)
    f.fail("patch_size", "(", c.patch_size, ") is larger than image_size (", c.image_size, ")");
  if (c.hidden_size % c.num_attention_heads != 0)
    f.fail("hidden_size", "(", c.hidden_size, ") must be divisible by num_attention_heads (", c.num_attention_heads, ")");
  c.num_channels = f.integer("num_channels", 3);
  require_positive(f, "num_channels", c.num_channels, 64);
  c.layer_norm_eps = f.number("layer_norm_eps", 1e-6);
  require_positive_number(f, "layer_norm_eps", c.layer_norm_eps);
  c.hidden_act = parse_activation(f, f.string("hidden_act", "gelu"));
  c.layers_in_checkpoint = c.num_hidden_layers;
  const std::string norm = f.string("norm_type", "layer_norm");
  if (norm != "layer_norm" && norm != "rms_norm") f.fail("norm_type", "'", norm, "' is not supported (layer_norm, rms_norm)");
  c.rms_norm = norm == "rms_norm";
  c.qk_norm = f.boolean("use_qk_norm", false);
  c.attention_bias = f.boolean("attention_bias", false);
  c.mean_pooling = f.boolean("use_mean_pooling", true);
  c.layer_scale_init_value = f.number("layer_scale_init_value", 0.1);
  if (!f.boolean("use_absolute_position_embeddings", true))
    f.fail("use_absolute_position_embeddings", "false is not supported (InternVL's towers learn absolute positions)");
  return c;
}

// InternVLConfig (transformers' internvl: InternVL3-*-hf, InternVideo2.5's architecture): vision_config
// (internvl_vision), text_config (qwen2, the default, or llama), pixel_shuffle's downsample_ratio and the projector.
void parse_internvl(const Fields& f, ModelConfig& config) {
  config.architecture = Architecture::InternVLForConditionalGeneration;
  const Fields vision = f.nested("vision_config");
  vision.require_model_type("internvl_vision", "InternVL's vision model is internvl_vision");
  config.vision = parse_internvl_vision(vision);
  const Fields text = f.nested("text_config");
  const std::string type = text.string("model_type", "qwen2");
  if (type == "qwen2") config.text = parse_decoder(text, Decoder::Qwen2);
  else if (type == "llama") config.text = parse_decoder(text, Decoder::Llama);
  else if (type == "internlm2")
    text.fail("model_type", "'internlm2' is not supported: tpo runs InternVL on Qwen2 or LLaMA language models (the -hf "
                            "checkpoints transformers converts, e.g. OpenGVLab/InternVL3-1B-hf); InternLM2 needs "
                            "OpenGVLab's remote code");
  else text.fail("model_type", "'", type, "' is not supported (tpo runs InternVL on qwen2 or llama)");
  // InternVLForConditionalGeneration ties lm_head to the embeddings by the top-level flag (InternVLConfig: true).
  config.text->tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  MultimodalConfig m;
  const double ratio = f.number("downsample_ratio", 0.5);
  const double inverse = ratio > 0 ? 1.0 / ratio : 0.0;
  if (!std::isfinite(inverse) || inverse < 1 || std::abs(inverse - std::round(inverse)) > 1e-9)
    f.fail("downsample_ratio", "(", ratio, ") must be 1 / k for an integer k >= 1 (0.5: 2 x 2 patches a token)");
  m.shuffle = static_cast<int64_t>(std::round(inverse));
  if (config.vision->grid() % m.shuffle != 0)
    f.fail("downsample_ratio", "(", ratio, ") does not divide the tower's ", config.vision->grid(), "x",
           config.vision->grid(), " patch grid");
  m.projector_act = parse_activation(f, f.string("projector_hidden_act", "gelu"), "projector_hidden_act");
  if (f.has("vision_feature_layer") && f.raw("vision_feature_layer").is_array())
    f.fail("vision_feature_layer", "as a list is not supported for InternVL (its get_image_features takes one layer)");
  m.select_layer = f.integer("vision_feature_layer", -1);
  {
    const int64_t total = config.vision->num_hidden_layers;
    const int64_t index = m.select_layer < 0 ? total + 1 + m.select_layer : m.select_layer;
    if (index < 0 || index > total)
      f.fail("vision_feature_layer", "(", m.select_layer, ") is outside the tower's ", total, " layers");
  }
  m.select_layers = {m.select_layer};
  const std::string strategy = f.string("vision_feature_select_strategy", "default");
  if (strategy == "full")
    f.fail("vision_feature_select_strategy", "full is not supported: InternVL's pixel_shuffle needs the square patch "
                                             "grid, without the class token (use default)");
  if (strategy != "default") f.fail("vision_feature_select_strategy", "must be default");
  m.select_feature = "patch";
  m.mm_hidden_size = config.vision->hidden_size;
  m.image_token_index = -200;  // tpo's placeholder
  // transformers' form: the processor writes image_token_id (<IMG_CONTEXT>) once per visual token, for videos too.
  m.video_token_index = f.integer("image_token_id", 151667);
  if (m.video_token_index < 0 || m.video_token_index >= config.text->vocab_size)
    f.fail("image_token_id", "(", m.video_token_index, ") is outside the vocabulary [0, ", config.text->vocab_size, ")");
  config.mm = m;
}


// Qwen2_5_VLVisionConfig (qwen2_5_vl_vision), its defaults for what it leaves out.
VisionConfig parse_qwen2_5_vl_vision(const Fields& f) {
  VisionConfig c;
  c.kind = VisionKind::Qwen2_5_VL;
  c.num_hidden_layers = f.integer("depth", 32);
  c.hidden_size = f.integer("hidden_size", 3584);
  c.intermediate_size = f.integer("intermediate_size", 3420);
  c.num_attention_heads = f.integer("num_heads", 16);
  c.num_channels = f.integer("in_channels", 3);
  c.patch_size = f.integer("patch_size", 14);
  c.temporal_patch_size = f.integer("temporal_patch_size", 2);
  c.spatial_merge_size = f.integer("spatial_merge_size", 2);
  c.window_size = f.integer("window_size", 112);
  c.out_hidden_size = f.integer("out_hidden_size", 3584);
  for (auto [key, v] : {std::pair{"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
                        {"num_heads", c.num_attention_heads}, {"patch_size", c.patch_size},
                        {"temporal_patch_size", c.temporal_patch_size}, {"spatial_merge_size", c.spatial_merge_size},
                        {"window_size", c.window_size}, {"out_hidden_size", c.out_hidden_size}})
    require_positive(f, key, v);
  require_positive(f, "depth", c.num_hidden_layers, kMaxLayers);
  require_positive(f, "in_channels", c.num_channels, 64);
  if (c.hidden_size % c.num_attention_heads != 0)
    f.fail("hidden_size", "(", c.hidden_size, ") must be divisible by num_heads (", c.num_attention_heads, ")");
  if ((c.hidden_size / c.num_attention_heads) % 4 != 0)
    f.fail("hidden_size", "/ num_heads (", c.hidden_size / c.num_attention_heads,
           ") must be a multiple of 4 (the 2D RoPE rotates h and w in a quarter of the head each)");
  // get_vision_window_index: windows of window_size / spatial_merge_size / patch_size merged tokens a side.
  if (c.window_size / c.spatial_merge_size / c.patch_size < 1)
    f.fail("window_size", "(", c.window_size, ") must span at least one merged token (spatial_merge_size x patch_size = ",
           c.spatial_merge_size * c.patch_size, " pixels)");
  c.hidden_act = parse_activation(f, f.string("hidden_act", "silu"));
  if (c.hidden_act != Activation::Silu && c.hidden_act != Activation::GeluTanh && c.hidden_act != Activation::GeluErf)
    f.fail("hidden_act", "'", activation_name(c.hidden_act), "' is not supported for Qwen2.5-VL's tower (silu, gelu, gelu_pytorch_tanh)");
  c.tokens_per_second = f.number("tokens_per_second", 4);
  if (!std::isfinite(c.tokens_per_second) || c.tokens_per_second < 0)
    f.fail("tokens_per_second", "must be a finite number >= 0, got ", c.tokens_per_second);
  if (f.has("fullatt_block_indexes")) {
    const json& v = f.raw("fullatt_block_indexes");
    if (!v.is_array()) f.fail("fullatt_block_indexes", "must be a list of block indexes");
    for (const json& i : v) {
      if (!i.is_number_integer() || i.get<int64_t>() < 0 || i.get<int64_t>() >= c.num_hidden_layers)
        f.fail("fullatt_block_indexes", "must hold block indexes in [0, depth = ", c.num_hidden_layers, ")");
      c.fullatt_block_indexes.push_back(i.get<int64_t>());
    }
  } else {
    c.fullatt_block_indexes = {7, 15, 23, 31};
    std::erase_if(c.fullatt_block_indexes, [&](int64_t i) { return i >= c.num_hidden_layers; });
  }
  if (f.has("rope_parameters")) {
    const Fields rope = f.object("rope_parameters");
    if (const std::string type = rope.string("rope_type", "axial"); type != "axial")
      rope.fail("rope_type", "'", type, "' is not supported (Qwen2.5-VL's vision RoPE is axial)");
    c.rope_theta = rope.number("rope_theta", c.rope_theta);
  }
  require_positive_number(f, "rope_parameters.rope_theta", c.rope_theta);
  c.layers_in_checkpoint = c.num_hidden_layers;
  c.layer_norm_eps = 1e-6;  // Qwen2_5_VLVisionBlock's and the merger's RMSNorm
  return c;
}

// Qwen2_5_VLConfig (transformers' qwen2_5_vl): vision_config (qwen2_5_vl_vision) and the text config, nested
// (text_config, as transformers 5 writes it) or at the top level (the Hub's Qwen2.5-VL-*-Instruct configs), its
// rope_parameters (or rope_scaling) carrying mrope_section; the video and vision start ids.
void parse_qwen2_5_vl(const Fields& f, ModelConfig& config) {
  config.architecture = Architecture::Qwen2_5_VLForConditionalGeneration;
  const Fields vision = f.nested("vision_config");
  vision.require_model_type("qwen2_5_vl_vision", "Qwen2.5-VL's vision model is qwen2_5_vl_vision");
  config.vision = parse_qwen2_5_vl_vision(vision);
  const Fields text = f.has("text_config") ? f.object("text_config") : f;
  if (f.has("text_config")) text.require_model_type("qwen2_5_vl_text", "Qwen2.5-VL's language model is qwen2_5_vl_text");
  config.text = parse_decoder(text, Decoder::Qwen2_5_VL);
  config.text->tie_word_embeddings = f.boolean("tie_word_embeddings", config.text->tie_word_embeddings);
  const char* rope_key = text.has("rope_parameters") ? "rope_parameters" : text.has("rope_scaling") ? "rope_scaling" : nullptr;
  if (!rope_key) text.fail("rope_parameters", "is missing (Qwen2.5-VL's M-RoPE needs its mrope_section)");
  const Fields rope = text.object(rope_key);
  if (!rope.has("mrope_section") || !rope.raw("mrope_section").is_array() || rope.raw("mrope_section").size() != 3)
    rope.fail("mrope_section", "must be three section sizes (temporal, height, width)");
  int64_t total = 0;
  for (const json& v : rope.raw("mrope_section")) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0) rope.fail("mrope_section", "must hold integers >= 0");
    config.text->mrope_section.push_back(v.get<int64_t>());
    total += v.get<int64_t>();
  }
  if (total != config.text->head_dim / 2)
    rope.fail("mrope_section", "sums to ", total, "; it must be head_dim / 2 = ", config.text->head_dim / 2,
              " (one section per rotary frequency)");
  if (config.vision->out_hidden_size != config.text->hidden_size)
    vision.fail("out_hidden_size", "(", config.vision->out_hidden_size, ") must equal the language model's hidden_size (",
                config.text->hidden_size, ")");
  MultimodalConfig m;
  m.mm_hidden_size = config.vision->hidden_size;
  m.merge_size = config.vision->spatial_merge_size;
  m.image_token_index = -200;  // tpo's placeholder
  m.video_token_index = f.integer("video_token_id", 151656);
  f.integer("image_token_id", 151655);  // a type check only: tpo encodes videos, not images
  if (m.video_token_index < 0 || m.video_token_index >= config.text->vocab_size)
    f.fail("video_token_id", "(", m.video_token_index, ") is outside the vocabulary [0, ", config.text->vocab_size, ")");
  config.mm = m;
}
}  // namespace

ModelConfig parse_config(const std::string& text, const std::string& source) {
  const json root = io::parse_json(text, source);
  if (!root.is_object()) throw std::invalid_argument(source + ": not a JSON object");
  const Fields f(root, source);
  ModelConfig config;
  config.json = text;
  config.model_type = f.string("model_type", "");
  const std::string& type = config.model_type;
  if (type == "qwen2") {
    config.architecture = Architecture::Qwen2ForCausalLM;
    config.text = parse_decoder(f, Decoder::Qwen2);
  } else if (type == "llama") {
    config.architecture = Architecture::LlamaForCausalLM;
    config.text = parse_decoder(f, Decoder::Llama);
  } else if (type == "siglip_vision_model" || type == "clip_vision_model") {
    config.architecture = Architecture::VisionModel;
    config.vision = parse_vision(f);
  } else if (type == "video_llava") {
    parse_video_llava(f, config);
  } else if (type == "video_llama_3") {
    parse_video_llama3(f, config);
  } else if (type == "internvl") {
    parse_internvl(f, config);
  } else if (type == "qwen2_5_vl") {
    parse_qwen2_5_vl(f, config);
  } else if (type == "qwen2_vl") {
    f.fail("model_type", "'qwen2_vl' (Qwen2-VL) is not supported: tpo runs Qwen2.5-VL (qwen2_5_vl), whose tower "
                         "attends in windows and whose M-RoPE scales time by second_per_grid_ts");
  } else if (type == "internvl_chat") {
    f.fail("model_type", "'internvl_chat' (OpenGVLab's remote-code InternVLChatModel) is not supported: tpo loads "
                         "transformers' internvl checkpoints (the -hf conversions, e.g. OpenGVLab/InternVL3-1B-hf)");
  } else if (type == "llava" && f.has("mm_video_tower")) {
    parse_video_llava_original(f, config);
  } else if (type == "llava_qwen" || type == "llava") {
    config.architecture = Architecture::LlavaQwenForCausalLM;
    config.text = parse_decoder(f, Decoder::Qwen2);
    config.mm = parse_mm(f);
    if (f.has("vision_config")) {
      config.vision = parse_vision(f.object("vision_config"));
    } else {
      config.vision = known_tower(f.string("mm_vision_tower", ""));
      if (!config.vision)
        f.fail("vision_config", "is missing, and mm_vision_tower names no tower tpo knows the shape of");
    }
    check_mm(f, *config.mm, *config.vision, *config.text);
  } else {
    f.fail("model_type", "'", type, "' is not an architecture tpo knows (qwen2, llama, llava_qwen, video_llava, video_llama_3, "
                                    "internvl, qwen2_5_vl, siglip_vision_model, clip_vision_model)");
  }
  return config;
}

ModelConfig load_config(const std::string& path) {
  const std::string file = io::path_kind(path) == io::PathKind::Directory ? path + "/config.json" : path;
  return parse_config(io::read_text_file(file), file);
}

}  // namespace tpo::model
