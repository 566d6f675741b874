#pragma once
#include <tuple>
#include <vector>

#include "common/checks.h"
#include "hough/hough_helpers.h"

namespace emrestore {

// image [B, H, W] (bool/uint8: one vote per nonzero pixel; float: the pixel's value as its vote);
// cos_theta, sin_theta [T] float64 on the image's device. Returns the accumulator dtype: int32
// counts for binary votes (a cell counts at most one vote per pixel along a line), else the image's.
inline at::ScalarType check_hough_lines(const at::Tensor& image, const at::Tensor& cos_theta,
                                        const at::Tensor& sin_theta) {
  TORCH_CHECK_VALUE(image.dim() == 3, "hough_lines: image must be [B, H, W]; got shape ", shape_str(image));
  const auto st = image.scalar_type();
  TORCH_CHECK_TYPE(st == at::kBool || st == at::kByte || st == at::kFloat || st == at::kDouble,
                   "hough_lines: image must be bool or uint8 (binary votes) or float32/float64 "
                   "(weighted votes); got ", dtype_str(image));
  for (const at::Tensor* t : {&cos_theta, &sin_theta}) {
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == cos_theta.size(0),
                      "hough_lines: cos_theta and sin_theta must be [T] of equal length; got shapes ",
                      shape_str(cos_theta), " and ", shape_str(sin_theta));
    TORCH_CHECK_TYPE(t->scalar_type() == at::kDouble, "hough_lines: angle tables must be float64; got ",
                     dtype_str(*t));
    TORCH_CHECK_VALUE(t->device() == image.device(), "hough_lines: angle tables must be on the image's "
                      "device ", image.device().str(), "; got ", t->device().str());
  }
  return (st == at::kBool || st == at::kByte) ? at::kInt : st;
}

inline void check_hough_peaks(const at::Tensor& acc, const at::Tensor& threshold, int64_t num_peaks,
                              int64_t min_distance, int64_t min_angle) {
  TORCH_CHECK_VALUE(acc.dim() == 3, "hough_peaks: acc must be [B, R, T]; got shape ", shape_str(acc));
  const auto st = acc.scalar_type();
  TORCH_CHECK_TYPE(st == at::kLong || st == at::kInt || st == at::kFloat || st == at::kDouble,
                   "hough_peaks: acc must be int32/int64/float32/float64; got ", dtype_str(acc));
  TORCH_CHECK_VALUE(threshold.dim() == 3 && threshold.scalar_type() == at::kDouble,
                    "hough_peaks: threshold must be a float64 [B or 1, R or 1, T or 1] tensor; got ",
                    dtype_str(threshold), " ", shape_str(threshold));
  for (int d = 0; d < 3; ++d)
    TORCH_CHECK_VALUE(threshold.size(d) == 1 || threshold.size(d) == acc.size(d),
                      "hough_peaks: threshold of shape ", shape_str(threshold),
                      " does not broadcast to the accumulator ", shape_str(acc));
  TORCH_CHECK_VALUE(threshold.device() == acc.device(), "hough_peaks: threshold must be on ",
                    acc.device().str());
  TORCH_CHECK_VALUE(num_peaks >= 0 && min_distance >= 0 && min_angle >= 0,
                    "hough_peaks: num_peaks, min_distance and min_angle must be >= 0; got ",
                    std::to_string(num_peaks), ", ", std::to_string(min_distance), ", ",
                    std::to_string(min_angle));
}

// A local maximum of the accumulator: value and (b, rho, theta) bin.
struct PeakCandidate {
  double value;
  int64_t b, r, t;
};

// Greedy non-maximum suppression on the host, shared by the CPU and CUDA paths: candidates by
// decreasing value (ties: lower index first), each kept unless it conflicts with a kept peak of its
// image. Returns rho [B, N], theta [B, N] (padded with -1) and the count per image [B].
std::tuple<at::Tensor, at::Tensor, at::Tensor> select_peaks(std::vector<PeakCandidate>& candidates,
                                                            int64_t B, int64_t R, int64_t T,
                                                            int64_t num_peaks, int64_t min_distance,
                                                            int64_t min_angle, bool wrap);

}  // namespace emrestore
