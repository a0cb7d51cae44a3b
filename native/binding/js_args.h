// Reading JS arguments and option objects in bindings. Every failure is a TypeError (code ERR_TPO_ARGUMENT)
// naming the argument or field. TypeScript validates with zod first; these checks keep the addon safe anyway.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

namespace tpo::binding {

std::string string_arg(Napi::Env env, const Napi::Value& value, const std::string& what);
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

 private:
  std::string field(const char* key) const { return what_ + ": " + key; }
  Napi::Env env_;
  Napi::Object object_;
  std::string what_;
};

}  // namespace tpo::binding
