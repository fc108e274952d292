// Which GPU (WebGPU adapter) each pipeline worker opens. A map is a list of adapter indices; worker w
// (a thread, or an MPI rank) opens adapter map[w mod length]. `--gpus N` is the map 0..N-1, so
// workers go round-robin over N GPUs. Indices count the adapters Dawn lists for one of its backends,
// in its order. Dawn's Node binding selects an adapter only by backend and by a substring of its name
// (its `adapter=` flag), so two adapters with the same name cannot be told apart: index i then opens
// the first adapter with adapter i's name.

/** The environment variable through which the map reaches every worker thread and MPI rank. */
export const GPU_MAP_ENV = "PIPEWRIGHT_GPU_MAP";

/** `--gpus N`: N must be a positive integer. */
export function gpusMap(n: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--gpus ${n}: must be a positive integer`);
  return Array.from({ length: n }, (_, i) => i);
}

/** `--gpu-map 0,1,0,1`: non-negative integer adapter indices, one per worker (repeated cyclically). */
export function parseGpuMap(text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  for (const p of parts) {
    if (!/^\d+$/.test(p)) throw new Error(`--gpu-map '${text}': entry '${p}' is not a non-negative integer adapter index`);
  }
  return parts.map(Number);
}

/** The adapter index worker w opens under `map` (round-robin: map[w mod length]). */
export function gpuOfWorker(map: readonly number[], worker: number): number {
  return map[worker % map.length];
}

/** Throws one line naming the first entry out of range and how many adapters were found. */
export function checkGpuMap(map: readonly number[], found: readonly string[]): void {
  const bad = map.find((g) => g >= found.length);
  if (bad === undefined) return;
  const list = found.length ? ` (${found.map((n, i) => `${i}: ${n}`).join("; ")})` : "";
  throw new Error(`GPU map ${map.join(",")} (--gpus/--gpu-map): adapter ${bad} is out of range: ${found.length} WebGPU adapter${found.length === 1 ? "" : "s"} found${list}`);
}

/** The adapter names in Dawn's "Available adapters:" list (its error for an adapter name that matches none). */
export function parseAdapterList(message: string): string[] {
  return [...message.matchAll(/^ \* backend: '[^']*', name: '(.*)'$/gm)].map((m) => m[1]);
}
