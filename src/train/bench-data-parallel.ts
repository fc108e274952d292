// Data-parallel throughput benchmark: samples/s of R replicas (worker threads) on one mini-batch
// size, against one replica, median over timed steps after a warm-up. Records are plain JSON, one per
// replica count, for `pipewright bench` to print. Random inputs: throughput does not depend on data.
import { createModel } from "../nn/models/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { median, roundTo } from "../util/stats.js";
import { DataParallel } from "../api/data-parallel.js";

const SPEC: ModelSpec = { name: "mlp", input: 784, hidden: [1024, 1024], classes: 10 };
const BATCH = 256;
const WARMUP = 2;

/**
 * One record per replica count (1, then 2), each the medians of `steps` timed steps after a warm-up:
 * speedup is over the first replica count; step_ms the whole step as the caller sees it, compute_ms,
 * allreduce_ms and update_ms replica 0's; overhead_ms what the slowest replica's time inside the step
 * leaves out (sharding, messages, wake-ups).
 */
export async function benchDataParallel({ steps }: { steps: number }) {
  const spec = SPEC, batch = BATCH;
  const rng = new Rng(1);
  const x = Tensor.randn([batch, 1, 28, 28], rng, 1);
  const y = Int32Array.from({ length: batch }, () => rng.int(10));
  const gradientBytes = createModel(spec, 1).numParameters() * 4;
  const run = async (R: number, base?: number) => {
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
      return {
        bench: "data-parallel", model: spec.name, backend: dp.backend, batch, replicas: R, steps,
        samples_per_s: Math.round(sps), speedup: base === undefined ? 1 : roundTo(sps / base, 3),
        step_ms: roundTo(median(step) * 1e3, 3), compute_ms: roundTo(median(compute) * 1e3, 3), allreduce_ms: roundTo(median(ar) * 1e3, 3),
        update_ms: roundTo(median(upd) * 1e3, 3), overhead_ms: roundTo(median(over) * 1e3, 3), gradient_mb: roundTo(gradientBytes / 1e6, 3),
      };
    } finally {
      await dp.close();
    }
  };
  const one = await run(1);
  return [one, await run(2, one.samples_per_s)];
}
