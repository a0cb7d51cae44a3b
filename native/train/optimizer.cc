#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include <ATen/autocast_mode.h>

#include "model/inference.h"
#include "model/parts.h"

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

double lr_scale(const std::string& name, const OptimizerConfig& config) {
  switch (model::model_part(name)) {
    case model::ModelPart::vision: return config.vision_lr_scale;
    case model::ModelPart::projector: return config.projector_lr_scale;
    case model::ModelPart::language: break;
  }
  return 1.0;
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

// A data-parallel step no rank had a record for: nothing was computed or updated.
StepMetrics skipped_step() {
  StepMetrics m;
  m.skipped = true;
  return m;
}

// Training mode (LoRA dropout) for the step only: generation and evaluation between steps run in eval mode.
struct TrainMode {
  explicit TrainMode(torch::nn::Module& m) : module(m) { module.train(); }
  ~TrainMode() { module.eval(); }
  torch::nn::Module& module;
};

}  // namespace

Trainer::Trainer(std::shared_ptr<model::LoadedModel> policy, std::shared_ptr<model::LoadedModel> reference,
                 const OptimizerConfig& config, DataParallel parallel)
    : policy_(std::move(policy)), reference_(std::move(reference)), config_(config), parallel_(std::move(parallel)) {
  if (!policy_ || !policy_->lm) throw std::invalid_argument("training needs a language model");
  for (auto& item : policy_->lm->named_parameters(true)) {
    if (!item.value().requires_grad()) continue;
    params_.emplace_back(item.key(), item.value());
    decays_.push_back(decays(item.key(), item.value()));
    lr_scales_.push_back(lr_scale(item.key(), config_));
  }
  if (params_.empty()) throw std::invalid_argument("nothing to train: every parameter is frozen (setTrainable)");
  moments_.resize(params_.size());
  if (parallel_.shard_optimizer && parallel_.group) {
    // ZeRO stage 1: contiguous runs of parameters of about equal size, one per rank, in parameter order.
    const int ranks = parallel_.group->size();
    const double total = static_cast<double>(trainable());
    double before = 0;
    for (const auto& [_, p] : params_) {
      owner_.push_back(std::min(ranks - 1, static_cast<int>((before + p.numel() / 2.0) * ranks / total)));
      before += static_cast<double>(p.numel());
    }
  }
}

void Trainer::synchronize_weights() {
  if (synchronized_ || !parallel_.group) return;
  std::vector<torch::Tensor> tensors;
  for (auto& [_, p] : params_) tensors.push_back(p);
  dist::broadcast_tensors(*parallel_.group, tensors, 0, parallel_.bucket_bytes, "broadcasting rank 0's starting weights");
  synchronized_ = true;
}

std::vector<double> Trainer::sum_over_ranks(std::vector<double> values, const std::string& what) const {
  if (!parallel_.group) return values;
  auto t = torch::tensor(values, torch::kFloat64);
  parallel_.group->all_reduce_sum({t}, what);
  const auto* data = t.data_ptr<double>();
  return {data, data + values.size()};
}

void Trainer::zero_grad() {
  for (auto& [_, p] : params_) p.mutable_grad() = torch::Tensor();
}

// torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments) through libtorch's fused kernel, one
// call per parameter group (weight decay or not, times each part's learning rate: torch.optim's param_groups).
// Parameters without a gradient this step are left alone, as torch.optim does.
void Trainer::adamw_step(double lr) {
  std::vector<std::pair<bool, double>> groups;  // (decay, lr scale), in parameter order
  for (size_t i = 0; i < params_.size(); ++i)
    if (std::find(groups.begin(), groups.end(), std::make_pair(bool(decays_[i]), lr_scales_[i])) == groups.end())
      groups.emplace_back(decays_[i], lr_scales_[i]);
  for (const auto& [decay, scale] : groups) {
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    std::vector<std::pair<torch::Tensor, torch::Tensor>> rounded;  // (parameter, its master) to copy back
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i].second;
      if (decays_[i] != decay || lr_scales_[i] != scale || !p.grad().defined() || !owns(i)) continue;
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
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr * scale, config_.beta1,
                      config_.beta2, decay ? config_.weight_decay : 0.0, config_.eps, /*amsgrad=*/false, /*maximize=*/false);
    for (auto& [p, master] : rounded) p.copy_(master);
  }
  if (owner_.empty()) return;
  // ZeRO-1: each parameter's owner updated it; every rank takes the owners' new values. The parameters with a
  // gradient are the same on every rank (all_reduce_gradients), so every rank broadcasts the same buckets.
  for (int r = 0; r < parallel_.group->size(); ++r) {
    std::vector<torch::Tensor> owned;
    for (size_t i = 0; i < params_.size(); ++i)
      if (owner_[i] == r && params_[i].second.grad().defined()) owned.push_back(params_[i].second);
    dist::broadcast_tensors(*parallel_.group, owned, r, parallel_.bucket_bytes,
                            "broadcasting the weights rank " + std::to_string(r) + " updated");
  }
}

int64_t Trainer::optimizer_bytes() const {
  int64_t n = 0;
  for (const auto& m : moments_)
    if (m.exp_avg.defined()) n += (m.exp_avg.numel() + m.exp_avg_sq.numel()) * m.exp_avg.element_size();
  return n;
}

int64_t Trainer::trainable() const {
  int64_t n = 0;
  for (const auto& [_, p] : params_) n += p.numel();
  return n;
}

StepMetrics Trainer::finish_step(double loss, double lr, StepMetrics metrics) {
  std::vector<torch::Tensor> tensors;
  for (auto& [_, p] : params_) tensors.push_back(p);
  // Data parallelism: the ranks' gradients summed (each rank's loss already carries the step's global weights),
  // then clipped on the sum, so every rank clips, updates and ends the step with the same weights.
  if (parallel_.group)
    dist::all_reduce_gradients(*parallel_.group, tensors, parallel_.bucket_bytes,
                               "all-reducing the gradients of step " + std::to_string(steps_ + 1));
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
  if (micro_batches.empty() && !parallel_.group) throw std::invalid_argument("a step needs at least one micro-batch");
  synchronize_weights();
  torch::AutoGradMode grad(true);
  TrainMode mode(*policy_->lm);
  CudaAutocast autocast(params_.front().second.is_cuda());
  zero_grad();
  // The step's pairs and chosen tokens, over every micro-batch and rank: what each micro-batch's terms weigh
  // against, so that the step's loss does not depend on how its pairs were split.
  double local_pairs = 0, local_chosen = 0;
  for (const auto& batch : micro_batches)
    for (const auto& pair : batch) local_pairs += 1, local_chosen += static_cast<double>(pair.chosen.numel());
  const auto totals = sum_over_ranks({local_pairs, local_chosen}, "counting the pairs of step " + std::to_string(steps_ + 1));
  const double pairs = totals[0], chosen_tokens = totals[1];
  if (pairs == 0 && parallel_.group) return skipped_step();  // every rank's shard was empty
  if (pairs == 0) throw std::invalid_argument("a step needs at least one pair");
  if (chosen_tokens == 0) throw std::invalid_argument("the step's chosen answers have no tokens");
  const double nll_weight = config.loss.nll_weight();
  double loss = 0, nll_sum = 0, tokens = 0;
  std::vector<torch::Tensor> per_pair;  // [B, 4] each: chosen and rejected rewards, chosen and rejected logps
  for (const auto& batch : micro_batches) {
    if (batch.empty()) continue;
    auto f = preference_forward(*policy_->lm, reference_ ? reference_->lm.get() : nullptr, batch, config);
    const auto batch_chosen = f.logps.chosen_tokens.sum();
    // Each pair's loss holds nll_weight x the micro-batch's token-mean NLL: that share is taken out and put back
    // as the micro-batch's summed NLL over the step's chosen tokens; the rest weighs 1 / the step's pairs.
    const auto nll_total = f.out.nll * batch_chosen;
    const auto part = (f.out.losses.sum() - static_cast<double>(batch.size()) * nll_weight * f.out.nll) / pairs +
                      nll_weight * nll_total / chosen_tokens;
    part.backward();
    loss += part.item<double>();
    nll_sum += nll_total.item<double>();
    tokens += (batch_chosen + f.logps.rejected_tokens.sum()).item<double>();
    // As TRL logs them (ld-weighted; simpo, orpo: per-token means).
    per_pair.push_back(torch::stack({f.out.chosen_rewards, f.out.rejected_rewards, f.out.chosen_logps, f.out.rejected_logps}, 1)
                           .detach().to(torch::kCPU, torch::kFloat32));
  }
  const auto sums = sum_over_ranks({loss, nll_sum, tokens}, "summing the losses of step " + std::to_string(steps_ + 1));
  auto rows = per_pair.empty() ? torch::zeros({0, 4}, torch::kFloat32) : torch::cat(per_pair);
  if (parallel_.group) {
    // Every rank's pairs in rank order: the order one process would have them in.
    rows = torch::cat(parallel_.group->all_gather(rows, "gathering the metrics of step " + std::to_string(steps_ + 1))).view({-1, 4});
  }
  StepMetrics metrics;
  metrics.tokens = static_cast<int64_t>(sums[2]);
  metrics.records = static_cast<int64_t>(pairs);
  metrics.values = preference_metrics(rows.select(1, 0), rows.select(1, 1), rows.select(1, 2), rows.select(1, 3),
                                      torch::tensor({sums[1] / chosen_tokens}, torch::kFloat64), sums[0]);
  return finish_step(sums[0], lr, std::move(metrics));
}

StepMetrics Trainer::sft_step(const std::vector<std::vector<SftExample>>& micro_batches, double lr) {
  if (micro_batches.empty() && !parallel_.group) throw std::invalid_argument("a step needs at least one micro-batch");
  synchronize_weights();
  torch::AutoGradMode grad(true);
  TrainMode mode(*policy_->lm);
  CudaAutocast autocast(params_.front().second.is_cuda());
  zero_grad();
  // Token-mean cross entropy over every answer token of the step (not a mean of per-record means), over every rank.
  double local = 0, local_records = 0;
  for (const auto& batch : micro_batches)
    for (const auto& e : batch) local += static_cast<double>(e.answer.numel()), local_records += 1;
  const auto totals = sum_over_ranks({local, local_records}, "counting the tokens of step " + std::to_string(steps_ + 1));
  const double total = totals[0];
  if (totals[1] == 0 && parallel_.group) return skipped_step();  // every rank's shard was empty
  if (total == 0) throw std::invalid_argument("the step's answers have no tokens");
  double loss = 0;
  for (const auto& batch : micro_batches) {
    if (batch.empty()) continue;
    // Records about one video share its frames tensor: encode it once per micro-batch (the tower's backward then
    // sums every record's gradient through one graph), then score every record in one padded forward.
    model::VisualTokenCache visual(*policy_->lm);
    std::vector<model::ScoredSequence> sequences;
    for (const auto& e : batch) {
      const model::VideoTokens& video = visual.encoded(e.video);
      sequences.push_back({e.prompt, e.answer, video.tokens, video.rope});
    }
    const auto sum = model::batch_answer_logprobs(*policy_->lm, sequences).sum();
    const auto part = -sum / total;
    part.backward();
    loss += part.item<double>();
  }
  loss = sum_over_ranks({loss}, "summing the losses of step " + std::to_string(steps_ + 1))[0];
  StepMetrics metrics;
  metrics.tokens = static_cast<int64_t>(total);
  metrics.records = static_cast<int64_t>(totals[1]);
  metrics.values["loss"] = loss;
  metrics.values["nll_loss"] = loss;
  return finish_step(loss, lr, std::move(metrics));
}

io::NamedTensors Trainer::optimizer_state() const {
  io::NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& m = moments_[i];
    if (!m.exp_avg.defined()) continue;  // a parameter that had no step yet, or another rank's (shard_optimizer)
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
  std::vector<std::unique_ptr<io::SafetensorsCheckpoint>> states;
  states.push_back(std::make_unique<io::SafetensorsCheckpoint>(saved));
  load_optimizer_state(states);
}

void Trainer::load_optimizer_state(const std::vector<std::unique_ptr<io::SafetensorsCheckpoint>>& states) {
  if (states.empty()) throw std::invalid_argument("no optimizer state to load");
  // Everything is read and checked before the optimizer's state changes: a bad file leaves it as it was.
  const auto scalar = [](const io::SafetensorsCheckpoint& saved, const std::string& key) {
    const auto t = saved.tensor(key);
    if (t.numel() != 1) throw std::invalid_argument(saved.path() + ": " + key + " must hold one number, not " + c10::str(t.sizes()));
    return t.to(torch::kFloat64).item<double>();
  };
  const auto step_count = [&](const io::SafetensorsCheckpoint& saved, const std::string& key) {
    if (!saved.contains(key)) throw std::invalid_argument(saved.path() + ": " + key + " is missing");
    const double step = scalar(saved, key);
    if (!(step >= 0) || step != std::floor(step)) throw std::invalid_argument(saved.path() + ": " + key + " is not a step count");
    return step;
  };
  const auto moment = [](const io::SafetensorsCheckpoint& saved, const std::string& key, const torch::Tensor& p,
                         torch::ScalarType dtype) {
    auto t = saved.tensor(key);
    if (t.sizes() != p.sizes() || !t.is_floating_point())
      throw std::invalid_argument(saved.path() + ": " + key + " is " + c10::toString(t.scalar_type()) + " " + c10::str(t.sizes()) +
                                  "; this model's parameter is " + c10::str(p.sizes()));
    return t.to(p.device(), dtype).clone();
  };
  std::vector<Moments> loaded(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!owns(i)) continue;
    const auto& [name, p] = params_[i];
    const io::SafetensorsCheckpoint* saved = nullptr;
    for (const auto& s : states)
      if (s->contains(name + ".exp_avg")) saved = s.get();
    if (!saved) continue;  // a parameter that had no step yet
    auto& m = loaded[i];
    // A reduced-precision parameter's moments and master are float32; a state saved without a master (by a run
    // whose parameters were float32) starts one from the parameter.
    const auto moment_dtype = reduced_precision(p) ? torch::kFloat32 : p.scalar_type();
    m.step = torch::full({}, step_count(*saved, name + ".step"), p.options().dtype(torch::kFloat32));
    m.exp_avg = moment(*saved, name + ".exp_avg", p, moment_dtype);
    m.exp_avg_sq = moment(*saved, name + ".exp_avg_sq", p, moment_dtype);
    if (reduced_precision(p))
      m.master = saved->contains(name + ".master") ? moment(*saved, name + ".master", p, torch::kFloat32)
                                                   : p.detach().to(torch::kFloat32);
  }
  const auto& first = *states.front();
  const double steps = step_count(first, "trainer.steps");
  for (const auto& s : states)
    if (step_count(*s, "trainer.steps") != steps)
      throw std::invalid_argument(s->path() + ": trainer.steps differs from " + first.path() + "'s: the shards are of different steps");
  moments_ = std::move(loaded);
  steps_ = static_cast<int64_t>(steps);
}

}  // namespace tpo::train
