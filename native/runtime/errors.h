// Exceptions the binding gives JS error codes of their own (binding/errors.cc), thrown by code that knows nothing
// of Node.
#pragma once

#include <stdexcept>

namespace tpo {

// Numbers came out NaN or infinite (ERR_TPO_NON_FINITE): a loss, a gradient or a model's scores that must not be
// used as if they were numbers.
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace tpo
