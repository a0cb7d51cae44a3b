// connectProcessGroup(options) -> Promise<ProcessGroup>: native/dist's c10d process group from JS, and its
// collectives on plain values (JSON text, numbers) for the stages that merge their ranks' results. Every call runs
// on the engine thread, in call order with the training steps' own collectives: the order every rank must share.
#include <napi.h>

#include <chrono>
#include <cstring>

#include "binding/addon_data.h"
#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/group_handle.h"
#include "binding/js_args.h"
#include "dist/process_group.h"

namespace tpo::binding {
namespace {

using dist::ProcessGroup;

class GroupHandle : public Napi::ObjectWrap<GroupHandle> {
 public:
  static void define(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "ProcessGroup", {
        InstanceAccessor<&GroupHandle::rank>("rank"),
        InstanceAccessor<&GroupHandle::size>("size"),
        InstanceAccessor<&GroupHandle::backend>("backend"),
        InstanceMethod<&GroupHandle::stats>("stats"),
        InstanceMethod<&GroupHandle::all_gather>("allGather"),
        InstanceMethod<&GroupHandle::all_reduce>("allReduce"),
        InstanceMethod<&GroupHandle::barrier>("barrier"),
        InstanceMethod<&GroupHandle::close>("close"),
    });
    addon_data(env).group_constructor = Napi::Persistent(ctor);
    exports.Set("ProcessGroup", ctor);
  }

  static Napi::Object wrap(Napi::Env env, std::shared_ptr<ProcessGroup> group) {
    return addon_data(env).group_constructor.New({Napi::External<std::shared_ptr<ProcessGroup>>::New(env, &group)});
  }

  static std::shared_ptr<ProcessGroup> unwrap_live(Napi::Env env, const Napi::Value& value, const std::string& what) {
    if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addon_data(env).group_constructor.Value()))
      throw_argument_error(env, what + " must be a ProcessGroup");
    return Unwrap(value.As<Napi::Object>())->live(env);
  }

  explicit GroupHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GroupHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw_argument_error(info.Env(), "ProcessGroup cannot be constructed directly: use connectProcessGroup()");
    group_ = *info[0].As<Napi::External<std::shared_ptr<ProcessGroup>>>().Data();
  }

 private:
  std::shared_ptr<ProcessGroup> live(Napi::Env) const { return group_; }

  Napi::Value rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env())->rank()); }
  Napi::Value size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env())->size()); }
  Napi::Value backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), live(info.Env())->backend()); }

  Napi::Value stats(const Napi::CallbackInfo& info) {
    const auto s = live(info.Env())->stats();
    auto out = Napi::Object::New(info.Env());
    out.Set("calls", static_cast<double>(s.calls));
    out.Set("bytes", static_cast<double>(s.bytes));
    out.Set("seconds", s.seconds);
    return out;
  }

  // allGather(text, what?) -> Promise<string[]>: every rank's text, in rank order.
  Napi::Value all_gather(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto group = live(env);
    const std::string text = string_arg(env, info[0], "ProcessGroup.allGather: text");
    const std::string what = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "allGather";
    return run_async(
        env, "", [group, text, what] { return group->all_gather_bytes(text, what); },
        [](Napi::Env env, std::vector<std::string> parts) -> Napi::Value {
          auto out = Napi::Array::New(env, parts.size());
          for (size_t i = 0; i < parts.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::String::New(env, parts[i]));
          return out;
        });
  }

  // allReduce(values: Float64Array, what?) -> Promise<Float64Array>: the element-wise sum over the ranks.
  Napi::Value all_reduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto group = live(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw_argument_error(env, "ProcessGroup.allReduce: values must be a Float64Array");
    const auto array = info[0].As<Napi::Float64Array>();
    auto values = torch::empty({static_cast<int64_t>(array.ElementLength())}, torch::kFloat64);
    std::memcpy(values.data_ptr<double>(), array.Data(), array.ElementLength() * sizeof(double));
    const std::string what = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "allReduce";
    return run_async(
        env, "", [group, values, what] {
          group->all_reduce_sum({values}, what);
          return values;
        },
        [](Napi::Env env, torch::Tensor sums) -> Napi::Value {
          auto out = Napi::Float64Array::New(env, static_cast<size_t>(sums.numel()));
          std::memcpy(out.Data(), sums.data_ptr<double>(), sums.numel() * sizeof(double));
          return out;
        });
  }

  Napi::Value barrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto group = live(env);
    const std::string what = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "barrier";
    return run_async(env, "", [group, what] { group->barrier(what); }, [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  // close(): a last barrier (so no rank leaves while another still needs the store rank 0 hosts), then the
  // group's backend and store are released; later collectives fail (rank, size and stats still answer).
  Napi::Value close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto group = live(env);
    return run_async(env, "", [group] { group->close(); }, [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  std::shared_ptr<ProcessGroup> group_;
};

// connectProcessGroup({backend, masterAddr, masterPort, rank, worldSize, localRank, timeoutMs, identity})
Napi::Value connect_process_group(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Args args(env, info[0], "connectProcessGroup");
  dist::GroupConfig c;
  c.backend = args.has("backend") ? args.string("backend") : c.backend;
  c.master_addr = args.has("masterAddr") ? args.string("masterAddr") : c.master_addr;
  c.master_port = args.integer("masterPort", c.master_port);
  c.rank = args.integer("rank", 0);
  c.world_size = args.integer("worldSize", 1);
  c.local_rank = args.integer("localRank", c.rank);
  const double timeout = args.number("timeoutMs", static_cast<double>(c.timeout.count()));
  if (!(timeout >= 1)) throw_argument_error(env, "connectProcessGroup: timeoutMs must be >= 1");
  c.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout));
  c.identity = args.has("identity") ? args.string("identity") : "";
  return run_async(
      env, "", [c] { return std::make_shared<ProcessGroup>(c); },
      [](Napi::Env env, std::shared_ptr<ProcessGroup> group) -> Napi::Value { return GroupHandle::wrap(env, std::move(group)); });
}

// distBackends() -> {gloo, nccl}: which backends this build has.
Napi::Value dist_backends(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  for (const char* name : {"gloo", "nccl"}) out.Set(name, dist::backend_built(name));
  return out;
}

}  // namespace

std::shared_ptr<dist::ProcessGroup> unwrap_group(Napi::Env env, const Napi::Value& value, const std::string& what) {
  return GroupHandle::unwrap_live(env, value, what);
}

void register_dist(Napi::Env env, Napi::Object exports) {
  GroupHandle::define(env, exports);
  exports.Set("connectProcessGroup", Napi::Function::New(env, connect_process_group, "connectProcessGroup"));
  exports.Set("distBackends", Napi::Function::New(env, dist_backends, "distBackends"));
}

}  // namespace tpo::binding
