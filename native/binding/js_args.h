// Reading JS arguments and option objects in bindings. Every failure is a TypeError (code ERR_TPO_ARGUMENT)
// naming the argument or field. TypeScript validates with zod first; these checks keep the addon safe anyway.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tpo::binding {

std::string string_arg(Napi::Env env, const Napi::Value& value, const std::string& what);
// Any numbers, NaN and infinities included: a caller that casts them to integers checks them first.
std::vector<double> number_array(Napi::Env env, const Napi::Value& value, const std::string& what);

// A plain JS object of options.
class Args {
 public:
  Args(Napi::Env env, const Napi::Value& value, std::string what);

  bool has(const char* key) const;  // present, and neither undefined nor null
  Napi::Value get(const char* key) const;
  std::string string(const char* key) const;  // required
  double number(const char* key, double fallback) const;
  int integer(const char* key, int fallback) const;
  bool boolean(const char* key, bool fallback) const;
  uint64_t seed(const char* key) const;  // an integer in [0, 2^53), default 0

 private:
  std::string field(const char* key) const { return what_ + ": " + key; }
  Napi::Env env_;
  Napi::Object object_;
  std::string what_;
};

inline uint64_t seed_arg(Napi::Env, const Args& args, const char* key) { return args.seed(key); }

}  // namespace tpo::binding
