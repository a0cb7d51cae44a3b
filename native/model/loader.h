// A model folder (config.json + safetensors, single or sharded) to a ready module, and back.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/lora.h"
#include "model/video_lm.h"
#include "model/vision.h"
#include "model/weights.h"

namespace tpo::model {

struct LoadedModel {
  std::string source;  // the folder it was loaded from (named by errors about its numbers)
  ModelConfig config;
  std::shared_ptr<VideoLMImpl> lm;         // Qwen2ForCausalLM or LlavaQwenForCausalLM
  std::shared_ptr<VisionModelImpl> vision;  // SiglipVisionModel / CLIPVisionModel alone
  LoadReport report;
  std::optional<LoraConfig> lora;  // the attached adapter's settings, if any
  // With ModelLoadOptions::mmap, the files its weights are views of: check_mapped_files() before each use.
  std::vector<std::shared_ptr<io::SafetensorsFile>> mapped_files;
  torch::nn::Module& module() { return lm ? static_cast<torch::nn::Module&>(*lm) : *vision; }
  // Throws when a memory-mapped weight file changed on disk since loading (io::SafetensorsFile::check_unchanged).
  void check_mapped_files() const {
    for (const auto& f : mapped_files) f->check_unchanged();
  }
};

struct ModelLoadOptions {
  std::optional<torch::ScalarType> dtype;
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"; CUDA needs an addon built against CUDA libtorch
  std::string overrides_json;  // a JSON object merged over config.json's top level (as lmms-eval overrides mm_*)
  // Weights as views of the files' mappings (io::LoadMode::Map) instead of read into private memory: shared page
  // cache (several processes on one machine), but the files must not be truncated or rewritten while loaded.
  bool mmap = false;
};

LoadedModel load_model(const std::string& dir, const ModelLoadOptions& options);

// A model with fresh random weights from a config.json text, as transformers' _init_weights makes them
// (normal(0, initializer_range) for linear and embedding weights, zero biases, unit norms), from `seed`.
LoadedModel create_model(const std::string& config_json, uint64_t seed, std::optional<torch::ScalarType> dtype,
                         const std::string& device = "cpu");

// The device a model runs on; a clear error when CUDA is asked of a CPU build or a machine without a GPU.
torch::Device resolve_device(const std::string& name);

// Writes config.json and the weights (sharded past max_shard_bytes) into `dir`, in `layout`'s key names.
std::vector<std::string> save_model(LoadedModel& model, const std::string& dir, KeyLayout layout, uint64_t max_shard_bytes);

}  // namespace tpo::model
