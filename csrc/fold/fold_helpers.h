#pragma once
// Per-pixel geometry of support-film folds, shared by the CPU and CUDA kernels.
//
// A fold is a centre polyline of P vertices (x, y) with, per vertex, the band half-width w_l and the
// displacement amplitude A = w_f - w_l (both taper to 0 at the ends of a partial fold), and per fold
// (slope s, gain of the left side, gain of the right side, band level, band edge softness). With d
// the distance of a pixel p to the centre line and n the unit vector from its nearest line point to
// p, the backward warp samples p + m(d) n, with m(d) = gain * max(0, A - s (d - w_l)) for d >= w_l
// (Huang et al. 2020: tissue on both sides is pulled toward the fold); inside the band d < w_l the
// section shows the overlapping film: band level times the local content (0 = the published black
// band), blended over `softness` pixels at the band edge.

#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace emrestore {

constexpr int kFoldParams = 5;  // slope, gain_left, gain_right, band_level, band_softness

template <typename Acc>
struct FoldSample {
  Acc dx = Acc(0), dy = Acc(0);  // displacement (sampling offset), summed over folds
  Acc alpha = Acc(0);            // band opacity, max over folds
  Acc level = Acc(1);            // band level of the fold with the largest opacity
};

// Adds fold f's effect at pixel (x, y). vertices [P][2], profile [P][2] = (w_l, A), params [5].
template <typename Acc, typename T>
EMR_HD void add_fold(Acc x, Acc y, const T* vertices, const T* profile, const T* params, int P,
                     FoldSample<Acc>* out) {
  Acc best = Acc(1e30), bt = Acc(0), qx = Acc(0), qy = Acc(0), cross = Acc(0);
  int bk = 0;
  for (int k = 0; k + 1 < P; ++k) {
    const Acc ax = Acc(vertices[2 * k]), ay = Acc(vertices[2 * k + 1]);
    const Acc ex = Acc(vertices[2 * k + 2]) - ax, ey = Acc(vertices[2 * k + 3]) - ay;
    const Acc len2 = ex * ex + ey * ey;
    Acc t = len2 > Acc(0) ? ((x - ax) * ex + (y - ay) * ey) / len2 : Acc(0);
    t = t < Acc(0) ? Acc(0) : (t > Acc(1) ? Acc(1) : t);
    const Acc px = ax + t * ex, py = ay + t * ey;
    const Acc d2 = (x - px) * (x - px) + (y - py) * (y - py);
    if (d2 < best) {
      best = d2;
      bk = k;
      bt = t;
      qx = px;
      qy = py;
      cross = ex * (y - ay) - ey * (x - ax);
    }
  }
  const Acc d = sqrt(best);
  const Acc wl = Acc(profile[2 * bk]) * (Acc(1) - bt) + Acc(profile[2 * bk + 2]) * bt;
  const Acc amp = Acc(profile[2 * bk + 1]) * (Acc(1) - bt) + Acc(profile[2 * bk + 3]) * bt;
  const Acc slope = Acc(params[0]), gain = cross >= Acc(0) ? Acc(params[1]) : Acc(params[2]);
  const Acc level = Acc(params[3]), soft = Acc(params[4]);
  // Displacement, evaluated at the band edge inside the band (where it is hidden by the band).
  const Acc m = gain * fmax(Acc(0), amp - slope * fmax(d - wl, Acc(0)));
  if (d > Acc(0) && m > Acc(0)) {
    out->dx += m * (x - qx) / d;
    out->dy += m * (y - qy) / d;
  }
  Acc alpha;
  if (soft > Acc(0)) {
    const Acc u = (wl + Acc(0.5) * soft - d) / soft;  // 0 outside, 1 inside, smoothstep between
    const Acc c = u < Acc(0) ? Acc(0) : (u > Acc(1) ? Acc(1) : u);
    alpha = c * c * (Acc(3) - Acc(2) * c);
  } else {
    alpha = d < wl ? Acc(1) : Acc(0);
  }
  if (alpha > out->alpha) {
    out->alpha = alpha;
    out->level = level;
  }
}

template <typename Acc, typename T>
EMR_HD FoldSample<Acc> fold_sample(Acc x, Acc y, const T* vertices, const T* profile, const T* params,
                                   int F, int P) {
  FoldSample<Acc> s;
  for (int f = 0; f < F; ++f)
    add_fold<Acc>(x, y, vertices + f * P * 2, profile + f * P * 2, params + f * kFoldParams, P, &s);
  return s;
}

// Bilinear sample of an H x W plane at (sy, sx) with the coordinates clamped to the image (border).
template <typename Acc, typename T>
EMR_HD Acc sample_border(const T* plane, int64_t H, int64_t W, Acc sy, Acc sx) {
  sx = sx < Acc(0) ? Acc(0) : (sx > Acc(W - 1) ? Acc(W - 1) : sx);
  sy = sy < Acc(0) ? Acc(0) : (sy > Acc(H - 1) ? Acc(H - 1) : sy);
  const int64_t x0 = int64_t(floor(sx)), y0 = int64_t(floor(sy));
  const int64_t x1 = x0 + 1 < W ? x0 + 1 : x0, y1 = y0 + 1 < H ? y0 + 1 : y0;
  const Acc ax = sx - Acc(x0), ay = sy - Acc(y0);
  return (Acc(1) - ay) * ((Acc(1) - ax) * Acc(plane[y0 * W + x0]) + ax * Acc(plane[y0 * W + x1])) +
         ay * ((Acc(1) - ax) * Acc(plane[y1 * W + x0]) + ax * Acc(plane[y1 * W + x1]));
}

}  // namespace emrestore
