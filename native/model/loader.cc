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

// A SigLIP tower's parameter as transformers' SiglipPreTrainedModel._init_weights starts it (models/siglip/
// modeling_siglip.py, transformers 5.x, what constructing SiglipVisionModel does): q/k/v/out_proj and fc1/fc2 weights
// xavier-uniform, fc1/fc2 biases N(0, 1e-6), the patch convolution lecun-normal (initialization.py's
// _variance_scaling: torch's trunc_normal_ of std sqrt(1 / fan_in) / 0.87962566103423978, cut at -2 and 2 absolute),
// the positions N(0, 1 / sqrt(hidden_size)); other biases 0 and layer norms 1, as every tower. (tpo drew them
// N(0, initializer_range) as the language model's, 5x smaller than xavier's at 96 wide; docs/results.md, 2026-12-02,
// issue 16 continued 3, measured what the difference does to learning shape.)
// Returns false for a name with no SigLIP-specific rule.
bool init_siglip_parameter(const std::string& name, torch::Tensor& p, int64_t hidden_size, at::Generator& gen) {
  const auto ends = [&name](const std::string& tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  const auto xavier_uniform = [&] {  // fan_in = size(1), fan_out = size(0) for a 2-D weight
    const double bound = std::sqrt(6.0 / static_cast<double>(p.size(0) + p.size(1)));
    p.uniform_(-bound, bound, gen);
  };
  if (ends(".q_proj.weight") || ends(".k_proj.weight") || ends(".v_proj.weight") || ends(".out_proj.weight") ||
      ends(".fc1.weight") || ends(".fc2.weight")) {
    xavier_uniform();
  } else if (ends(".fc1.bias") || ends(".fc2.bias")) {
    p.normal_(0.0, 1e-6, gen);
  } else if (ends("embeddings.patch_embedding.weight")) {
    const double fan_in = static_cast<double>(p.numel() / p.size(0));
    const double std_dev = std::sqrt(1.0 / fan_in) / 0.87962566103423978;
    // torch.nn.init.trunc_normal_(mean 0, std_dev, a = -2, b = 2): inverse CDF of a uniform over [cdf(a), cdf(b)]
    const auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
    const double low = cdf(-2.0 / std_dev), high = cdf(2.0 / std_dev);
    p.uniform_(2 * low - 1, 2 * high - 1, gen).erfinv_().mul_(std_dev * std::sqrt(2.0)).clamp_(-2.0, 2.0);
  } else if (ends("embeddings.position_embedding.weight")) {
    p.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(hidden_size)), gen);
  } else {
    return false;
  }
  return true;
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
  const bool siglip_tower = out.config.vision && out.config.vision->kind == VisionKind::Siglip;
  for (auto& item : out.module().named_parameters(true)) {
    const std::string& name = item.key();
    auto& p = item.value();
    if (is_placeholder(p)) p.set_data(torch::empty(p.sizes()));
    // (Qwen2.5-VL's merger norm is ln_q)
    const bool norm = name.find("norm") != std::string::npos || name.find(".ln_q.") != std::string::npos;  // RMSNorm / LayerNorm (input_layernorm, layer_norm1, ...)
    const auto ends = [&name](const std::string& tail) {
      return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (siglip_tower && name.find("vision_model.") != std::string::npos &&
        init_siglip_parameter(name, p, out.config.vision->hidden_size, gen)) continue;
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
