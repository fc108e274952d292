// A worker thread that runs a script of collectives and reports the results: what the transport
// tests and the all-reduce benchmark (bench.ts) run on real threads.
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { PortChannel } from "./channel.js";
import { P2PCollectives } from "./p2p-collectives.js";
import { ShmCollectives, type ShmGroupHandle } from "./shm-collectives.js";
import type { Collectives, ReduceOp } from "./types.js";

export type ProbeMode = "sync" | "async" | "p2p";

export type ProbeOp =
  /** Sleeps `delayMs` first (to vary which rank arrives first), then all-reduces `data`. */
  | { op: "allReduce"; data: Float32Array; reduce: ReduceOp; mode: ProbeMode; delayMs: number }
  | { op: "broadcast"; data: Float32Array; root: number; mode: ProbeMode; delayMs: number }
  /** Throws (after aborting the group when `abort`), as a failing rank would. */
  | { op: "throw"; message: string; abort: boolean }
  /** Times `iters` all-reduces (after `warmup`) of each size (elements), sync shm mode. */
  | { op: "bench"; sizes: number[]; iters: number; warmup: number; mode?: "sync" | "p2p" };

export interface ProbeInit {
  rank: number;
  group: ShmGroupHandle;
  ports: Record<number, MessagePort>;
  script: ProbeOp[];
  timeoutMs: number;
}

export type ProbeResult =
  | { type: "results"; rank: number; outputs: Float32Array[]; bench: { elements: number; seconds: number[] }[] }
  | { type: "error"; rank: number; name: string; message: string };

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number): void => { if (ms > 0) Atomics.wait(sleeper, 0, 0, ms); };

async function run(init: ProbeInit): Promise<ProbeResult> {
  const shm = new ShmCollectives(init.group, init.rank, { timeoutMs: init.timeoutMs });
  const p2p: Collectives = new P2PCollectives(new PortChannel(init.rank, init.group.size, init.ports));
  const outputs: Float32Array[] = [];
  const bench: { elements: number; seconds: number[] }[] = [];
  try {
    for (const s of init.script) {
      if (s.op === "allReduce" || s.op === "broadcast") {
        sleep(s.delayMs);
        const buf = s.data.slice();
        if (s.op === "allReduce") {
          if (s.mode === "sync") shm.allReduceSync(buf, s.reduce);
          else await (s.mode === "async" ? shm : p2p).allReduce(buf, s.reduce);
        } else {
          if (s.mode === "sync") shm.broadcastSync(buf, s.root);
          else await (s.mode === "async" ? shm : p2p).broadcast(buf, s.root);
        }
        outputs.push(buf);
      } else if (s.op === "throw") {
        if (s.abort) shm.abort();
        throw new Error(s.message);
      } else {
        for (const n of s.sizes) {
          const buf = new Float32Array(n).fill(init.rank + 1);
          const once = s.mode === "p2p" ? (): Promise<void> => p2p.allReduce(buf) : (): void => shm.allReduceSync(buf);
          for (let i = 0; i < s.warmup; i++) await once();
          const seconds: number[] = [];
          for (let i = 0; i < s.iters; i++) {
            shm.barrierSync();
            const t0 = performance.now();
            await once();
            seconds.push((performance.now() - t0) / 1000);
          }
          bench.push({ elements: n, seconds });
        }
      }
    }
    return { type: "results", rank: init.rank, outputs, bench };
  } finally {
    p2p.close();
  }
}

if (parentPort) {
  const port = parentPort;
  const init = workerData as ProbeInit;
  run(init).then(
    (r) => port.postMessage(r),
    (e: Error) => port.postMessage({ type: "error", rank: init.rank, name: e.name, message: e.message } satisfies ProbeResult),
  );
}
