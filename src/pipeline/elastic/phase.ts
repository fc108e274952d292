// One phase of elastic training: a fixed layout (frozen prefix, S stages x R replicas, M micro-batches,
// partition) from one transition to the next, run by the pipeline runtime's executors. A layout is a
// GPipe schedule with R replicas (withReplicas) over the model pipe-model.ts builds; the trainer
// starts an executor with the full training state, steps it, then collects the state back
// (replica 0's stages; all replicas hold the same bits) and closes it before the next layout. Moving
// state this way copies float32 arrays exactly, so a stage move is bit-exact.
import { toPlain, type OptimizerConfig, type OptimizerState } from "../../optim/index.js";
import type { Tensor } from "../../tensor/tensor.js";
import { testSeam } from "../../testing/seam.js";
import { generateSchedule } from "../schedule/index.js";
import type { Executor } from "../runtime/executor.js";
import type { JsonValue, ModelSource } from "../runtime/model-source.js";
import type { PipelineSetup } from "../runtime/setup.js";
import type { PipeModelArgs } from "./pipe-model.js";

export interface PhaseLayout {
  frozenLayers: number;
  stages: number;
  replicas: number;
  microbatches: number;
  /** Units [0, prefix) come from the activation cache (0: no cache). */
  prefix: number;
  /** [start, end) unit range per stage, covering prefix .. units. */
  ranges: [number, number][];
}

/** What the trainer uses of an executor. */
export type PhaseExecutor = Pick<Executor, "step" | "evaluate" | "predict" | "stateDict" | "optimizerState" | "loadStateDict" | "close">;

/**
 * The pipeline setup of a layout: its units' model, one GPipe list per stage, the per-unit gradient
 * norms the freeze policy reads, and the optimizer state of every parameter ever trained (each stage
 * takes its trainable parameters' share).
 */
export function phaseSetup(source: ModelSource, optimizer: OptimizerConfig, layout: PhaseLayout,
  optimizerState: OptimizerState | null): PipelineSetup {
  const { stages: S, microbatches: M, ranges, prefix, frozenLayers } = layout;
  if (ranges.length !== S) throw new Error(`elastic layout: ${ranges.length} stage ranges for ${S} stages`);
  if (ranges[0]?.[0] !== prefix) throw new Error(`elastic layout: the first stage starts at unit ${ranges[0]?.[0]}, the cached prefix ends at ${prefix}`);
  const args: PipeModelArgs = { source, frozenLayers, prefix };
  return {
    source: { kind: "module", module: new URL("./pipe-model.js", import.meta.url).href, args: args as unknown as JsonValue, splitState: false },
    schedule: generateSchedule("gpipe", { stages: S, microbatches: M }),
    balance: ranges.map(([a, b]) => b - a), recompute: "never", optimizer, gradientNorms: true,
    ...(optimizerState ? { optimizerState: toPlain(optimizerState) } : {}),
    ...(testSeam.faults ? { instrumentation: { faults: testSeam.faults } } : {}),
  };
}

/** `base` with the entries of `update`'s parameters replaced (frozen parameters keep theirs), in `order`. */
export function combineOptimizerStates(base: OptimizerState | null, update: OptimizerState | null, order: readonly string[]): OptimizerState | null {
  if (!update) return base;
  if (!base) return update;
  const fresh = new Set(update.groups[0].params);
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of base.tensors) if (!fresh.has(k.slice(0, k.lastIndexOf(".")))) tensors.set(k, t);
  for (const [k, t] of update.tensors) tensors.set(k, t);
  const steps: Record<string, number> = {};
  for (const [k, v] of Object.entries(base.steps)) if (!fresh.has(k)) steps[k] = v;
  Object.assign(steps, update.steps);
  const known = new Set([...base.groups[0].params, ...fresh]);
  const g = update.groups[0];
  return { kind: update.kind, groups: [{ hyper: { ...g.hyper }, baseLr: g.baseLr, params: order.filter((n) => known.has(n)) }], steps, tensors };
}
