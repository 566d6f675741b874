// CPU kernels of sepconv: parallel over (batch, row) with ATen's parallel_for (OpenMP in PyTorch's
// builds, so the thread count follows torch.set_num_threads), vectorised along x in register blocks
// of XB pixels; columns that do not fill a block use the per-pixel helpers shared with CUDA.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
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

// Inverse of pack_taps: writes a packed row back to [K, ...] with tap stride ks, row by row.
template <typename T>
void unpack_taps(const T* src, int K, int64_t nblocks, T* w, int64_t ks) {
  constexpr int XB = block_width<T>();
  for (int k = 0; k < K; ++k)
    for (int64_t blk = 0; blk < nblocks; ++blk)
      std::copy(src + (blk * K + k) * XB, src + (blk * K + k + 1) * XB, w + k * ks + blk * XB);
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

// dst[r * dstride + x] += scale[x] * t[r][x] (scale = 1 when null) for the NR dots() results.
// The results stay in registers: callers never hold them across other work.
template <int NR, typename T>
inline void dots_accumulate(T* dst, int64_t dstride, const T* scale, const T* in, int64_t ostride,
                            int64_t istride, const T* w, int64_t ks, int K) {
  constexpr int N = simd::Vec<T>::lanes;
  vec_t<T> t[kRows][kVecs];
  dots<NR>(t, in, ostride, istride, w, ks, K);
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < kVecs; ++u) {
      T* d = dst + r * dstride + u * N;
      store(d, scale ? load(d) + load(scale + u * N) * t[r][u] : load(d) + t[r][u]);
    }
}

// All K rows of dots() in blocks of kRows, accumulated as by dots_accumulate with dst row k at
// dst + k * dstride and dots() input k at in + k * step.
template <typename T>
inline void dots_accumulate_all(T* dst, int64_t dstride, const T* scale, const T* in, int64_t step,
                                int64_t ostride, int64_t istride, const T* w, int64_t ks, int count,
                                int K) {
  int k = 0;
  for (; k + kRows <= count; k += kRows)
    dots_accumulate<kRows>(dst + k * dstride, dstride, scale, in + k * step, ostride, istride, w, ks, K);
  for (; k < count; ++k)
    dots_accumulate<1>(dst + k * dstride, dstride, scale, in + k * step, ostride, istride, w, ks, K);
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

// Gradient of the padded input. Output row y, through tap row i, reaches padded row y + i:
//   gpad[y + i, s] += Q_i(y)[s],  Q_i(y)[s] = sum_j G_i[s - j] * h_j(y, s - j),  G_i = g(y) * v_i(y),
// with G_i and h_j zero-extended by K - 1 columns on each side so that every tap reads in bounds.
// A task owns a range of padded rows and visits every output row that reaches it, so the
// accumulation needs no atomics, and the dot products share each h load across kRows values of i.
// The zero-extended rows live in per-task scratch (a few hundred KiB, reused row after row): one
// buffer for the whole image would cost a single-threaded zero fill and page faults of K * H * W.
template <typename T>
void input_grad_kernel(const T* grad, const T* v, const T* h, T* gpad, const SepconvGeometry& g) {
  const int64_t H = g.H, W = g.W, C = g.C, Hp = H + g.K - 1, Wp = W + g.K - 1, ks = H * W;
  const int K = int(g.K);
  const int64_t Wz = W + 2 * (K - 1);
  constexpr int XB = block_width<T>();
  const int64_t nblocks = Wp / XB;
  at::parallel_for(0, g.B * C * Hp, grain_rows(K * K * Wp), [&](int64_t begin, int64_t end) {
    // G_i rows and h_j rows of the current output row, zero-extended; the margins stay zero.
    std::vector<T> gz(size_t(K * Wz), T(0)), hz(size_t(K * Wz), T(0));
    int64_t hz_row = -1;  // (b, y) whose h rows hz holds
    for (int64_t plane = begin / Hp; plane * Hp < end; ++plane) {
      const int64_t r0 = std::max<int64_t>(begin - plane * Hp, 0);
      const int64_t r1 = std::min<int64_t>(end - plane * Hp, Hp);
      const int64_t b = plane / C;
      const T* gplane = grad + plane * ks;
      const T* vb = v + b * K * ks;
      const T* hb = h + b * K * ks;
      T* gp = gpad + plane * Hp * Wp;
      for (int64_t y = std::max<int64_t>(0, r0 - K + 1); y < std::min<int64_t>(H, r1); ++y) {
        const int i_lo = int(std::max<int64_t>(0, r0 - y));
        const int i_hi = int(std::min<int64_t>(K - 1, r1 - 1 - y));
        for (int i = i_lo; i <= i_hi; ++i) {
          T* gi = gz.data() + i * Wz + (K - 1);
          const T* vi = vb + i * ks + y * W;
          for (int64_t x = 0; x < W; ++x) gi[x] = gplane[y * W + x] * vi[x];
        }
        if (hz_row != b * H + y) {  // channels of one batch item share h
          for (int k = 0; k < K; ++k)
            std::copy(hb + k * ks + y * W, hb + k * ks + y * W + W, hz.data() + k * Wz + (K - 1));
          hz_row = b * H + y;
        }
        const T* hy = hz.data() + (K - 1);
        // Q_i over taps j: in = G_i (rows Wz apart, tap step -1), weights h_j (tap step Wz - 1).
        for (int64_t blk = 0; blk < nblocks; ++blk) {
          const int64_t s = blk * XB;
          dots_accumulate_all(gp + (y + i_lo) * Wp + s, Wp, static_cast<const T*>(nullptr),
                              gz.data() + i_lo * Wz + (K - 1) + s, Wz, Wz, -1, hy + s, Wz - 1,
                              i_hi - i_lo + 1, K);
        }
      }
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t s = nblocks * XB; s < Wp; ++s)
          gp[r * Wp + s] = sepconv_input_grad_pixel<T>(gplane, vb, hb, r, s, H, W, K);
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
  constexpr int XB = block_width<T>();
  at::parallel_for(0, g.B * H, grain_rows(2 * C * K * K * W), [&](int64_t begin, int64_t end) {
    const int64_t nblocks = W / XB;
    // Packed rows (see pack_taps) of v and h, and of the dv and dh accumulators.
    std::vector<T> scratch(size_t(4 * nblocks * K * XB));
    T* vp = scratch.data();
    T* hp = vp + nblocks * K * XB;
    T* dvp = hp + nblocks * K * XB;
    T* dhp = dvp + nblocks * K * XB;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H, off = b * K * ks + y * W;
      // dv needs h, dh needs v: a kernel that is not needed is not packed.
      if (dh) pack_taps(v + off, ks, K, nblocks, vp);
      if (dv) pack_taps(h + off, ks, K, nblocks, hp);
      if (dv) std::fill(dvp, dvp + nblocks * K * XB, T(0));
      if (dh) std::fill(dhp, dhp + nblocks * K * XB, T(0));
      int64_t x0 = 0;
      for (; x0 + XB <= W; x0 += XB) {
        const T* vb = vp + (x0 / XB) * K * XB;
        const T* hb = hp + (x0 / XB) * K * XB;
        T* adv = dvp + (x0 / XB) * K * XB;
        T* adh = dhp + (x0 / XB) * K * XB;
        for (int64_t c = 0; c < C; ++c) {
          const T* src = in + ((b * C + c) * Hp + y) * Wp + x0;
          const T* gc = grad + ((b * C + c) * H + y) * W + x0;
          // dv: window rows (step Wp) against h; dh: window columns (step 1) against v.
          if (dv) dots_accumulate_all(adv, XB, gc, src, Wp, Wp, 1, hb, XB, K, K);
          if (dh) dots_accumulate_all(adh, XB, gc, src, 1, 1, Wp, vb, XB, K, K);
        }
      }
      if (dv) unpack_taps(dvp, K, nblocks, dv + off, ks);
      if (dh) unpack_taps(dhp, K, nblocks, dh + off, ks);
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
  TORCH_CHECK_VALUE(input.is_cpu(), "sepconv (CPU kernel): expected CPU tensors; got ", input.device().str());
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
  const SepconvGeometry g =
      check_sepconv_backward(grad_output, input, vertical, horizontal, std::string(padding));
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
    // Every element is written (C >= 1, so an empty grad_output means empty kernels). Only the
    // gradients asked for are allocated: each is as large as a kernel tensor.
    at::Tensor dv = output_mask[1] ? at::empty_like(v) : at::Tensor();
    at::Tensor dh = output_mask[2] ? at::empty_like(h) : at::Tensor();
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
