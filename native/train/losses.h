// Preference losses as TRL 1.13 computes them (trl/trainer/dpo_trainer.py DPOTrainer._compute_loss: every loss_type,
// a list of them with loss_weights, ld_alpha for LD-DPO, use_weighting for WPO), SimPO as CPOTrainer's `simpo` and
// ORPO as ORPOTrainer's odds-ratio loss (trl/experimental/{cpo,orpo}), over summed answer log-probs.
//
// tpo's additions, kept from its earlier TRL 0.19 surface: label smoothing on `sigmoid` is cDPO (TRL 0.x's formula;
// TRL 1.x no longer reads label_smoothing for sigmoid), and reference_free scores the reference as log p = 0.
// bco_pair is TRL 1.13's: no running reward mean (TRL 0.x's DPOTrainer and today's BCOTrainer keep one; 1.13's
// DPOTrainer does not), so no loss here has state across steps.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace tpo::train {

enum class LossType {
  Sigmoid, Hinge, Ipo, ExoPair, NcaPair, Robust, BcoPair, SppoHard, Aot, AotUnpaired, ApoZero, ApoDown, Discopop,
  SigmoidNorm, Sft, Simpo, Orpo,
};
LossType parse_loss_type(const std::string& name);  // TRL's names: sigmoid, hinge, ..., sigmoid_norm, sft, simpo, orpo
std::string loss_type_name(LossType type);

// One entry of TRL's loss_type list and its loss_weights weight.
struct LossTerm {
  LossType type = LossType::Sigmoid;
  double weight = 1;
};

struct LossConfig {
  std::vector<LossTerm> terms{LossTerm{}};
  double beta = 0.1;
  double label_smoothing = 0;         // robust, exo_pair (its epsilon), aot, aot_unpaired, simpo; sigmoid: cDPO
  bool reference_free = false;        // the reference's log-probs are 0
  std::optional<double> ld_alpha;     // LD-DPO: answer tokens past the shorter answer's length weigh alpha
  bool use_weighting = false;         // WPO: each pair's loss times the policy's length-normalised weights
  double discopop_tau = 0.05;
  double simpo_gamma = 0.5;           // SimPO's target reward margin

  // Throws std::invalid_argument naming the setting when the combination is not one TRL runs.
  void validate() const;
  // Whether reference log-probs are read: always, unless reference-free or simpo / orpo (TRL's DPOTrainer keeps a
  // reference even for sft alone, for its rewards).
  bool needs_reference() const;
  bool has(LossType type) const;
  // The weight of the batch's NLL term (LossOutput::nll) inside each pair's loss: the sft and orpo entries' weights.
  // The training step weighs that term by tokens and the rest by pairs (train/optimizer.cc).
  double nll_weight() const;
};

// Summed log-probs of each pair's answers [B] and their token counts [B] (float).
struct PairLogps {
  torch::Tensor policy_chosen, policy_rejected;  // with gradients when training
  torch::Tensor ref_chosen, ref_rejected;        // undefined when reference-free
  torch::Tensor chosen_tokens, rejected_tokens;
  // Per-token log-probs [B, A_max], zero past each answer; the forward fills them when the loss reads them
  // (ld_alpha). A precomputed reference has sums only: with ld_alpha they are taken as already weighted.
  torch::Tensor policy_chosen_token_logps, policy_rejected_token_logps;
  torch::Tensor ref_chosen_token_logps, ref_rejected_token_logps;
  // Σ over each answer's positions of log Σ_v p(v)² under the policy [B], no gradient (use_weighting).
  torch::Tensor policy_chosen_log_sq_mass, policy_rejected_log_sq_mass;
};

struct LossOutput {
  torch::Tensor loss;          // scalar: Σ_k weight_k * mean(term_k) = mean(losses)
  torch::Tensor losses;        // [B] Σ_k weight_k * term_k of each pair (aot, aot_unpaired: in sorted order)
  torch::Tensor nll;           // scalar: cross-entropy over every chosen answer token in the batch (TRL's sft term)
  torch::Tensor chosen_rewards, rejected_rewards;  // [B] beta * (policy - reference), detached; simpo, orpo: beta * mean log p
  torch::Tensor chosen_logps, rejected_logps;      // [B] the log-probs TRL logs as logps/*: ld-weighted; simpo, orpo: per-token means
};

LossOutput preference_loss(const PairLogps& logps, const LossConfig& config);

// Right-padded [B, max length] of 1-D per-token tensors (zeros past each one's end).
torch::Tensor pad_token_logps(const std::vector<torch::Tensor>& rows);

}  // namespace tpo::train
