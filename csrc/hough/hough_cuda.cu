// CUDA kernels of the Hough transform. Votes: one block per (angle, image); the block's threads share
// the image's nonzero pixels and count into a shared-memory rho column when it fits (else global
// atomics). Peaks: local maxima with ATen on the device, then the host selection shared with the CPU.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "hough/hough.h"

namespace emrestore {
namespace {

constexpr int kThreads = 256;

// Vote weights in the kernel: 32-bit counts for binary votes (shared-memory atomics are unsigned),
// the output type for weighted votes.
template <typename Out> struct VoteType { using type = Out; };
template <> struct VoteType<int32_t> { using type = unsigned int; };

__device__ inline void add_vote(int32_t* p, unsigned int w) {
  atomicAdd(reinterpret_cast<unsigned int*>(p), w);
}
template <typename T>
__device__ inline void add_vote(T* p, T w) {
  atomicAdd(p, w);
}

template <typename Out, typename In, bool kShared>
__global__ void hough_kernel(const double* __restrict__ xs, const double* __restrict__ ys,
                             const In* __restrict__ weights, const int64_t* __restrict__ start,
                             const double* __restrict__ cs, const double* __restrict__ sn,
                             Out* __restrict__ out, int64_t R, int64_t T, int64_t offset) {
  using V = typename VoteType<Out>::type;
  extern __shared__ unsigned char smem[];
  V* col = reinterpret_cast<V*>(smem);
  const int64_t t = blockIdx.x, b = blockIdx.y;
  Out* plane = out + b * R * T;
  if (kShared) {
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) col[r] = V(0);
    __syncthreads();
  }
  const double c = cs[t], s = sn[t];
  for (int64_t i = start[b] + threadIdx.x; i < start[b + 1]; i += blockDim.x) {
    const int64_t r = rho_bin(c, s, xs[i], ys[i], offset);
    if (r < 0 || r >= R) continue;
    const V w = weights ? V(weights[i]) : V(1);
    if (kShared)
      atomicAdd(&col[r], w);
    else
      add_vote(&plane[r * T + t], w);
  }
  if (kShared) {
    __syncthreads();
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) plane[r * T + t] = Out(col[r]);
  }
}

at::Tensor hough_lines_cuda(const at::Tensor& image, const at::Tensor& cos_theta, const at::Tensor& sin_theta) {
  const at::ScalarType acc_type = check_hough_lines(image, cos_theta, sin_theta);
  const c10::cuda::CUDAGuard guard(image.device());
  const int64_t B = image.size(0), H = image.size(1), W = image.size(2), T = cos_theta.size(0);
  const int64_t offset = hough_offset(H, W), R = 2 * offset + 1;
  at::Tensor out = at::zeros({B, R, T}, image.options().dtype(acc_type));
  if (out.numel() == 0 || H * W == 0) return out;
  TORCH_CHECK_VALUE(B <= 65535, "hough_lines on CUDA: at most 65535 images per call; got ",
                    std::to_string(B));
  // Nonzero pixels, row-major per image, and where each image's run starts.
  const at::Tensor idx = at::nonzero(image);  // [N, 3] (b, y, x)
  const at::Tensor bcol = idx.select(1, 0).contiguous();
  const at::Tensor start = at::searchsorted(bcol, at::arange(B + 1, idx.options()));
  const at::Tensor xs = idx.select(1, 2).to(at::kDouble).contiguous(), ys = idx.select(1, 1).to(at::kDouble).contiguous();
  const at::Tensor cs = cos_theta.contiguous(), sn = sin_theta.contiguous();
  const dim3 grid(static_cast<unsigned>(T), static_cast<unsigned>(B), 1);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  int device_smem = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&device_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, image.device().index()));
  auto launch = [&](auto out_tag, auto in_tag, const void* weights) {
    using Out = decltype(out_tag);
    using In = decltype(in_tag);
    using V = typename VoteType<Out>::type;
    const size_t smem = size_t(R) * sizeof(V);
    const In* w = static_cast<const In*>(weights);
    if (smem <= size_t(device_smem)) {
      auto kernel = hough_kernel<Out, In, true>;
      C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
      kernel<<<grid, kThreads, smem, stream>>>(xs.data_ptr<double>(), ys.data_ptr<double>(), w,
                                               start.data_ptr<int64_t>(), cs.data_ptr<double>(),
                                               sn.data_ptr<double>(), out.data_ptr<Out>(), R, T, offset);
    } else {
      hough_kernel<Out, In, false><<<grid, kThreads, 0, stream>>>(
          xs.data_ptr<double>(), ys.data_ptr<double>(), w, start.data_ptr<int64_t>(), cs.data_ptr<double>(),
          sn.data_ptr<double>(), out.data_ptr<Out>(), R, T, offset);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (acc_type == at::kInt) {
    launch(int32_t(0), uint8_t(0), nullptr);
  } else {
    AT_DISPATCH_FLOATING_TYPES(acc_type, "hough_lines_cuda", [&] {
      const at::Tensor w = image.index({idx.select(1, 0), idx.select(1, 1), idx.select(1, 2)}).contiguous();
      launch(scalar_t(0), scalar_t(0), w.data_ptr<scalar_t>());
    });
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> hough_peaks_cuda(const at::Tensor& acc, const at::Tensor& threshold,
                                                                int64_t num_peaks, int64_t min_distance,
                                                                int64_t min_angle, bool wrap) {
  check_hough_peaks(acc, threshold, num_peaks, min_distance, min_angle);
  const c10::cuda::CUDAGuard guard(acc.device());
  const int64_t B = acc.size(0), R = acc.size(1), T = acc.size(2);
  // Local maxima over 3 x 3 with ATen: the theta axis is extended by one column on each side (the
  // wrapped neighbours have mirrored rho), the rho axis by -inf.
  const at::Tensor a = acc.to(at::kDouble);
  at::Tensor ext;
  if (wrap) {
    ext = at::cat({a.narrow(2, T - 1, 1).flip({1}), a, a.narrow(2, 0, 1).flip({1})}, 2);
  } else {
    const at::Tensor pad = at::full({B, R, 1}, -std::numeric_limits<double>::infinity(), a.options());
    ext = at::cat({pad, a, pad}, 2);
  }
  const at::Tensor rpad = at::full({B, 1, T + 2}, -std::numeric_limits<double>::infinity(), a.options());
  ext = at::cat({rpad, ext, rpad}, 1).unsqueeze(1);
  const at::Tensor pooled = at::max_pool2d(ext, {3, 3}, {1, 1}).squeeze(1);  // [B, R, T]
  const at::Tensor keep = (a >= pooled) & (a > 0) & (a >= threshold);
  const at::Tensor where = at::nonzero(keep).cpu();  // [N, 3]
  const at::Tensor values = a.index({keep}).cpu();
  std::vector<PeakCandidate> candidates(where.size(0));
  const auto w = where.accessor<int64_t, 2>();
  const double* v = values.data_ptr<double>();
  for (int64_t i = 0; i < where.size(0); ++i) candidates[i] = {v[i], w[i][0], w[i][1], w[i][2]};
  auto [rho, theta, count] = select_peaks(candidates, B, R, T, num_peaks, min_distance, min_angle, wrap);
  return {rho.to(acc.device()), theta.to(acc.device()), count.to(acc.device())};
}

}  // namespace

TORCH_LIBRARY_IMPL(emrestore, CUDA, m) {
  m.impl("hough_lines", &hough_lines_cuda);
  m.impl("hough_peaks", &hough_peaks_cuda);
}

}  // namespace emrestore
