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

#include "dist/process_group.h"
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
  // The step's learning rate times these for the vision tower's and the projector's parameters (model/parts.h;
  // the language model's: 1): LLaVA-NeXT's mm_vision_tower_lr and mm_projector_lr over its learning_rate, which
  // follow the same schedule. LLaVA-Video trains its tower at a fifth of the language model's rate.
  double vision_lr_scale = 1.0;
  double projector_lr_scale = 1.0;
};

// Data parallelism: the ranks of `group` each run a shard of every step; gradients are summed over them (in
// buckets) before clipping, so N ranks compute the step one process computes with the step's every micro-batch.
// With shard_optimizer (ZeRO stage 1) each rank keeps AdamW's moments of its partition of the parameters only,
// updates those and broadcasts them.
struct DataParallel {
  std::shared_ptr<dist::ProcessGroup> group;  // none: one process
  int64_t bucket_bytes = 25 << 20;            // PyTorch DDP's default bucket
  bool shard_optimizer = false;
};

// One SFT record: log p(answer | prompt, video) is trained up.
struct SftExample {
  torch::Tensor prompt, answer;
  model::VideoInput video;  // as Pair's: frames or tokens with the video's own layout
};

struct StepMetrics {
  std::map<std::string, double> values;  // TRL's names: loss, rewards/*, logps/*, nll_loss, grad_norm
  int64_t tokens = 0;                    // answer tokens scored
  int64_t records = 0;                   // pairs (or SFT records) trained on, over every rank
  bool skipped = false;                  // data parallelism: no rank had a record; nothing was updated
};

class Trainer {
 public:
  Trainer(std::shared_ptr<model::LoadedModel> policy, std::shared_ptr<model::LoadedModel> reference,
          const OptimizerConfig& config, DataParallel parallel = {});

  // A preference step over micro-batches (gradient accumulation). The step's loss is the full batch's whatever
  // the split: each micro-batch's DPO terms weigh its pairs over the step's pairs, its NLL term its chosen tokens
  // over the step's chosen tokens (summed over the ranks under data parallelism, where a rank's micro-batches may
  // be empty). Throws NonFiniteLoss without touching the weights when the loss or the gradient norm is not finite.
  StepMetrics preference_step(const std::vector<std::vector<Pair>>& micro_batches, const ForwardConfig& config, double lr);
  StepMetrics sft_step(const std::vector<std::vector<SftExample>>& micro_batches, double lr);

  int64_t steps() const { return steps_; }
  int64_t trainable() const;
  // The optimizer's moments and step counts by parameter name (under shard_optimizer: this rank's partition),
  // and back: the moments of this rank's parameters are taken from whichever of `states` holds them, so shards
  // saved at another world size load too.
  io::NamedTensors optimizer_state() const;
  void load_optimizer_state(const std::vector<std::unique_ptr<io::SafetensorsCheckpoint>>& states);
  void load_optimizer_state(const io::SafetensorsCheckpoint& state);
  // Bytes of AdamW moments this process holds.
  int64_t optimizer_bytes() const;
  const DataParallel& parallel() const { return parallel_; }

 private:
  StepMetrics finish_step(double loss, double lr, StepMetrics metrics);
  // Under data parallelism, once before the first step: every rank starts from rank 0's trainable weights.
  void synchronize_weights();
  // The sum over the ranks of `values` (one process: `values`).
  std::vector<double> sum_over_ranks(std::vector<double> values, const std::string& what) const;
  bool owns(size_t i) const { return owner_.empty() || owner_[i] == parallel_.group->rank(); }

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
  std::vector<double> lr_scales_;                               // per parameter: its part's multiple of the lr
  std::vector<Moments> moments_;                                // per parameter
  int64_t steps_ = 0;
  DataParallel parallel_;
  std::vector<int> owner_;  // shard_optimizer: the rank that updates each parameter; empty: every rank all
  bool synchronized_ = false;
};

struct NonFiniteLoss : NonFiniteError {
  using NonFiniteError::NonFiniteError;
};

}  // namespace tpo::train
