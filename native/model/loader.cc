#include "model/loader.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace tpo::model {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::invalid_argument(file + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string merged_config(const std::string& text, const std::string& overrides, const std::string& source) {
  if (overrides.empty()) return text;
  auto base = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto patch = nlohmann::json::parse(overrides, nullptr, false);
  if (base.is_discarded() || !base.is_object()) return text;  // parse_config reports the problem with the file's name
  if (patch.is_discarded() || !patch.is_object()) throw std::invalid_argument(source + ": config overrides must be a JSON object");
  for (auto it = patch.begin(); it != patch.end(); ++it) base[it.key()] = it.value();
  return base.dump(2);
}

}  // namespace

torch::Device resolve_device(const std::string& name) {
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(name);
  } catch (const c10::Error&) {
    throw std::invalid_argument("device '" + name + "' is not a device name (cpu, cuda, cuda:N)");
  }
  if (device.is_cuda()) {
#ifndef TPO_WITH_CUDA
    throw std::invalid_argument("device '" + name + "': this tpo addon was built against a CPU libtorch; build it "
                                "against a CUDA libtorch (LIBTORCH=...) or use a CUDA prebuild");
#endif
    if (!torch::cuda::is_available()) throw std::invalid_argument("device '" + name + "': no CUDA device is available");
  } else if (!device.is_cpu()) {
    throw std::invalid_argument("device '" + name + "' is not supported (cpu, cuda)");
  }
  return device;
}

LoadedModel load_model(const std::string& dir, const ModelLoadOptions& options) {
  const torch::Device device = resolve_device(options.device);
  const std::string config_file = (fs::path(dir) / "config.json").string();
  if (!fs::is_directory(dir)) throw std::invalid_argument(dir + ": not a model folder");
  LoadedModel out;
  out.config = parse_config(merged_config(read_text(config_file), options.overrides_json, config_file), config_file);
  if (out.config.architecture == Architecture::VisionModel) {
    out.vision = std::make_shared<VisionModelImpl>(*out.config.vision, out.config.vision->layers_in_checkpoint);
  } else {
    out.lm = std::make_shared<VideoLMImpl>(out.config);
  }
  io::SafetensorsCheckpoint checkpoint(dir);
  LoadOptions load;
  load.dtype = options.dtype;
  load.tied_embeddings = out.config.text && out.config.text->tie_word_embeddings;
  out.report = load_weights(out.module(), checkpoint, load);
  if (!device.is_cpu()) out.module().to(device);
  out.module().eval();
  return out;
}

LoadedModel create_model(const std::string& config_json, uint64_t seed, std::optional<torch::ScalarType> dtype,
                         const std::string& device_name) {
  const torch::Device device = resolve_device(device_name);
  LoadedModel out;
  out.config = parse_config(config_json, "config");
  if (out.config.architecture == Architecture::VisionModel) {
    out.vision = std::make_shared<VisionModelImpl>(*out.config.vision, out.config.vision->layers_in_checkpoint);
  } else {
    out.lm = std::make_shared<VideoLMImpl>(out.config);
  }
  const double std_dev = nlohmann::json::parse(config_json).value("initializer_range", 0.02);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : out.module().named_parameters(true)) {
    const std::string& name = item.key();
    auto& p = item.value();
    const bool norm = name.find("norm") != std::string::npos;  // RMSNorm / LayerNorm (input_layernorm, layer_norm1, ...)
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) p.zero_();
    else if (norm) p.fill_(1.0);
    else p.normal_(0.0, std_dev, gen);
  }
  if (dtype) out.module().to(*dtype);
  if (!device.is_cpu()) out.module().to(device);
  out.module().eval();
  return out;
}

std::vector<std::string> save_model(LoadedModel& model, const std::string& dir, KeyLayout layout, uint64_t max_shard_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::invalid_argument(dir + ": cannot create folder: " + ec.message());
  std::vector<std::string> files = io::write_safetensors_sharded(dir, state_dict(model.module(), layout), max_shard_bytes,
                                                                 {{"format", "pt"}});
  io::AtomicFile config((fs::path(dir) / "config.json").string());
  config.write(model.config.json.data(), model.config.json.size());
  config.commit();
  files.push_back("config.json");
  return files;
}

}  // namespace tpo::model
