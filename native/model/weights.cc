#include "model/weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>

#include "model/parameters.h"
#include "runtime/errors.h"
#include "runtime/memory.h"

namespace tpo::model {
namespace {

struct Rename {
  const char* native;
  const char* stored;
};

// Most specific first. Keys that match no rule keep their name.
const std::vector<Rename>& renames(KeyLayout layout) {
  static const std::vector<Rename> none;
  // Video-LLaVA's towers: transformers 5's modules hold CLIP's vision transformer straight under the tower's
  // name, and its save_pretrained writes it so (beside language_model.model.*: the legacy layout); transformers 4
  // (the Hub's Video-LLaVA-7B-hf) under vision_model.
  static const std::vector<Rename> hf = {
      // Qwen2.5-VL's tower and merger: tpo's (and save_pretrained's) visual.* beside model.language_model.
      {"visual.", "model.visual."},
      {"model.vision_tower.vision_tower.vision_model.", "model.vision_tower.vision_model."},
      {"model.video_tower.video_tower.", "model.video_tower."},
      {"model.image_tower.image_tower.", "model.image_tower."},
      {"model.mm_projector.0.", "model.multi_modal_projector.linear_1."},
      {"model.mm_projector.2.", "model.multi_modal_projector.linear_2."},
      {"model.image_newline", "model.image_newline"},
      // InternVL's tower keeps its name; its projector is tpo's mm_projector (model/internvl.h), LayerNorm first.
      {"model.mm_projector.layer_norm.", "model.multi_modal_projector.layer_norm."},
      {"model.vision_tower.", "model.vision_tower."},
      // VideoLLaMA3's vision model and projector keep their names beside model.language_model.
      {"model.vision_model.", "model.vision_model."},
      {"model.projector.", "model.projector."},
      {"model.", "model.language_model."},
  };
  static const std::vector<Rename> legacy = {
      {"model.vision_tower.vision_tower.vision_model.", "vision_tower.vision_model."},
      {"model.video_tower.video_tower.", "video_tower.vision_model."},
      {"model.image_tower.image_tower.", "image_tower.vision_model."},
      {"model.video_tower.video_tower.", "video_tower."},  // (read only: transformers 5's save_pretrained)
      {"model.image_tower.image_tower.", "image_tower."},
      // InternVL's (transformers 5's save_pretrained writes it so: vision_tower.*, multi_modal_projector.*)
      {"model.mm_projector.layer_norm.", "multi_modal_projector.layer_norm."},
      {"model.vision_tower.", "vision_tower."},
      {"model.mm_projector.0.", "multi_modal_projector.linear_1."},
      {"model.mm_projector.2.", "multi_modal_projector.linear_2."},
      {"model.image_newline", "image_newline"},
      {"model.", "language_model.model."},
      {"lm_head.", "language_model.lm_head."},
  };
  switch (layout) {
    case KeyLayout::Native: return none;
    case KeyLayout::HfLlava: return hf;
    case KeyLayout::HfLlavaLegacy: return legacy;
  }
  return none;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::optional<std::string> native_key(const std::string& stored, KeyLayout layout) {
  for (const Rename& r : renames(layout))
    if (starts_with(stored, r.stored)) return std::string(r.native) + stored.substr(std::strlen(r.stored));
  return stored;
}

KeyLayout detect_layout(const std::vector<std::string>& keys) {
  for (const auto& k : keys) {
    if (starts_with(k, "model.language_model.")) return KeyLayout::HfLlava;
    if (starts_with(k, "language_model.")) return KeyLayout::HfLlavaLegacy;
  }
  return KeyLayout::Native;
}

// Keys checkpoints carry that no tpo module uses: SigLIP's attention-pooling head (LLaVA never uses it), position
// id and rotary buffers that older transformers saved.
bool ignorable(const std::string& key) {
  return key.find("vision_model.head.") != std::string::npos || key.find("embeddings.position_ids") != std::string::npos ||
         key.find("rotary_emb.inv_freq") != std::string::npos;
}

std::string listing(const std::vector<std::string>& items, size_t shown = 8) {
  std::string out;
  for (size_t i = 0; i < std::min(items.size(), shown); ++i) out += "\n  " + items[i];
  if (items.size() > shown) out += "\n  ... and " + std::to_string(items.size() - shown) + " more";
  return out;
}

}  // namespace

const char* layout_name(KeyLayout layout) {
  switch (layout) {
    case KeyLayout::Native: return "llava-next";
    case KeyLayout::HfLlava: return "hf";
    case KeyLayout::HfLlavaLegacy: return "hf-legacy";
  }
  return "?";
}

std::string layout_key(const std::string& native_name, KeyLayout layout) {
  for (const Rename& r : renames(layout))
    if (starts_with(native_name, r.native)) return std::string(r.stored) + native_name.substr(std::strlen(r.native));
  return native_name;
}

namespace {

std::string shape_text(c10::IntArrayRef shape) { return c10::str(shape); }

// What the module's parameters become: the dtype asked for, else the checkpoint's, else (mixed) the one holding
// most elements; a model in two dtypes would fail at its first matmul, naming no tensor.
torch::ScalarType choose_dtype(const std::vector<const io::TensorEntry*>& entries, const LoadOptions& options) {
  if (options.dtype) return *options.dtype;
  std::map<torch::ScalarType, int64_t> elements;
  for (const auto* e : entries) {
    int64_t n = 1;
    for (const int64_t d : e->shape) n *= d;
    elements[e->dtype] += n;
  }
  torch::ScalarType best = torch::kFloat32;
  int64_t most = -1;
  for (const auto& [dtype, n] : elements)
    if (n > most) std::tie(best, most) = std::pair{dtype, n};
  return best;
}

// Whether every element is finite, in one pass with no temporary of the tensor's size (isfinite would make one of
// bools, a float64 sum one of doubles): min and max propagate NaN, and an infinity is one of them.
bool all_finite(const torch::Tensor& t) {
  if (t.numel() == 0) return true;
  const auto [lo, hi] = torch::aminmax(t.reshape({-1}));
  return std::isfinite(lo.item<double>()) && std::isfinite(hi.item<double>());
}

// The flat index of the first non-finite element, for the message (only called when there is one).
int64_t first_non_finite(const torch::Tensor& t) {
  const auto flat = t.reshape({-1});
  constexpr int64_t kChunk = int64_t{1} << 22;
  for (int64_t begin = 0; begin < flat.numel(); begin += kChunk) {
    const auto bad = torch::isfinite(flat.narrow(0, begin, std::min(kChunk, flat.numel() - begin))).logical_not().nonzero();
    if (bad.numel() > 0) return begin + bad[0][0].item<int64_t>();
  }
  return -1;
}

}  // namespace

LoadReport load_weights(torch::nn::Module& module, const io::SafetensorsCheckpoint& checkpoint, const LoadOptions& options) {
  LoadReport report;
  report.layout = detect_layout(checkpoint.keys());
  std::map<std::string, std::string> stored_for;  // native name -> checkpoint key
  std::vector<std::string> unexpected, missing, mismatched, not_float;
  // LoRA adapters are not part of a base checkpoint (they load from a PEFT folder).
  torch::OrderedDict<std::string, torch::Tensor> params;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    if (item.key().find(".lora_") == std::string::npos) params.insert(item.key(), item.value());
  for (const std::string& key : checkpoint.keys()) {
    const std::string name = *native_key(key, report.layout);
    if (params.contains(name)) {
      stored_for[name] = key;
    } else if (ignorable(key) || (options.tied_embeddings && name == "lm_head.weight") || name == "model.image_newline") {
      // (a newline embedding the config's merge type does not use, as when lmms-eval switches to `flat`)
      report.ignored.push_back(key);
    } else {
      unexpected.push_back(key);
    }
  }
  // Every check against the header, before any tensor is read: names, shapes, dtypes.
  std::vector<const io::TensorEntry*> entries;
  for (const auto& item : params) {
    const auto found = stored_for.find(item.key());
    if (found == stored_for.end()) {
      std::string line = layout_key(item.key(), report.layout);
      line += ' ';
      line += shape_text(item.value().sizes());
      missing.push_back(std::move(line));
      continue;
    }
    const io::TensorEntry& entry = checkpoint.entry(found->second);
    entries.push_back(&entry);
    if (c10::IntArrayRef(entry.shape) != item.value().sizes()) {
      std::string line = found->second;
      line += ": checkpoint ";
      line += shape_text(entry.shape);
      line += ", model ";
      line += shape_text(item.value().sizes());
      mismatched.push_back(std::move(line));
    }
    if (!c10::isFloatingType(entry.dtype)) {
      std::string line = found->second;
      line += " is ";
      line += entry.dtype_name;
      not_float.push_back(std::move(line));
    }
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty() || !not_float.empty()) {
    std::string message = checkpoint.path();
    message += " does not fit this model (";
    message += layout_name(report.layout);
    message += " layout):";
    const auto section = [&](const std::vector<std::string>& items, const char* what) {
      if (items.empty()) return;
      message += '\n';
      message += std::to_string(items.size());
      message += what;
      message += listing(items);
    };
    section(missing, " missing key(s):");
    section(unexpected, " unexpected key(s):");
    if (std::any_of(unexpected.begin(), unexpected.end(), [](const std::string& k) { return k.find(".temporal_") != std::string::npos; }))
      message += "\n(LanguageBind's temporal attention in the original Video-LLaVA video tower: transformers' "
                 "VideoLlavaForConditionalGeneration, which tpo follows, has none, and its conversion script drops "
                 "these weights; tpo will not run the tower without them as if it were the same model)";
    section(mismatched, " shape mismatch(es):");
    section(not_float, " weight(s) not floating point:");
    throw std::invalid_argument(message);
  }
  const torch::ScalarType dtype = choose_dtype(entries, options);
  if (!c10::isFloatingType(dtype))
    throw std::invalid_argument(std::string("load: dtype ") + c10::toString(dtype) + " is not a floating-point type");
  report.dtype = dtype;
  uint64_t bytes = 0;
  for (const auto* e : entries) {
    uint64_t n = 1;
    for (const int64_t d : e->shape) n *= static_cast<uint64_t>(d);
    // (memory-mapped tensors kept in their dtype take no memory of their own)
    if (checkpoint.mode() == io::LoadMode::Read || e->dtype != dtype) bytes += n * c10::elementSize(dtype);
  }
  runtime::check_allocation(bytes, checkpoint.path() + ": the weights as " + c10::toString(dtype));

  torch::NoGradGuard no_grad;
  for (auto& item : params) {
    const std::string& key = stored_for.at(item.key());
    const io::TensorEntry& entry = checkpoint.entry(key);
    torch::Tensor stored;
    if (checkpoint.mode() == io::LoadMode::Map) {
      stored = checkpoint.tensor(key);  // a copy-on-write view of the file mapping: no second copy
    } else {
      stored = torch::empty(entry.shape, torch::TensorOptions().dtype(entry.dtype));
      checkpoint.read_into(key, stored);
    }
    if (stored.scalar_type() != dtype) {
      stored = stored.to(dtype);
      ++report.converted;
    } else if (checkpoint.mode() == io::LoadMode::Map) {
      ++report.zero_copy;
    }
    // NaN or infinite weights would give NaN scores that compare as neither better nor worse: fail here, by name.
    if (!all_finite(stored))
      throw NonFiniteError(checkpoint.file_of(key) + ": tensor '" + key + "' holds NaN or infinite values (the first at flat index " +
                           std::to_string(first_non_finite(stored)) + ")");
    item.value().set_data(stored);
  }
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    if (is_placeholder(item.value()))
      throw std::logic_error("load: parameter " + item.key() + " was never given a value");
  return report;
}

std::function<std::string(const std::string&)> peft_module_names(Architecture architecture) {
  if (architecture != Architecture::VideoLlavaForConditionalGeneration &&
      architecture != Architecture::VideoLlama3ForConditionalGeneration &&
      architecture != Architecture::InternVLForConditionalGeneration &&
      architecture != Architecture::Qwen2_5_VLForConditionalGeneration)
    return {};
  return [](const std::string& name) { return layout_key(name, KeyLayout::HfLlava); };
}

std::vector<std::function<std::string(const std::string&)>> peft_module_name_candidates() {
  return {[](const std::string& name) { return layout_key(name, KeyLayout::HfLlava); },
          [](const std::string& name) { return layout_key(name, KeyLayout::HfLlavaLegacy); }};
}

io::NamedTensors state_dict(torch::nn::Module& module, KeyLayout layout) {
  io::NamedTensors out;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    if (item.key().find(".lora_") == std::string::npos) out.emplace_back(layout_key(item.key(), layout), item.value());
  return out;
}

}  // namespace tpo::model
