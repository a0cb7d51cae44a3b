// Activation (gradient) checkpointing, as torch.utils.checkpoint's reentrant form does it: a block runs forward
// without keeping its activations, and runs again inside the backward pass to get them. Peak memory then holds
// each checkpointed block's inputs rather than everything inside it; the price is one more forward of each block.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <vector>

namespace tpo::model {

using Block = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

// block(inputs), with the activations inside `block` recomputed in the backward pass. Every input and output is a
// defined tensor; parameters the block uses receive their gradients during the recomputation. The CPU random
// state is restored for the recomputation, so dropout draws the same mask twice.
std::vector<torch::Tensor> checkpointed(Block block, const std::vector<torch::Tensor>& inputs);

// Whether checkpointing `module`'s blocks pays: asked for, gradients being recorded, and a parameter of `module`
// training (otherwise no backward pass runs through it).
inline bool checkpointing_pays(const torch::nn::Module& module, bool asked) {
  if (!asked || !torch::GradMode::is_enabled()) return false;
  const auto params = module.parameters();
  return std::any_of(params.begin(), params.end(), [](const torch::Tensor& p) { return p.requires_grad(); });
}

}  // namespace tpo::model
