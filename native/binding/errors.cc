#include "binding/errors.h"

#include <c10/util/Exception.h>

#include <exception>

#include "runtime/errors.h"
#include "dist/process_group.h"

namespace tpo::binding {
namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

ErrorInfo describe_current_exception() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return {trimmed(e.what_without_backtrace()), "ERR_TPO_TORCH"};
  } catch (const NonFiniteError& e) {
    return {trimmed(e.what()), "ERR_TPO_NON_FINITE"};
  } catch (const dist::DistError& e) {
    return {trimmed(e.what()), "ERR_TPO_DIST"};
  } catch (const std::bad_alloc&) {
    return {"out of memory", "ERR_TPO_NATIVE"};
  } catch (const std::exception& e) {
    return {trimmed(e.what()), "ERR_TPO_NATIVE"};
  } catch (...) {
    return {"unknown C++ exception", "ERR_TPO_NATIVE"};
  }
}

Napi::Error make_error(Napi::Env env, const std::string& context, const ErrorInfo& info) {
  Napi::Error error = Napi::Error::New(env, context.empty() ? info.message : context + ": " + info.message);
  error.Set("code", Napi::String::New(env, info.code));
  return error;
}

void throw_busy_error(Napi::Env env, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_TPO_BUSY"));
  throw error;
}

void throw_argument_error(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_TPO_ARGUMENT"));
  throw error;
}

}  // namespace tpo::binding
