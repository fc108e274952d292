// What the synchronous loop and the asynchronous windows of a pipeline run share: the run engine
// (its executor replaced once when an asynchronous run's warm-up ends), the report, the LR schedule
// and the count of batches too small to split.
import type { RunEngine } from "../api/engine.js";
import type { LrSchedule } from "../optim/index.js";
import type { EpochReport } from "./epoch-report.js";
import type { PipelineTrainOptions } from "./options.js";
import type { Task } from "./task.js";

export interface PipelineRun {
  readonly opts: PipelineTrainOptions;
  readonly task: Task;
  readonly report: EpochReport;
  /** LR factor per 0-based optimizer step. */
  readonly lrSchedule: LrSchedule;
  /** Steps, windows, evaluation and checkpoints; its step counter counts a resumed run's. */
  readonly engine: RunEngine;
  /** Batches too small to split into the micro-batches (skipped). */
  skipped: number;
}

/** The error for a non-finite loss at 1-based optimizer step `step`, naming what to try. */
export function divergedError(run: PipelineRun, loss: number, step: number, epoch: number, hint = ""): Error {
  return new Error(`training diverged: loss is ${loss} at step ${step} (epoch ${epoch + 1}); try a smaller --lr than ${run.opts.optimizer.lr}${hint}`);
}
