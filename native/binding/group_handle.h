// The native process group behind a JS `ProcessGroup` (dist_binding.cc), for bindings that take one (the Trainer).
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "dist/process_group.h"

namespace tpo::binding {

// A TypeError naming `what` when the value is not an open ProcessGroup.
std::shared_ptr<dist::ProcessGroup> unwrap_group(Napi::Env env, const Napi::Value& value, const std::string& what);

}  // namespace tpo::binding
