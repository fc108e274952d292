// Forward-only lists for evaluation: every micro-batch goes through every virtual stage once, in
// micro-batch order, with no backward and no STEP. A worker runs its virtual stages of micro-batch j
// (in model order) before those of j+1, so activations flow down the pipeline as in GPipe's forward
// phase and the lists cannot deadlock.
import { action, type Action, type Schedule } from "./action.js";

/** Per-worker F lists over `microbatches` micro-batches, laid out on `schedule`'s stages and workers. */
export function forwardOnlyLists(schedule: Pick<Schedule, "stages" | "chunks" | "stageToWorker" | "workers">, microbatches: number): Action[][] {
  if (!Number.isInteger(microbatches) || microbatches < 0) throw new Error(`forward-only lists need a whole number of micro-batches >= 0, got ${microbatches}`);
  const S = schedule.stages, V = S * schedule.chunks;
  const lists: Action[][] = schedule.workers.map(() => []);
  for (let mb = 0; mb < microbatches; mb++) {
    for (let vs = 0; vs < V; vs++) lists[schedule.stageToWorker[vs % S]].push(action(vs % S, "F", mb, Math.floor(vs / S)));
  }
  return lists;
}
