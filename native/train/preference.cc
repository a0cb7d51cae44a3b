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

// Visual tokens of a pair's video, encoded once for policy and reference (a frozen copy has its own tower only if
// its weights differ; we encode with each model that scores, sharing when they are the same model), in the video's
// own layout. With the tokens, what else the encoding gives: Qwen2.5-VL's M-RoPE positions of them (the text after
// a video sits where its grid puts it, so every shared or batched form scores it at the same positions).
model::VideoTokens tokens_of(model::VideoLMImpl& lm, const model::VideoInput& video) {
  return model::encode_video_input(lm, video);
}

}  // namespace

namespace {

// One model's scores of the pairs' answers as the loss reads them: sums [B], per-token log-probs [B, A_max] (ld_alpha)
// and, when asked, Σ log Σ_v p(v)² [B] (use_weighting).
struct Scores {
  torch::Tensor chosen, rejected, chosen_tokens, rejected_tokens, chosen_sq_mass, rejected_sq_mass;
};

// ForwardConfig::batch_pairs: the scores of every pair under `lm`, from one forward.
Scores score_batched(model::VideoLMImpl& lm, const std::vector<Pair>& pairs, bool detach_video, bool sq_mass = false) {
  model::VisualTokenCache visual(lm);  // each distinct video encoded once
  std::vector<model::ScoredSequence> sequences;
  for (const auto& pair : pairs) {
    const model::VideoTokens& encoded = visual.encoded(pair.video);
    torch::Tensor video = encoded.tokens;
    if (detach_video && video.defined()) video = video.detach();
    sequences.push_back({pair.prompt, pair.chosen, video, encoded.rope});
    sequences.push_back({pair.prompt, pair.rejected, video, encoded.rope});
  }
  const auto scores = model::batch_answer_scores(lm, sequences, sq_mass);
  const auto per_token = scores.token_logprobs.view({static_cast<int64_t>(pairs.size()), 2, -1});
  const auto sums = per_token.sum(2);
  Scores out{sums.select(1, 0), sums.select(1, 1), per_token.select(1, 0), per_token.select(1, 1), {}, {}};
  if (sq_mass) {
    const auto sq = scores.log_sq_mass.view({-1, 2});
    out.chosen_sq_mass = sq.select(1, 0);
    out.rejected_sq_mass = sq.select(1, 1);
  }
  return out;
}

PreferenceForward batched_preference_forward(model::VideoLMImpl& policy, model::VideoLMImpl* reference,
                                             const std::vector<Pair>& pairs, const ForwardConfig& config) {
  PreferenceForward result;
  const auto scores = score_batched(policy, pairs, false, config.loss.use_weighting);
  result.logps.policy_chosen = scores.chosen;
  result.logps.policy_rejected = scores.rejected;
  result.logps.policy_chosen_token_logps = scores.chosen_tokens;
  result.logps.policy_rejected_token_logps = scores.rejected_tokens;
  result.logps.policy_chosen_log_sq_mass = scores.chosen_sq_mass;
  result.logps.policy_rejected_log_sq_mass = scores.rejected_sq_mass;
  std::vector<torch::Tensor> nc, nr, rc, rr;
  for (const auto& pair : pairs) {
    nc.push_back(torch::tensor(static_cast<double>(pair.chosen.numel()), torch::kFloat32));
    nr.push_back(torch::tensor(static_cast<double>(pair.rejected.numel()), torch::kFloat32));
  }
  result.logps.chosen_tokens = torch::stack(nc);
  result.logps.rejected_tokens = torch::stack(nr);
  if (config.loss.needs_reference() && config.reference != ReferenceMode::None) {
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
      Scores ref;
      if (config.reference == ReferenceMode::LoraDisabled) {
        const AdaptersOff off(policy);
        ref = score_batched(policy, pairs, true);
      } else {
        if (!reference) throw std::invalid_argument("a frozen-copy reference needs the reference model");
        ref = score_batched(*reference, pairs, true);
      }
      result.logps.ref_chosen = ref.chosen.detach();
      result.logps.ref_rejected = ref.rejected.detach();
      result.logps.ref_chosen_token_logps = ref.chosen_tokens.detach();
      result.logps.ref_rejected_token_logps = ref.rejected_tokens.detach();
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
  std::vector<torch::Tensor> pc_tokens(n), pr_tokens(n), ref_c_tokens(n), ref_r_tokens(n), pc_sq(n), pr_sq(n);
  const bool sq_mass = config.loss.use_weighting;
  for (size_t i = 0; i < n; ++i) {
    if (pairs[i].chosen.numel() == 0 || pairs[i].rejected.numel() == 0)
      throw std::invalid_argument("pair " + std::to_string(i) + ": an answer has no tokens");
    nc.push_back(torch::tensor(static_cast<double>(pairs[i].chosen.numel()), torch::kFloat32));
    nr.push_back(torch::tensor(static_cast<double>(pairs[i].rejected.numel()), torch::kFloat32));
  }
  const bool with_reference = config.loss.needs_reference() && config.reference != ReferenceMode::None;
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
    // The pairs about one video (the same frames tensor with one layout, as the trainer passes them; the first
    // pair's layout stands for the group) are scored together: the video is encoded once for them, and with
    // share_prefix everything their prompts start with (the system text and the video) runs once, each pair's
    // question and answers after it (model::prompts_logprobs).
    std::vector<std::vector<size_t>> groups;
    std::unordered_map<const void*, size_t> group_of;
    for (size_t i = 0; i < n; ++i) {
      const auto& video = pairs[i].video.video;
      const void* key = video.defined() ? video.unsafeGetTensorImpl() : nullptr;
      const auto [it, fresh] = group_of.emplace(key, groups.size());
      if (fresh) groups.emplace_back();
      groups[it->second].push_back(i);
    }
    auto score = [&](model::VideoLMImpl& lm, const std::vector<size_t>& group, const model::VideoTokens& video,
                     std::vector<torch::Tensor>& chosen, std::vector<torch::Tensor>& rejected,
                     std::vector<torch::Tensor>& chosen_tokens, std::vector<torch::Tensor>& rejected_tokens,
                     std::vector<torch::Tensor>* chosen_sq, std::vector<torch::Tensor>* rejected_sq) {
      std::vector<model::PromptAnswers> items;
      for (size_t i : group) items.push_back({pairs[i].prompt, {pairs[i].chosen, pairs[i].rejected}});
      const auto scored = model::prompts_logprobs(lm, items, video.tokens, config.share_prefix, chosen_sq != nullptr, video.rope);
      for (size_t k = 0; k < group.size(); ++k) {
        chosen[group[k]] = scored[k].sums[0];
        rejected[group[k]] = scored[k].sums[1];
        chosen_tokens[group[k]] = scored[k].token_logprobs[0];
        rejected_tokens[group[k]] = scored[k].token_logprobs[1];
        if (chosen_sq) {
          (*chosen_sq)[group[k]] = scored[k].log_sq_mass[0];
          (*rejected_sq)[group[k]] = scored[k].log_sq_mass[1];
        }
      }
    };
    for (const auto& group : groups) {
      const model::VideoTokens video = tokens_of(policy, pairs[group[0]].video);
      score(policy, group, video, pc, pr, pc_tokens, pr_tokens, sq_mass ? &pc_sq : nullptr, sq_mass ? &pr_sq : nullptr);
      if (!online_reference) continue;
      torch::NoGradGuard no_grad;
      if (config.reference == ReferenceMode::LoraDisabled) {
        // The base model is the reference: the same weights with every adapter switched off, and the same visual
        // tokens (LoRA adapts the language model only, so the tower's output is the base model's).
        const AdaptersOff off(policy);
        model::VideoTokens detached = video;
        if (detached.tokens.defined()) detached.tokens = detached.tokens.detach();
        score(policy, group, detached, ref_c, ref_r, ref_c_tokens, ref_r_tokens, nullptr, nullptr);
      } else {
        score(*reference, group, tokens_of(*reference, pairs[group[0]].video), ref_c, ref_r, ref_c_tokens, ref_r_tokens,
              nullptr, nullptr);
      }
    }
  } else {
    // As TRL runs it: each answer with its own copy of the prompt, the video encoded again for every answer and
    // model (the baseline `tpo bench pytorch` measures the savings against).
    auto score = [&](model::VideoLMImpl& lm, const Pair& pair, bool with_sq) {
      const auto cv = tokens_of(lm, pair.video);
      auto c = model::answer_logprobs(lm, pair.prompt, {pair.chosen}, cv.tokens, config.share_prefix, with_sq, cv.rope);
      const auto rv = tokens_of(lm, pair.video);
      auto r = model::answer_logprobs(lm, pair.prompt, {pair.rejected}, rv.tokens, config.share_prefix, with_sq, rv.rope);
      return std::make_pair(c, r);
    };
    for (size_t i = 0; i < n; ++i) {
      const auto [c, r] = score(policy, pairs[i], sq_mass);
      pc[i] = c.sums[0], pr[i] = r.sums[0], pc_tokens[i] = c.token_logprobs[0], pr_tokens[i] = r.token_logprobs[0];
      if (sq_mass) pc_sq[i] = c.log_sq_mass[0], pr_sq[i] = r.log_sq_mass[0];
      if (!online_reference) continue;
      torch::NoGradGuard no_grad;
      std::pair<model::AnswerLogprobs, model::AnswerLogprobs> ref;
      if (config.reference == ReferenceMode::LoraDisabled) {
        const AdaptersOff off(policy);
        ref = score(policy, pairs[i], false);
      } else {
        ref = score(*reference, pairs[i], false);
      }
      ref_c[i] = ref.first.sums[0], ref_r[i] = ref.second.sums[0];
      ref_c_tokens[i] = ref.first.token_logprobs[0], ref_r_tokens[i] = ref.second.token_logprobs[0];
    }
  }
  if (online_reference) {
    for (size_t i = 0; i < n; ++i) {
      rc.push_back(ref_c[i].detach());
      rr.push_back(ref_r[i].detach());
      ref_c_tokens[i] = ref_c_tokens[i].detach();
      ref_r_tokens[i] = ref_r_tokens[i].detach();
    }
  }
  PreferenceForward result;
  result.logps.policy_chosen = torch::stack(pc);
  result.logps.policy_rejected = torch::stack(pr);
  result.logps.chosen_tokens = torch::stack(nc);
  result.logps.rejected_tokens = torch::stack(nr);
  result.logps.policy_chosen_token_logps = pad_token_logps(pc_tokens);
  result.logps.policy_rejected_token_logps = pad_token_logps(pr_tokens);
  if (sq_mass) {
    result.logps.policy_chosen_log_sq_mass = torch::stack(pc_sq);
    result.logps.policy_rejected_log_sq_mass = torch::stack(pr_sq);
  }
  if (!rc.empty()) {
    result.logps.ref_chosen = torch::stack(rc);
    result.logps.ref_rejected = torch::stack(rr);
  }
  if (online_reference) {
    result.logps.ref_chosen_token_logps = pad_token_logps(ref_c_tokens);
    result.logps.ref_rejected_token_logps = pad_token_logps(ref_r_tokens);
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
