#include "model/parameters.h"

#include <vector>

namespace tpo::model {
namespace {

thread_local bool shape_only = false;

}  // namespace

ShapeOnlyScope::ShapeOnlyScope() : previous_(shape_only) { shape_only = true; }
ShapeOnlyScope::~ShapeOnlyScope() { shape_only = previous_; }

torch::Tensor new_parameter(c10::IntArrayRef shape) {
  if (!shape_only) return torch::empty(shape);
  return torch::empty_strided(shape, std::vector<int64_t>(shape.size(), 0));
}

bool is_placeholder(const torch::Tensor& t) {
  if (t.numel() <= 1) return false;
  for (const int64_t s : t.strides())
    if (s != 0) return false;
  return true;
}

DenseImpl::DenseImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", new_parameter({out, in}));
  if (with_bias) bias = register_parameter("bias", new_parameter({out}));
}

torch::Tensor DenseImpl::forward(const torch::Tensor& x) { return torch::nn::functional::linear(x, weight, bias); }

torch::nn::Embedding make_embedding(int64_t count, int64_t dim) {
  return torch::nn::Embedding(torch::nn::EmbeddingOptions(count, dim)._weight(new_parameter({count, dim})));
}

}  // namespace tpo::model
