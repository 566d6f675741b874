// CPU kernels of sepconv: parallel over (batch, row) with ATen's parallel_for (OpenMP in PyTorch's
// builds, so the thread count follows torch.set_num_threads), vectorised along x in register blocks
// of XB pixels; columns that do not fill a block use the per-pixel helpers shared with CUDA.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/simd.h"
#include "sepconv/sepconv.h"
#include "sepconv/sepconv_helpers.h"

namespace emrestore {
namespace {

using simd::load;
using simd::store;
using simd::vec_t;

constexpr int kVecs = 2;  // SIMD vectors per register block along x
constexpr int kRows = 4;  // dot products per pass: each weight load serves kRows of them

template <typename T>
constexpr int block_width() {
  return kVecs * simd::Vec<T>::lanes;
}

// Copies the K taps of each XB-pixel block of one weight row ([K, ...] with tap stride ks) into
// dst[block][k][XB]. In the [B, K, H, W] layout the taps of a pixel lie H*W apart, a multiple of the
// page size that maps them all onto one cache set; packed, a block's taps are one contiguous run.
template <typename T>
void pack_taps(const T* w, int64_t ks, int K, int64_t nblocks, T* dst) {
  constexpr int XB = block_width<T>();
  for (int k = 0; k < K; ++k)
    for (int64_t blk = 0; blk < nblocks; ++blk)
      std::copy(w + k * ks + blk * XB, w + k * ks + (blk + 1) * XB, dst + (blk * K + k) * XB);
}

// NR dot products over K taps for a block of pixels, sharing each weight load:
//   t[r][x] = sum_k in[r * ostride + k * istride + x] * w[k * ks + x].
// Window rows against the horizontal kernel: ostride = row stride, istride = 1.
// Window columns against the vertical kernel: ostride = 1, istride = row stride.
template <int NR, typename T>
inline void dots(vec_t<T> (&t)[kRows][kVecs], const T* in, int64_t ostride, int64_t istride,
                 const T* w, int64_t ks, int K) {
  constexpr int N = simd::Vec<T>::lanes;
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < kVecs; ++u) t[r][u] = vec_t<T>{};
  for (int k = 0; k < K; ++k) {
    vec_t<T> wk[kVecs];
#pragma GCC unroll 4
    for (int u = 0; u < kVecs; ++u) wk[u] = load(w + k * ks + u * N);
    const T* src = in + k * istride;
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
      for (int u = 0; u < kVecs; ++u) t[r][u] += load(src + r * ostride + u * N) * wk[u];
  }
}

// acc[u] += sum_r w[r * ks + u * N] * t[r][u]
template <int NR, typename T>
inline void weigh(vec_t<T> (&acc)[kVecs], const vec_t<T> (&t)[kRows][kVecs], const T* w, int64_t ks) {
  constexpr int N = simd::Vec<T>::lanes;
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < kVecs; ++u) acc[u] += load(w + r * ks + u * N) * t[r][u];
}

template <typename T>
void forward_block(const T* in, int64_t rs, const T* v, const T* h, int64_t ks, int K, T* out) {
  constexpr int N = simd::Vec<T>::lanes;
  vec_t<T> acc[kVecs] = {};
  vec_t<T> t[kRows][kVecs];
  int i = 0;
  for (; i + kRows <= K; i += kRows) {
    dots<kRows>(t, in + i * rs, rs, 1, h, ks, K);
    weigh<kRows>(acc, t, v + i * ks, ks);
  }
  for (; i < K; ++i) {
    dots<1>(t, in + i * rs, rs, 1, h, ks, K);
    weigh<1>(acc, t, v + i * ks, ks);
  }
  for (int u = 0; u < kVecs; ++u) store(out + u * N, acc[u]);
}

// Enough rows per task that a task is worth scheduling.
inline int64_t grain_rows(int64_t work_per_row) {
  return std::max<int64_t>(1, 200000 / std::max<int64_t>(1, work_per_row));
}

template <typename T>
void forward_kernel(const T* in, const T* v, const T* h, T* out, const SepconvGeometry& g) {
  const int64_t H = g.H, W = g.W, C = g.C, Hp = H + g.K - 1, Wp = W + g.K - 1, ks = H * W;
  const int K = int(g.K);
  constexpr int XB = block_width<T>();
  const int64_t nblocks = W / XB;
  at::parallel_for(0, g.B * H, grain_rows(C * K * K * W), [&](int64_t begin, int64_t end) {
    std::vector<T> packed(size_t(2 * nblocks * K * XB));
    T* vp = packed.data();
    T* hp = vp + nblocks * K * XB;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H;
      const T* vb = v + b * K * ks + y * W;
      const T* hb = h + b * K * ks + y * W;
      pack_taps(vb, ks, K, nblocks, vp);
      pack_taps(hb, ks, K, nblocks, hp);
      for (int64_t c = 0; c < C; ++c) {
        const T* src = in + ((b * C + c) * Hp + y) * Wp;
        T* dst = out + ((b * C + c) * H + y) * W;
        for (int64_t blk = 0; blk < nblocks; ++blk)
          forward_block(src + blk * XB, Wp, vp + blk * K * XB, hp + blk * K * XB, XB, K, dst + blk * XB);
        for (int64_t x = nblocks * XB; x < W; ++x)
          dst[x] = sepconv_pixel<T>(src + x, Wp, vb + x, hb + x, ks, K);
      }
    }
  });
}

// Gradient of the padded input, one padded row r per task step. With G_i = g * v_i on output row
// y = r - i and both G_i and h_j zero-extended by K - 1 columns on each side, every tap of a block
// reads in bounds: gpad[r, s] = sum_i sum_j G_i[s - j] * h_j[y, s - j].
template <typename T>
void input_grad_kernel(const T* grad, const T* v, const T* h, T* gpad, const SepconvGeometry& g) {
  const int64_t H = g.H, W = g.W, K = g.K, C = g.C;
  const int64_t Hp = H + K - 1, Wp = W + K - 1, ks = H * W, Wz = W + 2 * (K - 1);
  // h zero-extended along x, taps of one row adjacent: [B, H, K, Wz].
  std::vector<T> hz(size_t(g.B * H * K * Wz), T(0));
  at::parallel_for(0, g.B * H, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H;
      for (int64_t k = 0; k < K; ++k)
        std::copy(h + (b * K + k) * ks + y * W, h + (b * K + k) * ks + y * W + W,
                  hz.data() + (row * K + k) * Wz + (K - 1));
    }
  });
  at::parallel_for(0, g.B * C * Hp, grain_rows(K * K * Wp), [&](int64_t begin, int64_t end) {
    std::vector<T> gz(size_t(K * Wz), T(0));  // G_i rows for the current padded row
    for (int64_t row = begin; row < end; ++row) {
      const int64_t plane = row / Hp, r = row % Hp, b = plane / C;
      const T* gplane = grad + plane * ks;
      const T* vb = v + b * K * ks;
      const T* hb = h + b * K * ks;
      const int i_lo = int(std::max<int64_t>(0, r - (H - 1))), i_hi = int(std::min<int64_t>(K - 1, r));
      for (int i = i_lo; i <= i_hi; ++i) {
        const int64_t y = r - i;
        T* gi = gz.data() + i * Wz + (K - 1);
#pragma omp simd
        for (int64_t x = 0; x < W; ++x) gi[x] = gplane[y * W + x] * vb[i * ks + y * W + x];
      }
      T* dst = gpad + row * Wp;
      constexpr int N = simd::Vec<T>::lanes, XB = 2 * block_width<T>();
      int64_t s = 0;
      for (; s + XB <= Wp; s += XB) {
        vec_t<T> acc[2 * kVecs] = {};  // independent accumulators hide the FMA latency
        for (int i = i_lo; i <= i_hi; ++i) {
          const T* gi = gz.data() + i * Wz + (K - 1) + s;
          const T* hy = hz.data() + (b * H + (r - i)) * K * Wz + (K - 1) + s;
          for (int j = 0; j < K; ++j) {
            const T* gs = gi - j;
            const T* hs = hy + j * Wz - j;
#pragma GCC unroll 8
            for (int u = 0; u < 2 * kVecs; ++u) acc[u] += load(gs + u * N) * load(hs + u * N);
          }
        }
        for (int u = 0; u < 2 * kVecs; ++u) store(dst + s + u * N, acc[u]);
      }
      for (; s < Wp; ++s) dst[s] = sepconv_input_grad_pixel<T>(gplane, vb, hb, r, s, H, W, int(K));
    }
  });
}

// Gradients of the kernels, one output row per task step:
//   dv_i = sum_c g_c * sum_j in_c(y + i, x + j) h_j,   dh_j = sum_c g_c * sum_i in_c(y + i, x + j) v_i
// (window rows against h, window columns against v: the same dot products as the forward pass).
template <typename T>
void weight_grad_kernel(const T* in, const T* grad, const T* v, const T* h, T* dv, T* dh,
                        const SepconvGeometry& g) {
  const int64_t H = g.H, W = g.W, C = g.C, Hp = H + g.K - 1, Wp = W + g.K - 1, ks = H * W;
  const int K = int(g.K);
  constexpr int N = simd::Vec<T>::lanes, XB = block_width<T>();
  at::parallel_for(0, g.B * H, grain_rows(2 * C * K * K * W), [&](int64_t begin, int64_t end) {
    const int64_t nblocks = W / XB;
    std::vector<T> scratch(size_t(2 * K * XB + 2 * nblocks * K * XB));
    T* adv = scratch.data();  // [K][XB] dv accumulators of the current block
    T* adh = adv + K * XB;    // [K][XB] dh accumulators
    T* vp = adh + K * XB;     // packed taps of the row (see pack_taps)
    T* hp = vp + nblocks * K * XB;
    vec_t<T> t[kRows][kVecs];
    // acc[k + r] += g * t[r] for the NR results of one dots() pass.
    auto accumulate = [&](T* acc, int k0, int nr, const T* gc) {
      for (int r = 0; r < nr; ++r)
        for (int u = 0; u < kVecs; ++u) {
          T* a = acc + (k0 + r) * XB + u * N;
          store(a, load(a) + load(gc + u * N) * t[r][u]);
        }
    };
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H, off = b * K * ks + y * W;
      pack_taps(v + off, ks, K, nblocks, vp);
      pack_taps(h + off, ks, K, nblocks, hp);
      int64_t x0 = 0;
      for (; x0 + XB <= W; x0 += XB) {
        std::fill(adv, adv + 2 * K * XB, T(0));
        const T* vb = vp + (x0 / XB) * K * XB;
        const T* hb = hp + (x0 / XB) * K * XB;
        for (int64_t c = 0; c < C; ++c) {
          const T* src = in + ((b * C + c) * Hp + y) * Wp + x0;
          const T* gc = grad + ((b * C + c) * H + y) * W + x0;
          int k = 0;
          if (dv) {
            for (; k + kRows <= K; k += kRows) {
              dots<kRows>(t, src + k * Wp, Wp, 1, hb, XB, K);
              accumulate(adv, k, kRows, gc);
            }
            for (; k < K; ++k) {
              dots<1>(t, src + k * Wp, Wp, 1, hb, XB, K);
              accumulate(adv, k, 1, gc);
            }
          }
          if (dh) {
            for (k = 0; k + kRows <= K; k += kRows) {
              dots<kRows>(t, src + k, 1, Wp, vb, XB, K);
              accumulate(adh, k, kRows, gc);
            }
            for (; k < K; ++k) {
              dots<1>(t, src + k, 1, Wp, vb, XB, K);
              accumulate(adh, k, 1, gc);
            }
          }
        }
        for (int k = 0; k < K; ++k) {
          if (dv) std::copy(adv + k * XB, adv + (k + 1) * XB, dv + off + k * ks + x0);
          if (dh) std::copy(adh + k * XB, adh + (k + 1) * XB, dh + off + k * ks + x0);
        }
      }
      for (int64_t x = x0; x < W; ++x) {
        const T* vb = v + off + x;
        const T* hb = h + off + x;
        for (int k = 0; k < K; ++k) {
          T sv = T(0), sh = T(0);
          for (int64_t c = 0; c < C; ++c) {
            const T* src = in + ((b * C + c) * Hp + y) * Wp + x;
            const T gc = grad[((b * C + c) * H + y) * W + x];
            sv += gc * tap_row_dot<T>(src + k * Wp, hb, ks, K);
            sh += gc * tap_col_dot<T>(src + k, Wp, vb, ks, K);
          }
          if (dv) dv[off + k * ks + x] = sv;
          if (dh) dh[off + k * ks + x] = sh;
        }
      }
    }
  });
}

at::Tensor sepconv_cpu(const at::Tensor& input, const at::Tensor& vertical,
                       const at::Tensor& horizontal, c10::string_view padding) {
  const SepconvGeometry g = check_sepconv(input, vertical, horizontal, std::string(padding));
  TORCH_CHECK_VALUE(input.is_cpu(), "sepconv (CPU kernel): expected CPU tensors; got ", input.device());
  TORCH_CHECK_TYPE(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
                   "sepconv on CPU: expected float32 or float64 tensors; got ", dtype_str(input));
  at::Tensor out = at::empty({g.B, g.C, g.H, g.W}, input.options());
  if (out.numel() == 0) return out;
  const at::Tensor in = pad_image(input, g.lo, g.hi, g.mode);
  const at::Tensor v = vertical.contiguous(), h = horizontal.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "sepconv_cpu", [&] {
    forward_kernel<scalar_t>(in.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                             out.data_ptr<scalar_t>(), g);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sepconv_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& vertical,
    const at::Tensor& horizontal, c10::string_view padding, std::array<bool, 3> output_mask) {
  const SepconvGeometry g = check_sepconv(input, vertical, horizontal, std::string(padding));
  TORCH_CHECK_VALUE(grad_output.sizes() == at::IntArrayRef({g.B, g.C, g.H, g.W}),
                    "sepconv_backward: grad_output must be [", g.B, ", ", g.C, ", ", g.H, ", ", g.W,
                    "]; got shape ", shape_str(grad_output));
  const at::Tensor go = grad_output.to(input.scalar_type()).contiguous();
  const at::Tensor v = vertical.contiguous(), h = horizontal.contiguous();
  // Gradients not asked for come back as empty tensors (the schema returns three tensors).
  at::Tensor grad_input = at::empty({0}, input.options()), grad_v = grad_input, grad_h = grad_input;
  if (output_mask[0]) {
    at::Tensor gpad = at::zeros({g.B, g.C, g.H + g.K - 1, g.W + g.K - 1}, input.options());
    if (go.numel() > 0) {
      AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "sepconv_input_grad_cpu", [&] {
        input_grad_kernel<scalar_t>(go.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
                                    h.data_ptr<scalar_t>(), gpad.data_ptr<scalar_t>(), g);
      });
    }
    grad_input = unpad_image_backward(gpad, g.H, g.W, g.lo, g.mode);
  }
  if (output_mask[1] || output_mask[2]) {
    at::Tensor dv = at::zeros_like(v), dh = at::zeros_like(h);
    if (go.numel() > 0) {
      const at::Tensor in = pad_image(input, g.lo, g.hi, g.mode);
      AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "sepconv_weight_grad_cpu", [&] {
        weight_grad_kernel<scalar_t>(in.data_ptr<scalar_t>(), go.data_ptr<scalar_t>(),
                                     v.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                     output_mask[1] ? dv.data_ptr<scalar_t>() : nullptr,
                                     output_mask[2] ? dh.data_ptr<scalar_t>() : nullptr, g);
      });
    }
    if (output_mask[1]) grad_v = dv;
    if (output_mask[2]) grad_h = dh;
  }
  return {grad_input, grad_v, grad_h};
}

}  // namespace

TORCH_LIBRARY_IMPL(emrestore, CPU, m) {
  m.impl("sepconv", &sepconv_cpu);
  m.impl("sepconv_backward", &sepconv_backward_cpu);
}

}  // namespace emrestore
