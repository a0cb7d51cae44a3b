#include "binding/tensor.h"

#include <cmath>
#include <cstring>

#include "binding/addon_data.h"
#include "binding/errors.h"

namespace tpo::binding {
namespace {

constexpr DtypeSpec kDtypes[] = {
    {"float32", torch::kFloat32, napi_float32_array},
    {"float64", torch::kFloat64, napi_float64_array},
    {"float16", torch::kFloat16, napi_uint16_array},
    {"bfloat16", torch::kBFloat16, napi_uint16_array},
    {"int64", torch::kInt64, napi_bigint64_array},
    {"int32", torch::kInt32, napi_int32_array},
    {"int16", torch::kInt16, napi_int16_array},
    {"int8", torch::kInt8, napi_int8_array},
    {"uint8", torch::kUInt8, napi_uint8_array},
    {"bool", torch::kBool, napi_uint8_array},
    {"uint16", torch::kUInt16, napi_uint16_array},
    {"uint32", torch::kUInt32, napi_uint32_array},
    {"uint64", torch::kUInt64, napi_biguint64_array},
    {"float8_e4m3fn", torch::kFloat8_e4m3fn, napi_uint8_array},
    {"float8_e5m2", torch::kFloat8_e5m2, napi_uint8_array},
};

const char* typed_array_name(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

std::string dtype_names() {
  std::string out;
  for (const auto& d : kDtypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}


// tensorFromTypedArray(data, shape, dtype?): one copy into a new tensor, so the JS buffer may change or be
// collected afterwards. The dtype defaults to the array's natural one; float16/bfloat16 take raw bits.
Napi::Value tensor_from_typed_array(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw_argument_error(env, "tensorFromTypedArray: data must be a TypedArray");
  auto data = info[0].As<Napi::TypedArray>();
  const std::vector<int64_t> shape = parse_shape(env, info[1], "tensorFromTypedArray: shape");
  const napi_typedarray_type array_type = data.TypedArrayType();

  const DtypeSpec* spec = nullptr;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    spec = &dtype_spec(parse_dtype(env, info[2], "tensorFromTypedArray: dtype"));
    if (spec->array_type != array_type)
      throw_argument_error(env, std::string("tensorFromTypedArray: dtype ") + spec->name + " takes a " +
                                    typed_array_name(spec->array_type) + ", got a " + typed_array_name(array_type));
  } else {
    for (const auto& d : kDtypes)
      if (d.array_type == array_type) {
        spec = &d;
        break;
      }
    if (!spec)
      throw_argument_error(env, std::string("tensorFromTypedArray: no dtype takes a ") + typed_array_name(array_type));
  }

  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;  // parse_shape checked that this does not overflow
  if (numel != static_cast<int64_t>(data.ElementLength()))
    throw_argument_error(env, "tensorFromTypedArray: shape " + c10::str(c10::IntArrayRef(shape)) + " holds " + std::to_string(numel) +
                                  " elements but the array has " + std::to_string(data.ElementLength()));

  return guarded(env, "tensorFromTypedArray", [&] {
    const bool is_bool = spec->dtype == torch::kBool;
    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(is_bool ? torch::kUInt8 : spec->dtype));
    const auto* src = static_cast<const uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
    if (t.nbytes() > 0) std::memcpy(t.data_ptr(), src, t.nbytes());
    if (is_bool) t = t.ne(0);  // any non-zero byte is true; a bool tensor must hold only 0 and 1
    return TensorHandle::wrap(env, std::move(t));
  });
}

}  // namespace

const DtypeSpec& dtype_spec(torch::ScalarType dtype) {
  for (const auto& d : kDtypes)
    if (d.dtype == dtype) return d;
  throw std::runtime_error(std::string("dtype ") + c10::toString(dtype) + " has no JS counterpart");
}

torch::ScalarType parse_dtype(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (value.IsString()) {
    const std::string name = value.As<Napi::String>().Utf8Value();
    for (const auto& d : kDtypes)
      if (name == d.name) return d.dtype;
    throw_argument_error(env, what + ": unknown dtype '" + name + "' (known: " + dtype_names() + ")");
  }
  throw_argument_error(env, what + ": dtype must be a string (" + dtype_names() + ")");
}

std::vector<int64_t> parse_shape(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsArray()) throw_argument_error(env, what + " must be an array of non-negative integers");
  auto array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  shape.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value dim = array.Get(i);
    const double d = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
      throw_argument_error(env, what + "[" + std::to_string(i) + "] must be a non-negative integer");
    shape.push_back(static_cast<int64_t>(d));
  }
  // A product that wraps around could pass for a shape that fits the data (reshape of an empty tensor to
  // [2^32, 2^32] has "0" elements): the element count must fit int64.
  int64_t numel = 1;
  for (const int64_t d : shape)
    if (__builtin_mul_overflow(numel, d, &numel))
      throw_argument_error(env, what + ": " + c10::str(c10::IntArrayRef(shape)) + " has more elements than int64 can count");
  return shape;
}

Napi::Array shape_to_js(Napi::Env env, c10::IntArrayRef shape) {
  auto out = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, shape[i]));
  return out;
}

// ------------------------------------------------------------------------------------------------- the class

void TensorHandle::define(Napi::Env env, Napi::Object exports) {
  std::vector<PropertyDescriptor> props = {
      InstanceAccessor<&TensorHandle::shape>("shape"),
      InstanceAccessor<&TensorHandle::dtype>("dtype"),
      InstanceAccessor<&TensorHandle::device>("device"),
      InstanceAccessor<&TensorHandle::numel>("numel"),
      InstanceAccessor<&TensorHandle::disposed>("disposed"),
      InstanceMethod<&TensorHandle::to_typed_array>("toTypedArray"),
      InstanceMethod<&TensorHandle::reshape>("reshape"),
      InstanceMethod<&TensorHandle::to>("to"),
      InstanceMethod<&TensorHandle::index_select>("indexSelect"),
      InstanceMethod<&TensorHandle::to_string>("toString"),
      InstanceMethod<&TensorHandle::dispose>("dispose"),
  };
  // `using t = ...` (explicit resource management) calls [Symbol.dispose]; Node 20 defines the symbol.
  Napi::Value dispose_symbol = env.Global().Get("Symbol").As<Napi::Object>().Get("dispose");
  if (dispose_symbol.IsSymbol())
    props.push_back(InstanceMethod<&TensorHandle::dispose>(dispose_symbol.As<Napi::Symbol>()));

  Napi::Function ctor = DefineClass(env, "Tensor", props);
  addon_data(env).tensor_constructor = Napi::Persistent(ctor);
  exports.Set("Tensor", ctor);
}

Napi::Object TensorHandle::wrap(Napi::Env env, torch::Tensor tensor) {
  return addon_data(env).tensor_constructor.New({Napi::External<torch::Tensor>::New(env, &tensor)});
}

torch::Tensor TensorHandle::unwrap(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addon_data(env).tensor_constructor.Value()))
    throw_argument_error(env, what + " must be a Tensor");
  return Unwrap(value.As<Napi::Object>())->live(env);
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal())
    throw_argument_error(env, "Tensor cannot be constructed directly: use tensorFromTypedArray() or a native call");
  tensor_ = std::move(*info[0].As<Napi::External<torch::Tensor>>().Data());
  reported_bytes_ = tensor_.defined() ? static_cast<int64_t>(tensor_.nbytes()) : 0;
  if (reported_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
  AddonData& data = addon_data(env);
  data.tensor_bytes += reported_bytes_;
  data.tensor_count += 1;
}

void TensorHandle::Finalize(Napi::Env env) { release(env); }

void TensorHandle::release(Napi::Env env) {
  if (!tensor_.defined()) return;
  if (reported_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -reported_bytes_);
  AddonData& data = addon_data(env);
  data.tensor_bytes -= reported_bytes_;
  data.tensor_count -= 1;
  reported_bytes_ = 0;
  tensor_ = torch::Tensor();
}

const torch::Tensor& TensorHandle::live(Napi::Env env) const {
  if (!tensor_.defined()) throw_argument_error(env, "Tensor was disposed");
  return tensor_;
}

Napi::Value TensorHandle::shape(const Napi::CallbackInfo& info) {
  return shape_to_js(info.Env(), live(info.Env()).sizes());
}

Napi::Value TensorHandle::dtype(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "Tensor.dtype",
                 [&] { return Napi::String::New(env, dtype_spec(live(env).scalar_type()).name); });
}

Napi::Value TensorHandle::device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), live(info.Env()).device().str());
}

Napi::Value TensorHandle::numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).numel()));
}

Napi::Value TensorHandle::disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.defined());
}

Napi::Value TensorHandle::to_typed_array(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const torch::Tensor& t = live(env);
  return guarded(env, "Tensor.toTypedArray", [&]() -> Napi::Value {
    const DtypeSpec& spec = dtype_spec(t.scalar_type());
    torch::Tensor host = t.to(torch::kCPU).contiguous();
    const size_t nbytes = host.nbytes();
    auto buffer = Napi::ArrayBuffer::New(env, nbytes);
    if (nbytes > 0) std::memcpy(buffer.Data(), host.data_ptr(), nbytes);
    napi_value array;
    NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, spec.array_type, host.numel(), buffer, 0, &array),
                         Napi::Value());
    return Napi::Value(env, array);
  });
}

Napi::Value TensorHandle::reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> shape = parse_shape(env, info[0], "Tensor.reshape: shape");
  const torch::Tensor& t = live(env);
  return guarded(env, "Tensor.reshape", [&] { return TensorHandle::wrap(env, t.reshape(shape)); });
}

Napi::Value TensorHandle::to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const torch::ScalarType dtype = parse_dtype(env, info[0], "Tensor.to");
  const torch::Tensor& t = live(env);
  return guarded(env, "Tensor.to", [&] { return TensorHandle::wrap(env, t.to(dtype)); });
}

// indexSelect(dim, indices): the slices at `indices` along `dim`, in that order, repeats allowed (a copy). Frame
// manipulations (keep or remove a range, downsample, shuffle scenes, reverse) are such index lists.
Napi::Value TensorHandle::index_select(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const torch::Tensor& t = live(env);
  const std::string what = "Tensor.indexSelect";
  const double d = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0.5;
  const int64_t rank = t.dim();
  if (d != std::floor(d) || d < -rank || d >= rank)
    throw_argument_error(env, what + ": dim must be an integer in [" + std::to_string(-rank) + ", " + std::to_string(rank) + ")");
  const int64_t dim = d < 0 ? static_cast<int64_t>(d) + rank : static_cast<int64_t>(d);
  std::vector<int64_t> indices;
  if (info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto array = info[1].As<Napi::Int32Array>();
    indices.assign(array.Data(), array.Data() + array.ElementLength());
  } else {
    if (!info[1].IsArray()) throw_argument_error(env, what + ": indices must be an array of integers or an Int32Array");
    auto array = info[1].As<Napi::Array>();
    indices.reserve(array.Length());
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value v = array.Get(i);
      const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0.5;
      if (x != std::floor(x)) throw_argument_error(env, what + ": indices[" + std::to_string(i) + "] must be an integer");
      indices.push_back(static_cast<int64_t>(x));
    }
  }
  const int64_t size = t.size(dim);
  for (size_t i = 0; i < indices.size(); ++i)
    if (indices[i] < 0 || indices[i] >= size)
      throw_argument_error(env, what + ": indices[" + std::to_string(i) + "] = " + std::to_string(indices[i]) +
                                    " is outside [0, " + std::to_string(size) + ") of dim " + std::to_string(dim));
  return guarded(env, what, [&] {
    const torch::Tensor index = torch::from_blob(indices.data(), {static_cast<int64_t>(indices.size())}, torch::kInt64);
    return TensorHandle::wrap(env, t.index_select(dim, index.to(t.device())));
  });
}

Napi::Value TensorHandle::to_string(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!tensor_.defined()) return Napi::String::New(env, "Tensor(disposed)");
  return Napi::String::New(env, std::string("Tensor(") + dtype_spec(tensor_.scalar_type()).name + ", " +
                                    c10::str(tensor_.sizes()) + ", " + tensor_.device().str() + ")");
}

Napi::Value TensorHandle::dispose(const Napi::CallbackInfo& info) {
  release(info.Env());
  return info.Env().Undefined();
}

// tensorMemory(): what live Tensor handles hold, and V8's count of external memory (which includes it).
Napi::Value tensor_memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const AddonData& data = addon_data(env);
  auto out = Napi::Object::New(env);
  out.Set("tensors", static_cast<double>(data.tensor_count));
  out.Set("bytes", static_cast<double>(data.tensor_bytes));
  out.Set("v8ExternalBytes", static_cast<double>(Napi::MemoryManagement::AdjustExternalMemory(env, 0)));
  return out;
}

void register_tensor(Napi::Env env, Napi::Object exports) {
  TensorHandle::define(env, exports);
  exports.Set("tensorMemory", Napi::Function::New(env, tensor_memory, "tensorMemory"));
  exports.Set("tensorFromTypedArray", Napi::Function::New(env, tensor_from_typed_array, "tensorFromTypedArray"));
}

}  // namespace tpo::binding
