#include "model/config.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

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
  Fields object(const char* key) const {
    if (!has(key) || !object_.at(key).is_object()) fail(key, "must be an object");
    return Fields(object_.at(key), source_, prefix_ + key + ".");
  }
  [[noreturn]] void fail(const char* key, const std::string& why) const {
    throw std::invalid_argument(source_ + ": " + prefix_ + key + " " + why);
  }
  const std::string& source() const { return source_; }

 private:
  const json& object_;
  std::string source_;
  std::string prefix_;
};

void require_positive(const Fields& f, const char* key, int64_t value) {
  if (value < 1) f.fail(key, "must be positive");
}

Qwen2Config parse_qwen2(const Fields& f) {
  Qwen2Config c;
  c.vocab_size = f.integer("vocab_size");
  c.hidden_size = f.integer("hidden_size");
  c.intermediate_size = f.integer("intermediate_size");
  c.num_hidden_layers = f.integer("num_hidden_layers");
  c.num_attention_heads = f.integer("num_attention_heads");
  c.num_key_value_heads = f.integer("num_key_value_heads", c.num_attention_heads);
  for (auto [key, v] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                        {"intermediate_size", c.intermediate_size}, {"num_hidden_layers", c.num_hidden_layers},
                        {"num_attention_heads", c.num_attention_heads}, {"num_key_value_heads", c.num_key_value_heads}})
    require_positive(f, key, v);
  c.head_dim = f.integer("head_dim", c.hidden_size / c.num_attention_heads);
  if (!f.has("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    f.fail("hidden_size", "must be divisible by num_attention_heads");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail("num_attention_heads", "must be a multiple of num_key_value_heads");
  c.max_position_embeddings = f.integer("max_position_embeddings", c.max_position_embeddings);
  c.rope_theta = f.number("rope_theta", c.rope_theta);
  c.rms_norm_eps = f.number("rms_norm_eps", c.rms_norm_eps);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  if (f.has("rope_scaling")) f.fail("rope_scaling", "is not supported yet (only plain RoPE)");
  c.bos_token_id = f.token_id("bos_token_id");
  c.eos_token_id = f.token_id("eos_token_id");
  c.pad_token_id = f.token_id("pad_token_id");
  return c;
}

Activation parse_activation(const Fields& f, const std::string& name) {
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::GeluTanh;
  if (name == "gelu") return Activation::GeluErf;
  if (name == "quick_gelu") return Activation::QuickGelu;
  f.fail("hidden_act", "'" + name + "' is not supported (gelu_pytorch_tanh, gelu, quick_gelu)");
}

VisionConfig parse_vision(const Fields& f) {
  VisionConfig c;
  const std::string type = f.string("model_type", "");
  if (type == "siglip_vision_model") c.kind = VisionKind::Siglip;
  else if (type == "clip_vision_model") c.kind = VisionKind::Clip;
  else f.fail("model_type", "'" + type + "' is not a vision tower tpo knows (siglip_vision_model, clip_vision_model)");
  c.image_size = f.integer("image_size");
  c.patch_size = f.integer("patch_size");
  c.hidden_size = f.integer("hidden_size");
  c.intermediate_size = f.integer("intermediate_size");
  c.num_hidden_layers = f.integer("num_hidden_layers");
  c.num_attention_heads = f.integer("num_attention_heads");
  for (auto [key, v] : {std::pair{"image_size", c.image_size}, {"patch_size", c.patch_size},
                        {"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
                        {"num_hidden_layers", c.num_hidden_layers}, {"num_attention_heads", c.num_attention_heads}})
    require_positive(f, key, v);
  if (c.hidden_size % c.num_attention_heads != 0) f.fail("hidden_size", "must be divisible by num_attention_heads");
  c.num_channels = f.integer("num_channels", 3);
  c.layer_norm_eps = f.number("layer_norm_eps", c.kind == VisionKind::Clip ? 1e-5 : 1e-6);
  c.hidden_act = parse_activation(f, f.string("hidden_act", c.kind == VisionKind::Clip ? "quick_gelu" : "gelu_pytorch_tanh"));
  c.layers_in_checkpoint = f.integer("num_hidden_layers_in_checkpoint", c.num_hidden_layers);
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
    f.fail("mm_projector_type", "'" + m.projector_type + "' is not supported (mlp2x_gelu, linear)");
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

}  // namespace

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::GeluTanh: return "gelu_pytorch_tanh";
    case Activation::GeluErf: return "gelu";
    case Activation::QuickGelu: return "quick_gelu";
  }
  return "?";
}

ModelConfig parse_config(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw std::invalid_argument(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) throw std::invalid_argument(source + ": not a JSON object");
  const Fields f(root, source);
  ModelConfig config;
  config.json = text;
  config.model_type = f.string("model_type", "");
  const std::string& type = config.model_type;
  if (type == "qwen2") {
    config.architecture = Architecture::Qwen2ForCausalLM;
    config.text = parse_qwen2(f);
  } else if (type == "siglip_vision_model" || type == "clip_vision_model") {
    config.architecture = Architecture::VisionModel;
    config.vision = parse_vision(f);
  } else if (type == "llava_qwen" || type == "llava") {
    config.architecture = Architecture::LlavaQwenForCausalLM;
    config.text = parse_qwen2(f);
    config.mm = parse_mm(f);
    if (f.has("vision_config")) {
      config.vision = parse_vision(f.object("vision_config"));
    } else {
      config.vision = known_tower(f.string("mm_vision_tower", ""));
      if (!config.vision)
        f.fail("vision_config", "is missing, and mm_vision_tower names no tower tpo knows the shape of");
    }
    if (config.mm->mm_hidden_size != 0 && config.mm->mm_hidden_size != config.vision->hidden_size)
      f.fail("mm_hidden_size", "(" + std::to_string(config.mm->mm_hidden_size) + ") differs from the vision tower's hidden_size (" +
                                   std::to_string(config.vision->hidden_size) + ")");
  } else {
    f.fail("model_type", "'" + type + "' is not an architecture tpo knows (qwen2, llava_qwen, siglip_vision_model, clip_vision_model)");
  }
  return config;
}

ModelConfig load_config(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::invalid_argument(file + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), file);
}

}  // namespace tpo::model
