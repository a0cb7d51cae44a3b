// How module constructors allocate parameters. No constructor initialises values: create_model draws them as
// transformers' _init_weights does, and load_weights reads them from the checkpoint. So loading never fills a
// full float32 model with random numbers before reading the weights it replaces (a 7B config was 30 GB of them).
#pragma once

#include <torch/torch.h>

namespace tpo::model {

// While one is alive on this thread, new parameters are placeholders: the right shape over one element of storage
// (strides 0), so a model is built and its shapes compared with a checkpoint's header before any weight memory
// exists. load_weights replaces every placeholder (set_data) with the tensor it reads.
class ShapeOnlyScope {
 public:
  ShapeOnlyScope();
  ~ShapeOnlyScope();
  ShapeOnlyScope(const ShapeOnlyScope&) = delete;
  ShapeOnlyScope& operator=(const ShapeOnlyScope&) = delete;

 private:
  bool previous_;
};

// Uninitialised float32 storage of `shape`, or a placeholder inside a ShapeOnlyScope.
torch::Tensor new_parameter(c10::IntArrayRef shape);
// True for a placeholder new_parameter made (a parameter load_weights has not filled).
bool is_placeholder(const torch::Tensor& t);

// torch::nn::Linear's parameters (weight [out, in], bias [out]) and forward, allocated by new_parameter.
class DenseImpl : public torch::nn::Module {
 public:
  DenseImpl(int64_t in, int64_t out, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
};
TORCH_MODULE(Dense);

// torch::nn::Embedding with its weight from new_parameter (Embedding would otherwise draw it from N(0, 1)).
torch::nn::Embedding make_embedding(int64_t count, int64_t dim);

}  // namespace tpo::model
