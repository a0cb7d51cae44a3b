// LoRA (Hu et al. 2021) as PEFT implements it: y = W x + b + (alpha / r) * B A dropout(x), with A initialised
// Kaiming-uniform and B zero (so a fresh adapter changes nothing). Adapters live inside the linear layers they
// adapt, so parameter names are PEFT's (`...q_proj.lora_A.weight`), and can be switched off (the DPO reference),
// merged into W, and saved / loaded in PEFT's layout (adapter_config.json + adapter_model.safetensors).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace tpo::model {

struct LoraConfig {
  int64_t r = 8;
  double alpha = 16;
  double dropout = 0;
  std::vector<std::string> target_modules{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
};

// Whether adapters run on this thread. A per-call setting rather than state on the module: calls running at once
// on one model (a user's setLoraEnabled, the LoRA-disabled reference pass of a training step) each see one
// setting from start to end, never a mix of layers switched on and off by another thread.
class LoraScope {
 public:
  explicit LoraScope(bool enabled);
  ~LoraScope();
  LoraScope(const LoraScope&) = delete;
  LoraScope& operator=(const LoraScope&) = delete;

 private:
  bool previous_;
};
bool lora_enabled_on_this_thread();

// A linear layer (the same parameters as torch::nn::Linear: weight, bias) that can carry a LoRA adapter.
class LoraLinearImpl : public torch::nn::Module {
 public:
  LoraLinearImpl(int64_t in, int64_t out, bool bias);
  torch::Tensor forward(const torch::Tensor& x);

  void add_adapter(const LoraConfig& config, uint64_t seed);
  bool has_adapter() const { return static_cast<bool>(lora_A); }
  // Per layer, for code that owns the module alone; concurrent callers use a LoraScope.
  void set_adapter_enabled(bool enabled) { enabled_ = enabled; }
  void merge_adapter();  // W += scaling * B A, then the adapter is gone

  torch::Tensor weight, bias;
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};

 private:
  double scaling_ = 0, dropout_ = 0;
  bool enabled_ = true;
};
TORCH_MODULE(LoraLinear);

// Every LoraLinear of `module` whose own name (the last path component) is in config.target_modules, with the
// path of each ("model.layers.0.self_attn.q_proj").
std::vector<std::pair<std::string, std::shared_ptr<LoraLinearImpl>>> lora_targets(torch::nn::Module& module,
                                                                                  const std::vector<std::string>& names);

// Adds adapters to the targets; returns how many. Seeded, so two runs start from the same adapter.
int64_t add_lora(torch::nn::Module& module, const LoraConfig& config, uint64_t seed);
void set_lora_enabled(torch::nn::Module& module, bool enabled);
int64_t merge_lora(torch::nn::Module& module);

// PEFT layout: adapter_config.json and adapter_model.safetensors with keys "base_model.model.<name>". `names` maps a
// module's own name to the one PEFT gives it on the transformers model (identity: the module's name); loading
// takes a key under any of `candidates`' names, and a key the model has no place for is an error.
using ModuleNames = std::function<std::string(const std::string&)>;
void save_lora(torch::nn::Module& module, const LoraConfig& config, const std::string& dir, const ModuleNames& names = {});
LoraConfig load_lora(torch::nn::Module& module, const std::string& dir, const std::vector<ModuleNames>& candidates = {});

}  // namespace tpo::model
