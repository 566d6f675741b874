// CUDA kernels of warp: one thread per output pixel, its taps visited in registers (for_each_tap).
// The input gradient scatters with atomicAdd, as grid_sample's does; the flow gradient is a
// per-pixel gather.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/native/cuda/KernelUtils.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "warp/warp.h"

namespace emrestore {
namespace {

constexpr int kThreads = 128;

// Threads along x (coalesced flow and output), blocks over (x, row, batch), each grid-strided: no
// 64-bit division per pixel.
inline dim3 pixel_grid(const WarpGeometry& g) {
  const auto cap = [](int64_t n) { return unsigned(std::max<int64_t>(1, std::min<int64_t>(n, 65535))); };
  return dim3(cap((g.W + kThreads - 1) / kThreads), cap(g.H), cap(g.B));
}

#define EMR_FOR_PIXELS(g, b, y, x)                                                                    \
  for (int64_t b = blockIdx.z; b < g.B; b += gridDim.z)                                              \
    for (int64_t y = blockIdx.y; y < g.H; y += gridDim.y)                                            \
      for (int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; x < g.W;                      \
           x += int64_t(gridDim.x) * blockDim.x)

template <typename T>
__global__ void forward_kernel(const T* __restrict__ in, const T* __restrict__ flow, T* __restrict__ out,
                               WarpGeometry g) {
  using Acc = at::opmath_type<T>;
  const int64_t HW = g.H * g.W, HWin = g.Hin * g.Win;
  EMR_FOR_PIXELS(g, b, y, x) {
    const int64_t p = y * g.W + x;
    const Acc fx = Acc(flow[b * 2 * HW + p]), fy = Acc(flow[b * 2 * HW + HW + p]);
    for (int64_t c = 0; c < g.C; ++c) {
      const T* plane = in + (b * g.C + c) * HWin;
      Acc acc = Acc(0);
      for_each_tap<Acc>(y, x, fx, fy, g.Hin, g.Win, g.interp, g.pad,
                        [&](int64_t off, Acc w, Acc, Acc) { acc += w * Acc(plane[off]); });
      out[(b * g.C + c) * HW + p] = T(acc);
    }
  }
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ grad, const T* __restrict__ in,
                                const T* __restrict__ flow, T* __restrict__ gin, T* __restrict__ gflow,
                                WarpGeometry g, int64_t gin_numel) {
  using Acc = at::opmath_type<T>;
  const int64_t HW = g.H * g.W, HWin = g.Hin * g.Win;
  EMR_FOR_PIXELS(g, b, y, x) {
    const int64_t p = y * g.W + x;
    const Acc fx = Acc(flow[b * 2 * HW + p]), fy = Acc(flow[b * 2 * HW + HW + p]);
    Acc gx = Acc(0), gy = Acc(0);
    for (int64_t c = 0; c < g.C; ++c) {
      const Acc go = Acc(grad[(b * g.C + c) * HW + p]);
      const int64_t base = (b * g.C + c) * HWin;
      const auto tap = [&](int64_t off, Acc w, Acc dwx, Acc dwy) {
        if (gin) at::native::fastAtomicAdd(gin, base + off, gin_numel, T(w * go), true);
        if (gflow) {
          const Acc v = Acc(in[base + off]);
          gx += go * dwx * v;
          gy += go * dwy * v;
        }
      };
      for_each_tap<Acc>(y, x, fx, fy, g.Hin, g.Win, g.interp, g.pad, tap);
    }
    if (gflow) {
      gflow[b * 2 * HW + p] = T(gx);
      gflow[b * 2 * HW + HW + p] = T(gy);
    }
  }
}

#define EMR_DISPATCH_CUDA_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

at::Tensor warp_cuda(const at::Tensor& input, const at::Tensor& flow, c10::string_view mode,
                     c10::string_view padding) {
  const WarpGeometry g = check_warp(input, flow, std::string(mode), std::string(padding));
  TORCH_CHECK_VALUE(input.is_cuda(), "warp (CUDA kernel): expected CUDA tensors; got ", input.device().str());
  const c10::cuda::CUDAGuard guard(input.device());
  at::Tensor out = at::empty({g.B, g.C, g.H, g.W}, input.options());
  if (out.numel() == 0) return out;
  TORCH_CHECK_VALUE(g.Hin > 0 && g.Win > 0, "warp: cannot sample an empty input of shape ", shape_str(input));
  const at::Tensor in = input.contiguous(), fl = flow.contiguous();
  EMR_DISPATCH_CUDA_FLOATS(input.scalar_type(), "warp_cuda", [&] {
    forward_kernel<scalar_t><<<pixel_grid(g), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        in.data_ptr<scalar_t>(), fl.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), g);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> warp_backward_cuda(const at::Tensor& grad_output,
                                                      const at::Tensor& input, const at::Tensor& flow,
                                                      c10::string_view mode, c10::string_view padding,
                                                      std::array<bool, 2> output_mask) {
  const WarpGeometry g =
      check_warp_backward(grad_output, input, flow, std::string(mode), std::string(padding));
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor go = grad_output.to(input.scalar_type()).contiguous();
  const at::Tensor in = input.contiguous(), fl = flow.contiguous();
  at::Tensor empty = at::empty({0}, input.options());
  at::Tensor grad_input = output_mask[0] ? at::zeros_like(in) : empty;
  at::Tensor grad_flow = output_mask[1] ? at::zeros_like(fl) : empty;
  if (go.numel() > 0 && (output_mask[0] || output_mask[1])) {
    EMR_DISPATCH_CUDA_FLOATS(input.scalar_type(), "warp_backward_cuda", [&] {
      backward_kernel<scalar_t><<<pixel_grid(g), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          go.data_ptr<scalar_t>(), in.data_ptr<scalar_t>(), fl.data_ptr<scalar_t>(),
          output_mask[0] ? grad_input.data_ptr<scalar_t>() : nullptr,
          output_mask[1] ? grad_flow.data_ptr<scalar_t>() : nullptr, g, grad_input.numel());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {grad_input, grad_flow};
}

}  // namespace

TORCH_LIBRARY_IMPL(emrestore, CUDA, m) {
  m.impl("warp", &warp_cuda);
  m.impl("warp_backward", &warp_backward_cuda);
}

}  // namespace emrestore
