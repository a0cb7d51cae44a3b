// tpo-check: the device check of scripts/device-check.sh, as a program built from native/ alone (no Node, no
// FFmpeg: a GPU machine may have neither). It runs tpo's own model and training code on a device and writes one JSON
// report:
//   runtime   what libtorch runs on, and the device's measured bf16 (and float32) matmul rate
//   parity    the reference fixtures (test/fixtures/hf) forward on the device in float32, with the CPU tests'
//             tolerances (atol 1e-5, rtol 1e-4; TF32 off)
//   step      a TPO step (sigmoid DPO + NLL, LoRA) under bf16 autocast on the device against the same step in float32
//             on the CPU: the loss within 1%
//   bench     a DPO step at a 7B-like layer shape (Qwen2-7B's widths, 4 layers; SigLIP-so400m frozen; 64 frames),
//             with and without activation checkpointing: tokens/s, model FLOP utilisation against the measured bf16
//             matmul rate, peak device memory; then generation tokens/s
// On a machine without a GPU (--device cpu) the same code runs with the CUDA parts skipped and the bench at a small
// scale, which proves the script end to end before any device time is spent.
//
//   tpo-check --fixtures test/fixtures/hf --out report.json [--device cuda] [--scale full|tiny] [--skip-bench]
#include <torch/torch.h>
#include <torch/version.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/inference.h"
#include "model/loader.h"
#include "model/lora.h"
#include "runtime/runtime.h"
#include "train/optimizer.h"
#include "train/preference.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using tpo::model::LoadedModel;

struct Options {
  std::string fixtures = "test/fixtures/hf";
  std::string out = "device-check.json";
  std::string device = "cuda";
  std::string scale = "full";
  bool bench = true;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ------------------------------------------------------------------------------------------------ parity

// The CPU tests' check (test/model/video-lm.test.ts assertClose): every element within atol + rtol * |expected|.
json compare(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what) {
  constexpr double atol = 1e-5, rtol = 1e-4;
  json r = {{"output", what}};
  if (!actual.defined()) return r.update({{"ok", false}, {"error", "not produced"}}), r;
  if (actual.sizes() != expected.sizes())
    return r.update({{"ok", false}, {"error", "shape " + c10::str(actual.sizes()) + ", expected " + c10::str(expected.sizes())}}), r;
  const auto a = actual.detach().to(torch::kCPU, torch::kFloat64), b = expected.to(torch::kFloat64);
  const auto excess = (a - b).abs() - (atol + rtol * b.abs());
  const double worst = excess.max().item<double>();
  r["max_abs"] = (a - b).abs().max().item<double>();
  r["ok"] = worst <= 0;
  return r;
}

json parity_case(const std::string& dir, const std::string& device) {
  const std::string name = fs::path(dir).filename().string();
  json out = {{"fixture", name}};
  const auto t0 = std::chrono::steady_clock::now();
  tpo::model::ModelLoadOptions o;
  o.device = device;
  auto m = tpo::model::load_model(dir, o);
  tpo::io::SafetensorsCheckpoint inputs((fs::path(dir) / "inputs.safetensors").string());
  tpo::io::SafetensorsCheckpoint expected((fs::path(dir) / "expected.safetensors").string());
  const auto dev = tpo::model::resolve_device(device);
  const auto input = [&](const char* key) { return inputs.contains(key) ? inputs.tensor(key).to(dev) : torch::Tensor(); };
  std::map<std::string, torch::Tensor> got;
  torch::NoGradGuard no_grad;
  if (m.vision) {
    auto v = m.vision->vision_model->forward(input("pixel_values"));
    got["last_hidden_state"] = v.last_hidden_state;
    for (size_t i = 0; i < v.hidden_states.size(); ++i) got["hidden_states." + std::to_string(i)] = v.hidden_states[i];
  } else {
    torch::Tensor video;
    const auto pixels = input("pixel_values");
    if (pixels.defined()) {
      auto tokens = m.lm->encode_video(pixels);
      got["vision_features"] = tokens.features;
      got["projected"] = tokens.projected;
      got["pooled"] = tokens.pooled;
      got["video_tokens_grid"] = tokens.tokens;
      video = tokens.tokens;
    }
    auto r = m.lm->forward(input("input_ids").to(torch::kInt64), input("attention_mask"), video, true);
    got["logits"] = r.logits;
    got["inputs_embeds"] = r.inputs_embeds;
    got["last_hidden_state"] = r.lm.last_hidden_state;
    got["last_layer_output"] = r.lm.last_layer_output;
    for (size_t i = 0; i < r.lm.hidden_states.size(); ++i) got["hidden_states." + std::to_string(i)] = r.lm.hidden_states[i];
  }
  // Every position, padding included, as the CPU tests compare them (forward computes what transformers does there).
  bool ok = true;
  json checks = json::array();
  for (const auto& [key, value] : got) {
    if (!expected.contains(key)) continue;
    auto c = compare(value, expected.tensor(key), key);
    ok = ok && c["ok"].get<bool>();
    checks.push_back(c);
  }
  out["ok"] = ok && !checks.empty();
  out["outputs"] = checks;
  out["seconds"] = seconds_since(t0);
  return out;
}

json parity(const Options& o) {
  json out = json::array();
  for (const char* name : {"qwen2", "qwen2_tied", "siglip", "clip", "llava_video", "llava_video_oddgrid", "longva"}) {
    const auto dir = (fs::path(o.fixtures) / name).string();
    try {
      out.push_back(parity_case(dir, o.device));
    } catch (const std::exception& e) {
      out.push_back({{"fixture", name}, {"ok", false}, {"error", e.what()}});
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ the TPO step

// Each row of ids [B, W] without its padding (mask 0).
std::vector<torch::Tensor> unpadded_rows(const torch::Tensor& ids, const torch::Tensor& mask) {
  std::vector<torch::Tensor> rows;
  for (int64_t r = 0; r < ids.size(0); ++r) rows.push_back(ids[r].index({mask[r].to(torch::kBool)}).clone());
  return rows;
}

void train_lora_only(LoadedModel& m) {
  for (auto& p : m.lm->parameters()) p.set_requires_grad(false);
  for (auto& item : m.lm->named_parameters())
    if (item.key().find(".lora_") != std::string::npos) item.value().set_requires_grad(true);
}

// Three TPO steps with a LoRA adapter on the DPO fixture's policy: the losses on `device` (bf16 autocast on CUDA)
// and on the CPU in float32.
std::vector<double> tpo_steps(const std::string& fixtures, const std::string& device) {
  const auto dpo = fs::path(fixtures) / "dpo";
  tpo::model::ModelLoadOptions o;
  o.device = device;
  auto policy = std::make_shared<LoadedModel>(tpo::model::load_model((dpo / "policy").string(), o));
  tpo::model::LoraConfig lora;
  lora.r = 8;
  lora.alpha = 16;
  tpo::model::add_lora(*policy->lm, lora, 3);
  train_lora_only(*policy);
  tpo::io::SafetensorsCheckpoint in((dpo / "inputs.safetensors").string());
  const auto prompts = unpadded_rows(in.tensor("prompt_input_ids"), in.tensor("prompt_attention_mask"));
  const auto chosen = unpadded_rows(in.tensor("chosen_input_ids"), in.tensor("chosen_attention_mask"));
  const auto rejected = unpadded_rows(in.tensor("rejected_input_ids"), in.tensor("rejected_attention_mask"));
  std::vector<tpo::train::Pair> pairs;
  for (size_t i = 0; i < prompts.size(); ++i) pairs.push_back({prompts[i], chosen[i], rejected[i], {}, std::nullopt});
  tpo::train::ForwardConfig config;
  config.loss.terms = {{tpo::train::LossType::Sigmoid, 1.0}, {tpo::train::LossType::Sft, 0.5}};
  config.loss.beta = 0.1;
  tpo::train::Trainer trainer(policy, nullptr, {});
  std::vector<double> losses;
  for (int s = 0; s < 3; ++s) losses.push_back(trainer.preference_step({pairs}, config, 5e-3).values.at("loss"));
  return losses;
}

json step_check(const Options& o) {
  json out;
  const auto cpu = tpo_steps(o.fixtures, "cpu");
  out["cpu_float32_losses"] = cpu;
  if (o.device == "cpu") {
    out["skipped"] = "no CUDA device: the CPU run alone";
    out["ok"] = std::isfinite(cpu.back());
    return out;
  }
  const auto dev = tpo_steps(o.fixtures, o.device);
  out["device_bf16_autocast_losses"] = dev;
  double worst = 0;
  for (size_t i = 0; i < cpu.size(); ++i) worst = std::max(worst, std::abs(dev[i] - cpu[i]) / std::abs(cpu[i]));
  out["max_relative_difference"] = worst;
  out["ok"] = worst <= 0.01;
  return out;
}

// ------------------------------------------------------------------------------------------------ the bench

struct BenchShape {
  int64_t hidden, intermediate, layers, heads, kv_heads, vocab, frames, prompt_tokens, answer_tokens, lora_r;
  bool known_tower;  // SigLIP-so400m-patch14-384 (26 layers of 1152 at 384/14); else a small SigLIP
};

// Qwen2-7B's widths with 4 layers, SigLIP-so400m frozen, 64 frames pooled 2x2 (27 -> 13) without newlines:
// 64 x 169 = 10,816 visual tokens.
BenchShape bench_shape(const std::string& scale) {
  if (scale == "tiny") return {256, 704, 2, 8, 2, 4096, 8, 32, 16, 16, false};
  return {3584, 18944, 4, 28, 4, 152064, 64, 64, 64, 128, true};
}

std::string bench_config(const BenchShape& s) {
  json c = {{"architectures", {"LlavaQwenForCausalLM"}}, {"model_type", "llava_qwen"}, {"vocab_size", s.vocab},
            {"hidden_size", s.hidden}, {"intermediate_size", s.intermediate}, {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads}, {"num_key_value_heads", s.kv_heads}, {"max_position_embeddings", 32768},
            {"rope_theta", 1000000.0}, {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}, {"hidden_act", "silu"},
            {"mm_projector_type", "mlp2x_gelu"}, {"mm_vision_select_layer", -2}, {"mm_patch_merge_type", "flat"},
            {"mm_newline_position", "no_token"}, {"mm_spatial_pool_mode", "average"}, {"mm_spatial_pool_stride", 2}};
  if (s.known_tower) {
    c["mm_vision_tower"] = "google/siglip-so400m-patch14-384";
  } else {
    c["vision_config"] = {{"model_type", "siglip_vision_model"}, {"image_size", 56}, {"patch_size", 14}, {"hidden_size", 64},
                          {"intermediate_size", 128}, {"num_hidden_layers", 3}, {"num_attention_heads", 4},
                          {"num_hidden_layers_in_checkpoint", 2}};
  }
  return c.dump();
}

int64_t count(const torch::nn::Module& m, const std::string& part) {
  int64_t n = 0;
  for (const auto& item : m.named_parameters())
    if (item.key().find(part) != std::string::npos && item.key().find(".lora_") == std::string::npos) n += item.value().numel();
  return n;
}

json bench(const Options& o, double matmul_tflops) {
  const auto s = bench_shape(o.scale);
  const auto device = tpo::model::resolve_device(o.device);
  const auto dtype = device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  json out = {{"shape", {{"hidden", s.hidden}, {"intermediate", s.intermediate}, {"layers", s.layers}, {"heads", s.heads},
                         {"kv_heads", s.kv_heads}, {"vocab", s.vocab}, {"frames", s.frames}, {"lora_r", s.lora_r},
                         {"tower", s.known_tower ? "siglip-so400m-patch14-384 (26 layers), frozen" : "tiny SigLIP"}}},
              {"dtype", device.is_cuda() ? "bfloat16" : "float32"}};
  auto model = std::make_shared<LoadedModel>(tpo::model::create_model(bench_config(s), 1, dtype, o.device));
  tpo::model::LoraConfig lora;
  lora.r = s.lora_r;
  lora.alpha = 2.0 * s.lora_r;
  tpo::model::add_lora(*model->lm, lora, 5);
  train_lora_only(*model);
  const auto& vision = *model->config.vision;
  const int64_t image = vision.image_size;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto pixels = torch::rand({s.frames, 3, image, image}, gen, torch::TensorOptions()).mul_(2).sub_(1);
  const auto ids = [&](int64_t n) { return torch::randint(3, s.vocab, {n}, gen, torch::TensorOptions().dtype(torch::kInt64)); };
  const auto text = ids(s.prompt_tokens);
  const auto prompt = torch::cat({text.narrow(0, 0, 8), torch::full({1}, -200, torch::kInt64), text.narrow(0, 8, s.prompt_tokens - 8)});
  std::vector<tpo::train::Pair> pairs{{prompt, ids(s.answer_tokens), ids(s.answer_tokens), pixels, std::nullopt}};
  int64_t visual = 0;
  {
    torch::NoGradGuard no_grad;
    visual = model->lm->encode_video(pixels.narrow(0, 0, 1)).tokens.size(0) * s.frames;
  }
  const int64_t tokens = visual + s.prompt_tokens + 2 * (s.answer_tokens + 1) - 1;
  out["visual_tokens"] = visual;
  out["tokens_per_step"] = tokens;
  // Model FLOPs of a step: the LM's policy forward and backward (input gradients: 2x the forward; LoRA's weight
  // gradients are negligible) and the LoRA-disabled reference forward, at 2 FLOP per parameter and token, plus
  // causal attention (QK^T and PV: 2 x 2 x L^2/2 x width per layer, forward; x3 with backward); the tower's forward.
  const double lm_params = static_cast<double>(count(*model->lm, "model.layers."));
  const double head = static_cast<double>(count(*model->lm, "lm_head")) * 2 * s.answer_tokens;  // answer positions only
  const double attention = 2.0 * 2.0 * (static_cast<double>(tokens) * tokens / 2.0) * s.hidden * s.layers;
  const double tower_params = static_cast<double>(count(*model->lm, "vision_tower"));
  const double patches = static_cast<double>(s.frames) * (image / vision.patch_size) * (image / vision.patch_size);
  const double flops = (2 + 2 + 2) * (lm_params * tokens + head) + 3 * attention + attention + 2 * tower_params * patches;
  out["model_flops_per_step"] = flops;
  out["mfu_against_matmul_tflops"] = matmul_tflops;
  tpo::train::ForwardConfig config;
  config.loss.terms = {{tpo::train::LossType::Sigmoid, 1.0}, {tpo::train::LossType::Sft, 1.0}};
  config.loss.beta = 0.1;
  tpo::train::Trainer trainer(model, nullptr, {});
  json modes = json::array();
  for (const bool checkpointing : {false, true}) {
    json mode = {{"checkpointing", checkpointing}};
    try {
      model->lm->model->gradient_checkpointing = checkpointing;
      trainer.preference_step({pairs}, config, 1e-5);  // warm-up: kernels chosen, optimizer state made
      tpo::runtime::synchronize(device);
      tpo::runtime::reset_peak_memory(device);
      const int steps = 2;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < steps; ++i) trainer.preference_step({pairs}, config, 1e-5);
      tpo::runtime::synchronize(device);
      const double per_step = seconds_since(t0) / steps;
      const auto memory = tpo::runtime::device_memory(device);
      mode["seconds_per_step"] = per_step;
      mode["tokens_per_second"] = tokens / per_step;
      mode["model_tflops"] = flops / per_step / 1e12;
      if (matmul_tflops > 0) mode["mfu"] = flops / per_step / 1e12 / matmul_tflops;
      if (memory.available) {
        mode["peak_allocated_gib"] = static_cast<double>(memory.peak_allocated) / (1 << 30);
        mode["peak_reserved_gib"] = static_cast<double>(memory.peak_reserved) / (1 << 30);
      }
    } catch (const std::exception& e) {
      mode["error"] = e.what();  // an out-of-memory is a result here, not the end of the check
    }
    modes.push_back(mode);
  }
  out["dpo_step"] = modes;
  // Generation: one prompt about the video (its prefill, then 64 new tokens greedily).
  try {
    torch::NoGradGuard no_grad;
    tpo::model::GenerateOptions g;
    g.max_new_tokens = o.scale == "tiny" ? 8 : 64;
    const auto video = model->lm->encode_video(pixels).tokens;
    tpo::runtime::synchronize(device);
    const auto t0 = std::chrono::steady_clock::now();
    g.max_new_tokens = 1;
    tpo::model::generate(*model->lm, {prompt}, video, g);
    tpo::runtime::synchronize(device);
    const double prefill = seconds_since(t0);
    g.max_new_tokens = o.scale == "tiny" ? 8 : 64;
    const auto t1 = std::chrono::steady_clock::now();
    const auto r = tpo::model::generate(*model->lm, {prompt}, video, g);
    tpo::runtime::synchronize(device);
    const double total = seconds_since(t1);
    const auto n = static_cast<double>(r.tokens[0].size());
    out["generation"] = {{"prefill_tokens", visual + s.prompt_tokens}, {"prefill_seconds", prefill}, {"new_tokens", n},
                         {"decode_tokens_per_second", (n - 1) / std::max(1e-9, total - prefill)}};
  } catch (const std::exception& e) {
    out["generation"] = {{"error", e.what()}};
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ main

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--fixtures") o.fixtures = value();
    else if (a == "--out") o.out = value();
    else if (a == "--device") o.device = value();
    else if (a == "--scale") o.scale = value();
    else if (a == "--skip-bench") o.bench = false;
    else throw std::invalid_argument("unknown option " + a + " (--fixtures DIR, --out FILE, --device cpu|cuda, --scale full|tiny, --skip-bench)");
  }
  if (o.scale != "full" && o.scale != "tiny") throw std::invalid_argument("--scale must be full or tiny");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  json report;
  Options o;
  try {
    o = parse_options(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "tpo-check: " << e.what() << "\n";
    return 2;
  }
  const auto write = [&] {
    std::ofstream f(o.out + ".tmp");
    f << report.dump(2) << "\n";
    f.close();
    fs::rename(o.out + ".tmp", o.out);
  };
  const auto section = [&](const char* name, const std::function<json()>& run) {
    const auto t0 = std::chrono::steady_clock::now();
    std::cerr << "tpo-check: " << name << "...\n";
    try {
      report[name] = run();
    } catch (const std::exception& e) {
      report[name] = {{"ok", false}, {"error", e.what()}};
    }
    report[name + std::string("_seconds")] = seconds_since(t0);
    write();  // what is done stays, whatever comes later
  };
  tpo::runtime::set_num_threads(tpo::runtime::available_cores());
  const auto info = tpo::runtime::info();
  report["runtime"] = {{"torch", info.torch_version}, {"libtorch", info.libtorch_path}, {"cuda_built", info.cuda_built},
                       {"cuda_available", info.cuda_available}, {"cuda_devices", info.cuda_device_count},
                       {"cuda_runtime", info.cuda_runtime_version}, {"cudnn", info.cudnn_version},
                       {"cpu_capability", info.cpu_capability}, {"threads", info.intra_op_threads}};
  if (o.device != "cpu" && !info.cuda_available) {
    report["error"] = "no CUDA device: run with --device cpu for the dry run";
    write();
    std::cerr << "tpo-check: no CUDA device\n";
    return 1;
  }
  // The CPU tests' float32 tolerances hold only without TF32 (cuDNN's convolutions use it by default).
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  double bf16_tflops = 0, f32_tflops = 0;
  section("matmul", [&] {
    const bool cuda = o.device != "cpu";
    const int n = cuda ? 8192 : 512;
    const auto bf16 = tpo::runtime::bench_matmul(n, cuda ? 2.0 : 0.3, o.device, torch::kBFloat16);
    const auto f32 = tpo::runtime::bench_matmul(n, cuda ? 1.0 : 0.3, o.device, torch::kFloat32);
    bf16_tflops = bf16.gflops / 1e3;
    f32_tflops = f32.gflops / 1e3;
    return json{{"size", n}, {"bf16_tflops", bf16.gflops / 1e3}, {"float32_tflops", f32.gflops / 1e3}};
  });
  section("parity", [&] { return parity(o); });
  section("step", [&] { return step_check(o); });
  // MFU against the matmul rate of the dtype the bench runs in: bf16 on a GPU, float32 on the CPU (the dry run).
  if (o.bench) section("bench", [&] { return bench(o, o.device == "cpu" ? f32_tflops : bf16_tflops); });
  bool ok = report["parity"].is_array() && report["step"].is_object() && report["step"].value("ok", false);
  if (ok)
    for (const auto& p : report["parity"]) ok = ok && p.value("ok", false);
  report["ok"] = ok;
  write();
  std::cerr << "tpo-check: " << (ok ? "ok" : "FAILED") << ", report in " << o.out << "\n";
  return ok ? 0 : 1;
}
