// CPU kernels of warp: parallel over output rows (forward, flow gradient); the input gradient is a
// scatter, parallel over image planes so that no two threads add into one plane.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "warp/warp.h"

namespace emrestore {
namespace {

// Bilinear rows in two passes: corner offsets and weights for the whole row (padding rule fixed at
// compile time, so the coordinate arithmetic vectorises), then the gathers for every channel.
template <typename T, WarpPad P>
void bilinear_row(const T* in, const T* fx, const T* fy, T* out, int64_t y, const WarpGeometry& g,
                  int64_t* off, T* w) {
  const int64_t HW = g.H * g.W, HWin = g.Hin * g.Win, W = g.W;
#pragma omp simd
  for (int64_t x = 0; x < W; ++x) {
    T m;
    const T ix = pad_coord(T(x) + fx[x], g.Win, P, &m);
    const T iy = pad_coord(T(y) + fy[x], g.Hin, P, &m);
    int64_t o[4];
    T wt[4];
    bilinear_corners(iy, ix, g.Hin, g.Win, o, wt);
    for (int k = 0; k < 4; ++k) {
      off[k * W + x] = o[k];
      w[k * W + x] = wt[k];
    }
  }
  for (int64_t c = 0; c < g.C; ++c) {
    const T* plane = in + c * HWin;
    T* dst = out + c * HW;
    for (int64_t x = 0; x < W; ++x)
      dst[x] = w[x] * plane[off[x]] + w[W + x] * plane[off[W + x]] + w[2 * W + x] * plane[off[2 * W + x]] +
               w[3 * W + x] * plane[off[3 * W + x]];
  }
}

// Bicubic output pixels without the general stencil: the forward pass needs neither the weight
// derivatives nor per-tap bookkeeping, and taps that read zero get weight 0 and offset 0.
template <typename T>
void bicubic_row(const T* in, const T* fx, const T* fy, T* out, int64_t y, const WarpGeometry& g) {
  const int64_t HW = g.H * g.W, HWin = g.Hin * g.Win;
  for (int64_t x = 0; x < g.W; ++x) {
    const T cx = T(x) + fx[x], cy = T(y) + fy[x];
    const T x0 = std::floor(cx), y0 = std::floor(cy);
    T wx[4], wy[4];
    cubic_weights(cx - x0, wx);
    cubic_weights(cy - y0, wy);
    int64_t px[4], py[4];
    bool vx[4], vy[4];
    // Compared as floats: casting a huge (or NaN) coordinate to an integer is undefined.
    if (x0 >= T(1) && x0 <= T(g.Win - 3) && y0 >= T(1) && y0 <= T(g.Hin - 3)) {  // no padding needed
      const int64_t xi = int64_t(x0), yi = int64_t(y0);
      for (int k = 0; k < 4; ++k) {
        px[k] = xi - 1 + k;
        py[k] = (yi - 1 + k) * g.Win;
      }
    } else {
      cubic_axis_taps(x0, g.Win, g.pad, px, vx);
      cubic_axis_taps(y0, g.Hin, g.pad, py, vy);
      for (int k = 0; k < 4; ++k) {
        wx[k] = vx[k] ? wx[k] : T(0);
        px[k] = vx[k] ? px[k] : 0;
        wy[k] = vy[k] ? wy[k] : T(0);
        py[k] = vy[k] ? py[k] * g.Win : 0;
      }
    }
    for (int64_t c = 0; c < g.C; ++c) {
      const T* plane = in + c * HWin;
      T acc = T(0);
      for (int i = 0; i < 4; ++i) {
        const T* r = plane + py[i];
        acc += wy[i] * (wx[0] * r[px[0]] + wx[1] * r[px[1]] + wx[2] * r[px[2]] + wx[3] * r[px[3]]);
      }
      out[c * HW + x] = acc;
    }
  }
}

template <typename T>
void forward_kernel(const T* in, const T* flow, T* out, const WarpGeometry& g) {
  const int64_t HW = g.H * g.W, HWin = g.Hin * g.Win;
  at::parallel_for(0, g.B * g.H, 4, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> off(g.interp == Interp::Bilinear ? 4 * g.W : 0);
    std::vector<T> w(off.size());
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / g.H, y = row % g.H;
      const T* fb = flow + b * 2 * HW + y * g.W;
      if (g.interp == Interp::Bilinear) {  // the common case, without the general stencil
        const T* src = in + b * g.C * HWin;
        T* dst = out + b * g.C * HW + y * g.W;
        if (g.pad == WarpPad::Border)
          bilinear_row<T, WarpPad::Border>(src, fb, fb + HW, dst, y, g, off.data(), w.data());
        else if (g.pad == WarpPad::Zeros)
          bilinear_row<T, WarpPad::Zeros>(src, fb, fb + HW, dst, y, g, off.data(), w.data());
        else
          bilinear_row<T, WarpPad::Reflection>(src, fb, fb + HW, dst, y, g, off.data(), w.data());
        continue;
      }
      if (g.interp == Interp::Bicubic) {
        bicubic_row<T>(in + b * g.C * HWin, fb, fb + HW, out + b * g.C * HW + y * g.W, y, g);
        continue;
      }
      for (int64_t x = 0; x < g.W; ++x) {
        const Stencil<T> st = warp_stencil<T>(y, x, fb[x], fb[HW + x], g.Hin, g.Win, g.interp, g.pad);
        for (int64_t c = 0; c < g.C; ++c) {
          const T* plane = in + (b * g.C + c) * HWin;
          T acc = T(0);
          for (int k = 0; k < st.n; ++k) acc += st.weight[k] * plane[st.offset[k]];
          out[(b * g.C + c) * HW + y * g.W + x] = acc;
        }
      }
    }
  });
}

template <typename T>
void flow_grad_kernel(const T* grad, const T* in, const T* flow, T* gflow, const WarpGeometry& g) {
  const int64_t HW = g.H * g.W, HWin = g.Hin * g.Win;
  at::parallel_for(0, g.B * g.H, 4, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / g.H, y = row % g.H;
      const T* fb = flow + b * 2 * HW + y * g.W;
      if (g.interp == Interp::Bilinear) {  // the common case, without the general stencil
        for (int64_t x = 0; x < g.W; ++x) {
          T mx, my, ax, ay;
          const T ix = pad_coord(T(x) + fb[x], g.Win, g.pad, &mx);
          const T iy = pad_coord(T(y) + fb[HW + x], g.Hin, g.pad, &my);
          int64_t off[4];
          bool inside[4];
          bilinear_taps(iy, ix, g.Hin, g.Win, off, inside, &ax, &ay);
          T gx = T(0), gy = T(0);
          for (int64_t c = 0; c < g.C; ++c) {
            const T* plane = in + (b * g.C + c) * HWin;
            const T go = grad[(b * g.C + c) * HW + y * g.W + x];
            T v[4];
            for (int k = 0; k < 4; ++k) v[k] = inside[k] ? plane[off[k]] : T(0);
            gx += go * ((v[1] - v[0]) * (T(1) - ay) + (v[3] - v[2]) * ay);
            gy += go * ((v[2] - v[0]) * (T(1) - ax) + (v[3] - v[1]) * ax);
          }
          gflow[b * 2 * HW + y * g.W + x] = gx * mx;
          gflow[b * 2 * HW + HW + y * g.W + x] = gy * my;
        }
        continue;
      }
      for (int64_t x = 0; x < g.W; ++x) {
        const Stencil<T> st = warp_stencil<T>(y, x, fb[x], fb[HW + x], g.Hin, g.Win, g.interp, g.pad);
        T gx = T(0), gy = T(0);
        for (int64_t c = 0; c < g.C; ++c) {
          const T* plane = in + (b * g.C + c) * HWin;
          const T go = grad[(b * g.C + c) * HW + y * g.W + x];
          for (int k = 0; k < st.n; ++k) {
            gx += go * st.dweight_x[k] * plane[st.offset[k]];
            gy += go * st.dweight_y[k] * plane[st.offset[k]];
          }
        }
        gflow[b * 2 * HW + y * g.W + x] = gx;
        gflow[b * 2 * HW + HW + y * g.W + x] = gy;
      }
    }
  });
}

// Scatters g * weight onto the stencil taps of output rows [y0, y1) of one plane.
template <typename T>
void scatter_rows(const T* gp, const T* fb, T* dst, int64_t y0, int64_t y1, const WarpGeometry& g) {
  if (g.interp == Interp::Bilinear) {
    const int64_t HW = g.H * g.W;
    for (int64_t p = y0 * g.W; p < y1 * g.W; ++p) {
      T m;
      const T ix = pad_coord(T(p % g.W) + fb[p], g.Win, g.pad, &m);
      const T iy = pad_coord(T(p / g.W) + fb[HW + p], g.Hin, g.pad, &m);
      int64_t off[4];
      T w[4];
      bilinear_corners(iy, ix, g.Hin, g.Win, off, w);
      for (int k = 0; k < 4; ++k) dst[off[k]] += w[k] * gp[p];  // weight 0 outside the image
    }
    return;
  }
  for (int64_t p = y0 * g.W; p < y1 * g.W; ++p) {
    const Stencil<T> st = stencil_at<T>(fb, 0, p, g);
    for (int k = 0; k < st.n; ++k) dst[st.offset[k]] += st.weight[k] * gp[p];
  }
}

// The input gradient is a scatter. With at least as many image planes as threads, each thread owns
// whole planes; otherwise the rows of a plane are split between threads that scatter into private
// copies, summed afterwards (memory: one plane per thread).
template <typename T>
void input_grad_kernel(const T* grad, const T* flow, T* gin, const WarpGeometry& g) {
  const int64_t HW = g.H * g.W, HWin = g.Hin * g.Win, planes = g.B * g.C;
  const int threads = at::get_num_threads();
  if (planes >= threads || g.H < 2 * threads) {
    at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane)
        scatter_rows(grad + plane * HW, flow + (plane / g.C) * 2 * HW, gin + plane * HWin, 0, g.H, g);
    });
    return;
  }
  std::vector<T> priv(size_t(threads) * HWin);
  for (int64_t plane = 0; plane < planes; ++plane) {
    std::fill(priv.begin(), priv.end(), T(0));
    const T* fb = flow + (plane / g.C) * 2 * HW;
    at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t)
        scatter_rows(grad + plane * HW, fb, priv.data() + t * HWin, g.H * t / threads,
                     g.H * (t + 1) / threads, g);
    });
    T* dst = gin + plane * HWin;
    at::parallel_for(0, HWin, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        T sum = T(0);
        for (int t = 0; t < threads; ++t) sum += priv[size_t(t) * HWin + p];
        dst[p] = sum;
      }
    });
  }
}

at::Tensor warp_cpu(const at::Tensor& input, const at::Tensor& flow, c10::string_view mode,
                    c10::string_view padding) {
  const WarpGeometry g = check_warp(input, flow, std::string(mode), std::string(padding));
  TORCH_CHECK_TYPE(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
                   "warp on CPU: expected float32 or float64 tensors; got ", dtype_str(input));
  at::Tensor out = at::empty({g.B, g.C, g.H, g.W}, input.options());
  if (out.numel() == 0) return out;
  TORCH_CHECK_VALUE(g.Hin > 0 && g.Win > 0, "warp: cannot sample an empty input of shape ", shape_str(input));
  const at::Tensor in = input.contiguous(), fl = flow.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "warp_cpu", [&] {
    forward_kernel<scalar_t>(in.data_ptr<scalar_t>(), fl.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), g);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> warp_backward_cpu(const at::Tensor& grad_output,
                                                     const at::Tensor& input, const at::Tensor& flow,
                                                     c10::string_view mode, c10::string_view padding,
                                                     std::array<bool, 2> output_mask) {
  const WarpGeometry g =
      check_warp_backward(grad_output, input, flow, std::string(mode), std::string(padding));
  const at::Tensor go = grad_output.to(input.scalar_type()).contiguous();
  const at::Tensor in = input.contiguous(), fl = flow.contiguous();
  at::Tensor grad_input = at::empty({0}, input.options()), grad_flow = grad_input;
  if (output_mask[0]) {
    grad_input = at::zeros_like(in);
    if (go.numel() > 0)
      AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "warp_input_grad_cpu", [&] {
        input_grad_kernel<scalar_t>(go.data_ptr<scalar_t>(), fl.data_ptr<scalar_t>(),
                                    grad_input.data_ptr<scalar_t>(), g);
      });
  }
  if (output_mask[1]) {
    grad_flow = at::zeros_like(fl);
    if (go.numel() > 0)
      AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "warp_flow_grad_cpu", [&] {
        flow_grad_kernel<scalar_t>(go.data_ptr<scalar_t>(), in.data_ptr<scalar_t>(),
                                   fl.data_ptr<scalar_t>(), grad_flow.data_ptr<scalar_t>(), g);
      });
  }
  return {grad_input, grad_flow};
}

}  // namespace

TORCH_LIBRARY_IMPL(emrestore, CPU, m) {
  m.impl("warp", &warp_cpu);
  m.impl("warp_backward", &warp_backward_cpu);
}

}  // namespace emrestore
