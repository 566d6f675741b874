// CPU kernels of fold_warp (fused: the displacement is computed per pixel, no flow tensor) and
// fold_field (the flow and band fields, for training targets and the backward pass).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "fold/fold.h"

namespace emrestore {
namespace {

// Calls fn(b, y, x, sample) with the folds' effect at every pixel, in parallel over rows.
template <typename T, typename Fn>
void for_each_fold_sample(const at::Tensor& v, const at::Tensor& pr, const at::Tensor& pa,
                          const FoldGeometry& fg, int64_t H, int64_t W, const Fn& fn) {
  at::parallel_for(0, fg.B * H, 4, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H, goff = b * fg.F * fg.P * 2;
      for (int64_t x = 0; x < W; ++x)
        fn(b, y, x,
           fold_sample<T>(T(x), T(y), v.data_ptr<T>() + goff, pr.data_ptr<T>() + goff,
                          pa.data_ptr<T>() + b * fg.F * kFoldParams, int(fg.F), int(fg.P)));
    }
  });
}

at::Tensor fold_warp_cpu(const at::Tensor& input, const at::Tensor& vertices, const at::Tensor& profile,
                         const at::Tensor& params) {
  TORCH_CHECK_VALUE(input.dim() == 4, "fold_warp: input must be [B, C, H, W]; got shape ", shape_str(input));
  TORCH_CHECK_TYPE(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
                   "fold_warp on CPU: expected float32 or float64; got ", dtype_str(input));
  const FoldGeometry fg = check_folds(vertices, profile, params, input.size(0), input.scalar_type(), input.device());
  const int64_t C = input.size(1), H = input.size(2), W = input.size(3);
  const at::Tensor in = input.contiguous(), v = vertices.contiguous(), pr = profile.contiguous(),
                   pa = params.contiguous();
  at::Tensor out = at::empty_like(in);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "fold_warp_cpu", [&] {
    using T = scalar_t;
    const T* src = in.data_ptr<T>();
    T* dst = out.data_ptr<T>();
    for_each_fold_sample<T>(v, pr, pa, fg, H, W, [&](int64_t b, int64_t y, int64_t x, const FoldSample<T>& s) {
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = src + (b * C + c) * H * W;
        const T warped = sample_border<T>(plane, H, W, T(y) + s.dy, T(x) + s.dx);
        dst[(b * C + c) * H * W + y * W + x] = (T(1) - s.alpha) * warped + s.alpha * s.level * plane[y * W + x];
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fold_field_cpu(const at::Tensor& vertices,
                                                              const at::Tensor& profile,
                                                              const at::Tensor& params, int64_t H,
                                                              int64_t W) {
  TORCH_CHECK_VALUE(H >= 0 && W >= 0, "fold_field: height and width must be >= 0; got ", std::to_string(H),
                    " x ", std::to_string(W));
  TORCH_CHECK_TYPE(vertices.scalar_type() == at::kFloat || vertices.scalar_type() == at::kDouble,
                   "fold_field on CPU: expected float32 or float64; got ", dtype_str(vertices));
  const FoldGeometry fg = check_folds(vertices, profile, params, vertices.size(0), vertices.scalar_type(),
                                      vertices.device());
  const at::Tensor v = vertices.contiguous(), pr = profile.contiguous(), pa = params.contiguous();
  at::Tensor flow = at::empty({fg.B, 2, H, W}, v.options());
  at::Tensor alpha = at::empty({fg.B, 1, H, W}, v.options()), level = at::empty_like(alpha);
  if (flow.numel() == 0) return {flow, alpha, level};
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "fold_field_cpu", [&] {
    using T = scalar_t;
    T* fl = flow.data_ptr<T>();
    T* al = alpha.data_ptr<T>();
    T* le = level.data_ptr<T>();
    for_each_fold_sample<T>(v, pr, pa, fg, H, W, [&](int64_t b, int64_t y, int64_t x, const FoldSample<T>& s) {
      const int64_t p = y * W + x;
      fl[b * 2 * H * W + p] = s.dx;
      fl[b * 2 * H * W + H * W + p] = s.dy;
      al[b * H * W + p] = s.alpha;
      le[b * H * W + p] = s.level;
    });
  });
  return {flow, alpha, level};
}

}  // namespace

TORCH_LIBRARY_IMPL(emrestore, CPU, m) {
  m.impl("fold_warp", &fold_warp_cpu);
  m.impl("fold_field", &fold_field_cpu);
}

}  // namespace emrestore
