// How an MPI rank ends a job it cannot continue: one line naming the rank (where it sits in the
// pipeline, and the action that failed), the stack with PIPEWRIGHT_DEBUG, then MPI_Abort, so no
// other rank is left waiting for it inside a collective call. And what a rank that waits too long
// says about whom it waits for. Shared by every executor and phase that runs on MPI; how a failure
// names its place (placeParts) by the threads and inline executors too.
import { writeSync } from "node:fs";
import { formatAction, type Action } from "../schedule/action.js";
import { PipelineActionError, type Wait } from "./interpreter.js";
import type { RankPosition } from "../../transport/mpi/layout.js";

/** "replica r, worker w, tensor rank t" in parts: the replica and tensor rank where there are several, the worker if `worker`. */
export function placeParts(at: RankPosition, layout: { replicas: number; tensor: number }, worker = true): string[] {
  return [layout.replicas > 1 ? `replica ${at.replica}` : "", worker ? `worker ${at.worker}` : "", layout.tensor > 1 ? `tensor rank ${at.tensor}` : ""]
    .filter(Boolean);
}

/** Prints `pipewright: rank R (where) failed: what` and ends the whole job (does not return). */
export function endJob(mpi: { rank: number; abort(code: number): never }, e: unknown, where = ""): never {
  const err = e instanceof Error ? e : new Error(String(e));
  const what = err instanceof PipelineActionError ? `stage ${err.stage}, action ${err.action}: ${err.causeMessage}` : err.message;
  writeSync(2, `pipewright: rank ${mpi.rank}${where ? ` (${where})` : ""} failed: ${what}\n`);
  if (process.env.PIPEWRIGHT_DEBUG) writeSync(2, `${(err instanceof PipelineActionError ? err.causeStack : undefined) ?? err.stack ?? ""}\n`);
  return mpi.abort(1);
}

/**
 * The watchdog's sentence for a rank blocked at `next` on `waits` (the interpreter's). Without a
 * next action the rank waits in `collective`. `ranks`: the rank of a sending virtual stage, the ranks
 * of a stage's other replicas.
 */
export function describeWait(rank: number, next: Action | null, waits: readonly Wait[], collective: string,
  ranks: { ofStage(virtualStage: number): number; ofReplicas(stage: number): number[] }): string {
  if (!next) return `waiting in ${collective} for the other ranks (one of them is stopped, hung or slower than the timeout)`;
  const from = waits.map((w) => {
    if (w.from === "stage") return `${w.key} from rank ${ranks.ofStage(w.virtualStage)}`;
    if (w.from === "replicas") return `${w.key} from rank ${ranks.ofReplicas(w.stage).join(", ")} (the gradient sum over the replicas)`;
    if (w.from === "model") return `${w.key} from the other ranks of the model (the gradient-norm sum before clipping)`;
    return `${w.key} from the data loader`;
  });
  return `rank ${rank} waits at action ${formatAction(next)} for ${from.join(", ")} (that rank is stopped, hung or slower than the timeout)`;
}
