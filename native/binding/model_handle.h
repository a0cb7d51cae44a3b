// The native model behind a JS `Model` (model_binding.cc), for other bindings that take a model argument.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "model/loader.h"

namespace tpo::binding {

// A TypeError naming `what` when the value is not a live Model.
std::shared_ptr<model::LoadedModel> unwrap_model(Napi::Env env, const Napi::Value& value, const std::string& what);

}  // namespace tpo::binding
