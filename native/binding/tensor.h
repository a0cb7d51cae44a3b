// The JS `Tensor`: an opaque handle that owns one torch::Tensor. It reports the bytes it holds to V8 (so the
// garbage collector feels native memory), frees them at dispose() / [Symbol.dispose]() or collection, and copies
// out to a TypedArray on request. JS cannot construct one directly; native calls return them.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace tpo::binding {

// dtype names at the JS boundary ("float32", "bfloat16", ...), with the TypedArray that holds each.
struct DtypeSpec {
  const char* name;
  torch::ScalarType dtype;
  napi_typedarray_type array_type;  // float16/bfloat16 travel as their raw bits in a Uint16Array
};
const DtypeSpec& dtype_spec(torch::ScalarType dtype);
torch::ScalarType parse_dtype(Napi::Env env, const Napi::Value& value, const std::string& what);
std::vector<int64_t> parse_shape(Napi::Env env, const Napi::Value& value, const std::string& what);
Napi::Array shape_to_js(Napi::Env env, c10::IntArrayRef shape);

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static void define(Napi::Env env, Napi::Object exports);
  static Napi::Object wrap(Napi::Env env, torch::Tensor tensor);
  // The tensor behind a JS value; a TypeError names `what` when the value is not a live Tensor.
  static torch::Tensor unwrap(Napi::Env env, const Napi::Value& value, const std::string& what);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  void Finalize(Napi::Env env) override;

 private:
  const torch::Tensor& live(Napi::Env env) const;
  void release(Napi::Env env);

  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value numel(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value to_typed_array(const Napi::CallbackInfo& info);
  Napi::Value reshape(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value index_select(const Napi::CallbackInfo& info);
  Napi::Value to_string(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  torch::Tensor tensor_;
  int64_t reported_bytes_ = 0;
};

// Binding functions: tensorFromTypedArray(data, shape, dtype?) and friends.
void register_tensor(Napi::Env env, Napi::Object exports);

}  // namespace tpo::binding
