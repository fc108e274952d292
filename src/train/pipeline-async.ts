// The asynchronous part of a pipeline run: an epoch runs as windows of the no-flush lists (each
// window one executor call spanning many optimizer steps).
import type { AsyncWindows } from "./pipeline-plan.js";
import { divergedError, type PipelineRun } from "./pipeline-run.js";

/** Consecutive windows of `size` mini-batches that split into M micro-batches, at most `count` of them. */
export function* windowsOf<T extends { x: { shape: readonly number[] } }>(batches: Iterable<T>, M: number, size: number, count: number): Generator<T[]> {
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
      if (!Number.isFinite(loss)) throw divergedError(run, loss, first + i + 1, epoch, " or a correction (--method)");
      run.report.windowStep(first + i + 1, loss, part[i].x.shape[0], run.opts.optimizer.lr * factors[i]);
    });
    run.report.endWindow();
  }
}
