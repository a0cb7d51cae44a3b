// Preference objectives as TRL's DPOTrainer computes them (trl/trainer/dpo_trainer.py dpo_loss, v0.19.1), plus
// TPO's SFT term, over summed answer log-probs; and the forward/backward of a batch of pairs through the video LMM.
#pragma once

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/video_lm.h"

namespace tpo::train {

enum class LossType { Sigmoid, Hinge, Ipo, Robust };
LossType parse_loss_type(const std::string& name);

struct LossConfig {
  LossType type = LossType::Sigmoid;
  double beta = 0.1;
  double label_smoothing = 0;  // cDPO (sigmoid) and robust DPO
  bool reference_free = false;
  double sft_weight = 0;       // TPO's alpha, TRL's rpo_alpha: weight of the NLL of the chosen answers
};

// Summed log-probs of each pair's answers [B] and their token counts [B] (float).
struct PairLogps {
  torch::Tensor policy_chosen, policy_rejected;  // with gradients when training
  torch::Tensor ref_chosen, ref_rejected;        // undefined when reference-free
  torch::Tensor chosen_tokens, rejected_tokens;
};

struct LossOutput {
  torch::Tensor loss;          // scalar: mean(losses) + sft_weight * nll
  torch::Tensor losses;        // [B] the preference term of each pair
  torch::Tensor nll;           // scalar: cross-entropy over every chosen answer token in the batch
  torch::Tensor chosen_rewards, rejected_rewards;  // [B] beta * (policy - reference), detached
};

LossOutput preference_loss(const PairLogps& logps, const LossConfig& config);

// TRL's logged metrics of a batch (get_batch_loss_metrics: means over its pairs; nll_loss the mean of the given
// NLL terms, one per micro-batch): the one definition the training step and trainPreferenceForward both report.
// Keys: loss, rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected,
// nll_loss.
std::map<std::string, double> preference_metrics(const torch::Tensor& chosen_rewards, const torch::Tensor& rejected_rewards,
                                                 const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                                                 const torch::Tensor& nll, double loss);

// One pair as the model sees it: a prompt (1-D ids, the image id once if there is a video) and two answers.
struct Pair {
  torch::Tensor prompt, chosen, rejected;
  torch::Tensor video;  // frames [F, 3, S, S] or visual tokens [V, D]; undefined for text-only pairs
  std::optional<std::pair<double, double>> reference;  // precomputed reference log-probs (chosen, rejected)
};

enum class ReferenceMode { Precomputed, LoraDisabled, FrozenCopy, None };

struct ForwardConfig {
  LossConfig loss;
  ReferenceMode reference = ReferenceMode::LoraDisabled;
  bool share_prefix = true;  // the prompt runs once per pair; both answers attend to it
  bool encode_once = true;   // the video is encoded once per pair; false: once per answer and model (as TRL runs)
  // Every pair's two answers in one padded forward per model, each as a full sequence (share_prefix is then moot):
  // fewer, larger operations, what small models need; large ones save more by sharing the prompt.
  bool batch_pairs = false;
};

struct PreferenceForward {
  LossOutput out;
  PairLogps logps;
};

// Policy (and, per the mode, reference) log-probs of every pair, and the loss. The video of a pair is encoded once
// and shared by chosen and rejected, policy and reference. Gradients flow when grad mode is on.
PreferenceForward preference_forward(model::VideoLMImpl& policy, model::VideoLMImpl* reference,
                                     const std::vector<Pair>& pairs, const ForwardConfig& config);

}  // namespace tpo::train
