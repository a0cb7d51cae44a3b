// The addon's entry point: sets libtorch's thread count and registers every binding.
#include <napi.h>

#include <cstdlib>
#include <string>

#include "binding/addon_data.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "runtime/runtime.h"

#ifndef TPO_VERSION
#define TPO_VERSION "0.0.0"
#endif

namespace {

// libtorch may run on one thread inside an embedding process unless told: TPO_NUM_THREADS, else every core
// this process may use.
int initial_thread_count(Napi::Env env) {
  const char* env_value = std::getenv("TPO_NUM_THREADS");
  if (!env_value || !*env_value) return tpo::runtime::available_cores();
  char* end = nullptr;
  const long n = std::strtol(env_value, &end, 10);
  if (*end != '\0' || n < 1 || n > 4096)
    tpo::binding::throw_argument_error(env, std::string("TPO_NUM_THREADS='") + env_value +
                                                "' is not a thread count (an integer >= 1)");
  return static_cast<int>(n);
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new tpo::binding::AddonData());
  tpo::runtime::set_num_threads(initial_thread_count(env));
  exports.Set("version", Napi::String::New(env, TPO_VERSION));
  tpo::binding::register_tensor(env, exports);
  tpo::binding::register_runtime(env, exports);
  tpo::binding::register_safetensors(env, exports);
  tpo::binding::register_video(env, exports);
  tpo::binding::register_model(env, exports);
  tpo::binding::register_train(env, exports);
  tpo::binding::register_synthetic(env, exports);
  tpo::binding::register_dist(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tpo, init)
