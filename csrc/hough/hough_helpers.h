#pragma once
// Per-vote and per-peak arithmetic of the straight-line Hough transform, shared by the CPU and CUDA
// kernels. Convention of scikit-image's hough_line: rho = x cos(theta) + y sin(theta), 1-pixel rho
// bins centred on the integers -offset..offset with offset = ceil(sqrt(H^2 + W^2)), bin index
// round(rho) + offset with halves rounded away from zero.

#include <cstdint>

#include "common/host_device.h"

namespace emrestore {

EMR_HD int64_t hough_offset(int64_t H, int64_t W) {
  return int64_t(ceil(sqrt(double(H) * double(H) + double(W) * double(W))));
}

// Rounds half away from zero (C's round) for |r| < 2^52, in two vectorisable instructions: adding
// the largest double below 0.5 carries exactly the values at or above a half to the next integer.
EMR_HD double round_half_away(double r) {
  return trunc(r + copysign(0.49999999999999994, r));
}

// rho of pixel (x, y) at an angle with cosine c and sine s, rounded to its bin centre. The products
// are added without fusing them (the CPU file is compiled with -ffp-contract=off, the device path
// uses _rn intrinsics), so that every bin equals scikit-image's, even within an ulp of a half.
EMR_HD double rho_rounded(double c, double s, double x, double y) {
#ifdef __CUDA_ARCH__
  return round_half_away(__dadd_rn(__dmul_rn(c, x), __dmul_rn(s, y)));
#else
  return round_half_away(c * x + s * y);
#endif
}

EMR_HD int64_t rho_bin(double c, double s, double x, double y, int64_t offset) {
  return int64_t(rho_rounded(c, s, x, y)) + offset;
}

// Whether peaks (r1, t1) and (r2, t2) (rho and theta bin indices of an R x T accumulator) are too
// close to both be lines: within min_distance rho bins and min_angle theta bins. With `wrap` (the
// angles cover pi uniformly) the theta axis is circular, and the line (theta, rho) is the line
// (theta +- pi, -rho): across the wrap rho bin r is compared as R - 1 - r.
EMR_HD bool peaks_conflict(int64_t r1, int64_t t1, int64_t r2, int64_t t2, int64_t R, int64_t T,
                           int64_t min_distance, int64_t min_angle, bool wrap) {
  const int64_t dt = t1 > t2 ? t1 - t2 : t2 - t1;
  const int64_t dr = r1 > r2 ? r1 - r2 : r2 - r1;
  if (dt <= min_angle && dr <= min_distance) return true;
  if (!wrap) return false;
  const int64_t r2m = R - 1 - r2;
  const int64_t drm = r1 > r2m ? r1 - r2m : r2m - r1;
  return T - dt <= min_angle && drm <= min_distance;
}

}  // namespace emrestore
