// All-reduce benchmark: latency and bandwidth of the shared-memory all-reduce between R threads for
// buffers from 1 KB to 16 MB. One JSON-able record per size: median and min latency, and the
// algorithmic bandwidth (buffer bytes / median seconds, the figure NCCL calls "algbw").
import { runProbe } from "./probe.js";
import { median } from "../util/stats.js";

export interface AllReduceBenchRecord {
  bench: "allreduce";
  /** "shm": shared-memory collectives; "p2p": gather/scatter of copied messages over MessagePorts. */
  transport: "shm" | "p2p";
  ranks: number;
  bytes: number;
  iters: number;
  median_us: number;
  min_us: number;
  algbw_gb_s: number;
}

export const ALLREDUCE_BENCH_BYTES: readonly number[] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];

export async function benchAllReduce(opts: { ranks?: number; bytes?: readonly number[]; iters?: number; transport?: "shm" | "p2p" } = {}): Promise<AllReduceBenchRecord[]> {
  const transport = opts.transport ?? "shm";
  const ranks = opts.ranks ?? 2;
  const bytes = opts.bytes ?? ALLREDUCE_BENCH_BYTES;
  const sizes = bytes.map((b) => Math.max(1, Math.floor(b / 4)));
  const iters = opts.iters ?? 50;
  // JIT warm-up: the first few hundred small collectives run unoptimised code.
  const results = await runProbe(Array.from({ length: ranks }, () => [{ op: "bench" as const, sizes, iters, warmup: Math.max(10, iters), mode: transport === "shm" ? "sync" as const : "p2p" as const }]),
    { capacity: Math.max(...sizes), timeoutMs: 60_000 });
  const r0 = results[0];
  if (r0.type !== "results") throw new Error(`all-reduce benchmark failed on rank 0: ${r0.message}`);
  return r0.bench.map((b) => {
    const med = median(b.seconds);
    return {
      bench: "allreduce", transport, ranks, bytes: b.elements * 4, iters: b.seconds.length,
      median_us: Number((med * 1e6).toFixed(1)), min_us: Number((Math.min(...b.seconds) * 1e6).toFixed(1)),
      algbw_gb_s: Number((b.elements * 4 / med / 1e9).toFixed(3)),
    };
  });
}
