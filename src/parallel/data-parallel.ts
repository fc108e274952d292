// Data parallelism inside one machine: R replicas of the whole model on R worker threads.
//
// - Every replica rebuilds the model from the JSON ModelSpec + seed and loads the caller's initial
//   state dict (so a checkpoint or a pre-trained model starts all replicas identical).
// - Sharding: replica r gets the r-th contiguous block of every mini-batch (torch.tensor_split sizes:
//   the first n mod R replicas get one extra example); see shard.ts.
// - Loss rule: each replica's loss is its SUMMED per-target cross-entropy times 1 / (targets in the
//   whole mini-batch); gradients are all-reduced with op "sum". The reduced gradient is therefore
//   the gradient of the mini-batch mean loss, exactly what one device computes on the whole batch,
//   also when shards are unequal (DDP's "average of shard means" is not, for unequal shards).
// - Gradients are reduced in shared memory in a fixed rank order (src/transport/shm-collectives.ts):
//   two runs give the same bits whatever the thread timing. Against one device, the only difference
//   is float32 summation order: one device sums the per-example contributions of the batch inside
//   one matmul (and applies 1/n inside the mean), R replicas sum R partial sums of shards scaled by
//   1/n; each rounds differently by a few float32 ulps of a gradient, and momentum carries that over
//   steps. Measured (test/data-parallel.test.ts, MLP 20-32-16-5, batch 10, 3 SGD-momentum steps,
//   R = 2 and 3): at most 1.5e-8 absolute, 4e-7 relative to the weight; the test allows
//   1e-7 + 1e-5 |w|. R = 1 gives exactly the one-device bits on the native backend.
// - Every replica applies the same optimizer step to the same reduced gradients, so replicas stay
//   bit-identical; buffers (BatchNorm running statistics) are broadcast from replica 0 after each
//   step, like DDP's broadcast_buffers. BatchNorm batch statistics are per shard (no SyncBatchNorm),
//   and dropout masks differ per replica, so models with those are not equal to one device.
// - A replica that throws aborts the shared-memory group (peers blocked in the all-reduce stop within
//   one wait slice), every thread is terminated, and the pending call rejects with a
//   DataParallelError naming the replica.
import { Worker } from "node:worker_threads";
import { getBackend, type BackendName } from "../backend/index.js";
import { createModel } from "../nn/models/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import type { OptimizerConfig, OptimizerState } from "../optim/index.js";
import { Tensor } from "../tensor/tensor.js";
import { createShmGroup, type ShmGroupHandle } from "../transport/shm-collectives.js";
import { WorkerGroup } from "../transport/worker-group.js";
import {
  fromPlainOptimizerState, toPlainOptimizerState, type FromReplica, type ReplicaFault, type ReplicaInit, type ReplicaMetrics,
  type StateEntry, type ToReplica,
} from "./messages.js";
import { shardBatch } from "./shard.js";

export type { ReplicaFault, ReplicaMetrics } from "./messages.js";

export interface DataParallelOptions {
  spec: ModelSpec;
  seed: number;
  /** Number of replicas (worker threads), >= 1. */
  replicas: number;
  optimizer: OptimizerConfig;
  /** Initial parameters and buffers; default: createModel(spec, seed)'s. */
  initialState?: ReadonlyMap<string, Tensor>;
  /** Optimizer state to resume from (single-device shape, e.g. from a checkpoint). */
  optimizerState?: OptimizerState;
  /** Kernel backend in every replica; default: the main thread's current backend (PIPEWRIGHT_BACKEND). */
  backend?: BackendName;
  /** A replica waiting longer than this in the all-reduce fails the run (default 60 s). */
  timeoutMs?: number;
  /** Test hook: make a replica throw at a given step. Never set in normal runs. */
  faults?: ReplicaFault[];
}

export interface DataParallelStepResult {
  /** Mini-batch mean loss (sum of the replicas' scaled losses, in replica order). */
  loss: number;
  correct: number;
  count: number;
  /** Per replica, in rank order. */
  replicas: ReplicaMetrics[];
  /** Wall-clock seconds of the step as seen by the caller. */
  seconds: number;
}

/** A replica failed: its index and its error. */
export class DataParallelError extends Error {
  constructor(readonly replica: number, readonly causeMessage: string, readonly causeStack?: string) {
    super(`data-parallel replica ${replica} failed: ${causeMessage}`);
    this.name = "DataParallelError";
  }
}

export class DataParallel {
  private steps = 0;
  private readonly threads: WorkerGroup<FromReplica, ToReplica>;
  /** Per replica: OpenMP threads of the native addon in that thread (null on the reference backend). */
  nativeThreads: (number | null)[] = [];

  private constructor(readonly replicas: number, readonly backend: BackendName, group: ShmGroupHandle,
    private readonly workers: Worker[]) {
    this.threads = new WorkerGroup(workers, {
      shmGroups: [group], leave: { type: "close" }, sender: (m) => m.rank,
      errors: {
        reported: (m) => new DataParallelError(m.rank, m.message, m.stack),
        crashed: (r, e) => new DataParallelError(r, `uncaught: ${e.message}`, e.stack),
        exited: (r, code) => new DataParallelError(r, `thread exited unexpectedly with code ${code}`),
        unexpected: (m) => new DataParallelError(m.rank, `unexpected '${m.type}' message`),
        busy: "data parallel: one call at a time (await the previous one)",
        closed: "data-parallel run is closed",
      },
    });
  }

  /** Replica threads still running. */
  get liveReplicas(): number { return this.threads.live; }

  /** Starts R replica threads and waits until each has built its model. */
  static async create(o: DataParallelOptions): Promise<DataParallel> {
    const R = o.replicas;
    if (!Number.isInteger(R) || R < 1) throw new Error(`replicas must be a positive integer, got ${R}`);
    const backend = o.backend ?? getBackend().name;
    const probe = createModel(o.spec, o.seed);
    const initial = o.initialState ?? probe.stateDict();
    const state: StateEntry[] = [...initial].map(([k, t]) => [k, t.data, [...t.shape]]);
    // One slot holds every trainable gradient, so the reducer writes gradients straight into it.
    const gradElements = probe.parameters().filter((p) => p.requiresGrad).reduce((s, p) => s + p.size, 0);
    const group = createShmGroup(R, Math.max(1, gradElements));
    const url = new URL("./data-parallel-worker.js", import.meta.url);
    const workers = Array.from({ length: R }, (_, rank) => {
      const init: ReplicaInit = {
        rank, spec: o.spec, seed: o.seed, backend, optimizer: o.optimizer, state,
        optimizerState: o.optimizerState ? toPlainOptimizerState(o.optimizerState) : null,
        group, timeoutMs: o.timeoutMs ?? 60_000, faults: o.faults ?? [],
      };
      // Workers inherit node's flags, except --input-type, which only fits `node -e` and breaks them.
      const execArgv = process.execArgv.filter((a) => !a.startsWith("--input-type"));
      return new Worker(url, { workerData: init, env: { ...process.env, PIPEWRIGHT_BACKEND: backend }, execArgv });
    });
    const dp = new DataParallel(R, backend, group, workers);
    const ready = await dp.threads.collect("ready");
    dp.nativeThreads = [...Array(R).keys()].map((r) => {
      const m = ready.get(r);
      return m && m.type === "ready" && m.native ? m.native.ompThreads : null;
    });
    return dp;
  }

  /**
   * One optimizer step on a mini-batch: x [n, ...] with labels y (one per example, or a whole number
   * per example for next-token targets); n >= replicas. `lrFactor` multiplies the base learning rate
   * (an LR schedule's value for this step).
   */
  async step(x: Tensor, y: Int32Array, lrFactor = 1): Promise<DataParallelStepResult> {
    if (this.threads.failure) throw this.threads.failure;
    const t0 = performance.now();
    const shards = shardBatch(x, y, this.replicas);
    const scale = 1 / y.length;
    const done = this.threads.collect("done");
    const step = this.steps++;
    shards.forEach((s, r) => {
      const msg: ToReplica = { type: "step", step, x: s.x.data, shape: [...s.x.shape], y: s.y, scale, lrFactor };
      this.workers[r].postMessage(msg, [s.x.data.buffer as ArrayBuffer, s.y.buffer as ArrayBuffer]);
    });
    const replies = await done;
    const per: ReplicaMetrics[] = [];
    for (let r = 0; r < this.replicas; r++) {
      const m = replies.get(r);
      if (!m || m.type !== "done") throw new Error(`replica ${r} sent no metrics`);
      per.push(m.metrics);
    }
    let loss = 0, correct = 0, count = 0;
    for (const m of per) { loss += m.loss; correct += m.correct; count += m.count; }
    return { loss, correct, count, replicas: per, seconds: (performance.now() - t0) / 1000 };
  }

  /** Parameters and buffers of replica `replica` (all replicas hold the same values). */
  async stateDict(replica = 0): Promise<Map<string, Tensor>> {
    if (!Number.isInteger(replica) || replica < 0 || replica >= this.replicas) {
      throw new Error(`replica ${replica} does not exist; valid: 0..${this.replicas - 1}`);
    }
    return (await this.replicaStates())[replica];
  }

  /** Every replica's parameters and buffers, in rank order (to check they agree). */
  async replicaStates(): Promise<Map<string, Tensor>[]> {
    if (this.threads.failure) throw this.threads.failure;
    const replies = this.threads.collect("state");
    for (const w of this.workers) w.postMessage({ type: "state" } satisfies ToReplica);
    const got = await replies;
    return [...Array(this.replicas).keys()].map((r) => {
      const m = got.get(r)!;
      if (m.type !== "state") throw new Error(`replica ${r} sent no state`);
      return new Map(m.entries.map(([k, data, shape]) => [k, new Tensor(data, shape)]));
    });
  }

  /** Replica 0's optimizer state (single-device shape: it can resume a one-device run). */
  async optimizerState(): Promise<OptimizerState> {
    if (this.threads.failure) throw this.threads.failure;
    const replies = this.threads.collect("optimizer");
    for (const w of this.workers) w.postMessage({ type: "optimizer" } satisfies ToReplica);
    const m = (await replies).get(0)!;
    if (m.type !== "optimizer") throw new Error("replica 0 sent no optimizer state");
    return fromPlainOptimizerState(m.state);
  }

  /**
   * Asks every replica to leave and waits for the threads to end; kills the ones still running after
   * a grace period. Threads are asked first: a replica busy in a step finishes it (or stops at the
   * aborted all-reduce).
   */
  async close(): Promise<void> {
    await this.threads.close();
  }
}

export interface TrainDataParallelOptions extends DataParallelOptions {
  /** Mini-batches, in order. */
  batches: Iterable<{ x: Tensor; y: Int32Array }>;
  /** LR factor per 0-based step (default 1). */
  lrSchedule?: (step: number) => number;
  onStep?(step: number, r: DataParallelStepResult): void;
}

export interface TrainDataParallelResult {
  losses: number[];
  state: Map<string, Tensor>;
  optimizerState: OptimizerState;
}

/** Trains on every batch with R replicas and returns the per-step losses and the final state. */
export async function trainDataParallel(o: TrainDataParallelOptions): Promise<TrainDataParallelResult> {
  const dp = await DataParallel.create(o);
  try {
    const losses: number[] = [];
    let k = 0;
    for (const b of o.batches) {
      const r = await dp.step(b.x, b.y, o.lrSchedule ? o.lrSchedule(k) : 1);
      losses.push(r.loss);
      o.onStep?.(k, r);
      k++;
    }
    return { losses, state: await dp.stateDict(0), optimizerState: await dp.optimizerState() };
  } finally {
    await dp.close();
  }
}
