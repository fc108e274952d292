// Measured costs: per-unit forward+backward time (the `time` partition method) and per-stage F, B,
// W, STEP times of a schedule's own lists, and the time of DualPipeV's FB pairs as whole actions
// (the simulator's cost model for a benchmark's ideal speed-up). Both run on a throwaway copy of the model in this thread, so trained weights are never
// touched.
import { backward, enableGrad, noGrad } from "../../autograd/engine.js";
import { createModel } from "../../nn/models/index.js";
import type { ModelSpec } from "../../nn/models/spec.js";
import { Tensor } from "../../tensor/tensor.js";
import { sourceOf, type PipelineSetup } from "./setup.js";
import type { SplitBatch } from "./executor.js";
import { InlineExecutor } from "./inline.js";
import type { RankTimings } from "./action-records.js";
import { medianUpper } from "../../util/stats.js";
import { actionParts, formatAction, type Schedule } from "../schedule/action.js";

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
      if (y.requiresGrad) backward(y, [new Float32Array(y.size).fill(1 / y.size)]);
      if (r > 0) samples.push((performance.now() - t0) / 1000); // the first run warms caches up
      unit.zeroGrad();
    }
    times.push(medianUpper(samples));
    h = noGrad(() => unit.forward(new Tensor(h.data, h.shape)));
  });
  return times;
}

/** Per physical stage: seconds per micro-batch of its F, B and W actions, and seconds per STEP. */
export interface StageCosts {
  forward: number[];
  /** B as the schedule runs it: the full backward, or only the input gradients when split. */
  backward: number[];
  weight: number[];
  step: number[];
  /**
   * Seconds per FB pair (DualPipeV), by the stage of its forward half, measured as one action (its
   * F half's start to its B half's end); null for a stage that starts none. Absent: no pairs.
   */
  pair?: (number | null)[];
}

export type CostKind = "F" | "B" | "W" | "STEP";
const COST_KINDS: readonly CostKind[] = ["F", "B", "W", "STEP"];

/** Seconds each physical stage spent in F, B, W and STEP actions, from the actions' records. */
export function busyByStage(timings: readonly RankTimings[], stages: number): Record<CostKind, number>[] {
  const sum = Array.from({ length: stages }, () => ({ F: 0, B: 0, W: 0, STEP: 0 }));
  for (const r of timings) {
    for (const a of r.actions) if ((COST_KINDS as readonly string[]).includes(a.kind)) sum[a.stage][a.kind as CostKind] += (a.end - a.start) / 1000;
  }
  return sum;
}

/**
 * Seconds of `schedule`'s FB pairs as whole actions (the F half's start to the B half's end: the
 * runtime runs them back to back), summed by the stage of the forward half, from the records.
 */
export function pairsByStage(timings: readonly RankTimings[], schedule: Schedule): number[] {
  const sum = new Array<number>(schedule.stages).fill(0);
  for (const r of timings) {
    const at = new Map(r.actions.map((a) => [formatAction(a), a]));
    for (const fb of schedule.workers[r.worker ?? r.rank]) {
      if (fb.kind !== "FB") continue;
      const [f, b] = actionParts(fb).map((p) => at.get(formatAction(p)));
      if (!f || !b) throw new Error(`worker ${r.worker ?? r.rank} has no record of both halves of ${formatAction(fb)}`);
      sum[fb.stage] += (b.end - f.start) / 1000;
    }
  }
  return sum;
}

/**
 * A schedule's per-stage costs measured by running its own action lists on one thread (the inline
 * executor, on a fresh copy of the model), so they include everything the lists do (weight-gradient
 * runs, layout copies, the optimizer): per kind, the least over `steps` steps after one warm-up
 * (load from elsewhere on a shared machine only ever adds time). Each action's record names its
 * stage, so a worker holding several stages (a V schedule, --workers) has each costed apart.
 */
export async function measureStageCosts(setup: PipelineSetup, batch: SplitBatch, steps = 3): Promise<StageCosts> {
  const src = sourceOf(setup);
  if (src.kind !== "builtin") throw new Error("measureStageCosts runs built-in models only (it rebuilds a fresh copy synchronously)");
  const ex = new InlineExecutor(createModel(src.spec, src.seed), { ...setup, instrumentation: { ...setup.instrumentation, recordActions: true } });
  const M = setup.schedule.microbatches * setup.schedule.steps;
  const S = setup.schedule.stages;
  const best = Array.from({ length: S }, () => ({ F: Infinity, B: Infinity, W: Infinity, STEP: Infinity }));
  const pairs = new Array<number>(S).fill(0);
  for (const list of setup.schedule.workers) for (const a of list) if (a.kind === "FB") pairs[a.stage]++;
  const bestPair = new Array<number>(S).fill(Infinity);
  try {
    const lists = new Array<SplitBatch>(setup.schedule.steps).fill(batch); // an asynchronous list spans several steps
    for (let i = 0; i <= steps; i++) {
      await ex.run(lists);
      if (i === 0) continue;
      const timings = ex.stepTimings() ?? [];
      busyByStage(timings, S).forEach((b, s) => { for (const k of COST_KINDS) best[s][k] = Math.min(best[s][k], b[k]); });
      pairsByStage(timings, setup.schedule).forEach((t, s) => { bestPair[s] = Math.min(bestPair[s], t); });
    }
  } finally {
    await ex.close();
  }
  return {
    forward: best.map((b) => b.F / M),
    backward: best.map((b) => b.B / M),
    weight: best.map((b) => b.W / M),
    step: best.map((b) => b.STEP / setup.schedule.steps),
    ...(pairs.some((n) => n > 0) ? { pair: pairs.map((n, s) => (n > 0 ? bestPair[s] / n : null)) } : {}),
  };
}
