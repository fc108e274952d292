// What every pipeline createPipeline returns has in common, freezing (PipeTransformer) or not.
import type { MicrobatchMetrics, Target } from "../pipeline/stage.js";
import type { Tensor } from "../tensor/tensor.js";
import type { MiniBatch } from "./engine.js";
import type { WorkerMemory } from "../pipeline/runtime/memory.js";

/** A pipeline-parallel trainer; see {@link createPipeline}. */
export interface Pipe {
  /** Optimizer steps taken (including those of a resumed checkpoint). */
  readonly steps: number;
  /**
   * Per worker (stage set x tensor rank x replica, tensor rank innermost): bytes of parameters,
   * gradients, optimizer state and peak activations (the most over the steps so far), counted from
   * tensors; null before the first step and on a freezing pipe.
   */
  readonly memory: readonly WorkerMemory[] | null;
  /** One optimizer step on mini-batch (x, y); resolves to its mean loss. */
  step(x: Tensor, y: Target): Promise<number>;
  /**
   * Several optimizer steps, mini-batch k feeding step k; resolves to each step's mean loss. On an
   * asynchronous schedule this is one window of `window` steps without flush (the only way it trains).
   */
  run(batches: readonly MiniBatch[]): Promise<number[]>;
  /** The model's output for x with the current weights (eval mode, no gradient). */
  eval(x: Tensor): Promise<Tensor>;
  /** Mean loss, correct predictions (class-id targets) and target count of (x, y), in eval mode, without training. */
  evaluate(x: Tensor, y: Target): Promise<MicrobatchMetrics>;
  /** Copies of every parameter and buffer, named as in the model's state dict (PyTorch names). */
  stateDict(): Promise<Map<string, Tensor>>;
  /** Replaces the weights (names and shapes must match); the optimizer state is kept. */
  loadStateDict(state: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void>;
  /** Writes a checkpoint; createPipeline({resume: path}) continues from it. */
  save(path: string): Promise<void>;
  /** Stops the workers. processes: collective; it also finalizes MPI (the process's last pipeline). */
  close(): Promise<void>;
}
