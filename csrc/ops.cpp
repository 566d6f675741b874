// Schemas of every emrestore operator. Kernels register per device (TORCH_LIBRARY_IMPL in each op
// family's folder); autograd and fake (meta) kernels are registered from Python.
#include <torch/library.h>

TORCH_LIBRARY(emrestore, m) {
  // Adaptive separable convolution: out[b,c,y,x] = sum_ij pad(input)[b,c,y+i,x+j] * v[b,i,y,x] * h[b,j,y,x].
  m.def("sepconv(Tensor input, Tensor vertical, Tensor horizontal, str padding) -> Tensor");
  // Gradients wrt (input, vertical, horizontal); those not in output_mask come back empty.
  m.def(
      "sepconv_backward(Tensor grad_output, Tensor input, Tensor vertical, Tensor horizontal, "
      "str padding, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  // Backward warping out(p) = input(p + flow(p)), flow [B, 2, H, W] in pixels (dx, dy), sampled as
  // grid_sample(align_corners=True): mode bilinear, bicubic or nearest; padding border, zeros or
  // reflection.
  m.def("warp(Tensor input, Tensor flow, str mode, str padding) -> Tensor");
  m.def(
      "warp_backward(Tensor grad_output, Tensor input, Tensor flow, str mode, str padding, "
      "bool[2] output_mask) -> (Tensor, Tensor)");
  // Support-film folds (see csrc/fold/fold_helpers.h): vertices [B, F, P, 2], profile [B, F, P, 2]
  // (band half-width, amplitude per vertex), params [B, F, 5]. fold_warp applies them to an image
  // with the displacement computed per pixel; fold_field returns the flow [B, 2, H, W], the band
  // opacity [B, 1, H, W] and the band level [B, 1, H, W].
  m.def("fold_warp(Tensor input, Tensor vertices, Tensor profile, Tensor params) -> Tensor");
  m.def(
      "fold_field(Tensor vertices, Tensor profile, Tensor params, int height, int width) -> "
      "(Tensor, Tensor, Tensor)");
  // Straight-line Hough transform (scikit-image's convention, see csrc/hough/hough_helpers.h):
  // image [B, H, W] bool/uint8 (one vote per nonzero pixel) or float (weighted votes), angle tables
  // [T] float64; returns the accumulator [B, R, T], R = 2 ceil(sqrt(H^2 + W^2)) + 1, int32 or float.
  m.def("hough_lines(Tensor image, Tensor cos_theta, Tensor sin_theta) -> Tensor");
  // Peaks: local maxima >= threshold (broadcast to [B, R, T]), at most num_peaks per image, no two
  // within min_distance rho bins and min_angle theta bins (circular theta with mirrored rho if wrap).
  // Returns rho and theta bin indices [B, num_peaks] (-1 padded) and the count per image [B].
  m.def(
      "hough_peaks(Tensor acc, Tensor threshold, int num_peaks, int min_distance, int min_angle, "
      "bool wrap) -> (Tensor, Tensor, Tensor)");
}
