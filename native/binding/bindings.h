// Each binding file adds its functions to the addon's exports; addon.cc calls these in order.
#pragma once

#include <napi.h>

namespace tpo::binding {

void register_tensor(Napi::Env env, Napi::Object exports);       // tensor.cc
void register_runtime(Napi::Env env, Napi::Object exports);      // runtime_binding.cc
void register_safetensors(Napi::Env env, Napi::Object exports);  // safetensors_binding.cc
void register_video(Napi::Env env, Napi::Object exports);        // video_binding.cc
void register_model(Napi::Env env, Napi::Object exports);        // model_binding.cc
void register_train(Napi::Env env, Napi::Object exports);        // train_binding.cc
void register_synthetic(Napi::Env env, Napi::Object exports);    // synthetic_binding.cc
void register_dist(Napi::Env env, Napi::Object exports);         // dist_binding.cc

}  // namespace tpo::binding
