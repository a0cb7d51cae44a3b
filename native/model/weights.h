// Checkpoint weights in and out of a module: the key layouts the field uses, loading straight into the parameters
// (read, or memory-mapped without a copy), and errors that name every missing, unexpected, mis-shaped or
// non-floating key before any weight is read, and any weight holding NaN or infinity.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"

namespace tpo::model {

// Module names are LLaVA-NeXT's (and plain HF's for Qwen2 / vision models); other layouts are prefix renames.
enum class KeyLayout {
  Native,            // LLaVA-NeXT original (model.mm_projector.0, model.vision_tower.vision_tower.vision_model),
                     // Qwen2ForCausalLM, SiglipVisionModel, CLIPVisionModel
  HfLlava,           // transformers >= 4.52 LLaVA-OneVision style (model.language_model, model.multi_modal_projector)
  HfLlavaLegacy,     // older transformers (language_model.model, multi_modal_projector, vision_tower.vision_model)
};
const char* layout_name(KeyLayout layout);

struct LoadOptions {
  std::optional<torch::ScalarType> dtype;  // convert floating-point weights; none: keep the checkpoint's
  bool tied_embeddings = false;            // a stored lm_head.weight is then ignored, as transformers does
};

struct LoadReport {
  KeyLayout layout = KeyLayout::Native;
  std::vector<std::string> ignored;  // keys the model does not use (SigLIP's pooling head, old buffers)
  int64_t zero_copy = 0;             // tensors used straight from the file mapping (LoadMode::Map)
  int64_t converted = 0;             // tensors converted to `dtype`
  torch::ScalarType dtype = torch::kFloat32;  // every weight's, after loading
};

LoadReport load_weights(torch::nn::Module& module, const io::SafetensorsCheckpoint& checkpoint, const LoadOptions& options);

// The module's parameters under the layout's key names.
io::NamedTensors state_dict(torch::nn::Module& module, KeyLayout layout);

std::string layout_key(const std::string& native_name, KeyLayout layout);

// The names PEFT gives modules on transformers' model of an architecture, for adapter files: Video-LLaVA's are
// transformers 5's (model.language_model.layers.*); the others keep tpo's module names (an empty function).
std::function<std::string(const std::string&)> peft_module_names(Architecture architecture);
// Every name an adapter file may use for a module: transformers 5's and 4's.
std::vector<std::function<std::string(const std::string&)>> peft_module_name_candidates();

}  // namespace tpo::model
