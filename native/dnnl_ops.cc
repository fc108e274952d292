// oneDNN matmul and convolution with per-shape primitive caches. Buffers from JS are wrapped
// zero-copy: cached dnnl::memory objects get the caller's pointers via set_data_handle on each call.
// Scratchpads are user-managed and owned by each cache entry, so nothing is shared between
// threads. Accumulation (out += result) uses a sum post-op where oneDNN supports one (matmul,
// reorders back to plain layout) and a temporary plus an add loop otherwise.
#include "dnnl_ops.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <omp.h>
#include <unordered_map>

namespace pw {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using Args = std::unordered_map<int, memory>;

namespace {

dnnl::primitive_attr userScratchpadAttr(bool sumPostOp = false) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (sumPostOp) {
    dnnl::post_ops po;
    po.append_sum(1.f);
    attr.set_post_ops(po);
  }
  return attr;
}

inline void* mut(const float* p) { return const_cast<float*>(p); }

void addInto(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

// One tensor operand of a primitive: the caller's plain buffer, plus (when the primitive prefers
// another layout) an owned buffer in that layout and the reorders between the two.
struct Operand {
  memory user;         // plain layout, handle = caller's pointer
  memory prim;         // what the primitive reads/writes (== user when no reorder is needed)
  memory temp;         // plain-layout temporary for accumulation without a reorder
  dnnl::reorder toPrim, toUser, toUserAcc;
  memory scratch;      // reorder scratchpad (usually empty)
  bool reorder = false;
  int64_t elems = 0;

  void initInput(const dnnl::engine& eng, const memory::desc& userMd, const memory::desc& primMd) {
    user = memory(userMd, eng, DNNL_MEMORY_NONE);
    elems = static_cast<int64_t>(userMd.get_size() / sizeof(float));
    reorder = !(userMd == primMd);
    if (reorder) {
      prim = memory(primMd, eng);
      dnnl::reorder::primitive_desc rpd(eng, userMd, eng, primMd, userScratchpadAttr());
      toPrim = dnnl::reorder(rpd);
      scratch = memory(rpd.scratchpad_desc(), eng);
    } else {
      prim = user;
    }
  }
  void initOutput(const dnnl::engine& eng, const memory::desc& userMd, const memory::desc& primMd, bool accumulate) {
    user = memory(userMd, eng, DNNL_MEMORY_NONE);
    elems = static_cast<int64_t>(userMd.get_size() / sizeof(float));
    reorder = !(userMd == primMd);
    if (reorder) {
      prim = memory(primMd, eng);
      dnnl::reorder::primitive_desc rpd(eng, primMd, eng, userMd, userScratchpadAttr(accumulate));
      (accumulate ? toUserAcc : toUser) = dnnl::reorder(rpd);
      scratch = memory(rpd.scratchpad_desc(), eng);
    } else if (accumulate) {
      temp = memory(userMd, eng);
      prim = temp;
    } else {
      prim = user;
    }
  }
  void bindInput(dnnl::stream& s, const float* p) {
    user.set_data_handle(mut(p));
    if (reorder) toPrim.execute(s, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, prim}, {DNNL_ARG_SCRATCHPAD, scratch}});
  }
  void bindOutput(float* p) { user.set_data_handle(p); }
  // After the primitive ran: move the result into the caller's buffer (adding if accumulating).
  void finishOutput(dnnl::stream& s, float* p, bool accumulate) {
    if (reorder) {
      (accumulate ? toUserAcc : toUser)
          .execute(s, {{DNNL_ARG_FROM, prim}, {DNNL_ARG_TO, user}, {DNNL_ARG_SCRATCHPAD, scratch}});
    } else if (accumulate) {
      addInto(p, static_cast<const float*>(temp.get_data_handle()), elems);
    }
  }
};

ConvLayout layoutFromEnv(const char* var, ConvLayout dflt) {
  const char* v = std::getenv(var);
  if (!v || !*v) return dflt;
  if (std::strcmp(v, "plain") == 0) return ConvLayout::Plain;
  if (std::strcmp(v, "blocked") == 0) return ConvLayout::Blocked;
  if (std::strcmp(v, "auto") == 0) return ConvLayout::Auto;
  return dflt;
}

// The auto rule, from scripts/kernel-bench.mjs on a 1-thread AVX-512 machine: blocked layouts win
// for forward (1.3-1.7x) and backward-weights (1.8-4x, most for the 1-channel first layer), but
// backward-data into fewer than 16 input channels is 4-15x slower blocked (oneDNN pads the channel
// block to 16), so that case stays plain.
bool useBlocked(ConvLayout l, int direction, const ConvShape& s) {
  if (l != ConvLayout::Auto) return l == ConvLayout::Blocked;
  return !(direction == 1 && s.c < 16);
}

struct ConvDescs {
  memory::desc src, wei, dst, bias, srcAny, weiAny, dstAny;
  memory::dims strides, padL, padR;
};
ConvDescs convDescs(const ConvShape& s) {
  ConvDescs d;
  d.src = memory::desc({s.n, s.c, s.h, s.w}, dt::f32, tag::nchw);
  d.wei = memory::desc({s.o, s.c, s.kh, s.kw}, dt::f32, tag::oihw);
  d.dst = memory::desc({s.n, s.o, s.oh, s.ow}, dt::f32, tag::nchw);
  d.bias = memory::desc({s.o}, dt::f32, tag::x);
  d.srcAny = memory::desc({s.n, s.c, s.h, s.w}, dt::f32, tag::any);
  d.weiAny = memory::desc({s.o, s.c, s.kh, s.kw}, dt::f32, tag::any);
  d.dstAny = memory::desc({s.n, s.o, s.oh, s.ow}, dt::f32, tag::any);
  d.strides = {s.sh, s.sw};
  d.padL = {s.ph, s.pw};
  // Right padding so that the output size comes out as requested (PyTorch drops leftover columns).
  d.padR = {(s.oh - 1) * s.sh + s.kh - s.h - s.ph, (s.ow - 1) * s.sw + s.kw - s.w - s.pw};
  return d;
}

dnnl::convolution_forward::primitive_desc fwdPd(const dnnl::engine& eng, const ConvDescs& d, bool blocked,
                                                bool withBias, const dnnl::primitive_attr& attr) {
  dnnl::convolution_forward::desc desc =
      withBias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                 blocked ? d.srcAny : d.src, blocked ? d.weiAny : d.wei, d.bias,
                                                 blocked ? d.dstAny : d.dst, d.strides, d.padL, d.padR)
               : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                 blocked ? d.srcAny : d.src, blocked ? d.weiAny : d.wei,
                                                 blocked ? d.dstAny : d.dst, d.strides, d.padL, d.padR);
  return dnnl::convolution_forward::primitive_desc(desc, attr, eng);
}

}  // namespace

struct DnnlContext::MatmulEntry {
  dnnl::matmul prim;
  memory src, wei, dst, bias, scratch;
};

struct DnnlContext::ConvFwdEntry {
  dnnl::convolution_forward prim;
  Operand src, wei, dst;
  memory bias, scratch;
  bool hasBias = false;
};

struct DnnlContext::ConvBwdDataEntry {
  dnnl::convolution_backward_data prim;
  Operand diffDst, wei, diffSrc;
  memory scratch;
};

struct DnnlContext::ConvBwdWeightsEntry {
  dnnl::convolution_backward_weights prim;
  Operand src, diffDst, diffWei;
  memory diffBias, biasTemp, scratch;
  bool hasBias = false;
};

DnnlContext::DnnlContext() : eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {
  // oneDNN's CPU runtime here is OpenMP: keep this thread's kernels on this thread.
  omp_set_num_threads(1);
  // Defaults chosen from scripts/kernel-bench.mjs measurements; overridable for experiments.
  layout_[0] = layoutFromEnv("PIPEWRIGHT_CONV_FWD_LAYOUT", ConvLayout::Auto);
  layout_[1] = layoutFromEnv("PIPEWRIGHT_CONV_BWD_DATA_LAYOUT", ConvLayout::Auto);
  layout_[2] = layoutFromEnv("PIPEWRIGHT_CONV_BWD_WEIGHTS_LAYOUT", ConvLayout::Auto);
  const char* swap = std::getenv("PIPEWRIGHT_MATMUL_SWAP_MAX_M");
  swapMaxM_ = swap ? std::atoll(swap) : 64;
  gemmMode_ = gemmModeFromEnv();
}

DnnlContext::~DnnlContext() = default;

void DnnlContext::setConvLayouts(ConvLayout fwd, ConvLayout bwdData, ConvLayout bwdWeights) {
  layout_[0] = fwd;
  layout_[1] = bwdData;
  layout_[2] = bwdWeights;
  convFwd_.clear();
  convBwdData_.clear();
  convBwdWeights_.clear();
}

size_t DnnlContext::cachedPrimitives() const {
  return matmuls_.size() + convFwd_.size() + convBwdData_.size() + convBwdWeights_.size();
}

void DnnlContext::matmul(const float* a, const float* b, float* out, int64_t batch, int64_t m, int64_t k, int64_t n,
                         bool transA, bool transB, bool accumulate, bool bBroadcast, const float* bias) {
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t r = 0; r < batch * m; r++) {
      float* row = out + r * n;
      if (!accumulate) std::memset(row, 0, sizeof(float) * n);
      if (bias) for (int64_t j = 0; j < n; j++) row[j] += bias[j];
    }
    return;
  }
  // Batch 1 and a shared b are the same as one big [batch*m, k] @ [k, n] product when a is not
  // transposed: fold the batch into m so oneDNN sees one large GEMM.
  if (bBroadcast && !transA && batch > 1) {
    m *= batch;
    batch = 1;
  }
  // The provider is the fixed rule's (gemm_provider.h) for the folded shape and layout, so one
  // product always runs the same kernel, on every thread.
  const GemmShape shape{batch, m, k, n, transA, transB};
  const bool blas = gemmMode_ == GemmMode::Openblas ||
                    (gemmMode_ == GemmMode::Auto && chooseGemm(gemmCpu(), shape) == GemmProvider::Openblas);
  if (blas) openblasMatmul(a, b, out, batch, m, k, n, transA, transB, accumulate, bBroadcast, bias);
  else dnnlMatmul(a, b, out, batch, m, k, n, transA, transB, accumulate, bBroadcast, bias);
}

void DnnlContext::dnnlMatmul(const float* a, const float* b, float* out, int64_t batch, int64_t m, int64_t k,
                             int64_t n, bool transA, bool transB, bool accumulate, bool bBroadcast, const float* bias) {
  // A thin product with a transposed-stored b (x W^T on a micro-batch) runs as its transpose
  // W x^T, then the small result is transposed back: oneDNN streams a large first operand far
  // better than a large second one (230 vs 146 GFLOP/s for 32 x 1024 x 1024 on this machine).
  if (batch == 1 && !transA && transB && !accumulate && m <= swapMaxM_ && n >= 4 * m) {
    if (swapT_.size() < static_cast<size_t>(m * n)) swapT_.resize(m * n);
    float* t = swapT_.data();
    dnnlMatmul(b, a, t, 1, n, k, m, false, true, false, false, nullptr);  // t [n, m]
    constexpr int64_t J = 64;  // a J x m block of t stays in L1 while it is written out row by row
    for (int64_t j0 = 0; j0 < n; j0 += J) {
      const int64_t j1 = std::min(n, j0 + J);
      for (int64_t i = 0; i < m; i++) {
        float* row = out + i * n;
        for (int64_t j = j0; j < j1; j++) row[j] = t[j * m + i] + (bias ? bias[j] : 0.f);
      }
    }
    return;
  }
  omp_set_num_threads(1);
  const bool hasBias = bias != nullptr;
  Key key{batch, m, k, n, transA, transB, accumulate, bBroadcast, hasBias};
  auto it = matmuls_.find(key);
  if (it == matmuls_.end()) {
    auto e = std::make_unique<MatmulEntry>();
    const int64_t bb = bBroadcast ? 1 : batch;
    memory::desc aMd({batch, m, k}, dt::f32, transA ? memory::dims{m * k, 1, m} : memory::dims{m * k, k, 1});
    memory::desc bMd({bb, k, n}, dt::f32, transB ? memory::dims{k * n, 1, k} : memory::dims{k * n, n, 1});
    memory::desc cMd({batch, m, n}, dt::f32, memory::dims{m * n, n, 1});
    // The bias goes into the primitive (added in its epilogue), not copied into out beforehand and
    // accumulated with a sum post-op, which re-reads all of out (about 20% slower on a 2048x256x768 GEMM).
    memory::desc biasMd({1, 1, n}, dt::f32, memory::dims{n, n, 1});
    dnnl::matmul::desc d = hasBias ? dnnl::matmul::desc(aMd, bMd, biasMd, cMd) : dnnl::matmul::desc(aMd, bMd, cMd);
    dnnl::matmul::primitive_desc pd(d, userScratchpadAttr(accumulate), eng_);
    e->prim = dnnl::matmul(pd);
    e->src = memory(aMd, eng_, DNNL_MEMORY_NONE);
    e->wei = memory(bMd, eng_, DNNL_MEMORY_NONE);
    e->dst = memory(cMd, eng_, DNNL_MEMORY_NONE);
    if (hasBias) e->bias = memory(biasMd, eng_, DNNL_MEMORY_NONE);
    e->scratch = memory(pd.scratchpad_desc(), eng_);
    it = matmuls_.emplace(std::move(key), std::move(e)).first;
  }
  MatmulEntry& e = *it->second;
  e.src.set_data_handle(mut(a));
  e.wei.set_data_handle(mut(b));
  e.dst.set_data_handle(out);
  if (hasBias) {
    e.bias.set_data_handle(mut(bias));
    e.prim.execute(strm_, {{DNNL_ARG_SRC, e.src}, {DNNL_ARG_WEIGHTS, e.wei}, {DNNL_ARG_BIAS, e.bias},
                           {DNNL_ARG_DST, e.dst}, {DNNL_ARG_SCRATCHPAD, e.scratch}});
  } else {
    e.prim.execute(strm_, {{DNNL_ARG_SRC, e.src}, {DNNL_ARG_WEIGHTS, e.wei}, {DNNL_ARG_DST, e.dst},
                           {DNNL_ARG_SCRATCHPAD, e.scratch}});
  }
  strm_.wait();
}

void DnnlContext::convForward(const float* x, const float* w, const float* bias, float* y, const ConvShape& s) {
  if (s.n == 0 || s.o == 0 || s.oh == 0 || s.ow == 0) return;
  omp_set_num_threads(1);
  const bool hasBias = bias != nullptr;
  Key key{s.n, s.c, s.h, s.w, s.o, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow, hasBias};
  auto it = convFwd_.find(key);
  if (it == convFwd_.end()) {
    auto e = std::make_unique<ConvFwdEntry>();
    const ConvDescs d = convDescs(s);
    const auto pd = fwdPd(eng_, d, useBlocked(layout_[0], 0, s), hasBias, userScratchpadAttr());
    e->prim = dnnl::convolution_forward(pd);
    e->src.initInput(eng_, d.src, pd.src_desc());
    e->wei.initInput(eng_, d.wei, pd.weights_desc());
    e->dst.initOutput(eng_, d.dst, pd.dst_desc(), false);
    e->hasBias = hasBias;
    if (hasBias) e->bias = memory(d.bias, eng_, DNNL_MEMORY_NONE);
    e->scratch = memory(pd.scratchpad_desc(), eng_);
    it = convFwd_.emplace(std::move(key), std::move(e)).first;
  }
  ConvFwdEntry& e = *it->second;
  e.src.bindInput(strm_, x);
  e.wei.bindInput(strm_, w);
  e.dst.bindOutput(y);
  Args args{{DNNL_ARG_SRC, e.src.prim}, {DNNL_ARG_WEIGHTS, e.wei.prim}, {DNNL_ARG_DST, e.dst.prim},
            {DNNL_ARG_SCRATCHPAD, e.scratch}};
  if (e.hasBias) {
    e.bias.set_data_handle(mut(bias));
    args[DNNL_ARG_BIAS] = e.bias;
  }
  e.prim.execute(strm_, args);
  e.dst.finishOutput(strm_, y, false);
  strm_.wait();
}

void DnnlContext::convBackwardData(const float* dy, const float* w, float* dx, const ConvShape& s, bool accumulate) {
  if (s.n == 0 || s.c == 0 || s.h == 0 || s.w == 0) return;
  if (s.o == 0 || s.oh == 0 || s.ow == 0) {
    if (!accumulate) std::memset(dx, 0, sizeof(float) * s.n * s.c * s.h * s.w);
    return;
  }
  omp_set_num_threads(1);
  Key key{s.n, s.c, s.h, s.w, s.o, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow, accumulate};
  auto it = convBwdData_.find(key);
  if (it == convBwdData_.end()) {
    auto e = std::make_unique<ConvBwdDataEntry>();
    const ConvDescs d = convDescs(s);
    const bool blocked = useBlocked(layout_[1], 1, s);
    const auto hint = fwdPd(eng_, d, blocked, false, userScratchpadAttr());
    dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, blocked ? d.srcAny : d.src,
                                               blocked ? d.weiAny : d.wei, blocked ? d.dstAny : d.dst, d.strides,
                                               d.padL, d.padR);
    dnnl::convolution_backward_data::primitive_desc pd(desc, userScratchpadAttr(), eng_, hint);
    e->prim = dnnl::convolution_backward_data(pd);
    e->diffDst.initInput(eng_, d.dst, pd.diff_dst_desc());
    e->wei.initInput(eng_, d.wei, pd.weights_desc());
    e->diffSrc.initOutput(eng_, d.src, pd.diff_src_desc(), accumulate);
    e->scratch = memory(pd.scratchpad_desc(), eng_);
    it = convBwdData_.emplace(std::move(key), std::move(e)).first;
  }
  ConvBwdDataEntry& e = *it->second;
  e.diffDst.bindInput(strm_, dy);
  e.wei.bindInput(strm_, w);
  e.diffSrc.bindOutput(dx);
  e.prim.execute(strm_, {{DNNL_ARG_DIFF_DST, e.diffDst.prim}, {DNNL_ARG_WEIGHTS, e.wei.prim},
                         {DNNL_ARG_DIFF_SRC, e.diffSrc.prim}, {DNNL_ARG_SCRATCHPAD, e.scratch}});
  e.diffSrc.finishOutput(strm_, dx, accumulate);
  strm_.wait();
}

void DnnlContext::convBackwardWeights(const float* x, const float* dy, float* dw, float* db, const ConvShape& s,
                                      bool accumulate) {
  if (s.o == 0 || s.c == 0 || s.kh == 0 || s.kw == 0) return;
  if (s.n == 0 || s.oh == 0 || s.ow == 0) {
    if (!accumulate) {
      std::memset(dw, 0, sizeof(float) * s.o * s.c * s.kh * s.kw);
      if (db) std::memset(db, 0, sizeof(float) * s.o);
    }
    return;
  }
  omp_set_num_threads(1);
  const bool hasBias = db != nullptr;
  Key key{s.n, s.c, s.h, s.w, s.o, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow, hasBias, accumulate};
  auto it = convBwdWeights_.find(key);
  if (it == convBwdWeights_.end()) {
    auto e = std::make_unique<ConvBwdWeightsEntry>();
    const ConvDescs d = convDescs(s);
    const bool blocked = useBlocked(layout_[2], 2, s);
    const auto hint = fwdPd(eng_, d, blocked, hasBias, userScratchpadAttr());
    const memory::desc& srcMd = blocked ? d.srcAny : d.src;
    const memory::desc& weiMd = blocked ? d.weiAny : d.wei;
    const memory::desc& dstMd = blocked ? d.dstAny : d.dst;
    dnnl::convolution_backward_weights::desc desc =
        hasBias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, srcMd, weiMd, d.bias,
                                                           dstMd, d.strides, d.padL, d.padR)
                : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, srcMd, weiMd, dstMd,
                                                           d.strides, d.padL, d.padR);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, userScratchpadAttr(), eng_, hint);
    e->prim = dnnl::convolution_backward_weights(pd);
    e->src.initInput(eng_, d.src, pd.src_desc());
    e->diffDst.initInput(eng_, d.dst, pd.diff_dst_desc());
    e->diffWei.initOutput(eng_, d.wei, pd.diff_weights_desc(), accumulate);
    e->hasBias = hasBias;
    if (hasBias) {
      e->diffBias = memory(d.bias, eng_, DNNL_MEMORY_NONE);
      if (accumulate) e->biasTemp = memory(d.bias, eng_);
    }
    e->scratch = memory(pd.scratchpad_desc(), eng_);
    it = convBwdWeights_.emplace(std::move(key), std::move(e)).first;
  }
  ConvBwdWeightsEntry& e = *it->second;
  e.src.bindInput(strm_, x);
  e.diffDst.bindInput(strm_, dy);
  e.diffWei.bindOutput(dw);
  Args args{{DNNL_ARG_SRC, e.src.prim}, {DNNL_ARG_DIFF_DST, e.diffDst.prim}, {DNNL_ARG_DIFF_WEIGHTS, e.diffWei.prim},
            {DNNL_ARG_SCRATCHPAD, e.scratch}};
  if (e.hasBias) {
    if (accumulate) args[DNNL_ARG_DIFF_BIAS] = e.biasTemp;
    else {
      e.diffBias.set_data_handle(db);
      args[DNNL_ARG_DIFF_BIAS] = e.diffBias;
    }
  }
  e.prim.execute(strm_, args);
  e.diffWei.finishOutput(strm_, dw, accumulate);
  strm_.wait();
  if (e.hasBias && accumulate) addInto(db, static_cast<const float*>(e.biasTemp.get_data_handle()), s.o);
}

}  // namespace pw
