// Layer, group and batch normalisation, forward and backward. Statistics and parameter-gradient
// sums use double accumulators; the per-element math is float like torch.
#include <cmath>
#include <vector>
#include "kernels.h"
#include "runs.h"

namespace pw {

namespace {
struct Stats { double mean, var; };

// Mean and biased variance of a contiguous run (two passes: stable for large means).
inline Stats stats(const float* x, int64_t n) {
  if (n == 0) return {0.0, 0.0};
  const double mean = sumRun(x, n) / static_cast<double>(n);
  return {mean, sqDevRun(x, n, mean) / static_cast<double>(n)};
}
inline float rstdOf(double var, float eps) { return static_cast<float>(1.0 / std::sqrt(var + eps)); }
}  // namespace

void layerNorm(const float* x, const float* gamma, const float* beta, int64_t rows, int64_t cols, float eps, float* out,
               float* mean, float* rstd) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    const Stats st = stats(xr, cols);
    const float mu = static_cast<float>(st.mean), rs = rstdOf(st.var, eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (int64_t j = 0; j < cols; j++) o[j] = (xr[j] - mu) * rs * gamma[j] + beta[j];
  }
}

void layerNormBackward(const float* x, const float* gamma, const float* dy, const float* mean, const float* rstd,
                       int64_t rows, int64_t cols, float* dx, float* dgamma, float* dbeta, bool accumulate) {
  std::vector<double> dg(cols, 0.0), db(cols, 0.0);
  std::vector<float> xhat(cols), g(cols);
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    const float mu = mean[r], rs = rstd[r];
    for (int64_t j = 0; j < cols; j++) {
      xhat[j] = (xr[j] - mu) * rs;
      g[j] = dyr[j] * gamma[j];
    }
    for (int64_t j = 0; j < cols; j++) {
      dg[j] += static_cast<double>(dyr[j]) * xhat[j];
      db[j] += dyr[j];
    }
    const float a = static_cast<float>(sumRun(g.data(), cols) / cols);
    const float b = static_cast<float>(dotRun(g.data(), xhat.data(), cols) / cols);
    float* d = dx + r * cols;
    if (accumulate) for (int64_t j = 0; j < cols; j++) d[j] += rs * (g[j] - a - xhat[j] * b);
    else for (int64_t j = 0; j < cols; j++) d[j] = rs * (g[j] - a - xhat[j] * b);
  }
  for (int64_t j = 0; j < cols; j++) {
    dgamma[j] += static_cast<float>(dg[j]);
    dbeta[j] += static_cast<float>(db[j]);
  }
}

void groupNorm(const float* x, const float* gamma, const float* beta, int64_t n, int64_t c, int64_t hw, int64_t groups,
               float eps, float* out, float* mean, float* rstd) {
  const int64_t cpg = c / groups;
  for (int64_t i = 0; i < n; i++) {
    for (int64_t g = 0; g < groups; g++) {
      const int64_t base = (i * c + g * cpg) * hw;
      const Stats st = stats(x + base, cpg * hw);
      const float mu = static_cast<float>(st.mean), rs = rstdOf(st.var, eps);
      mean[i * groups + g] = mu;
      rstd[i * groups + g] = rs;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ch++) {
        const float* xc = x + (i * c + ch) * hw;
        float* o = out + (i * c + ch) * hw;
        const float ga = gamma[ch], be = beta[ch];
        for (int64_t k = 0; k < hw; k++) o[k] = (xc[k] - mu) * rs * ga + be;
      }
    }
  }
}

void groupNormBackward(const float* x, const float* gamma, const float* dy, const float* mean, const float* rstd,
                       int64_t n, int64_t c, int64_t hw, int64_t groups, float* dx, float* dgamma, float* dbeta,
                       bool accumulate) {
  const int64_t cpg = c / groups;
  const double count = static_cast<double>(cpg * hw);
  std::vector<double> dg(c, 0.0), db(c, 0.0);
  std::vector<float> xh(hw);
  for (int64_t i = 0; i < n; i++) {
    for (int64_t g = 0; g < groups; g++) {
      const float mu = mean[i * groups + g], rs = rstd[i * groups + g];
      // First pass: the two group sums the input gradient needs, and the per-channel parameter sums.
      double sg = 0, sgx = 0;
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ch++) {
        const float* xc = x + (i * c + ch) * hw;
        const float* dyc = dy + (i * c + ch) * hw;
        for (int64_t k = 0; k < hw; k++) xh[k] = (xc[k] - mu) * rs;
        const double sdy = sumRun(dyc, hw), sdyx = dotRun(dyc, xh.data(), hw);
        dg[ch] += sdyx;
        db[ch] += sdy;
        sg += sdy * gamma[ch];
        sgx += sdyx * gamma[ch];
      }
      const float a = static_cast<float>(sg / count), b = static_cast<float>(sgx / count);
      for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ch++) {
        const float* xc = x + (i * c + ch) * hw;
        const float* dyc = dy + (i * c + ch) * hw;
        float* d = dx + (i * c + ch) * hw;
        const float ga = gamma[ch];
        if (accumulate) for (int64_t k = 0; k < hw; k++) d[k] += rs * (dyc[k] * ga - a - (xc[k] - mu) * rs * b);
        else for (int64_t k = 0; k < hw; k++) d[k] = rs * (dyc[k] * ga - a - (xc[k] - mu) * rs * b);
      }
    }
  }
  for (int64_t ch = 0; ch < c; ch++) {
    dgamma[ch] += static_cast<float>(dg[ch]);
    dbeta[ch] += static_cast<float>(db[ch]);
  }
}

void batchNormTrain(const float* x, const float* gamma, const float* beta, int64_t n, int64_t c, int64_t hw, float eps,
                    float* out, float* mean, float* variance, float* rstd) {
  const double count = static_cast<double>(n * hw);
  for (int64_t ch = 0; ch < c; ch++) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += sumRun(x + (i * c + ch) * hw, hw);
    const double mu = count > 0 ? s / count : 0.0;
    double q = 0;
    for (int64_t i = 0; i < n; i++) q += sqDevRun(x + (i * c + ch) * hw, hw, mu);
    const double var = count > 0 ? q / count : 0.0;
    const float muf = static_cast<float>(mu), rs = rstdOf(var, eps);
    mean[ch] = muf;
    variance[ch] = static_cast<float>(var);
    rstd[ch] = rs;
    const float ga = gamma[ch], be = beta[ch];
    for (int64_t i = 0; i < n; i++) {
      const float* xc = x + (i * c + ch) * hw;
      float* o = out + (i * c + ch) * hw;
      for (int64_t k = 0; k < hw; k++) o[k] = (xc[k] - muf) * rs * ga + be;
    }
  }
}

void batchNormInference(const float* x, const float* gamma, const float* beta, const float* mean, const float* variance,
                        int64_t n, int64_t c, int64_t hw, float eps, float* out) {
  for (int64_t ch = 0; ch < c; ch++) {
    const float mu = mean[ch], rs = rstdOf(variance[ch], eps), ga = gamma[ch], be = beta[ch];
    for (int64_t i = 0; i < n; i++) {
      const float* xc = x + (i * c + ch) * hw;
      float* o = out + (i * c + ch) * hw;
      for (int64_t k = 0; k < hw; k++) o[k] = (xc[k] - mu) * rs * ga + be;
    }
  }
}

void batchNormBackward(const float* x, const float* gamma, const float* dy, const float* mean, const float* rstd,
                       int64_t n, int64_t c, int64_t hw, float* dx, float* dgamma, float* dbeta, bool accumulate) {
  const double count = static_cast<double>(n * hw);
  std::vector<float> xh(hw);
  for (int64_t ch = 0; ch < c; ch++) {
    const float mu = mean[ch], rs = rstd[ch];
    double sdy = 0, sdyx = 0;
    for (int64_t i = 0; i < n; i++) {
      const float* xc = x + (i * c + ch) * hw;
      const float* dyc = dy + (i * c + ch) * hw;
      for (int64_t k = 0; k < hw; k++) xh[k] = (xc[k] - mu) * rs;
      sdy += sumRun(dyc, hw);
      sdyx += dotRun(dyc, xh.data(), hw);
    }
    dgamma[ch] += static_cast<float>(sdyx);
    dbeta[ch] += static_cast<float>(sdy);
    const float k1 = gamma[ch] * rs, a = static_cast<float>(sdy / count), b = static_cast<float>(sdyx / count);
    for (int64_t i = 0; i < n; i++) {
      const float* xc = x + (i * c + ch) * hw;
      const float* dyc = dy + (i * c + ch) * hw;
      float* d = dx + (i * c + ch) * hw;
      if (accumulate) for (int64_t k = 0; k < hw; k++) d[k] += k1 * (dyc[k] - a - (xc[k] - mu) * rs * b);
      else for (int64_t k = 0; k < hw; k++) d[k] = k1 * (dyc[k] - a - (xc[k] - mu) * rs * b);
    }
  }
}

}  // namespace pw
