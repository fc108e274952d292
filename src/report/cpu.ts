// The `cpu` field of benchmark output: which machine a number came from (model, instruction sets,
// cores), so a reader can tell what to expect on theirs. Read from /proc/cpuinfo on Linux.
import { readFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";

export interface CpuField {
  /** The CPU's model name, e.g. "AMD EPYC 9B14". */
  model: string;
  /** The widest vector ISA the CPU has: "avx512", "avx2" or "baseline". */
  isa: "avx512" | "avx2" | "baseline";
  /** Cores this process may run on. */
  cores: number;
  /** Environment overrides in force that change which kernels run (ONEDNN_MAX_CPU_ISA, ...). */
  caps: Record<string, string>;
}

const CAP_VARS = ["PIPEWRIGHT_ISA", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "PIPEWRIGHT_GEMM"] as const;

function cpuFlags(): Set<string> {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("flags"));
    return new Set((line?.split(":")[1] ?? "").trim().split(/\s+/));
  } catch {
    return new Set(); // not Linux: no flags known
  }
}

export function cpuField(env: NodeJS.ProcessEnv = process.env): CpuField {
  const flags = cpuFlags();
  const isa = ["avx512f", "avx512bw", "avx512vl", "avx512dq"].every((f) => flags.has(f)) ? "avx512"
    : flags.has("avx2") && flags.has("fma") ? "avx2" : "baseline";
  const caps: Record<string, string> = {};
  for (const v of CAP_VARS) if (env[v]) caps[v] = env[v] as string;
  return { model: cpus()[0]?.model.trim() ?? "unknown", isa, cores: availableParallelism(), caps };
}

/** One line for tables: "AMD EPYC 9B14, avx512, 2 cores (ONEDNN_MAX_CPU_ISA=AVX2)". */
export function cpuLine(c: CpuField): string {
  const caps = Object.entries(c.caps).map(([k, v]) => `${k}=${v}`).join(" ");
  return `${c.model}, ${c.isa}, ${c.cores} cores${caps ? ` (${caps})` : ""}`;
}
