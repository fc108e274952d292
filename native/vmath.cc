// Vectorised exp/tanh/log. glibc's libmvec provides SIMD versions (<= 4 ulp, correct NaN/inf
// handling) that GCC only uses on its own under -ffast-math, which we must not use; so we call them
// explicitly. Tails are padded into a full vector so every element goes through the same code and a
// value's result never depends on its position in the array (nor on its neighbours: special lanes
// get the same scalar answer whichever vector they are in).
#include <cmath>
#include <immintrin.h>
#include "kernels.h"

namespace pw {

#if defined(__AVX512F__)
using vec = __m512;
constexpr int W = 16;
extern "C" {
vec _ZGVeN16v_expf(vec);
vec _ZGVeN16v_tanhf(vec);
vec _ZGVeN16v_logf(vec);
}
static inline vec vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, vec v) { _mm512_storeu_ps(p, v); }
static inline bool allIn(vec v, float lo, float hi) {
  return (_mm512_cmp_ps_mask(v, _mm512_set1_ps(lo), _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, _mm512_set1_ps(hi), _CMP_LE_OQ)) ==
         0xFFFF;
}
#define PW_EXP _ZGVeN16v_expf
#define PW_TANH _ZGVeN16v_tanhf
#define PW_LOG _ZGVeN16v_logf
#elif defined(__AVX2__)
using vec = __m256;
constexpr int W = 8;
extern "C" {
vec _ZGVdN8v_expf(vec);
vec _ZGVdN8v_tanhf(vec);
vec _ZGVdN8v_logf(vec);
}
static inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, vec v) { _mm256_storeu_ps(p, v); }
static inline bool allIn(vec v, float lo, float hi) {
  const __m256 m = _mm256_and_ps(_mm256_cmp_ps(v, _mm256_set1_ps(lo), _CMP_GE_OQ),
                                 _mm256_cmp_ps(v, _mm256_set1_ps(hi), _CMP_LE_OQ));
  return _mm256_movemask_ps(m) == 0xFF;
}
#define PW_EXP _ZGVdN8v_expf
#define PW_TANH _ZGVdN8v_tanhf
#define PW_LOG _ZGVdN8v_logf
#endif

#ifdef PW_EXP
// Runs F over x in vectors of W. Lanes outside [lo, hi] (NaN included) are outside libmvec's fast
// path: there glibc switches the whole vector to a scalar fallback that is 15-50x slower (causal
// softmax rows full of -inf crawled), so such lanes are fed a harmless 0 and their result is
// replaced by `slow(v)`.
static inline bool inRange(float v, float lo, float hi) { return v >= lo && v <= hi; }
template <vec (*F)(vec), class Slow>
static void fixBlock(const float* x, float* y, int m, float lo, float hi, Slow slow) {
  alignas(64) float in[W], out[W];
  for (int k = 0; k < W; k++) in[k] = k < m && inRange(x[k], lo, hi) ? x[k] : 0.f;
  vstore(out, F(vload(in)));
  for (int k = 0; k < m; k++) y[k] = inRange(x[k], lo, hi) ? out[k] : slow(x[k]);
}
template <vec (*F)(vec), class Slow>
static void apply(const float* x, float* y, int64_t n, float lo, float hi, Slow slow) {
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const vec v = vload(x + i);
    if (allIn(v, lo, hi)) vstore(y + i, F(v));
    else fixBlock<F>(x + i, y + i, W, lo, hi, slow);
  }
  if (i < n) fixBlock<F>(x + i, y + i, static_cast<int>(n - i), lo, hi, slow);
}
// exp is exactly 0 below -103.98 and inf above 88.73 in float; between those and the fast range
// (subnormal results, near-overflow) glibc's scalar expf gives the same correctly rounded answer.
void vexp(const float* x, float* y, int64_t n) {
  apply<PW_EXP>(x, y, n, -87.f, 88.f, [](float v) { return v < -104.f ? 0.f : std::exp(v); });
}
// exp with results below exp(-87) ~ 1.6e-38 flushed to 0: for softmax-like uses where those are
// negligible next to the row's largest term (1) and -inf (masked) entries are common; branch-free.
void vexpFlush(const float* x, float* y, int64_t n) {
#if defined(__AVX512F__)
  const vec lo = _mm512_set1_ps(-87.f), zero = _mm512_setzero_ps();
  auto one = [&](vec v) {
    const __mmask16 small = _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ);
    return _mm512_mask_blend_ps(small, PW_EXP(_mm512_mask_blend_ps(small, v, lo)), zero);  // NaN: not small
  };
#else
  const vec lo = _mm256_set1_ps(-87.f), zero = _mm256_setzero_ps();
  auto one = [&](vec v) {
    const vec small = _mm256_cmp_ps(v, lo, _CMP_LT_OQ);
    return _mm256_blendv_ps(PW_EXP(_mm256_blendv_ps(v, lo, small)), zero, small);
  };
#endif
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore(y + i, one(vload(x + i)));
  if (i < n) {
    alignas(64) float buf[W] = {};
    for (int64_t k = 0; k < n - i; k++) buf[k] = x[i + k];
    vstore(buf, one(vload(buf)));
    for (int64_t k = 0; k < n - i; k++) y[i + k] = buf[k];
  }
}
void vtanh(const float* x, float* y, int64_t n) {
  apply<PW_TANH>(x, y, n, -1e30f, 1e30f, [](float v) { return std::tanh(v); });
}
void vlog(const float* x, float* y, int64_t n) {
  apply<PW_LOG>(x, y, n, 1.17549435e-38f, 3.4e38f, [](float v) { return std::log(v); });
}
#else
void vexp(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = std::exp(x[i]); }
void vexpFlush(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] < -87.f ? 0.f : std::exp(x[i]);
}
void vtanh(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = std::tanh(x[i]); }
void vlog(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = std::log(x[i]); }
#endif

}  // namespace pw
