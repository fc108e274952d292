// The state a resumed pipeline run starts from: the library's checkpoint start (weights into the
// main thread's model, optimizer and asynchronous state for the stages, counters) plus what the
// CLI's runs keep in the checkpoint's extra (elapsed time, history). A fresh run starts from zero.
import { checkpointStart } from "../api/checkpoint-start.js";
import type { Model } from "../nn/models/model.js";
import type { OptimizerState } from "../optim/index.js";
import type { AsyncState } from "../pipeline/runtime/async-state.js";
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

/**
 * Reads checkpoint `path` into `model` and returns where the run continues. `asyncStages`: the
 * stage count of an asynchronous run, whose saved state is checked against it (null: synchronous).
 */
export function pipelineStart(path: string | undefined, model: Model, asyncStages: number | null): PipelineStart {
  if (!path) return { startEpoch: 0, step: 0, elapsedBefore: 0, history: [], resumedFrom: null };
  const ck = checkpointStart(path, model, { asyncStages, partial: model.partial, fitHint: "; resume with the same --model as the saved run" });
  const extra = ck.extra as Partial<ResumeExtra>;
  return {
    startEpoch: ck.epoch,
    step: ck.step,
    elapsedBefore: Number(extra.elapsed_s ?? 0),
    history: Array.isArray(extra.history) ? extra.history : [],
    resumedFrom: { path, epoch: ck.epoch, step: ck.step },
    optimizerState: ck.optimizerState,
    asyncResume: ck.asyncResume,
  };
}
