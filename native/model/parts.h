// Which part of a video LM a parameter belongs to, by its name: the vision tower, the projector between it and
// the language model, or the language model. What `setTrainable` freezes and what the optimizer's per-part
// learning rates (LLaVA-NeXT's mm_vision_tower_lr, mm_projector_lr) apply to.
// (Header-only: a translation unit of its own would cost a build the torch PCH once more for a few lines.)
#pragma once

#include <string>

namespace tpo::model {

enum class ModelPart { vision, projector, language };

// The part a parameter's module is in, whatever adapter it is (a LoRA matrix inside the tower is the tower's).
inline ModelPart model_part(const std::string& name) {
  const auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
  const auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
  // Qwen2.5-VL: the patch merger is its projector (LLaMA-Factory's freeze_multi_modal_projector), the rest of
  // visual.* its tower
  if (starts("visual.merger.")) return ModelPart::projector;
  if (starts("visual.")) return ModelPart::vision;
  if (has("vision_tower.") || starts("vision_model.") || starts("model.vision_model.") ||  // VideoLLaMA3's
      has("video_tower.") || has("image_tower."))
    return ModelPart::vision;
  if (has("mm_projector.") || starts("model.projector.") || has("image_newline")) return ModelPart::projector;
  return ModelPart::language;
}

// A LoRA adapter's matrix (trained or frozen as the adapter, whatever part it sits in).
inline bool is_lora_parameter(const std::string& name) { return name.find(".lora_") != std::string::npos; }

}  // namespace tpo::model
