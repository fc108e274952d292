// Plain C++ kernels on raw float pointers (no N-API here). The binding layer (addon.cc) validates
// sizes before calling these, so they assume their buffers are large enough.
#pragma once
#include <cstdint>

namespace pw {

enum class BinOp { Add, Sub, Mul, Div };
enum class UnOp { Relu, Gelu, Tanh, Exp, Log, Neg, Sigmoid, Sqrt };

// Element-wise binary op with NumPy broadcasting; all three shapes have the same rank.
void binary(BinOp op, const float* a, const int64_t* aShape, const float* b, const int64_t* bShape, float* out,
            const int64_t* outShape, int rank);
void unary(UnOp op, const float* x, float* out, int64_t n);
void unaryBackward(UnOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n, bool accumulate);
void axpby(float alpha, const float* x, float beta, float* out, int64_t n);
void affine(const float* x, float alpha, float beta, float* out, int64_t n);

void sum(const float* x, int64_t outer, int64_t mid, int64_t inner, float* out, bool accumulate);
void max(const float* x, int64_t outer, int64_t mid, int64_t inner, float* out, int32_t* argmax);
void softmax(const float* x, int64_t rows, int64_t cols, float* out, bool log);
void softmaxBackward(const float* y, const float* dy, int64_t rows, int64_t cols, float* dx, bool log, bool accumulate);
// Returns the summed negative log-likelihood; targets were range-checked by the caller.
double crossEntropy(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, float* logProbs);
void crossEntropyBackward(const float* logProbs, const int32_t* targets, int64_t rows, int64_t cols, float scale,
                          float* dx, bool accumulate);

void layerNorm(const float* x, const float* gamma, const float* beta, int64_t rows, int64_t cols, float eps, float* out,
               float* mean, float* rstd);
void layerNormBackward(const float* x, const float* gamma, const float* dy, const float* mean, const float* rstd,
                       int64_t rows, int64_t cols, float* dx, float* dgamma, float* dbeta, bool accumulate);
void groupNorm(const float* x, const float* gamma, const float* beta, int64_t n, int64_t c, int64_t hw, int64_t groups,
               float eps, float* out, float* mean, float* rstd);
void groupNormBackward(const float* x, const float* gamma, const float* dy, const float* mean, const float* rstd,
                       int64_t n, int64_t c, int64_t hw, int64_t groups, float* dx, float* dgamma, float* dbeta,
                       bool accumulate);
void batchNormTrain(const float* x, const float* gamma, const float* beta, int64_t n, int64_t c, int64_t hw, float eps,
                    float* out, float* mean, float* variance, float* rstd);
void batchNormInference(const float* x, const float* gamma, const float* beta, const float* mean, const float* variance,
                        int64_t n, int64_t c, int64_t hw, float eps, float* out);
void batchNormBackward(const float* x, const float* gamma, const float* dy, const float* mean, const float* rstd,
                       int64_t n, int64_t c, int64_t hw, float* dx, float* dgamma, float* dbeta, bool accumulate);

struct Pool {
  int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};
void maxPool2d(const float* x, const Pool& p, float* out, int32_t* argmax);
void maxPool2dBackward(const float* dy, const int32_t* argmax, const Pool& p, float* dx, bool accumulate);
void avgPool2d(const float* x, const Pool& p, float* out);
void avgPool2dBackward(const float* dy, const Pool& p, float* dx, bool accumulate);

void gather(const float* table, const int32_t* ids, int64_t count, int64_t dim, float* out);
void scatterAdd(const float* dy, const int32_t* ids, int64_t count, int64_t dim, float* dtable);
void permute(const float* x, const int64_t* shape, const int64_t* perm, int rank, float* out, bool accumulate);
void causalMask(const float* x, int64_t batch, int64_t t, float value, float* out);

// Hyper-parameters arrive as doubles (like Python floats) and are rounded to float where ATen would.
void sgdStep(float* w, const float* g, float* v, int64_t n, double lr, double momentum, double dampening,
             double weightDecay, bool nesterov, bool firstStep);
void adamwStep(float* w, const float* g, float* m, float* v, int64_t n, double lr, double beta1, double beta2,
               double eps, double weightDecay, double step);

// Vectorised transcendental helpers (glibc libmvec where the ISA allows), used by several kernels.
void vexp(const float* x, float* y, int64_t n);
// exp with results below ~1.6e-38 flushed to 0 (fast on -inf); for softmax-like sums.
void vexpFlush(const float* x, float* y, int64_t n);
void vtanh(const float* x, float* y, int64_t n);
void vlog(const float* x, float* y, int64_t n);

}  // namespace pw
