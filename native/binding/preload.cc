// tpo_preload.node: loads shared libraries into the process before the prebuilt addon, which links libtorch
// without an RPATH. Once libc10.so / libtorch_cpu.so / libtorch.so are loaded (RTLD_GLOBAL), the dynamic linker
// resolves the addon's DT_NEEDED entries to them by soname. Knows nothing of torch, so it loads anywhere.
#include <dlfcn.h>
#include <napi.h>

#include <string>

namespace {

// preload(paths: string[]): dlopen each, in order; throws an Error carrying dlerror()'s text.
Napi::Value preload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "preload: expected an array of library paths");
  auto paths = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < paths.Length(); ++i) {
    const std::string path = paths.Get(i).ToString().Utf8Value();
    // Never dlclose'd: the addon about to load needs these for the life of the process.
    if (!dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
      const char* why = dlerror();
      Napi::Error error = Napi::Error::New(env, std::string("cannot load ") + path + ": " + (why ? why : "unknown"));
      error.Set("code", Napi::String::New(env, "ERR_TPO_PRELOAD"));
      throw error;
    }
  }
  return env.Undefined();
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("preload", Napi::Function::New(env, preload, "preload"));
  return exports;
}

}  // namespace

NODE_API_MODULE(tpo_preload, init)
