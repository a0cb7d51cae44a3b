// How module constructors allocate parameters. No constructor initialises values: create_model draws them as
// transformers' _init_weights does, and load_weights reads them from the checkpoint. So loading never fills a
// full float32 model with random numbers before reading the weights it replaces (a 7B config was 30 GB of them).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace tpo::model {

// While one is alive on this thread, new parameters are placeholders: the right shape over one element of storage
// (strides 0), so a model is built and its shapes compared with a checkpoint's header before any weight memory
// exists. load_weights replaces every placeholder (set_data) with the tensor it reads.
// (Header-only: a translation unit of its own would cost a build the torch PCH once more for a few lines.)
namespace detail {
inline bool& shape_only() {
  thread_local bool on = false;
  return on;
}
}  // namespace detail

class ShapeOnlyScope {
 public:
  ShapeOnlyScope() : previous_(detail::shape_only()) { detail::shape_only() = true; }
  ~ShapeOnlyScope() { detail::shape_only() = previous_; }
  ShapeOnlyScope(const ShapeOnlyScope&) = delete;
  ShapeOnlyScope& operator=(const ShapeOnlyScope&) = delete;

 private:
  bool previous_;
};

// Uninitialised float32 storage of `shape`, or a placeholder inside a ShapeOnlyScope.
inline torch::Tensor new_parameter(c10::IntArrayRef shape) {
  if (!detail::shape_only()) return torch::empty(shape);
  return torch::empty_strided(shape, std::vector<int64_t>(shape.size(), 0));
}

// True for a placeholder new_parameter made (a parameter load_weights has not filled).
inline bool is_placeholder(const torch::Tensor& t) {
  if (t.numel() <= 1) return false;
  for (const int64_t s : t.strides())
    if (s != 0) return false;
  return true;
}

// torch::nn::Linear's parameters (weight [out, in], bias [out]), allocated by new_parameter; its forward through
// ATen's linear (the bias folded into the matmul, as model/linear.h says why).
class DenseImpl : public torch::nn::Module {
 public:
  DenseImpl(int64_t in, int64_t out, bool with_bias = true) {
    weight = register_parameter("weight", new_parameter({out, in}));
    if (with_bias) bias = register_parameter("bias", new_parameter({out}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return at::linear(x, weight, bias.defined() ? std::optional<torch::Tensor>(bias) : std::nullopt);
  }
  torch::Tensor weight, bias;
};
TORCH_MODULE(Dense);

// torch::nn::Embedding with its weight from new_parameter (Embedding would otherwise draw it from N(0, 1)).
inline torch::nn::Embedding make_embedding(int64_t count, int64_t dim) {
  return torch::nn::Embedding(torch::nn::EmbeddingOptions(count, dim)._weight(new_parameter({count, dim})));
}

}  // namespace tpo::model
