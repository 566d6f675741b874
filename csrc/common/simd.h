#pragma once
// Fixed-width SIMD vectors through GCC/Clang vector extensions: the widest the target compiles for
// (AVX-512, AVX or SSE), so register blocks are explicit instead of left to the auto-vectoriser.
#include <cstring>

namespace emrestore::simd {

#if defined(__AVX512F__)
constexpr int kBytes = 64;
#elif defined(__AVX__)
constexpr int kBytes = 32;
#else
constexpr int kBytes = 16;
#endif

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(kBytes)));
  static constexpr int lanes = kBytes / sizeof(T);
};

template <typename T>
using vec_t = typename Vec<T>::type;

template <typename T>
inline vec_t<T> load(const T* p) {
  vec_t<T> v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

template <typename T>
inline void store(T* p, vec_t<T> v) {
  std::memcpy(p, &v, sizeof(v));
}

}  // namespace emrestore::simd
