// modelLoad(dir, options) -> Promise<Model>; Model.forward / encodeVideo / save / dispose. A Model owns one
// native/model module; every call on it runs off the event loop (the engine thread, async.h) and keeps the module
// alive until it settles.
// Which calls may run together, and which wait or are refused: model_handle.h.
#include <optional>

#include <napi.h>

#include "binding/addon_data.h"
#include "binding/async.h"
#include "binding/bindings.h"
#include "binding/errors.h"
#include "binding/js_args.h"
#include "binding/model_handle.h"
#include "binding/tensor.h"
#include "binding/video_args.h"
#include "model/inference.h"
#include "model/loader.h"
#include "model/lora.h"
#include "model/parts.h"
#include "model/video_lm.h"
#include "runtime/errors.h"

namespace tpo::binding {
namespace {

using model::LoadedModel;
using Shared = std::shared_ptr<SharedModel>;
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
    case model::Architecture::LlamaForCausalLM: return "LlamaForCausalLM";
    case model::Architecture::VideoLlavaForConditionalGeneration: return "VideoLlavaForConditionalGeneration";
    case model::Architecture::VideoLlama3ForConditionalGeneration: return "VideoLlama3ForConditionalGeneration";
    case model::Architecture::InternVLForConditionalGeneration: return "InternVLForConditionalGeneration";
    case model::Architecture::Qwen2_5_VLForConditionalGeneration: return "Qwen2_5_VLForConditionalGeneration";
  }
  return "?";
}

// The original repository's key layout is Video-LLaVA's for Video-LLaVA models, LLaVA-NeXT's otherwise.
std::string layout_name_for(const model::LoadedModel& m, model::KeyLayout layout) {
  if (layout == model::KeyLayout::Native && m.config.architecture == model::Architecture::VideoLlavaForConditionalGeneration)
    return "video-llava";
  // Qwen2.5-VL's module names are save_pretrained's (visual.*, model.*, lm_head.*): transformers' legacy layout.
  if (layout == model::KeyLayout::Native && m.config.architecture == model::Architecture::Qwen2_5_VLForConditionalGeneration)
    return "hf-legacy";
  return model::layout_name(layout);
}

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static void define(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Model", {
        InstanceAccessor<&ModelHandle::info>("info"),
        InstanceMethod<&ModelHandle::forward>("forward"),
        InstanceMethod<&ModelHandle::encode_video>("encodeVideo"),
        InstanceMethod<&ModelHandle::video_token_count>("videoTokenCount"),
        InstanceMethod<&ModelHandle::set_frame_text>("setFrameText"),
        InstanceMethod<&ModelHandle::set_second_per_grid_ts>("setSecondPerGridTs"),
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
    Shared shared = std::make_shared<SharedModel>(std::move(model));
    return addon_data(env).model_constructor.New({Napi::External<Shared>::New(env, &shared)});
  }

  static Shared unwrap_live(Napi::Env env, const Napi::Value& value, const std::string& what) {
    if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addon_data(env).model_constructor.Value()))
      throw_argument_error(env, what + " must be a Model");
    return Unwrap(value.As<Napi::Object>())->live(env);
  }

  explicit ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw_argument_error(info.Env(), "Model cannot be constructed directly: use loadModel()");
    model_ = *info[0].As<Napi::External<Shared>>().Data();
  }

 private:
  Shared live(Napi::Env env) const {
    if (!model_) throw_argument_error(env, "Model was disposed");
    return model_;
  }

  // Only what stays fixed after loading, and counts kept up to date: read while calls run, without the lock.
  Napi::Value info(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = live(env);
    const LoadedModel* m = shared->model.get();
    auto out = Napi::Object::New(env);
    out.Set("architecture", architecture_name(m->config.architecture));
    out.Set("modelType", m->config.model_type);
    out.Set("layout", layout_name_for(*m, m->report.layout));
    out.Set("config", m->config.json);
    out.Set("source", m->source);
    out.Set("dtype", dtype_spec(m->report.dtype).name);
    out.Set("memoryMapped", !m->mapped_files.empty());
    out.Set("parameters", static_cast<double>(shared->parameters.load()));
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
    auto shared = live(env);
    const LoadedModel& model = *shared->model;
    const Args args(env, cb[0], "Model.forward");
    torch::Tensor ids, mask, pixels;
    if (args.has("inputIds")) ids = TensorHandle::unwrap(env, args.get("inputIds"), "Model.forward: inputIds");
    if (args.has("attentionMask")) mask = TensorHandle::unwrap(env, args.get("attentionMask"), "Model.forward: attentionMask");
    if (args.has("pixelValues")) pixels = TensorHandle::unwrap(env, args.get("pixelValues"), "Model.forward: pixelValues");
    // transformers' name of a video's pixels (Qwen2.5-VL's, VideoLLaMA3's patches)
    if (args.has("pixelValuesVideos")) {
      if (pixels.defined()) throw_argument_error(env, "Model.forward: give pixelValues or pixelValuesVideos, not both");
      pixels = TensorHandle::unwrap(env, args.get("pixelValuesVideos"), "Model.forward: pixelValuesVideos");
    }
    const bool hidden = args.boolean("outputHiddenStates", false);
    const bool qwen = model.lm && model.config.architecture == model::Architecture::Qwen2_5_VLForConditionalGeneration;
    std::optional<model::Qwen2_5_VLGrid> qwen_grid;
    double second_per_grid_t = qwen ? model.lm->second_per_grid_t() : 0;
    if (args.has("secondPerGridTs")) {
      if (!qwen) throw_argument_error(env, "Model.forward: secondPerGridTs is Qwen2.5-VL's input");
      const auto s = TensorHandle::unwrap(env, args.get("secondPerGridTs"), "Model.forward: secondPerGridTs");
      if (s.numel() != 1) throw_argument_error(env, "Model.forward: secondPerGridTs must be one video's seconds ([1]), got " + c10::str(s.sizes()));
      second_per_grid_t = s.to(torch::kFloat64).reshape({1})[0].item<double>();
    }
    // transformers' video_grid_thw: the patches' grid of Qwen2.5-VL's or VideoLLaMA3's processor.
    std::optional<model::Qwen2_5_VLGrid> thw;
    if (args.has("videoGridThw")) {
      thw = video_grid_arg(env, args.get("videoGridThw"), "Model.forward: videoGridThw");
      if (!pixels.defined()) throw_argument_error(env, "Model.forward: videoGridThw needs the video's patches (pixelValuesVideos)");
    }
    if (qwen) qwen_grid = thw;
    // VideoLLaMA3's transformers inputs: pixelValues are then its processor's patches [t*h*w, 3*p*p].
    std::optional<model::PatchGrid> grid;
    torch::Tensor compression;
    if (!qwen && thw) {
      grid = model::PatchGrid{thw->t, thw->h, thw->w, model.config.mm ? model.config.mm->merge_size : 1};
      if (args.has("videoMergeSizes")) {
        const auto ms = TensorHandle::unwrap(env, args.get("videoMergeSizes"), "Model.forward: videoMergeSizes");
        if (ms.numel() != 1 || c10::isFloatingType(ms.scalar_type()))
          throw_argument_error(env, "Model.forward: videoMergeSizes must be one video's integer merge size ([1])");
        grid->merge = ms.to(torch::kInt64).reshape({1})[0].item<int64_t>();
      }
      if (args.has("videoCompressionMask"))
        compression = TensorHandle::unwrap(env, args.get("videoCompressionMask"), "Model.forward: videoCompressionMask");
      if (!model.lm || model.config.architecture != model::Architecture::VideoLlama3ForConditionalGeneration)
        throw_argument_error(env, "Model.forward: videoGridThw is VideoLLaMA3's input; this model takes frames");
    }
    if (model.lm && !ids.defined()) throw_argument_error(env, "Model.forward: inputIds is required");
    if (!model.lm && !pixels.defined()) throw_argument_error(env, "Model.forward: pixelValues is required");
    if (ids.defined()) check_ids(env, ids, "Model.forward: inputIds");
    return run_async(
        env, "Model.forward",
        [call = ModelCall(shared), ids, mask, pixels, hidden, grid, compression, qwen_grid, second_per_grid_t] {
          const Reading reading(call);
          LoadedModel& m = call.model();
          torch::NoGradGuard no_grad;
          NamedOutputs out;
          if (m.vision) {
            auto v = m.vision->vision_model->forward(pixels);
            out.emplace_back("last_hidden_state", v.last_hidden_state);
            if (hidden) add_states(out, "hidden_states.", v.hidden_states);
            return out;
          }
          torch::Tensor video;
          model::VideoRope rope;
          if (pixels.defined()) {
            if (m.lm && m.lm->visual) {
              // Qwen2.5-VL: its processor's patches and grid, or frames patchified as the processor does.
              model::Qwen2_5_VLGrid g;
              if (qwen_grid) g = *qwen_grid;
              const auto patches = qwen_grid ? pixels : model::qwen2_5_vl_patchify(*m.config.vision, pixels, g);
              return qwen_outputs(m, ids, mask, m.lm->encode_video_grid(patches, g, second_per_grid_t), hidden);
            }
            auto tokens = grid ? m.lm->encode_video_patches(pixels, *grid, compression) : m.lm->encode_video(pixels);
            if (tokens.kept.defined()) out.emplace_back("compression_mask", tokens.kept);
            out.emplace_back("vision_features", tokens.features);
            out.emplace_back("projected", tokens.projected);
            out.emplace_back("pooled", tokens.pooled);
            out.emplace_back("video_tokens", tokens.tokens);
            video = tokens.tokens;
          }
          auto r = m.lm->forward(ids.to(torch::kInt64), mask, video, hidden);
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

  // forward's outputs for a Qwen2.5-VL video: the tower's, the language model's on M-RoPE positions, and those.
  static NamedOutputs qwen_outputs(model::LoadedModel& m, const torch::Tensor& ids, const torch::Tensor& mask,
                                   const model::VideoTokens& tokens, bool hidden) {
    NamedOutputs out;
    out.emplace_back("vision_features", tokens.features);
    out.emplace_back("video_tokens", tokens.tokens);
    auto r = m.lm->forward(ids.to(torch::kInt64), mask, tokens.tokens, hidden, tokens.rope);
    out.emplace_back("logits", r.logits);
    out.emplace_back("inputs_embeds", r.inputs_embeds);
    out.emplace_back("attention_mask", r.attention_mask);
    out.emplace_back("position_ids", r.position_ids);
    out.emplace_back("rope_deltas", r.rope_deltas);
    out.emplace_back("last_hidden_state", r.lm.last_hidden_state);
    out.emplace_back("last_layer_output", r.lm.last_layer_output);
    if (hidden) add_states(out, "hidden_states.", r.lm.hidden_states);
    return out;
  }

  // encodeVideo(pixels, frameText?): frameText [{before, after}, ...] is this call's text around each frame
  // (VideoLLaMA3's time stamps, which differ by video); without it, the model's (setFrameText).
  Napi::Value encode_video(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = live(env);
    torch::Tensor pixels = TensorHandle::unwrap(env, cb[0], "Model.encodeVideo: pixels");
    if (!shared->model->lm || !shared->model->lm->has_vision())
      throw_argument_error(env, "Model.encodeVideo: this model has no vision tower");
    std::optional<std::vector<model::VideoLMImpl::FrameText>> text;
    if (cb.Length() > 1 && !cb[1].IsUndefined()) text = frame_text_arg(env, cb[1], "Model.encodeVideo: frameText");
    return run_async(
        env, "Model.encodeVideo",
        [call = ModelCall(shared), pixels, text] {
          const Reading reading(call);
          torch::NoGradGuard no_grad;
          return call.model().lm->encode_video(pixels, text ? &*text : nullptr).tokens;
        },
        [](Napi::Env env, torch::Tensor tokens) -> Napi::Value { return TensorHandle::wrap(env, std::move(tokens)); });
  }

  // videoTokenCount(frames): the visual tokens that many frames become, from the config (no call on the weights):
  // checked against max_position_embeddings before a video is decoded.
  Napi::Value video_token_count(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = live(env);
    const double frames = cb[0].IsNumber() ? cb[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(frames >= 0) || frames != std::floor(frames) || frames > 9007199254740991.0)
      throw_argument_error(env, "Model.videoTokenCount: frames must be an integer >= 0");
    return Napi::Number::New(env, static_cast<double>(guarded(env, "Model.videoTokenCount", [&] {
      const auto n = static_cast<int64_t>(frames);
      return model::video_token_count(shared->model->config, n) + (shared->model->lm ? shared->model->lm->frame_text_tokens(n) : 0);
    })));
  }

  // setFrameText([{before, after}, ...]): InternVL's (or VideoLLaMA3's) text around each frame's visual tokens, as token ids
  // (model::VideoLMImpl::set_frame_text); [] clears it. Changes the model: refused while calls run.
  Napi::Value set_frame_text(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = live(env);
    const std::string what = "Model.setFrameText";
    if (!shared->model->lm) throw_argument_error(env, what + ": a vision tower has no frame text");
    auto text = frame_text_arg(env, cb[0], what);
    const auto lock = lock_idle(env, *shared, what);
    guarded(env, what.c_str(), [&] {
      shared->model->lm->set_frame_text(std::move(text));
      return 0;
    });
    return env.Undefined();
  }

  // setSecondPerGridTs(seconds): Qwen2.5-VL's seconds a temporal patch of frames spans (model::VideoLMImpl::
  // set_second_per_grid_t). Changes the model: refused while calls run.
  Napi::Value set_second_per_grid_ts(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = live(env);
    const std::string what = "Model.setSecondPerGridTs";
    if (!shared->model->lm) throw_argument_error(env, what + ": a vision tower alone has no temporal RoPE");
    if (!cb[0].IsNumber()) throw_argument_error(env, what + ": expected the seconds a temporal patch spans");
    const double seconds = cb[0].As<Napi::Number>().DoubleValue();
    const auto lock = lock_idle(env, *shared, what);
    guarded(env, what.c_str(), [&] {
      shared->model->lm->set_second_per_grid_t(seconds);
      return 0;
    });
    return env.Undefined();
  }

  // The video of a call: precomputed visual tokens (`videoTokens`), or frames (`pixelValues`) encoded in the call,
  // with Qwen2.5-VL's layout of it: the tokens' grid (videoGridThw [t, h, w]; frames carry their own) and the video's
  // seconds per temporal patch (secondPerGridTs; default the model's), from which the M-RoPE positions follow.
  static model::VideoInput video_arg(Napi::Env env, const Args& args, const LoadedModel& m, const std::string& what) {
    model::VideoInput in;
    if (args.has("videoTokens")) in.video = TensorHandle::unwrap(env, args.get("videoTokens"), what + ": videoTokens");
    else if (args.has("pixelValues")) in.video = TensorHandle::unwrap(env, args.get("pixelValues"), what + ": pixelValues");
    const bool qwen = m.lm && m.lm->visual;
    if (args.has("videoGridThw")) {
      if (!qwen) throw_argument_error(env, what + ": videoGridThw with visual tokens is Qwen2.5-VL's input");
      if (!args.has("videoTokens")) throw_argument_error(env, what + ": videoGridThw goes with videoTokens (frames carry their own grid)");
      const auto grid = video_grid_arg(env, args.get("videoGridThw"), what + ": videoGridThw");
      const int64_t m_size = m.config.vision->spatial_merge_size;
      if (grid.t < 1 || grid.h < 1 || grid.w < 1 || grid.h % m_size != 0 || grid.w % m_size != 0)
        throw_argument_error(env, what + ": videoGridThw must be positive with h and w multiples of spatial_merge_size (" +
                                      std::to_string(m_size) + ")");
      in.grid = grid;
    }
    if (args.has("secondPerGridTs")) {
      if (!qwen) throw_argument_error(env, what + ": secondPerGridTs is Qwen2.5-VL's input");
      if (!in.video.defined()) throw_argument_error(env, what + ": secondPerGridTs goes with a video");
      if (args.has("videoTokens") && !in.grid) throw_argument_error(env, what + ": secondPerGridTs goes with videoGridThw");
      const double seconds = args.number("secondPerGridTs", -1);
      if (!std::isfinite(seconds) || seconds < 0) throw_argument_error(env, what + ": secondPerGridTs must be a finite number >= 0");
      in.second_per_grid_t = seconds;
    }
    return in;
  }

  // Token ids must be integers: a float tensor would be truncated to ids nobody meant.
  static void check_ids(Napi::Env env, const torch::Tensor& ids, const std::string& what) {
    if (c10::isFloatingType(ids.scalar_type()) || ids.scalar_type() == torch::kBool)
      throw_argument_error(env, what + " must hold integer token ids, got " + dtype_spec(ids.scalar_type()).name);
  }

  static std::vector<torch::Tensor> tensor_list(Napi::Env env, const Napi::Value& value, const std::string& what) {
    if (!value.IsArray()) throw_argument_error(env, what + " must be an array of Tensors");
    auto array = value.As<Napi::Array>();
    std::vector<torch::Tensor> out;
    for (uint32_t i = 0; i < array.Length(); ++i) {
      const std::string name = what + "[" + std::to_string(i) + "]";
      out.push_back(TensorHandle::unwrap(env, array.Get(i), name));
      check_ids(env, out.back(), name);
    }
    return out;
  }

  // generate({prompts: Tensor[], pixelValues? | videoTokens? (+ videoGridThw?, secondPerGridTs?), maxNewTokens, temperature, topP, seed, stopIds,
  //           useCache, sharePrefix}) -> {tokens: number[][], finishReasons: string[]}
  Napi::Value generate(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = live(env);
    if (!shared->model->lm) throw_argument_error(env, "Model.generate: a vision tower alone does not generate");
    const Args args(env, cb[0], "Model.generate");
    auto prompts = tensor_list(env, args.get("prompts"), "Model.generate: prompts");
    const model::VideoInput video = video_arg(env, args, *shared->model, "Model.generate");
    model::GenerateOptions o;
    o.max_new_tokens = args.integer("maxNewTokens", 64);
    o.temperature = args.number("temperature", 0);
    o.top_p = args.number("topP", 1.0);
    o.seed = seed_arg(env, args, "seed");
    o.use_cache = args.boolean("useCache", true);
    o.share_prefix = args.boolean("sharePrefix", true);
    if (o.temperature < 0) throw_argument_error(env, "Model.generate: temperature must be >= 0");
    if (!(o.top_p > 0 && o.top_p <= 1)) throw_argument_error(env, "Model.generate: topP must be in (0, 1]");
    if (args.has("stopIds"))
      for (double id : number_array(env, args.get("stopIds"), "Model.generate: stopIds")) {
        if (id != std::floor(id) || std::abs(id) > 9007199254740991.0) throw_argument_error(env, "Model.generate: stopIds must be integers");
        o.stop_ids.push_back(static_cast<int64_t>(id));
      }
    return run_async(
        env, "Model.generate",
        [call = ModelCall(shared), prompts, video, o] {
          const Reading reading(call);
          torch::NoGradGuard no_grad;
          const auto v = model::encode_video_input(*call.model().lm, video);
          return model::generate(*call.model().lm, prompts, v.tokens, o, v.rope);
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
    auto shared = live(env);
    if (!shared->model->lm) throw_argument_error(env, "Model.logprobs: a vision tower alone has no language model");
    const Args args(env, cb[0], "Model.logprobs");
    const torch::Tensor prompt = TensorHandle::unwrap(env, args.get("prompt"), "Model.logprobs: prompt");
    check_ids(env, prompt, "Model.logprobs: prompt");
    auto answers = tensor_list(env, args.get("answers"), "Model.logprobs: answers");
    const model::VideoInput video = video_arg(env, args, *shared->model, "Model.logprobs");
    const bool share = args.boolean("sharePrefix", true);
    return run_async(
        env, "Model.logprobs",
        [call = ModelCall(shared), prompt, answers, video, share] {
          const Reading reading(call);
          torch::NoGradGuard no_grad;
          const auto v = model::encode_video_input(*call.model().lm, video);
          auto r = model::answer_logprobs(*call.model().lm, prompt, answers, v.tokens, share, false, v.rope);
          // Scores leave native code here: a NaN would compare as neither better nor worse than any other answer
          // and turn an evaluation into the share of questions answered A. Cheap: one value per answer.
          if (!torch::isfinite(r.sums).all().item<bool>())
            throw NonFiniteError("the model at " + call.model().source + " gives non-finite log-probs (NaN or infinity): its weights "
                                 "or config make numbers that cannot be trusted");
          return r;
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
    auto shared = live(env);
    if (!shared->model->lm) throw_argument_error(env, "Model.logprobsBatch: a vision tower alone has no language model");
    const Args args(env, cb[0], "Model.logprobsBatch");
    if (!args.get("items").IsArray()) throw_argument_error(env, "Model.logprobsBatch: items must be an array");
    auto list = args.get("items").As<Napi::Array>();
    std::vector<model::PromptAnswers> items;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      const std::string what = "Model.logprobsBatch: items[" + std::to_string(i) + "]";
      const Args item(env, list.Get(i), what);
      const torch::Tensor prompt = TensorHandle::unwrap(env, item.get("prompt"), what + ".prompt");
      check_ids(env, prompt, what + ".prompt");
      items.push_back({prompt, tensor_list(env, item.get("answers"), what + ".answers")});
    }
    const model::VideoInput video = video_arg(env, args, *shared->model, "Model.logprobsBatch");
    const bool share = args.boolean("sharePrefix", true);
    return run_async(
        env, "Model.logprobsBatch",
        [call = ModelCall(shared), items, video, share] {
          const Reading reading(call);
          torch::NoGradGuard no_grad;
          const auto v = model::encode_video_input(*call.model().lm, video);
          auto results = model::prompts_logprobs(*call.model().lm, items, v.tokens, share, false, v.rope);
          // As logprobs: scores leave native code here, and a NaN would pass for an answer neither better nor worse.
          for (size_t i = 0; i < results.size(); ++i)
            if (!torch::isfinite(results[i].sums).all().item<bool>())
              throw NonFiniteError("the model at " + call.model().source + " gives non-finite log-probs (NaN or infinity) for items[" +
                                   std::to_string(i) + "]: its weights or config make numbers that cannot be trusted");
          return results;
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
    auto shared = live(env);
    const std::string dir = string_arg(env, cb[0], "Model.save: dir");
    model::KeyLayout layout = shared->model->report.layout;
    double max_bytes = 5e9;
    if (cb.Length() > 1 && cb[1].IsObject()) {
      const Args args(env, cb[1], "Model.save: options");
      if (args.has("layout")) {
        const std::string name = args.string("layout");
        // The original repository's layout: LLaVA-NeXT's for LLaVA models, Video-LLaVA's for Video-LLaVA.
        if (name == "llava-next" || name == "video-llava") layout = model::KeyLayout::Native;
        else if (name == "hf") layout = model::KeyLayout::HfLlava;
        else if (name == "hf-legacy") layout = model::KeyLayout::HfLlavaLegacy;
        else throw_argument_error(env, "Model.save: layout must be llava-next, video-llava, hf or hf-legacy");
        const bool video_llava = shared->model->config.architecture == model::Architecture::VideoLlavaForConditionalGeneration;
        // VideoLLaMA3 has one layout, transformers' (no original-repository checkpoint of another is in use).
        if (shared->model->config.architecture == model::Architecture::VideoLlama3ForConditionalGeneration && name != "hf")
          throw_argument_error(env, "Model.save: a VideoLLaMA3 model is saved in transformers' layout (hf), not " + name);
        // InternVL: transformers' layouts only (OpenGVLab's remote-code layout is not loaded).
        if (shared->model->config.architecture == model::Architecture::InternVLForConditionalGeneration && name != "hf" &&
            name != "hf-legacy")
          throw_argument_error(env, "Model.save: an InternVL model is saved in transformers' layouts (hf-legacy, as its "
                                    "save_pretrained writes, or hf), not " + name);
        if (shared->model->config.architecture == model::Architecture::Qwen2_5_VLForConditionalGeneration) {
          if (name != "hf" && name != "hf-legacy")
            throw_argument_error(env, "Model.save: a Qwen2.5-VL model is saved in transformers' layouts (hf-legacy, as its "
                                      "save_pretrained writes, or hf), not " + name);
          layout = name == "hf" ? model::KeyLayout::HfLlava : model::KeyLayout::Native;
        }
        if ((name == "llava-next" && video_llava) || (name == "video-llava" && !video_llava))
          throw_argument_error(env, "Model.save: layout " + name + " is not this model's original layout (" +
                                        layout_name_for(*shared->model, model::KeyLayout::Native) + ")");
      }
      max_bytes = args.number("maxShardBytes", max_bytes);
      if (!(max_bytes >= 1)) throw_argument_error(env, "Model.save: maxShardBytes must be >= 1");
    }
    return run_async(
        env, "Model.save " + dir,
        [call = ModelCall(shared), dir, layout, max_bytes] {
          const Reading reading(call);
          return model::save_model(call.model(), dir, layout, static_cast<uint64_t>(max_bytes));
        },
        [](Napi::Env env, std::vector<std::string> files) -> Napi::Value {
          auto out = Napi::Array::New(env, files.size());
          for (size_t i = 0; i < files.size(); ++i) out.Set(static_cast<uint32_t>(i), files[i]);
          return out;
        });
  }

  Shared lm_only(Napi::Env env, const char* what) const {
    auto shared = live(env);
    if (!shared->model->lm) throw_argument_error(env, std::string(what) + ": LoRA adapts the language model; this is a vision tower");
    return shared;
  }

  // addLora({r, alpha, dropout, targetModules, seed}) -> number of adapted layers
  Napi::Value add_lora(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = lm_only(env, "Model.addLora");
    const Args args(env, cb[0], "Model.addLora");
    model::LoraConfig c;
    c.r = args.integer("r", static_cast<int>(c.r));
    c.alpha = args.number("alpha", c.alpha);
    c.dropout = args.number("dropout", c.dropout);
    if (c.r < 1) throw_argument_error(env, "Model.addLora: r must be >= 1");
    if (!(c.dropout >= 0 && c.dropout < 1)) throw_argument_error(env, "Model.addLora: dropout must be in [0, 1)");
    if (args.has("targetModules")) {
      if (!args.get("targetModules").IsArray()) throw_argument_error(env, "Model.addLora: targetModules must be an array of names");
      c.target_modules.clear();
      auto list = args.get("targetModules").As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); ++i) c.target_modules.push_back(string_arg(env, list.Get(i), "Model.addLora: targetModules"));
    }
    const auto seed = seed_arg(env, args, "seed");
    const auto lock = lock_idle(env, *shared, "Model.addLora");
    LoadedModel& m = *shared->model;
    const int64_t n = guarded(env, "Model.addLora", [&] { return model::add_lora(*m.lm, c, seed); });
    m.lora = c;
    shared->structure_changed();
    return Napi::Number::New(env, static_cast<double>(n));
  }

  // Never waits, never refused: calls made from now on run with this setting; calls made before keep theirs.
  Napi::Value set_lora_enabled(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = lm_only(env, "Model.setLoraEnabled");
    if (!cb[0].IsBoolean()) throw_argument_error(env, "Model.setLoraEnabled: expected true or false");
    shared->lora_enabled = cb[0].As<Napi::Boolean>().Value();
    return env.Undefined();
  }

  Napi::Value merge_lora(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = lm_only(env, "Model.mergeLora");
    const auto lock = lock_idle(env, *shared, "Model.mergeLora");
    LoadedModel& m = *shared->model;
    const int64_t n = guarded(env, "Model.mergeLora", [&] { return model::merge_lora(*m.lm); });
    m.lora.reset();
    shared->structure_changed();
    return Napi::Number::New(env, static_cast<double>(n));
  }

  Napi::Value save_lora(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = lm_only(env, "Model.saveLora");
    const std::string dir = string_arg(env, cb[0], "Model.saveLora: dir");
    if (!shared->model->lora) throw_argument_error(env, "Model.saveLora: the model has no LoRA adapter");
    return run_async(
        env, "Model.saveLora " + dir,
        [call = ModelCall(shared), dir] {
          const Reading reading(call);
          LoadedModel& m = call.model();
          if (!m.lora) throw std::invalid_argument("the model has no LoRA adapter (merged meanwhile?)");
          model::save_lora(*m.lm, *m.lora, dir, model::peft_module_names(m.config.architecture));
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  Napi::Value load_lora(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = lm_only(env, "Model.loadLora");
    const std::string dir = string_arg(env, cb[0], "Model.loadLora: dir");
    return run_async(
        env, "Model.loadLora " + dir,
        [call = ModelCall(shared), dir] {
          const Writing writing(call);
          LoadedModel& m = call.model();
          m.lora = model::load_lora(*m.lm, dir, model::peft_module_name_candidates());
          call.shared().structure_changed();
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  // setTrainable({vision, projector, language, lora}) -> number of trainable parameters (elements)
  Napi::Value set_trainable(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = live(env);
    const Args args(env, cb[0], "Model.setTrainable");
    const bool vision = args.boolean("vision", false), projector = args.boolean("projector", false);
    const bool language = args.boolean("language", false), lora = args.boolean("lora", true);
    const auto lock = lock_idle(env, *shared, "Model.setTrainable");
    int64_t count = 0;
    for (auto& item : shared->model->module().named_parameters(true)) {
      const std::string& name = item.key();
      const model::ModelPart part = model::model_part(name);
      const bool train = model::is_lora_parameter(name)           ? lora
                         : part == model::ModelPart::vision    ? vision
                         : part == model::ModelPart::projector ? projector
                                                               : language;
      item.value().set_requires_grad(train);
      if (train) count += item.value().numel();
    }
    shared->structure_changed();
    return Napi::Number::New(env, static_cast<double>(count));
  }

  // setGradientCheckpointing(on): every decoder layer (and tower layer, when the tower trains) recomputes its
  // activations in the backward pass instead of keeping them. A mutation: refused while calls are in flight.
  Napi::Value set_gradient_checkpointing(const Napi::CallbackInfo& cb) {
    Napi::Env env = cb.Env();
    auto shared = live(env);
    if (!cb[0].IsBoolean()) throw_argument_error(env, "Model.setGradientCheckpointing: expected true or false");
    const bool on = cb[0].As<Napi::Boolean>().Value();
    const auto lock = lock_idle(env, *shared, "Model.setGradientCheckpointing");
    LoadedModel& m = *shared->model;
    if (m.lm) {
      m.lm->model->gradient_checkpointing = on;
      if (m.lm->has_vision()) m.lm->set_vision_gradient_checkpointing(on);
    }
    if (m.vision) m.vision->vision_model->gradient_checkpointing = on;
    return env.Undefined();
  }

  // Calls in flight keep their own reference: the model's memory goes when the last of them settles.
  Napi::Value dispose(const Napi::CallbackInfo& cb) {
    model_.reset();
    return cb.Env().Undefined();
  }

  Shared model_;
};

// modelLoad(dir, {dtype?, overrides?, device?, mmap?}): config.json + safetensors, read into private memory (or
// memory-mapped with mmap: true; model/loader.h).
Napi::Value model_load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string dir = string_arg(env, info[0], "modelLoad: dir");
  model::ModelLoadOptions options;
  if (info.Length() > 1 && info[1].IsObject()) {
    const Args args(env, info[1], "modelLoad: options");
    if (args.has("dtype")) options.dtype = parse_dtype(env, args.get("dtype"), "modelLoad: dtype");
    if (args.has("overrides")) options.overrides_json = args.string("overrides");
    if (args.has("device")) options.device = args.string("device");
    options.mmap = args.boolean("mmap", false);
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
    seed = seed_arg(env, args, "seed");
    if (args.has("dtype")) dtype = parse_dtype(env, args.get("dtype"), "modelCreate: dtype");
    if (args.has("device")) device = args.string("device");
  }
  return run_async(
      env, "modelCreate",
      [config, seed, dtype, device] { return std::make_shared<LoadedModel>(model::create_model(config, seed, dtype, device)); },
      [](Napi::Env env, std::shared_ptr<LoadedModel> m) -> Napi::Value { return ModelHandle::wrap(env, std::move(m)); });
}

}  // namespace

std::shared_ptr<SharedModel> unwrap_model(Napi::Env env, const Napi::Value& value, const std::string& what) {
  return ModelHandle::unwrap_live(env, value, what);
}

std::unique_lock<std::shared_mutex> lock_idle(Napi::Env env, SharedModel& model, const std::string& what) {
  const int calls = model.calls.load();
  if (calls > 0)
    throw_busy_error(env, what + ": " + std::to_string(calls) + " call(s) on this model are still running; await them first "
                                 "(a model is changed only while nothing else uses it)");
  std::unique_lock<std::shared_mutex> lock(model.mutex, std::try_to_lock);
  if (!lock.owns_lock()) throw_busy_error(env, what + ": the model is in use; await its calls first");
  return lock;
}

void register_model(Napi::Env env, Napi::Object exports) {
  exports.Set("modelCreate", Napi::Function::New(env, model_create, "modelCreate"));
  ModelHandle::define(env, exports);
  exports.Set("modelLoad", Napi::Function::New(env, model_load, "modelLoad"));
}

}  // namespace tpo::binding
