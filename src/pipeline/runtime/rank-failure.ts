// How an MPI rank ends a job it cannot continue: one line naming the rank (where it sits in the
// pipeline, and the action that failed), the stack with PIPEWRIGHT_DEBUG, then MPI_Abort, so no
// other rank is left waiting for it inside a collective call. And what a rank that waits too long
// says about whom it waits for. Shared by every executor and phase that runs on MPI.
import { writeSync } from "node:fs";
import { formatAction, type Action } from "../schedule/action.js";
import { messageSource, PipelineActionError } from "./interpreter.js";

/** What abort needs of the transport. */
export interface Abortable { rank: number; abort(code: number): never }

/** Prints `pipewright: rank R (where) failed: what` and ends the whole job (does not return). */
export function endJob(mpi: Abortable, e: unknown, where = ""): never {
  const err = e instanceof Error ? e : new Error(String(e));
  const what = err instanceof PipelineActionError ? `stage ${err.stage}, action ${err.action}: ${err.causeMessage}` : err.message;
  writeSync(2, `pipewright: rank ${mpi.rank}${where ? ` (${where})` : ""} failed: ${what}\n`);
  if (process.env.PIPEWRIGHT_DEBUG) writeSync(2, `${(err instanceof PipelineActionError ? err.causeStack : undefined) ?? err.stack ?? ""}\n`);
  return mpi.abort(1);
}

/**
 * The watchdog's sentence for a rank blocked at `next` on the message keys `missing`; `rankOfStage`
 * maps the sending virtual stage to its rank. Without a next action the rank waits in `collective`.
 */
export function describeWait(rank: number, next: Action | null, missing: readonly string[], collective: string,
  rankOfStage: (virtualStage: number) => number): string {
  if (!next) return `waiting in ${collective} for the other ranks (one of them is stopped, hung or slower than the timeout)`;
  const from = missing.map((k) => {
    const src = messageSource(k);
    return src === null ? k : `${k} from rank ${rankOfStage(src)}`;
  });
  return `rank ${rank} waits at action ${formatAction(next)} for ${from.join(", ")} (that rank is stopped, hung or slower than the timeout)`;
}
