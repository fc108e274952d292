// `--gpus N` and `--gpu-map LIST` (train, bench pipeline): which WebGPU adapter each pipeline worker
// opens (src/backend/webgpu/gpu-map.ts). The map travels in the environment, so worker threads and
// MPI ranks (each of which parses the same flags) see it; each worker's device checks it against the
// adapters Dawn lists and fails with one line naming the entry and the count.
import { asUsage, UsageError, type FlagSpecs, type FlagValues } from "./args.js";
import { getBackend } from "../backend/index.js";
import { GPU_MAP_ENV, gpusMap, parseGpuMap } from "../backend/webgpu/gpu-map.js";

export const GPU_FLAGS = {
  gpus: { type: "int", min: 1, meta: "N", help: "webgpu: workers go round-robin over the first N GPUs (worker w opens adapter w mod N)" },
  "gpu-map": { type: "string", meta: "LIST", help: "webgpu: adapter index per worker, e.g. 0,1,0,1 (worker w opens entry w mod the list's length)" },
} as const satisfies FlagSpecs;

/** What the summary reports: the map (worker w opens adapter map[w mod length]) and worker 0's adapter. */
interface GpuMapReport { map: number[]; rule: string; adapter: string }

/** Validates the flags and puts the map in the environment; call before selecting the backend. */
export function setGpuMapFromFlags(f: FlagValues<typeof GPU_FLAGS>): number[] | undefined {
  if (f.gpus !== undefined && f["gpu-map"] !== undefined) throw new UsageError(`--gpus ${f.gpus} and --gpu-map ${f["gpu-map"]}: give one`);
  const list = f["gpu-map"];
  const map = asUsage(() => (f.gpus !== undefined ? gpusMap(f.gpus) : list !== undefined ? parseGpuMap(list) : undefined));
  if (map) process.env[GPU_MAP_ENV] = map.join(",");
  return map;
}

/** After the backend is selected: the map needs webgpu; the report for the summary. */
export function gpuMapReport(map: number[] | undefined): GpuMapReport | undefined {
  if (!map) return undefined;
  const b = getBackend();
  if (b.name !== "webgpu") throw new UsageError(`--gpus/--gpu-map choose WebGPU adapters: they need --backend webgpu (the backend is ${b.name})`);
  const adapter = "adapter" in b && typeof b.adapter === "string" ? b.adapter : "unknown";
  return { map, rule: "worker w opens adapter map[w mod length]", adapter };
}
