#pragma once
#include <string>

#include "common/checks.h"

namespace emrestore {

// Sizes of one sepconv call, validated: input [B, C, Hin, Win], weights [B, K, H, W]; the input is
// padded by lo = K / 2 before and hi = (K - 1) / 2 after, or arrives padded (mode None).
struct SepconvGeometry {
  int64_t B, C, H, W, K, lo, hi;
  PadMode mode;
};

inline SepconvGeometry check_sepconv(const at::Tensor& input, const at::Tensor& vertical,
                                     const at::Tensor& horizontal, const std::string& padding) {
  const PadMode mode = parse_pad_mode(padding);
  TORCH_CHECK_VALUE(input.dim() == 4, "sepconv: input must be [B, C, H, W]; got shape ",
                    shape_str(input));
  TORCH_CHECK_VALUE(vertical.dim() == 4, "sepconv: vertical must be [B, K, H, W]; got shape ",
                    shape_str(vertical));
  TORCH_CHECK_VALUE(horizontal.sizes() == vertical.sizes(),
                    "sepconv: horizontal must have the shape of vertical ", shape_str(vertical),
                    "; got ", shape_str(horizontal));
  const int64_t B = vertical.size(0), K = vertical.size(1), H = vertical.size(2), W = vertical.size(3);
  TORCH_CHECK_VALUE(K >= 1, "sepconv: kernels need at least one tap (K >= 1); got shape ",
                    shape_str(vertical));
  const int64_t pad = mode == PadMode::None ? K - 1 : 0;
  const std::vector<int64_t> expected{B, input.size(1), H + pad, W + pad};
  TORCH_CHECK_VALUE(input.sizes() == at::IntArrayRef(expected), "sepconv: with padding='", padding,
                    "' and kernels of shape ", shape_str(vertical), " the input must be [",
                    std::to_string(B), ", C, ", std::to_string(H + pad), ", ", std::to_string(W + pad),
                    "]; got shape ", shape_str(input));
  TORCH_CHECK_VALUE(input.size(1) >= 1, "sepconv: input needs at least one channel; got shape ",
                    shape_str(input));
  TORCH_CHECK_TYPE(input.scalar_type() == vertical.scalar_type() &&
                       input.scalar_type() == horizontal.scalar_type(),
                   "sepconv: input, vertical and horizontal must share one dtype; got ",
                   dtype_str(input), ", ", dtype_str(vertical), ", ", dtype_str(horizontal));
  TORCH_CHECK_TYPE(at::isFloatingType(input.scalar_type()),
                   "sepconv: expected floating-point tensors; got ", dtype_str(input));
  TORCH_CHECK_VALUE(input.device() == vertical.device() && input.device() == horizontal.device(),
                    "sepconv: input, vertical and horizontal must be on one device; got ",
                    input.device().str(), ", ", vertical.device().str(), ", ", horizontal.device().str());
  return {B, input.size(1), H, W, K, K / 2, (K - 1) / 2, mode};
}

// check_sepconv plus the shape of the output gradient.
inline SepconvGeometry check_sepconv_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                              const at::Tensor& vertical, const at::Tensor& horizontal,
                                              const std::string& padding) {
  const SepconvGeometry g = check_sepconv(input, vertical, horizontal, padding);
  check_grad_output(grad_output, {g.B, g.C, g.H, g.W}, "sepconv_backward");
  return g;
}

}  // namespace emrestore
