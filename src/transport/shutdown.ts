// Ending a group of worker threads: each one still running is asked to leave (`leave` is posted, when
// given) and terminated only if it has not exited after `graceMs`. Asking first matters: terminating
// a thread while it runs a native kernel can abort the whole process (the addon throws a C++
// exception nobody catches once the isolate is terminating).
import type { Worker } from "node:worker_threads";

/** Resolves once every worker not in `exited` (indices) has exited. */
export function shutdownWorkers(workers: readonly Worker[], exited: ReadonlySet<number>, leave: unknown, graceMs: number): Promise<void> {
  return Promise.all(workers.map((w, i) => new Promise<void>((resolve) => {
    if (exited.has(i)) { resolve(); return; }
    const timer = setTimeout(() => { void w.terminate(); }, graceMs);
    w.once("exit", () => { clearTimeout(timer); resolve(); });
    if (leave !== undefined) w.postMessage(leave);
  }))).then(() => undefined);
}
