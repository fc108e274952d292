// Which native build this CPU can run, and how benchmark output names the machine.
// The addon is compiled once per x86-64 micro-architecture level (binding.gyp: pipewright_v3 with
// -march=x86-64-v3, pipewright_v4 with -march=x86-64-v4). Loading a build that uses instructions the
// CPU lacks kills the process with SIGILL at the first such instruction, possibly mid-training, so
// the choice is made from the CPU's feature flags before any .node file is required. The choice
// functions are pure (flags in, build out) so they can be tested with any CPU's flags string.
import { readFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";

export type IsaName = "avx2" | "avx512";

/** One compiled build of the addon. */
export interface IsaBuild {
  /** The value of PIPEWRIGHT_ISA that forces this build. */
  readonly isa: IsaName;
  /** How benchmark output names it. */
  readonly label: "AVX2" | "AVX-512";
  /** binding.gyp's target_name: the file is build/Release/<target>.node. */
  readonly target: string;
  /** The -march the build is compiled with. */
  readonly march: string;
  /** /proc/cpuinfo flags that -march level lets the compiler use. */
  readonly requires: readonly string[];
}

// x86-64-v2 and v3 as GCC defines them, spelled as Linux spells the flags: pni is SSE3, abm is LZCNT,
// lahf_lm is LAHF/SAHF in 64-bit mode. (The v1 baseline, SSE2 and below, every x86-64 CPU has.)
const V2 = ["cx16", "lahf_lm", "popcnt", "pni", "ssse3", "sse4_1", "sse4_2"];
// Each level's own flags come first, so an error names the telling ones (avx2, fma) before the rest.
const V3 = ["avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe", "xsave", ...V2];
const V4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", ...V3];

/** The builds, best first; the last is the lowest a CPU must be able to run. */
export const ISA_BUILDS: readonly IsaBuild[] = [
  { isa: "avx512", label: "AVX-512", target: "pipewright_v4", march: "x86-64-v4", requires: V4 },
  { isa: "avx2", label: "AVX2", target: "pipewright_v3", march: "x86-64-v3", requires: V3 },
];
export const ISA_NAMES: readonly IsaName[] = ISA_BUILDS.map((b) => b.isa);

/** The feature flags of the first processor in a /proc/cpuinfo text (empty if it has no flags line). */
export function parseCpuFlags(cpuinfo: string): Set<string> {
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo);
  return new Set(line ? line[1].trim().split(/\s+/).filter((f) => f !== "") : []);
}

/** The features `build` needs that `flags` lacks, in the build's order. */
export function missingFeatures(build: IsaBuild, flags: ReadonlySet<string>): string[] {
  return build.requires.filter((f) => !flags.has(f));
}

export type BuildChoice =
  | { readonly ok: true; readonly builds: readonly IsaBuild[] }
  | { readonly ok: false; readonly reason: string };

/**
 * The builds a CPU with `flags` may load, best first (the loader takes the first one present on
 * disk), or why there is none. `force` is PIPEWRIGHT_ISA: it selects one build, which the CPU must
 * still be able to run (it exists to test a lower build on a better CPU, never to risk SIGILL).
 */
export function chooseBuilds(flags: ReadonlySet<string>, force?: string): BuildChoice {
  if (force !== undefined && force !== "") {
    const build = ISA_BUILDS.find((b) => b.isa === force);
    if (!build) return { ok: false, reason: `PIPEWRIGHT_ISA='${force}' is not a native build; valid: ${ISA_NAMES.join(", ")}` };
    const missing = missingFeatures(build, flags);
    if (missing.length > 0) {
      return { ok: false, reason: `PIPEWRIGHT_ISA=${force} selects the ${build.label} build (-march=${build.march}), but this CPU lacks ` +
        `${missing.join(", ")}; choose a lower build or unset PIPEWRIGHT_ISA` };
    }
    return { ok: true, builds: [build] };
  }
  const builds = ISA_BUILDS.filter((b) => missingFeatures(b, flags).length === 0);
  if (builds.length > 0) return { ok: true, builds };
  const lowest = ISA_BUILDS[ISA_BUILDS.length - 1];
  return { ok: false, reason: `this CPU lacks ${missingFeatures(lowest, flags).join(", ")}, which the lowest native build ` +
    `(${lowest.label}, -march=${lowest.march}) needs; use --backend reference` };
}

/** The text of /proc/cpuinfo, or null where there is none (not Linux). */
function readCpuinfo(): string | null {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return null;
  }
}

let cpuinfoCache: string | null | undefined;
const cpuinfo = (): string | null => (cpuinfoCache === undefined ? (cpuinfoCache = readCpuinfo()) : cpuinfoCache);

/**
 * This CPU's feature flags: PIPEWRIGHT_CPU_FLAGS (space-separated; for tests, to stand in for
 * another CPU; empty means unset) or /proc/cpuinfo's; null if neither is available.
 */
export function cpuFlags(env: NodeJS.ProcessEnv = process.env): Set<string> | null {
  const override = env.PIPEWRIGHT_CPU_FLAGS;
  if (override !== undefined && override.trim() !== "") return new Set(override.split(/\s+/).filter((f) => f !== ""));
  const text = cpuinfo();
  return text === null ? null : parseCpuFlags(text);
}

/** The builds this process may load (see chooseBuilds), from its CPU and PIPEWRIGHT_ISA. */
export function buildsForThisCpu(env: NodeJS.ProcessEnv = process.env): BuildChoice {
  const flags = cpuFlags(env);
  const force = env.PIPEWRIGHT_ISA;
  if (flags !== null) return chooseBuilds(flags, force);
  // Nothing to check against: only the user's word, PIPEWRIGHT_ISA, can pick a build.
  const forced = ISA_BUILDS.find((b) => b.isa === force);
  if (forced) return { ok: true, builds: [forced] };
  return { ok: false, reason: "cannot read the CPU's features (no /proc/cpuinfo); set PIPEWRIGHT_ISA to " +
    `${ISA_NAMES.join(" or ")} to choose a native build, or use --backend reference` };
}

/** The machine a measurement ran on; every `bench` JSON object carries one as its `cpu` field. */
export interface CpuInfo {
  /** The CPU's model name, as /proc/cpuinfo (or the OS) reports it. */
  readonly model: string;
  /**
   * The vector instruction set the kernels ran with: "AVX-512" or "AVX2" when the addon's loops and
   * oneDNN use the same; "AVX-512 build, oneDNN AVX2" when ONEDNN_MAX_CPU_ISA caps oneDNN lower than
   * the loaded build. Without the native addon, the CPU's best.
   */
  readonly isa: string;
  /** Logical CPUs this process may use. */
  readonly cores: number;
}

// The instruction sets oneDNN dispatches on, lowest first, with the flags each needs.
const ONEDNN_LEVELS: readonly { label: string; requires: readonly string[]; cap: RegExp }[] = [
  { label: "SSE4.1", requires: ["sse4_1"], cap: /^SSE41$/ },
  { label: "AVX", requires: ["avx"], cap: /^AVX$/ },
  { label: "AVX2", requires: ["avx2", "fma"], cap: /^AVX2/ },
  { label: "AVX-512", requires: ["avx512f", "avx512bw", "avx512vl", "avx512dq"], cap: /^AVX512/ },
];

/** Index into ONEDNN_LEVELS of the best level `flags` support (-1: none). */
function bestLevel(flags: ReadonlySet<string>): number {
  let best = -1;
  ONEDNN_LEVELS.forEach((l, i) => { if (l.requires.every((f) => flags.has(f))) best = i; });
  return best;
}

/** ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA, its older name) as an index into ONEDNN_LEVELS; null: no cap. */
function onednnCap(env: NodeJS.ProcessEnv): number | null {
  const v = (env.ONEDNN_MAX_CPU_ISA || env.DNNL_MAX_CPU_ISA || "").toUpperCase();
  const i = ONEDNN_LEVELS.findIndex((l) => l.cap.test(v));
  return i < 0 ? null : i;
}

/** Pure: the CpuInfo of a CPU with these flags, running `build` (null: no native addon loaded). */
export function describeCpu(model: string, cores: number, flags: ReadonlySet<string> | null, build: IsaBuild | null,
  env: NodeJS.ProcessEnv = {}): CpuInfo {
  const best = flags === null ? -1 : bestLevel(flags);
  const cpuIsa = best < 0 ? "unknown ISA" : ONEDNN_LEVELS[best].label;
  if (build === null) return { model, isa: cpuIsa, cores };
  const cap = onednnCap(env);
  const onednn = best < 0 ? null : ONEDNN_LEVELS[cap === null ? best : Math.min(best, cap)].label;
  return { model, isa: onednn === null || onednn === build.label ? build.label : `${build.label} build, oneDNN ${onednn}`, cores };
}

/** The one-line form used in human-readable output and the README: "AMD EPYC, AVX-512, 2 cores". */
export function cpuLabel(c: CpuInfo): string {
  return `${c.model}, ${c.isa}, ${c.cores} ${c.cores === 1 ? "core" : "cores"}`;
}

/** This machine, running `build` (null: no native addon). */
export function thisCpu(build: IsaBuild | null, env: NodeJS.ProcessEnv = process.env): CpuInfo {
  const named = /^model name\s*:\s*(.*)$/m.exec(cpuinfo() ?? "")?.[1].trim();
  const model = named || cpus()[0]?.model.trim() || "unknown CPU";
  return describeCpu(model, availableParallelism(), cpuFlags(env), build, env);
}
