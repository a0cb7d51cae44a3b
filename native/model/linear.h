// A linear layer's forward through ATen's linear. The C++ frontend's torch::nn::functional::linear (what
// torch::nn::Linear calls) runs a matmul and then adds the bias in a second pass over the output for 3-D inputs;
// ATen's folds the bias into one addmm, as PyTorch's Python modules do.
#pragma once

#include <torch/torch.h>

#include "model/parameters.h"

namespace tpo::model {

inline torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  return at::linear(x, weight, bias.defined() ? std::optional<torch::Tensor>(bias) : std::nullopt);
}

inline torch::Tensor linear(const Dense& layer, const torch::Tensor& x) {
  return linear(x, layer->weight, layer->bias);
}

}  // namespace tpo::model
