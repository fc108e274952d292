// How one elastic worker (stage s of a layout, on a worker thread or an MPI rank) starts: rebuild
// the model from its spec, load the trainer's state, freeze the prefix (requiresGrad off: no
// backward, not in the optimizer), keep stage s and put the shared interpreter over its GPipe list
// (with replicas, its REDUCE sums the stage's gradients over them before STEP).
// With the activation cache, stage 0 also holds the frozen prefix and runs it (no graph) to fill it.
// Both executors build through here, so a stage is the same object with the same kernels on both.
import { noGrad } from "../../autograd/engine.js";
import type { Module } from "../../nn/module.js";
import { createModel } from "../../nn/models/index.js";
import type { ModelSpec } from "../../nn/models/spec.js";
import { fromPlain, sliceState, type PlainOptimizerState } from "../../optim/index.js";
import type { Tensor } from "../../tensor/tensor.js";
import { generateSchedule, withReplicas } from "../schedule/index.js";
import type { Action } from "../schedule/action.js";
import { Stage, type MicrobatchMetrics } from "../stage.js";
import { WorkerInterpreter, type Outbox, type PhysicalStage, type StageOptimizer } from "../runtime/interpreter.js";
import { createStageOptimizer, shapeOf, type OptimizerConfig } from "../runtime/setup.js";
import { faultHook, type FaultSpec } from "../runtime/instrumentation.js";
import { applyFreeze, runnableUnits } from "./units.js";

export interface ElasticStageSpec {
  spec: ModelSpec;
  seed: number;
  /** The whole model's parameters and buffers (loaded, then only stage s is kept). */
  state: ReadonlyMap<string, Tensor>;
  frozenLayers: number;
  /** Units [0, prefix) are served by the activation cache: stage 0 runs them only to fill it. */
  prefix: number;
  /** [start, end) unit range of every stage (starting at `prefix`). */
  ranges: readonly [number, number][];
  stage: number;
  microbatches: number;
  /** Copies of the pipeline; > 1: the list has a REDUCE before its STEP. */
  replicas: number;
  optimizer: OptimizerConfig;
  /** Optimizer state of (at least) this stage's trainable parameters, or null to start fresh. */
  optimizerState: PlainOptimizerState | null;
  /** Test faults: freeze layer `unit` throws in its forward of micro-batch `microbatch`. */
  faults?: FaultSpec[];
}

export interface ElasticStage {
  stage: Stage;
  /** This stage's trainable parameters, in model order. */
  params: [string, Tensor][];
  optimizer: StageOptimizer | null;
  interp: WorkerInterpreter;
  /** The stage's GPipe list (with its REDUCE when there are replicas). */
  actions: readonly Action[];
  /** Stage 0 with a cached prefix: the prefix's output for x (no graph). */
  runPrefix(x: Tensor): Tensor;
  /** [freeze layer, squared L2 norm of its current gradients] over this stage's trainable parameters. */
  gradSquares(): [number, number][];
}

/** What the worker adds: the REDUCE over its replicas (and how an asynchronous one wakes it), and what runs right before STEP. */
export interface ElasticStageHooks {
  reduce?(params: Tensor[]): void | Promise<void>;
  wake?(): void;
  beforeStep(): void;
}

export function buildElasticStage(o: ElasticStageSpec, outbox: Outbox, hooks: ElasticStageHooks,
  onMetrics: (microbatch: number, m: MicrobatchMetrics) => void): ElasticStage {
  const model = createModel(o.spec, o.seed);
  model.loadStateDict(new Map(o.state));
  model.train();
  applyFreeze(model, o.frozenLayers);
  const all = runnableUnits(model);
  const S = o.ranges.length, s = o.stage;
  const [a, b] = o.ranges[s];
  const stage = new Stage({
    index: s, units: all.slice(a, b).map((u) => [u.unit.layer, u.module] as const),
    isFirst: s === 0, isLast: s === S - 1, recompute: false, beforeUnit: faultHook({ faults: o.faults }, model.units.length),
  });
  const prefix: Module[] = s === 0 ? all.slice(0, o.prefix).map((u) => u.module) : [];
  const params = stage.namedParameters().filter(([, p]) => p.requiresGrad);
  const optimizer = createStageOptimizer(o.optimizer, params);
  if (optimizer && o.optimizerState) optimizer.loadStateDict(sliceState(fromPlain(o.optimizerState), params.map(([n]) => n)));
  const phys: PhysicalStage = { index: s, chunks: [stage], optimizer };
  const layerOf = params.map(([n]) => Number(n.split(".")[1]));
  const schedule = withReplicas(generateSchedule("gpipe", { stages: S, microbatches: o.microbatches }), o.replicas);
  const reduce = hooks.reduce;
  const interp = new WorkerInterpreter({
    worker: s, actions: schedule.workers[s], stages: new Map([[s, phys]]), shape: shapeOf(schedule), outbox,
    // A hook object also keeps the interpreter from holding weight-layout copies: the same kernels on both executors.
    hooks: { beforeStep: hooks.beforeStep }, onMetrics,
    reduce: reduce ? () => reduce(params.map(([, p]) => p)) : undefined, wake: hooks.wake,
  });
  return {
    stage, params, optimizer, interp, actions: schedule.workers[s],
    runPrefix: (x) => noGrad(() => prefix.reduce((h, u) => u.forward(h), x)),
    gradSquares: () => {
      const sq = new Map<number, number>();
      params.forEach(([, p], i) => {
        if (!p.grad) return;
        let t = 0;
        const d = p.grad.data;
        for (let k = 0; k < d.length; k++) t += d[k] * d[k];
        sq.set(layerOf[i], (sq.get(layerOf[i]) ?? 0) + t);
      });
      return [...sq];
    },
  };
}
