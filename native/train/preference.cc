#include "train/preference.h"

#include <tuple>

#include "model/inference.h"
#include "model/lora.h"

namespace tpo::train {
namespace {

namespace F = torch::nn::functional;

// The base model as the reference: every LoRA adapter off for the scope, on this thread only (model::LoraScope),
// so calls on the same model from other threads keep their own setting; restored when it ends (also on a throw).
struct AdaptersOff {
  explicit AdaptersOff(model::VideoLMImpl&) : off(false) {}
  model::LoraScope off;
};

torch::Tensor logsigmoid_of(const torch::Tensor& x) { return F::logsigmoid(x); }

// Visual tokens of a pair's video, encoded once for policy and reference (a frozen copy has its own tower only if
// its weights differ; we encode with each model that scores, sharing when they are the same model).
torch::Tensor tokens_of(model::VideoLMImpl& lm, const torch::Tensor& video) {
  if (!video.defined() || video.dim() == 2) return video;
  return lm.encode_video(video).tokens;
}

}  // namespace

LossType parse_loss_type(const std::string& name) {
  if (name == "sigmoid") return LossType::Sigmoid;
  if (name == "hinge") return LossType::Hinge;
  if (name == "ipo") return LossType::Ipo;
  if (name == "robust") return LossType::Robust;
  throw std::invalid_argument("loss type '" + name + "' is not one of sigmoid, hinge, ipo, robust");
}

LossOutput preference_loss(const PairLogps& in, const LossConfig& c) {
  torch::Tensor pc = in.policy_chosen, pr = in.policy_rejected;
  torch::Tensor rc = in.ref_chosen, rr = in.ref_rejected;
  const bool free = c.reference_free || !rc.defined();
  LossOutput out;
  // The NLL uses the summed log-probs before any length normalisation: mean over all chosen tokens of the batch.
  out.nll = -pc.sum() / in.chosen_tokens.sum();
  if (c.type == LossType::Ipo) {
    // TRL normalises policy and reference log-probs by answer length for IPO (and reports rewards from them).
    pc = pc / in.chosen_tokens;
    pr = pr / in.rejected_tokens;
    if (!free) {
      rc = rc / in.chosen_tokens;
      rr = rr / in.rejected_tokens;
    }
  }
  const auto logratios = pc - pr;
  const auto ref_logratios = free ? torch::zeros_like(logratios) : (rc - rr);
  const auto logits = logratios - ref_logratios;
  const double b = c.beta, ls = c.label_smoothing;
  switch (c.type) {
    case LossType::Sigmoid:
      out.losses = -logsigmoid_of(b * logits) * (1 - ls) - logsigmoid_of(-b * logits) * ls;
      break;
    case LossType::Robust:
      out.losses = (-logsigmoid_of(b * logits) * (1 - ls) + logsigmoid_of(-b * logits) * ls) / (1 - 2 * ls);
      break;
    case LossType::Hinge:
      out.losses = torch::relu(1 - b * logits);
      break;
    case LossType::Ipo:
      out.losses = (logits - 1 / (2 * b)).pow(2);
      break;
  }
  out.chosen_rewards = (b * (free ? pc : pc - rc)).detach();
  out.rejected_rewards = (b * (free ? pr : pr - rr)).detach();
  out.loss = out.losses.mean() + c.sft_weight * out.nll;
  return out;
}

namespace {

// ForwardConfig::batch_pairs: [chosen, rejected] summed log-probs of every pair under `lm`, from one forward.
std::pair<torch::Tensor, torch::Tensor> score_batched(model::VideoLMImpl& lm, const std::vector<Pair>& pairs, bool detach_video) {
  model::VisualTokenCache visual(lm);  // each distinct video encoded once
  std::vector<model::ScoredSequence> sequences;
  for (const auto& pair : pairs) {
    torch::Tensor video = visual(pair.video);
    if (detach_video && video.defined()) video = video.detach();
    sequences.push_back({pair.prompt, pair.chosen, video});
    sequences.push_back({pair.prompt, pair.rejected, video});
  }
  const auto sums = model::batch_answer_logprobs(lm, sequences).view({-1, 2});
  return {sums.select(1, 0), sums.select(1, 1)};
}

PreferenceForward batched_preference_forward(model::VideoLMImpl& policy, model::VideoLMImpl* reference,
                                             const std::vector<Pair>& pairs, const ForwardConfig& config) {
  PreferenceForward result;
  std::tie(result.logps.policy_chosen, result.logps.policy_rejected) = score_batched(policy, pairs, false);
  std::vector<torch::Tensor> nc, nr, rc, rr;
  for (const auto& pair : pairs) {
    nc.push_back(torch::tensor(static_cast<double>(pair.chosen.numel()), torch::kFloat32));
    nr.push_back(torch::tensor(static_cast<double>(pair.rejected.numel()), torch::kFloat32));
  }
  result.logps.chosen_tokens = torch::stack(nc);
  result.logps.rejected_tokens = torch::stack(nr);
  if (!config.loss.reference_free && config.reference != ReferenceMode::None) {
    if (config.reference == ReferenceMode::Precomputed) {
      for (size_t i = 0; i < pairs.size(); ++i) {
        if (!pairs[i].reference) throw std::invalid_argument("pair " + std::to_string(i) + ": reference log-probs were to be precomputed but are missing");
        rc.push_back(torch::tensor(pairs[i].reference->first, torch::kFloat32));
        rr.push_back(torch::tensor(pairs[i].reference->second, torch::kFloat32));
      }
      result.logps.ref_chosen = torch::stack(rc);
      result.logps.ref_rejected = torch::stack(rr);
    } else {
      torch::NoGradGuard no_grad;
      std::pair<torch::Tensor, torch::Tensor> ref;
      if (config.reference == ReferenceMode::LoraDisabled) {
        const AdaptersOff off(policy);
        ref = score_batched(policy, pairs, true);
      } else {
        if (!reference) throw std::invalid_argument("a frozen-copy reference needs the reference model");
        ref = score_batched(*reference, pairs, true);
      }
      result.logps.ref_chosen = ref.first.detach();
      result.logps.ref_rejected = ref.second.detach();
    }
  }
  result.out = preference_loss(result.logps, config.loss);
  return result;
}

}  // namespace

PreferenceForward preference_forward(model::VideoLMImpl& policy, model::VideoLMImpl* reference,
                                     const std::vector<Pair>& pairs, const ForwardConfig& config) {
  if (pairs.empty()) throw std::invalid_argument("a step needs at least one pair");
  if (config.batch_pairs) {
    for (size_t i = 0; i < pairs.size(); ++i)
      if (pairs[i].chosen.numel() == 0 || pairs[i].rejected.numel() == 0)
        throw std::invalid_argument("pair " + std::to_string(i) + ": an answer has no tokens");
    return batched_preference_forward(policy, reference, pairs, config);
  }
  std::vector<torch::Tensor> pc, pr, rc, rr, nc, nr;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const Pair& pair = pairs[i];
    const std::string which = "pair " + std::to_string(i);
    if (pair.chosen.numel() == 0 || pair.rejected.numel() == 0) throw std::invalid_argument(which + ": an answer has no tokens");
    // Each answer scored by one model; with encode_once off, the video is encoded again for every answer (the
    // baseline `tpo bench dpo` measures against).
    auto score = [&](model::VideoLMImpl& lm, const torch::Tensor& video) -> std::pair<torch::Tensor, torch::Tensor> {
      if (config.encode_once) {
        auto r = model::answer_logprobs(lm, pair.prompt, {pair.chosen, pair.rejected}, video, config.share_prefix);
        return {r.sums[0], r.sums[1]};
      }
      auto c = model::answer_logprobs(lm, pair.prompt, {pair.chosen}, tokens_of(lm, pair.video), config.share_prefix);
      auto r = model::answer_logprobs(lm, pair.prompt, {pair.rejected}, tokens_of(lm, pair.video), config.share_prefix);
      return {c.sums[0], r.sums[0]};
    };
    const torch::Tensor video = config.encode_once ? tokens_of(policy, pair.video) : torch::Tensor();
    auto [policy_c, policy_r] = score(policy, video);
    pc.push_back(policy_c);
    pr.push_back(policy_r);
    nc.push_back(torch::tensor(static_cast<double>(pair.chosen.numel()), torch::kFloat32));
    nr.push_back(torch::tensor(static_cast<double>(pair.rejected.numel()), torch::kFloat32));
    if (config.loss.reference_free || config.reference == ReferenceMode::None) continue;
    if (config.reference == ReferenceMode::Precomputed) {
      if (!pair.reference) throw std::invalid_argument(which + ": reference log-probs were to be precomputed but are missing");
      rc.push_back(torch::tensor(pair.reference->first, torch::kFloat32));
      rr.push_back(torch::tensor(pair.reference->second, torch::kFloat32));
      continue;
    }
    torch::NoGradGuard no_grad;
    std::pair<torch::Tensor, torch::Tensor> ref;
    if (config.reference == ReferenceMode::LoraDisabled) {
      // The base model is the reference: the same weights with every adapter switched off, and the same visual
      // tokens (LoRA adapts the language model only, so the tower's output is the base model's).
      const AdaptersOff off(policy);
      ref = score(policy, video.defined() ? video.detach() : video);
    } else {
      if (!reference) throw std::invalid_argument("a frozen-copy reference needs the reference model");
      ref = score(*reference, config.encode_once ? tokens_of(*reference, pair.video) : torch::Tensor());
    }
    rc.push_back(ref.first.detach());
    rr.push_back(ref.second.detach());
  }
  PreferenceForward result;
  result.logps.policy_chosen = torch::stack(pc);
  result.logps.policy_rejected = torch::stack(pr);
  result.logps.chosen_tokens = torch::stack(nc);
  result.logps.rejected_tokens = torch::stack(nr);
  if (!rc.empty()) {
    result.logps.ref_chosen = torch::stack(rc);
    result.logps.ref_rejected = torch::stack(rr);
  }
  result.out = preference_loss(result.logps, config.loss);
  return result;
}

}  // namespace tpo::train
