#pragma once
#include "common/checks.h"
#include "fold/fold_helpers.h"

namespace emrestore {

struct FoldGeometry {
  int64_t B, F, P;
};

// vertices [B, F, P, 2], profile [B, F, P, 2], params [B, F, 5], of `dtype` on `device`.
inline FoldGeometry check_folds(const at::Tensor& vertices, const at::Tensor& profile,
                                const at::Tensor& params, int64_t batch, at::ScalarType dtype,
                                const at::Device& device) {
  TORCH_CHECK_VALUE(vertices.dim() == 4 && vertices.size(0) == batch && vertices.size(2) >= 2 &&
                        vertices.size(3) == 2,
                    "fold: vertices must be [", std::to_string(batch),
                    ", F, P >= 2, 2] (x, y per vertex); got shape ", shape_str(vertices));
  const int64_t F = vertices.size(1), P = vertices.size(2);
  TORCH_CHECK_VALUE(profile.sizes() == vertices.sizes(), "fold: profile must be [",
                    std::to_string(batch), ", ", std::to_string(F), ", ", std::to_string(P),
                    ", 2] (half-width, amplitude per vertex); got shape ", shape_str(profile));
  TORCH_CHECK_VALUE(params.dim() == 3 && params.size(0) == batch && params.size(1) == F &&
                        params.size(2) == kFoldParams,
                    "fold: params must be [", std::to_string(batch), ", ", std::to_string(F), ", ",
                    std::to_string(kFoldParams),
                    "] (slope, gain_left, gain_right, band_level, band_softness); got shape ",
                    shape_str(params));
  for (const at::Tensor* t : {&vertices, &profile, &params}) {
    TORCH_CHECK_TYPE(t->scalar_type() == dtype, "fold: geometry must have the image's dtype ",
                     c10::toString(dtype), "; got ", dtype_str(*t));
    TORCH_CHECK_VALUE(t->device() == device, "fold: geometry must be on the image's device ",
                      device.str(), "; got ", t->device().str());
  }
  return {batch, F, P};
}

}  // namespace emrestore
