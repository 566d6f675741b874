#pragma once
// Per-pixel arithmetic of the adaptive separable convolution, shared by the CPU and CUDA kernels.
//
// Layout: `in` points at the top-left tap of a pixel's window in the padded image (row stride rs);
// `v` and `h` point at tap 0 of the pixel's vertical and horizontal kernels, whose taps are ks apart
// (ks = H * W for [B, K, H, W] weights).
//   out(y, x) = sum_i v_i * sum_j in(y + i, x + j) * h_j

#include <cstdint>

#include "common/host_device.h"

namespace emrestore {

// sum_j in[j] * w[j * ks]: one window row against the horizontal kernel.
template <typename Acc, typename T>
EMR_HD Acc tap_row_dot(const T* in, const T* w, int64_t ks, int K) {
  Acc t = Acc(0);
  for (int j = 0; j < K; ++j) t += Acc(in[j]) * Acc(w[j * ks]);
  return t;
}

// sum_i in[i * rs] * w[i * ks]: one window column against the vertical kernel.
template <typename Acc, typename T>
EMR_HD Acc tap_col_dot(const T* in, int64_t rs, const T* w, int64_t ks, int K) {
  Acc t = Acc(0);
  for (int i = 0; i < K; ++i) t += Acc(in[i * rs]) * Acc(w[i * ks]);
  return t;
}

// Forward value of one output pixel. The horizontal taps are read in chunks of J held in registers
// and reused by all K rows: the K * K loads of h become K (on a GPU those loads, evicted from L1 by
// the other warps' windows, bounded the kernel: 0.76 -> 0.48 ms at 512 x 512, K = 51, on an H100).
template <typename Acc, typename T>
EMR_HD Acc sepconv_pixel(const T* in, int64_t rs, const T* v, const T* h, int64_t ks, int K) {
  constexpr int J = 16;
  Acc out = Acc(0);
  for (int j0 = 0; j0 < K; j0 += J) {
    const int n = K - j0 < J ? K - j0 : J;
    Acc hj[J];
#pragma unroll
    for (int j = 0; j < J; ++j) hj[j] = j < n ? Acc(h[(j0 + j) * ks]) : Acc(0);
    for (int i = 0; i < K; ++i) {
      const T* row = in + i * rs + j0;
      Acc t = Acc(0);
#pragma unroll
      for (int j = 0; j < J; ++j)
        if (j < n) t += Acc(row[j]) * hj[j];
      out += Acc(v[i * ks]) * t;
    }
  }
  return out;
}

// Gradient of the padded input at (r, s), gathered from every output pixel whose window covers it:
//   sum_{i, j} g(r - i, s - j) * v_i(r - i, s - j) * h_j(r - i, s - j)
// g points at the output gradient of one image plane [H, W]; v and h at tap 0 of the weights [K, H, W].
template <typename Acc, typename T>
EMR_HD Acc sepconv_input_grad_pixel(const T* g, const T* v, const T* h, int64_t r, int64_t s,
                                    int64_t H, int64_t W, int K) {
  const int64_t ks = H * W;
  const int i_lo = r - (H - 1) > 0 ? int(r - (H - 1)) : 0;
  const int i_hi = r < K - 1 ? int(r) : K - 1;
  const int j_lo = s - (W - 1) > 0 ? int(s - (W - 1)) : 0;
  const int j_hi = s < K - 1 ? int(s) : K - 1;
  Acc sum = Acc(0);
  for (int i = i_lo; i <= i_hi; ++i) {
    const int64_t y = r - i;
    for (int j = j_lo; j <= j_hi; ++j) {
      const int64_t p = y * W + (s - j);
      sum += Acc(g[p]) * Acc(v[i * ks + p]) * Acc(h[j * ks + p]);
    }
  }
  return sum;
}

}  // namespace emrestore
