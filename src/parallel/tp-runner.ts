// Runs one SPMD task on R worker threads that share a shared-memory collectives group: the launcher
// for tensor- (and sequence-) parallel runs. Each thread imports the task module, calls
// `task(ctx)` with its rank, the group's ShmCollectives and the caller's input, and posts the result;
// the call resolves with the results in rank order.
//
// Failure: a rank that throws aborts the group (ranks blocked in a collective stop within one wait
// slice with TransportAbortedError) and the call rejects with a TensorParallelError naming the rank
// that failed first and its error; every thread is then asked to end and killed after a grace time.
// A rank stuck in a collective longer than `timeoutMs` fails with a TransportTimeoutError.
import { Worker } from "node:worker_threads";
import { getBackend, type BackendName } from "../backend/index.js";
import { abortShmGroup, createShmGroup } from "../transport/shm-collectives.js";
import { shutdownWorkers } from "../transport/shutdown.js";
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

/** How long a rank's "aborted by another rank" error waits for that rank's own error. */
const CAUSE_GRACE_MS = 1000;
const SHUTDOWN_GRACE_MS = 3000;
const EXIT_GRACE_MS = 100;

export async function runTensorParallel<I, O>(o: TensorParallelRunOptions<I>): Promise<O[]> {
  const R = o.size;
  if (!Number.isInteger(R) || R < 1) throw new Error(`tensor-parallel size must be a positive integer, got ${R}`);
  if (typeof o.task !== "string" || o.task === "") throw new Error(`tensor-parallel task must be a non-empty export name, got '${String(o.task)}'`);
  const backend = o.backend ?? (getBackend().name as BackendName);
  const group = createShmGroup(R, o.capacity ?? 1 << 20);
  const moduleUrl = (o.module ?? new URL("./tp-tasks.js", import.meta.url)).href;
  const url = new URL("./tp-worker.js", import.meta.url);
  const execArgv = process.execArgv.filter((a) => !a.startsWith("--input-type"));
  const workers = Array.from({ length: R }, (_, rank) => {
    const init: TpWorkerInit = {
      rank, size: R, group, backend, moduleUrl, task: o.task, input: o.input,
      timeoutMs: o.timeoutMs ?? 60_000, faults: o.faults ?? [],
    };
    return new Worker(url, { workerData: init, env: { ...process.env, PIPEWRIGHT_BACKEND: backend }, execArgv });
  });

  const results = new Map<number, O>();
  const exited = new Set<number>();
  let failure: Error | null = null;
  let pending: NodeJS.Timeout | null = null;
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const done = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });

  const fail = (e: Error): void => {
    if (pending) { clearTimeout(pending); pending = null; }
    if (failure) return;
    failure = e;
    abortShmGroup(group);
    settle.reject(e);
  };
  workers.forEach((w, rank) => {
    w.on("message", (m: TpFromWorker) => {
      if (m.type === "error") {
        const err = new TensorParallelError(m.rank, m.message, m.stack);
        if (m.abortedBy === undefined) fail(err);
        // Only a consequence of another rank's failure: wait briefly for that rank's own error.
        else pending ??= setTimeout(() => fail(err), CAUSE_GRACE_MS);
        return;
      }
      results.set(m.rank, m.output as O);
      if (results.size === R && !failure) settle.resolve();
    });
    w.on("error", (e: Error) => fail(new TensorParallelError(rank, `uncaught: ${e.message}`, e.stack)));
    w.on("exit", (code) => {
      exited.add(rank);
      // A result posted just before the exit may still be in flight: look again a moment later.
      setTimeout(() => {
        if (!results.has(rank)) fail(new TensorParallelError(rank, `thread exited with code ${code} before returning a result`));
      }, EXIT_GRACE_MS);
    });
  });

  try {
    await done;
    return [...Array(R).keys()].map((r) => results.get(r)!);
  } finally {
    if (pending) clearTimeout(pending);
    // Threads end by themselves once their task returned or threw; kill stragglers after a grace.
    await shutdownWorkers(workers, exited, undefined, SHUTDOWN_GRACE_MS);
  }
}
