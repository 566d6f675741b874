// CUDA kernels of fold_warp and fold_field: one thread per pixel, fold geometry read through the
// cache (it is tiny and shared by every thread).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "fold/fold.h"

namespace emrestore {
namespace {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n) {
  return unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 32));
}

template <typename T>
__global__ void fold_warp_kernel(const T* __restrict__ in, const T* __restrict__ v, const T* __restrict__ pr,
                                 const T* __restrict__ pa, T* __restrict__ out, int64_t B, int64_t C,
                                 int64_t H, int64_t W, int F, int P) {
  using Acc = at::opmath_type<T>;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < B * H * W;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = idx / (H * W), p = idx % (H * W), y = p / W, x = p % W;
    const int64_t goff = b * F * P * 2;
    const FoldSample<Acc> s = fold_sample<Acc>(Acc(x), Acc(y), v + goff, pr + goff, pa + b * F * kFoldParams, F, P);
    for (int64_t c = 0; c < C; ++c) {
      const T* plane = in + (b * C + c) * H * W;
      const Acc warped = sample_border<Acc>(plane, H, W, Acc(y) + s.dy, Acc(x) + s.dx);
      out[(b * C + c) * H * W + p] = T((Acc(1) - s.alpha) * warped + s.alpha * s.level * Acc(plane[p]));
    }
  }
}

template <typename T>
__global__ void fold_field_kernel(const T* __restrict__ v, const T* __restrict__ pr, const T* __restrict__ pa,
                                  T* __restrict__ flow, T* __restrict__ alpha, T* __restrict__ level,
                                  int64_t B, int64_t H, int64_t W, int F, int P) {
  using Acc = at::opmath_type<T>;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < B * H * W;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = idx / (H * W), p = idx % (H * W);
    const int64_t goff = b * F * P * 2;
    const FoldSample<Acc> s =
        fold_sample<Acc>(Acc(p % W), Acc(p / W), v + goff, pr + goff, pa + b * F * kFoldParams, F, P);
    flow[b * 2 * H * W + p] = T(s.dx);
    flow[b * 2 * H * W + H * W + p] = T(s.dy);
    alpha[idx] = T(s.alpha);
    level[idx] = T(s.level);
  }
}

#define EMR_DISPATCH_CUDA_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

at::Tensor fold_warp_cuda(const at::Tensor& input, const at::Tensor& vertices, const at::Tensor& profile,
                          const at::Tensor& params) {
  TORCH_CHECK_VALUE(input.dim() == 4, "fold_warp: input must be [B, C, H, W]; got shape ", shape_str(input));
  const FoldGeometry fg = check_folds(vertices, profile, params, input.size(0), input.scalar_type(), input.device());
  const c10::cuda::CUDAGuard guard(input.device());
  const int64_t C = input.size(1), H = input.size(2), W = input.size(3);
  const at::Tensor in = input.contiguous(), v = vertices.contiguous(), pr = profile.contiguous(),
                   pa = params.contiguous();
  at::Tensor out = at::empty_like(in);
  if (out.numel() == 0) return out;
  EMR_DISPATCH_CUDA_FLOATS(input.scalar_type(), "fold_warp_cuda", [&] {
    fold_warp_kernel<scalar_t><<<grid_for(fg.B * H * W), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        in.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), pr.data_ptr<scalar_t>(), pa.data_ptr<scalar_t>(),
        out.data_ptr<scalar_t>(), fg.B, C, H, W, int(fg.F), int(fg.P));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fold_field_cuda(const at::Tensor& vertices,
                                                               const at::Tensor& profile,
                                                               const at::Tensor& params, int64_t H,
                                                               int64_t W) {
  TORCH_CHECK_VALUE(H >= 0 && W >= 0, "fold_field: height and width must be >= 0; got ", std::to_string(H),
                    " x ", std::to_string(W));
  const FoldGeometry fg = check_folds(vertices, profile, params, vertices.size(0), vertices.scalar_type(),
                                      vertices.device());
  const c10::cuda::CUDAGuard guard(vertices.device());
  const at::Tensor v = vertices.contiguous(), pr = profile.contiguous(), pa = params.contiguous();
  at::Tensor flow = at::empty({fg.B, 2, H, W}, v.options());
  at::Tensor alpha = at::empty({fg.B, 1, H, W}, v.options()), level = at::empty_like(alpha);
  if (flow.numel() == 0) return {flow, alpha, level};
  EMR_DISPATCH_CUDA_FLOATS(v.scalar_type(), "fold_field_cuda", [&] {
    fold_field_kernel<scalar_t><<<grid_for(fg.B * H * W), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        v.data_ptr<scalar_t>(), pr.data_ptr<scalar_t>(), pa.data_ptr<scalar_t>(), flow.data_ptr<scalar_t>(),
        alpha.data_ptr<scalar_t>(), level.data_ptr<scalar_t>(), fg.B, H, W, int(fg.F), int(fg.P));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {flow, alpha, level};
}

}  // namespace

TORCH_LIBRARY_IMPL(emrestore, CUDA, m) {
  m.impl("fold_warp", &fold_warp_cuda);
  m.impl("fold_field", &fold_field_cuda);
}

}  // namespace emrestore
