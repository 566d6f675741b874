// CPU kernels of the Hough transform. Votes: the nonzero pixels are gathered once per image, then
// the angles are split across threads, each accumulating one angle at a time into a rho buffer that
// stays in L1 (no atomics, no shared writes). Peaks: a parallel scan for local maxima, then the
// greedy selection shared with the CUDA path. Compiled with -ffp-contract=off (see rho_rounded) and
// -fno-trapping-math (so that the rounding's comparisons vectorise; no code here reads FP flags).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "hough/hough.h"

namespace emrestore {
namespace {

// Coordinates (and weights) of the nonzero pixels of one image, in row-major order.
struct Votes {
  std::vector<double> x, y, w;
};

template <typename T>
Votes gather_votes(const T* img, int64_t H, int64_t W, bool weighted) {
  // Rows in blocks; each block's pixels are found in parallel, then joined in order so that weighted
  // sums are added in the same order whatever the thread count.
  const int64_t nblocks = std::min<int64_t>(H, 64);
  std::vector<Votes> parts(nblocks);
  at::parallel_for(0, nblocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      Votes& v = parts[k];
      for (int64_t y = k * H / nblocks; y < (k + 1) * H / nblocks; ++y) {
        const T* row = img + y * W;
        for (int64_t x = 0; x < W; ++x) {
          if constexpr (sizeof(T) == 1) {  // edge maps are sparse: skip 8 zero bytes at a time
            uint64_t word;
            while (x + 8 <= W && (std::memcpy(&word, row + x, 8), word == 0)) x += 8;
            if (x >= W) break;
          }
          if (row[x] == T(0)) continue;
          v.x.push_back(double(x));
          v.y.push_back(double(y));
          if (weighted) v.w.push_back(double(row[x]));
        }
      }
    }
  });
  Votes all;
  for (Votes& v : parts) {
    all.x.insert(all.x.end(), v.x.begin(), v.x.end());
    all.y.insert(all.y.end(), v.y.begin(), v.y.end());
    all.w.insert(all.w.end(), v.w.begin(), v.w.end());
  }
  return all;
}

// Accumulates one image's votes for angles [t0, t1) into out [R, T]. Angles go in groups of kGroup
// with interleaved counters (rho-major): the results leave as contiguous row pieces rather than one
// strided column per angle, and the scatter visits the group's angles in turn for each pixel, so
// that consecutive increments hit different counters (pixels of one row all vote into the same bin
// at angles near +-pi/2, which would otherwise chain every increment on the previous one).
constexpr int64_t kGroup = 8;

// cos/sin tables of one angle keep every rho within [-offset, offset], so no bounds check is needed.
inline bool unit_angle(double c, double s) {
  return std::abs(c) <= 1.0 && std::abs(s) <= 1.0 && c * c + s * s <= 1.0 + 1e-9;
}

template <typename Acc, typename Out>
void accumulate_angles(const Votes& v, const double* cs, const double* sn, int64_t t0, int64_t t1,
                       int64_t R, int64_t T, int64_t offset, Out* out) {
  constexpr int64_t kChunk = 256;
  const int64_t n = int64_t(v.x.size());
  const bool weighted = !v.w.empty();
  std::vector<Acc> buf(R * kGroup);
  std::vector<int32_t> bins(kGroup * kChunk);  // 32-bit: the conversion vectorises with AVX2
  const int32_t off = int32_t(offset);
  for (int64_t g0 = t0; g0 < t1; g0 += kGroup) {
    const int64_t G = std::min(kGroup, t1 - g0);
    bool checked = false;
    for (int64_t g = 0; g < G; ++g) checked |= !unit_angle(cs[g0 + g], sn[g0 + g]);
    std::fill(buf.begin(), buf.end(), Acc(0));
    for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
      const int64_t m = std::min(kChunk, n - i0);
      const double *xs = v.x.data() + i0, *ys = v.y.data() + i0;
      for (int64_t g = 0; g < G; ++g) {
        const double c = cs[g0 + g], s = sn[g0 + g];
        int32_t* bg = bins.data() + g * kChunk;
#pragma omp simd
        for (int64_t i = 0; i < m; ++i) bg[i] = (int32_t(rho_rounded(c, s, xs[i], ys[i])) + off) * int32_t(kGroup);
      }
      for (int64_t i = 0; i < m; ++i) {
        const Acc w = weighted ? Acc(v.w[i0 + i]) : Acc(1);
        for (int64_t g = 0; g < G; ++g) {
          const int32_t r = bins[g * kChunk + i];
          if (checked && (r < 0 || r >= R * kGroup)) continue;  // tables that are not one angle's
          buf[r + g] += w;
        }
      }
    }
    for (int64_t r = 0; r < R; ++r)
      for (int64_t g = 0; g < G; ++g) out[r * T + g0 + g] = Out(buf[r * kGroup + g]);
  }
}

at::Tensor hough_lines_cpu(const at::Tensor& image, const at::Tensor& cos_theta, const at::Tensor& sin_theta) {
  const at::ScalarType acc_type = check_hough_lines(image, cos_theta, sin_theta);
  const int64_t B = image.size(0), H = image.size(1), W = image.size(2), T = cos_theta.size(0);
  const int64_t offset = hough_offset(H, W), R = 2 * offset + 1;
  TORCH_CHECK_VALUE(R * kGroup < (int64_t(1) << 31), "hough_lines: image of ", std::to_string(H), " x ",
                    std::to_string(W), " is too large");
  if (H * W == 0) return at::zeros({B, R, T}, image.options().dtype(acc_type));
  at::Tensor out = at::empty({B, R, T}, image.options().dtype(acc_type));  // every cell is written
  if (out.numel() == 0) return out;
  const at::Tensor img = image.scalar_type() == at::kBool ? image.contiguous().view(at::kByte) : image.contiguous();
  const at::Tensor cs = cos_theta.contiguous(), sn = sin_theta.contiguous();
  AT_DISPATCH_SWITCH(img.scalar_type(), "hough_lines_cpu",
    AT_DISPATCH_CASE(at::kByte, [&] {
      for (int64_t b = 0; b < B; ++b) {
        const Votes v = gather_votes(img.data_ptr<uint8_t>() + b * H * W, H, W, false);
        int32_t* o = out.data_ptr<int32_t>() + b * R * T;
        at::parallel_for(0, T, kGroup, [&](int64_t t0, int64_t t1) {
          accumulate_angles<int32_t>(v, cs.data_ptr<double>(), sn.data_ptr<double>(), t0, t1, R, T, offset, o);
        });
      }
    })
    AT_DISPATCH_CASE_FLOATING_TYPES([&] {
      for (int64_t b = 0; b < B; ++b) {
        const Votes v = gather_votes(img.data_ptr<scalar_t>() + b * H * W, H, W, true);
        scalar_t* o = out.data_ptr<scalar_t>() + b * R * T;
        at::parallel_for(0, T, kGroup, [&](int64_t t0, int64_t t1) {
          accumulate_angles<double>(v, cs.data_ptr<double>(), sn.data_ptr<double>(), t0, t1, R, T, offset, o);
        });
      }
    }));
  return out;
}

// Local maxima (>= each of the 8 neighbours; across the theta wrap the neighbour of rho bin r is
// R - 1 - r) that reach the threshold and are positive.
template <typename T>
std::vector<PeakCandidate> local_maxima(const at::Tensor& acc, const at::Tensor& thr, bool wrap) {
  const int64_t B = acc.size(0), R = acc.size(1), Tn = acc.size(2);
  const T* a = acc.data_ptr<T>();
  const double* th = thr.data_ptr<double>();  // contiguous [1 or B, 1 or R, 1 or T]
  const int64_t sb = thr.size(0) == 1 ? 0 : thr.size(1) * thr.size(2);
  const int64_t sr = thr.size(1) == 1 ? 0 : thr.size(2), st = thr.size(2) == 1 ? 0 : 1;
  std::vector<std::vector<PeakCandidate>> rows(B * R);
  at::parallel_for(0, B * R, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / R, r = row % R;
      const T* plane = a + b * R * Tn;
      const double* trow = th + b * sb + r * sr;
      for (int64_t t = 0; t < Tn; ++t) {
        const T v = plane[r * Tn + t];
        if (!(v > T(0)) || double(v) < trow[t * st]) continue;  // most cells stop here
        bool is_max = true;
        for (int64_t dr = -1; dr <= 1 && is_max; ++dr)
          for (int64_t dt = -1; dt <= 1; ++dt) {
            int64_t rr = r + dr, tt = t + dt;
            if (tt < 0 || tt >= Tn) {
              if (!wrap) continue;
              tt = (tt + Tn) % Tn;
              rr = R - 1 - rr;
            }
            if (rr < 0 || rr >= R || (rr == r && tt == t)) continue;
            if (plane[rr * Tn + tt] > v) {
              is_max = false;
              break;
            }
          }
        if (is_max) rows[row].push_back({double(v), b, r, t});
      }
    }
  });
  std::vector<PeakCandidate> all;
  for (auto& r : rows) all.insert(all.end(), r.begin(), r.end());
  return all;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> hough_peaks_cpu(const at::Tensor& acc, const at::Tensor& threshold,
                                                               int64_t num_peaks, int64_t min_distance,
                                                               int64_t min_angle, bool wrap) {
  check_hough_peaks(acc, threshold, num_peaks, min_distance, min_angle);
  const at::Tensor a = acc.contiguous(), thr = threshold.contiguous();
  std::vector<PeakCandidate> candidates;
  AT_DISPATCH_SWITCH(a.scalar_type(), "hough_peaks_cpu",
    AT_DISPATCH_CASE(at::kLong, [&] { candidates = local_maxima<int64_t>(a, thr, wrap); })
    AT_DISPATCH_CASE(at::kInt, [&] { candidates = local_maxima<int32_t>(a, thr, wrap); })
    AT_DISPATCH_CASE_FLOATING_TYPES([&] { candidates = local_maxima<scalar_t>(a, thr, wrap); }));
  return select_peaks(candidates, a.size(0), a.size(1), a.size(2), num_peaks, min_distance, min_angle, wrap);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> select_peaks(std::vector<PeakCandidate>& candidates,
                                                            int64_t B, int64_t R, int64_t T,
                                                            int64_t num_peaks, int64_t min_distance,
                                                            int64_t min_angle, bool wrap) {
  std::stable_sort(candidates.begin(), candidates.end(), [](const PeakCandidate& p, const PeakCandidate& q) {
    if (p.value != q.value) return p.value > q.value;
    return p.r != q.r ? p.r < q.r : p.t < q.t;
  });
  at::Tensor rho = at::full({B, num_peaks}, -1, at::kLong), theta = at::full({B, num_peaks}, -1, at::kLong);
  at::Tensor count = at::zeros({B}, at::kLong);
  int64_t *rp = rho.data_ptr<int64_t>(), *tp = theta.data_ptr<int64_t>(), *cp = count.data_ptr<int64_t>();
  for (const PeakCandidate& c : candidates) {
    int64_t& n = cp[c.b];
    if (n >= num_peaks) continue;
    bool free = true;
    for (int64_t k = 0; k < n && free; ++k)
      free = !peaks_conflict(c.r, c.t, rp[c.b * num_peaks + k], tp[c.b * num_peaks + k], R, T, min_distance,
                             min_angle, wrap);
    if (!free) continue;
    rp[c.b * num_peaks + n] = c.r;
    tp[c.b * num_peaks + n] = c.t;
    ++n;
  }
  return {rho, theta, count};
}

TORCH_LIBRARY_IMPL(emrestore, CPU, m) {
  m.impl("hough_lines", &hough_lines_cpu);
  m.impl("hough_peaks", &hough_peaks_cpu);
}

}  // namespace emrestore
