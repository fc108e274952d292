// Reductions over contiguous float runs with double accumulators. Without -ffast-math the compiler
// may not reorder a sum, so each helper keeps 8 independent partial sums (one vector of doubles)
// itself; the result is deterministic for a given length.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

namespace pw {

inline double combine8(const double* a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

inline double sumRun(const float* x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += x[i + k];
  double s = 0;
  for (; i < n; i++) s += x[i];
  return s + combine8(acc);
}

inline double dotRun(const float* x, const float* y, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += static_cast<double>(x[i + k]) * y[i + k];
  double s = 0;
  for (; i < n; i++) s += static_cast<double>(x[i]) * y[i];
  return s + combine8(acc);
}

// Sum of (x - mean)^2.
inline double sqDevRun(const float* x, int64_t n, double mean) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) { const double d = x[i + k] - mean; acc[k] += d * d; }
  double s = 0;
  for (; i < n; i++) { const double d = x[i] - mean; s += d * d; }
  return s + combine8(acc);
}

// Largest element (NaN propagates, as in torch.max of a row).
inline float maxRun(const float* x, int64_t n) {
  constexpr int L = 16;
  float acc[L];
  for (int k = 0; k < L; k++) acc[k] = -std::numeric_limits<float>::infinity();
  bool nan = false;
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int k = 0; k < L; k++) {
      const float v = x[i + k];
      nan |= v != v;
      acc[k] = v > acc[k] ? v : acc[k];
    }
  float m = -std::numeric_limits<float>::infinity();
  for (; i < n; i++) { nan |= x[i] != x[i]; m = x[i] > m ? x[i] : m; }
  for (int k = 0; k < L; k++) m = acc[k] > m ? acc[k] : m;
  return nan ? std::numeric_limits<float>::quiet_NaN() : m;
}

}  // namespace pw
