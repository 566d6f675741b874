#pragma once
// Per-pixel arithmetic of backward warping, shared by the CPU and CUDA kernels. Conventions are those
// of torch.nn.functional.grid_sample with align_corners=True, in pixel units: the output pixel (y, x)
// samples the input at (y + flow_y, x + flow_x).

#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace emrestore {


enum class Interp : int { Bilinear = 0, Nearest = 1, Bicubic = 2 };
enum class WarpPad : int { Zeros = 0, Border = 1, Reflection = 2 };

// Clamps c to [0, size - 1]; *mult is dc'/dc.
template <typename Acc>
EMR_HD Acc clip_coord(Acc c, int64_t size, Acc* mult) {
  if (c <= Acc(0)) {
    *mult = Acc(0);
    return Acc(0);
  }
  if (c >= Acc(size - 1)) {
    *mult = Acc(0);
    return Acc(size - 1);
  }
  *mult = Acc(1);
  return c;
}

// Mirrors c into [0, size - 1] (reflection about the edge pixel centres); *mult is dc'/dc.
template <typename Acc>
EMR_HD Acc reflect_coord(Acc c, int64_t size, Acc* mult) {
  if (size <= 1) {
    *mult = Acc(0);
    return Acc(0);
  }
  const Acc span = Acc(size - 1);
  Acc sign = Acc(1);
  if (c < Acc(0)) {
    sign = Acc(-1);
    c = -c;
  }
  const Acc extra = fmod(c, span);
  const int64_t flips = int64_t(floor(c / span));
  Acc out;
  if (flips % 2 == 0) {
    *mult = sign;
    out = extra;
  } else {
    *mult = -sign;
    out = span - extra;
  }
  Acc clip_mult;
  out = clip_coord(out, size, &clip_mult);
  *mult *= clip_mult;
  return out;
}

// The sampling coordinate after the padding rule (zeros leave it as is); *mult is dc'/dc.
template <typename Acc>
EMR_HD Acc pad_coord(Acc c, int64_t size, WarpPad pad, Acc* mult) {
  if (pad == WarpPad::Border) return clip_coord(c, size, mult);
  if (pad == WarpPad::Reflection) return reflect_coord(c, size, mult);
  *mult = Acc(1);
  return c;
}

EMR_HD bool in_bounds(int64_t y, int64_t x, int64_t H, int64_t W) {
  return y >= 0 && y < H && x >= 0 && x < W;
}

// Bicubic convolution weights (A = -0.75, as PyTorch) for fractional offset t.
template <typename Acc>
EMR_HD void cubic_weights(Acc t, Acc w[4]) {
  const Acc A = Acc(-0.75);
  const Acc x0 = t + Acc(1), x1 = t, x2 = Acc(1) - t, x3 = Acc(2) - t;
  w[0] = ((A * x0 - Acc(5) * A) * x0 + Acc(8) * A) * x0 - Acc(4) * A;
  w[1] = ((A + Acc(2)) * x1 - (A + Acc(3))) * x1 * x1 + Acc(1);
  w[2] = ((A + Acc(2)) * x2 - (A + Acc(3))) * x2 * x2 + Acc(1);
  w[3] = ((A * x3 - Acc(5) * A) * x3 + Acc(8) * A) * x3 - Acc(4) * A;
}

// Negated derivatives -dw/dt of the weights above (PyTorch's form).
template <typename Acc>
EMR_HD void cubic_weights_grad(Acc t, Acc d[4]) {
  const Acc A = Acc(-0.75);
  Acc x = -Acc(1) - t;
  d[0] = (-Acc(3) * A * x - Acc(10) * A) * x - Acc(8) * A;
  x = -t;
  d[1] = (-Acc(3) * (A + Acc(2)) * x - Acc(2) * (A + Acc(3))) * x;
  x = Acc(1) - t;
  d[2] = (Acc(3) * (A + Acc(2)) * x - Acc(2) * (A + Acc(3))) * x;
  x = Acc(2) - t;
  d[3] = (Acc(3) * A * x - Acc(10) * A) * x + Acc(8) * A;
}

// Integer positions of the 4 bicubic taps around floor(c) along one axis after the padding rule;
// valid[k] is false where the tap reads zero.
template <typename Acc>
EMR_HD void cubic_axis_taps(Acc c0, int64_t size, WarpPad pad, int64_t pos[4], bool valid[4]) {
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    Acc m;
    pos[k] = int64_t(pad_coord(c0 - Acc(1) + Acc(k), size, pad, &m));
    valid[k] = pos[k] >= 0 && pos[k] < size;
  }
}

// Bilinear corners of a sample at (iy, ix) (already through the padding rule), in the order
// (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1): offsets into an H x W plane (0 outside the
// image), whether each lies inside, and the fractional position (ax, ay) within the cell.
template <typename Acc>
EMR_HD void bilinear_taps(Acc iy, Acc ix, int64_t H, int64_t W, int64_t off[4], bool inside[4], Acc* ax,
                          Acc* ay) {
  const Acc x0 = floor(ix), y0 = floor(iy);
  *ax = ix - x0;
  *ay = iy - y0;
  const int64_t xi = int64_t(x0), yi = int64_t(y0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      inside[2 * i + j] = in_bounds(yi + i, xi + j, H, W);
      off[2 * i + j] = inside[2 * i + j] ? (yi + i) * W + xi + j : 0;
    }
}

// Bilinear corner offsets and weights (weight 0, offset 0 for corners outside the image).
template <typename Acc>
EMR_HD void bilinear_corners(Acc iy, Acc ix, int64_t H, int64_t W, int64_t off[4], Acc w[4]) {
  bool inside[4];
  Acc ax, ay;
  bilinear_taps(iy, ix, H, W, off, inside, &ax, &ay);
  const Acc wx[2] = {Acc(1) - ax, ax}, wy[2] = {Acc(1) - ay, ay};
  for (int k = 0; k < 4; ++k) w[k] = inside[k] ? wx[k & 1] * wy[k >> 1] : Acc(0);
}

// Sampling stencil of one output pixel: up to 16 taps (offsets into an H x W plane) with weights,
// and the weights' derivatives with respect to the sampling coordinates (flow_x, flow_y).
template <typename Acc>
struct Stencil {
  int n = 0;
  int64_t offset[16];
  Acc weight[16], dweight_x[16], dweight_y[16];

  EMR_HD void add(int64_t off, Acc w, Acc dwx, Acc dwy) {
    offset[n] = off;
    weight[n] = w;
    dweight_x[n] = dwx;
    dweight_y[n] = dwy;
    ++n;
  }
};

// Visits the taps of output pixel (y, x)'s sampling stencil that lie inside the H x W input:
// f(offset into the plane, weight, d weight / d flow_x, d weight / d flow_y). Inlined into the caller
// with nothing stored per tap: on a GPU, an array of taps indexed at run time lives in slow local
// memory, and the forward pass lets the compiler drop the derivatives it never reads.
template <typename Acc, typename F>
EMR_HD void for_each_tap(int64_t y, int64_t x, Acc fx, Acc fy, int64_t H, int64_t W, Interp interp,
                         WarpPad pad, F&& f) {
  const Acc cx = Acc(x) + fx, cy = Acc(y) + fy;
  if (interp == Interp::Bicubic) {
    const Acc x0 = floor(cx), y0 = floor(cy);
    Acc wx[4], wy[4], dx[4], dy[4];
    cubic_weights(cx - x0, wx);
    cubic_weights(cy - y0, wy);
    cubic_weights_grad(cx - x0, dx);
    cubic_weights_grad(cy - y0, dy);
    int64_t px[4], py[4];
    bool vx[4], vy[4];
    cubic_axis_taps(x0, W, pad, px, vx);
    cubic_axis_taps(y0, H, pad, py, vy);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (vy[i] && vx[j]) f(py[i] * W + px[j], wx[j] * wy[i], -dx[j] * wy[i], -wx[j] * dy[i]);
    return;
  }
  Acc mx, my;
  const Acc ix = pad_coord(cx, W, pad, &mx), iy = pad_coord(cy, H, pad, &my);
  if (interp == Interp::Nearest) {
    const int64_t nx = int64_t(nearbyint(ix)), ny = int64_t(nearbyint(iy));
    if (in_bounds(ny, nx, H, W)) f(ny * W + nx, Acc(1), Acc(0), Acc(0));
    return;
  }
  const Acc x0 = floor(ix), y0 = floor(iy);
  const Acc ax = ix - x0, ay = iy - y0;  // weights of the far taps
  const int64_t xi = int64_t(x0), yi = int64_t(y0);
  // (dy, dx) corner offsets with bilinear weights and their derivatives in the padded coordinates,
  // scaled by the padding rule's dc'/dc.
  const Acc wx[2] = {Acc(1) - ax, ax}, wy[2] = {Acc(1) - ay, ay}, sx[2] = {-mx, mx}, sy[2] = {-my, my};
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      if (in_bounds(yi + i, xi + j, H, W))
        f((yi + i) * W + xi + j, wx[j] * wy[i], sx[j] * wy[i], wx[j] * sy[i]);
}

// The same taps gathered into a Stencil (CPU paths that are not on the hot bilinear/bicubic rows).
template <typename Acc>
EMR_HD Stencil<Acc> warp_stencil(int64_t y, int64_t x, Acc fx, Acc fy, int64_t H, int64_t W,
                                 Interp interp, WarpPad pad) {
  Stencil<Acc> st;
  for_each_tap<Acc>(y, x, fx, fy, H, W, interp, pad,
                    [&](int64_t off, Acc w, Acc dwx, Acc dwy) { st.add(off, w, dwx, dwy); });
  return st;
}

// Sizes of one warp call: input [B, C, Hin, Win] sampled on the flow's grid [B, 2, H, W].
struct WarpGeometry {
  int64_t B, C, Hin, Win, H, W;
  Interp interp;
  WarpPad pad;
};

// The stencil of output pixel p (flat index in H x W) of batch b, from flow [B, 2, H, W].
template <typename Acc, typename T>
EMR_HD Stencil<Acc> stencil_at(const T* flow, int64_t b, int64_t p, const WarpGeometry& g) {
  const int64_t HW = g.H * g.W;
  return warp_stencil<Acc>(p / g.W, p % g.W, Acc(flow[b * 2 * HW + p]), Acc(flow[b * 2 * HW + HW + p]),
                           g.Hin, g.Win, g.interp, g.pad);
}

}  // namespace emrestore
