#include <ATen/Parallel.h>

#include <vector>

#include "common/checks.h"

namespace emrestore {

#ifdef EMRESTORE_WITH_CUDA
at::Tensor unpad_image_backward_cuda(const at::Tensor& grad_padded, int64_t H, int64_t W, int64_t lo,
                                     PadMode mode);
#endif

static at::Tensor pad_index(int64_t n, int64_t lo, int64_t hi, PadMode mode, const at::Device& device) {
  std::vector<int64_t> idx(n + lo + hi);
  for (int64_t p = 0; p < n + lo + hi; ++p) idx[p] = pad_source(p - lo, n, mode);
  return at::tensor(idx, at::TensorOptions().dtype(at::kLong)).to(device);
}

at::Tensor pad_image(const at::Tensor& input, int64_t lo, int64_t hi, PadMode mode) {
  if (mode == PadMode::None) return input.contiguous();
  if (mode == PadMode::Zeros) return at::constant_pad_nd(input, {lo, hi, lo, hi}, 0).contiguous();
  const int64_t H = input.size(2), W = input.size(3);
  // A gather with the shared index map, so CPU and CUDA pad identically.
  return input.index_select(2, pad_index(H, lo, hi, mode, input.device()))
      .index_select(3, pad_index(W, lo, hi, mode, input.device()))
      .contiguous();
}

at::Tensor unpad_image_backward(const at::Tensor& grad_padded, int64_t H, int64_t W, int64_t lo,
                                PadMode mode) {
  const int64_t N = grad_padded.size(0), C = grad_padded.size(1);
  const int64_t Hp = grad_padded.size(2), Wp = grad_padded.size(3);
  if (mode == PadMode::None) return grad_padded;
  if (mode == PadMode::Zeros) return grad_padded.slice(2, lo, lo + H).slice(3, lo, lo + W).contiguous();
#ifdef EMRESTORE_WITH_CUDA
  if (grad_padded.is_cuda()) return unpad_image_backward_cuda(grad_padded, H, W, lo, mode);
#endif
  TORCH_CHECK(grad_padded.is_cpu(), "unpad_image_backward: no kernel for device ",
              grad_padded.device().str());
  at::Tensor gp = grad_padded.contiguous();
  at::Tensor out = at::empty({N, C, H, W}, gp.options());
  AT_DISPATCH_FLOATING_TYPES(gp.scalar_type(), "unpad_image_backward", [&] {
    const scalar_t* src = gp.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, N * C * H, 16, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t plane = row / H, y = row % H;
        for (int64_t x = 0; x < W; ++x)
          dst[row * W + x] = gather_pad_preimages_2d<scalar_t>(src + plane * Hp * Wp, Hp, Wp, y, x, H,
                                                                W, lo, mode);
      }
    });
  });
  return out;
}

}  // namespace emrestore
