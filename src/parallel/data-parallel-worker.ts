// One data-parallel replica thread: rebuilds the model from its JSON spec + seed, loads the initial
// state the main thread sent, and per step runs forward + backward on its shard, all-reduces the
// gradients with the other replicas in shared memory (blocking, fixed rank order), applies the same
// optimizer step as every other replica, and broadcasts buffers (BatchNorm statistics) from rank 0.
// Any error aborts the shared-memory group first (so peers blocked in a collective stop at once) and
// is then reported with this replica's rank.
import { parentPort, workerData } from "node:worker_threads";
import { backward } from "../autograd/engine.js";
import { mul } from "../autograd/index.js";
import { setBackend } from "../backend/index.js";
import { loadNativeAddon } from "../backend/native.js";
import { epochSeed } from "../data/loader.js";
import { Dropout } from "../nn/dropout.js";
import { countCorrect, crossEntropyLoss } from "../nn/loss.js";
import { createModel } from "../nn/models/index.js";
import { createOptimizer } from "../optim/index.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { ShmCollectives } from "../transport/shm-collectives.js";
import { WorkerFailure } from "../transport/worker-group.js";
import { broadcastBuffersSync, GradientAllReducer } from "./grad-sync.js";
import {
  fromPlainOptimizerState, toPlainOptimizerState, type FromReplica, type ReplicaInit, type StateEntry, type ToReplica,
} from "./messages.js";

const init = workerData as ReplicaInit;
const port = parentPort!;
const post = (m: FromReplica, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

const failure = new WorkerFailure((f) => post({ type: "error", rank: init.rank, ...f }));

try {
  const backend = setBackend(init.backend);
  // Kernels stay on this thread (the addon never forks: one core per replica).
  const native = backend.name === "native" ? { ompThreads: loadNativeAddon().ompMaxThreads() } : null;
  const model = createModel(init.spec, init.seed);
  model.loadStateDict(new Map(init.state.map(([k, data, shape]) => [k, new Tensor(data, shape)])));
  model.train();
  // Each replica draws its own dropout masks (same seed everywhere would repeat one mask per shard).
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Dropout)) continue;
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (Math.imul(h, 31) + name.charCodeAt(i)) | 0;
    m.rng = new Rng(epochSeed(init.seed ^ h, init.rank + 1));
  }
  const params = model.namedParameters();
  const opt = createOptimizer(init.optimizer, params);
  if (init.optimizerState) opt.loadStateDict(fromPlainOptimizerState(init.optimizerState));
  const comm = new ShmCollectives(init.group, init.rank, { timeoutMs: init.timeoutMs });
  failure.comm = comm;
  const reducer = new GradientAllReducer(params, comm);
  const buffers = model.namedBuffers();

  port.on("message", (m: ToReplica) => {
    if (m.type === "close") { port.close(); return; }
    if (failure.failed) return;
    try {
      if (m.type === "step") {
        const fault = init.faults.find((f) => f.replica === init.rank && f.step === m.step);
        if (fault) throw new Error(fault.message ?? `injected fault in replica ${init.rank} at step ${m.step}`);
        const t0 = performance.now();
        opt.zeroGrad();
        const logits = model.forward(new Tensor(m.x, m.shape));
        // The loss rule: summed per-target loss times 1 / (targets in the whole mini-batch), so the
        // SUM over replicas of their gradients is the gradient of the mini-batch mean.
        const loss = mul(crossEntropyLoss(logits, m.y, "sum"), m.scale);
        backward(loss);
        const t1 = performance.now();
        // The reduced gradients alias shared memory: step, then drop them before the next collective.
        reducer.allReduceSync("sum", true);
        const t2 = performance.now();
        opt.setLrFactor(m.lrFactor);
        opt.step();
        opt.zeroGrad();
        if (buffers.length > 0) broadcastBuffersSync(buffers, comm, 0);
        const t3 = performance.now();
        post({
          type: "done", rank: init.rank,
          metrics: {
            loss: loss.item(), correct: countCorrect(logits, m.y), count: m.y.length,
            compute: (t1 - t0) / 1000, allReduce: (t2 - t1) / 1000, update: (t3 - t2) / 1000, total: (performance.now() - t0) / 1000,
          },
        });
      } else if (m.type === "state") {
        const entries: StateEntry[] = [...model.stateDict()].map(([k, t]) => [k, t.data.slice(), [...t.shape]]);
        post({ type: "state", rank: init.rank, entries }, entries.map((e) => e[1].buffer as ArrayBuffer));
      } else if (m.type === "optimizer") {
        post({ type: "optimizer", rank: init.rank, state: toPlainOptimizerState(opt.stateDict()) });
      }
    } catch (e) {
      failure.fail(e);
    }
  });
  post({ type: "ready", rank: init.rank, native });
} catch (e) {
  failure.fail(e);
  port.on("message", (m: ToReplica) => { if (m.type === "close") port.close(); });
}
