#include "train/losses.h"

#include <cmath>
#include <stdexcept>
#include <utility>

namespace tpo::train {
namespace {

namespace F = torch::nn::functional;
using torch::Tensor;

const std::vector<std::pair<const char*, LossType>>& names() {
  static const std::vector<std::pair<const char*, LossType>> all = {
      {"sigmoid", LossType::Sigmoid},     {"hinge", LossType::Hinge},
      {"ipo", LossType::Ipo},             {"exo_pair", LossType::ExoPair},
      {"nca_pair", LossType::NcaPair},    {"robust", LossType::Robust},
      {"bco_pair", LossType::BcoPair},    {"sppo_hard", LossType::SppoHard},
      {"aot", LossType::Aot},             {"aot_unpaired", LossType::AotUnpaired},
      {"apo_zero", LossType::ApoZero},    {"apo_down", LossType::ApoDown},
      {"discopop", LossType::Discopop},   {"sigmoid_norm", LossType::SigmoidNorm},
      {"sft", LossType::Sft},             {"simpo", LossType::Simpo},
      {"orpo", LossType::Orpo},
  };
  return all;
}

bool reference_free_family(LossType t) { return t == LossType::Sft || t == LossType::Simpo || t == LossType::Orpo; }

Tensor logsigmoid(const Tensor& x) { return F::logsigmoid(x); }

// log(1 - exp(x)) for x < 0, ORPO's log1mexp (branch at -ln 2 against cancellation).
Tensor log1mexp(const Tensor& x) {
  constexpr double t = -0.6931471805599453;
  return torch::where(x < t, torch::log1p(-torch::exp(x)), torch::log(-torch::expm1(x)));
}

// TRL's LD-DPO sum: the first min(|chosen|, |rejected|) tokens in full, the rest times alpha.
Tensor ld_weighted(const Tensor& per_token, const Tensor& shared_lengths, double alpha) {
  const auto positions = torch::arange(per_token.size(1), per_token.options()).unsqueeze(0);
  const auto shared = (positions < shared_lengths.unsqueeze(1)).to(per_token.dtype());
  return (per_token * shared).sum(1) + alpha * (per_token * (1 - shared)).sum(1);
}

// -logsigmoid(b x) (1 - ls) - logsigmoid(-b x) ls: sigmoid with label smoothing, as cDPO, aot and simpo write it.
Tensor smoothed_sigmoid(const Tensor& x, double b, double ls) {
  auto loss = -logsigmoid(b * x);
  if (ls != 0) loss = loss * (1 - ls) - logsigmoid(-b * x) * ls;
  return loss;
}

}  // namespace

LossType parse_loss_type(const std::string& name) {
  for (const auto& [n, t] : names())
    if (name == n) return t;
  std::string list;
  for (const auto& [n, _] : names()) list += (list.empty() ? "" : ", ") + std::string(n);
  throw std::invalid_argument("loss type '" + name + "' is not one of " + list);
}

std::string loss_type_name(LossType type) {
  for (const auto& [n, t] : names())
    if (t == type) return n;
  return "?";
}

bool LossConfig::has(LossType type) const {
  for (const auto& t : terms)
    if (t.type == type) return true;
  return false;
}

double LossConfig::nll_weight() const {
  double w = 0;
  for (const auto& t : terms)
    if (t.type == LossType::Sft || t.type == LossType::Orpo) w += t.weight;
  return w;
}

bool LossConfig::needs_reference() const {
  // As in TRL: DPOTrainer has a reference for every list (sft alone still logs rewards against it); CPO's simpo
  // and ORPO have none.
  return !reference_free && !has(LossType::Simpo) && !has(LossType::Orpo);
}

void LossConfig::validate() const {
  if (terms.empty()) throw std::invalid_argument("loss: type must name at least one loss");
  if (!(beta > 0)) throw std::invalid_argument("loss: beta must be positive");
  if (!(label_smoothing >= 0 && label_smoothing < 0.5)) throw std::invalid_argument("loss: labelSmoothing must be in [0, 0.5)");
  if (ld_alpha && !(*ld_alpha >= 0 && *ld_alpha <= 1)) throw std::invalid_argument("loss: ldAlpha must be in [0, 1]");
  if (!(discopop_tau > 0)) throw std::invalid_argument("loss: discopopTau must be positive");
  for (const auto& t : terms)
    if (!std::isfinite(t.weight)) throw std::invalid_argument("loss: weights must be finite numbers");
  if (has(LossType::ExoPair) && label_smoothing == 0)
    throw std::invalid_argument("loss: exo_pair needs labelSmoothing > 0 (its epsilon; the EXO paper recommends 1e-3)");
  if (use_weighting && (has(LossType::Aot) || has(LossType::AotUnpaired)))
    throw std::invalid_argument("loss: useWeighting cannot weigh aot or aot_unpaired, which sort the pairs (TRL refuses it too)");
  const bool simpo = has(LossType::Simpo), orpo = has(LossType::Orpo);
  if (simpo || orpo) {
    if (simpo && orpo) throw std::invalid_argument("loss: simpo and orpo are two objectives; pick one");
    for (const auto& t : terms)
      if (!reference_free_family(t.type))
        throw std::invalid_argument("loss: " + std::string(simpo ? "simpo" : "orpo") + " combines with sft only, not " + loss_type_name(t.type) +
                                    " (their rewards differ: mean log-probs against log-ratios)");
    if (ld_alpha) throw std::invalid_argument("loss: ldAlpha applies to DPOTrainer's losses, not simpo or orpo");
    if (use_weighting) throw std::invalid_argument("loss: useWeighting applies to DPOTrainer's losses, not simpo or orpo");
  }
}

torch::Tensor pad_token_logps(const std::vector<torch::Tensor>& rows) {
  int64_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.numel());
  std::vector<Tensor> padded;
  for (const auto& r : rows) {
    const auto flat = r.reshape({-1});
    padded.push_back(flat.numel() == longest ? flat : torch::cat({flat, torch::zeros({longest - flat.numel()}, flat.options())}));
  }
  return torch::stack(padded);
}

LossOutput preference_loss(const PairLogps& in, const LossConfig& c) {
  c.validate();
  const bool free = c.reference_free || !in.ref_chosen.defined();
  if (!free && (!in.ref_rejected.defined())) throw std::invalid_argument("preference loss: reference log-probs for chosen without rejected");
  const auto device = in.policy_chosen.device();
  const Tensor nc = in.chosen_tokens.to(device), nr = in.rejected_tokens.to(device);
  const double b = c.beta, ls = c.label_smoothing;
  LossOutput out;
  // TRL's sft term: cross-entropy over every chosen answer token of the batch, from the unweighted log-probs.
  out.nll = -in.policy_chosen.sum() / nc.sum();

  // The sequence log-probs the losses read: LD-DPO weighs the tokens past the shorter answer's length by alpha.
  Tensor pc = in.policy_chosen, pr = in.policy_rejected;
  Tensor rc = free ? torch::zeros_like(pc) : in.ref_chosen.to(device), rr = free ? torch::zeros_like(pr) : in.ref_rejected.to(device);
  if (c.ld_alpha) {
    if (!in.policy_chosen_token_logps.defined() || !in.policy_rejected_token_logps.defined())
      throw std::invalid_argument("preference loss: ldAlpha needs the policy's per-token log-probs");
    const auto shared = torch::minimum(nc, nr);
    pc = ld_weighted(in.policy_chosen_token_logps, shared, *c.ld_alpha);
    pr = ld_weighted(in.policy_rejected_token_logps, shared, *c.ld_alpha);
    if (!free && in.ref_chosen_token_logps.defined()) {
      rc = ld_weighted(in.ref_chosen_token_logps.to(device), shared, *c.ld_alpha);
      rr = ld_weighted(in.ref_rejected_token_logps.to(device), shared, *c.ld_alpha);
    }
  }
  const auto chosen_logratios = pc - rc, rejected_logratios = pr - rr;
  const auto delta = chosen_logratios - rejected_logratios;
  // CPOTrainer's and ORPOTrainer's sequence scores: the mean log-prob over the answer's tokens.
  const auto mean_chosen = in.policy_chosen / nc, mean_rejected = in.policy_rejected / nr;

  Tensor weights;  // WPO, Eq. 2: exp(mean over the answer of log p(y_t) - log Σ_v p(v)²), both answers', no gradient
  if (c.use_weighting) {
    if (!in.policy_chosen_log_sq_mass.defined() || !in.policy_rejected_log_sq_mass.defined())
      throw std::invalid_argument("preference loss: useWeighting needs the policy's log Σ p² per answer");
    torch::NoGradGuard no_grad;
    const auto wc = torch::exp((in.policy_chosen.detach() - in.policy_chosen_log_sq_mass.to(device)) / nc.clamp_min(1));
    const auto wr = torch::exp((in.policy_rejected.detach() - in.policy_rejected_log_sq_mass.to(device)) / nr.clamp_min(1));
    weights = wc * wr;
  }

  Tensor losses;
  for (const auto& term : c.terms) {
    Tensor l;
    switch (term.type) {
      case LossType::Sigmoid:
        l = smoothed_sigmoid(delta, b, ls);  // ls > 0: cDPO (tpo keeps TRL 0.x's form; 1.x reads no ls here)
        break;
      case LossType::Hinge:
        l = torch::relu(1 - b * delta);
        break;
      case LossType::Ipo:
      case LossType::SigmoidNorm: {
        // Both normalise each answer's score by its token count (TRL: clamp(min=1)).
        const auto d = chosen_logratios / nc.clamp_min(1) - rejected_logratios / nr.clamp_min(1);
        l = term.type == LossType::Ipo ? (d - 1 / (2 * b)).pow(2) : -logsigmoid(b * d);
        break;
      }
      case LossType::ExoPair: {
        const double eps = ls;
        const auto x = b * delta;
        l = torch::sigmoid(x) * (logsigmoid(x) - std::log1p(-eps)) + torch::sigmoid(-x) * (logsigmoid(-x) - std::log(eps));
        break;
      }
      case LossType::NcaPair: {
        const auto cr = b * chosen_logratios, rj = b * rejected_logratios;
        l = -logsigmoid(cr) - 0.5 * logsigmoid(-cr) - 0.5 * logsigmoid(-rj);
        break;
      }
      case LossType::Robust:
        l = (-(1 - ls) * logsigmoid(b * delta) + ls * logsigmoid(-b * delta)) / (1 - 2 * ls);
        break;
      case LossType::BcoPair:
        l = -logsigmoid(b * chosen_logratios) - logsigmoid(-(b * rejected_logratios));
        break;
      case LossType::SppoHard:
        l = (chosen_logratios - 0.5 / b).pow(2) + (rejected_logratios + 0.5 / b).pow(2);
        break;
      case LossType::Aot: {
        const auto logratios = std::get<0>(torch::sort(pc - pr, 0));
        const auto ref_logratios = std::get<0>(torch::sort(rc - rr, 0));
        l = smoothed_sigmoid(logratios - ref_logratios, b, ls);
        break;
      }
      case LossType::AotUnpaired: {
        const auto chosen = std::get<0>(torch::sort(chosen_logratios, 0));
        const auto rejected = std::get<0>(torch::sort(rejected_logratios, 0));
        l = smoothed_sigmoid(chosen - rejected, b, ls);
        break;
      }
      case LossType::ApoZero:
        l = (1 - torch::sigmoid(b * chosen_logratios)) + torch::sigmoid(b * rejected_logratios);
        break;
      case LossType::ApoDown:
        l = torch::sigmoid(b * chosen_logratios) + (1 - torch::sigmoid(b * (chosen_logratios - rejected_logratios)));
        break;
      case LossType::Discopop: {
        const auto logits = delta * b;
        const auto modulation = torch::sigmoid(logits / c.discopop_tau);
        l = -logsigmoid(logits) * (1 - modulation) + torch::exp(-logits) * modulation;
        break;
      }
      case LossType::Sft:
        l = out.nll.expand({pc.size(0)});
        break;
      case LossType::Simpo:
        l = smoothed_sigmoid(mean_chosen - mean_rejected - c.simpo_gamma / b, b, ls);
        break;
      case LossType::Orpo: {
        // ORPOTrainer: loss = nll - beta * mean(logsigmoid(log odds)); per pair, the NLL term spread evenly.
        const auto log_odds = (mean_chosen - mean_rejected) - (log1mexp(mean_chosen) - log1mexp(mean_rejected));
        l = out.nll - b * logsigmoid(log_odds);
        break;
      }
    }
    // The sft term stays unweighted, as TRL 0.x's rpo_alpha NLL was (TRL 1.13 raises when it would weigh it).
    if (weights.defined() && term.type != LossType::Sft) l = l * weights;
    l = l * term.weight;
    losses = losses.defined() ? losses + l : l;
  }
  out.losses = losses;
  out.loss = losses.mean();
  if (c.has(LossType::Simpo) || c.has(LossType::Orpo)) {
    out.chosen_rewards = (b * mean_chosen).detach();
    out.rejected_rewards = (b * mean_rejected).detach();
    out.chosen_logps = mean_chosen.detach();
    out.rejected_logps = mean_rejected.detach();
  } else {
    out.chosen_rewards = (b * chosen_logratios).detach();
    out.rejected_rewards = (b * rejected_logratios).detach();
    out.chosen_logps = pc.detach();
    out.rejected_logps = pr.detach();
  }
  return out;
}

}  // namespace tpo::train
