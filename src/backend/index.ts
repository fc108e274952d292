// Backend selection: PIPEWRIGHT_BACKEND=native|reference|webgpu, or setBackend() from code. The native
// addon is preferred; if it cannot load, the reference backend is used with a one-line warning. The
// webgpu backend is used only when asked for.
import type { Backend } from "./backend.js";
import { referenceBackend } from "./reference.js";
import { createNativeBackend, loadedNativeBuild } from "./native.js";
import { thisCpu, type CpuInfo } from "./cpu-features.js";
import { createWebGpuBackend } from "./webgpu/backend.js";
import { webgpuSeam } from "./webgpu/seam.js";
import { GPU_MAP_ENV, parseGpuMap } from "./webgpu/gpu-map.js";
import { setHostArrays } from "../tensor/host-arrays.js";

export type { Backend, BinaryOp, UnaryOp, ConvParams, PoolParams } from "./backend.js";
export { cpuLabel, type CpuInfo } from "./cpu-features.js";
export type BackendName = "native" | "reference" | "webgpu";
export const BACKEND_NAMES: readonly BackendName[] = ["native", "reference", "webgpu"];

let current: Backend | null = null;
let nativeCache: Backend | null | undefined;
// One GPU thread and device per compute thread, opened on first use.
let webgpuCache: Backend | undefined;

/** The native backend, or null (with the reason in `nativeLoadError`) if the addon cannot load. */
export let nativeLoadError: string | null = null;

export function loadNative(): Backend | null {
  if (nativeCache !== undefined) return nativeCache;
  try {
    nativeCache = createNativeBackend();
  } catch (e) {
    nativeLoadError = (e as Error).message.split("\n")[0];
    nativeCache = null;
  }
  return nativeCache;
}

/** The GPU map set by `--gpus`/`--gpu-map` (in the environment, so every thread and MPI rank sees it). */
function gpuInit(worker: number | undefined): { gpuMap?: number[]; worker?: number } {
  const env = process.env[GPU_MAP_ENV];
  if (!env) return {};
  // An MPI rank is one worker: its rank is its index.
  const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? process.env.PMIX_RANK ?? 0);
  return { gpuMap: parseGpuMap(env), worker: worker ?? rank };
}

/** Selects the backend; `worker` (a pipeline worker's index) picks its GPU from the GPU map on webgpu. */
export function setBackend(name: BackendName, worker?: number): Backend {
  if (name === "reference") current = referenceBackend;
  else if (name === "native") {
    const nb = loadNative();
    // The loader's messages end with what to do (build it, or use the reference backend).
    if (!nb) throw new Error(`native backend unavailable: ${nativeLoadError}`);
    current = nb;
  } else if (name === "webgpu") {
    // Throws one line naming the missing package or driver.
    webgpuCache ??= createWebGpuBackend({ simulate: webgpuSeam.simulate, ...gpuInit(worker) });
    current = webgpuCache;
  } else {
    throw new Error(`unknown backend '${String(name)}'; valid: ${BACKEND_NAMES.join(", ")}`);
  }
  setHostArrays(current.hostArrays ?? null);
  return current;
}

export function getBackend(): Backend {
  if (current) return current;
  const env = process.env.PIPEWRIGHT_BACKEND;
  if (env !== undefined && env !== "") {
    if (!BACKEND_NAMES.includes(env as BackendName)) {
      throw new Error(`PIPEWRIGHT_BACKEND='${env}' is not a backend; valid: ${BACKEND_NAMES.join(", ")}`);
    }
    return setBackend(env as BackendName);
  }
  const nb = loadNative();
  if (nb) current = nb;
  else {
    process.stderr.write(`pipewright: native addon not loaded (${nativeLoadError}); using the slow reference backend\n`);
    current = referenceBackend;
  }
  return current;
}

/**
 * Makes `b` the current backend, e.g. a wrapper that times every kernel (`bench engine --profile`),
 * and returns the one it replaces (null if none was chosen yet) so the caller can put it back.
 */
export function useBackend(b: Backend | null): Backend | null {
  const prev = current;
  current = b;
  setHostArrays(b?.hostArrays ?? null);
  return prev;
}

/**
 * The machine the current backend runs on, for benchmark output: its model, core count, and the
 * instruction set of the native build it loaded (see CpuInfo). Resolves the backend if none was chosen.
 */
export function machineCpu(): CpuInfo {
  return thisCpu(getBackend().name === "native" ? loadedNativeBuild() : null);
}
