// `pipewright bench gemm`: GFLOP/s of the addon's matrix product per provider, shape and operand
// layout (src/train/bench-gemm.ts measures), with the provider the fixed rule picks, so the next
// machine's numbers are one command away. One JSON object per line with --json, each with `cpu`.
import { asUsage, command, type CommandSpec } from "./args.js";
import { loadNativeAddon } from "../backend/native.js";
import { cpuLabel, machineCpu } from "../backend/index.js";
import { benchGemmCase, DEFAULT_GEMM_SHAPES, gemmCases, GEMM_PROVIDERS } from "../train/bench-gemm.js";

const benchGemmCommand = {
  name: "bench gemm",
  summary: "GFLOP/s of the native matmul per provider (oneDNN, OpenBLAS), shape and operand layout on one " +
    "thread: the products of mlp, cnn and gpt training steps and 32x1024x1024, 256x1024x1024, 2048x256x768 " +
    "in all four layouts; median of --reps interleaved repetitions. `rule` is the provider the fixed rule picks. " +
    "One JSON object per line with --json: {\"shape\", \"layout\", \"provider\", \"gflops\", \"ms\", \"rule\", \"models\", \"cpu\", ...}.",
  flags: {
    json: { type: "bool", help: "one JSON object per product, layout and provider" },
    shapes: {
      type: "list", default: DEFAULT_GEMM_SHAPES.join(","), meta: "S,S,...",
      help: "products as [model:][B*]MxKxN[/nn|nt|tn|tt] (a/b stored as used or transposed; no layout: all four)",
    },
    providers: { type: "list", choices: GEMM_PROVIDERS, default: GEMM_PROVIDERS.join(","), meta: "P,P", help: `providers to time, from ${GEMM_PROVIDERS.join(", ")}` },
    reps: { type: "int", min: 3, default: 9, meta: "N", help: "timed repetitions per product and provider (the median is reported)" },
  },
  examples: ["pipewright bench gemm", "pipewright bench gemm --json --shapes 256x1024x1024,64*128x64x128/nt",
    "PIPEWRIGHT_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell pipewright bench gemm"],
} as const satisfies CommandSpec;

export const runBenchGemm = command(benchGemmCommand, (f) => {
  const providers = f.providers;
  const cases = asUsage(() => gemmCases(f.shapes));
  const cpu = machineCpu();
  const gemm = loadNativeAddon().gemmInfo();
  const head = `cpu: ${cpuLabel(cpu)}; rule for ${gemm.isa}, OpenBLAS core ${gemm.openblasCore}, ${gemm.openblasThreads} thread`;
  if (!f.json) process.stdout.write(`${head}\n${"product".padEnd(20)} layout  ${providers.map((p) => `${p} GFLOP/s`.padStart(16)).join("")}  rule      models\n`);
  for (const { shape, layout } of cases) {
    const rows = benchGemmCase(shape, layout, f.reps, providers);
    if (f.json) {
      for (const r of rows) process.stdout.write(JSON.stringify({ ...r, openblas_core: gemm.openblasCore, cpu }) + "\n");
    } else {
      process.stdout.write(formatRow(rows) + "\n");
    }
  }
  return 0;
});

function formatRow(rows: ReturnType<typeof benchGemmCase>): string {
  const r0 = rows[0];
  return `${r0.shape.padEnd(20)} ${r0.layout.padEnd(6)}  ${rows.map((r) => r.gflops.toFixed(1).padStart(16)).join("")}  ${r0.rule.padEnd(8)}  ${r0.models.join(",")}`;
}
