// The PTD-P benchmark (`bench parallel --ptdp`): a small gpt trained on the threads executor under
// each layout (P pipeline stages x T tensor ranks x D replicas), reporting samples/s (the median
// timed step after one warm-up; a measurement, never asserted) and every worker's memory counted
// from tensors (deterministic: parameters, gradients, AdamW state, the step's peak activations).
import { splitBatch } from "../data/microbatch.js";
import { createModel } from "../nn/models/index.js";
import type { ResolvedSpec } from "../nn/models/spec.js";
import { uniformBalance } from "../pipeline/partition.js";
import type { WorkerMemory } from "../pipeline/runtime/memory.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../pipeline/runtime/threads.js";
import { generateSchedule } from "../pipeline/schedule/index.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { median } from "../util/stats.js";

/** One layout: pipeline stages, tensor-parallel ranks per stage, data-parallel replicas. */
interface PtdpLayout { stages: number; tensor: number; replicas: number }

interface PtdpBenchOptions {
  spec: ResolvedSpec<"gpt">;
  layouts: readonly PtdpLayout[];
  sequenceParallel: boolean;
  schedule: string;
  batch: number;
  microbatches: number;
  steps: number;
}

/** A layout written P x T x D ("2x2x1"); names the text and what is allowed when it is not one. */
export function parseLayout(text: string): PtdpLayout {
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(text);
  const [P, T, D] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
  if (!(P >= 1 && T >= 1 && D >= 1)) throw new Error(`layout '${text}' must be PxTxD with positive integers (stages x tensor ranks x replicas), e.g. 2x2x1`);
  return { stages: P, tensor: T, replicas: D };
}

/** A worker thread's memory (tensor rank innermost) in the record's snake case. */
const snake = (m: WorkerMemory) => ({
  worker: m.worker, replica: m.replica, tensor: m.tensor, stages: m.stages, parameter_bytes: m.parameterBytes,
  gradient_bytes: m.gradientBytes, optimizer_bytes: m.optimizerBytes, peak_activation_bytes: m.peakActivationBytes,
});

/** Fixed random next-token batches: `batch` sequences of `context` ids. */
function tokens(o: PtdpBenchOptions, rng: Rng): { x: Tensor; y: Int32Array } {
  const { context: C, vocab: V } = o.spec;
  const x = Tensor.from(Array.from({ length: o.batch * C }, () => rng.int(V)), [o.batch, C]);
  return { x, y: Int32Array.from({ length: o.batch * C }, () => rng.int(V)) };
}

/** Trains 1 + steps steps under `layout`; samples/s from the median timed step, memory from the last. */
async function benchLayout(o: PtdpBenchOptions, layout: PtdpLayout) {
  const model = createModel(o.spec, 1);
  const { stages: P, tensor: T, replicas: D } = layout;
  const sp = o.sequenceParallel && T > 1;
  const setup: PipelineSetup = {
    model: o.spec, seed: 1, schedule: generateSchedule(o.schedule, { stages: P, microbatches: o.microbatches }),
    balance: uniformBalance(model.units.length, P), recompute: "never", optimizer: { name: "adamw", lr: 1e-4 },
    ...(T > 1 ? { tensorParallel: { size: T, sequenceParallel: sp } } : {}),
  };
  const ex = await ThreadsExecutor.create(setup, model.stateDict(), D);
  const rng = new Rng(7);
  const times: number[] = [];
  let memory: WorkerMemory[] = [];
  try {
    for (let i = 0; i <= o.steps; i++) {
      const parts = splitBatch(tokens(o, rng), o.microbatches);
      const t0 = performance.now();
      const r = await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / (o.batch * o.spec.context) });
      if (i > 0) times.push(performance.now() - t0); // step 0 warms up (and creates the optimizer state)
      memory = r.memory ?? [];
    }
  } finally {
    await ex.close();
  }
  const ms = median(times);
  return {
    stages: P, tensor: T, replicas: D, sequence_parallel: sp, schedule: o.schedule, batch: o.batch, microbatches: o.microbatches,
    spec: o.spec, step_ms: Number(ms.toFixed(2)), samples_per_s: Number((o.batch / (ms / 1000)).toFixed(1)), workers: memory.map(snake),
  };
}

/** Every layout in turn (one at a time: they would share the cores). */
export async function benchPtdp(o: PtdpBenchOptions): Promise<Awaited<ReturnType<typeof benchLayout>>[]> {
  const out = [];
  for (const l of o.layouts) out.push(await benchLayout(o, l));
  return out;
}
