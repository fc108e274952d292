// One epoch of a synchronous pipeline run: each mini-batch is split into M micro-batches and run as
// one optimizer step of the schedule (by the loss-scaling rule its gradients are single-device ones).
import { divergedError, type PipelineRun } from "./pipeline-run.js";

export async function runSyncEpoch(run: PipelineRun, epoch: number): Promise<void> {
  const { engine } = run;
  for (const b of run.task.batches(epoch, 0)) {
    const n = b.x.shape[0];
    if (n < engine.microbatches) { run.skipped++; continue; } // a last partial batch too small to split
    const factor = run.lrSchedule(engine.steps);
    const r = await engine.step(b.x, b.y, factor);
    if (!Number.isFinite(r.loss)) throw divergedError(run, r.loss, engine.steps, epoch);
    run.report.step(engine.steps, r.loss, n, run.opts.optimizer.lr * factor);
  }
}
