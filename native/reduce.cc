// Reductions, softmax / log-softmax and the fused cross-entropy. Sums over many elements use double
// accumulators to stay close to the (double-precision) reference backend.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include "kernels.h"
#include "runs.h"

namespace pw {

namespace {
inline bool better(float v, float best) { return v > best || (std::isnan(v) && !std::isnan(best)); }
}  // namespace

void sum(const float* x, int64_t outer, int64_t mid, int64_t inner, float* out, bool accumulate) {
  if (inner == 1) {
    for (int64_t o = 0; o < outer; o++) {
      const float s = static_cast<float>(sumRun(x + o * mid, mid));
      out[o] = accumulate ? out[o] + s : s;
    }
    return;
  }
  std::vector<double> acc(inner);
  for (int64_t o = 0; o < outer; o++) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t m = 0; m < mid; m++) {
      const float* row = x + (o * mid + m) * inner;
      for (int64_t i = 0; i < inner; i++) acc[i] += row[i];
    }
    float* dst = out + o * inner;
    if (accumulate) for (int64_t i = 0; i < inner; i++) dst[i] += static_cast<float>(acc[i]);
    else for (int64_t i = 0; i < inner; i++) dst[i] = static_cast<float>(acc[i]);
  }
}

void max(const float* x, int64_t outer, int64_t mid, int64_t inner, float* out, int32_t* argmax) {
  for (int64_t o = 0; o < outer; o++) {
    float* best = out + o * inner;
    int32_t* arg = argmax + o * inner;
    const float* base = x + o * mid * inner;
    for (int64_t i = 0; i < inner; i++) { best[i] = base[i]; arg[i] = 0; }
    for (int64_t m = 1; m < mid; m++) {
      const float* row = base + m * inner;
      for (int64_t i = 0; i < inner; i++)
        if (better(row[i], best[i])) { best[i] = row[i]; arg[i] = static_cast<int32_t>(m); }
    }
  }
}

void softmax(const float* x, int64_t rows, int64_t cols, float* out, bool log) {
  std::vector<float> e(log ? cols : 0);  // log-softmax needs x after exp (out may alias x)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    const float mx = maxRun(xr, cols);
    // A row of -inf (fully masked), +inf or NaN has no finite shift; use 0 so the result is NaN like torch.
    const float shift = std::isfinite(mx) ? mx : 0.f;
    if (log) {
      for (int64_t j = 0; j < cols; j++) e[j] = xr[j] - shift;
      vexpFlush(e.data(), e.data(), cols);
      const double lse = static_cast<double>(shift) + std::log(sumRun(e.data(), cols));
      for (int64_t j = 0; j < cols; j++) o[j] = static_cast<float>(static_cast<double>(xr[j]) - lse);
    } else {
      for (int64_t j = 0; j < cols; j++) o[j] = xr[j] - shift;
      vexpFlush(o, o, cols);
      const float s = static_cast<float>(sumRun(o, cols));
      for (int64_t j = 0; j < cols; j++) o[j] = o[j] / s;
    }
  }
}

void softmaxBackward(const float* y, const float* dy, int64_t rows, int64_t cols, float* dx, bool log,
                     bool accumulate) {
  std::vector<float> e(log ? cols : 0);
  for (int64_t r = 0; r < rows; r++) {
    const float* yr = y + r * cols;
    const float* dyr = dy + r * cols;
    float* d = dx + r * cols;
    if (log) {
      // dx = dy - softmax * sum(dy)
      const float s = static_cast<float>(sumRun(dyr, cols));
      vexpFlush(yr, e.data(), cols);
      if (accumulate) for (int64_t j = 0; j < cols; j++) d[j] += dyr[j] - e[j] * s;
      else for (int64_t j = 0; j < cols; j++) d[j] = dyr[j] - e[j] * s;
    } else {
      // dx = y * (dy - sum(dy * y))
      const float s = static_cast<float>(dotRun(dyr, yr, cols));
      if (accumulate) for (int64_t j = 0; j < cols; j++) d[j] += yr[j] * (dyr[j] - s);
      else for (int64_t j = 0; j < cols; j++) d[j] = yr[j] * (dyr[j] - s);
    }
  }
}

double crossEntropy(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, float* logProbs) {
  softmax(logits, rows, cols, logProbs, true);
  double loss = 0;
  for (int64_t r = 0; r < rows; r++) loss -= logProbs[r * cols + targets[r]];
  return loss;
}

void crossEntropyBackward(const float* logProbs, const int32_t* targets, int64_t rows, int64_t cols, float scale,
                          float* dx, bool accumulate) {
  std::vector<float> p(cols);
  for (int64_t r = 0; r < rows; r++) {
    vexpFlush(logProbs + r * cols, p.data(), cols);
    p[targets[r]] -= 1.f;
    float* d = dx + r * cols;
    if (accumulate) for (int64_t j = 0; j < cols; j++) d[j] += scale * p[j];
    else for (int64_t j = 0; j < cols; j++) d[j] = scale * p[j];
  }
}

}  // namespace pw
