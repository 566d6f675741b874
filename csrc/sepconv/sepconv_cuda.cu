// CUDA kernels of sepconv: one thread per output (or gradient) element, consecutive threads along x so
// that every tap's loads of the image and the per-pixel kernels are coalesced. Gradients are gathers:
// no atomics. Arithmetic in the helpers shared with the CPU kernels, accumulated in float for
// float16/bfloat16 (at::opmath_type).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "sepconv/sepconv.h"
#include "sepconv/sepconv_helpers.h"

namespace emrestore {
namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

template <typename T>
__global__ void forward_kernel(const T* __restrict__ in, const T* __restrict__ v,
                               const T* __restrict__ h, T* __restrict__ out, int64_t B, int64_t C,
                               int64_t H, int64_t W, int K) {
  using Acc = at::opmath_type<T>;
  const int64_t Hp = H + K - 1, Wp = W + K - 1, ks = H * W;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < B * C * H * W;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = idx % W, y = (idx / W) % H, plane = idx / ks, b = plane / C;
    const int64_t woff = b * K * ks + y * W + x;
    out[idx] = T(sepconv_pixel<Acc>(in + (plane * Hp + y) * Wp + x, Wp, v + woff, h + woff, ks, K));
  }
}

template <typename T>
__global__ void input_grad_kernel(const T* __restrict__ grad, const T* __restrict__ v,
                                  const T* __restrict__ h, T* __restrict__ gpad, int64_t B,
                                  int64_t C, int64_t H, int64_t W, int K) {
  using Acc = at::opmath_type<T>;
  const int64_t Hp = H + K - 1, Wp = W + K - 1, ks = H * W;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < B * C * Hp * Wp;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = idx % Wp, r = (idx / Wp) % Hp, plane = idx / (Hp * Wp), b = plane / C;
    gpad[idx] = T(sepconv_input_grad_pixel<Acc>(grad + plane * ks, v + b * K * ks, h + b * K * ks, r,
                                                 s, H, W, K));
  }
}

// One thread per (b, k, y, x): dv_k = sum_c g_c * (window row k . h), dh_k = sum_c g_c * (window column k . v).
template <typename T>
__global__ void weight_grad_kernel(const T* __restrict__ in, const T* __restrict__ grad,
                                   const T* __restrict__ v, const T* __restrict__ h,
                                   T* __restrict__ dv, T* __restrict__ dh, int64_t B, int64_t C,
                                   int64_t H, int64_t W, int K) {
  using Acc = at::opmath_type<T>;
  const int64_t Hp = H + K - 1, Wp = W + K - 1, ks = H * W;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < B * K * ks;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = idx % W, y = (idx / W) % H, k = (idx / ks) % K, b = idx / (K * ks);
    const int64_t woff = b * K * ks + y * W + x;
    Acc sv = Acc(0), sh = Acc(0);
    for (int64_t c = 0; c < C; ++c) {
      const T* src = in + ((b * C + c) * Hp + y) * Wp + x;
      const Acc g = Acc(grad[((b * C + c) * H + y) * W + x]);
      if (dv) sv += g * tap_row_dot<Acc>(src + k * Wp, h + woff, ks, K);
      if (dh) sh += g * tap_col_dot<Acc>(src + k, Wp, v + woff, ks, K);
    }
    if (dv) dv[idx] = T(sv);
    if (dh) dh[idx] = T(sh);
  }
}

template <typename T>
__global__ void unpad_kernel(const T* __restrict__ gpad, T* __restrict__ out, int64_t planes,
                             int64_t H, int64_t W, int64_t Hp, int64_t Wp, int64_t lo, PadMode mode) {
  using Acc = at::opmath_type<T>;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < planes * H * W;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = idx % W, y = (idx / W) % H, plane = idx / (H * W);
    out[idx] = T(gather_pad_preimages_2d<Acc>(gpad + plane * Hp * Wp, Hp, Wp, y, x, H, W, lo, mode));
  }
}

#define EMR_DISPATCH_CUDA_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

inline unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(blocks_for(n), 65535 * 32)); }

at::Tensor sepconv_cuda(const at::Tensor& input, const at::Tensor& vertical,
                        const at::Tensor& horizontal, c10::string_view padding) {
  const SepconvGeometry g = check_sepconv(input, vertical, horizontal, std::string(padding));
  TORCH_CHECK_VALUE(input.is_cuda(), "sepconv (CUDA kernel): expected CUDA tensors; got ",
                    input.device().str());
  const c10::cuda::CUDAGuard guard(input.device());
  at::Tensor out = at::empty({g.B, g.C, g.H, g.W}, input.options());
  if (out.numel() == 0) return out;
  const at::Tensor in = pad_image(input, g.lo, g.hi, g.mode);
  const at::Tensor v = vertical.contiguous(), h = horizontal.contiguous();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  EMR_DISPATCH_CUDA_FLOATS(input.scalar_type(), "sepconv_cuda", [&] {
    forward_kernel<scalar_t><<<grid_for(out.numel()), kThreads, 0, stream>>>(
        in.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
        out.data_ptr<scalar_t>(), g.B, g.C, g.H, g.W, int(g.K));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sepconv_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& vertical,
    const at::Tensor& horizontal, c10::string_view padding, std::array<bool, 3> output_mask) {
  const SepconvGeometry g =
      check_sepconv_backward(grad_output, input, vertical, horizontal, std::string(padding));
  const c10::cuda::CUDAGuard guard(input.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor go = grad_output.to(input.scalar_type()).contiguous();
  const at::Tensor v = vertical.contiguous(), h = horizontal.contiguous();
  at::Tensor grad_input = at::empty({0}, input.options()), grad_v = grad_input, grad_h = grad_input;
  if (output_mask[0]) {
    at::Tensor gpad = at::zeros({g.B, g.C, g.H + g.K - 1, g.W + g.K - 1}, input.options());
    if (go.numel() > 0) {
      EMR_DISPATCH_CUDA_FLOATS(input.scalar_type(), "sepconv_input_grad_cuda", [&] {
        input_grad_kernel<scalar_t><<<grid_for(gpad.numel()), kThreads, 0, stream>>>(
            go.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
            gpad.data_ptr<scalar_t>(), g.B, g.C, g.H, g.W, int(g.K));
      });
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    grad_input = unpad_image_backward(gpad, g.H, g.W, g.lo, g.mode);
  }
  if (output_mask[1] || output_mask[2]) {
    at::Tensor dv = at::zeros_like(v), dh = at::zeros_like(h);
    if (go.numel() > 0) {
      const at::Tensor in = pad_image(input, g.lo, g.hi, g.mode);
      EMR_DISPATCH_CUDA_FLOATS(input.scalar_type(), "sepconv_weight_grad_cuda", [&] {
        weight_grad_kernel<scalar_t><<<grid_for(dv.numel()), kThreads, 0, stream>>>(
            in.data_ptr<scalar_t>(), go.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
            h.data_ptr<scalar_t>(), output_mask[1] ? dv.data_ptr<scalar_t>() : nullptr,
            output_mask[2] ? dh.data_ptr<scalar_t>() : nullptr, g.B, g.C, g.H, g.W, int(g.K));
      });
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (output_mask[1]) grad_v = dv;
    if (output_mask[2]) grad_h = dh;
  }
  return {grad_input, grad_v, grad_h};
}

}  // namespace

at::Tensor unpad_image_backward_cuda(const at::Tensor& grad_padded, int64_t H, int64_t W, int64_t lo,
                                     PadMode mode) {
  const at::Tensor gp = grad_padded.contiguous();
  const int64_t N = gp.size(0), C = gp.size(1);
  at::Tensor out = at::empty({N, C, H, W}, gp.options());
  if (out.numel() == 0) return out;
  const c10::cuda::CUDAGuard guard(gp.device());
  EMR_DISPATCH_CUDA_FLOATS(gp.scalar_type(), "unpad_image_backward_cuda", [&] {
    unpad_kernel<scalar_t><<<grid_for(out.numel()), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        gp.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N * C, H, W, gp.size(2), gp.size(3), lo, mode);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

TORCH_LIBRARY_IMPL(emrestore, CUDA, m) {
  m.impl("sepconv", &sepconv_cuda);
  m.impl("sepconv_backward", &sepconv_backward_cuda);
}

}  // namespace emrestore
