// Optimizer updates, following torch.optim (1.13, single-tensor path) operation by operation in
// float32 so results match PyTorch as closely as possible. Scalar hyper-parameter arithmetic is
// done in double (Python floats) and rounded to float at the point ATen would.
#include <cmath>
#include "kernels.h"

namespace pw {

void sgdStep(float* w, const float* g, float* v, int64_t n, double lr, double momentum, double dampening,
             double weightDecay, bool nesterov, bool firstStep) {
  const float wd = static_cast<float>(weightDecay), mom = static_cast<float>(momentum);
  const float omd = static_cast<float>(1.0 - dampening), negLr = static_cast<float>(-lr);
  for (int64_t i = 0; i < n; i++) {
    float d = g[i];
    if (wd != 0.f) d = d + wd * w[i];          // d_p.add(param, alpha=weight_decay)
    if (mom != 0.f) {
      const float buf = firstStep ? d : v[i] * mom + omd * d;  // buf.mul_(momentum).add_(d_p, alpha=1-dampening)
      v[i] = buf;
      d = nesterov ? d + mom * buf : buf;
    }
    w[i] = w[i] + negLr * d;                    // param.add_(d_p, alpha=-lr)
  }
}

void adamwStep(float* w, const float* g, float* m, float* v, int64_t n, double lr, double beta1, double beta2,
               double eps, double weightDecay, double step) {
  const double bc1 = 1.0 - std::pow(beta1, step);
  const double bc2 = 1.0 - std::pow(beta2, step);
  const float decay = static_cast<float>(1.0 - lr * weightDecay);
  const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2);
  const float omb1 = static_cast<float>(1.0 - beta1), omb2 = static_cast<float>(1.0 - beta2);
  const float negStepSize = static_cast<float>(-(lr / bc1));
  const float bc2Sqrt = static_cast<float>(std::sqrt(bc2)), epsf = static_cast<float>(eps);
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float wi = w[i] * decay;                        // param.mul_(1 - lr * weight_decay)
    const float mi = m[i] * b1 + omb1 * gi;               // exp_avg.mul_(beta1).add_(grad, alpha=1-beta1)
    const float vi = v[i] * b2 + omb2 * gi * gi;          // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1-beta2)
    const float denom = std::sqrt(vi) / bc2Sqrt + epsf;  // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
    m[i] = mi;
    v[i] = vi;
    w[i] = wi + negStepSize * mi / denom;                 // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

}  // namespace pw
