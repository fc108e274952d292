// Where a resumed pipeline continues (the library's and `train`'s alike): the checkpoint's weights,
// loaded into the main thread's model, its optimizer state (handed to the stages), step and epoch
// counters, its extra JSON, and the asynchronous method's state.
import { EXTRA_PREFIX, loadCheckpoint, OPTIM_PREFIX, type Json } from "../checkpoint/index.js";
import type { OptimizerState } from "../optim/index.js";
import { asyncStateFromCheckpoint, type AsyncState } from "../pipeline/runtime/async-state.js";
import type { PipelineModel } from "../pipeline/runtime/model-source.js";

export interface CheckpointStart {
  step: number;
  epoch: number;
  optimizerState: OptimizerState;
  /** The checkpoint's extra JSON (the saving run's own). */
  extra: { [key: string]: Json };
  /** T1 counters and policy buffers of the asynchronous method (absent: start from zero). */
  asyncResume?: AsyncState;
}

export interface StartOptions {
  /** The stage count of an asynchronous run, whose saved state is checked against it (null: synchronous). */
  asyncStages: number | null;
  /** An MPI rank's model that holds only its own units: it reads only their tensors. */
  partial?: boolean;
  /** Said first in errors ("createPipeline: "). */
  prefix?: string;
  /** Said after the misfit of a checkpoint and model. */
  fitHint?: string;
}

/** A stored tensor name of the units in `own`: a weight, an optimizer buffer of one, or trainer state. */
function ownTensor(name: string, own: ReadonlyMap<string, unknown>): boolean {
  if (name.startsWith(EXTRA_PREFIX)) return true;
  if (!name.startsWith(OPTIM_PREFIX)) return own.has(name);
  const key = name.slice(OPTIM_PREFIX.length);
  return own.has(key.slice(0, key.lastIndexOf(".")));
}

/** Reads checkpoint `path` into `model`; returns where the run continues. */
export function checkpointStart(path: string, model: Pick<PipelineModel, "stateDict" | "loadStateDict">, o: StartOptions): CheckpointStart {
  const prefix = o.prefix ?? "";
  const own = model.stateDict();
  const ck = loadCheckpoint(path, o.partial ? (name) => ownTensor(name, own) : undefined);
  try {
    model.loadStateDict(ck.model);
  } catch (e) {
    throw new Error(`${prefix}checkpoint ${path} does not fit this model (${(e as Error).message})${o.fitHint ?? ""}`);
  }
  if (!ck.optimizer) throw new Error(`${prefix}checkpoint ${path} has no optimizer state; it cannot be resumed exactly`);
  const extra = (ck.extra ?? {}) as { [key: string]: Json };
  return {
    step: ck.step, epoch: ck.epoch, optimizerState: ck.optimizer as unknown as OptimizerState, extra,
    asyncResume: o.asyncStages !== null ? asyncStateFromCheckpoint(extra.async, ck.extraTensors, o.asyncStages) : undefined,
  };
}
