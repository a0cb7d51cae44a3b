#include "train/optimizer.h"

#include <cmath>

#include <ATen/autocast_mode.h>

#include "model/inference.h"

namespace tpo::train {
namespace {

bool reduced_precision(const torch::Tensor& p) {
  return p.scalar_type() == torch::kBFloat16 || p.scalar_type() == torch::kHalf;
}

// Weight decay regularises weight matrices; on norms, biases and the newline embedding it only drags them to 0.
bool decays(const std::string& name, const torch::Tensor& p) {
  if (p.dim() < 2) return false;  // biases, norm scales, image_newline
  return name.find("norm") == std::string::npos;
}

// bf16 autocast for a step on a CUDA model (the weights stay float32, the matmuls run in bf16), as TRL's bf16=True.
// Autocast is per thread, and each step runs on a pool thread: set and cleared around the step.
struct CudaAutocast {
  explicit CudaAutocast(bool on) : on(on) {
    if (!on) return;
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
  }
  ~CudaAutocast() {
    if (!on) return;
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }
  bool on;
};

// Training mode (LoRA dropout) for the step only: generation and evaluation between steps run in eval mode.
struct TrainMode {
  explicit TrainMode(torch::nn::Module& m) : module(m) { module.train(); }
  ~TrainMode() { module.eval(); }
  torch::nn::Module& module;
};

}  // namespace

Trainer::Trainer(std::shared_ptr<model::LoadedModel> policy, std::shared_ptr<model::LoadedModel> reference,
                 const OptimizerConfig& config)
    : policy_(std::move(policy)), reference_(std::move(reference)), config_(config) {
  if (!policy_ || !policy_->lm) throw std::invalid_argument("training needs a language model");
  for (auto& item : policy_->lm->named_parameters(true)) {
    if (!item.value().requires_grad()) continue;
    params_.emplace_back(item.key(), item.value());
    decays_.push_back(decays(item.key(), item.value()));
  }
  if (params_.empty()) throw std::invalid_argument("nothing to train: every parameter is frozen (setTrainable)");
  moments_.resize(params_.size());
}

void Trainer::zero_grad() {
  for (auto& [_, p] : params_) p.mutable_grad() = torch::Tensor();
}

// torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments) through libtorch's fused kernel, one
// call per weight-decay group. Parameters without a gradient this step are left alone, as torch.optim does.
void Trainer::adamw_step(double lr) {
  for (const bool decay : {true, false}) {
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    std::vector<std::pair<torch::Tensor, torch::Tensor>> rounded;  // (parameter, its master) to copy back
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i].second;
      if (decays_[i] != decay || !p.grad().defined()) continue;
      auto& m = moments_[i];
      if (reduced_precision(p) && !m.master.defined()) m.master = p.detach().to(torch::kFloat32);
      const torch::Tensor& target = m.master.defined() ? m.master : p;
      if (!m.exp_avg.defined()) {
        m.exp_avg = torch::zeros_like(target, torch::MemoryFormat::Preserve);
        m.exp_avg_sq = torch::zeros_like(target, torch::MemoryFormat::Preserve);
        m.step = torch::zeros({}, target.options().dtype(torch::kFloat32));
      }
      params.push_back(target);
      grads.push_back(m.master.defined() ? p.grad().to(torch::kFloat32) : p.grad());
      exp_avgs.push_back(m.exp_avg);
      exp_avg_sqs.push_back(m.exp_avg_sq);
      steps.push_back(m.step);
      if (m.master.defined()) rounded.emplace_back(p, m.master);
    }
    if (params.empty()) continue;
    at::_foreach_add_(steps, 1);  // the kernel reads the step count for bias correction; callers advance it first
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, config_.beta1, config_.beta2,
                      decay ? config_.weight_decay : 0.0, config_.eps, /*amsgrad=*/false, /*maximize=*/false);
    for (auto& [p, master] : rounded) p.copy_(master);
  }
}

int64_t Trainer::trainable() const {
  int64_t n = 0;
  for (const auto& [_, p] : params_) n += p.numel();
  return n;
}

StepMetrics Trainer::finish_step(double loss, double lr, StepMetrics metrics) {
  std::vector<torch::Tensor> tensors;
  for (auto& [_, p] : params_) tensors.push_back(p);
  const double max_norm = config_.max_grad_norm > 0 ? config_.max_grad_norm : std::numeric_limits<double>::infinity();
  const double grad_norm = torch::nn::utils::clip_grad_norm_(tensors, max_norm);
  metrics.values["grad_norm"] = grad_norm;
  metrics.values["lr"] = lr;
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    zero_grad();
    throw NonFiniteLoss("step " + std::to_string(steps_ + 1) + ": the loss (" + std::to_string(loss) +
                        ") or the gradient norm (" + std::to_string(grad_norm) + ") is not finite; the weights were not updated");
  }
  adamw_step(lr);
  zero_grad();
  ++steps_;
  return metrics;
}

StepMetrics Trainer::preference_step(const std::vector<std::vector<Pair>>& micro_batches, const ForwardConfig& config,
                                     double lr) {
  if (micro_batches.empty()) throw std::invalid_argument("a step needs at least one micro-batch");
  torch::AutoGradMode grad(true);
  TrainMode mode(*policy_->lm);
  CudaAutocast autocast(params_.front().second.is_cuda());
  zero_grad();
  const double parts = static_cast<double>(micro_batches.size());
  double loss = 0;
  std::vector<torch::Tensor> cr, rr, pc, pr, nll;
  StepMetrics metrics;
  for (const auto& batch : micro_batches) {
    auto f = preference_forward(*policy_->lm, reference_ ? reference_->lm.get() : nullptr, batch, config);
    (f.out.loss / parts).backward();
    loss += f.out.loss.item<double>() / parts;
    cr.push_back(f.out.chosen_rewards);
    rr.push_back(f.out.rejected_rewards);
    pc.push_back(f.out.chosen_logps);  // as TRL logs them (ld-weighted; simpo, orpo: per-token means)
    pr.push_back(f.out.rejected_logps);
    nll.push_back(f.out.nll.detach().reshape({1}));
    metrics.tokens += static_cast<int64_t>((f.logps.chosen_tokens.sum() + f.logps.rejected_tokens.sum()).item<double>());
  }
  metrics.values = preference_metrics(torch::cat(cr), torch::cat(rr), torch::cat(pc), torch::cat(pr), torch::cat(nll), loss);
  return finish_step(loss, lr, std::move(metrics));
}

StepMetrics Trainer::sft_step(const std::vector<std::vector<SftExample>>& micro_batches, double lr) {
  if (micro_batches.empty()) throw std::invalid_argument("a step needs at least one micro-batch");
  torch::AutoGradMode grad(true);
  TrainMode mode(*policy_->lm);
  CudaAutocast autocast(params_.front().second.is_cuda());
  zero_grad();
  // Token-mean cross entropy over every answer token of the step (not a mean of per-record means).
  int64_t total = 0;
  for (const auto& batch : micro_batches)
    for (const auto& e : batch) total += e.answer.numel();
  if (total == 0) throw std::invalid_argument("the step's answers have no tokens");
  double loss = 0;
  StepMetrics metrics;
  for (const auto& batch : micro_batches) {
    // Records about one video share its frames tensor: encode it once per micro-batch (the tower's backward then
    // sums every record's gradient through one graph), then score every record in one padded forward.
    model::VisualTokenCache visual(*policy_->lm);
    std::vector<model::ScoredSequence> sequences;
    for (const auto& e : batch) sequences.push_back({e.prompt, e.answer, visual(e.video)});
    const auto sum = model::batch_answer_logprobs(*policy_->lm, sequences).sum();
    const auto part = -sum / static_cast<double>(total);
    part.backward();
    loss += part.item<double>();
  }
  metrics.tokens = total;
  metrics.values["loss"] = loss;
  metrics.values["nll_loss"] = loss;
  return finish_step(loss, lr, std::move(metrics));
}

io::NamedTensors Trainer::optimizer_state() const {
  io::NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& m = moments_[i];
    if (!m.exp_avg.defined()) continue;  // a parameter that had no step yet
    const std::string& name = params_[i].first;
    out.emplace_back(name + ".exp_avg", m.exp_avg);
    out.emplace_back(name + ".exp_avg_sq", m.exp_avg_sq);
    out.emplace_back(name + ".step", m.step.to(torch::kInt64).reshape({1}));
    if (m.master.defined()) out.emplace_back(name + ".master", m.master);
  }
  out.emplace_back("trainer.steps", torch::tensor(steps_, torch::kInt64).reshape({1}));
  return out;
}

void Trainer::load_optimizer_state(const io::SafetensorsCheckpoint& saved) {
  // Everything is read and checked before the optimizer's state changes: a bad file leaves it as it was.
  const auto scalar = [&](const std::string& key) {
    const auto t = saved.tensor(key);
    if (t.numel() != 1) throw std::invalid_argument(saved.path() + ": " + key + " must hold one number, not " + c10::str(t.sizes()));
    return t.to(torch::kFloat64).item<double>();
  };
  const auto step_count = [&](const std::string& key) {
    const double step = scalar(key);
    if (!(step >= 0) || step != std::floor(step)) throw std::invalid_argument(saved.path() + ": " + key + " is not a step count");
    return step;
  };
  const auto moment = [&](const std::string& key, const torch::Tensor& p, torch::ScalarType dtype) {
    auto t = saved.tensor(key);
    if (t.sizes() != p.sizes() || !t.is_floating_point())
      throw std::invalid_argument(saved.path() + ": " + key + " is " + c10::toString(t.scalar_type()) + " " + c10::str(t.sizes()) +
                                  "; this model's parameter is " + c10::str(p.sizes()));
    return t.to(p.device(), dtype).clone();
  };
  std::vector<Moments> loaded(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    if (!saved.contains(name + ".exp_avg")) continue;  // a parameter that had no step yet
    auto& m = loaded[i];
    // A reduced-precision parameter's moments and master are float32; a state saved without a master (by a run
    // whose parameters were float32) starts one from the parameter.
    const auto moment_dtype = reduced_precision(p) ? torch::kFloat32 : p.scalar_type();
    m.step = torch::full({}, step_count(name + ".step"), p.options().dtype(torch::kFloat32));
    m.exp_avg = moment(name + ".exp_avg", p, moment_dtype);
    m.exp_avg_sq = moment(name + ".exp_avg_sq", p, moment_dtype);
    if (reduced_precision(p))
      m.master = saved.contains(name + ".master") ? moment(name + ".master", p, torch::kFloat32) : p.detach().to(torch::kFloat32);
  }
  if (!saved.contains("trainer.steps")) throw std::invalid_argument(saved.path() + ": trainer.steps is missing");
  const double steps = step_count("trainer.steps");
  moments_ = std::move(loaded);
  steps_ = static_cast<int64_t>(steps);
}

}  // namespace tpo::train
