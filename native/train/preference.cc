#include "train/preference.h"

#include <tuple>
#include <unordered_map>

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
  const size_t n = pairs.size();
  std::vector<torch::Tensor> pc(n), pr(n), rc, rr, nc, nr;
  for (size_t i = 0; i < n; ++i) {
    if (pairs[i].chosen.numel() == 0 || pairs[i].rejected.numel() == 0)
      throw std::invalid_argument("pair " + std::to_string(i) + ": an answer has no tokens");
    nc.push_back(torch::tensor(static_cast<double>(pairs[i].chosen.numel()), torch::kFloat32));
    nr.push_back(torch::tensor(static_cast<double>(pairs[i].rejected.numel()), torch::kFloat32));
  }
  const bool with_reference = !config.loss.reference_free && config.reference != ReferenceMode::None;
  if (with_reference && config.reference == ReferenceMode::Precomputed) {
    for (size_t i = 0; i < n; ++i) {
      if (!pairs[i].reference) throw std::invalid_argument("pair " + std::to_string(i) + ": reference log-probs were to be precomputed but are missing");
      rc.push_back(torch::tensor(pairs[i].reference->first, torch::kFloat32));
      rr.push_back(torch::tensor(pairs[i].reference->second, torch::kFloat32));
    }
  }
  const bool online_reference = with_reference && config.reference != ReferenceMode::Precomputed;
  if (config.reference == ReferenceMode::FrozenCopy && online_reference && !reference)
    throw std::invalid_argument("a frozen-copy reference needs the reference model");
  std::vector<torch::Tensor> ref_c(n), ref_r(n);

  if (config.encode_once) {
    // The pairs about one video (the same frames tensor, as the trainer passes them) are scored together: the
    // video is encoded once for them, and with share_prefix everything their prompts start with (the system
    // text and the video) runs once, each pair's question and answers after it (model::prompts_logprobs).
    std::vector<std::vector<size_t>> groups;
    std::unordered_map<const void*, size_t> group_of;
    for (size_t i = 0; i < n; ++i) {
      const void* key = pairs[i].video.defined() ? pairs[i].video.unsafeGetTensorImpl() : nullptr;
      const auto [it, fresh] = group_of.emplace(key, groups.size());
      if (fresh) groups.emplace_back();
      groups[it->second].push_back(i);
    }
    auto score = [&](model::VideoLMImpl& lm, const std::vector<size_t>& group, const torch::Tensor& video,
                     std::vector<torch::Tensor>& chosen, std::vector<torch::Tensor>& rejected) {
      std::vector<model::PromptAnswers> items;
      for (size_t i : group) items.push_back({pairs[i].prompt, {pairs[i].chosen, pairs[i].rejected}});
      const auto scored = model::prompts_logprobs(lm, items, video, config.share_prefix);
      for (size_t k = 0; k < group.size(); ++k) {
        chosen[group[k]] = scored[k].sums[0];
        rejected[group[k]] = scored[k].sums[1];
      }
    };
    for (const auto& group : groups) {
      const torch::Tensor video = tokens_of(policy, pairs[group[0]].video);
      score(policy, group, video, pc, pr);
      if (!online_reference) continue;
      torch::NoGradGuard no_grad;
      if (config.reference == ReferenceMode::LoraDisabled) {
        // The base model is the reference: the same weights with every adapter switched off, and the same visual
        // tokens (LoRA adapts the language model only, so the tower's output is the base model's).
        const AdaptersOff off(policy);
        score(policy, group, video.defined() ? video.detach() : video, ref_c, ref_r);
      } else {
        score(*reference, group, tokens_of(*reference, pairs[group[0]].video), ref_c, ref_r);
      }
    }
  } else {
    // As TRL runs it: each answer with its own copy of the prompt, the video encoded again for every answer and
    // model (the baseline `tpo bench pytorch` measures the savings against).
    auto score = [&](model::VideoLMImpl& lm, const Pair& pair) -> std::pair<torch::Tensor, torch::Tensor> {
      auto c = model::answer_logprobs(lm, pair.prompt, {pair.chosen}, tokens_of(lm, pair.video), config.share_prefix);
      auto r = model::answer_logprobs(lm, pair.prompt, {pair.rejected}, tokens_of(lm, pair.video), config.share_prefix);
      return {c.sums[0], r.sums[0]};
    };
    for (size_t i = 0; i < n; ++i) {
      std::tie(pc[i], pr[i]) = score(policy, pairs[i]);
      if (!online_reference) continue;
      torch::NoGradGuard no_grad;
      if (config.reference == ReferenceMode::LoraDisabled) {
        const AdaptersOff off(policy);
        std::tie(ref_c[i], ref_r[i]) = score(policy, pairs[i]);
      } else {
        std::tie(ref_c[i], ref_r[i]) = score(*reference, pairs[i]);
      }
    }
  }
  if (online_reference) {
    for (size_t i = 0; i < n; ++i) {
      rc.push_back(ref_c[i].detach());
      rr.push_back(ref_r[i].detach());
    }
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

std::map<std::string, double> preference_metrics(const torch::Tensor& chosen_rewards, const torch::Tensor& rejected_rewards,
                                                 const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                                                 const torch::Tensor& nll, double loss) {
  const auto mean = [](const torch::Tensor& t) { return t.detach().to(torch::kFloat64).mean().item<double>(); };
  const auto chosen = chosen_rewards.detach(), rejected = rejected_rewards.detach();
  return {
      {"loss", loss},
      {"rewards/chosen", mean(chosen)},
      {"rewards/rejected", mean(rejected)},
      {"rewards/accuracies", mean((chosen > rejected).to(torch::kFloat64))},
      {"rewards/margins", mean(chosen - rejected)},
      {"logps/chosen", mean(policy_chosen)},
      {"logps/rejected", mean(policy_rejected)},
      {"nll_loss", mean(nll)},
  };
}

}  // namespace tpo::train
