// Element-wise kernels: broadcasting binary ops, unary ops and their derivatives, scalar affine,
// permute and the causal mask.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include "kernels.h"

#ifdef __AVX__
#include <immintrin.h>
#endif

namespace pw {

namespace {

struct Add { static float f(float a, float b) { return a + b; } };
struct Sub { static float f(float a, float b) { return a - b; } };
struct Mul { static float f(float a, float b) { return a * b; } };
struct Div { static float f(float a, float b) { return a / b; } };

// Innermost loop of a broadcast op: strides are 0 (broadcast) or 1 (contiguous); the four cases
// are separate loops so each one vectorises.
template <class Op>
inline void innerLoop(const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], b[i]);
  } else if (sa == 0 && sb == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(av, b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], bv);
  } else {
    const float v = Op::f(a[0], b[0]);
    for (int64_t i = 0; i < n; i++) o[i] = v;
  }
}

struct Dim { int64_t size, sa, sb; };

template <class Op>
void binaryImpl(const float* a, const int64_t* aShape, const float* b, const int64_t* bShape, float* out,
                const int64_t* outShape, int rank) {
  // Element strides of a and b aligned to the output, 0 along broadcast axes.
  std::vector<int64_t> sa(rank), sb(rank);
  int64_t accA = 1, accB = 1, total = 1;
  for (int d = rank - 1; d >= 0; d--) {
    sa[d] = aShape[d] == 1 ? 0 : accA;
    sb[d] = bShape[d] == 1 ? 0 : accB;
    accA *= aShape[d];
    accB *= bShape[d];
    total *= outShape[d];
  }
  if (total == 0) return;
  // Collapse adjacent axes that are contiguous for both operands, so the common cases (same shape,
  // scalar, row or column broadcast) become one or two loops.
  std::vector<Dim> dims;
  for (int d = 0; d < rank; d++) {
    if (outShape[d] == 1) continue;
    const int64_t s = outShape[d];
    if (!dims.empty() && dims.back().sa == sa[d] * s && dims.back().sb == sb[d] * s) {
      dims.back().size *= s;
      dims.back().sa = sa[d];
      dims.back().sb = sb[d];
    } else {
      dims.push_back({s, sa[d], sb[d]});
    }
  }
  if (dims.empty()) dims.push_back({1, 0, 0});
  const Dim inner = dims.back();
  const int outerRank = static_cast<int>(dims.size()) - 1;
  const int64_t outerCount = total / inner.size;
  std::vector<int64_t> idx(outerRank, 0);
  int64_t offA = 0, offB = 0;
  float* o = out;
  for (int64_t it = 0; it < outerCount; it++) {
    innerLoop<Op>(a + offA, inner.sa, b + offB, inner.sb, o, inner.size);
    o += inner.size;
    for (int d = outerRank - 1; d >= 0; d--) {
      idx[d]++;
      offA += dims[d].sa;
      offB += dims[d].sb;
      if (idx[d] < dims[d].size) break;
      offA -= dims[d].sa * dims[d].size;
      offB -= dims[d].sb * dims[d].size;
      idx[d] = 0;
    }
  }
}

constexpr int64_t CHUNK = 1024;  // scratch size for the vectorised transcendental helpers

// Standard normal CDF Phi(x) of m <= CHUNK values, and optionally exp(-x^2/2). Uses
// erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2), z = |x|/sqrt(2) (Numerical Recipes' erfcc,
// fractional error < 1.2e-7): one vectorised exp instead of libmvec's erfcf, about 2x faster, and
// Phi = erfc/2 for x < 0 keeps full relative precision in the tail (no 1 + erf cancellation).
// +inf gives 1, -inf 0, NaN NaN.
void normalCdf(const float* x, int64_t m, float* phi, float* gauss) {
  float t[CHUNK];
  for (int64_t i = 0; i < m; i++) {
    const float z = std::fabs(x[i]) * static_cast<float>(M_SQRT1_2);
    const float tt = 1.f / (1.f + 0.5f * z);
    float p = 0.17087277f;
    p = p * tt - 0.82215223f;
    p = p * tt + 1.48851587f;
    p = p * tt - 1.13520398f;
    p = p * tt + 0.27886807f;
    p = p * tt - 0.18628806f;
    p = p * tt + 0.09678418f;
    p = p * tt + 0.37409196f;
    p = p * tt + 1.00002368f;
    p = p * tt - 1.26551223f;
    t[i] = tt;
    phi[i] = p - z * z;
  }
  // exp(-z^2) in a loop of its own: a conditional store in the loop above keeps GCC from
  // vectorising it without AVX-512's masked stores (GELU was 2-5x slower in the AVX2 build).
  if (gauss) {
    for (int64_t i = 0; i < m; i++) {
      const float z = std::fabs(x[i]) * static_cast<float>(M_SQRT1_2);
      gauss[i] = -z * z;
    }
  }
  vexpFlush(phi, phi, m);
  if (gauss) vexpFlush(gauss, gauss, m);
  for (int64_t i = 0; i < m; i++) {
    // Both sides computed, then picked by a bit mask from x's sign: a float select (x >= 0 ? ...)
    // may trap, so without AVX-512's masks GCC kept this loop scalar (GELU was 2-5x slower in the
    // AVX2 build). The same results as x >= 0: at -0 both sides are 0.5, at NaN both are NaN.
    const float half = 0.5f * (t[i] * phi[i]);  // erfc(|x|/sqrt(2)) / 2
    const float upper = 1.f - half;
    uint32_t xb, hb, ub;
    std::memcpy(&xb, x + i, 4);
    std::memcpy(&hb, &half, 4);
    std::memcpy(&ub, &upper, 4);
    const uint32_t neg = 0u - (xb >> 31);  // all ones where x's sign bit is set
    const uint32_t r = (hb & neg) | (ub & ~neg);
    std::memcpy(phi + i, &r, 4);
  }
}

inline float reluF(float x) { return std::isnan(x) ? x : (x > 0.f ? x : 0.f); }

}  // namespace

void binary(BinOp op, const float* a, const int64_t* aShape, const float* b, const int64_t* bShape, float* out,
            const int64_t* outShape, int rank) {
  switch (op) {
    case BinOp::Add: binaryImpl<Add>(a, aShape, b, bShape, out, outShape, rank); break;
    case BinOp::Sub: binaryImpl<Sub>(a, aShape, b, bShape, out, outShape, rank); break;
    case BinOp::Mul: binaryImpl<Mul>(a, aShape, b, bShape, out, outShape, rank); break;
    case BinOp::Div: binaryImpl<Div>(a, aShape, b, bShape, out, outShape, rank); break;
  }
}

void unary(UnOp op, const float* x, float* out, int64_t n) {
  switch (op) {
    case UnOp::Relu: for (int64_t i = 0; i < n; i++) out[i] = reluF(x[i]); break;
    case UnOp::Neg: for (int64_t i = 0; i < n; i++) out[i] = -x[i]; break;
    case UnOp::Sqrt: for (int64_t i = 0; i < n; i++) out[i] = std::sqrt(x[i]); break;
    case UnOp::Exp: vexp(x, out, n); break;
    case UnOp::Log: vlog(x, out, n); break;
    case UnOp::Tanh: vtanh(x, out, n); break;
    case UnOp::Gelu: {
      // Exact GELU x * Phi(x), torch's approximate="none" (not the tanh approximation).
      float phi[CHUNK];
      for (int64_t s = 0; s < n; s += CHUNK) {
        const int64_t m = std::min(CHUNK, n - s);
        normalCdf(x + s, m, phi, nullptr);
        for (int64_t i = 0; i < m; i++) out[s + i] = x[s + i] * phi[i];
      }
      break;
    }
    case UnOp::Sigmoid: {
      float t[CHUNK];
      for (int64_t s = 0; s < n; s += CHUNK) {
        const int64_t m = std::min(CHUNK, n - s);
        for (int64_t i = 0; i < m; i++) t[i] = -x[s + i];
        vexp(t, t, m);
        for (int64_t i = 0; i < m; i++) out[s + i] = 1.f / (1.f + t[i]);
      }
      break;
    }
  }
}

namespace {
template <bool ACC, class F>
inline void store(float* dx, int64_t n, F f) {
  if (ACC) for (int64_t i = 0; i < n; i++) dx[i] += f(i);
  else for (int64_t i = 0; i < n; i++) dx[i] = f(i);
}

template <bool ACC>
void unaryBackwardImpl(UnOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  switch (op) {
    case UnOp::Relu: store<ACC>(dx, n, [&](int64_t i) { return x[i] > 0.f ? dy[i] : 0.f; }); break;
    case UnOp::Neg: store<ACC>(dx, n, [&](int64_t i) { return -dy[i]; }); break;
    case UnOp::Sqrt: store<ACC>(dx, n, [&](int64_t i) { return dy[i] / (2.f * y[i]); }); break;
    case UnOp::Exp: store<ACC>(dx, n, [&](int64_t i) { return dy[i] * y[i]; }); break;
    case UnOp::Log: store<ACC>(dx, n, [&](int64_t i) { return dy[i] / x[i]; }); break;
    case UnOp::Tanh: store<ACC>(dx, n, [&](int64_t i) { return dy[i] * (1.f - y[i] * y[i]); }); break;
    case UnOp::Sigmoid: store<ACC>(dx, n, [&](int64_t i) { return dy[i] * (1.f - y[i]) * y[i]; }); break;
    case UnOp::Gelu: {
      // d/dx = Phi(x) + x * phi(x), as torch's GeluBackward.
      const float kAlpha = static_cast<float>(M_2_SQRTPI * M_SQRT1_2 * 0.5);  // 1/sqrt(2 pi)
      float cdf[CHUNK], g[CHUNK];
      for (int64_t s = 0; s < n; s += CHUNK) {
        const int64_t m = std::min(CHUNK, n - s);
        const float* xs = x + s;
        const float* dys = dy + s;
        normalCdf(xs, m, cdf, g);
        store<ACC>(dx + s, m, [&](int64_t i) { return dys[i] * (cdf[i] + xs[i] * kAlpha * g[i]); });
      }
      break;
    }
  }
}
}  // namespace

void unaryBackward(UnOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n, bool accumulate) {
  if (accumulate) unaryBackwardImpl<true>(op, x, y, dy, dx, n);
  else unaryBackwardImpl<false>(op, x, y, dy, dx, n);
}

void axpby(float alpha, const float* x, float beta, float* out, int64_t n) {
  if (beta == 0.f) for (int64_t i = 0; i < n; i++) out[i] = alpha * x[i];
  else for (int64_t i = 0; i < n; i++) out[i] = alpha * x[i] + beta * out[i];
}

void affine(const float* x, float alpha, float beta, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * alpha + beta;
}

void causalMask(const float* x, int64_t batch, int64_t t, float value, float* out) {
  for (int64_t b = 0; b < batch; b++) {
    for (int64_t i = 0; i < t; i++) {
      const float* xr = x + (b * t + i) * t;
      float* orow = out + (b * t + i) * t;
      const int64_t keep = std::min(i + 1, t);
      if (orow != xr) for (int64_t j = 0; j < keep; j++) orow[j] = xr[j];
      for (int64_t j = keep; j < t; j++) orow[j] = value;
    }
  }
}

namespace {
template <bool ACC>
inline void put(float* o, float v) { if (ACC) *o += v; else *o = v; }

#ifdef __AVX__
// dst[i][j] = src[j][i] for an 8 x 8 block (rows ss and ds floats apart): the usual unpack /
// shuffle / lane-permute network, eight loads and eight stores instead of 64 strided moves.
inline void transpose8x8(const float* src, int64_t ss, float* dst, int64_t ds) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ss);
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; h++) {  // rows 0-3, then rows 4-7
    const __m256* tt = t + 4 * h;
    u[4 * h + 0] = _mm256_shuffle_ps(tt[0], tt[2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(tt[0], tt[2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(tt[1], tt[3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(tt[1], tt[3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int c = 0; c < 4; c++) {
    _mm256_storeu_ps(dst + c * ds, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
    _mm256_storeu_ps(dst + (c + 4) * ds, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
  }
}
#endif

template <bool ACC>
void permuteImpl(const float* x, const int64_t* shape, const int64_t* perm, int rank, float* out) {
  std::vector<int64_t> inStride(rank);
  int64_t acc = 1, total = 1;
  for (int d = rank - 1; d >= 0; d--) { inStride[d] = acc; acc *= shape[d]; }
  for (int d = 0; d < rank; d++) total *= shape[d];
  if (total == 0) return;
  // Output axes in order with the input stride each one walks; merge runs that stay contiguous.
  struct D { int64_t size, stride; };
  std::vector<D> dims;
  for (int i = 0; i < rank; i++) {
    const int64_t s = shape[perm[i]], st = inStride[perm[i]];
    if (s == 1) continue;
    if (!dims.empty() && dims.back().stride == st * s) { dims.back().size *= s; dims.back().stride = st; }
    else dims.push_back({s, st});
  }
  if (dims.empty()) { put<ACC>(out, x[0]); return; }
  const int nd = static_cast<int>(dims.size());
  if (dims.back().stride == 1 || nd == 1) {
    const D in = dims.back();
    const int64_t outer = total / in.size;
    std::vector<int64_t> idx(nd - 1, 0);
    int64_t off = 0;
    float* o = out;
    for (int64_t it = 0; it < outer; it++) {
      const float* src = x + off;
      if (in.stride == 1) for (int64_t j = 0; j < in.size; j++) put<ACC>(o + j, src[j]);
      else for (int64_t j = 0; j < in.size; j++) put<ACC>(o + j, src[j * in.stride]);
      o += in.size;
      for (int d = nd - 2; d >= 0; d--) {
        idx[d]++; off += dims[d].stride;
        if (idx[d] < dims[d].size) break;
        off -= dims[d].stride * dims[d].size; idx[d] = 0;
      }
    }
    return;
  }
  // The innermost output axis jumps in the input: walk the last two axes in tiles so reads and
  // writes both stay in cache (a blocked transpose).
  const D p = dims[nd - 2], q = dims[nd - 1];
  const int64_t outer = total / (p.size * q.size);
  std::vector<int64_t> idx(std::max(nd - 2, 0), 0);
  int64_t off = 0;
  constexpr int64_t T = 32;
  float* o = out;
  for (int64_t it = 0; it < outer; it++) {
    const float* src = x + off;
    for (int64_t i0 = 0; i0 < p.size; i0 += T) {
      const int64_t i1 = std::min(i0 + T, p.size);
      for (int64_t j0 = 0; j0 < q.size; j0 += T) {
        const int64_t j1 = std::min(j0 + T, q.size);
        for (int64_t i8 = i0; i8 < i1; i8 += 8) {
          for (int64_t j8 = j0; j8 < j1; j8 += 8) {
#ifdef __AVX__
            if (!ACC && p.stride == 1 && i8 + 8 <= i1 && j8 + 8 <= j1) {
              transpose8x8(src + j8 * q.stride + i8, q.stride, o + i8 * q.size + j8, q.size);
              continue;
            }
#endif
            for (int64_t i = i8; i < std::min(i8 + 8, i1); i++)
              for (int64_t j = j8; j < std::min(j8 + 8, j1); j++) put<ACC>(o + i * q.size + j, src[i * p.stride + j * q.stride]);
          }
        }
      }
    }
    o += p.size * q.size;
    for (int d = nd - 3; d >= 0; d--) {
      idx[d]++; off += dims[d].stride;
      if (idx[d] < dims[d].size) break;
      off -= dims[d].stride * dims[d].size; idx[d] = 0;
    }
  }
}
}  // namespace

void permute(const float* x, const int64_t* shape, const int64_t* perm, int rank, float* out, bool accumulate) {
  if (accumulate) permuteImpl<true>(x, shape, perm, rank, out);
  else permuteImpl<false>(x, shape, perm, rank, out);
}

}  // namespace pw
