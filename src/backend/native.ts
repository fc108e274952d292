// The native backend: the C++ N-API addon (native/*.cc, built by node-gyp into one file per ISA level,
// build/Release/pipewright_v3.node and pipewright_v4.node, see cpu-features.ts) with oneDNN for
// matmul/convolution and C++ loops for the rest. The addon validates every buffer length itself and
// throws errors naming the kernel, so this file only picks, locates and loads a build. The addon is
// context-aware: each worker thread that imports it gets its own oneDNN engine and primitive cache,
// and kernels run on the calling thread only.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Backend } from "./backend.js";
import { buildsForThisCpu, type IsaBuild } from "./cpu-features.js";

/** Diagnostics the addon exports besides the Backend kernels. */
export interface NativeExtras {
  /** Number of oneDNN primitives cached in this thread's context. */
  cachedPrimitives(): number;
  /** OpenMP's thread budget on the calling thread (1: kernels never fork). */
  ompMaxThreads(): number;
  /** Convolution operand layouts per direction (forward, backward-data, backward-weights). */
  setConvLayouts(fwd: ConvLayout, bwdData: ConvLayout, bwdWeights: ConvLayout): void;
  /** What this process chooses GEMM providers with (native/gemm_provider.h). */
  gemmInfo(): GemmInfo;
  /**
   * The fixed provider rule for a product (shape after folding a shared b into m): a pure function
   * of (isa, OpenBLAS core, shape, layout); isa and openblasCore default to this process's.
   */
  gemmProvider(batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean,
    isa?: GemmIsa, openblasCore?: string): GemmProviderName;
  /** This thread's matmul provider: the rule ("auto", the default or $PIPEWRIGHT_GEMM) or one for all. */
  setGemmMode(mode: GemmMode): void;
}
export type ConvLayout = "plain" | "blocked" | "auto";
export type GemmIsa = "avx2" | "avx512";
export type GemmProviderName = "onednn" | "openblas";
export type GemmMode = "auto" | GemmProviderName;
export interface GemmInfo {
  /** The ISA the rule chooses for: $PIPEWRIGHT_ISA, else the CPU's. */
  isa: GemmIsa;
  /** OpenBLAS's kernel set (follows $OPENBLAS_CORETYPE). */
  openblasCore: string;
  /** Whether that core has kernels as wide as the ISA (else the rule never picks OpenBLAS). */
  openblasFull: boolean;
  /** OpenBLAS threads per call: 1, each worker runs its own products. */
  openblasThreads: number;
  mode: GemmMode;
}

type Kernels = Omit<Backend, "name">;
type Addon = Kernels & NativeExtras;

// Every Backend method; checked at load time so a stale build fails loudly, not mid-training.
const KERNELS: readonly (keyof Kernels)[] = [
  "matmul", "conv2d", "conv2dBackwardData", "conv2dBackwardWeights", "binary", "unary", "unaryBackward", "axpby",
  "affine", "sum", "max", "softmax", "softmaxBackward", "crossEntropy", "crossEntropyBackward", "layerNorm",
  "layerNormBackward", "groupNorm", "groupNormBackward", "batchNormTrain", "batchNormInference", "batchNormBackward",
  "maxPool2d", "maxPool2dBackward", "avgPool2d", "avgPool2dBackward", "gather", "scatterAdd", "permute", "causalMask",
  "sgdStep", "adamwStep",
];

/** The package root: the nearest ancestor directory whose package.json is pipewright's. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, "package.json");
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name === "pipewright") return dir;
      } catch {
        // an unreadable package.json is not ours; keep looking upwards
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the pipewright package root (package.json) above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Path of the compiled addon for one ISA build. */
export function nativeAddonPath(build: IsaBuild): string {
  return join(packageRoot(), "build", "Release", `${build.target}.node`);
}

let addon: Addon | null = null;
let loadedBuild: IsaBuild | null = null;

/** The build this thread loaded (null before loadNativeAddon succeeds). */
export function loadedNativeBuild(): IsaBuild | null {
  return loadedBuild;
}

/**
 * The best build this CPU can run that is on disk. The choice is made from the CPU's flags before
 * any .node is required: requiring a build with instructions the CPU lacks can die of SIGILL.
 */
function pickBuild(): { build: IsaBuild; path: string } {
  const choice = buildsForThisCpu();
  if (!choice.ok) throw new Error(choice.reason);
  for (const build of choice.builds) {
    const path = nativeAddonPath(build);
    if (existsSync(path)) return { build, path };
  }
  throw new Error(`native addon not built: ${nativeAddonPath(choice.builds[0])} is missing ` +
    "(run `npm install` or `npx node-gyp rebuild`, which need libdnnl-dev; or use --backend reference)");
}

/** Loads the addon (once per thread); throws a clear error if it is missing, stale or unfit for this CPU. */
export function loadNativeAddon(): Addon {
  if (addon) return addon;
  const { build, path } = pickBuild();
  const require = createRequire(import.meta.url);
  let loaded: Addon;
  try {
    loaded = require(path) as Addon;
  } catch (e) {
    throw new Error(`native addon ${path} failed to load: ${(e as Error).message.split("\n")[0]} ` +
      "(rebuild with `npx node-gyp rebuild`, which needs libdnnl-dev; or use --backend reference)");
  }
  const missing = KERNELS.filter((k) => typeof loaded[k] !== "function");
  if (missing.length > 0) {
    throw new Error(`native addon ${path} is out of date (missing ${missing.join(", ")}); rebuild with \`npx node-gyp rebuild\``);
  }
  addon = loaded;
  loadedBuild = build;
  return loaded;
}

export function createNativeBackend(): Backend {
  const a = loadNativeAddon();
  const kernels = Object.fromEntries(KERNELS.map((k) => [k, a[k]])) as unknown as Kernels;
  return Object.freeze({ name: "native" as const, ...kernels });
}
