#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "io/paths.h"
#include "io/safetensors.h"
#include "model/linear.h"
#include "model/parameters.h"

namespace tpo::model {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPeftPrefix = "base_model.model.";

thread_local bool adapters_on = true;

std::string last_component(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

}  // namespace

LoraScope::LoraScope(bool enabled) : previous_(adapters_on) { adapters_on = enabled; }
LoraScope::~LoraScope() { adapters_on = previous_; }
bool lora_enabled_on_this_thread() { return adapters_on; }

LoraLinearImpl::LoraLinearImpl(int64_t in, int64_t out, bool with_bias) {
  // Values come from create_model or the checkpoint (model/parameters.h).
  weight = register_parameter("weight", new_parameter({out, in}));
  if (with_bias) bias = register_parameter("bias", new_parameter({out}));
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  auto y = linear(x, weight, bias);
  if (lora_A && enabled_ && adapters_on) {
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

void save_lora(torch::nn::Module& module, const LoraConfig& config, const std::string& dir, const ModuleNames& names) {
  io::NamedTensors tensors;
  for (const auto& item : module.named_parameters(true))
    if (item.key().find(".lora_") != std::string::npos)
      tensors.emplace_back(kPeftPrefix + (names ? names(item.key()) : item.key()), item.value());
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

LoraConfig load_lora(torch::nn::Module& module, const std::string& dir, const std::vector<ModuleNames>& candidates) {
  const std::string config_file = (fs::path(dir) / "adapter_config.json").string();
  const nlohmann::json cfg = io::parse_json(io::read_text_file(config_file), config_file);
  if (!cfg.is_object()) throw std::invalid_argument(config_file + ": not a JSON object");
  const auto bad = [&](const char* key, const std::string& why) { return std::invalid_argument(config_file + ": " + key + " " + why); };
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!cfg.contains(key) || cfg.at(key).is_null()) throw bad(key, "is missing");
    return cfg.at(key);
  };
  if (cfg.contains("peft_type") && (!cfg["peft_type"].is_string() || cfg["peft_type"].get<std::string>() != "LORA"))
    throw bad("peft_type", "is not LORA");
  LoraConfig config;
  if (!field("r").is_number_integer() || field("r").get<int64_t>() < 1 || field("r").get<int64_t>() > (1 << 16))
    throw bad("r", "must be an integer in [1, 65536]");
  config.r = field("r").get<int64_t>();
  if (!field("lora_alpha").is_number() || !std::isfinite(field("lora_alpha").get<double>()))
    throw bad("lora_alpha", "must be a finite number");
  config.alpha = field("lora_alpha").get<double>();
  if (cfg.contains("lora_dropout") && !cfg["lora_dropout"].is_null()) {
    if (!cfg["lora_dropout"].is_number() || !(cfg["lora_dropout"].get<double>() >= 0 && cfg["lora_dropout"].get<double>() < 1))
      throw bad("lora_dropout", "must be a number in [0, 1)");
    config.dropout = cfg["lora_dropout"].get<double>();
  }
  const auto& names = field("target_modules");
  if (names.is_string()) throw bad("target_modules", "as a regex is not supported; list the module names");
  if (!names.is_array() || names.empty()) throw bad("target_modules", "must be a list of module names");
  config.target_modules.clear();
  for (const auto& t : names) {
    if (!t.is_string()) throw bad("target_modules", "must hold module names (strings)");
    config.target_modules.push_back(t.get<std::string>());
  }
  // Every tensor is found and checked in the header before the adapter is attached: a bad folder leaves the model
  // as it was.
  io::SafetensorsCheckpoint weights((fs::path(dir) / "adapter_model.safetensors").string());
  const auto targets = lora_targets(module, config.target_modules);
  if (targets.empty()) throw bad("target_modules", "match no layer of this model");
  std::vector<std::pair<std::string, std::string>> sources;  // parameter name -> key in the file
  for (const auto& [name, linear] : targets) {
    if (linear->has_adapter()) throw std::invalid_argument(dir + ": the model already has a LoRA adapter");
    const int64_t in = linear->weight.size(1), out = linear->weight.size(0);
    const std::pair<const char*, std::vector<int64_t>> parts[] = {{"lora_A", {config.r, in}}, {"lora_B", {out, config.r}}};
    for (const auto& [part, shape] : parts) {
      const std::string param = name + "." + part + ".weight";
      // The module's own name or the transformers model's (candidates); PEFT also writes the adapter name into
      // keys ("...lora_A.default.weight") in some versions.
      std::vector<std::string> tried;
      for (const std::string& own : {param, name + "." + part + ".default.weight"}) {
        tried.push_back(kPeftPrefix + own);
        for (const auto& rename : candidates) tried.push_back(kPeftPrefix + rename(own));
      }
      std::string key;
      for (const auto& k : tried)
        if (key.empty() && weights.contains(k)) key = k;
      if (key.empty())
        throw std::invalid_argument(weights.path() + ": adapter tensor " + (candidates.empty() ? tried[0] : tried[1]) + " is missing");
      const auto& entry = weights.entry(key);
      if (c10::IntArrayRef(entry.shape) != c10::IntArrayRef(shape))
        throw std::invalid_argument(weights.path() + ": " + key + " has shape " + c10::str(c10::IntArrayRef(entry.shape)) +
                                    ", the adapter (r = " + std::to_string(config.r) + ") needs " + c10::str(c10::IntArrayRef(shape)));
      if (!c10::isFloatingType(entry.dtype))
        throw std::invalid_argument(weights.path() + ": " + key + " is " + entry.dtype_name + ", not floating point");
      sources.emplace_back(param, key);
    }
  }
  // A tensor the model has no place for (an adapter on a layer tpo does not adapt, such as a vision tower's) would
  // be silently lost: the model would not be the one the adapter describes.
  std::vector<std::string> unused;
  for (const auto& key : weights.keys())
    if (std::none_of(sources.begin(), sources.end(), [&](const auto& s) { return s.second == key; })) unused.push_back(key);
  if (!unused.empty())
    throw std::invalid_argument(weights.path() + ": " + std::to_string(unused.size()) + " adapter tensor(s) match no layer tpo adapts, e.g. " +
                                unused[0] + " (tpo adapts the language model's linear layers)");
  std::vector<torch::Tensor> values;  // adapters are small: all read before any is attached
  for (const auto& [param, key] : sources) {
    values.push_back(weights.tensor(key));
    const auto [lo, hi] = torch::aminmax(values.back().reshape({-1}));
    if (values.back().numel() > 0 && !(std::isfinite(lo.item<double>()) && std::isfinite(hi.item<double>())))
      throw std::invalid_argument(weights.path() + ": " + key + " holds NaN or infinite values");
  }
  add_lora(module, config, 0);
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters(true);
  for (size_t i = 0; i < sources.size(); ++i) params[sources[i].first].copy_(values[i]);
  return config;
}

}  // namespace tpo::model
