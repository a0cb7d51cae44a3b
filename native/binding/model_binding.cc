// modelLoad(dir, options) -> Promise<Model>; Model.forward / encodeVideo / save / dispose. A Model owns one
// native/model module; every call on it runs on the thread pool and keeps the module alive until it settles.
#include <napi.h>

#include "binding/addon_data.h"
#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/js_args.h"
#include "binding/model_handle.h"
#include "binding/tensor.h"
#include "model/inference.h"
#include "model/loader.h"
#include "model/lora.h"

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
        InstanceMethod<&ModelHandle::generate>("generate"),
        InstanceMethod<&ModelHandle::logprobs>("logprobs"),
        InstanceMethod<&ModelHandle::logprobs_batch>("logprobsBatch"),
        InstanceMethod<&ModelHandle::save>("save"),
        InstanceMethod<&ModelHandle::add_lora>("addLora"),
        InstanceMethod<&ModelHandle::set_lora_enabled>("setLoraEnabled"),
        InstanceMethod<&ModelHandle::merge_lora>("mergeLora"),
        InstanceMethod<&ModelHandle::save_lora>("saveLora"),
        InstanceMethod<&ModelHandle::load_lora>("loadLora"),
        InstanceMethod<&ModelHandle::set_trainable>("setTrainable"),
        InstanceMethod<&ModelHandle::set_gradient_checkpointing>("setGradientCheckpointing"),
        InstanceMethod<&ModelHandle::dispose>("dispose"),
    });
    addon_data(env).model_constructor = Napi::Persistent(ctor);
    exports.Set("Model", ctor);
  }

  static Napi::Object wrap(Napi::Env env, std::shared_ptr<LoadedModel> model) {
    return addon_data(env).model_constructor.New({Napi::External<std::shared_ptr<LoadedModel>>::New(env, &model)});
  }

  static std::shared_ptr<LoadedModel> unwrap_live(Napi::Env env, const Napi::Value& value, const std::string& what) {
    if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addon_data(env).model_constructor.Value()))
      throw_argument_error(env, what + " must be a Model");
    return Unwrap(value.As<Napi::Object>())->live(env);
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

  // The video of a call: precomputed visual tokens (`videoTokens`), or frames (`pixelValues`) encoded in the call.
  static torch::Tensor video_arg(Napi::Env env, const Args& args, const std::string& what) {
    if (args.has("videoTokens")) return TensorHandle::unwrap(env, args.get("videoTokens"), what + ": videoTokens");
    if (args.has("pixelValues")) return TensorHandle::unwrap(env, args.get("pixelValues"), what + ": pixelValues");
    return torch::Tensor();
  }

  static std::vector<torch::Tensor> tensor_list(Napi::Env env, const Napi::Value& value, const std::string& what) {
    if (!value.IsArray()) throw_argument_error(env, what + " must be an array of Tensors");
    auto array = value.As<Napi::Array>();
    std::vector<torch::Tensor> out;
    for (uint32_t i = 0; i < array.Length(); ++i)
      out.push_back(TensorHandle::unwrap(env, array.Get(i), what + "[" + std::to_string(i) + "]"));
    return out;
  }

  // Visual tokens for a call: encoded here when given frames (4-D), used as they are when given tokens (2-D).
  static torch::Tensor video_tokens(LoadedModel& m, const torch::Tensor& video) {
    if (!video.defined() || video.dim() == 2) return video;
    return m.lm->encode_video(video).tokens;
  }

  // generate({prompts: Tensor[], pixelValues? | videoTokens?, maxNewTokens, temperature, topP, seed, stopIds,
  //           useCache, sharePrefix}) -> {tokens: number[][], finishReasons: string[]}
  Napi::Value generate(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    if (!m->lm) throw_argument_error(env, "Model.generate: a vision tower alone does not generate");
    const Args args(env, cb[0], "Model.generate");
    auto prompts = tensor_list(env, args.get("prompts"), "Model.generate: prompts");
    const torch::Tensor video = video_arg(env, args, "Model.generate");
    model::GenerateOptions o;
    o.max_new_tokens = args.integer("maxNewTokens", 64);
    o.temperature = args.number("temperature", 0);
    o.top_p = args.number("topP", 1.0);
    o.seed = static_cast<uint64_t>(args.number("seed", 0));
    o.use_cache = args.boolean("useCache", true);
    o.share_prefix = args.boolean("sharePrefix", true);
    if (args.has("stopIds"))
      for (double id : number_array(env, args.get("stopIds"), "Model.generate: stopIds")) o.stop_ids.push_back(static_cast<int64_t>(id));
    return run_async(
        env, "Model.generate",
        [m, prompts, video, o] {
          torch::NoGradGuard no_grad;
          return model::generate(*m->lm, prompts, video_tokens(*m, video), o);
        },
        [](Napi::Env env, model::GenerateResult r) -> Napi::Value {
          auto tokens = Napi::Array::New(env, r.tokens.size());
          auto reasons = Napi::Array::New(env, r.tokens.size());
          for (size_t i = 0; i < r.tokens.size(); ++i) {
            auto row = Napi::Array::New(env, r.tokens[i].size());
            for (size_t j = 0; j < r.tokens[i].size(); ++j) row.Set(static_cast<uint32_t>(j), static_cast<double>(r.tokens[i][j]));
            tokens.Set(static_cast<uint32_t>(i), row);
            reasons.Set(static_cast<uint32_t>(i), r.finish_reasons[i]);
          }
          auto out = Napi::Object::New(env);
          out.Set("tokens", tokens);
          out.Set("finishReasons", reasons);
          return out;
        });
  }

  // logprobs({prompt: Tensor, answers: Tensor[], pixelValues? | videoTokens?, sharePrefix?})
  //   -> {sums: Tensor float32 [answers], tokenLogprobs: Tensor[]}
  Napi::Value logprobs(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    if (!m->lm) throw_argument_error(env, "Model.logprobs: a vision tower alone has no language model");
    const Args args(env, cb[0], "Model.logprobs");
    const torch::Tensor prompt = TensorHandle::unwrap(env, args.get("prompt"), "Model.logprobs: prompt");
    auto answers = tensor_list(env, args.get("answers"), "Model.logprobs: answers");
    const torch::Tensor video = video_arg(env, args, "Model.logprobs");
    const bool share = args.boolean("sharePrefix", true);
    return run_async(
        env, "Model.logprobs",
        [m, prompt, answers, video, share] {
          torch::NoGradGuard no_grad;
          return model::answer_logprobs(*m->lm, prompt, answers, video_tokens(*m, video), share);
        },
        [](Napi::Env env, model::AnswerLogprobs r) -> Napi::Value {
          auto out = Napi::Object::New(env);
          out.Set("sums", TensorHandle::wrap(env, r.sums));
          auto per = Napi::Array::New(env, r.token_logprobs.size());
          for (size_t i = 0; i < r.token_logprobs.size(); ++i) per.Set(static_cast<uint32_t>(i), TensorHandle::wrap(env, r.token_logprobs[i]));
          out.Set("tokenLogprobs", per);
          return out;
        });
  }

  // logprobsBatch({items: {prompt: Tensor, answers: Tensor[]}[], pixelValues? | videoTokens?, sharePrefix?})
  //   -> {sums, tokenLogprobs}[]: every prompt about one video, their common prefix computed once.
  Napi::Value logprobs_batch(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    if (!m->lm) throw_argument_error(env, "Model.logprobsBatch: a vision tower alone has no language model");
    const Args args(env, cb[0], "Model.logprobsBatch");
    if (!args.get("items").IsArray()) throw_argument_error(env, "Model.logprobsBatch: items must be an array");
    auto list = args.get("items").As<Napi::Array>();
    std::vector<model::PromptAnswers> items;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      const std::string what = "Model.logprobsBatch: items[" + std::to_string(i) + "]";
      const Args item(env, list.Get(i), what);
      items.push_back({TensorHandle::unwrap(env, item.get("prompt"), what + ".prompt"), tensor_list(env, item.get("answers"), what + ".answers")});
    }
    const torch::Tensor video = video_arg(env, args, "Model.logprobsBatch");
    const bool share = args.boolean("sharePrefix", true);
    return run_async(
        env, "Model.logprobsBatch",
        [m, items, video, share] {
          torch::NoGradGuard no_grad;
          return model::prompts_logprobs(*m->lm, items, video_tokens(*m, video), share);
        },
        [](Napi::Env env, std::vector<model::AnswerLogprobs> results) -> Napi::Value {
          auto out = Napi::Array::New(env, results.size());
          for (size_t i = 0; i < results.size(); ++i) {
            auto r = Napi::Object::New(env);
            r.Set("sums", TensorHandle::wrap(env, results[i].sums));
            auto per = Napi::Array::New(env, results[i].token_logprobs.size());
            for (size_t j = 0; j < results[i].token_logprobs.size(); ++j) per.Set(static_cast<uint32_t>(j), TensorHandle::wrap(env, results[i].token_logprobs[j]));
            r.Set("tokenLogprobs", per);
            out.Set(static_cast<uint32_t>(i), r);
          }
          return out;
        });
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

  std::shared_ptr<LoadedModel> lm_only(Napi::Env env, const char* what) const {
    auto m = live(env);
    if (!m->lm) throw_argument_error(env, std::string(what) + ": LoRA adapts the language model; this is a vision tower");
    return m;
  }

  // addLora({r, alpha, dropout, targetModules, seed}) -> number of adapted layers
  Napi::Value add_lora(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = lm_only(env, "Model.addLora");
    const Args args(env, cb[0], "Model.addLora");
    model::LoraConfig c;
    c.r = args.integer("r", static_cast<int>(c.r));
    c.alpha = args.number("alpha", c.alpha);
    c.dropout = args.number("dropout", c.dropout);
    if (args.has("targetModules")) {
      c.target_modules.clear();
      auto list = args.get("targetModules").As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); ++i) c.target_modules.push_back(string_arg(env, list.Get(i), "Model.addLora: targetModules"));
    }
    const auto seed = static_cast<uint64_t>(args.number("seed", 0));
    const int64_t n = guarded(env, "Model.addLora", [&] { return model::add_lora(*m->lm, c, seed); });
    m->lora = c;
    return Napi::Number::New(env, static_cast<double>(n));
  }

  Napi::Value set_lora_enabled(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = lm_only(env, "Model.setLoraEnabled");
    if (!cb[0].IsBoolean()) throw_argument_error(env, "Model.setLoraEnabled: expected true or false");
    model::set_lora_enabled(*m->lm, cb[0].As<Napi::Boolean>().Value());
    return env.Undefined();
  }

  Napi::Value merge_lora(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = lm_only(env, "Model.mergeLora");
    const int64_t n = guarded(env, "Model.mergeLora", [&] { return model::merge_lora(*m->lm); });
    m->lora.reset();
    return Napi::Number::New(env, static_cast<double>(n));
  }

  Napi::Value save_lora(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = lm_only(env, "Model.saveLora");
    const std::string dir = string_arg(env, cb[0], "Model.saveLora: dir");
    if (!m->lora) throw_argument_error(env, "Model.saveLora: the model has no LoRA adapter");
    return run_async(
        env, "Model.saveLora " + dir, [m, dir] { model::save_lora(*m->lm, *m->lora, dir); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  Napi::Value load_lora(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = lm_only(env, "Model.loadLora");
    const std::string dir = string_arg(env, cb[0], "Model.loadLora: dir");
    return run_async(
        env, "Model.loadLora " + dir, [m, dir] { m->lora = model::load_lora(*m->lm, dir); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  // setTrainable({vision, projector, language, lora}) -> number of trainable parameters (elements)
  Napi::Value set_trainable(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    const Args args(env, cb[0], "Model.setTrainable");
    const bool vision = args.boolean("vision", false), projector = args.boolean("projector", false);
    const bool language = args.boolean("language", false), lora = args.boolean("lora", true);
    int64_t count = 0;
    for (auto& item : m->module().named_parameters(true)) {
      const std::string& name = item.key();
      bool train;
      if (name.find(".lora_") != std::string::npos) train = lora;
      else if (name.find("vision_tower.") != std::string::npos || name.rfind("vision_model.", 0) == 0) train = vision;
      else if (name.find("mm_projector.") != std::string::npos || name.find("image_newline") != std::string::npos) train = projector;
      else train = language;
      item.value().set_requires_grad(train);
      if (train) count += item.value().numel();
    }
    return Napi::Number::New(env, static_cast<double>(count));
  }

  // setGradientCheckpointing(on): every decoder layer (and tower layer, when the tower trains) recomputes its
  // activations in the backward pass instead of keeping them.
  Napi::Value set_gradient_checkpointing(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto m = live(env);
    if (!cb[0].IsBoolean()) throw_argument_error(env, "Model.setGradientCheckpointing: expected true or false");
    const bool on = cb[0].As<Napi::Boolean>().Value();
    if (m->lm) {
      m->lm->model->gradient_checkpointing = on;
      if (m->lm->has_vision()) m->lm->llava->vision_tower->vision_tower->vision_model->gradient_checkpointing = on;
    }
    if (m->vision) m->vision->vision_model->gradient_checkpointing = on;
    return env.Undefined();
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
    if (args.has("device")) options.device = args.string("device");
  }
  return run_async(
      env, "modelLoad " + dir,
      [dir, options] { return std::make_shared<LoadedModel>(model::load_model(dir, options)); },
      [](Napi::Env env, std::shared_ptr<LoadedModel> m) -> Napi::Value { return ModelHandle::wrap(env, std::move(m)); });
}

// modelCreate(configJson, {seed?, dtype?}): random weights from a config, seeded.
Napi::Value model_create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string config = string_arg(env, info[0], "modelCreate: config");
  uint64_t seed = 0;
  std::optional<torch::ScalarType> dtype;
  std::string device = "cpu";
  if (info.Length() > 1 && info[1].IsObject()) {
    const Args args(env, info[1], "modelCreate: options");
    seed = static_cast<uint64_t>(args.number("seed", 0));
    if (args.has("dtype")) dtype = parse_dtype(env, args.get("dtype"), "modelCreate: dtype");
    if (args.has("device")) device = args.string("device");
  }
  return run_async(
      env, "modelCreate",
      [config, seed, dtype, device] { return std::make_shared<LoadedModel>(model::create_model(config, seed, dtype, device)); },
      [](Napi::Env env, std::shared_ptr<LoadedModel> m) -> Napi::Value { return ModelHandle::wrap(env, std::move(m)); });
}

}  // namespace

std::shared_ptr<model::LoadedModel> unwrap_model(Napi::Env env, const Napi::Value& value, const std::string& what) {
  return ModelHandle::unwrap_live(env, value, what);
}

void register_model(Napi::Env env, Napi::Object exports) {
  exports.Set("modelCreate", Napi::Function::New(env, model_create, "modelCreate"));
  ModelHandle::define(env, exports);
  exports.Set("modelLoad", Napi::Function::New(env, model_load, "modelLoad"));
}

}  // namespace tpo::binding
