// One elastic phase worker: stage s of replica r. It rebuilds the model from its JSON spec, loads the
// trainer's state, freezes the prefix (requiresGrad off: no backward, not in the optimizer), and runs
// the GPipe list of its stage with the shared interpreter. Replicas of a stage all-reduce their
// gradients in shared memory (fixed rank order) right before STEP, so every replica applies the same
// update. With the activation cache, stage 0 also holds the frozen prefix and runs it (no graph) only
// when the trainer sends raw inputs to fill the cache.
import { parentPort, workerData } from "node:worker_threads";
import { noGrad } from "../../autograd/engine.js";
import { setBackend } from "../../backend/index.js";
import { createModel } from "../../nn/models/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { ShmCollectives } from "../../transport/shm-collectives.js";
import { WorkerFailure } from "../../transport/worker-group.js";
import { GradientAllReducer } from "../../parallel/grad-sync.js";
import { generateSchedule } from "../schedule/index.js";
import { Stage, type MicrobatchMetrics } from "../stage.js";
import { messageKey, WorkerInterpreter, type Payload, type PhysicalStage } from "../runtime/interpreter.js";
import { createStageOptimizer, shapeOf } from "../runtime/setup.js";
import { fromPlain, sliceState, toPlain } from "../../optim/index.js";
import type { ElasticWorkerInit, FromElasticWorker, PeerMessage, StateEntry, ToElasticWorker } from "./messages.js";
import { applyFreeze, runnableUnits } from "./units.js";

const init = workerData as ElasticWorkerInit;
const port = parentPort!;
const id = init.replica * init.ranges.length + init.stage;
const post = (m: FromElasticWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
const failure = new WorkerFailure((f) =>
  post({ type: "error", worker: id, ...f, message: `replica ${init.replica}, stage ${init.stage}: ${f.message}` }));

try {
  setBackend(init.backend);
  const model = createModel(init.spec, init.seed);
  model.loadStateDict(new Map(init.state.map(([k, d, s]) => [k, new Tensor(d, s)])));
  init.state = [];
  model.train();
  applyFreeze(model, init.frozenLayers);
  const all = runnableUnits(model);
  const S = init.ranges.length, s = init.stage;
  const [a, b] = init.ranges[s];
  const stage = new Stage({
    index: s, units: all.slice(a, b).map((u) => [u.unit.layer, u.module] as const),
    isFirst: s === 0, isLast: s === S - 1, recompute: false,
  });
  const prefix = s === 0 ? all.slice(0, init.prefix).map((u) => u.module) : [];
  const params = stage.namedParameters().filter(([, p]) => p.requiresGrad);
  const optimizer = createStageOptimizer(init.optimizer, params);
  if (optimizer && init.optimizerState) optimizer.loadStateDict(sliceState(fromPlain(init.optimizerState), params.map(([n]) => n)));
  const phys: PhysicalStage = { index: s, chunks: [stage], optimizer };
  const comm = init.group ? new ShmCollectives(init.group, init.replica, { timeoutMs: init.timeoutMs }) : null;
  failure.comm = comm;
  const reducer = comm ? new GradientAllReducer(params, comm) : null;
  const layerOf = params.map(([n]) => Number(n.split(".")[1]));
  let gradSq: [number, number][] = [];

  const schedule = generateSchedule("gpipe", { stages: S, microbatches: init.microbatches });
  const interp = new WorkerInterpreter({
    worker: s, actions: schedule.workers[s], stages: new Map([[s, phys]]), shape: shapeOf(schedule),
    outbox: {
      send(to: number, key: string, payload: Payload): void {
        if (payload.kind !== "tensor") throw new Error(`elastic worker: only tensors travel between stages, got ${payload.kind}`);
        const p = to === s + 1 ? init.next : to === s - 1 ? init.prev : null;
        if (!p) throw new Error(`stage ${s} has no channel to stage ${to}`);
        const data = payload.data.slice(); // the stage keeps its graph over the original
        p.postMessage({ key, data, shape: payload.shape } satisfies PeerMessage, [data.buffer as ArrayBuffer]);
      },
    },
    hooks: {
      beforeStep(): void {
        reducer?.allReduceSync("sum", true);
        if (init.replica !== 0) return;
        const sq = new Map<number, number>();
        params.forEach(([, p], i) => {
          if (!p.grad) return;
          let t = 0;
          const d = p.grad.data;
          for (let k = 0; k < d.length; k++) t += d[k] * d[k];
          sq.set(layerOf[i], (sq.get(layerOf[i]) ?? 0) + t);
        });
        gradSq = [...sq];
      },
    },
    onMetrics: (mb, m) => { metrics.push([mb, m]); },
  });
  const metrics: [number, MicrobatchMetrics][] = [];
  let running = false;
  let prefixOut: { data: Float32Array; shape: number[] }[] = [];

  const pump = (): void => {
    if (!running || failure.failed) return;
    try {
      if (!interp.pump()) return;
      running = false;
      const bz = interp.busy;
      const out = prefixOut;
      prefixOut = [];
      post({ type: "done", worker: id, metrics: metrics.splice(0), busy: bz.F + bz.B + bz.W + bz.STEP, gradSq, prefixOut: out },
        out.map((o) => o.data.buffer as ArrayBuffer));
    } catch (e) { failure.fail(e); }
  };
  for (const p of [init.prev, init.next]) {
    p?.on("message", (m: PeerMessage) => {
      try { interp.deliver(m.key, { kind: "tensor", data: m.data, shape: m.shape }); } catch (e) { failure.fail(e); return; }
      pump();
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
            t = noGrad(() => prefix.reduce((h, u) => u.forward(h), t));
            prefixOut.push({ data: t.data.slice(), shape: [...t.shape] });
          }
          interp.deliver(messageKey.activation(0, j), { kind: "tensor", data: t.data, shape: [...t.shape] });
        });
        m.targets.forEach((y, j) => interp.deliver(messageKey.targets(j), { kind: "targets", labels: y, scale: m.scale }));
        gradSq = [];
        interp.reset([m.lrFactor]);
        interp.busy.F += (performance.now() - t0) / 1000; // the prefix's forward counts as this stage's work
        running = true;
        pump();
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
