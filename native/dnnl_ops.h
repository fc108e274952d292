// oneDNN-backed matmul and convolution. One DnnlContext per N-API environment (= per JS thread):
// it owns its engine, stream and primitive caches, so worker threads never share oneDNN state.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <vector>
#include <dnnl.hpp>

#include "gemm_provider.h"

namespace pw {

struct ConvShape {
  int64_t n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow;
};

// How convolutions lay out their operands: `plain` runs oneDNN directly on NCHW/OIHW buffers;
// `blocked` lets oneDNN pick its preferred (blocked) layouts and reorders to/from NCHW per call;
// `auto` picks per shape by a fixed rule (never by timing, so results are reproducible).
enum class ConvLayout { Plain, Blocked, Auto };

class DnnlContext {
 public:
  DnnlContext();
  ~DnnlContext();
  void matmul(const float* a, const float* b, float* out, int64_t batch, int64_t m, int64_t k, int64_t n, bool transA,
              bool transB, bool accumulate, bool bBroadcast, const float* bias = nullptr);
  void convForward(const float* x, const float* w, const float* bias, float* y, const ConvShape& s);
  void convBackwardData(const float* dy, const float* w, float* dx, const ConvShape& s, bool accumulate);
  void convBackwardWeights(const float* x, const float* dy, float* dw, float* db, const ConvShape& s, bool accumulate);
  // Per-direction layout choice (index 0 forward, 1 backward-data, 2 backward-weights).
  void setConvLayouts(ConvLayout fwd, ConvLayout bwdData, ConvLayout bwdWeights);
  // Which provider runs matmul: the fixed rule (chooseGemm) or one for every product.
  void setGemmMode(GemmMode mode) { gemmMode_ = mode; }
  GemmMode gemmMode() const { return gemmMode_; }
  size_t cachedPrimitives() const;

  struct MatmulEntry;
  struct ConvFwdEntry;
  struct ConvBwdDataEntry;
  struct ConvBwdWeightsEntry;

 private:
  using Key = std::vector<int64_t>;
  void dnnlMatmul(const float* a, const float* b, float* out, int64_t batch, int64_t m, int64_t k, int64_t n,
                  bool transA, bool transB, bool accumulate, bool bBroadcast, const float* bias);
  GemmMode gemmMode_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  ConvLayout layout_[3];
  int64_t swapMaxM_;          // thin x W^T products with at most this many rows run transposed
  std::vector<float> swapT_;  // their transposed result
  std::map<Key, std::unique_ptr<MatmulEntry>> matmuls_;
  std::map<Key, std::unique_ptr<ConvFwdEntry>> convFwd_;
  std::map<Key, std::unique_ptr<ConvBwdDataEntry>> convBwdData_;
  std::map<Key, std::unique_ptr<ConvBwdWeightsEntry>> convBwdWeights_;
};

}  // namespace pw
