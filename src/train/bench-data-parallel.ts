// Data-parallel throughput benchmark: samples/s of R replicas (worker threads) on one mini-batch
// size, against one replica, median over timed steps after a warm-up. Records are plain JSON, one per
// replica count, for `pipewright bench` to print. Random inputs: throughput does not depend on data.
import { createModel } from "../nn/models/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { median, roundTo } from "../util/stats.js";
import { DataParallel } from "../api/data-parallel.js";

interface DataParallelBenchRecord {
  bench: "data-parallel";
  model: string;
  backend: string;
  batch: number;
  replicas: number;
  steps: number;
  samples_per_s: number;
  /** samples_per_s over the first (smallest) replica count's. */
  speedup: number;
  /** Median seconds per step: whole step (caller's view), and replica 0's compute / all-reduce / update. */
  step_ms: number;
  compute_ms: number;
  allreduce_ms: number;
  update_ms: number;
  /** Median of (step seconds - slowest replica's time inside the step): sharding + messages + wake-ups. */
  overhead_ms: number;
  gradient_mb: number;
}

const SPEC: ModelSpec = { name: "mlp", input: 784, hidden: [1024, 1024], classes: 10 };
const BATCH = 256;
const WARMUP = 2;

/** One record per replica count (1, then 2), each the medians of `steps` timed steps after a warm-up. */
export async function benchDataParallel({ steps }: { steps: number }): Promise<DataParallelBenchRecord[]> {
  const spec = SPEC, batch = BATCH;
  const rng = new Rng(1);
  const x = Tensor.randn([batch, 1, 28, 28], rng, 1);
  const y = Int32Array.from({ length: batch }, () => rng.int(10));
  const gradientBytes = createModel(spec, 1).numParameters() * 4;
  const out: DataParallelBenchRecord[] = [];
  for (const R of [1, 2]) {
    const dp = await DataParallel.create({ spec, seed: 1, replicas: R, optimizer: { name: "sgd", lr: 0.01, momentum: 0.9 } });
    try {
      for (let i = 0; i < WARMUP; i++) await dp.step(x, y);
      const step: number[] = [], compute: number[] = [], ar: number[] = [], upd: number[] = [], over: number[] = [];
      for (let i = 0; i < steps; i++) {
        const r = await dp.step(x, y);
        step.push(r.seconds);
        compute.push(r.replicas[0].compute);
        ar.push(r.replicas[0].allReduce);
        upd.push(r.replicas[0].update);
        over.push(r.seconds - Math.max(...r.replicas.map((m) => m.total)));
      }
      const sps = batch / median(step);
      out.push({
        bench: "data-parallel", model: spec.name, backend: dp.backend, batch, replicas: R, steps,
        samples_per_s: Math.round(sps), speedup: out.length ? roundTo(sps / out[0].samples_per_s, 3) : 1,
        step_ms: roundTo(median(step) * 1e3, 3), compute_ms: roundTo(median(compute) * 1e3, 3), allreduce_ms: roundTo(median(ar) * 1e3, 3),
        update_ms: roundTo(median(upd) * 1e3, 3), overhead_ms: roundTo(median(over) * 1e3, 3), gradient_mb: roundTo(gradientBytes / 1e6, 3),
      });
    } finally {
      await dp.close();
    }
  }
  return out;
}
