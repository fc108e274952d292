// One elastic phase worker thread: stage s of replica r, built by buildElasticStage. Replicas of a
// stage all-reduce their gradients in shared memory (fixed rank order) in the REDUCE before STEP, so
// every replica applies the same update. With the activation cache, stage 0 runs the frozen prefix (no
// graph) only when the trainer sends raw inputs to fill the cache.
import { parentPort, workerData } from "node:worker_threads";
import { setBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { ShmCollectives } from "../../transport/shm-collectives.js";
import { WorkerFailure } from "../../transport/worker-group.js";
import { allReduceGradientsSync } from "../../parallel/grad-sync.js";
import { WorkerLoop } from "../runtime/worker-loop.js";
import type { MicrobatchMetrics } from "../stage.js";
import { messageKey, type Payload } from "../runtime/interpreter.js";
import { toPlain } from "../../optim/index.js";
import type { ElasticWorkerInit, FromElasticWorker, PeerMessage, StateEntry, ToElasticWorker } from "./messages.js";
import { buildElasticStage } from "./stage-build.js";

const init = workerData as ElasticWorkerInit;
const port = parentPort!;
const id = init.replica * init.ranges.length + init.stage;
const post = (m: FromElasticWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
const failure = new WorkerFailure((f) =>
  post({ type: "error", worker: id, ...f, message: `replica ${init.replica}, stage ${init.stage}: ${f.message}` }));

try {
  setBackend(init.backend);
  const s = init.stage;
  const state = new Map(init.state.map(([k, d, sh]) => [k, new Tensor(d, sh)]));
  init.state = [];
  const comm = init.group ? new ShmCollectives(init.group, init.replica, { timeoutMs: init.timeoutMs }) : null;
  failure.comm = comm;
  let gradSq: [number, number][] = [];
  const metrics: [number, MicrobatchMetrics][] = [];
  const built = buildElasticStage({ ...init, state }, {
    send(to: number, key: string, payload: Payload): void {
      if (payload.kind !== "tensor") throw new Error(`elastic worker: only tensors travel between stages, got ${payload.kind}`);
      const p = to === s + 1 ? init.next : to === s - 1 ? init.prev : null;
      if (!p) throw new Error(`stage ${s} has no channel to stage ${to}`);
      const data = payload.data.slice(); // the stage keeps its graph over the original
      p.postMessage({ key, data, shape: payload.shape } satisfies PeerMessage, [data.buffer as ArrayBuffer]);
    },
  }, {
    reduce: comm ? (params) => allReduceGradientsSync(params, comm) : undefined,
    beforeStep: () => { if (init.replica === 0) gradSq = built.gradSquares(); },
  }, (mb, m) => { metrics.push([mb, m]); });
  state.clear();
  const { interp, stage, optimizer } = built;
  let prefixOut: { data: Float32Array; shape: number[] }[] = [];
  const loop = new WorkerLoop(interp, {
    fail: (e) => failure.fail(e),
    finished: () => {
      const bz = interp.busy;
      const out = prefixOut;
      prefixOut = [];
      post({ type: "done", worker: id, metrics: metrics.splice(0), busy: bz.F + bz.B + bz.W + bz.STEP, gradSq, prefixOut: out },
        out.map((o) => o.data.buffer as ArrayBuffer));
    },
  });
  for (const p of [init.prev, init.next]) {
    p?.on("message", (m: PeerMessage) => {
      if (failure.failed) return;
      try { interp.deliver(m.key, { kind: "tensor", data: m.data, shape: m.shape }); } catch (e) { failure.fail(e); return; }
      loop.pump();
    });
  }
  port.on("message", (m: ToElasticWorker) => {
    if (m.type === "close") { init.prev?.close(); init.next?.close(); port.close(); return; }
    if (failure.failed) return;
    try {
      if (m.type === "step") {
        const t0 = performance.now();
        m.inputs.forEach((x, j) => {
          let t = new Tensor(x.data, x.shape);
          if (m.fill) {
            t = built.runPrefix(t);
            prefixOut.push({ data: t.data.slice(), shape: [...t.shape] });
          }
          interp.deliver(messageKey.activation(0, j), { kind: "tensor", data: t.data, shape: [...t.shape] });
        });
        m.targets.forEach((y, j) => interp.deliver(messageKey.targets(j), { kind: "targets", labels: y, scale: m.scale }));
        gradSq = [];
        interp.reset([m.lrFactor]);
        interp.busy.F += (performance.now() - t0) / 1000; // the prefix's forward counts as this stage's work
        loop.start();
      } else if (m.type === "state") {
        const entries: StateEntry[] = [...stage.stateDict()].map(([k, t]) => [k, t.data.slice(), [...t.shape]]);
        post({ type: "state", worker: id, entries }, entries.map((e) => e[1].buffer as ArrayBuffer));
      } else if (m.type === "optimizer") {
        post({ type: "optimizer", worker: id, state: optimizer ? toPlain(optimizer.stateDict()) : null });
      }
    } catch (e) { failure.fail(e); }
  });
  post({ type: "ready", worker: id });
} catch (e) {
  failure.fail(e);
  port.on("message", (m: ToElasticWorker) => { if (m.type === "close") { init.prev?.close(); init.next?.close(); port.close(); } });
}
