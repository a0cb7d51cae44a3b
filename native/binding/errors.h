// C++ exceptions become JS Errors here, and only here. A libtorch error keeps its message without the C++
// backtrace (what_without_backtrace), prefixed by what was being done ("safetensors read model.safetensors: ...").
// Every error carries a `code`: ERR_TPO_TORCH (libtorch), ERR_TPO_NATIVE (other C++), ERR_TPO_ARGUMENT, ERR_TPO_BUSY
// (a model mutated while calls on it are in flight), ERR_TPO_NON_FINITE (NaN or infinite numbers: a training step's
// loss or gradient norm, the weights then not updated, or a model's scores) and ERR_TPO_DIST (a process group
// failed: a rank died or stopped answering, a rendezvous did not complete).
#pragma once

#include <napi.h>

#include <string>

namespace tpo::binding {

struct ErrorInfo {
  std::string message;
  const char* code;
};

// Describes the exception being handled; call only inside a catch block.
ErrorInfo describe_current_exception();

Napi::Error make_error(Napi::Env env, const std::string& context, const ErrorInfo& info);

// A TypeError for a bad argument, with code ERR_TPO_ARGUMENT.
[[noreturn]] void throw_argument_error(Napi::Env env, const std::string& message);

// An Error with code ERR_TPO_BUSY.
[[noreturn]] void throw_busy_error(Napi::Env env, const std::string& message);

// Runs `f`; a C++ exception thrown by it leaves as a JS Error ("context: message").
template <typename F>
auto guarded(Napi::Env env, const std::string& context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw make_error(env, context, describe_current_exception());
  }
}

}  // namespace tpo::binding
