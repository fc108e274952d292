// The executor interface: run one optimizer step of the schedule on a mini-batch already split into
// micro-batches, and hand back the trained weights. `inline`, `threads` and `processes` implement it.
import type { Tensor } from "../../tensor/tensor.js";
import type { MicrobatchMetrics, Target } from "../stage.js";
import type { OptimizerState } from "../../optim/index.js";
import type { AsyncState } from "./async-state.js";
import type { WorkerMemory } from "./memory.js";

/** Executors of the schedule IR (the one list: the CLI, createPipeline and checkpoints read it). */
export const EXECUTORS = ["inline", "threads", "processes"] as const;
export type ExecutorName = (typeof EXECUTORS)[number];

/**
 * One mini-batch, split: micro-batch j = (inputs[j], labels[j]); scale = 1 / target rows in the
 * mini-batch. Labels are class ids (Int32Array) or float target tensors [rows_j, ...].
 */
export interface SplitBatch {
  inputs: readonly Tensor[];
  labels: readonly Target[];
  /** The loss-scaling rule (src/pipeline/stage.ts): 1 / target rows in the mini-batch. */
  scale: number;
  /** Stage 0's workers first run the model's prepareInput on their rows (threads, processes), reported in StepResult.prepared. */
  prepare?: boolean;
}

/** What stage 0's worker made of its rows of micro-batch `mb` with the model's prepareInput. */
export interface PreparedInput { mb: number; data: Float32Array; shape: number[] }

export interface StepResult {
  /** Mini-batch mean loss (sum of the scaled micro-batch losses). */
  loss: number;
  correct: number;
  count: number;
  perMicrobatch: MicrobatchMetrics[];
  /** Seconds each worker spent inside actions during the step. */
  busy: number[];
  /** Per physical stage: most micro-batch activations held at once (compare validateSchedule). */
  peakActivations: number[];
  /** Threads executor: per worker, the most memory its thread has held so far (its isolate's JS heap + ArrayBuffers). */
  workerPeakBytes?: number[];
  /** Per worker (replica, worker, tensor rank; tensor innermost): parameter, gradient, optimizer and peak activation bytes. */
  memory?: WorkerMemory[];
  /** Threads executor: each replica's share of the step, in replica order. */
  replicas?: ReplicaStep[];
  /** setup.gradientNorms: [unit index, squared norm of its summed gradient] (replica 0's, in stage order). */
  gradSquares?: [number, number][];
  /**
   * A step of `prepare` batches: each micro-batch's prepared rows, replica by replica (its rows in order).
   * @internal the elastic trainer's activation cache
   */
  prepared?: PreparedInput[];
}

/** One replica's share of a step: its micro-batch shares' metrics summed, and its workers' seconds. */
export interface ReplicaStep {
  loss: number;
  correct: number;
  count: number;
  /** Seconds in F, B and W, in REDUCE (waiting included) and in STEP, summed over its workers. */
  compute: number;
  reduce: number;
  update: number;
  /** Its slowest worker's wall-clock seconds for the list. */
  seconds: number;
}

/** Evaluation micro-batches: inputs[j] with labels[j], run forward only, in eval mode, without gradients. */
export type EvalBatches = Pick<SplitBatch, "inputs" | "labels">;

export interface Executor {
  readonly name: ExecutorName;
  /** Runs the schedule's lists once (one optimizer step) with the given learning-rate factor. */
  step(batch: SplitBatch, lrFactor?: number): Promise<StepResult>;
  /**
   * Runs the lists once when they span several optimizer steps (schedule.steps > 1, e.g. an
   * asynchronous schedule): batch k feeds micro-batch ids k*M .. k*M+M-1, STEP k uses lrFactors[k].
   */
  run(batches: readonly SplitBatch[], lrFactors?: readonly number[]): Promise<StepResult>;
  /**
   * Evaluation through the stages with the current weights, between steps: loss (each micro-batch's
   * times `scale`, default 1), correct predictions and targets, summed in micro-batch order.
   */
  evaluate(batches: EvalBatches, scale?: number): Promise<MicrobatchMetrics>;
  /** The model's outputs for each input (eval mode, no gradients), through the stages. */
  predict(inputs: readonly Tensor[]): Promise<Tensor[]>;
  /** Copies of every parameter and buffer, named as in the full model's state dict. */
  stateDict(): Promise<Map<string, Tensor>>;
  /** Every stage's optimizer state in the single-device shape (one group, parameters in `order`, the model's). */
  optimizerState(order: readonly string[]): Promise<OptimizerState>;
  /** Every stage's asynchronous state between runs (AsyncRuntime.snapshot()); null when no asynchronous method runs. */
  asyncState(): Promise<AsyncState | null>;
  /**
   * Replaces the weights of the running workers (every parameter and buffer of the model, by the
   * full model's names); the optimizer state is kept. Between steps only; processes: collective,
   * every rank passes the same state. Not with an asynchronous method (its weight versions would
   * mix the old weights and the new).
   */
  loadStateDict(state: ReadonlyMap<string, Tensor>): Promise<void>;
  close(): Promise<void>;
}

export function checkBatches(batches: readonly SplitBatch[], microbatches: number, steps: number): void {
  if (batches.length !== steps) throw new Error(`the schedule's lists span ${steps} optimizer step(s); got ${batches.length} mini-batches`);
  for (const batch of batches) {
    if (batch.inputs.length !== microbatches || batch.labels.length !== microbatches) {
      throw new Error(`the schedule runs ${microbatches} micro-batches per step, got ${batch.inputs.length} inputs and ${batch.labels.length} label sets`);
    }
    if (!(batch.scale > 0) || !Number.isFinite(batch.scale)) throw new Error(`loss scale must be a positive number, got ${batch.scale}`);
  }
}
