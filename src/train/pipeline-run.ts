// What the synchronous loop and the asynchronous windows of a pipeline run share: the executor
// (replaced once when an asynchronous run's warm-up ends), the step counter, the report, and the
// per-worker memory peaks the executor reports.
import type { LrSchedule } from "../optim/index.js";
import type { Executor, StepResult } from "../pipeline/runtime/executor.js";
import type { EpochReport } from "./epoch-report.js";
import type { PipelineTrainOptions } from "./options.js";
import type { Task } from "./task.js";
import { isTimingSource } from "../pipeline/runtime/action-records.js";
import type { TraceWriter } from "../trace/trace-writer.js";

export interface PipelineRun {
  readonly opts: PipelineTrainOptions;
  readonly task: Task;
  readonly report: EpochReport;
  /** LR factor per 0-based optimizer step. */
  readonly lrSchedule: LrSchedule;
  executor: Executor;
  /** Optimizer steps done (counting a resumed run's). */
  step: number;
  /** Batches too small to split into the micro-batches (skipped). */
  skipped: number;
  /** Per worker thread: the largest memory it held (JS heap + ArrayBuffers); null on the inline executor. */
  workerPeakBytes: number[] | null;
  /** --trace: the records of every step so far. */
  trace?: TraceWriter | null;
}

/** --trace: keeps the records of the step (or window) the executor has just run. */
export function noteTrace(run: PipelineRun): void {
  if (run.trace && isTimingSource(run.executor)) run.trace.add(run.executor);
}

/** Keeps the per-worker peaks of a step's result (the threads executor reports them). */
export function noteMemory(run: PipelineRun, r: StepResult): void {
  if (!r.workerPeakBytes) return;
  const prev = run.workerPeakBytes ?? [];
  run.workerPeakBytes = r.workerPeakBytes.map((b, w) => Math.max(b, prev[w] ?? 0));
}

/** The error for a non-finite loss, naming the step and what to try. */
export function divergedError(run: PipelineRun, loss: number, epoch: number, hint = ""): Error {
  return new Error(`training diverged: loss is ${loss} at step ${run.step} (epoch ${epoch + 1}); try a smaller --lr than ${run.opts.lr}${hint}`);
}
