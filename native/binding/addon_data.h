// Per-environment state of the addon (one per Node.js worker thread that loads it).
#pragma once

#include <napi.h>

namespace tpo::binding {

struct AddonData {
  Napi::FunctionReference tensor_constructor;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace tpo::binding
