// The state a resumed run starts from: the counters every CLI loop keeps (epoch, step, and the
// elapsed time and history in the checkpoint's extra), and for a pipeline the library's checkpoint
// start (weights into the main thread's model, optimizer and asynchronous state for the stages).
// A fresh run starts from zero.
import { checkpointStart } from "../api/checkpoint-start.js";
import type { Model } from "../nn/models/model.js";
import type { OptimizerState } from "../optim/index.js";
import type { AsyncState } from "../pipeline/runtime/async-state.js";
import { runCounters, type RunCounters } from "./loop.js";

export interface PipelineStart extends RunCounters {
  optimizerState?: OptimizerState;
  /** T1 counters and policy buffers of the asynchronous method (absent: start from zero). */
  asyncResume?: AsyncState;
}

/**
 * Reads checkpoint `path` into `model` and returns where the run continues. `asyncStages`: the
 * stage count of an asynchronous run, whose saved state is checked against it (null: synchronous).
 */
export function pipelineStart(path: string | undefined, model: Model, asyncStages: number | null): PipelineStart {
  if (!path) return runCounters(undefined);
  const ck = checkpointStart(path, model, { asyncStages, partial: model.partial, fitHint: "; resume with the same --model as the saved run" });
  return { ...runCounters(path, ck), optimizerState: ck.optimizerState, asyncResume: ck.asyncResume };
}
