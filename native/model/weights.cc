#include "model/weights.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>

namespace tpo::model {
namespace {

struct Rename {
  const char* native;
  const char* stored;
};

// Most specific first. Keys that match no rule keep their name.
const std::vector<Rename>& renames(KeyLayout layout) {
  static const std::vector<Rename> none;
  static const std::vector<Rename> hf = {
      {"model.vision_tower.vision_tower.vision_model.", "model.vision_tower.vision_model."},
      {"model.mm_projector.0.", "model.multi_modal_projector.linear_1."},
      {"model.mm_projector.2.", "model.multi_modal_projector.linear_2."},
      {"model.image_newline", "model.image_newline"},
      {"model.", "model.language_model."},
  };
  static const std::vector<Rename> legacy = {
      {"model.vision_tower.vision_tower.vision_model.", "vision_tower.vision_model."},
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

LoadReport load_weights(torch::nn::Module& module, const io::SafetensorsCheckpoint& checkpoint, const LoadOptions& options) {
  LoadReport report;
  report.layout = detect_layout(checkpoint.keys());
  std::map<std::string, std::string> stored_for;  // native name -> checkpoint key
  std::vector<std::string> unexpected, missing, mismatched;
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
  for (const auto& item : params) {
    const auto found = stored_for.find(item.key());
    if (found == stored_for.end()) {
      missing.push_back(layout_key(item.key(), report.layout) + " " + c10::str(item.value().sizes()));
      continue;
    }
    const auto& entry = checkpoint.entry(found->second);
    if (c10::IntArrayRef(entry.shape) != item.value().sizes())
      mismatched.push_back(found->second + ": checkpoint " + c10::str(c10::IntArrayRef(entry.shape)) + ", model " + c10::str(item.value().sizes()));
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string message = checkpoint.path() + " does not fit this model (" + layout_name(report.layout) + " layout):";
    if (!missing.empty()) message += "\n" + std::to_string(missing.size()) + " missing key(s):" + listing(missing);
    if (!unexpected.empty()) message += "\n" + std::to_string(unexpected.size()) + " unexpected key(s):" + listing(unexpected);
    if (!mismatched.empty()) message += "\n" + std::to_string(mismatched.size()) + " shape mismatch(es):" + listing(mismatched);
    throw std::invalid_argument(message);
  }
  torch::NoGradGuard no_grad;
  for (auto& item : params) {
    torch::Tensor stored = checkpoint.tensor(stored_for.at(item.key()));
    const auto dtype = options.dtype && stored.is_floating_point() ? *options.dtype : stored.scalar_type();
    if (stored.scalar_type() == dtype) {
      ++report.zero_copy;  // a copy-on-write view of the file mapping: no second copy of the weights
    } else {
      stored = stored.to(dtype);
      ++report.converted;
    }
    item.value().set_data(stored);
  }
  return report;
}

io::NamedTensors state_dict(torch::nn::Module& module, KeyLayout layout) {
  io::NamedTensors out;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    if (item.key().find(".lora_") == std::string::npos) out.emplace_back(layout_key(item.key(), layout), item.value());
  return out;
}

}  // namespace tpo::model
