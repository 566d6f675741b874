#pragma once
// Marks per-element helpers that both the CPU kernels (plain C++) and the CUDA kernels (nvcc) compile,
// so the CPU test-suite exercises the arithmetic that GPU users run.
#if defined(__CUDACC__)
#define EMR_HD __host__ __device__ __forceinline__
#else
#define EMR_HD inline
#endif

#ifndef __CUDA_ARCH__
#include <cmath>
namespace emrestore {
// Host code calls the float overloads (nvcc provides them for device code).
using std::ceil;
using std::copysign;
using std::floor;
using std::fmax;
using std::fmod;
using std::nearbyint;
using std::sqrt;
using std::trunc;
}  // namespace emrestore
#endif
