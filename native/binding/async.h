// The one way the addon does slow work: `work` runs off the main thread, the event loop keeps turning, and a
// Promise settles on the main thread with `to_js(env, result)`. `work` must capture only C++ values (tensors,
// strings, ...): JS values cannot be touched off the main thread. A C++ exception in either part rejects the
// Promise with an Error made by errors.h.
//
// Where `work` runs:
//   Runs::OnEngine (default)  libtorch compute: the process's one engine thread (native/runtime/engine.h says
//                             why one), in call order.
//   Runs::OnPool              file and video I/O (decoding, safetensors, encoding): libuv's thread pool, so that
//                             reading the next video overlaps the model's work on this one.
#pragma once

#include <napi.h>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "binding/errors.h"
#include "runtime/engine.h"
#include "runtime/runtime.h"

namespace tpo::binding {

enum class Runs { OnEngine, OnPool };

namespace detail {

// One call's state: what to run, its result or error, and the Promise to settle with them.
template <typename Work, typename ToJs>
struct AsyncCall {
  using Raw = std::invoke_result_t<Work&>;
  struct Unit {};
  using Result = std::conditional_t<std::is_void_v<Raw>, Unit, Raw>;

  AsyncCall(Napi::Env env, std::string context, Work work, ToJs to_js)
      : deferred(Napi::Promise::Deferred::New(env)), context(std::move(context)), work(std::move(work)), to_js(std::move(to_js)) {}

  // Off the main thread.
  void execute() {
    try {
      const auto profile = runtime::profile_scope(context);
      if constexpr (std::is_void_v<Raw>) {
        work();
        result.emplace();
      } else {
        result.emplace(work());
      }
    } catch (...) {
      error = describe_current_exception();
    }
  }

  // On the main thread.
  void settle(Napi::Env env) {
    Napi::HandleScope scope(env);
    if (error) {
      deferred.Reject(make_error(env, context, *error).Value());
      return;
    }
    try {
      if constexpr (std::is_void_v<Raw>) {
        deferred.Resolve(to_js(env));
      } else {
        deferred.Resolve(to_js(env, std::move(*result)));
      }
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
    } catch (...) {
      deferred.Reject(make_error(env, context, describe_current_exception()).Value());
    }
    result.reset();  // free tensors now, not when the call object goes
  }

  Napi::Promise::Deferred deferred;
  std::string context;
  Work work;
  ToJs to_js;
  std::optional<Result> result;
  std::optional<ErrorInfo> error;
};

template <typename Call>
class PoolWorker final : public Napi::AsyncWorker {
 public:
  PoolWorker(Napi::Env env, Call* call) : Napi::AsyncWorker(env, "tpo"), call_(call) {}
  ~PoolWorker() override { delete call_; }

 protected:
  void Execute() override {
    runtime::apply_num_threads();
    call_->execute();
  }
  void OnOK() override { call_->settle(Env()); }
  void OnError(const Napi::Error& e) override { call_->deferred.Reject(e.Value()); }

 private:
  Call* call_;
};

// The engine's way back to the main thread: a thread-safe function per call, which also keeps the event loop
// alive while the call is pending (as an AsyncWorker does).
template <typename Call>
void settle_on_main(Napi::Env env, Napi::Function, std::nullptr_t*, Call* call) {
  if (env != nullptr) call->settle(env);  // null: the environment is shutting down
  delete call;
}

}  // namespace detail

template <typename Work, typename ToJs>
Napi::Promise run_async(Napi::Env env, std::string context, Work work, ToJs to_js, Runs where = Runs::OnEngine) {
  using Call = detail::AsyncCall<Work, ToJs>;
  auto* call = new Call(env, std::move(context), std::move(work), std::move(to_js));
  Napi::Promise promise = call->deferred.Promise();
  if (where == Runs::OnPool) {
    (new detail::PoolWorker<Call>(env, call))->Queue();  // the worker deletes itself after OnOK/OnError
    return promise;
  }
  using Settle = Napi::TypedThreadSafeFunction<std::nullptr_t, Call, detail::settle_on_main<Call>>;
  auto back = Settle::New(env, "tpo", 0, 1);
  runtime::run_on_engine([call, back]() mutable {
    call->execute();
    if (back.BlockingCall(call) != napi_ok) delete call;  // the environment is gone: nobody to settle
    back.Release();
  });
  return promise;
}

}  // namespace tpo::binding
