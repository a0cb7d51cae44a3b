// The training step: forward over micro-batches, backward, global-norm clipping, AdamW (libtorch's fused kernel,
// what torch.optim.AdamW(fused=True) runs: one pass over each parameter, its gradient and moments instead of
// seven). One native call per step.
// The learning rate comes in with each step (the schedule lives in lib/train, where it is readable); the
// optimizer's moments save and load by parameter name, so a resumed run continues bit for bit.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/loader.h"
#include "runtime/errors.h"
#include "train/preference.h"

namespace tpo::train {

struct OptimizerConfig {
  double weight_decay = 0;  // applied to weight matrices and embeddings, never to norms, biases or image_newline
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double max_grad_norm = 1.0;  // 0: no clipping (the norm is still reported)
};

// One SFT record: log p(answer | prompt, video) is trained up.
struct SftExample {
  torch::Tensor prompt, answer, video;
};

struct StepMetrics {
  std::map<std::string, double> values;  // TRL's names: loss, rewards/*, logps/*, nll_loss, grad_norm
  int64_t tokens = 0;                    // answer tokens scored
};

class Trainer {
 public:
  Trainer(std::shared_ptr<model::LoadedModel> policy, std::shared_ptr<model::LoadedModel> reference,
          const OptimizerConfig& config);

  // A preference step over micro-batches (gradient accumulation: the loss of each is divided by their count).
  // Throws NonFiniteLoss without touching the weights when the loss or the gradient norm is not finite.
  StepMetrics preference_step(const std::vector<std::vector<Pair>>& micro_batches, const ForwardConfig& config, double lr);
  StepMetrics sft_step(const std::vector<std::vector<SftExample>>& micro_batches, double lr);

  int64_t steps() const { return steps_; }
  int64_t trainable() const;
  // The optimizer's moments and step counts by parameter name, and back.
  io::NamedTensors optimizer_state() const;
  void load_optimizer_state(const io::SafetensorsCheckpoint& state);

 private:
  StepMetrics finish_step(double loss, double lr, StepMetrics metrics);

  // AdamW's state of one parameter, created at its first step (as torch.optim.AdamW does). A bf16 or fp16
  // parameter (a model loaded with dtype bfloat16 and trained in full) gets a float32 master copy: the moments and
  // the update live in float32 and the parameter is the master rounded after each step, as mixed-precision
  // training keeps it (an update below half a bf16 ulp of the weight would otherwise be lost every step).
  struct Moments {
    torch::Tensor exp_avg, exp_avg_sq;
    torch::Tensor step;    // float scalar: the steps this parameter took (the fused kernel counts it)
    torch::Tensor master;  // float32 copy of a reduced-precision parameter; undefined for a float32 one
  };
  void adamw_step(double lr);
  void zero_grad();

  std::shared_ptr<model::LoadedModel> policy_, reference_;
  OptimizerConfig config_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;  // trainable, by name
  std::vector<bool> decays_;                                    // per parameter: weight decay applies
  std::vector<Moments> moments_;                                // per parameter
  int64_t steps_ = 0;
};

struct NonFiniteLoss : NonFiniteError {
  using NonFiniteError::NonFiniteError;
};

}  // namespace tpo::train
