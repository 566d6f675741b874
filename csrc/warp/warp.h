#pragma once
#include <string>

#include "common/checks.h"
#include "warp/warp_helpers.h"

namespace emrestore {

inline WarpGeometry check_warp(const at::Tensor& input, const at::Tensor& flow, const std::string& mode,
                               const std::string& padding) {
  Interp interp;
  if (mode == "bilinear") interp = Interp::Bilinear;
  else if (mode == "nearest") interp = Interp::Nearest;
  else if (mode == "bicubic") interp = Interp::Bicubic;
  else TORCH_CHECK_VALUE(false, "warp: mode must be 'bilinear', 'bicubic' or 'nearest'; got '", mode, "'");
  WarpPad pad;
  if (padding == "border") pad = WarpPad::Border;
  else if (padding == "zeros") pad = WarpPad::Zeros;
  else if (padding == "reflection") pad = WarpPad::Reflection;
  else TORCH_CHECK_VALUE(false, "warp: padding must be 'border', 'zeros' or 'reflection'; got '", padding, "'");
  TORCH_CHECK_VALUE(input.dim() == 4, "warp: input must be [B, C, H, W]; got shape ", shape_str(input));
  TORCH_CHECK_VALUE(flow.dim() == 4 && flow.size(1) == 2 && flow.size(0) == input.size(0),
                    "warp: flow must be [", std::to_string(input.size(0)), ", 2, H, W] for input of shape ",
                    shape_str(input), "; got shape ", shape_str(flow));
  TORCH_CHECK_TYPE(input.scalar_type() == flow.scalar_type() && at::isFloatingType(input.scalar_type()),
                   "warp: input and flow must share one floating-point dtype; got ", dtype_str(input),
                   ", ", dtype_str(flow));
  TORCH_CHECK_VALUE(input.device() == flow.device(), "warp: input and flow must be on one device; got ",
                    input.device().str(), ", ", flow.device().str());
  return {input.size(0), input.size(1), input.size(2), input.size(3), flow.size(2), flow.size(3), interp, pad};
}

// check_warp plus the shape of the output gradient.
inline WarpGeometry check_warp_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& flow, const std::string& mode,
                                        const std::string& padding) {
  const WarpGeometry g = check_warp(input, flow, mode, padding);
  check_grad_output(grad_output, {g.B, g.C, g.H, g.W}, "warp_backward");
  return g;
}

}  // namespace emrestore
