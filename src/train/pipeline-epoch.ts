// One epoch of a pipeline run. Synchronous: each mini-batch is split into M micro-batches and run as
// one optimizer step of the schedule (by the loss-scaling rule its gradients are single-device ones).
// Asynchronous: the epoch runs as windows of the no-flush lists (each window one executor call
// spanning many optimizer steps). Both share the run engine (its executor replaced once when an
// asynchronous run's warm-up ends), the report, the LR schedule and the count of batches too small to split.
import type { RunEngine } from "../api/engine.js";
import type { LrSchedule } from "../optim/index.js";
import type { EpochReport } from "./epoch-report.js";
import { divergedError } from "./loop.js";
import type { PipelineTrainOptions } from "./options.js";
import type { AsyncWindows } from "./pipeline-plan.js";
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

export async function runSyncEpoch(run: PipelineRun, epoch: number): Promise<void> {
  const { engine } = run;
  for (const b of run.task.batches(epoch, 0)) {
    const n = b.x.shape[0];
    if (n < engine.microbatches) { run.skipped++; continue; } // a last partial batch too small to split
    const factor = run.lrSchedule(engine.steps);
    const r = await engine.step(b.x, b.y, factor);
    if (!Number.isFinite(r.loss)) throw divergedError(r.loss, engine.steps, epoch, run.opts.optimizer.lr);
    run.report.step(engine.steps, r.loss, n, run.opts.optimizer.lr * factor);
  }
}

/** Consecutive windows of `size` mini-batches that split into M micro-batches, at most `count` of them. */
function* windowsOf<T extends { x: { shape: readonly number[] } }>(batches: Iterable<T>, M: number, size: number, count: number): Generator<T[]> {
  let part: T[] = [];
  let done = 0;
  for (const b of batches) {
    if (b.x.shape[0] < M) continue;
    part.push(b);
    if (part.length === size) {
      yield part;
      part = [];
      if (++done === count) return;
    }
  }
}

/** One asynchronous epoch: each window of the epoch is one run of the no-flush lists. */
export async function runAsyncEpoch(run: PipelineRun, epoch: number, win: AsyncWindows): Promise<void> {
  const { engine } = run;
  for (const part of windowsOf(run.task.batches(epoch, 0), engine.microbatches, win.window, win.count)) {
    const first = engine.steps;
    const factors = part.map((_, i) => run.lrSchedule(first + i));
    const { losses } = await engine.window(part, factors);
    losses.forEach((loss, i) => {
      if (!Number.isFinite(loss)) throw divergedError(loss, first + i + 1, epoch, run.opts.optimizer.lr, " or a correction (--method)");
      run.report.windowStep(first + i + 1, loss, part[i].x.shape[0], run.opts.optimizer.lr * factors[i]);
    });
    run.report.endWindow();
  }
}
