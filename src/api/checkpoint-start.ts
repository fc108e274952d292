// A run's checkpoint file, written and read alike by every run (the run engine's, `train`'s, the
// elastic trainer's): weights, optimizer state, counters and the run's own extra JSON; and where a
// resumed pipeline continues (checkpointStart: weights into the main thread's model, the rest for the stages).
import {
  EXTRA_PREFIX, loadCheckpoint, OPTIM_PREFIX, saveCheckpoint, toJson, type Checkpoint, type CheckpointInput, type Json,
} from "../checkpoint/index.js";
import type { OptimizerState } from "../optim/index.js";
import { asyncStateFromCheckpoint, type AsyncState } from "../pipeline/runtime/async-state.js";
import type { PipelineModel } from "../pipeline/runtime/model-source.js";
import { isWriterRank } from "../transport/mpi/env.js";

/** A run's checkpoint: the optimizer's state (null only before anything trained: a freezing pipe's first save) and the run's own JSON. */
export type RunCheckpoint = Omit<CheckpointInput, "optimizer" | "extra"> & { optimizer: OptimizerState | null; extra: object };

/** Writes `c` to `path`; under MPI rank 0 alone writes (the ranks gathered `c` together). */
export function writeRunCheckpoint(path: string, c: RunCheckpoint): void {
  if (isWriterRank()) saveCheckpoint(path, { ...c, optimizer: c.optimizer ?? undefined, extra: toJson(c.extra) });
}

/** Reads `path` (the stored tensors `want` keeps); without optimizer state it cannot continue exactly, unless "optional". */
export function readRunCheckpoint(path: string, o: { prefix?: string; optimizer?: "optional"; want?: (name: string) => boolean } = {}):
  Omit<Checkpoint, "optimizer" | "extra"> & { optimizer: OptimizerState | null; extra: { [key: string]: Json } } {
  const ck = loadCheckpoint(path, o.want);
  if (!ck.optimizer && !o.optimizer) throw new Error(`${o.prefix ?? ""}checkpoint ${path} has no optimizer state; it cannot be resumed exactly`);
  const optimizer = (ck.optimizer ?? null) as unknown as OptimizerState | null;
  return { ...ck, optimizer, extra: (ck.extra ?? {}) as { [key: string]: Json } };
}

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
  const ck = readRunCheckpoint(path, { prefix, want: o.partial ? (name) => ownTensor(name, own) : undefined });
  try {
    model.loadStateDict(ck.model);
  } catch (e) {
    throw new Error(`${prefix}checkpoint ${path} does not fit this model (${(e as Error).message})${o.fitHint ?? ""}`);
  }
  return {
    step: ck.step, epoch: ck.epoch, optimizerState: ck.optimizer!, extra: ck.extra,
    asyncResume: o.asyncStages !== null ? asyncStateFromCheckpoint(ck.extra.async, ck.extraTensors, o.asyncStages) : undefined,
  };
}
