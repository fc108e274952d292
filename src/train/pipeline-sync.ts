// One epoch of a synchronous pipeline run: each mini-batch is split into M micro-batches and run as
// one optimizer step of the schedule (by the loss-scaling rule its gradients are single-device ones).
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import { divergedError, noteMemory, noteTrace, type PipelineRun } from "./pipeline-run.js";

export async function runSyncEpoch(run: PipelineRun, epoch: number): Promise<void> {
  const M = run.opts.pipeline.microbatches;
  for (const b of run.task.batches(epoch, 0)) {
    const n = b.x.shape[0];
    if (n < M) { run.skipped++; continue; } // a last partial batch too small to split
    const factor = run.lrSchedule(run.step);
    const r = await run.executor.step(splitMiniBatch(b.x, b.y, M), factor);
    noteMemory(run, r);
    noteTrace(run);
    run.step++;
    if (!Number.isFinite(r.loss)) throw divergedError(run, r.loss, epoch);
    run.report.step(run.step, r.loss, n, run.opts.lr * factor);
  }
}
