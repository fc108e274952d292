// Measured costs: per-unit forward+backward time (the `time` partition method) and per-stage F, B, W
// times of a partitioned model (the simulator's cost model for a benchmark's ideal speed-up). Both
// run on a throwaway copy of the model in this thread, so the trained weights are never touched.
import { backward, enableGrad, noGrad } from "../../autograd/engine.js";
import { createModel } from "../../nn/models/index.js";
import type { ModelSpec } from "../../nn/models/spec.js";
import { Tensor } from "../../tensor/tensor.js";
import { Stage } from "../stage.js";
import { unitRanges, type PipelineSetup } from "./setup.js";
import type { SplitBatch } from "./executor.js";
import { InlineExecutor } from "./inline.js";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function onesLike(t: Tensor): Float32Array { return new Float32Array(t.size).fill(1 / t.size); }

/** Median seconds of forward + backward of each unit on input `x` (a micro-batch), `reps` times. */
export function profileUnitTimes(spec: ModelSpec, seed: number, x: Tensor, reps = 3): number[] {
  const model = createModel(spec, seed);
  model.train();
  const times: number[] = [];
  let h = x;
  model.units.forEach((unit, i) => {
    const samples: number[] = [];
    for (let r = 0; r < reps + 1; r++) {
      const input = new Tensor(h.data, h.shape, i > 0);
      const t0 = performance.now();
      const y = enableGrad(() => unit.forward(input));
      if (y.requiresGrad) backward(y, [onesLike(y)]);
      if (r > 0) samples.push((performance.now() - t0) / 1000); // the first run warms caches up
      unit.zeroGrad();
    }
    times.push(median(samples));
    h = noGrad(() => unit.forward(new Tensor(h.data, h.shape)));
  });
  return times;
}

export interface StageCosts {
  /** Seconds per micro-batch, per virtual stage. */
  forward: number[];
  /** Full backward (input and weight gradients). */
  backward: number[];
  /** The weight-gradient part (W of a split backward). */
  weight: number[];
}

/**
 * Median F, full B and W seconds per virtual stage for one micro-batch (x, labels), measured with
 * the pipeline's own Stage code on a copy of the model.
 */
export function measureStageCosts(spec: ModelSpec, seed: number, balance: readonly number[], x: Tensor, labels: Int32Array,
  reps = 3): StageCosts {
  const model = createModel(spec, seed);
  model.train();
  const ranges = unitRanges(balance);
  const V = ranges.length;
  const out: StageCosts = { forward: [], backward: [], weight: [] };
  let h = x;
  const targets = { labels, scale: 1 / labels.length };
  ranges.forEach(([a, b], vs) => {
    const units = model.units.slice(a, b).map((m, i) => [a + i, m] as const);
    const stage = new Stage({ index: vs, units, isFirst: vs === 0, isLast: vs === V - 1, recompute: false });
    const f: number[] = [], full: number[] = [], w: number[] = [];
    let next: Tensor | null = null;
    // Gradients are not cleared between repetitions: B and W include accumulating into .grad, as
    // every micro-batch but the first of a step does.
    for (let r = 0; r < reps + 1; r++) {
      let t0 = performance.now();
      const res = stage.forward(r, new Tensor(h.data, h.shape), vs === V - 1 ? targets : null);
      const tf = performance.now() - t0;
      next = res.output;
      const g = res.output ? onesLike(res.output) : null;
      t0 = performance.now();
      stage.backward(r, g, false);
      const tb = performance.now() - t0;
      stage.forward(r, new Tensor(h.data, h.shape), vs === V - 1 ? targets : null);
      stage.backward(r, g, true);
      t0 = performance.now();
      stage.weightGrads([r]);
      const tw = performance.now() - t0;
      if (r > 0) { f.push(tf / 1000); full.push(tb / 1000); w.push(Math.min(tw, tb) / 1000); }
    }
    out.forward.push(median(f));
    out.backward.push(median(full));
    out.weight.push(median(w));
    if (next) h = next;
  });
  return out;
}

/** Per worker: seconds per micro-batch of its F, B and W actions, and seconds per STEP. */
export interface WorkerCosts {
  forward: number[];
  /** B as the schedule runs it: the full backward, or only the input gradients when split. */
  backward: number[];
  weight: number[];
  step: number[];
}

/**
 * A schedule's per-worker costs measured by running its own action lists on one thread (the inline
 * executor, on a fresh copy of the model), so they include everything the lists do (weight-gradient
 * runs, layout copies, the optimizer): per kind, the least over `steps` steps after one warm-up
 * (load from elsewhere on a shared machine only ever adds time).
 */
export async function measureWorkerCosts(setup: PipelineSetup, batch: SplitBatch, steps = 3): Promise<WorkerCosts> {
  const ex = new InlineExecutor(createModel(setup.model, setup.seed), setup);
  const M = setup.schedule.microbatches * setup.schedule.steps;
  const W = setup.schedule.workers.length;
  const best = Array.from({ length: W }, () => ({ F: Infinity, B: Infinity, W: Infinity, STEP: Infinity }));
  try {
    for (let i = 0; i <= steps; i++) {
      await ex.step(batch);
      if (i === 0) continue;
      ex.busyByKind().forEach((b, w) => {
        for (const k of ["F", "B", "W", "STEP"] as const) best[w][k] = Math.min(best[w][k], b[k]);
      });
    }
  } finally {
    await ex.close();
  }
  return {
    forward: best.map((b) => b.F / M),
    backward: best.map((b) => b.B / M),
    weight: best.map((b) => b.W / M),
    step: best.map((b) => b.STEP / setup.schedule.steps),
  };
}
