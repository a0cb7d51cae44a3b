#include "binding/js_args.h"

#include <cmath>

#include "binding/errors.h"

namespace tpo::binding {

std::string string_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsString()) throw_argument_error(env, what + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

std::vector<double> number_array(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsArray()) throw_argument_error(env, what + " must be an array of numbers");
  auto array = value.As<Napi::Array>();
  std::vector<double> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value v = array.Get(i);
    if (!v.IsNumber()) throw_argument_error(env, what + "[" + std::to_string(i) + "] must be a number");
    out.push_back(v.As<Napi::Number>().DoubleValue());
  }
  return out;
}

Args::Args(Napi::Env env, const Napi::Value& value, std::string what) : env_(env), what_(std::move(what)) {
  if (!value.IsObject()) throw_argument_error(env, what_ + " must be an object");
  object_ = value.As<Napi::Object>();
}

bool Args::has(const char* key) const {
  if (!object_.Has(key)) return false;
  Napi::Value v = object_.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

Napi::Value Args::get(const char* key) const { return object_.Get(key); }

std::string Args::string(const char* key) const {
  if (!has(key)) throw_argument_error(env_, field(key) + " is required");
  return string_arg(env_, get(key), field(key));
}

double Args::number(const char* key, double fallback) const {
  if (!has(key)) return fallback;
  Napi::Value v = get(key);
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw_argument_error(env_, field(key) + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

int Args::integer(const char* key, int fallback) const {
  if (!has(key)) return fallback;
  const double d = number(key, fallback);
  if (d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0)
    throw_argument_error(env_, field(key) + " must be an integer");
  return static_cast<int>(d);
}

uint64_t Args::seed(const char* key) const {
  const double d = number(key, 0);
  if (d < 0 || d != std::floor(d) || d > 9007199254740991.0)
    throw_argument_error(env_, field(key) + " must be an integer in [0, 2^53)");
  return static_cast<uint64_t>(d);
}

bool Args::boolean(const char* key, bool fallback) const {
  if (!has(key)) return fallback;
  Napi::Value v = get(key);
  if (!v.IsBoolean()) throw_argument_error(env_, field(key) + " must be true or false");
  return v.As<Napi::Boolean>().Value();
}

}  // namespace tpo::binding
