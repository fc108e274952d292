// Which library runs a matrix product: oneDNN's matmul or OpenBLAS's sgemm. The choice is a pure
// function of the CPU (its ISA and the kernels OpenBLAS picked for it) and of the product's shape
// and operand layout, never of timing, so a product always runs the same kernel on every thread and
// in every run, and results depend only on inputs and configuration.
#pragma once
#include <cstdint>
#include <string>

namespace pw {

enum class Isa { Avx2, Avx512 };
enum class GemmProvider { Onednn, Openblas };
// How a context chooses: the fixed rule, or one provider for every product (bench gemm, experiments).
enum class GemmMode { Auto, Onednn, Openblas };

struct GemmCpu {
  Isa isa;
  // OpenBLAS runs kernels at least as wide as the ISA's (its core was not forced down to an older
  // one, e.g. by OPENBLAS_CORETYPE=Sandybridge): only then is it worth choosing.
  bool openblasFull;
};

// The product as DnnlContext sees it, after folding a shared-b batch into m.
struct GemmShape {
  int64_t batch, m, k, n;
  bool transA, transB;
};

// The fixed rule. Pure: the same arguments always give the same provider.
GemmProvider chooseGemm(const GemmCpu& cpu, const GemmShape& s);

// The ISA products are chosen for: $PIPEWRIGHT_ISA (avx2 or avx512) if set, else what this CPU
// has. Read once per process. Throws naming the value when $PIPEWRIGHT_ISA is not one of those.
Isa gemmIsa();
const char* isaName(Isa isa);
bool parseIsa(const std::string& s, Isa* out);

// OpenBLAS's core (e.g. "Haswell", "SkylakeX"; follows $OPENBLAS_CORETYPE when set).
std::string openblasCore();
int openblasThreads();
void initOpenblas();  // OpenBLAS on one thread per caller; idempotent
// Whether OpenBLAS core `core` has kernels at least as wide as `isa` needs.
bool openblasCoreFull(const std::string& core, Isa isa);
// This process's GemmCpu (gemmIsa() and openblasCore()).
GemmCpu gemmCpu();

GemmMode gemmModeFromEnv();  // $PIPEWRIGHT_GEMM: auto (default), onednn or openblas
bool parseGemmMode(const std::string& s, GemmMode* out);
const char* providerName(GemmProvider p);

// out (+)= op(a) op(b) (+ bias) with OpenBLAS, batch entries one after another on this thread.
void openblasMatmul(const float* a, const float* b, float* out, int64_t batch, int64_t m, int64_t k, int64_t n,
                    bool transA, bool transB, bool accumulate, bool bBroadcast, const float* bias);

}  // namespace pw
