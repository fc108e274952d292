// Vectorised exp/erf/erfc/tanh/log. glibc's libmvec provides SIMD versions (<= 4 ulp, correct NaN/inf
// handling) that GCC only uses on its own under -ffast-math, which we must not use; so we call them
// explicitly. Tails are padded into a full vector so every element goes through the same code and a
// value's result never depends on its position in the array.
#include <cmath>
#include <cstring>
#include <immintrin.h>
#include "kernels.h"

namespace pw {

#if defined(__AVX512F__)
using vec = __m512;
constexpr int W = 16;
extern "C" {
vec _ZGVeN16v_expf(vec);
vec _ZGVeN16v_erff(vec);
vec _ZGVeN16v_erfcf(vec);
vec _ZGVeN16v_tanhf(vec);
vec _ZGVeN16v_logf(vec);
}
static inline vec vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, vec v) { _mm512_storeu_ps(p, v); }
#define PW_EXP _ZGVeN16v_expf
#define PW_ERF _ZGVeN16v_erff
#define PW_ERFC _ZGVeN16v_erfcf
#define PW_TANH _ZGVeN16v_tanhf
#define PW_LOG _ZGVeN16v_logf
#elif defined(__AVX2__)
using vec = __m256;
constexpr int W = 8;
extern "C" {
vec _ZGVdN8v_expf(vec);
vec _ZGVdN8v_erff(vec);
vec _ZGVdN8v_erfcf(vec);
vec _ZGVdN8v_tanhf(vec);
vec _ZGVdN8v_logf(vec);
}
static inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, vec v) { _mm256_storeu_ps(p, v); }
#define PW_EXP _ZGVdN8v_expf
#define PW_ERF _ZGVdN8v_erff
#define PW_ERFC _ZGVdN8v_erfcf
#define PW_TANH _ZGVdN8v_tanhf
#define PW_LOG _ZGVdN8v_logf
#endif

#ifdef PW_EXP
template <vec (*F)(vec)>
static void apply(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore(y + i, F(vload(x + i)));
  if (i < n) {
    alignas(64) float buf[W];
    std::memset(buf, 0, sizeof(buf));
    std::memcpy(buf, x + i, (n - i) * sizeof(float));
    vstore(buf, F(vload(buf)));
    std::memcpy(y + i, buf, (n - i) * sizeof(float));
  }
}
void vexp(const float* x, float* y, int64_t n) { apply<PW_EXP>(x, y, n); }
void verf(const float* x, float* y, int64_t n) { apply<PW_ERF>(x, y, n); }
void verfc(const float* x, float* y, int64_t n) { apply<PW_ERFC>(x, y, n); }
void vtanh(const float* x, float* y, int64_t n) { apply<PW_TANH>(x, y, n); }
void vlog(const float* x, float* y, int64_t n) { apply<PW_LOG>(x, y, n); }
#else
void vexp(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = std::exp(x[i]); }
void verf(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = std::erf(x[i]); }
void verfc(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = std::erfc(x[i]); }
void vtanh(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = std::tanh(x[i]); }
void vlog(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = std::log(x[i]); }
#endif

}  // namespace pw
