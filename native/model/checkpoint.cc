#include "model/checkpoint.h"

#include <algorithm>

#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/custom_function.h>

namespace tpo::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BlockHolder : torch::CustomClassHolder {
  Block block;
  torch::Tensor rng_state;  // the CPU generator's state when the forward ran
};

struct Checkpoint : torch::autograd::Function<Checkpoint> {
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<BlockHolder> holder, at::TensorList inputs) {
    holder->rng_state = at::detail::getDefaultCPUGenerator().get_state();
    ctx->saved_data["block"] = c10::IValue::make_capsule(holder);
    ctx->save_for_backward(inputs.vec());
    torch::NoGradGuard no_grad;
    return holder->block(inputs.vec());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    variable_list inputs;
    for (const auto& saved : ctx->get_saved_variables()) inputs.push_back(saved.detach().requires_grad_(saved.requires_grad()));
    variable_list outputs;
    {
      // The recomputation draws the forward's random numbers again (LoRA dropout), then the state moves on.
      auto generator = at::detail::getDefaultCPUGenerator();
      const auto now = generator.get_state();
      generator.set_state(holder->rng_state);
      torch::AutoGradMode grad(true);
      outputs = holder->block(inputs);
      generator.set_state(now);
    }
    variable_list roots, root_grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (!outputs[i].requires_grad() || !grads[i].defined()) continue;
      roots.push_back(outputs[i]);
      root_grads.push_back(grads[i]);
    }
    if (!roots.empty()) torch::autograd::backward(roots, root_grads);
    variable_list out{torch::Tensor()};  // the block argument has no gradient
    for (const auto& x : inputs) out.push_back(x.requires_grad() ? x.grad() : torch::Tensor());
    return out;
  }
};

}  // namespace

std::vector<torch::Tensor> checkpointed(Block block, const std::vector<torch::Tensor>& inputs) {
  if (!torch::GradMode::is_enabled()) return block(inputs);
  auto holder = c10::make_intrusive<BlockHolder>();
  // An autograd Function's outputs need a gradient only if one of its inputs does. The first decoder layer's input
  // (a frozen embedding's output, as with LoRA) needs none, yet the block's parameters do: a zero-size input that
  // requires a gradient keeps the outputs in the graph, so the recomputation reaches the parameters (the reentrant
  // torch.utils.checkpoint needs the same, which transformers' enable_input_require_grads provides).
  const bool tracked = std::any_of(inputs.begin(), inputs.end(), [](const torch::Tensor& t) { return t.requires_grad(); });
  if (tracked) {
    holder->block = std::move(block);
    return Checkpoint::apply(holder, at::TensorList(inputs));
  }
  const size_t n = inputs.size();
  holder->block = [block = std::move(block), n](const std::vector<torch::Tensor>& all) {
    return block(std::vector<torch::Tensor>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n)));
  };
  auto all = inputs;
  all.push_back(torch::empty({0}, inputs.empty() ? torch::TensorOptions() : inputs.front().options()).requires_grad_(true));
  return Checkpoint::apply(holder, at::TensorList(all));
}

}  // namespace tpo::model
