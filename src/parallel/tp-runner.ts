// Runs one SPMD task on R worker threads that share a shared-memory collectives group: the launcher
// for tensor- (and sequence-) parallel runs. Each thread imports the task module, calls
// `task(ctx)` with its rank, the group's ShmCollectives and the caller's input, and posts the result;
// the call resolves with the results in rank order.
//
// Failure (the WorkerGroup's protocol, src/transport/worker-group.ts): a rank that throws aborts the
// group (ranks blocked in a collective stop within one wait slice with TransportAbortedError) and the
// call rejects with a TensorParallelError naming the rank that failed first and its error; every
// thread is then asked to end and killed after a grace time. A rank stuck in a collective longer
// than `timeoutMs` fails with a TransportTimeoutError.
import { Worker } from "node:worker_threads";
import { getBackend, type BackendName } from "../backend/index.js";
import { createShmGroup } from "../transport/shm-collectives.js";
import { WorkerGroup, workerExecArgv } from "../transport/worker-group.js";
import type { TpFault, TpFromWorker, TpWorkerInit } from "./tp-worker.js";

export type { TpFault, TpTaskContext } from "./tp-worker.js";

/** A rank of a tensor-parallel run failed: its rank and its error. */
export class TensorParallelError extends Error {
  constructor(readonly rank: number, readonly causeMessage: string, readonly causeStack?: string) {
    super(`tensor-parallel rank ${rank} failed: ${causeMessage}`);
    this.name = "TensorParallelError";
  }
}

export interface TensorParallelRunOptions<I> {
  /** Group size R (worker threads), >= 1. */
  size: number;
  /** Module (file URL) exporting the task; default: ./tp-tasks.js. */
  module?: URL;
  /** Name of the exported task function `(ctx: TpTaskContext<I>) => O | Promise<O>`. */
  task: string;
  /** Structured-cloneable input given to every rank (each rank gets its own copy). */
  input: I;
  /** Kernel backend in every thread; default: the caller's. */
  backend?: BackendName;
  /** Elements per shared-memory slot (largest collective done in one piece); default 1 Mi. */
  capacity?: number;
  /** A rank waiting longer than this in a collective fails (default 60 s). */
  timeoutMs?: number;
  /** Test hook: rank `rank` throws at its task's fault point `at`. */
  faults?: TpFault[];
}

export async function runTensorParallel<I, O>(o: TensorParallelRunOptions<I>): Promise<O[]> {
  const R = o.size;
  if (!Number.isInteger(R) || R < 1) throw new Error(`tensor-parallel size must be a positive integer, got ${R}`);
  if (typeof o.task !== "string" || o.task === "") throw new Error(`tensor-parallel task must be a non-empty export name, got '${String(o.task)}'`);
  const backend = o.backend ?? (getBackend().name as BackendName);
  const shm = createShmGroup(R, o.capacity ?? 1 << 20);
  const moduleUrl = (o.module ?? new URL("./tp-tasks.js", import.meta.url)).href;
  const url = new URL("./tp-worker.js", import.meta.url);
  const workers = Array.from({ length: R }, (_, rank) => {
    const init: TpWorkerInit = {
      rank, size: R, group: shm, backend, moduleUrl, task: o.task, input: o.input,
      timeoutMs: o.timeoutMs ?? 60_000, faults: o.faults ?? [],
    };
    return new Worker(url, { workerData: init, env: { ...process.env, PIPEWRIGHT_BACKEND: backend }, execArgv: workerExecArgv() });
  });
  const group = new WorkerGroup<TpFromWorker, { type: "close" }>(workers, {
    shmGroups: [shm], leave: { type: "close" }, sender: (m) => m.rank,
    errors: {
      reported: (m) => new TensorParallelError(m.rank, m.message, m.stack),
      crashed: (r, e) => new TensorParallelError(r, `uncaught: ${e.message}`, e.stack),
      exited: (r, code) => new TensorParallelError(r, `thread exited with code ${code} before returning a result`),
      unexpected: (m) => new TensorParallelError(m.rank, `unexpected '${m.type}' message`),
      busy: "tensor parallel: one run at a time",
      closed: "tensor-parallel run is closed",
    },
  });
  try {
    const got = await group.collect("result");
    return [...Array(R).keys()].map((r) => {
      const m = got.get(r);
      if (m?.type !== "result") throw new TensorParallelError(r, "sent no result");
      return m.output as O;
    });
  } finally {
    await group.close();
  }
}
