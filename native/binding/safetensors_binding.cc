// safetensorsRead / safetensorsHeader / safetensorsWrite / safetensorsWriteSharded: native/io/safetensors.h as
// Promises. Arguments are read on the main thread; the file work runs on the thread pool.
#include <napi.h>

#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/js_args.h"
#include "binding/tensor.h"
#include "io/safetensors.h"

namespace tpo::binding {
namespace {

io::Metadata metadata_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  io::Metadata out;
  if (value.IsUndefined() || value.IsNull()) return out;
  if (!value.IsObject()) throw_argument_error(env, what + " must be an object of strings");
  auto object = value.As<Napi::Object>();
  Napi::Array keys = object.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value v = object.Get(key);
    if (!v.IsString()) throw_argument_error(env, what + "['" + key + "'] must be a string");
    out[key] = v.As<Napi::String>().Utf8Value();
  }
  return out;
}

io::NamedTensors tensors_arg(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsObject()) throw_argument_error(env, what + " must be an object of Tensors");
  auto object = value.As<Napi::Object>();
  Napi::Array keys = object.GetPropertyNames();
  io::NamedTensors out;
  out.reserve(keys.Length());
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
    out.emplace_back(key, TensorHandle::unwrap(env, object.Get(key), what + "['" + key + "']"));
  }
  return out;
}

Napi::Object metadata_to_js(Napi::Env env, const io::Metadata& metadata) {
  auto out = Napi::Object::New(env);
  for (const auto& [k, v] : metadata) out.Set(k, v);
  return out;
}

struct ReadResult {
  io::NamedTensors tensors;
  io::Metadata metadata;
};

// safetensorsRead(path, dtype?, keys?, mmap?): every tensor (or the named ones) of a file, folder or sharded index,
// read into memory of their own (mmap: views of the mapping; io/safetensors.h LoadMode). With a dtype,
// floating-point tensors are converted to it (as transformers' torch_dtype); others are left as is.
Napi::Value read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = string_arg(env, info[0], "safetensorsRead: path");
  std::optional<torch::ScalarType> dtype;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull())
    dtype = parse_dtype(env, info[1], "safetensorsRead: dtype");
  std::optional<std::vector<std::string>> keys;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto array = info[2].As<Napi::Array>();
    keys.emplace();
    for (uint32_t i = 0; i < array.Length(); ++i) keys->push_back(string_arg(env, array.Get(i), "safetensorsRead: key"));
  }
  const bool mmap = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  return run_async(
      env, "safetensorsRead",
      [path, dtype, keys, mmap] {
        io::SafetensorsCheckpoint checkpoint(path, mmap ? io::LoadMode::Map : io::LoadMode::Read);
        ReadResult result;
        result.metadata = checkpoint.metadata();
        for (const std::string& key : keys ? *keys : checkpoint.keys()) {
          torch::Tensor t = checkpoint.tensor(key);
          if (dtype && t.is_floating_point() && t.scalar_type() != *dtype) t = t.to(*dtype);
          result.tensors.emplace_back(key, std::move(t));
        }
        return result;
      },
      [](Napi::Env env, ReadResult result) -> Napi::Value {
        auto tensors = Napi::Object::New(env);
        for (auto& [key, t] : result.tensors) tensors.Set(key, TensorHandle::wrap(env, std::move(t)));
        auto out = Napi::Object::New(env);
        out.Set("tensors", tensors);
        out.Set("metadata", metadata_to_js(env, result.metadata));
        return out;
      }, Runs::OnPool);
}

struct HeaderEntry {
  io::TensorEntry entry;
  std::string file;
};
struct HeaderResult {
  std::vector<HeaderEntry> entries;
  io::Metadata metadata;
};

// safetensorsHeader(path): names, dtypes, shapes and files, without touching tensor data.
Napi::Value header(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = string_arg(env, info[0], "safetensorsHeader: path");
  return run_async(
      env, "safetensorsHeader",
      [path] {
        io::SafetensorsCheckpoint checkpoint(path);
        HeaderResult result;
        result.metadata = checkpoint.metadata();
        for (const std::string& key : checkpoint.keys())
          result.entries.push_back({checkpoint.entry(key), checkpoint.file_of(key)});
        return result;
      },
      [](Napi::Env env, HeaderResult result) -> Napi::Value {
        auto entries = Napi::Array::New(env, result.entries.size());
        for (size_t i = 0; i < result.entries.size(); ++i) {
          const HeaderEntry& h = result.entries[i];
          auto e = Napi::Object::New(env);
          e.Set("name", h.entry.name);
          e.Set("dtype", dtype_spec(h.entry.dtype).name);
          e.Set("shape", shape_to_js(env, h.entry.shape));
          e.Set("byteLength", static_cast<double>(h.entry.end - h.entry.begin));
          e.Set("file", h.file);
          entries.Set(static_cast<uint32_t>(i), e);
        }
        auto out = Napi::Object::New(env);
        out.Set("tensors", entries);
        out.Set("metadata", metadata_to_js(env, result.metadata));
        return out;
      }, Runs::OnPool);
}

// safetensorsWrite(path, tensors, metadata?): one file, atomically.
Napi::Value write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = string_arg(env, info[0], "safetensorsWrite: path");
  io::NamedTensors tensors = tensors_arg(env, info[1], "safetensorsWrite: tensors");
  io::Metadata metadata = metadata_arg(env, info[2], "safetensorsWrite: metadata");
  return run_async(
      env, "safetensorsWrite " + path,
      [path, tensors = std::move(tensors), metadata = std::move(metadata)] {
        io::write_safetensors(path, tensors, metadata);
      },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, Runs::OnPool);
}

// safetensorsWriteSharded(dir, tensors, maxShardBytes, metadata?, prefix?): transformers' sharded layout.
Napi::Value write_sharded(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string dir = string_arg(env, info[0], "safetensorsWriteSharded: dir");
  io::NamedTensors tensors = tensors_arg(env, info[1], "safetensorsWriteSharded: tensors");
  if (!info[2].IsNumber() || info[2].As<Napi::Number>().DoubleValue() < 1)
    throw_argument_error(env, "safetensorsWriteSharded: maxShardBytes must be a positive number");
  const auto max_bytes = static_cast<uint64_t>(info[2].As<Napi::Number>().DoubleValue());
  io::Metadata metadata = metadata_arg(env, info[3], "safetensorsWriteSharded: metadata");
  const std::string prefix =
      info.Length() > 4 && !info[4].IsUndefined() ? string_arg(env, info[4], "safetensorsWriteSharded: prefix") : "model";
  return run_async(
      env, "safetensorsWriteSharded " + dir,
      [dir, tensors = std::move(tensors), max_bytes, metadata = std::move(metadata), prefix] {
        return io::write_safetensors_sharded(dir, tensors, max_bytes, metadata, prefix);
      },
      [](Napi::Env env, std::vector<std::string> files) -> Napi::Value {
        auto out = Napi::Array::New(env, files.size());
        for (size_t i = 0; i < files.size(); ++i) out.Set(static_cast<uint32_t>(i), files[i]);
        return out;
      }, Runs::OnPool);
}

}  // namespace

void register_safetensors(Napi::Env env, Napi::Object exports) {
  exports.Set("safetensorsRead", Napi::Function::New(env, read, "safetensorsRead"));
  exports.Set("safetensorsHeader", Napi::Function::New(env, header, "safetensorsHeader"));
  exports.Set("safetensorsWrite", Napi::Function::New(env, write, "safetensorsWrite"));
  exports.Set("safetensorsWriteSharded", Napi::Function::New(env, write_sharded, "safetensorsWriteSharded"));
}

}  // namespace tpo::binding
