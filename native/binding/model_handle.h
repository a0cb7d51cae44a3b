// The native model behind a JS `Model` (model_binding.cc), for other bindings that take a model argument, and the
// concurrency contract of a model handle:
//
// - Calls that only read the weights (forward, encodeVideo, generate, logprobs, logprobsBatch, save, saveLora)
//   may run together: each holds the model's lock shared, taken on the thread the call runs on (today the one
//   engine thread, in call order: async.h).
// - Calls that change them run alone: Trainer steps and loadState, trainPreferenceForward (it writes gradients)
//   and loadLora hold the lock exclusively, taken on that thread, where they wait for the calls in flight.
//   The event loop never waits for a lock.
// - The synchronous mutations (addLora, mergeLora, setTrainable, setGradientCheckpointing, new Trainer) run on the
//   JS thread, so they cannot wait: while any call on the model is in flight they throw ERR_TPO_BUSY ("await the
//   calls first").
// - setLoraEnabled never waits and is never refused: a call runs with the adapter setting of the moment it was
//   made (a per-call flag, model::LoraScope), so every result is wholly adapter-on or wholly adapter-off.
// - dispose() while calls run: they keep the model alive until they settle; its memory goes with the last one.
// - A Trainer records the model's structure when made; after addLora / mergeLora / loadLora / setTrainable its
//   steps fail (its parameter list would no longer be the model's).
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "model/loader.h"
#include "model/lora.h"

namespace tpo::binding {

struct SharedModel {
  explicit SharedModel(std::shared_ptr<model::LoadedModel> m) : model(std::move(m)) { count_parameters(); }

  std::shared_ptr<model::LoadedModel> model;
  std::shared_mutex mutex;
  std::atomic<int> calls{0};              // async calls made and not yet settled
  std::atomic<bool> lora_enabled{true};   // the setting new calls take
  std::atomic<uint64_t> structure{0};     // bumped by every change to the parameter set or what trains
  std::atomic<int64_t> parameters{0};     // for `info`, read on the JS thread without the lock

  // Under the exclusive lock (or on the JS thread with no call in flight), after the parameters changed.
  void structure_changed() {
    ++structure;
    count_parameters();
  }

 private:
  void count_parameters() {
    int64_t n = 0;
    for (const auto& p : model->module().parameters()) n += p.numel();
    parameters = n;
  }
};

// One async call's claim on a model: made on the JS thread when the call is, it counts the call as in flight until
// the worker is destroyed (after the Promise settles) and remembers the adapter setting of that moment. Moved into
// the worker; the lock itself is taken there (Reading / Writing).
class ModelCall {
 public:
  explicit ModelCall(std::shared_ptr<SharedModel> shared)
      : shared_(std::move(shared)), lora_enabled_(shared_->lora_enabled.load()) {
    ++shared_->calls;
  }
  ModelCall(ModelCall&& other) noexcept : shared_(std::move(other.shared_)), lora_enabled_(other.lora_enabled_) {}
  ModelCall(const ModelCall&) = delete;
  ModelCall& operator=(const ModelCall&) = delete;
  ModelCall& operator=(ModelCall&&) = delete;
  ~ModelCall() {
    if (shared_) --shared_->calls;
  }

  model::LoadedModel& model() const { return *shared_->model; }
  SharedModel& shared() const { return *shared_; }
  bool lora_enabled() const { return lora_enabled_; }

 private:
  std::shared_ptr<SharedModel> shared_;
  bool lora_enabled_;
};

// On the worker thread, for the duration of a call: the lock, the call's adapter setting on this thread, and (for
// memory-mapped weights) a check that the files are still what was loaded.
class Reading {
 public:
  explicit Reading(const ModelCall& call) : lock_(call.shared().mutex), lora_(call.lora_enabled()) {
    call.model().check_mapped_files();
  }

 private:
  std::shared_lock<std::shared_mutex> lock_;
  model::LoraScope lora_;
};

class Writing {
 public:
  explicit Writing(const ModelCall& call) : lock_(call.shared().mutex), lora_(call.lora_enabled()) {
    call.model().check_mapped_files();
  }

 private:
  std::unique_lock<std::shared_mutex> lock_;
  model::LoraScope lora_;
};

// A TypeError naming `what` when the value is not a live Model.
std::shared_ptr<SharedModel> unwrap_model(Napi::Env env, const Napi::Value& value, const std::string& what);

// For a synchronous mutation on the JS thread: throws ERR_TPO_BUSY when calls on the model are in flight (or a lock
// is held), else returns the exclusive lock, never having waited.
std::unique_lock<std::shared_mutex> lock_idle(Napi::Env env, SharedModel& model, const std::string& what);

}  // namespace tpo::binding
