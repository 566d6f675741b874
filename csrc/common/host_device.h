#pragma once
// Marks per-element helpers that both the CPU kernels (plain C++) and the CUDA kernels (nvcc) compile,
// so the CPU test-suite exercises the arithmetic that GPU users run.
#if defined(__CUDACC__)
#define EMR_HD __host__ __device__ __forceinline__
#else
#define EMR_HD inline
#endif
