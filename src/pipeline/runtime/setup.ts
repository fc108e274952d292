// What every executor needs to build a worker's stages: where the model comes from (a built-in spec
// + seed, or a user's module: a worker thread rebuilds it), the loss, the partition (units per
// virtual stage), the schedule, the recomputation mode and the optimizer configuration. Plain JSON,
// so it can be posted to a worker as is.
import { checkBalance } from "../partition.js";
import { withReplicas, type Schedule } from "../schedule/action.js";
import type { ModelSpec } from "../../nn/models/spec.js";
import { createOptimizer, fromPlain, sliceState, type OptimizerConfig, type PlainOptimizerState } from "../../optim/index.js";
import { Stage, type StageLoss } from "../stage.js";
import { ActivationMeter } from "../activation-bytes.js";
import type { PhysicalStage, StageOptimizer } from "./interpreter.js";
import { spikeOptimizer, type AsyncSetup } from "./async-weights.js";
import type { ModelSource, PipelineModel } from "./model-source.js";
import { builtinLoss, type LossSpec } from "./loss-source.js";
import { faultHook, type Instrumentation } from "./instrumentation.js";
import type { TensorParallelSetup } from "../../parallel/ptdp-units.js";

export const RECOMPUTE_MODES = ["never", "always", "except-last"] as const;
export type RecomputeMode = (typeof RECOMPUTE_MODES)[number];

/** Optimizer of every stage, as JSON (the same hyper-parameters as the single-device run). */
export type { OptimizerConfig };

export interface PipelineSetup {
  /** A built-in model (with `seed`): shorthand for source {kind: "builtin", spec: model, seed}. */
  model?: ModelSpec;
  seed?: number;
  /** Where workers get the model (overrides model + seed); see model-source.ts. */
  source?: ModelSource;
  /** The last stage's loss (default: the built-in cross-entropy on class ids). */
  loss?: LossSpec;
  schedule: Schedule;
  /** Partition units per virtual stage (length S * v, virtual stage = chunk * S + stage). */
  balance: readonly number[];
  recompute: RecomputeMode;
  optimizer: OptimizerConfig;
  /** Optimizer state to start from (a resumed checkpoint), one group in model parameter order. */
  optimizerState?: PlainOptimizerState;
  /** Test and benchmark hooks (faults, synthetic costs); never set in normal runs. */
  instrumentation?: Instrumentation;
  /** Asynchronous method: policies, T1, Spike Compensation; absent for synchronous runs. */
  async?: AsyncSetup;
  /** PTD-P: each worker is `size` tensor-parallel ranks (absent: 1, no sequence parallelism). */
  tensorParallel?: TensorParallelSetup;
  /** Report each unit's squared gradient norm after REDUCE (StepResult.gradSquares, threads and processes; a freeze policy reads them). */
  gradientNorms?: boolean;
  /** Clip the gradients to this global L2 norm before every STEP (the whole model's norm, as on one device). */
  clipGradNorm?: number;
}

/** The model source of a setup (`source`, else the built-in `model` + `seed`). */
export function sourceOf(setup: Pick<PipelineSetup, "model" | "seed" | "source">): ModelSource {
  if (setup.source) return setup.source;
  if (!setup.model) throw new Error("pipeline setup names no model: give source, or model (a built-in spec) and seed");
  return { kind: "builtin", spec: setup.model, seed: setup.seed ?? 0 };
}

/**
 * `setup` run as `replicas` data-parallel copies: its schedule with a REDUCE before every STEP.
 * Gradients are summed once per optimizer step, so only synchronous schedules of one step qualify.
 */
export function replicatedSetup(setup: PipelineSetup, replicas: number): PipelineSetup {
  if (replicas > 1 && (setup.schedule.steps > 1 || setup.async)) {
    throw new Error(`--replicas ${replicas} needs a synchronous schedule (gpipe, 1f1b, interleaved, zb-h1): gradients are all-reduced once per optimizer step`);
  }
  return { ...setup, schedule: withReplicas(setup.schedule, replicas) };
}

/** Unit index ranges [start, end) per virtual stage. */
export function unitRanges(balance: readonly number[]): [number, number][] {
  let start = 0;
  return balance.map((b) => { const r: [number, number] = [start, start + b]; start += b; return r; });
}

/**
 * Builds the physical stages that `worker` runs, on the units of `model` (shared, not copied: the
 * inline executor trains the caller's model in place; a worker thread passes its own rebuilt model).
 * `loss` is the resolved setup.loss (required when that names a module; built-ins resolve here).
 */
export function buildWorkerStages(model: PipelineModel, setup: PipelineSetup, worker: number, loss?: StageLoss): Map<number, PhysicalStage> {
  const { schedule } = setup;
  const S = schedule.stages, v = schedule.chunks, V = S * v;
  checkBalance(setup.balance, model.units.length, V);
  const ranges = unitRanges(setup.balance);
  const beforeUnit = faultHook(setup.instrumentation, model.units.length);
  if (!loss && typeof setup.loss === "object") throw new Error("buildWorkerStages: a module loss must be loaded first (loadLoss)");
  const stageLoss = loss ?? builtinLoss(typeof setup.loss === "string" ? setup.loss : "cross-entropy");
  const resumed = setup.optimizerState ? fromPlain(setup.optimizerState) : null;
  const out = new Map<number, PhysicalStage>();
  // The worker's activations are one count over all its stages (a V schedule holds two).
  const meter = new ActivationMeter();
  for (let s = 0; s < S; s++) {
    if (schedule.stageToWorker[s] !== worker) continue;
    const chunks: Stage[] = [];
    for (let c = 0; c < v; c++) {
      const vs = c * S + s;
      const [a, b] = ranges[vs];
      const units = model.units.slice(a, b).map((m, i) => [model.unitIndex?.[a + i] ?? a + i, m] as const);
      chunks.push(new Stage({
        index: vs, units, isFirst: vs === 0, isLast: vs === V - 1, recompute: setup.recompute === "always" || (setup.recompute === "except-last" && vs !== V - 1),
        prefix: model.unitPrefix, loss: vs === V - 1 ? stageLoss : undefined, beforeUnit, meter,
      }));
    }
    const params = chunks.flatMap((c) => c.namedParameters()).filter(([, p]) => p.requiresGrad);
    const optimizer: StageOptimizer | null = setup.async?.config.method === "pb" ? spikeOptimizer(setup.optimizer, setup.async, s, params)
      : params.length ? createOptimizer(setup.optimizer, params) : null;
    if (optimizer && resumed) optimizer.loadStateDict(sliceState(resumed, params.map(([n]) => n)));
    out.set(s, { index: s, chunks, optimizer });
  }
  return out;
}
