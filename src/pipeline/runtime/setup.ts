// What every executor needs to build a worker's stages: the model spec + seed (so a worker thread can
// rebuild the model), the partition (units per virtual stage), the schedule, the recomputation mode
// and the optimizer configuration. Plain JSON, so it can be posted to a worker as is.
import { checkBalance as checkPartitionBalance } from "../partition.js";
import type { Action, Schedule } from "../schedule/action.js";
import type { ModelSpec } from "../../nn/models/spec.js";
import type { Model } from "../../nn/models/model.js";
import type { Tensor } from "../../tensor/tensor.js";
import { SGD, AdamW, fromPlain, sliceState, type PlainOptimizerState } from "../../optim/index.js";
import { currentMicrobatch, Stage } from "../stage.js";
import type { PhysicalStage, PipelineShape, StageOptimizer } from "./interpreter.js";
import { isGradEnabled } from "../../autograd/engine.js";
import { fixSpikeDelay, spikeOptimizer, type AsyncSetup } from "./async-weights.js";

export const RECOMPUTE_MODES = ["never", "always", "except-last"] as const;
export type RecomputeMode = (typeof RECOMPUTE_MODES)[number];

export const EXECUTORS = ["inline", "threads", "processes"] as const;
export type ExecutorName = (typeof EXECUTORS)[number];

/** Optimizer of every stage, as JSON (the same hyper-parameters as the single-device run). */
export type OptimizerConfig =
  | { kind: "sgd"; lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean }
  | { kind: "adamw"; lr: number; betas?: [number, number]; eps?: number; weightDecay?: number };

/** A test fault: `during: "recompute"` fires only in the forward recomputed inside B. */
export interface FaultSpec { unit: number; microbatch: number; message?: string; during?: "any" | "recompute" }

export interface PipelineSetup {
  model: ModelSpec;
  seed: number;
  schedule: Schedule;
  /** Partition units per virtual stage (length S * v, virtual stage = chunk * S + stage). */
  balance: readonly number[];
  recompute: RecomputeMode;
  optimizer: OptimizerConfig;
  /** Optimizer state to start from (a resumed checkpoint), one group in model parameter order. */
  optimizerState?: PlainOptimizerState;
  /**
   * Test hook: unit `unit` throws `message` when it runs forward for micro-batch `microbatch`
   * (to test that a failing stage stops the run). Never set in normal runs.
   */
  faults?: FaultSpec[];
  /**
   * Benchmark hook: every F/B/W action of physical stage s also sleeps syntheticCosts.F[s] (B, W)
   * seconds, so pipeline overlap can be measured on a machine without spare cores.
   */
  syntheticCosts?: { F: number[]; B: number[]; W: number[] };
  /** Asynchronous method (issue 4): policies, T1, Spike Compensation; absent for synchronous runs. */
  async?: AsyncSetup;
}

/** The per-action sleep of `syntheticCosts`, chunks sharing a stage's cost evenly. */
export function syntheticDelay(setup: PipelineSetup): ((a: Action) => number) | undefined {
  const c = setup.syntheticCosts;
  if (!c) return undefined;
  const v = setup.schedule.chunks;
  return (a) => (a.kind === "STEP" ? 0 : c[a.kind][a.stage] / v);
}

export function shapeOf(s: Schedule): PipelineShape {
  return { stages: s.stages, chunks: s.chunks, splitBackward: s.splitBackward, stageToWorker: s.stageToWorker };
}

/** Checks the balance against the model and the schedule (one entry per virtual stage). */
export function checkBalance(balance: readonly number[], units: number, schedule: Schedule): void {
  checkPartitionBalance(balance, units, schedule.stages * schedule.chunks);
}

/** Unit index ranges [start, end) per virtual stage. */
export function unitRanges(balance: readonly number[]): [number, number][] {
  let start = 0;
  return balance.map((b) => { const r: [number, number] = [start, start + b]; start += b; return r; });
}

/** The optimizer of one physical stage over its parameters (null when it has none). */
export function createOptimizer(cfg: OptimizerConfig, params: [string, Tensor][]): StageOptimizer | null {
  if (params.length === 0) return null;
  switch (cfg.kind) {
    case "sgd": {
      const { kind: _k, ...o } = cfg;
      return new SGD(params, o);
    }
    case "adamw": {
      const { kind: _k, ...o } = cfg;
      return new AdamW(params, o);
    }
    default:
      throw new Error(`unknown optimizer '${String((cfg as { kind: unknown }).kind)}'; valid: sgd, adamw`);
  }
}

/** Whether virtual stage vs recomputes its forward in B under the given mode. */
export function recomputes(mode: RecomputeMode, vs: number, virtualStages: number): boolean {
  return mode === "always" || (mode === "except-last" && vs !== virtualStages - 1);
}

/**
 * Builds the physical stages that `worker` runs, on the units of `model` (shared, not copied: the
 * inline executor trains the caller's model in place; a worker thread passes its own rebuilt model).
 */
export function buildWorkerStages(model: Model, setup: PipelineSetup, worker: number): Map<number, PhysicalStage> {
  const { schedule } = setup;
  const S = schedule.stages, v = schedule.chunks, V = S * v;
  checkBalance(setup.balance, model.units.length, schedule);
  const ranges = unitRanges(setup.balance);
  for (const f of setup.faults ?? []) injectFault(model, f);
  const resumed = setup.optimizerState ? fromPlain(setup.optimizerState) : null;
  const out = new Map<number, PhysicalStage>();
  for (let s = 0; s < S; s++) {
    if (schedule.stageToWorker[s] !== worker) continue;
    const chunks: Stage[] = [];
    for (let c = 0; c < v; c++) {
      const vs = c * S + s;
      const [a, b] = ranges[vs];
      const units = model.units.slice(a, b).map((m, i) => [a + i, m] as const);
      chunks.push(new Stage({ index: vs, units, isFirst: vs === 0, isLast: vs === V - 1, recompute: recomputes(setup.recompute, vs, V) }));
    }
    const params = chunks.flatMap((c) => c.namedParameters()).filter(([, p]) => p.requiresGrad);
    const pb = setup.async?.config.method === "pb";
    const optimizer = pb ? spikeOptimizer(setup.optimizer, setup.async!, s, params) : createOptimizer(setup.optimizer, params);
    if (optimizer && resumed) optimizer.loadStateDict(sliceState(resumed, params.map(([n]) => n)));
    if (optimizer && pb) fixSpikeDelay(optimizer, setup.async!, s);
    out.set(s, { index: s, chunks, optimizer });
  }
  return out;
}

function injectFault(model: Model, f: FaultSpec): void {
  const unit = model.units[f.unit];
  if (!unit) throw new Error(`fault injection: unit ${f.unit} does not exist (the model has ${model.units.length})`);
  const forward = unit.forward.bind(unit);
  unit.forward = (x) => {
    // Recomputation is the only forward that records a graph when a stage recomputes.
    if (currentMicrobatch() === f.microbatch && (f.during !== "recompute" || isGradEnabled())) throw new Error(f.message ?? `injected fault in unit ${f.unit} on micro-batch ${f.microbatch}`);
    return forward(x);
  };
}
