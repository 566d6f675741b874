#pragma once
#include <cstdint>

#include "common/host_device.h"

namespace emrestore {

// How an image is extended beyond its border before a windowed op reads it.
enum class PadMode : int { Replicate = 0, Reflect = 1, Zeros = 2, None = 3 };

// Index of the source pixel that padded coordinate p (relative to the image, may be negative or >= n)
// reads, or -1 where it reads zero. Reflect mirrors without repeating the edge pixel, repeatedly for
// pads wider than the image (numpy's 'reflect').
EMR_HD int64_t pad_source(int64_t p, int64_t n, PadMode mode) {
  if (p >= 0 && p < n) return p;
  switch (mode) {
    case PadMode::Replicate:
      return p < 0 ? 0 : n - 1;
    case PadMode::Reflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      int64_t q = p % period;
      if (q < 0) q += period;
      return q < n ? q : period - q;
    }
    default:
      return -1;
  }
}

// The padded positions s in [0, P) that read source pixel x when padding by `lo` before: at most two
// arithmetic progressions {first[f], first[f] + step, ...} up to `last`. Their sum is the adjoint of
// padding, so the gradient of an input pixel is gathered (no scatter, no atomics).
struct Preimages {
  int64_t first[2];
  int families;
  int64_t step;
  int64_t last;
};

EMR_HD Preimages pad_preimages(int64_t x, int64_t n, int64_t lo, int64_t P, PadMode mode) {
  Preimages pre{{lo + x, 0}, 1, 1, lo + x};
  if (mode == PadMode::Replicate) {
    if (x == 0) pre.first[0] = 0;
    if (x == n - 1) pre.last = P - 1;
  } else if (mode == PadMode::Reflect) {
    if (n == 1) {
      pre.first[0] = 0;
      pre.last = P - 1;
      return pre;
    }
    // s - lo = +x or -x (mod period); at x = 0 and x = n - 1 the two families coincide.
    const int64_t period = 2 * (n - 1);
    int64_t a = (lo + x) % period, b = (lo - x) % period;
    pre.first[0] = a < 0 ? a + period : a;
    pre.first[1] = b < 0 ? b + period : b;
    pre.families = (x == 0 || x == n - 1) ? 1 : 2;
    pre.step = period;
    pre.last = P - 1;
  }
  return pre;
}

// Gradient of source pixel (y, x) of an H x W image from the gradient of its padded Hp x Wp copy.
template <typename Acc, typename T>
EMR_HD Acc gather_pad_preimages_2d(const T* padded, int64_t Hp, int64_t Wp, int64_t y, int64_t x,
                                   int64_t H, int64_t W, int64_t lo, PadMode mode) {
  const Preimages rows = pad_preimages(y, H, lo, Hp, mode);
  const Preimages cols = pad_preimages(x, W, lo, Wp, mode);
  Acc sum = Acc(0);
  for (int fr = 0; fr < rows.families; ++fr)
    for (int64_t r = rows.first[fr]; r <= rows.last; r += rows.step)
      for (int fc = 0; fc < cols.families; ++fc)
        for (int64_t s = cols.first[fc]; s <= cols.last; s += cols.step) sum += Acc(padded[r * Wp + s]);
  return sum;
}

}  // namespace emrestore
