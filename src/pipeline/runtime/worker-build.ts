// How a worker of any executor starts (a worker thread, an MPI rank): build the model from its
// source, load its share of the state, keep its stages and put an interpreter over its action list.
// Its weights change only through its own STEPs, so it holds them between lists (ownsWeights).
import type { MicrobatchMetrics } from "../stage.js";
import type { AsyncRuntime } from "./async-weights.js";
import { createAsyncRuntime } from "./async-weights.js";
import { WorkerInterpreter, type Outbox } from "./interpreter.js";
import { loadLoss } from "./loss-source.js";
import { loadModelSource } from "./model-source.js";
import { buildWorkerStages, shapeOf, sourceOf, syntheticDelay, type PipelineSetup } from "./setup.js";
import { loadWorkerState, type WorkerState } from "./worker-state.js";

export interface BuiltWorker {
  interp: WorkerInterpreter;
  /** The asynchronous method's state of this worker's stages (null for synchronous schedules). */
  asyncRuntime: AsyncRuntime | null;
}

/**
 * Worker `worker` of `setup`. Every parameter is overwritten by `share`, so a built-in model skips
 * its random initialisation; only the worker's units stay alive (held by its stages).
 */
export async function buildWorker(setup: PipelineSetup, worker: number, share: Pick<WorkerState, "units" | "entries">, outbox: Outbox,
  onMetrics: (microbatch: number, m: MicrobatchMetrics) => void): Promise<BuiltWorker> {
  const model = await loadModelSource(sourceOf(setup), { initialise: false });
  const loss = await loadLoss(setup.loss);
  loadWorkerState(model, share);
  model.train();
  const stages = buildWorkerStages(model, setup, worker, loss);
  const asyncRuntime = createAsyncRuntime(stages, setup.async);
  const interp = new WorkerInterpreter({
    worker, actions: setup.schedule.workers[worker], stages, shape: shapeOf(setup.schedule), outbox,
    // The asynchronous method is rebuilt from the setup's JSON, like the model.
    hooks: asyncRuntime?.hooks, actionDelay: syntheticDelay(setup.instrumentation, setup.schedule.chunks),
    onMetrics, ownsWeights: true, recordActions: setup.instrumentation?.recordActions === true,
  });
  return { interp, asyncRuntime };
}
