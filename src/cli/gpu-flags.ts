// `--backend`, and `--gpus N` / `--gpu-map LIST` (train, bench pipeline): which WebGPU adapter each
// pipeline worker opens (src/backend/webgpu/gpu-map.ts). The map travels in the environment, so
// worker threads and MPI ranks (each of which parses the same flags) see it; each worker's device
// checks it against the adapters Dawn lists and fails with one line naming the entry and the count.
import { asUsage, UsageError, type FlagSpecs, type FlagValues } from "./args.js";
import { BACKEND_NAMES, getBackend, setBackend } from "../backend/index.js";
import { GPU_MAP_ENV, gpusMap, parseGpuMap } from "../backend/webgpu/gpu-map.js";

export const BACKEND_FLAG = { type: "string", choices: BACKEND_NAMES, help: "kernel backend (default: native, or $PIPEWRIGHT_BACKEND)" } as const;

export const GPU_FLAGS = {
  backend: BACKEND_FLAG,
  gpus: { type: "int", min: 1, meta: "N", help: "webgpu: workers go round-robin over the first N GPUs (worker w opens adapter w mod N)" },
  "gpu-map": { type: "string", meta: "LIST", help: "webgpu: adapter index per worker, e.g. 0,1,0,1 (worker w opens entry w mod the list's length)" },
} as const satisfies FlagSpecs;

/** What the summary reports: the map (worker w opens adapter map[w mod length]) and worker 0's adapter. */
interface GpuMapReport { map: number[]; rule: string; adapter: string }

/**
 * Checks the GPU flags, puts the map in the environment, then selects the backend (which reads it);
 * the map needs webgpu. Undefined without a map, else the report for the summary.
 */
export function selectBackend(f: FlagValues<typeof GPU_FLAGS>): GpuMapReport | undefined {
  if (f.gpus !== undefined && f["gpu-map"] !== undefined) throw new UsageError(`--gpus ${f.gpus} and --gpu-map ${f["gpu-map"]}: give one`);
  const list = f["gpu-map"];
  const map = asUsage(() => (f.gpus !== undefined ? gpusMap(f.gpus) : list !== undefined ? parseGpuMap(list) : undefined));
  if (map) process.env[GPU_MAP_ENV] = map.join(",");
  if (f.backend !== undefined) setBackend(f.backend);
  if (!map) return undefined;
  const b = getBackend();
  if (b.name !== "webgpu") throw new UsageError(`--gpus/--gpu-map choose WebGPU adapters: they need --backend webgpu (the backend is ${b.name})`);
  const adapter = "adapter" in b && typeof b.adapter === "string" ? b.adapter : "unknown";
  return { map, rule: "worker w opens adapter map[w mod length]", adapter };
}
