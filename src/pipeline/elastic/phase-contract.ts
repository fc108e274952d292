// What the elastic trainer needs of a phase (one layout from one transition to the next), whatever
// runs it: worker threads (phase.ts) or MPI ranks (mpi-phase.ts). Both combine their workers'
// step reports with combineStepReports, in worker order r * S + s, so a loss, a freeze layer's
// gradient norm and the cache's prefix outputs are summed and concatenated in the same order.
import type { ModelSpec } from "../../nn/models/spec.js";
import type { BackendName } from "../../backend/index.js";
import type { OptimizerState } from "../../optim/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { numel } from "../../tensor/shape.js";
import { splitLabels, splitTensor } from "../../data/microbatch.js";
import { shardBatch } from "../../parallel/shard.js";
import type { MicrobatchMetrics } from "../stage.js";
import type { OptimizerConfig } from "../runtime/setup.js";

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

export interface PhaseOptions {
  spec: ModelSpec;
  seed: number;
  optimizer: OptimizerConfig;
  layout: PhaseLayout;
  /** The whole model's parameters and buffers. */
  state: ReadonlyMap<string, Tensor>;
  /** Optimizer state (one group, model order) of at least every trainable parameter, or null. */
  optimizerState: OptimizerState | null;
  /** Trainable parameter names (in model order) and sizes, per stage. */
  stageParams: [string, number][][];
  backend?: BackendName;
  timeoutMs?: number;
}

export interface PhaseStepResult {
  loss: number;
  correct: number;
  count: number;
  /** Seconds inside actions per stage, summed over replicas. */
  stageBusy: number[];
  /** Squared gradient norm per freeze layer (reduced gradients, one replica). */
  gradSq: Map<number, number>;
  /** With `fill`: the prefix outputs of the whole batch, in batch order. */
  prefixOut: Tensor | null;
}

/** One layout's workers, as the trainer drives them. On MPI every call is collective (SPMD). */
export interface TrainingPhase {
  readonly layout: PhaseLayout;
  /** Whether an n-example batch gives every replica's shard M examples. */
  fits(n: number): boolean;
  /** One optimizer step on (x, y); with `fill`, stage 0 also returns the cached prefix's outputs. */
  step(x: Tensor, y: Int32Array, lrFactor: number, fill?: boolean): Promise<PhaseStepResult>;
  /** Parameters and buffers of every stage (replica 0), named as in the full model. */
  stateDict(): Promise<Map<string, Tensor>>;
  /** Optimizer state of every stage (replica 0) merged in `order`, or null when nothing is trainable. */
  optimizerState(order: readonly string[]): Promise<OptimizerState | null>;
  close(): Promise<void>;
}

export type PhaseFactory = (o: PhaseOptions) => Promise<TrainingPhase>;

/** What one worker (stage s of replica r) reports after a step. */
export interface WorkerStepReport {
  metrics: [number, MicrobatchMetrics][];
  busy: number;
  /** Replica 0 only: [freeze layer, squared L2 norm of the reduced gradient held by this stage]. */
  gradSq: [number, number][];
  /** Stage 0 on a fill: the prefix outputs per micro-batch. */
  prefixOut: { data: Float32Array; shape: number[] }[];
}

/** The phase's step result from its workers' reports (`report(k)`, k = r * S + s), in that fixed order. */
export function combineStepReports(layout: PhaseLayout, report: (k: number) => WorkerStepReport, fill: boolean): PhaseStepResult {
  const { stages: S, replicas: R } = layout;
  let loss = 0, correct = 0, count = 0;
  const stageBusy = new Array<number>(S).fill(0);
  const gradSq = new Map<number, number>();
  const outs: { data: Float32Array; shape: number[] }[] = [];
  for (let r = 0; r < R; r++) {
    const per: MicrobatchMetrics[] = [];
    for (let s = 0; s < S; s++) {
      const m = report(r * S + s);
      stageBusy[s] += m.busy;
      for (const [, mm] of [...m.metrics].sort((p, q) => p[0] - q[0])) per.push(mm);
      for (const [l, v] of m.gradSq) gradSq.set(l, (gradSq.get(l) ?? 0) + v);
      outs.push(...m.prefixOut);
    }
    for (const mm of per) { loss += mm.loss; correct += mm.correct; count += mm.count; }
  }
  return { loss, correct, count, stageBusy, gradSq, prefixOut: fill ? concatRows(outs) : null };
}

function concatRows(outs: readonly { data: Float32Array; shape: number[] }[]): Tensor {
  if (outs.length === 0) throw new Error("elastic phase: a cache fill returned no prefix outputs");
  const tail = outs[0].shape.slice(1);
  const rows = outs.reduce((t, o) => t + o.shape[0], 0);
  const data = new Float32Array(rows * numel(tail));
  let off = 0;
  for (const o of outs) { data.set(o.data, off); off += o.data.length; }
  return new Tensor(data, [rows, ...tail]);
}

/** Whether the smallest replica shard of an n-example batch holds M examples. */
export function phaseFits(layout: PhaseLayout, n: number): boolean {
  return Math.floor(n / layout.replicas) >= layout.microbatches;
}

/**
 * Replica r's micro-batches of (x, y): its contiguous shard split into M parts, labels following
 * their examples (T per example for next-token targets).
 */
export function replicaMicrobatches(x: Tensor, y: Int32Array, layout: PhaseLayout): { inputs: Tensor[]; targets: Int32Array[] }[] {
  return shardBatch(x, y, layout.replicas).map((sh) => ({
    inputs: splitTensor(sh.x, layout.microbatches),
    targets: splitLabels(sh.y, layout.microbatches, sh.y.length / sh.x.shape[0]),
  }));
}
