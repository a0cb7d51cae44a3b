// The one way the addon does slow work: `work` runs on libuv's thread pool, the event loop keeps turning, and a
// Promise settles on the main thread with `to_js(env, result)`. `work` must capture only C++ values (tensors,
// strings, ...): JS values cannot be touched off the main thread. A C++ exception in either part rejects the
// Promise with an Error made by errors.h.
#pragma once

#include <napi.h>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "binding/errors.h"
#include "runtime/runtime.h"

namespace tpo::binding {

template <typename Work, typename ToJs>
Napi::Promise run_async(Napi::Env env, std::string context, Work work, ToJs to_js) {
  using Raw = std::invoke_result_t<Work&>;
  struct Unit {};
  using Result = std::conditional_t<std::is_void_v<Raw>, Unit, Raw>;

  class Worker final : public Napi::AsyncWorker {
   public:
    Worker(Napi::Env env, std::string context, Work work, ToJs to_js)
        : Napi::AsyncWorker(env, "tpo"),
          deferred_(Napi::Promise::Deferred::New(env)),
          context_(std::move(context)),
          work_(std::move(work)),
          to_js_(std::move(to_js)) {}

    Napi::Promise promise() const { return deferred_.Promise(); }

   protected:
    void Execute() override {
      try {
        runtime::apply_num_threads();
        if constexpr (std::is_void_v<Raw>) {
          work_();
          result_.emplace();
        } else {
          result_.emplace(work_());
        }
      } catch (...) {
        error_ = describe_current_exception();
      }
    }

    void OnOK() override {
      Napi::Env env = Env();
      Napi::HandleScope scope(env);
      if (error_) {
        deferred_.Reject(make_error(env, context_, *error_).Value());
        return;
      }
      try {
        if constexpr (std::is_void_v<Raw>) {
          deferred_.Resolve(to_js_(env));
        } else {
          deferred_.Resolve(to_js_(env, std::move(*result_)));
        }
      } catch (const Napi::Error& e) {
        deferred_.Reject(e.Value());
      } catch (...) {
        deferred_.Reject(make_error(env, context_, describe_current_exception()).Value());
      }
      result_.reset();  // free tensors now, not when the worker object is collected
    }

    void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

   private:
    Napi::Promise::Deferred deferred_;
    std::string context_;
    Work work_;
    ToJs to_js_;
    std::optional<Result> result_;
    std::optional<ErrorInfo> error_;
  };

  auto* worker = new Worker(env, std::move(context), std::move(work), std::move(to_js));
  Napi::Promise promise = worker->promise();
  worker->Queue();  // the worker deletes itself after OnOK/OnError
  return promise;
}

}  // namespace tpo::binding
