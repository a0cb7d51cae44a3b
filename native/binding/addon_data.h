// Per-environment state of the addon (one per Node.js worker thread that loads it).
#pragma once

#include <napi.h>

#include <cstdint>

namespace tpo::binding {

struct AddonData {
  Napi::FunctionReference tensor_constructor;
  Napi::FunctionReference model_constructor;
  Napi::FunctionReference group_constructor;  // dist_binding.cc's ProcessGroup
  // Bytes and count of tensors held by live Tensor handles (what they reported to V8): leaks show here.
  int64_t tensor_bytes = 0;
  int64_t tensor_count = 0;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace tpo::binding
