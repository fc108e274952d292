// Runs one script of collectives per rank on real worker threads (probe-worker.ts) and collects each
// rank's results: the harness behind the transport tests and the all-reduce benchmark.
import { Worker } from "node:worker_threads";
import { createPortMesh } from "./channel.js";
import { createShmGroup } from "./shm-collectives.js";
import type { ProbeInit, ProbeOp, ProbeResult } from "./probe-worker.js";

export type { ProbeOp, ProbeResult, ProbeMode } from "./probe-worker.js";

/** scripts[r] runs on rank r; resolves with every rank's result (errors included) in rank order. */
export async function runProbe(scripts: ProbeOp[][], opts: { capacity?: number; timeoutMs?: number } = {}): Promise<ProbeResult[]> {
  const R = scripts.length;
  const group = createShmGroup(R, opts.capacity);
  const mesh = createPortMesh(R);
  const url = new URL("./probe-worker.js", import.meta.url);
  const workers = scripts.map((script, rank) => {
    const init: ProbeInit = { rank, group, ports: mesh[rank], script, timeoutMs: opts.timeoutMs ?? 10_000 };
    return new Worker(url, { workerData: init, transferList: Object.values(mesh[rank]) });
  });
  try {
    return await Promise.all(workers.map((w, rank) => new Promise<ProbeResult>((resolve, reject) => {
      w.once("message", (m: ProbeResult) => resolve(m));
      w.once("error", reject);
      w.once("exit", (code) => reject(new Error(`probe rank ${rank} exited with code ${code} before reporting`)));
    })));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
