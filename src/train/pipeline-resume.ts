// The state a resumed pipeline run starts from: the checkpoint's weights (loaded into the main
// thread's model), its optimizer state (handed to the stages), counters, history, and the
// asynchronous method's state. A fresh run starts from zero.
import { EXTRA_PREFIX, loadCheckpoint, OPTIM_PREFIX } from "../checkpoint/index.js";
import type { Model } from "../nn/models/model.js";
import type { OptimizerState } from "../optim/index.js";
import { asyncStateFromCheckpoint, type AsyncState } from "../pipeline/runtime/async-state.js";
import type { ResumeExtra, TrainSummary } from "./loop.js";
import type { MetricsRecord } from "./metrics.js";

export interface PipelineStart {
  startEpoch: number;
  step: number;
  /** Seconds spent by the earlier runs. */
  elapsedBefore: number;
  history: MetricsRecord[];
  resumedFrom: TrainSummary["resumed_from"];
  optimizerState?: OptimizerState;
  /** T1 counters and policy buffers of the asynchronous method (absent: start from zero). */
  asyncResume?: AsyncState;
}

export const FRESH_START: Readonly<PipelineStart> = Object.freeze({
  startEpoch: 0, step: 0, elapsedBefore: 0, history: [], resumedFrom: null,
});

/** A stored tensor name of the units in `own`: a weight, an optimizer buffer of one, or trainer state. */
function ownTensor(name: string, own: ReadonlyMap<string, unknown>): boolean {
  if (name.startsWith(EXTRA_PREFIX)) return true;
  if (!name.startsWith(OPTIM_PREFIX)) return own.has(name);
  const key = name.slice(OPTIM_PREFIX.length);
  return own.has(key.slice(0, key.lastIndexOf(".")));
}

/**
 * Reads checkpoint `path` into `model` and returns where the run continues. `asyncStages`: the
 * stage count of an asynchronous run, whose saved state is checked against it (null: synchronous).
 */
export function pipelineStart(path: string | undefined, model: Model, asyncStages: number | null): PipelineStart {
  if (!path) return { ...FRESH_START, history: [] };
  // A part of the model (an MPI rank's units) reads its own tensors only: its weights, their
  // optimizer state and the trainer's tensors, from the parts that hold them.
  const own = model.stateDict();
  const ck = loadCheckpoint(path, model.partial ? (name) => ownTensor(name, own) : undefined);
  try {
    model.loadStateDict(ck.model);
  } catch (e) {
    throw new Error(`checkpoint ${path} does not fit this model (${(e as Error).message}); resume with the same --model as the saved run`);
  }
  if (!ck.optimizer) throw new Error(`checkpoint ${path} has no optimizer state; it cannot be resumed exactly`);
  const extra = (ck.extra ?? {}) as Partial<ResumeExtra> & { async?: unknown };
  return {
    startEpoch: ck.epoch,
    step: ck.step,
    elapsedBefore: Number(extra.elapsed_s ?? 0),
    history: Array.isArray(extra.history) ? extra.history : [],
    resumedFrom: { path, epoch: ck.epoch, step: ck.step },
    optimizerState: ck.optimizer as unknown as OptimizerState,
    asyncResume: asyncStages !== null ? asyncStateFromCheckpoint(extra.async, ck.extraTensors, asyncStages) : undefined,
  };
}
