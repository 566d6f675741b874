#pragma once
#include <ATen/ATen.h>

#include <string>

#include "common/padding.h"

namespace emrestore {

// Error messages carry numbers and devices as strings (std::to_string, Device::str()), never
// streamed: TORCH_CHECK's message builder streams its arguments in this library, and with g++ 13 and
// torch 2.11 the number formatting of that ostream crashed the process while the error was being
// raised (it looked its facet up under an id of its own). Strings stream without a locale facet.

// "[2, 3, 4]".
inline std::string shape_str(at::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

inline std::string shape_str(const at::Tensor& t) { return shape_str(t.sizes()); }

// dtype as Python spells it (torch.float32), so messages match what the caller wrote.
inline std::string dtype_str(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kInt: return "torch.int32";
    case at::kLong: return "torch.int64";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    default: return std::string("torch.") + c10::toString(t.scalar_type());
  }
}

inline PadMode parse_pad_mode(const std::string& padding) {
  if (padding == "replicate") return PadMode::Replicate;
  if (padding == "reflect") return PadMode::Reflect;
  if (padding == "zeros") return PadMode::Zeros;
  if (padding == "none") return PadMode::None;
  TORCH_CHECK_VALUE(false, "padding must be one of 'replicate', 'reflect', 'zeros', 'none'; got '",
                    padding, "'");
}

// The gradient reaching a backward kernel must have the shape of the forward output.
inline void check_grad_output(const at::Tensor& grad_output, at::IntArrayRef expected, const char* op) {
  TORCH_CHECK_VALUE(grad_output.sizes() == expected, op, ": grad_output must be ", shape_str(expected),
                    "; got shape ", shape_str(grad_output));
}

// Copies `input` [N, C, H, W] into a new contiguous [N, C, H + lo + hi, W + lo + hi] tensor.
at::Tensor pad_image(const at::Tensor& input, int64_t lo, int64_t hi, PadMode mode);
// Adjoint of pad_image: sums the gradient of the padded image back onto the H x W source pixels.
at::Tensor unpad_image_backward(const at::Tensor& grad_padded, int64_t H, int64_t W, int64_t lo,
                                PadMode mode);

}  // namespace emrestore
