// N-API bindings: argument checking (every buffer length is validated against the shapes, with a
// message naming the kernel) and dispatch to the kernels. Typed arrays are used in place: the
// kernels read and write the JS-owned memory directly, never a copy.
//
// The module is context-aware: each environment (main thread or worker) gets its own DnnlContext
// as instance data, created in Init and destroyed with the environment.
#include <malloc.h>
#include <napi.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "dnnl_ops.h"
#include "kernels.h"

namespace pw { void exportGemm(Napi::Env env, Napi::Object exports); }  // gemm_bindings.cc

namespace {

struct F32 { float* p; int64_t len; };
struct I32 { int32_t* p; int64_t len; };

class Call {
 public:
  Call(const Napi::CallbackInfo& info, const char* kernel) : info_(info), kernel_(kernel) {}

  [[noreturn]] void fail(const std::string& msg) const {
    throw Napi::Error::New(info_.Env(), std::string("native ") + kernel_ + ": " + msg);
  }

  F32 f32(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      fail(std::string(name) + " must be a Float32Array");
    auto a = v.As<Napi::Float32Array>();
    return {a.Data(), static_cast<int64_t>(a.ElementLength())};
  }
  F32 f32OrNull(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (v.IsNull() || v.IsUndefined()) return {nullptr, 0};
    return f32(i, name);
  }
  I32 i32(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      fail(std::string(name) + " must be an Int32Array");
    auto a = v.As<Napi::Int32Array>();
    return {a.Data(), static_cast<int64_t>(a.ElementLength())};
  }
  double num(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) fail(std::string(name) + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  // A non-negative integer size.
  int64_t dim(size_t i, const char* name) const { return toDim(info_[i], name); }
  bool flag(size_t i) const {
    const Napi::Value v = info_[i];
    return !v.IsUndefined() && !v.IsNull() && v.ToBoolean().Value();
  }
  std::string str(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsString()) fail(std::string(name) + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  }
  std::vector<int64_t> dims(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsArray()) fail(std::string(name) + " must be an array of sizes");
    auto a = v.As<Napi::Array>();
    std::vector<int64_t> out(a.Length());
    for (uint32_t j = 0; j < a.Length(); j++) out[j] = toDim(a.Get(j), name);
    return out;
  }
  int64_t field(size_t i, const char* key) const {
    const Napi::Value v = info_[i];
    if (!v.IsObject()) fail("parameter object expected");
    return toDim(v.As<Napi::Object>().Get(key), key);
  }
  void need(int64_t len, int64_t expected, const char* name, const std::string& why) const {
    if (len != expected)
      fail(std::string(name) + " has " + std::to_string(len) + " elements but " + why + " needs " +
           std::to_string(expected));
  }

 private:
  int64_t toDim(const Napi::Value& v, const char* name) const {
    if (!v.IsNumber()) fail(std::string(name) + " must be a non-negative integer");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > 9.0e15)
      fail(std::string(name) + " must be a non-negative integer, got " + std::to_string(d));
    return static_cast<int64_t>(d);
  }
  const Napi::CallbackInfo& info_;
  const char* kernel_;
};

std::string shapeStr(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}
std::string dimsStr(std::initializer_list<int64_t> s) { return shapeStr(std::vector<int64_t>(s)); }

pw::DnnlContext& dnnlCtx(const Napi::Env& env) { return *env.GetInstanceData<pw::DnnlContext>(); }

pw::UnOp unOp(const Call& c, const std::string& s) {
  if (s == "relu") return pw::UnOp::Relu;
  if (s == "gelu") return pw::UnOp::Gelu;
  if (s == "tanh") return pw::UnOp::Tanh;
  if (s == "exp") return pw::UnOp::Exp;
  if (s == "log") return pw::UnOp::Log;
  if (s == "neg") return pw::UnOp::Neg;
  if (s == "sigmoid") return pw::UnOp::Sigmoid;
  if (s == "sqrt") return pw::UnOp::Sqrt;
  c.fail("unknown unary op '" + s + "'; valid: relu, gelu, tanh, exp, log, neg, sigmoid, sqrt");
}
pw::BinOp binOp(const Call& c, const std::string& s) {
  if (s == "add") return pw::BinOp::Add;
  if (s == "sub") return pw::BinOp::Sub;
  if (s == "mul") return pw::BinOp::Mul;
  if (s == "div") return pw::BinOp::Div;
  c.fail("unknown binary op '" + s + "'; valid: add, sub, mul, div");
}

pw::ConvShape convShape(const Call& c, size_t i) {
  pw::ConvShape s{c.field(i, "n"), c.field(i, "c"), c.field(i, "h"), c.field(i, "w"), c.field(i, "o"),
                  c.field(i, "kh"), c.field(i, "kw"), c.field(i, "sh"), c.field(i, "sw"), c.field(i, "ph"),
                  c.field(i, "pw"), c.field(i, "oh"), c.field(i, "ow")};
  if (s.sh < 1 || s.sw < 1) c.fail("stride must be >= 1, got " + dimsStr({s.sh, s.sw}));
  if (s.kh < 1 || s.kw < 1) c.fail("kernel size must be >= 1, got " + dimsStr({s.kh, s.kw}));
  const int64_t eh = s.h + 2 * s.ph - s.kh, ew = s.w + 2 * s.pw - s.kw;
  if (eh < 0 || ew < 0 || s.oh != eh / s.sh + 1 || s.ow != ew / s.sw + 1)
    c.fail("output size " + dimsStr({s.oh, s.ow}) + " does not match input " + dimsStr({s.h, s.w}) + ", kernel " +
           dimsStr({s.kh, s.kw}) + ", stride " + dimsStr({s.sh, s.sw}) + ", padding " + dimsStr({s.ph, s.pw}));
  return s;
}

pw::Pool poolShape(const Call& c, size_t i) {
  pw::Pool p{c.field(i, "n"), c.field(i, "c"), c.field(i, "h"), c.field(i, "w"), c.field(i, "kh"), c.field(i, "kw"),
             c.field(i, "sh"), c.field(i, "sw"), c.field(i, "ph"), c.field(i, "pw"), c.field(i, "oh"),
             c.field(i, "ow")};
  if (p.sh < 1 || p.sw < 1 || p.kh < 1 || p.kw < 1) c.fail("kernel and stride must be >= 1");
  if (2 * p.ph > p.kh || 2 * p.pw > p.kw)
    c.fail("padding " + dimsStr({p.ph, p.pw}) + " must be at most half the kernel " + dimsStr({p.kh, p.kw}));
  const int64_t eh = p.h + 2 * p.ph - p.kh, ew = p.w + 2 * p.pw - p.kw;
  if (eh < 0 || ew < 0 || p.oh != eh / p.sh + 1 || p.ow != ew / p.sw + 1)
    c.fail("output size " + dimsStr({p.oh, p.ow}) + " does not match input " + dimsStr({p.h, p.w}) + ", kernel " +
           dimsStr({p.kh, p.kw}) + ", stride " + dimsStr({p.sh, p.sw}) + ", padding " + dimsStr({p.ph, p.pw}));
  return p;
}

void checkIds(const Call& c, const I32& ids, int64_t limit, const char* name) {
  for (int64_t i = 0; i < ids.len; i++)
    if (ids.p[i] < 0 || ids.p[i] >= limit)
      c.fail(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(ids.p[i]) + " is out of range [0, " +
             std::to_string(limit) + ")");
}

// Every binding: C++ exceptions (oneDNN errors included) become JS errors naming the kernel.
#define KERNEL(NAME)                                                   \
  Napi::Value NAME(const Napi::CallbackInfo& info) {                   \
    Call c(info, #NAME);                                               \
    try {
#define END_KERNEL(RESULT)                                    \
      return RESULT;                                          \
    } catch (const Napi::Error&) {                            \
      throw;                                                  \
    } catch (const std::exception& e) {                       \
      c.fail(e.what());                                       \
    }                                                         \
  }

KERNEL(matmul)
  const F32 a = c.f32(0, "a"), b = c.f32(1, "b"), out = c.f32(2, "out");
  const int64_t batch = c.dim(3, "batch"), m = c.dim(4, "m"), k = c.dim(5, "k"), n = c.dim(6, "n");
  const bool ta = c.flag(7), tb = c.flag(8), acc = c.flag(9), bb = c.flag(10);
  const std::string sz = "batch=" + std::to_string(batch) + " m=" + std::to_string(m) + " k=" + std::to_string(k) +
                         " n=" + std::to_string(n);
  c.need(a.len, batch * m * k, "a", sz);
  c.need(b.len, (bb ? 1 : batch) * k * n, "b", sz + (bb ? " (b broadcast)" : ""));
  c.need(out.len, batch * m * n, "out", sz);
  const F32 bias = info.Length() > 11 ? c.f32OrNull(11, "bias") : F32{nullptr, 0};
  if (bias.p) c.need(bias.len, n, "bias", sz);
  dnnlCtx(info.Env()).matmul(a.p, b.p, out.p, batch, m, k, n, ta, tb, acc, bb, bias.p);
END_KERNEL(info.Env().Undefined())

KERNEL(conv2d)
  const F32 x = c.f32(0, "x"), w = c.f32(1, "w"), bias = c.f32OrNull(2, "bias"), out = c.f32(3, "out");
  const pw::ConvShape s = convShape(c, 4);
  c.need(x.len, s.n * s.c * s.h * s.w, "x", "input " + dimsStr({s.n, s.c, s.h, s.w}));
  c.need(w.len, s.o * s.c * s.kh * s.kw, "w", "weight " + dimsStr({s.o, s.c, s.kh, s.kw}));
  if (bias.p) c.need(bias.len, s.o, "bias", "o=" + std::to_string(s.o));
  c.need(out.len, s.n * s.o * s.oh * s.ow, "out", "output " + dimsStr({s.n, s.o, s.oh, s.ow}));
  dnnlCtx(info.Env()).convForward(x.p, w.p, bias.p, out.p, s);
END_KERNEL(info.Env().Undefined())

KERNEL(conv2dBackwardData)
  const F32 dy = c.f32(0, "dy"), w = c.f32(1, "w"), dx = c.f32(2, "dx");
  const pw::ConvShape s = convShape(c, 3);
  c.need(dy.len, s.n * s.o * s.oh * s.ow, "dy", "output " + dimsStr({s.n, s.o, s.oh, s.ow}));
  c.need(w.len, s.o * s.c * s.kh * s.kw, "w", "weight " + dimsStr({s.o, s.c, s.kh, s.kw}));
  c.need(dx.len, s.n * s.c * s.h * s.w, "dx", "input " + dimsStr({s.n, s.c, s.h, s.w}));
  dnnlCtx(info.Env()).convBackwardData(dy.p, w.p, dx.p, s, c.flag(4));
END_KERNEL(info.Env().Undefined())

KERNEL(conv2dBackwardWeights)
  const F32 x = c.f32(0, "x"), dy = c.f32(1, "dy"), dw = c.f32(2, "dw"), db = c.f32OrNull(3, "db");
  const pw::ConvShape s = convShape(c, 4);
  c.need(x.len, s.n * s.c * s.h * s.w, "x", "input " + dimsStr({s.n, s.c, s.h, s.w}));
  c.need(dy.len, s.n * s.o * s.oh * s.ow, "dy", "output " + dimsStr({s.n, s.o, s.oh, s.ow}));
  c.need(dw.len, s.o * s.c * s.kh * s.kw, "dw", "weight " + dimsStr({s.o, s.c, s.kh, s.kw}));
  if (db.p) c.need(db.len, s.o, "db", "o=" + std::to_string(s.o));
  dnnlCtx(info.Env()).convBackwardWeights(x.p, dy.p, dw.p, db.p, s, c.flag(5));
END_KERNEL(info.Env().Undefined())

KERNEL(binary)
  const pw::BinOp op = binOp(c, c.str(0, "op"));
  const F32 a = c.f32(1, "a");
  const std::vector<int64_t> as = c.dims(2, "aShape");
  const F32 b = c.f32(3, "b");
  const std::vector<int64_t> bs = c.dims(4, "bShape");
  const F32 out = c.f32(5, "out");
  const std::vector<int64_t> os = c.dims(6, "outShape");
  if (as.size() != os.size() || bs.size() != os.size())
    c.fail("shapes " + shapeStr(as) + ", " + shapeStr(bs) + " and " + shapeStr(os) + " must have the same rank");
  int64_t na = 1, nb = 1, no = 1;
  for (size_t d = 0; d < os.size(); d++) {
    if ((as[d] != os[d] && as[d] != 1) || (bs[d] != os[d] && bs[d] != 1))
      c.fail("shapes " + shapeStr(as) + " and " + shapeStr(bs) + " do not broadcast to " + shapeStr(os));
    na *= as[d]; nb *= bs[d]; no *= os[d];
  }
  c.need(a.len, na, "a", "shape " + shapeStr(as));
  c.need(b.len, nb, "b", "shape " + shapeStr(bs));
  c.need(out.len, no, "out", "shape " + shapeStr(os));
  pw::binary(op, a.p, as.data(), b.p, bs.data(), out.p, os.data(), static_cast<int>(os.size()));
END_KERNEL(info.Env().Undefined())

KERNEL(unary)
  const pw::UnOp op = unOp(c, c.str(0, "op"));
  const F32 x = c.f32(1, "x"), out = c.f32(2, "out");
  c.need(out.len, x.len, "out", "x");
  pw::unary(op, x.p, out.p, x.len);
END_KERNEL(info.Env().Undefined())

KERNEL(unaryBackward)
  const pw::UnOp op = unOp(c, c.str(0, "op"));
  const F32 x = c.f32(1, "x"), y = c.f32(2, "y"), dy = c.f32(3, "dy"), dx = c.f32(4, "dx");
  c.need(y.len, x.len, "y", "x");
  c.need(dy.len, x.len, "dy", "x");
  c.need(dx.len, x.len, "dx", "x");
  pw::unaryBackward(op, x.p, y.p, dy.p, dx.p, x.len, c.flag(5));
END_KERNEL(info.Env().Undefined())

KERNEL(axpby)
  const double alpha = c.num(0, "alpha");
  const F32 x = c.f32(1, "x");
  const double beta = c.num(2, "beta");
  const F32 out = c.f32(3, "out");
  c.need(out.len, x.len, "out", "x");
  pw::axpby(static_cast<float>(alpha), x.p, static_cast<float>(beta), out.p, x.len);
END_KERNEL(info.Env().Undefined())

KERNEL(affine)
  const F32 x = c.f32(0, "x");
  const double alpha = c.num(1, "alpha"), beta = c.num(2, "beta");
  const F32 out = c.f32(3, "out");
  c.need(out.len, x.len, "out", "x");
  pw::affine(x.p, static_cast<float>(alpha), static_cast<float>(beta), out.p, x.len);
END_KERNEL(info.Env().Undefined())

KERNEL(sum)
  const F32 x = c.f32(0, "x");
  const int64_t outer = c.dim(1, "outer"), mid = c.dim(2, "mid"), inner = c.dim(3, "inner");
  const F32 out = c.f32(4, "out");
  const std::string sz = "[outer, mid, inner] = " + dimsStr({outer, mid, inner});
  c.need(x.len, outer * mid * inner, "x", sz);
  c.need(out.len, outer * inner, "out", sz);
  pw::sum(x.p, outer, mid, inner, out.p, c.flag(5));
END_KERNEL(info.Env().Undefined())

KERNEL(max)
  const F32 x = c.f32(0, "x");
  const int64_t outer = c.dim(1, "outer"), mid = c.dim(2, "mid"), inner = c.dim(3, "inner");
  const F32 out = c.f32(4, "out");
  const I32 arg = c.i32(5, "argmax");
  const std::string sz = "[outer, mid, inner] = " + dimsStr({outer, mid, inner});
  if (mid < 1 && outer * inner > 0) c.fail("cannot take the max over an empty axis: " + sz);
  c.need(x.len, outer * mid * inner, "x", sz);
  c.need(out.len, outer * inner, "out", sz);
  c.need(arg.len, outer * inner, "argmax", sz);
  pw::max(x.p, outer, mid, inner, out.p, arg.p);
END_KERNEL(info.Env().Undefined())

KERNEL(softmax)
  const F32 x = c.f32(0, "x");
  const int64_t rows = c.dim(1, "rows"), cols = c.dim(2, "cols");
  const F32 out = c.f32(3, "out");
  const std::string sz = "[rows, cols] = " + dimsStr({rows, cols});
  c.need(x.len, rows * cols, "x", sz);
  c.need(out.len, rows * cols, "out", sz);
  pw::softmax(x.p, rows, cols, out.p, c.flag(4));
END_KERNEL(info.Env().Undefined())

KERNEL(softmaxBackward)
  const F32 y = c.f32(0, "y"), dy = c.f32(1, "dy");
  const int64_t rows = c.dim(2, "rows"), cols = c.dim(3, "cols");
  const F32 dx = c.f32(4, "dx");
  const std::string sz = "[rows, cols] = " + dimsStr({rows, cols});
  c.need(y.len, rows * cols, "y", sz);
  c.need(dy.len, rows * cols, "dy", sz);
  c.need(dx.len, rows * cols, "dx", sz);
  pw::softmaxBackward(y.p, dy.p, rows, cols, dx.p, c.flag(5), c.flag(6));
END_KERNEL(info.Env().Undefined())

KERNEL(crossEntropy)
  const F32 logits = c.f32(0, "logits");
  const I32 t = c.i32(1, "targets");
  const int64_t rows = c.dim(2, "rows"), cols = c.dim(3, "cols");
  const F32 lp = c.f32(4, "logProbs");
  const std::string sz = "[rows, cols] = " + dimsStr({rows, cols});
  c.need(logits.len, rows * cols, "logits", sz);
  c.need(t.len, rows, "targets", sz);
  c.need(lp.len, rows * cols, "logProbs", sz);
  checkIds(c, t, cols, "targets");
  const double loss = pw::crossEntropy(logits.p, t.p, rows, cols, lp.p);
END_KERNEL(Napi::Number::New(info.Env(), loss))

KERNEL(crossEntropyBackward)
  const F32 lp = c.f32(0, "logProbs");
  const I32 t = c.i32(1, "targets");
  const int64_t rows = c.dim(2, "rows"), cols = c.dim(3, "cols");
  const double scale = c.num(4, "scale");
  const F32 dx = c.f32(5, "dx");
  const std::string sz = "[rows, cols] = " + dimsStr({rows, cols});
  c.need(lp.len, rows * cols, "logProbs", sz);
  c.need(t.len, rows, "targets", sz);
  c.need(dx.len, rows * cols, "dx", sz);
  checkIds(c, t, cols, "targets");
  pw::crossEntropyBackward(lp.p, t.p, rows, cols, static_cast<float>(scale), dx.p, c.flag(6));
END_KERNEL(info.Env().Undefined())

KERNEL(layerNorm)
  const F32 x = c.f32(0, "x"), g = c.f32(1, "gamma"), b = c.f32(2, "beta");
  const int64_t rows = c.dim(3, "rows"), cols = c.dim(4, "cols");
  const double eps = c.num(5, "eps");
  const F32 out = c.f32(6, "out"), mean = c.f32(7, "mean"), rstd = c.f32(8, "rstd");
  const std::string sz = "[rows, cols] = " + dimsStr({rows, cols});
  c.need(x.len, rows * cols, "x", sz);
  c.need(g.len, cols, "gamma", sz);
  c.need(b.len, cols, "beta", sz);
  c.need(out.len, rows * cols, "out", sz);
  c.need(mean.len, rows, "mean", sz);
  c.need(rstd.len, rows, "rstd", sz);
  pw::layerNorm(x.p, g.p, b.p, rows, cols, static_cast<float>(eps), out.p, mean.p, rstd.p);
END_KERNEL(info.Env().Undefined())

KERNEL(layerNormBackward)
  const F32 x = c.f32(0, "x"), g = c.f32(1, "gamma"), dy = c.f32(2, "dy"), mean = c.f32(3, "mean"),
            rstd = c.f32(4, "rstd");
  const int64_t rows = c.dim(5, "rows"), cols = c.dim(6, "cols");
  const F32 dx = c.f32(7, "dx"), dg = c.f32(8, "dgamma"), db = c.f32(9, "dbeta");
  const std::string sz = "[rows, cols] = " + dimsStr({rows, cols});
  c.need(x.len, rows * cols, "x", sz);
  c.need(g.len, cols, "gamma", sz);
  c.need(dy.len, rows * cols, "dy", sz);
  c.need(mean.len, rows, "mean", sz);
  c.need(rstd.len, rows, "rstd", sz);
  c.need(dx.len, rows * cols, "dx", sz);
  c.need(dg.len, cols, "dgamma", sz);
  c.need(db.len, cols, "dbeta", sz);
  pw::layerNormBackward(x.p, g.p, dy.p, mean.p, rstd.p, rows, cols, dx.p, dg.p, db.p, c.flag(10));
END_KERNEL(info.Env().Undefined())

void checkGroups(const Call& c, int64_t ch, int64_t groups) {
  if (groups < 1 || ch % groups != 0)
    c.fail("groups=" + std::to_string(groups) + " must be >= 1 and divide the channel count " + std::to_string(ch));
}

KERNEL(groupNorm)
  const F32 x = c.f32(0, "x"), g = c.f32(1, "gamma"), b = c.f32(2, "beta");
  const int64_t n = c.dim(3, "n"), ch = c.dim(4, "c"), hw = c.dim(5, "hw"), groups = c.dim(6, "groups");
  const double eps = c.num(7, "eps");
  const F32 out = c.f32(8, "out"), mean = c.f32(9, "mean"), rstd = c.f32(10, "rstd");
  checkGroups(c, ch, groups);
  const std::string sz = "[n, c, hw] = " + dimsStr({n, ch, hw}) + ", groups=" + std::to_string(groups);
  c.need(x.len, n * ch * hw, "x", sz);
  c.need(g.len, ch, "gamma", sz);
  c.need(b.len, ch, "beta", sz);
  c.need(out.len, n * ch * hw, "out", sz);
  c.need(mean.len, n * groups, "mean", sz);
  c.need(rstd.len, n * groups, "rstd", sz);
  pw::groupNorm(x.p, g.p, b.p, n, ch, hw, groups, static_cast<float>(eps), out.p, mean.p, rstd.p);
END_KERNEL(info.Env().Undefined())

KERNEL(groupNormBackward)
  const F32 x = c.f32(0, "x"), g = c.f32(1, "gamma"), dy = c.f32(2, "dy"), mean = c.f32(3, "mean"),
            rstd = c.f32(4, "rstd");
  const int64_t n = c.dim(5, "n"), ch = c.dim(6, "c"), hw = c.dim(7, "hw"), groups = c.dim(8, "groups");
  const F32 dx = c.f32(9, "dx"), dg = c.f32(10, "dgamma"), db = c.f32(11, "dbeta");
  checkGroups(c, ch, groups);
  const std::string sz = "[n, c, hw] = " + dimsStr({n, ch, hw}) + ", groups=" + std::to_string(groups);
  c.need(x.len, n * ch * hw, "x", sz);
  c.need(g.len, ch, "gamma", sz);
  c.need(dy.len, n * ch * hw, "dy", sz);
  c.need(mean.len, n * groups, "mean", sz);
  c.need(rstd.len, n * groups, "rstd", sz);
  c.need(dx.len, n * ch * hw, "dx", sz);
  c.need(dg.len, ch, "dgamma", sz);
  c.need(db.len, ch, "dbeta", sz);
  pw::groupNormBackward(x.p, g.p, dy.p, mean.p, rstd.p, n, ch, hw, groups, dx.p, dg.p, db.p, c.flag(12));
END_KERNEL(info.Env().Undefined())

KERNEL(batchNormTrain)
  const F32 x = c.f32(0, "x"), g = c.f32(1, "gamma"), b = c.f32(2, "beta");
  const int64_t n = c.dim(3, "n"), ch = c.dim(4, "c"), hw = c.dim(5, "hw");
  const double eps = c.num(6, "eps");
  const F32 out = c.f32(7, "out"), mean = c.f32(8, "mean"), var = c.f32(9, "variance"), rstd = c.f32(10, "rstd");
  const std::string sz = "[n, c, hw] = " + dimsStr({n, ch, hw});
  c.need(x.len, n * ch * hw, "x", sz);
  c.need(g.len, ch, "gamma", sz);
  c.need(b.len, ch, "beta", sz);
  c.need(out.len, n * ch * hw, "out", sz);
  c.need(mean.len, ch, "mean", sz);
  c.need(var.len, ch, "variance", sz);
  c.need(rstd.len, ch, "rstd", sz);
  pw::batchNormTrain(x.p, g.p, b.p, n, ch, hw, static_cast<float>(eps), out.p, mean.p, var.p, rstd.p);
END_KERNEL(info.Env().Undefined())

KERNEL(batchNormInference)
  const F32 x = c.f32(0, "x"), g = c.f32(1, "gamma"), b = c.f32(2, "beta"), mean = c.f32(3, "mean"),
            var = c.f32(4, "variance");
  const int64_t n = c.dim(5, "n"), ch = c.dim(6, "c"), hw = c.dim(7, "hw");
  const double eps = c.num(8, "eps");
  const F32 out = c.f32(9, "out");
  const std::string sz = "[n, c, hw] = " + dimsStr({n, ch, hw});
  c.need(x.len, n * ch * hw, "x", sz);
  c.need(g.len, ch, "gamma", sz);
  c.need(b.len, ch, "beta", sz);
  c.need(mean.len, ch, "mean", sz);
  c.need(var.len, ch, "variance", sz);
  c.need(out.len, n * ch * hw, "out", sz);
  pw::batchNormInference(x.p, g.p, b.p, mean.p, var.p, n, ch, hw, static_cast<float>(eps), out.p);
END_KERNEL(info.Env().Undefined())

KERNEL(batchNormBackward)
  const F32 x = c.f32(0, "x"), g = c.f32(1, "gamma"), dy = c.f32(2, "dy"), mean = c.f32(3, "mean"),
            rstd = c.f32(4, "rstd");
  const int64_t n = c.dim(5, "n"), ch = c.dim(6, "c"), hw = c.dim(7, "hw");
  const F32 dx = c.f32(8, "dx"), dg = c.f32(9, "dgamma"), db = c.f32(10, "dbeta");
  const std::string sz = "[n, c, hw] = " + dimsStr({n, ch, hw});
  c.need(x.len, n * ch * hw, "x", sz);
  c.need(g.len, ch, "gamma", sz);
  c.need(dy.len, n * ch * hw, "dy", sz);
  c.need(mean.len, ch, "mean", sz);
  c.need(rstd.len, ch, "rstd", sz);
  c.need(dx.len, n * ch * hw, "dx", sz);
  c.need(dg.len, ch, "dgamma", sz);
  c.need(db.len, ch, "dbeta", sz);
  pw::batchNormBackward(x.p, g.p, dy.p, mean.p, rstd.p, n, ch, hw, dx.p, dg.p, db.p, c.flag(11));
END_KERNEL(info.Env().Undefined())

std::string poolStr(const pw::Pool& p) {
  return "input " + dimsStr({p.n, p.c, p.h, p.w}) + " -> output " + dimsStr({p.n, p.c, p.oh, p.ow});
}

KERNEL(maxPool2d)
  const F32 x = c.f32(0, "x");
  const pw::Pool p = poolShape(c, 1);
  const F32 out = c.f32(2, "out");
  const I32 arg = c.i32(3, "argmax");
  c.need(x.len, p.n * p.c * p.h * p.w, "x", poolStr(p));
  c.need(out.len, p.n * p.c * p.oh * p.ow, "out", poolStr(p));
  c.need(arg.len, p.n * p.c * p.oh * p.ow, "argmax", poolStr(p));
  pw::maxPool2d(x.p, p, out.p, arg.p);
END_KERNEL(info.Env().Undefined())

KERNEL(maxPool2dBackward)
  const F32 dy = c.f32(0, "dy");
  const I32 arg = c.i32(1, "argmax");
  const pw::Pool p = poolShape(c, 2);
  const F32 dx = c.f32(3, "dx");
  c.need(dy.len, p.n * p.c * p.oh * p.ow, "dy", poolStr(p));
  c.need(arg.len, p.n * p.c * p.oh * p.ow, "argmax", poolStr(p));
  c.need(dx.len, p.n * p.c * p.h * p.w, "dx", poolStr(p));
  for (int64_t i = 0; i < arg.len; i++)
    if (arg.p[i] < -1 || arg.p[i] >= p.h * p.w)
      c.fail("argmax[" + std::to_string(i) + "] = " + std::to_string(arg.p[i]) + " is not an offset in a " +
             std::to_string(p.h) + "x" + std::to_string(p.w) + " plane");
  pw::maxPool2dBackward(dy.p, arg.p, p, dx.p, c.flag(4));
END_KERNEL(info.Env().Undefined())

KERNEL(avgPool2d)
  const F32 x = c.f32(0, "x");
  const pw::Pool p = poolShape(c, 1);
  const F32 out = c.f32(2, "out");
  c.need(x.len, p.n * p.c * p.h * p.w, "x", poolStr(p));
  c.need(out.len, p.n * p.c * p.oh * p.ow, "out", poolStr(p));
  pw::avgPool2d(x.p, p, out.p);
END_KERNEL(info.Env().Undefined())

KERNEL(avgPool2dBackward)
  const F32 dy = c.f32(0, "dy");
  const pw::Pool p = poolShape(c, 1);
  const F32 dx = c.f32(2, "dx");
  c.need(dy.len, p.n * p.c * p.oh * p.ow, "dy", poolStr(p));
  c.need(dx.len, p.n * p.c * p.h * p.w, "dx", poolStr(p));
  pw::avgPool2dBackward(dy.p, p, dx.p, c.flag(3));
END_KERNEL(info.Env().Undefined())

KERNEL(gather)
  const F32 table = c.f32(0, "table");
  const I32 ids = c.i32(1, "ids");
  const int64_t dim = c.dim(2, "dim");
  const F32 out = c.f32(3, "out");
  if (dim < 1 || table.len % dim != 0)
    c.fail("table has " + std::to_string(table.len) + " elements, not a multiple of dim=" + std::to_string(dim));
  c.need(out.len, ids.len * dim, "out", std::to_string(ids.len) + " ids of dim " + std::to_string(dim));
  checkIds(c, ids, table.len / dim, "ids");
  pw::gather(table.p, ids.p, ids.len, dim, out.p);
END_KERNEL(info.Env().Undefined())

KERNEL(scatterAdd)
  const F32 dy = c.f32(0, "dy");
  const I32 ids = c.i32(1, "ids");
  const int64_t dim = c.dim(2, "dim");
  const F32 dt = c.f32(3, "dtable");
  if (dim < 1 || dt.len % dim != 0)
    c.fail("dtable has " + std::to_string(dt.len) + " elements, not a multiple of dim=" + std::to_string(dim));
  c.need(dy.len, ids.len * dim, "dy", std::to_string(ids.len) + " ids of dim " + std::to_string(dim));
  checkIds(c, ids, dt.len / dim, "ids");
  pw::scatterAdd(dy.p, ids.p, ids.len, dim, dt.p);
END_KERNEL(info.Env().Undefined())

KERNEL(permute)
  const F32 x = c.f32(0, "x");
  const std::vector<int64_t> shape = c.dims(1, "shape"), perm = c.dims(2, "perm");
  const F32 out = c.f32(3, "out");
  if (perm.size() != shape.size())
    c.fail("perm " + shapeStr(perm) + " does not have the rank of shape " + shapeStr(shape));
  std::vector<bool> seen(shape.size(), false);
  for (int64_t p : perm) {
    if (p >= static_cast<int64_t>(shape.size()) || seen[p])
      c.fail("perm " + shapeStr(perm) + " is not a permutation of 0.." + std::to_string(shape.size() - 1));
    seen[p] = true;
  }
  int64_t total = 1;
  for (int64_t s : shape) total *= s;
  c.need(x.len, total, "x", "shape " + shapeStr(shape));
  c.need(out.len, total, "out", "shape " + shapeStr(shape));
  pw::permute(x.p, shape.data(), perm.data(), static_cast<int>(shape.size()), out.p, c.flag(4));
END_KERNEL(info.Env().Undefined())

KERNEL(causalMask)
  const F32 x = c.f32(0, "x");
  const int64_t batch = c.dim(1, "batch"), t = c.dim(2, "t");
  const double value = c.num(3, "value");
  const F32 out = c.f32(4, "out");
  const std::string sz = "[batch, t, t] = " + dimsStr({batch, t, t});
  c.need(x.len, batch * t * t, "x", sz);
  c.need(out.len, batch * t * t, "out", sz);
  pw::causalMask(x.p, batch, t, static_cast<float>(value), out.p);
END_KERNEL(info.Env().Undefined())

KERNEL(sgdStep)
  const F32 w = c.f32(0, "w"), g = c.f32(1, "g"), v = c.f32OrNull(2, "v");
  const double lr = c.num(3, "lr"), momentum = c.num(4, "momentum"), dampening = c.num(5, "dampening"),
               wd = c.num(6, "weightDecay");
  c.need(g.len, w.len, "g", "w");
  if (momentum != 0) {
    if (!v.p) c.fail("momentum=" + std::to_string(momentum) + " needs a momentum buffer v");
    c.need(v.len, w.len, "v", "w");
  }
  pw::sgdStep(w.p, g.p, v.p, w.len, lr, momentum, dampening, wd, c.flag(7), c.flag(8));
END_KERNEL(info.Env().Undefined())

KERNEL(adamwStep)
  const F32 w = c.f32(0, "w"), g = c.f32(1, "g"), m = c.f32(2, "m"), v = c.f32(3, "v");
  const double lr = c.num(4, "lr"), b1 = c.num(5, "beta1"), b2 = c.num(6, "beta2"), eps = c.num(7, "eps"),
               wd = c.num(8, "weightDecay"), step = c.num(9, "step");
  c.need(g.len, w.len, "g", "w");
  c.need(m.len, w.len, "m", "w");
  c.need(v.len, w.len, "v", "w");
  if (!(step >= 1) || step != std::floor(step)) c.fail("step must be an integer >= 1, got " + std::to_string(step));
  pw::adamwStep(w.p, g.p, m.p, v.p, w.len, lr, b1, b2, eps, wd, step);
END_KERNEL(info.Env().Undefined())

// Diagnostics and tuning hooks (not part of the Backend interface).
KERNEL(cachedPrimitives)
  const double n = static_cast<double>(dnnlCtx(info.Env()).cachedPrimitives());
END_KERNEL(Napi::Number::New(info.Env(), n))

KERNEL(setConvLayouts)
  auto parse = [&](size_t i) {
    const std::string s = c.str(i, "layout");
    if (s == "plain") return pw::ConvLayout::Plain;
    if (s == "blocked") return pw::ConvLayout::Blocked;
    if (s == "auto") return pw::ConvLayout::Auto;
    c.fail("unknown layout '" + s + "'; valid: plain, blocked, auto");
  };
  dnnlCtx(info.Env()).setConvLayouts(parse(0), parse(1), parse(2));
END_KERNEL(info.Env().Undefined())

KERNEL(ompMaxThreads)
  const double n = omp_get_max_threads();
END_KERNEL(Napi::Number::New(info.Env(), n))

// Every op allocates its output as a new Float32Array, whose memory V8 gets from glibc's calloc.
// By default glibc serves blocks over 128 KiB (raised dynamically only up to the largest block
// freed so far) with fresh mmap()s and trims freed heap tops eagerly, so each large output is
// first-touch page-faulted and zeroed by the kernel: that cost more than the kernels themselves
// (bench engine: cnn 58 -> 22 ms/step, gpt 700 -> 280 ms/step without it). Keeping blocks up to
// 32 MiB in the heap and retaining up to 256 MiB of freed heap makes allocation recycle warm
// memory, as PyTorch's caching allocator does. Process-wide, once; PIPEWRIGHT_MALLOC_TUNING=0 opts out.
void tuneMalloc() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* v = std::getenv("PIPEWRIGHT_MALLOC_TUNING");
    if (v && std::strcmp(v, "0") == 0) return;
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tuneMalloc();
  omp_set_num_threads(1);
  try {
    env.SetInstanceData<pw::DnnlContext>(new pw::DnnlContext());
  } catch (const std::exception& e) {  // a bad $PIPEWRIGHT_GEMM: a JS error at load, not a crash
    throw Napi::Error::New(env, std::string("native addon: ") + e.what());
  }
  pw::exportGemm(env, exports);
#define EXPORT(NAME) exports.Set(#NAME, Napi::Function::New(env, NAME, #NAME))
  EXPORT(matmul); EXPORT(conv2d); EXPORT(conv2dBackwardData); EXPORT(conv2dBackwardWeights);
  EXPORT(binary); EXPORT(unary); EXPORT(unaryBackward); EXPORT(axpby); EXPORT(affine);
  EXPORT(sum); EXPORT(max); EXPORT(softmax); EXPORT(softmaxBackward); EXPORT(crossEntropy);
  EXPORT(crossEntropyBackward); EXPORT(layerNorm); EXPORT(layerNormBackward); EXPORT(groupNorm);
  EXPORT(groupNormBackward); EXPORT(batchNormTrain); EXPORT(batchNormInference); EXPORT(batchNormBackward);
  EXPORT(maxPool2d); EXPORT(maxPool2dBackward); EXPORT(avgPool2d); EXPORT(avgPool2dBackward);
  EXPORT(gather); EXPORT(scatterAdd); EXPORT(permute); EXPORT(causalMask); EXPORT(sgdStep); EXPORT(adamwStep);
  EXPORT(cachedPrimitives); EXPORT(setConvLayouts); EXPORT(ompMaxThreads);
#undef EXPORT
  return exports;
}

}  // namespace

NODE_API_MODULE(pipewright, Init)
