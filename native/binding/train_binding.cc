// trainPreferenceForward: the preference loss of a batch of pairs, its metrics and (on request) gradients —
// native/train/preference.h as a Promise. The training step builds on the same forward.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>

#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/group_handle.h"
#include "binding/js_args.h"
#include "binding/model_handle.h"
#include "binding/tensor.h"
#include "binding/video_args.h"
#include "io/safetensors.h"
#include "runtime/errors.h"
#include "train/optimizer.h"
#include "train/preference.h"

namespace tpo::binding {
namespace {

// The loss in TRL 1.x's shape: `type` a name or a list of names, `weights` the list's weights (default 1 each);
// `sftWeight` (TPO's alpha, TRL 0.x's rpo_alpha) adds an sft term of that weight.
train::LossConfig loss_config(Napi::Env env, const Napi::Value& value) {
  train::LossConfig c;
  if (value.IsUndefined()) return c;
  const Args args(env, value, "loss");
  if (args.has("type")) {
    std::vector<std::string> names;
    const auto type = args.get("type");
    if (type.IsArray()) {
      const auto list = type.As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); ++i) names.push_back(string_arg(env, list.Get(i), "loss: type[" + std::to_string(i) + "]"));
    } else {
      names.push_back(string_arg(env, type, "loss: type"));
    }
    c.terms.clear();
    for (const auto& name : names) {
      try {
        c.terms.push_back({train::parse_loss_type(name), 1.0});
      } catch (const std::invalid_argument& e) {
        throw_argument_error(env, std::string("loss: type: ") + e.what());
      }
    }
  }
  if (args.has("weights")) {
    const auto weights = number_array(env, args.get("weights"), "loss: weights");
    if (weights.size() != c.terms.size())
      throw_argument_error(env, "loss: weights has " + std::to_string(weights.size()) + " entries for " + std::to_string(c.terms.size()) + " loss types");
    for (size_t i = 0; i < weights.size(); ++i) c.terms[i].weight = weights[i];
  }
  const double sft_weight = args.number("sftWeight", 0);
  if (sft_weight < 0) throw_argument_error(env, "loss: sftWeight must be >= 0");
  if (sft_weight > 0) {
    if (c.has(train::LossType::Sft)) throw_argument_error(env, "loss: sftWeight and an 'sft' entry in type both set the SFT term; keep one");
    c.terms.push_back({train::LossType::Sft, sft_weight});
  }
  c.beta = args.number("beta", c.beta);
  c.label_smoothing = args.number("labelSmoothing", 0);
  c.reference_free = args.boolean("referenceFree", false);
  if (args.has("ldAlpha")) c.ld_alpha = args.number("ldAlpha", 1);
  c.use_weighting = args.boolean("useWeighting", false);
  c.discopop_tau = args.number("discopopTau", c.discopop_tau);
  c.simpo_gamma = args.number("simpoGamma", c.simpo_gamma);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw_argument_error(env, e.what());  // each message starts with "loss: "
  }
  return c;
}

train::ReferenceMode reference_mode(Napi::Env env, const std::string& name) {
  if (name == "precomputed") return train::ReferenceMode::Precomputed;
  if (name == "lora-disabled") return train::ReferenceMode::LoraDisabled;
  if (name == "frozen-copy") return train::ReferenceMode::FrozenCopy;
  if (name == "none") return train::ReferenceMode::None;
  throw_argument_error(env, "referenceMode must be precomputed, lora-disabled, frozen-copy or none");
}

// Token ids: integer tensors of one dimension (a float tensor would be truncated to ids nobody meant).
torch::Tensor ids_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  torch::Tensor t = TensorHandle::unwrap(env, value, what);
  if (c10::isFloatingType(t.scalar_type()) || t.scalar_type() == torch::kBool || t.dim() != 1)
    throw_argument_error(env, what + " must be a 1-D tensor of integer token ids, got " + dtype_spec(t.scalar_type()).name + " " +
                                  c10::str(t.sizes()));
  return t;
}

std::vector<train::Pair> pairs_arg(Napi::Env env, const Napi::Value& value) {
  if (!value.IsArray()) throw_argument_error(env, "pairs must be an array");
  auto list = value.As<Napi::Array>();
  std::vector<train::Pair> pairs;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    const std::string what = "pairs[" + std::to_string(i) + "]";
    const Args a(env, list.Get(i), what);
    train::Pair p;
    p.prompt = ids_arg(env, a.get("prompt"), what + ".prompt");
    p.chosen = ids_arg(env, a.get("chosen"), what + ".chosen");
    p.rejected = ids_arg(env, a.get("rejected"), what + ".rejected");
    p.video = video_input_arg(env, a, what);
    if (a.has("reference")) {
      const auto ref = number_array(env, a.get("reference"), what + ".reference");
      if (ref.size() != 2) throw_argument_error(env, what + ".reference must be [chosen, rejected] log-probs");
      p.reference = std::make_pair(ref[0], ref[1]);
    }
    pairs.push_back(std::move(p));
  }
  return pairs;
}

// The forward's settings, as trainPreferenceForward and Trainer.preferenceStep both take them.
train::ForwardConfig forward_config(Napi::Env env, const Args& args) {
  train::ForwardConfig config;
  config.loss = loss_config(env, args.get("loss"));
  config.reference = reference_mode(env, args.has("referenceMode") ? args.string("referenceMode") : "lora-disabled");
  config.share_prefix = args.boolean("sharePrefix", true);
  config.encode_once = args.boolean("encodeOnce", true);
  config.batch_pairs = args.boolean("batchPairs", false);
  return config;
}

// The locks of a training call, on its worker thread: the policy exclusively (its weights or gradients change), a
// frozen reference shared; taken in address order, so two calls on the same two models never wait in a cycle.
class TrainingLocks {
 public:
  TrainingLocks(const ModelCall& policy, const ModelCall* reference) : lora_(policy.lora_enabled()) {
    SharedModel* p = &policy.shared();
    SharedModel* r = reference ? &reference->shared() : nullptr;
    if (r == p) r = nullptr;  // the same model twice: the exclusive lock covers both roles
    if (r && std::less<SharedModel*>()(r, p)) {
      reference_ = std::shared_lock<std::shared_mutex>(r->mutex);
      policy_ = std::unique_lock<std::shared_mutex>(p->mutex);
    } else {
      policy_ = std::unique_lock<std::shared_mutex>(p->mutex);
      if (r) reference_ = std::shared_lock<std::shared_mutex>(r->mutex);
    }
    policy.model().check_mapped_files();
    if (reference) reference->model().check_mapped_files();
  }

 private:
  std::unique_lock<std::shared_mutex> policy_;
  std::shared_lock<std::shared_mutex> reference_;
  model::LoraScope lora_;
};

struct ForwardResult {
  train::PreferenceForward forward;
  std::vector<std::pair<std::string, torch::Tensor>> grads;
  std::map<std::string, double> metrics;  // TRL's, as the training step reports them
};

// trainPreferenceForward({policy, reference?, pairs, loss, referenceMode, sharePrefix, gradients?: string[]})
Napi::Value preference_forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Args args(env, info[0], "trainPreferenceForward");
  auto policy = unwrap_model(env, args.get("policy"), "trainPreferenceForward: policy");
  std::shared_ptr<SharedModel> reference;
  if (args.has("reference")) reference = unwrap_model(env, args.get("reference"), "trainPreferenceForward: reference");
  if (!policy->model->lm || (reference && !reference->model->lm))
    throw_argument_error(env, "trainPreferenceForward: models must be language models");
  const train::ForwardConfig config = forward_config(env, args);
  auto pairs = pairs_arg(env, args.get("pairs"));
  std::vector<std::string> wanted;
  if (args.has("gradients")) {
    if (!args.get("gradients").IsArray()) throw_argument_error(env, "trainPreferenceForward: gradients must be an array of names");
    auto list = args.get("gradients").As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) wanted.push_back(string_arg(env, list.Get(i), "gradients"));
  }
  std::optional<ModelCall> reference_call;
  if (reference) reference_call.emplace(reference);
  return run_async(
      env, "trainPreferenceForward",
      [policy_call = ModelCall(policy), reference_call = std::move(reference_call), pairs, config, wanted] {
        // Exclusive: it clears and writes the policy's gradients.
        const TrainingLocks locks(policy_call, reference_call ? &*reference_call : nullptr);
        model::LoadedModel& policy = policy_call.model();
        ForwardResult r;
        const bool backward = !wanted.empty();
        torch::AutoGradMode grad_mode(backward);
        auto params = policy.lm->named_parameters(true);
        for (auto& p : params) p.value().mutable_grad() = torch::Tensor();
        r.forward = train::preference_forward(*policy.lm, reference_call ? reference_call->model().lm.get() : nullptr, pairs, config);
        // The models' scores leave native code here (a precomputed reference is computed from them): NaN must be
        // an error naming the model, not numbers. (Given reference values are the caller's; the loss shows them.)
        const auto finite = [](const torch::Tensor& t) { return !t.defined() || torch::isfinite(t.detach()).all().item<bool>(); };
        if (!finite(r.forward.logps.policy_chosen) || !finite(r.forward.logps.policy_rejected))
          throw NonFiniteError("the model at " + policy.source + " gives non-finite log-probs (NaN or infinity)");
        if (config.reference != train::ReferenceMode::Precomputed &&
            (!finite(r.forward.logps.ref_chosen) || !finite(r.forward.logps.ref_rejected)))
          throw NonFiniteError("the reference model at " + (reference_call ? reference_call->model().source : policy.source) +
                               " gives non-finite log-probs (NaN or infinity)");
        const auto& f = r.forward;
        r.metrics = train::preference_metrics(f.out.chosen_rewards, f.out.rejected_rewards, f.out.chosen_logps,
                                              f.out.rejected_logps, f.out.nll.reshape({1}), f.out.loss.item<double>());
        if (backward) {
          r.forward.out.loss.backward();
          for (const auto& name : wanted) {
            if (!params.contains(name)) throw std::invalid_argument("gradients: the policy has no parameter '" + name + "'");
            const auto& g = params[name].grad();
            r.grads.emplace_back(name, g.defined() ? g.clone() : torch::zeros_like(params[name]));
            params[name].mutable_grad() = torch::Tensor();
          }
        }
        return r;
      },
      [](Napi::Env env, ForwardResult r) -> Napi::Value {
        const auto& o = r.forward.out;
        const auto& l = r.forward.logps;
        auto out = Napi::Object::New(env);
        auto put = [&](const char* name, const torch::Tensor& t) {
          if (t.defined()) out.Set(name, TensorHandle::wrap(env, t.detach().to(torch::kFloat32).contiguous()));
        };
        put("loss", o.loss.reshape({1}));
        put("losses", o.losses);
        put("nll", o.nll.reshape({1}));
        put("chosenRewards", o.chosen_rewards);
        put("rejectedRewards", o.rejected_rewards);
        put("chosenLogps", o.chosen_logps);
        put("rejectedLogps", o.rejected_logps);
        put("policyChosen", l.policy_chosen);
        put("policyRejected", l.policy_rejected);
        put("refChosen", l.ref_chosen);
        put("refRejected", l.ref_rejected);
        auto grads = Napi::Object::New(env);
        for (auto& [name, g] : r.grads) grads.Set(name, TensorHandle::wrap(env, std::move(g)));
        out.Set("gradients", grads);
        auto metrics = Napi::Object::New(env);
        for (const auto& [k, v] : r.metrics) metrics.Set(k, v);
        out.Set("metrics", metrics);
        return out;
      });
}

Napi::Object metrics_to_js(Napi::Env env, const train::StepMetrics& m) {
  auto values = Napi::Object::New(env);
  for (const auto& [k, v] : m.values) values.Set(k, v);
  auto out = Napi::Object::New(env);
  out.Set("metrics", values);
  out.Set("tokens", static_cast<double>(m.tokens));
  out.Set("records", static_cast<double>(m.records));
  if (m.skipped) out.Set("skipped", true);
  return out;
}

// A training run's optimizer over a policy (and reference) model: preferenceStep / sftStep / saveState / loadState.
class TrainerHandle : public Napi::ObjectWrap<TrainerHandle> {
 public:
  static void define(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Trainer", {
        InstanceAccessor<&TrainerHandle::steps>("steps"),
        InstanceAccessor<&TrainerHandle::trainable>("trainable"),
        InstanceAccessor<&TrainerHandle::optimizer_bytes>("optimizerBytes"),
        InstanceMethod<&TrainerHandle::preference_step>("preferenceStep"),
        InstanceMethod<&TrainerHandle::sft_step>("sftStep"),
        InstanceMethod<&TrainerHandle::save_state>("saveState"),
        InstanceMethod<&TrainerHandle::load_state>("loadState"),
    });
    exports.Set("Trainer", ctor);
  }

  // new Trainer({policy, reference?, weightDecay, beta1, beta2, eps, maxGradNorm, visionLrScale?, projectorLrScale?,
  //              group?, bucketBytes?, shardOptimizer?})
  explicit TrainerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerHandle>(info) {
    Napi::Env env = info.Env();
    const Args args(env, info[0], "Trainer");
    policy_ = unwrap_model(env, args.get("policy"), "Trainer: policy");
    if (args.has("reference")) reference_ = unwrap_model(env, args.get("reference"), "Trainer: reference");
    train::OptimizerConfig c;
    c.weight_decay = args.number("weightDecay", c.weight_decay);
    c.beta1 = args.number("beta1", c.beta1);
    c.beta2 = args.number("beta2", c.beta2);
    c.eps = args.number("eps", c.eps);
    c.max_grad_norm = args.number("maxGradNorm", c.max_grad_norm);
    c.vision_lr_scale = args.number("visionLrScale", c.vision_lr_scale);
    c.projector_lr_scale = args.number("projectorLrScale", c.projector_lr_scale);
    if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1)) throw_argument_error(env, "Trainer: beta1 and beta2 must be in [0, 1)");
    if (!(c.eps > 0) || c.weight_decay < 0 || c.max_grad_norm < 0)
      throw_argument_error(env, "Trainer: eps must be positive, weightDecay and maxGradNorm >= 0");
    if (!(c.vision_lr_scale > 0) || !(c.projector_lr_scale > 0) || !std::isfinite(c.vision_lr_scale) || !std::isfinite(c.projector_lr_scale))
      throw_argument_error(env, "Trainer: visionLrScale and projectorLrScale must be positive and finite (freeze a part with setTrainable)");
    train::DataParallel parallel;
    if (args.has("group")) parallel.group = unwrap_group(env, args.get("group"), "Trainer: group");
    parallel.bucket_bytes = static_cast<int64_t>(args.number("bucketBytes", static_cast<double>(parallel.bucket_bytes)));
    if (parallel.bucket_bytes < 1) throw_argument_error(env, "Trainer: bucketBytes must be >= 1");
    parallel.shard_optimizer = args.boolean("shardOptimizer", false);
    // It reads which parameters train, on this thread: never while a call changes the model (never waiting).
    std::shared_lock<std::shared_mutex> policy_lock(policy_->mutex, std::try_to_lock);
    if (!policy_lock.owns_lock()) throw_busy_error(env, "Trainer: the policy model is being changed by a call in flight; await it first");
    structure_ = policy_->structure.load();
    trainer_ = guarded(env, "Trainer", [&] {
      return std::make_shared<train::Trainer>(policy_->model, reference_ ? reference_->model : nullptr, c, parallel);
    });
  }

 private:
  // Each step: counted on both models from the call, locked on the worker, refused if the policy's parameters
  // changed since this Trainer took their list.
  struct StepCall {
    ModelCall policy;
    std::optional<ModelCall> reference;
    uint64_t structure;
  };
  StepCall step_call() const {
    StepCall call{ModelCall(policy_), std::nullopt, structure_};
    if (reference_) call.reference.emplace(reference_);
    return call;
  }
  static void check_structure(const StepCall& call) {
    if (call.policy.shared().structure.load() != call.structure)
      throw std::invalid_argument("the policy's adapters or trainable parameters changed since this Trainer was made "
                                  "(addLora, mergeLora, loadLora or setTrainable): make a new Trainer");
  }

  Napi::Value steps(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(steps_.load())); }
  Napi::Value trainable(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(trainer_->trainable())); }
  Napi::Value optimizer_bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(trainer_->optimizer_bytes()));
  }

  static double lr_arg(Napi::Env env, const Args& args) {
    const double lr = args.number("lr", -1);
    if (!(lr >= 0)) throw_argument_error(env, "lr must be a number >= 0");
    return lr;
  }

  // preferenceStep({microBatches: Pair[][], loss, referenceMode, sharePrefix, lr})
  Napi::Value preference_step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Args args(env, info[0], "Trainer.preferenceStep");
    if (!args.get("microBatches").IsArray()) throw_argument_error(env, "Trainer.preferenceStep: microBatches must be an array");
    auto list = args.get("microBatches").As<Napi::Array>();
    std::vector<std::vector<train::Pair>> batches;
    for (uint32_t i = 0; i < list.Length(); ++i) batches.push_back(pairs_arg(env, list.Get(i)));
    const train::ForwardConfig config = forward_config(env, args);
    const double lr = lr_arg(env, args);
    auto trainer = trainer_;
    return run_async(
        env, "Trainer.preferenceStep",
        [trainer, call = step_call(), batches, config, lr, steps = steps_ptr()] {
          const TrainingLocks locks(call.policy, call.reference ? &*call.reference : nullptr);
          check_structure(call);
          auto metrics = trainer->preference_step(batches, config, lr);
          *steps = trainer->steps();
          return metrics;
        },
        [](Napi::Env env, train::StepMetrics m) -> Napi::Value { return metrics_to_js(env, m); });
  }

  // sftStep({microBatches: {prompt, answer, video?, frameText?, videoGridThw?, secondPerGridTs?}[][], lr})
  Napi::Value sft_step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Args args(env, info[0], "Trainer.sftStep");
    if (!args.get("microBatches").IsArray()) throw_argument_error(env, "Trainer.sftStep: microBatches must be an array");
    auto list = args.get("microBatches").As<Napi::Array>();
    std::vector<std::vector<train::SftExample>> batches;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      if (!list.Get(i).IsArray()) throw_argument_error(env, "Trainer.sftStep: microBatches[" + std::to_string(i) + "] must be an array");
      auto records = list.Get(i).As<Napi::Array>();
      std::vector<train::SftExample> batch;
      for (uint32_t j = 0; j < records.Length(); ++j) {
        const std::string what = "microBatches[" + std::to_string(i) + "][" + std::to_string(j) + "]";
        const Args r(env, records.Get(j), what);
        train::SftExample e;
        e.prompt = ids_arg(env, r.get("prompt"), what + ".prompt");
        e.answer = ids_arg(env, r.get("answer"), what + ".answer");
        e.video = video_input_arg(env, r, what);
        batch.push_back(std::move(e));
      }
      batches.push_back(std::move(batch));
    }
    const double lr = lr_arg(env, args);
    auto trainer = trainer_;
    return run_async(
        env, "Trainer.sftStep",
        [trainer, call = step_call(), batches, lr, steps = steps_ptr()] {
          const TrainingLocks locks(call.policy, call.reference ? &*call.reference : nullptr);
          check_structure(call);
          auto metrics = trainer->sft_step(batches, lr);
          *steps = trainer->steps();
          return metrics;
        },
        [](Napi::Env env, train::StepMetrics m) -> Napi::Value { return metrics_to_js(env, m); });
  }

  // saveState(path): the optimizer's moments and step counts, one safetensors file, atomically.
  Napi::Value save_state(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string path = string_arg(env, info[0], "Trainer.saveState: path");
    auto trainer = trainer_;
    return run_async(
        env, "Trainer.saveState " + path,
        [trainer, call = ModelCall(policy_), path] {
          const Reading reading(call);  // a step (exclusive) is not half-way through the moments
          io::write_safetensors(path, trainer->optimizer_state());
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  // loadState(path | paths): one file, or the shards of a sharded optimizer state (this rank takes its part).
  Napi::Value load_state(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::string> paths;
    if (info[0].IsArray()) {
      const auto list = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); ++i) paths.push_back(string_arg(env, list.Get(i), "Trainer.loadState: paths"));
    } else {
      paths.push_back(string_arg(env, info[0], "Trainer.loadState: path"));
    }
    if (paths.empty()) throw_argument_error(env, "Trainer.loadState: no path");
    auto trainer = trainer_;
    return run_async(
        env, "Trainer.loadState " + paths.front(),
        [trainer, call = ModelCall(policy_), paths, steps = steps_ptr()] {
          const Writing writing(call);
          std::vector<std::unique_ptr<io::SafetensorsCheckpoint>> states;
          for (const auto& p : paths) states.push_back(std::make_unique<io::SafetensorsCheckpoint>(p));
          trainer->load_optimizer_state(states);
          *steps = trainer->steps();
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  std::shared_ptr<std::atomic<int64_t>> steps_ptr() const { return steps_shared_; }

  std::shared_ptr<SharedModel> policy_, reference_;
  uint64_t structure_ = 0;
  std::shared_ptr<train::Trainer> trainer_;
  // The step count `steps` reads on the JS thread while a step may run: kept beside the trainer, written by workers.
  std::shared_ptr<std::atomic<int64_t>> steps_shared_ = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<int64_t>& steps_ = *steps_shared_;
};

}  // namespace

void register_train(Napi::Env env, Napi::Object exports) {
  exports.Set("trainPreferenceForward", Napi::Function::New(env, preference_forward, "trainPreferenceForward"));
  TrainerHandle::define(env, exports);
}

}  // namespace tpo::binding
