// The forward/backward of a batch of preference pairs through the video LMM; the losses are in train/losses.h.
#pragma once

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/video_lm.h"
#include "train/losses.h"

namespace tpo::train {

// TRL's logged metrics of a batch (get_batch_loss_metrics: means over its pairs; nll_loss the mean of the given
// NLL terms, one per micro-batch): the one definition the training step and trainPreferenceForward both report.
// Keys: loss, rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected,
// nll_loss. `chosen_logps`, `rejected_logps`: LossOutput's (the log-probs TRL logs: ld-weighted; simpo, orpo: means).
std::map<std::string, double> preference_metrics(const torch::Tensor& chosen_rewards, const torch::Tensor& rejected_rewards,
                                                 const torch::Tensor& chosen_logps, const torch::Tensor& rejected_logps,
                                                 const torch::Tensor& nll, double loss);

// One pair as the model sees it: a prompt (1-D ids, the image id once if there is a video) and two answers.
struct Pair {
  torch::Tensor prompt, chosen, rejected;
  // Frames [F, 3, S, S] or visual tokens [V, D] with the video's own layout (VideoLLaMA3's frame text, Qwen2.5-VL's
  // grid and seconds per temporal patch): what eval encodes, so training sees the same; undefined for text-only pairs.
  model::VideoInput video;
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
