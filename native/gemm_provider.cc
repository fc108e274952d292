// The GEMM provider rule and the OpenBLAS side of it. See gemm_provider.h.
#include "gemm_provider.h"

#include <cblas.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

extern "C" {
char* openblas_get_corename(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace pw {

namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

Isa detectIsa() {
  // oneDNN's avx512_core level: F, BW, VL and DQ together.
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return avx512 ? Isa::Avx512 : Isa::Avx2;
}

}  // namespace

bool parseIsa(const std::string& s, Isa* out) {
  const std::string v = lower(s);
  if (v == "avx2") *out = Isa::Avx2;
  else if (v == "avx512") *out = Isa::Avx512;
  else return false;
  return true;
}

const char* isaName(Isa isa) { return isa == Isa::Avx512 ? "avx512" : "avx2"; }

Isa gemmIsa() {
  static const Isa isa = [] {
    const char* v = std::getenv("PIPEWRIGHT_ISA");
    if (!v || !*v) return detectIsa();
    Isa parsed;
    if (!parseIsa(v, &parsed)) {
      throw std::invalid_argument(std::string("PIPEWRIGHT_ISA='") + v + "' is not an instruction set; valid: avx2, avx512");
    }
    return parsed;
  }();
  return isa;
}

std::string openblasCore() {
  const char* name = openblas_get_corename();
  return name ? std::string(name) : std::string("unknown");
}

void initOpenblas() {
  // One thread per caller: each worker thread runs its own products on itself, as with oneDNN.
  // Process-wide in OpenBLAS; set once, before any product.
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

int openblasThreads() { return openblas_get_num_threads(); }

bool openblasCoreFull(const std::string& core, Isa isa) {
  // OpenBLAS 0.3.21's DYNAMIC_ARCH cores with AVX-512 sgemm kernels, and those with AVX2 + FMA ones
  // (Zen uses Haswell's). Any other core (an older one forced by OPENBLAS_CORETYPE, or a CPU it does
  // not know) runs narrower kernels than oneDNN would.
  static const char* const avx512Cores[] = {"skylakex", "cooperlake", "sapphirerapids"};
  static const char* const avx2Cores[] = {"haswell", "zen"};
  const std::string c = lower(core);
  for (const char* x : avx512Cores) if (c == x) return true;
  if (isa == Isa::Avx512) return false;
  for (const char* x : avx2Cores) if (c == x) return true;
  return false;
}

GemmCpu gemmCpu() {
  static const GemmCpu cpu = [] {
    const Isa isa = gemmIsa();
    return GemmCpu{isa, openblasCoreFull(openblasCore(), isa)};
  }();
  return cpu;
}

GemmProvider chooseGemm(const GemmCpu& cpu, const GemmShape& s) {
  // AVX-512: oneDNN everywhere (its AVX-512 sgemm is as fast as OpenBLAS's on every shape measured).
  if (cpu.isa == Isa::Avx512 || !cpu.openblasFull) return GemmProvider::Onednn;
  // AVX2: OpenBLAS for every single product; oneDNN keeps the batched ones (attention's per-head
  // products), where one oneDNN primitive runs the whole batch.
  if (s.batch > 1) return GemmProvider::Onednn;
  return GemmProvider::Openblas;
}

bool parseGemmMode(const std::string& s, GemmMode* out) {
  if (s == "auto") *out = GemmMode::Auto;
  else if (s == "onednn") *out = GemmMode::Onednn;
  else if (s == "openblas") *out = GemmMode::Openblas;
  else return false;
  return true;
}

GemmMode gemmModeFromEnv() {
  const char* v = std::getenv("PIPEWRIGHT_GEMM");
  if (!v || !*v) return GemmMode::Auto;
  GemmMode m;
  if (!parseGemmMode(v, &m)) {
    throw std::invalid_argument(std::string("PIPEWRIGHT_GEMM='") + v + "' is not a GEMM provider; valid: auto, onednn, openblas");
  }
  return m;
}

const char* providerName(GemmProvider p) { return p == GemmProvider::Openblas ? "openblas" : "onednn"; }

void openblasMatmul(const float* a, const float* b, float* out, int64_t batch, int64_t m, int64_t k, int64_t n,
                    bool transA, bool transB, bool accumulate, bool bBroadcast, const float* bias) {
  initOpenblas();
  const int lda = static_cast<int>(transA ? m : k), ldb = static_cast<int>(transB ? k : n);
  for (int64_t e = 0; e < batch; e++) {
    float* c = out + e * m * n;
    // The bias goes in first and the product is accumulated onto it (beta = 1).
    if (bias) {
      for (int64_t i = 0; i < m; i++) {
        float* row = c + i * n;
        if (accumulate) for (int64_t j = 0; j < n; j++) row[j] += bias[j];
        else std::memcpy(row, bias, sizeof(float) * n);
      }
    }
    const float beta = accumulate || bias ? 1.f : 0.f;
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.f, a + e * m * k, lda,
                b + (bBroadcast ? 0 : e * k * n), ldb, beta, c, static_cast<int>(n));
  }
}

}  // namespace pw
