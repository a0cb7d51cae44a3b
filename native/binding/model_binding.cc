// modelLoad(dir, options) -> Promise<Model>; Model.forward / encodeVideo / save / dispose. A Model owns one
// native/model module; every call on it runs on the thread pool and keeps the module alive until it settles.
#include <napi.h>

#include "binding/addon_data.h"
#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/js_args.h"
#include "binding/tensor.h"
#include "model/loader.h"

namespace tpo::binding {
namespace {

using model::LoadedModel;
using NamedOutputs = std::vector<std::pair<std::string, torch::Tensor>>;

Napi::Object outputs_to_js(Napi::Env env, NamedOutputs outputs) {
  auto out = Napi::Object::New(env);
  for (auto& [name, t] : outputs) out.Set(name, TensorHandle::wrap(env, std::move(t)));
  return out;
}

void add_states(NamedOutputs& out, const std::string& prefix, const std::vector<torch::Tensor>& states) {
  for (size_t i = 0; i < states.size(); ++i) out.emplace_back(prefix + std::to_string(i), states[i]);
}

const char* architecture_name(model::Architecture a) {
  switch (a) {
    case model::Architecture::Qwen2ForCausalLM: return "Qwen2ForCausalLM";
    case model::Architecture::VisionModel: return "VisionModel";
    case model::Architecture::LlavaQwenForCausalLM: return "LlavaQwenForCausalLM";
  }
  return "?";
}

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static void define(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Model", {
        InstanceAccessor<&ModelHandle::info>("info"),
        InstanceMethod<&ModelHandle::forward>("forward"),
        InstanceMethod<&ModelHandle::encode_video>("encodeVideo"),
        InstanceMethod<&ModelHandle::save>("save"),
        InstanceMethod<&ModelHandle::dispose>("dispose"),
    });
    addon_data(env).model_constructor = Napi::Persistent(ctor);
    exports.Set("Model", ctor);
  }

  static Napi::Object wrap(Napi::Env env, std::shared_ptr<LoadedModel> model) {
    return addon_data(env).model_constructor.New({Napi::External<std::shared_ptr<LoadedModel>>::New(env, &model)});
  }

  explicit ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw_argument_error(info.Env(), "Model cannot be constructed directly: use loadModel()");
    model_ = *info[0].As<Napi::External<std::shared_ptr<LoadedModel>>>().Data();
  }

 private:
  std::shared_ptr<LoadedModel> live(Napi::Env env) const {
    if (!model_) throw_argument_error(env, "Model was disposed");
    return model_;
  }

  Napi::Value info(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    auto out = Napi::Object::New(env);
    out.Set("architecture", architecture_name(m->config.architecture));
    out.Set("modelType", m->config.model_type);
    out.Set("layout", model::layout_name(m->report.layout));
    out.Set("config", m->config.json);
    int64_t count = 0;
    for (const auto& p : m->module().parameters()) count += p.numel();
    out.Set("parameters", static_cast<double>(count));
    out.Set("zeroCopyTensors", static_cast<double>(m->report.zero_copy));
    out.Set("convertedTensors", static_cast<double>(m->report.converted));
    auto ignored = Napi::Array::New(env, m->report.ignored.size());
    for (size_t i = 0; i < m->report.ignored.size(); ++i) ignored.Set(static_cast<uint32_t>(i), m->report.ignored[i]);
    out.Set("ignoredKeys", ignored);
    return out;
  }

  // forward({inputIds?, attentionMask?, pixelValues?, outputHiddenStates?}): every intermediate a parity test needs.
  Napi::Value forward(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    const Args args(env, cb[0], "Model.forward");
    torch::Tensor ids, mask, pixels;
    if (args.has("inputIds")) ids = TensorHandle::unwrap(env, args.get("inputIds"), "Model.forward: inputIds");
    if (args.has("attentionMask")) mask = TensorHandle::unwrap(env, args.get("attentionMask"), "Model.forward: attentionMask");
    if (args.has("pixelValues")) pixels = TensorHandle::unwrap(env, args.get("pixelValues"), "Model.forward: pixelValues");
    const bool hidden = args.boolean("outputHiddenStates", false);
    if (m->lm && !ids.defined()) throw_argument_error(env, "Model.forward: inputIds is required");
    if (!m->lm && !pixels.defined()) throw_argument_error(env, "Model.forward: pixelValues is required");
    return run_async(
        env, "Model.forward",
        [m, ids, mask, pixels, hidden] {
          torch::NoGradGuard no_grad;
          NamedOutputs out;
          if (m->vision) {
            auto v = m->vision->vision_model->forward(pixels);
            out.emplace_back("last_hidden_state", v.last_hidden_state);
            if (hidden) add_states(out, "hidden_states.", v.hidden_states);
            return out;
          }
          torch::Tensor video;
          if (pixels.defined()) {
            auto tokens = m->lm->encode_video(pixels);
            out.emplace_back("vision_features", tokens.features);
            out.emplace_back("projected", tokens.projected);
            out.emplace_back("pooled", tokens.pooled);
            out.emplace_back("video_tokens", tokens.tokens);
            video = tokens.tokens;
          }
          auto r = m->lm->forward(ids.to(torch::kInt64), mask, video, hidden);
          out.emplace_back("logits", r.logits);
          out.emplace_back("inputs_embeds", r.inputs_embeds);
          out.emplace_back("attention_mask", r.attention_mask);
          out.emplace_back("last_hidden_state", r.lm.last_hidden_state);
          out.emplace_back("last_layer_output", r.lm.last_layer_output);
          if (hidden) add_states(out, "hidden_states.", r.lm.hidden_states);
          return out;
        },
        [](Napi::Env env, NamedOutputs out) -> Napi::Value { return outputs_to_js(env, std::move(out)); });
  }

  Napi::Value encode_video(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    torch::Tensor pixels = TensorHandle::unwrap(env, cb[0], "Model.encodeVideo: pixels");
    if (!m->lm || !m->lm->has_vision()) throw_argument_error(env, "Model.encodeVideo: this model has no vision tower");
    return run_async(
        env, "Model.encodeVideo",
        [m, pixels] {
          torch::NoGradGuard no_grad;
          return m->lm->encode_video(pixels).tokens;
        },
        [](Napi::Env env, torch::Tensor tokens) -> Napi::Value { return TensorHandle::wrap(env, std::move(tokens)); });
  }

  // save(dir, {layout?: 'llava-next'|'hf'|'hf-legacy', maxShardBytes?}): defaults to the layout it was loaded from.
  Napi::Value save(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    const std::string dir = string_arg(env, cb[0], "Model.save: dir");
    model::KeyLayout layout = m->report.layout;
    double max_bytes = 5e9;
    if (cb.Length() > 1 && cb[1].IsObject()) {
      const Args args(env, cb[1], "Model.save: options");
      if (args.has("layout")) {
        const std::string name = args.string("layout");
        if (name == "llava-next") layout = model::KeyLayout::Native;
        else if (name == "hf") layout = model::KeyLayout::HfLlava;
        else if (name == "hf-legacy") layout = model::KeyLayout::HfLlavaLegacy;
        else throw_argument_error(env, "Model.save: layout must be llava-next, hf or hf-legacy");
      }
      max_bytes = args.number("maxShardBytes", max_bytes);
    }
    return run_async(
        env, "Model.save " + dir,
        [m, dir, layout, max_bytes] { return model::save_model(*m, dir, layout, static_cast<uint64_t>(max_bytes)); },
        [](Napi::Env env, std::vector<std::string> files) -> Napi::Value {
          auto out = Napi::Array::New(env, files.size());
          for (size_t i = 0; i < files.size(); ++i) out.Set(static_cast<uint32_t>(i), files[i]);
          return out;
        });
  }

  Napi::Value dispose(const Napi::CallbackInfo& cb) {
    model_.reset();
    return cb.Env().Undefined();
  }

  std::shared_ptr<LoadedModel> model_;
};

// modelLoad(dir, {dtype?, overrides?}): config.json + safetensors, memory-mapped.
Napi::Value model_load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string dir = string_arg(env, info[0], "modelLoad: dir");
  model::ModelLoadOptions options;
  if (info.Length() > 1 && info[1].IsObject()) {
    const Args args(env, info[1], "modelLoad: options");
    if (args.has("dtype")) options.dtype = parse_dtype(env, args.get("dtype"), "modelLoad: dtype");
    if (args.has("overrides")) options.overrides_json = args.string("overrides");
  }
  return run_async(
      env, "modelLoad " + dir,
      [dir, options] { return std::make_shared<LoadedModel>(model::load_model(dir, options)); },
      [](Napi::Env env, std::shared_ptr<LoadedModel> m) -> Napi::Value { return ModelHandle::wrap(env, std::move(m)); });
}

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) {
  ModelHandle::define(env, exports);
  exports.Set("modelLoad", Napi::Function::New(env, model_load, "modelLoad"));
}

}  // namespace tpo::binding
