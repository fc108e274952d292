// Tensor-parallel MLP block benchmark: median milliseconds of one step (forward, backward, SGD
// update) of a D -> hidden -> D GELU MLP on `tokens` tokens, with TP = 1, 2, ... worker threads.
// Prints nothing; returns one plain record per TP size (rank 0's times; comm = time inside the
// blocking all-reduces, waiting for the slower rank included).
import { getBackend } from "../backend/index.js";
import type { MlpBenchInput, MlpBenchOutput } from "./tp-tasks.js";
import { runTensorParallel } from "./tp-runner.js";
import { median, roundTo } from "../util/stats.js";

export interface TensorParallelBenchRecord {
  bench: "tensor-parallel-mlp";
  backend: string;
  tp: number;
  dim: number;
  hidden: number;
  tokens: number;
  steps: number;
  step_ms: number;
  forward_ms: number;
  backward_ms: number;
  update_ms: number;
  comm_ms: number;
  /** step_ms of the first TP size over this one's. */
  speedup: number;
}

export async function benchTensorParallelMlp(o: { dim?: number; hidden?: number; tokens?: number; steps?: number; warmup?: number; sizes?: readonly number[] } = {}): Promise<TensorParallelBenchRecord[]> {
  const dim = o.dim ?? 1024;
  const input: MlpBenchInput = { dim, hidden: o.hidden ?? 4 * dim, tokens: o.tokens ?? 512, steps: o.steps ?? 5, warmup: o.warmup ?? 1, seed: 1 };
  const records: TensorParallelBenchRecord[] = [];
  for (const tp of o.sizes ?? [1, 2]) {
    const [r0] = await runTensorParallel<MlpBenchInput, MlpBenchOutput>({
      size: tp, task: "benchMlp", input, capacity: Math.max(1 << 20, input.tokens * dim),
    });
    const step = median(r0.step);
    records.push({
      bench: "tensor-parallel-mlp", backend: getBackend().name, tp, dim, hidden: input.hidden, tokens: input.tokens, steps: input.steps,
      step_ms: roundTo(step, 3), forward_ms: roundTo(median(r0.forward), 3), backward_ms: roundTo(median(r0.backward), 3), update_ms: roundTo(median(r0.update), 3),
      comm_ms: roundTo(median(r0.comm), 3), speedup: records.length ? roundTo(records[0].step_ms / step, 3) : 1,
    });
  }
  return records;
}
