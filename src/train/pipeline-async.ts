// The asynchronous part of a pipeline run: an epoch runs as windows of the no-flush lists (each
// window one executor call spanning many optimizer steps), and the end of the synchronous warm-up
// hands its weights and optimizer state to the asynchronous stages.
import { mergeStates, toPlain, type PlainOptimizerState } from "../optim/index.js";
import type { Executor } from "../pipeline/runtime/executor.js";
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import { hasLocalState } from "../pipeline/runtime/local-state.js";
import type { AsyncWindows } from "./pipeline-plan.js";
import { divergedError, noteMemory, noteTrace, type PipelineRun } from "./pipeline-run.js";

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
  const M = run.opts.pipeline.microbatches;
  for (const part of windowsOf(run.task.batches(epoch, 0), M, win.window, win.count)) {
    const factors = part.map((_, i) => run.lrSchedule(run.step + i));
    const split = part.map((b) => splitMiniBatch(b.x, b.y, M));
    const r = await run.executor.run(split, factors);
    noteMemory(run, r);
    noteTrace(run);
    for (let i = 0; i < part.length; i++) {
      const loss = r.perMicrobatch.slice(i * M, (i + 1) * M).reduce((a, m) => a + m.loss, 0);
      run.step++;
      if (!Number.isFinite(loss)) throw divergedError(run, loss, epoch, " or a correction (--method)");
      run.report.windowStep(run.step, loss, part[i].x.shape[0], run.opts.lr * factors[i]);
    }
    run.report.endWindow();
  }
}

/**
 * The synchronous warm-up is over: `syncModel` copies its weights to the main model (threads), and
 * the asynchronous executor `start` makes continues from its optimizer state (in `order`).
 */
export async function endWarmup(run: PipelineRun, order: readonly string[], syncModel: () => Promise<void>,
  start: (optimizerState: PlainOptimizerState) => Promise<Executor>): Promise<void> {
  await syncModel();
  // An MPI rank keeps its own stages' state (the next executor has the same stages): no gather.
  const ex = run.executor;
  const state = hasLocalState(ex) ? mergeStates(ex.localState().optimizer, order) : await ex.optimizerState(order);
  await ex.close();
  run.executor = await start(toPlain(state));
}
