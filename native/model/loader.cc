#include "model/loader.h"

#include <cmath>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "io/paths.h"
#include "io/safetensors.h"
#include "model/parameters.h"
#include "runtime/memory.h"

namespace tpo::model {
namespace {

namespace fs = std::filesystem;

std::string merged_config(const std::string& text, const std::string& overrides, const std::string& source) {
  if (overrides.empty()) return text;
  auto base = io::parse_json(text, source);
  auto patch = io::parse_json(overrides, source + ": config overrides");
  if (!base.is_object()) return text;  // parse_config reports the problem with the file's name
  if (!patch.is_object()) throw std::invalid_argument(source + ": config overrides must be a JSON object");
  for (auto it = patch.begin(); it != patch.end(); ++it) base[it.key()] = it.value();
  return base.dump(2);
}

// The modules of a config, parameters allocated as model/parameters.h says (placeholders inside a ShapeOnlyScope).
void construct(LoadedModel& out) {
  if (out.config.architecture == Architecture::VisionModel) {
    out.vision = std::make_shared<VisionModelImpl>(*out.config.vision, out.config.vision->layers_in_checkpoint);
  } else {
    out.lm = std::make_shared<VideoLMImpl>(out.config);
  }
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
  if (io::path_kind(dir) != io::PathKind::Directory)
    throw std::invalid_argument(dir + ": not a model folder (" + io::describe_path(dir) + ")");
  LoadedModel out;
  out.source = dir;
  out.config = parse_config(merged_config(io::read_text_file(config_file), options.overrides_json, config_file), config_file);
  // Shapes first: the modules hold placeholders until load_weights has compared every one with the checkpoint's
  // header and read its tensor, so a config that does not fit the checkpoint fails before any weight is allocated,
  // and loading peaks at the weights' own size (not a randomly initialised float32 model beside them).
  {
    const ShapeOnlyScope shape_only;
    construct(out);
  }
  io::SafetensorsCheckpoint checkpoint(dir, options.mmap ? io::LoadMode::Map : io::LoadMode::Read);
  LoadOptions load;
  load.dtype = options.dtype;
  load.tied_embeddings = out.config.text && out.config.text->tie_word_embeddings;
  out.report = load_weights(out.module(), checkpoint, load);
  if (checkpoint.mode() == io::LoadMode::Map) out.mapped_files = checkpoint.files();
  if (!device.is_cpu()) out.module().to(device);
  out.module().eval();
  return out;
}

LoadedModel create_model(const std::string& config_json, uint64_t seed, std::optional<torch::ScalarType> dtype,
                         const std::string& device_name) {
  const torch::Device device = resolve_device(device_name);
  LoadedModel out;
  out.source = "a model made from a config (modelCreate)";
  out.config = parse_config(config_json, "config");
  const auto root = io::parse_json(config_json, "config");
  double std_dev = 0.02;
  if (root.contains("initializer_range") && !root["initializer_range"].is_null()) {
    if (!root["initializer_range"].is_number() || !(root["initializer_range"].get<double>() >= 0) ||
        !std::isfinite(root["initializer_range"].get<double>()))
      throw std::invalid_argument("config: initializer_range must be a finite number >= 0");
    std_dev = root["initializer_range"].get<double>();
  }
  {
    const ShapeOnlyScope shape_only;  // sized first: a config too large for this machine is an error, not an OOM kill
    construct(out);
  }
  uint64_t elements = 0;
  for (const auto& p : out.module().parameters()) elements += static_cast<uint64_t>(p.numel());
  const uint64_t extra = dtype && *dtype != torch::kFloat32 ? elements * c10::elementSize(*dtype) : 0;
  runtime::check_allocation(elements * 4 + extra, "config: the model's " + std::to_string(elements) + " parameters");
  out.report.dtype = dtype.value_or(torch::kFloat32);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : out.module().named_parameters(true)) {
    const std::string& name = item.key();
    auto& p = item.value();
    if (is_placeholder(p)) p.set_data(torch::empty(p.sizes()));
    // (Qwen2.5-VL's merger norm is ln_q)
    const bool norm = name.find("norm") != std::string::npos || name.find(".ln_q.") != std::string::npos;  // RMSNorm / LayerNorm (input_layernorm, layer_norm1, ...)
    const auto ends = [&name](const std::string& tail) {
      return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (ends(".bias")) p.zero_();
    // InternVL's layer scale starts at layer_scale_init_value, its class token and positions at zero.
    else if (ends(".lambda_1") || ends(".lambda_2")) p.fill_(out.config.vision->layer_scale_init_value);
    else if (ends("embeddings.cls_token") || ends("embeddings.position_embeddings")) p.zero_();
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
