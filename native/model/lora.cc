#include "model/lora.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/linear.h"

namespace tpo::model {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPeftPrefix = "base_model.model.";

std::string last_component(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

}  // namespace

LoraLinearImpl::LoraLinearImpl(int64_t in, int64_t out, bool with_bias) {
  // torch::nn::Linear's initialisation; loading a checkpoint replaces it.
  weight = register_parameter("weight", torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    bias = register_parameter("bias", torch::empty({out}).uniform_(-bound, bound));
  }
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  auto y = linear(x, weight, bias);
  if (lora_A && enabled_) {
    auto h = dropout_ > 0 && is_training() ? torch::dropout(x, dropout_, true) : x;
    y = y + lora_B(lora_A(h.to(lora_A->weight.scalar_type()))).to(y.scalar_type()) * scaling_;
  }
  return y;
}

void LoraLinearImpl::add_adapter(const LoraConfig& config, uint64_t seed) {
  if (lora_A) throw std::invalid_argument("a LoRA adapter is already attached");
  if (config.r < 1) throw std::invalid_argument("LoRA r must be >= 1");
  const int64_t in = weight.size(1), out = weight.size(0);
  lora_A = register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(in, config.r).bias(false)));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(config.r, out).bias(false)));
  {
    // PEFT's init_lora_weights=True: A Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)), from
    // our own generator so the global RNG is left alone; B zero.
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    lora_A->weight.uniform_(-bound, bound, gen);
    lora_B->weight.zero_();
  }
  lora_A->weight.set_data(lora_A->weight.to(weight.device()));
  lora_B->weight.set_data(lora_B->weight.to(weight.device()));
  scaling_ = config.alpha / static_cast<double>(config.r);
  dropout_ = config.dropout;
  enabled_ = true;
}

void LoraLinearImpl::merge_adapter() {
  if (!lora_A) return;
  torch::NoGradGuard no_grad;
  weight.add_((lora_B->weight.matmul(lora_A->weight) * scaling_).to(weight.scalar_type()));
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A = nullptr;
  lora_B = nullptr;
}

std::vector<std::pair<std::string, std::shared_ptr<LoraLinearImpl>>> lora_targets(torch::nn::Module& module,
                                                                                  const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, std::shared_ptr<LoraLinearImpl>>> out;
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    auto linear = std::dynamic_pointer_cast<LoraLinearImpl>(item.value());
    if (!linear) continue;
    const std::string own = last_component(item.key());
    if (std::find(names.begin(), names.end(), own) != names.end()) out.emplace_back(item.key(), linear);
  }
  return out;
}

int64_t add_lora(torch::nn::Module& module, const LoraConfig& config, uint64_t seed) {
  auto targets = lora_targets(module, config.target_modules);
  if (targets.empty()) throw std::invalid_argument("LoRA: no layer matches target_modules");
  for (size_t i = 0; i < targets.size(); ++i) targets[i].second->add_adapter(config, seed + i);
  return static_cast<int64_t>(targets.size());
}

void set_lora_enabled(torch::nn::Module& module, bool enabled) {
  for (const auto& m : module.modules())
    if (auto linear = std::dynamic_pointer_cast<LoraLinearImpl>(m)) linear->set_adapter_enabled(enabled);
}

int64_t merge_lora(torch::nn::Module& module) {
  int64_t merged = 0;
  for (const auto& m : module.modules())
    if (auto linear = std::dynamic_pointer_cast<LoraLinearImpl>(m); linear && linear->has_adapter()) {
      linear->merge_adapter();
      ++merged;
    }
  return merged;
}

void save_lora(torch::nn::Module& module, const LoraConfig& config, const std::string& dir) {
  io::NamedTensors tensors;
  for (const auto& item : module.named_parameters(true))
    if (item.key().find(".lora_") != std::string::npos) tensors.emplace_back(kPeftPrefix + item.key(), item.value());
  if (tensors.empty()) throw std::invalid_argument("the model has no LoRA adapter to save");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::invalid_argument(dir + ": cannot create folder: " + ec.message());
  io::write_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  nlohmann::json cfg = {{"peft_type", "LORA"},          {"task_type", "CAUSAL_LM"},   {"r", config.r},
                        {"lora_alpha", config.alpha},    {"lora_dropout", config.dropout},
                        {"target_modules", config.target_modules}, {"bias", "none"}, {"inference_mode", true},
                        {"base_model_name_or_path", nullptr}};
  const std::string text = cfg.dump(2) + "\n";
  io::AtomicFile out((fs::path(dir) / "adapter_config.json").string());
  out.write(text.data(), text.size());
  out.commit();
}

LoraConfig load_lora(torch::nn::Module& module, const std::string& dir) {
  const std::string config_file = (fs::path(dir) / "adapter_config.json").string();
  std::ifstream in(config_file);
  if (!in) throw std::invalid_argument(config_file + ": cannot open");
  nlohmann::json cfg = nlohmann::json::parse(in, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument(config_file + ": not a JSON object");
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!cfg.contains(key)) throw std::invalid_argument(config_file + ": " + key + " is missing");
    return cfg.at(key);
  };
  if (cfg.value("peft_type", "LORA") != "LORA") throw std::invalid_argument(config_file + ": peft_type is not LORA");
  LoraConfig config;
  if (!field("r").is_number_integer()) throw std::invalid_argument(config_file + ": r must be an integer");
  config.r = field("r").get<int64_t>();
  config.alpha = field("lora_alpha").get<double>();
  config.dropout = cfg.value("lora_dropout", 0.0);
  const auto& targets = field("target_modules");
  if (targets.is_string()) throw std::invalid_argument(config_file + ": target_modules as a regex is not supported; list the module names");
  config.target_modules = targets.get<std::vector<std::string>>();
  add_lora(module, config, 0);
  io::SafetensorsCheckpoint weights((fs::path(dir) / "adapter_model.safetensors").string());
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing;
  for (auto& item : module.named_parameters(true)) {
    if (item.key().find(".lora_") == std::string::npos) continue;
    std::string key = kPeftPrefix + item.key();
    if (!weights.contains(key)) {
      // PEFT also writes the adapter name into keys ("...lora_A.default.weight") in some versions.
      const std::string alt = key.substr(0, key.rfind('.')) + ".default.weight";
      if (!weights.contains(alt)) {
        missing.push_back(key);
        continue;
      }
      key = alt;
    }
    auto t = weights.tensor(key);
    if (t.sizes() != item.value().sizes())
      throw std::invalid_argument(weights.path() + ": " + key + " has shape " + c10::str(t.sizes()) + ", the adapter needs " +
                                  c10::str(item.value().sizes()));
    item.value().copy_(t);
  }
  if (!missing.empty())
    throw std::invalid_argument(weights.path() + ": " + std::to_string(missing.size()) + " adapter tensor(s) missing, first " + missing[0]);
  return config;
}

}  // namespace tpo::model
