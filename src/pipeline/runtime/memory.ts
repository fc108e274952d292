// Per-worker memory of a pipeline run, counted from tensors (deterministic, unlike a process's RSS):
// what each worker (its stages x tensor rank x replica) holds for parameters, gradients, optimizer
// state and, at the step's high-water mark, activations.
import type { WorkerInterpreter } from "./interpreter.js";
import type { RankPosition } from "../../transport/mpi/layout.js";
import type { Schedule } from "../schedule/action.js";

export interface WorkerMemory {
  /** Pipeline worker, replica and tensor-parallel rank of this entry. */
  worker: number;
  replica: number;
  tensor: number;
  /** The physical stages the worker holds. */
  stages: number[];
  /** Every parameter of its stages (a tensor-parallel rank's shards). */
  parameterBytes: number;
  /** One gradient per trainable parameter (allocated by each step's backward). */
  gradientBytes: number;
  /** The optimizer's state as it stands (AdamW: two floats per trainable parameter once it has stepped). */
  optimizerBytes: number;
  /** Most activation bytes held at once during the last step (WorkerInterpreter.peakActivationBytes). */
  peakActivationBytes: number;
}

/** WorkerMemory's byte counts in its order (parameters, gradients, optimizer state, peak activations). */
export type MemoryBytes = [number, number, number, number];

/** What `interp`'s stages hold. */
export function memoryBytes(interp: WorkerInterpreter): MemoryBytes {
  let parameterBytes = 0, gradientBytes = 0, optimizerBytes = 0;
  for (const ps of interp.stages.values()) {
    for (const p of ps.chunks.flatMap((c) => c.parameters)) {
      parameterBytes += p.data.byteLength;
      if (p.requiresGrad) gradientBytes += p.data.byteLength;
    }
    if (ps.optimizer) optimizerBytes += ps.optimizer.stateBytes();
  }
  return [parameterBytes, gradientBytes, optimizerBytes, interp.peakActivationBytes];
}

/** The record of the worker at `at` (its stages: the schedule's stages on its worker), from its memoryBytes. */
export function memoryRecord(schedule: Pick<Schedule, "stageToWorker">, at: RankPosition, [parameterBytes, gradientBytes, optimizerBytes, peakActivationBytes]: MemoryBytes): WorkerMemory {
  const stages = schedule.stageToWorker.flatMap((w, s) => (w === at.worker ? [s] : []));
  return { worker: at.worker, replica: at.replica, tensor: at.tensor, stages, parameterBytes, gradientBytes, optimizerBytes, peakActivationBytes };
}
