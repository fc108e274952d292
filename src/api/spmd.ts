// The library on the processes executor, SPMD as with torchrun: every MPI rank runs the user's same
// script and makes the same createPipeline / pipe calls with the same arguments; each rank builds
// only its worker's stages (src/pipeline/runtime/processes.ts). The MPI modules are imported only
// here, on demand, so that a machine without Open MPI still runs inline and threads pipelines.
import { relative } from "node:path";
import { launchEnv } from "../transport/mpi/env.js";

/** How to start this very script on `ranks` ranks (for the error a rank outside MPI gives). */
function launchLines(ranks: number): string {
  const script = process.argv[1] ? relative(process.cwd(), process.argv[1]) || process.argv[1] : "script.mjs";
  return `\`mpirun -n ${ranks} node ${script}\` or \`pipewright launch -n ${ranks} -- node ${script}\``;
}

/** A library script on executor "processes" must run on MPI ranks: else an error saying how to start it. */
export function checkLaunched(workers: number, replicas: number): void {
  const n = workers * replicas;
  if (!launchEnv()) {
    throw new Error(`createPipeline: executor "processes" runs one MPI rank per worker${replicas > 1 ? " and replica" : ""} (${n} here), but this process was not started by MPI; ` +
      `run the same script on ${n} ranks: ${launchLines(n)}`);
  }
}

async function startedMpi(): Promise<{ rank: number; abort(code: number): never; finalize(): Promise<void> } | null> {
  return (await import("../transport/mpi/transport.js")).mpiStarted();
}

/**
 * processes: an error on one rank ends the whole job, naming the rank (the other ranks would wait
 * for it forever inside the next collective call). Elsewhere the error is thrown as usual.
 */
export async function endJobOnError<T>(executor: string, body: () => Promise<T>): Promise<T> {
  if (executor !== "processes") return body();
  try {
    return await body();
  } catch (e) {
    const mpi = await startedMpi();
    if (!mpi) throw e;
    const { endJob } = await import("../pipeline/runtime/rank-failure.js");
    return endJob(mpi, e);
  }
}

/** MPI_Finalize (which also ends the communication thread, so the process can exit). */
export async function finalizeMpi(): Promise<void> {
  await (await startedMpi())?.finalize();
}
