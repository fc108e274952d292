// N-API bindings of the GEMM provider rule: what this process chooses with (gemmInfo), the rule as
// a pure function of given inputs (gemmProvider, for tests and `bench gemm`), and a per-thread
// override (setGemmMode, for `bench gemm` to time each provider on the same shapes).
#include <napi.h>

#include <string>

#include "dnnl_ops.h"
#include "gemm_provider.h"

namespace pw {

namespace {

std::string str(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string("native ") + fn + ": " + name + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t dim(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const double v = info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
  if (!(v >= 0) || v != static_cast<double>(static_cast<int64_t>(v))) {
    throw Napi::RangeError::New(info.Env(), std::string("native gemmProvider: ") + name + " must be a non-negative integer");
  }
  return static_cast<int64_t>(v);
}

Napi::Value gemmInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GemmCpu cpu;
  try {
    cpu = gemmCpu();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("native gemmInfo: ") + e.what());
  }
  const GemmMode mode = env.GetInstanceData<DnnlContext>()->gemmMode();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", isaName(cpu.isa));
  o.Set("openblasCore", openblasCore());
  o.Set("openblasFull", cpu.openblasFull);
  o.Set("openblasThreads", openblasThreads());
  o.Set("mode", mode == GemmMode::Auto ? "auto" : mode == GemmMode::Onednn ? "onednn" : "openblas");
  return o;
}

// gemmProvider(batch, m, k, n, transA, transB, isa?, openblasCore?): the rule's choice; isa and
// openblasCore default to this process's.
Napi::Value gemmProvider(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const GemmShape s{dim(info, 0, "batch"), dim(info, 1, "m"), dim(info, 2, "k"), dim(info, 3, "n"),
                    info[4].ToBoolean().Value(), info[5].ToBoolean().Value()};
  GemmCpu cpu;
  try {
    cpu = gemmCpu();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("native gemmProvider: ") + e.what());
  }
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    const std::string v = str(info, 6, "gemmProvider", "isa");
    if (!parseIsa(v, &cpu.isa)) throw Napi::RangeError::New(env, "native gemmProvider: isa '" + v + "'; valid: avx2, avx512");
  }
  const std::string core = info.Length() > 7 && !info[7].IsUndefined() ? str(info, 7, "gemmProvider", "openblasCore") : openblasCore();
  cpu.openblasFull = openblasCoreFull(core, cpu.isa);
  return Napi::String::New(env, providerName(chooseGemm(cpu, s)));
}

Napi::Value setGemmMode(const Napi::CallbackInfo& info) {
  const std::string v = str(info, 0, "setGemmMode", "mode");
  GemmMode m;
  if (!parseGemmMode(v, &m)) throw Napi::RangeError::New(info.Env(), "native setGemmMode: unknown mode '" + v + "'; valid: auto, onednn, openblas");
  info.Env().GetInstanceData<DnnlContext>()->setGemmMode(m);
  return info.Env().Undefined();
}

}  // namespace

void exportGemm(Napi::Env env, Napi::Object exports) {
  initOpenblas();
  exports.Set("gemmInfo", Napi::Function::New(env, gemmInfo, "gemmInfo"));
  exports.Set("gemmProvider", Napi::Function::New(env, gemmProvider, "gemmProvider"));
  exports.Set("setGemmMode", Napi::Function::New(env, setGemmMode, "setGemmMode"));
}

}  // namespace pw
