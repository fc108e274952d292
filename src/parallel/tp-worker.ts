// One rank of a tensor-parallel run (tp-runner.ts): joins the shared-memory group, runs the task,
// posts its result or its error, and leaves when the runner says "close". On an error the group is aborted first, so peers blocked in a
// collective stop at once instead of waiting for this rank.
import { parentPort, workerData } from "node:worker_threads";
import { setBackend, type BackendName } from "../backend/index.js";
import { ShmCollectives, type ShmGroupHandle } from "../transport/shm-collectives.js";
import { describeFailure } from "../transport/types.js";

/** Test hook: rank `rank` throws `message` when its task reaches fault point `at`. */
export interface TpFault { rank: number; at: string; message?: string }

export interface TpWorkerInit {
  rank: number;
  size: number;
  group: ShmGroupHandle;
  backend: BackendName;
  moduleUrl: string;
  task: string;
  input: unknown;
  timeoutMs: number;
  faults: TpFault[];
}

export interface TpTaskContext<I> {
  rank: number;
  size: number;
  comm: ShmCollectives;
  input: I;
  /** Throws if a fault is injected for this rank at `at` (tasks call it at their fault points). */
  faultPoint(at: string): void;
}

export type TpFromWorker =
  | { type: "result"; rank: number; output: unknown }
  /** `abortedBy` is set when the error only follows from rank `abortedBy` aborting the group. */
  | { type: "error"; rank: number; message: string; stack?: string; abortedBy?: number };

type Task = (ctx: TpTaskContext<unknown>) => unknown;

// Only run as a worker thread (importing this file for its types does nothing).
if (parentPort && workerData && (workerData as Partial<TpWorkerInit>).moduleUrl) {
  const init = workerData as TpWorkerInit;
  const port = parentPort;
  let comm: ShmCollectives | null = null;
  try {
    setBackend(init.backend);
    comm = new ShmCollectives(init.group, init.rank, { timeoutMs: init.timeoutMs });
    const mod = (await import(init.moduleUrl)) as Record<string, unknown>;
    const fn = mod[init.task];
    if (typeof fn !== "function") {
      const names = Object.keys(mod).filter((k) => typeof mod[k] === "function");
      throw new Error(`task '${init.task}' is not a function exported by ${init.moduleUrl}; exported: ${names.join(", ")}`);
    }
    const ctx: TpTaskContext<unknown> = {
      rank: init.rank, size: init.size, comm, input: init.input,
      faultPoint(at: string): void {
        const f = init.faults.find((x) => x.rank === init.rank && x.at === at);
        if (f) throw new Error(f.message ?? `injected fault in rank ${init.rank} at '${at}'`);
      },
    };
    const output = await (fn as Task)(ctx);
    port.postMessage({ type: "result", rank: init.rank, output } satisfies TpFromWorker);
  } catch (e) {
    comm?.abort();
    port.postMessage({ type: "error", rank: init.rank, ...describeFailure(e) } satisfies TpFromWorker);
  }
  // The thread ends when the runner asks it to leave (an exit before that would read as a failure).
  port.on("message", (m: { type: string }) => {
    if (m.type !== "close") return;
    comm?.close();
    port.close();
  });
}
