// Data parallelism inside one machine: R replicas of the whole model on R worker threads, run by the
// pipeline runtime as a one-stage pipeline with R replicas on the threads executor (one micro-batch
// per step; the schedule's REDUCE before STEP sums the replicas' gradients in shared memory).
//
// - Every replica rebuilds the model from the JSON ModelSpec + seed and loads the caller's initial
//   state dict (so a checkpoint or a pre-trained model starts all replicas identical).
// - Sharding: replica r gets the r-th contiguous block of rows of every mini-batch (the runtime's
//   rule, src/pipeline/runtime/replica-share.ts: rows [floor(r n / R), floor((r+1) n / R))).
// - Loss rule: each replica's loss is its SUMMED per-target cross-entropy times 1 / (targets in the
//   whole mini-batch), and REDUCE sums the gradients. The reduced gradient is therefore the gradient
//   of the mini-batch mean loss, exactly what one device computes on the whole batch, also when
//   shards are unequal (DDP's "average of shard means" is not, for unequal shards).
// - Gradients are summed element by element in replica order (src/transport/reduce.ts): two runs
//   give the same bits whatever the thread timing. Against one device the only difference is float32
//   summation order (one device sums the batch inside one matmul, R replicas add R partial sums), a
//   few ulps of a gradient that momentum carries over steps; test/data-parallel.test.ts allows
//   1e-7 + 1e-5 |w| after 3 SGD-momentum steps. R = 1 gave the one-device bits (native backend).
// - Every replica applies the same optimizer step to the same reduced gradients, so replicas stay
//   bit-identical. BatchNorm: REDUCE also sums the layers' moments of the mini-batch, so every
//   replica commits the running statistics of the whole mini-batch (what one device commits; DDP
//   instead broadcasts replica 0's buffers, statistics of replica 0's shard only). Batch statistics
//   in the forward are per shard (no SyncBatchNorm), and every replica rebuilds its model from the
//   same seed, so dropout layers draw the same masks in every replica (on different rows).
// - A replica that throws ends every thread (the shared-memory group is aborted, so peers blocked
//   in the all-reduce stop), and the pending call rejects with a DataParallelError naming the replica.
import { getBackend, type BackendName } from "../backend/index.js";
import { createModel } from "../nn/models/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { toPlain, type OptimizerConfig, type OptimizerState } from "../optim/index.js";
import type { Tensor } from "../tensor/tensor.js";
import { generateSchedule } from "../pipeline/schedule/index.js";
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import { replicaFailure, ThreadsExecutor } from "../pipeline/runtime/threads.js";

/** Test hook: replica `replica` throws `message` at the start of step `step` (0-based). */
export interface ReplicaFault { replica: number; step: number; message?: string }

/** Per-step metrics of one replica; `loss` is its shard's summed loss times the global scale. */
export interface ReplicaMetrics {
  loss: number;
  correct: number;
  count: number;
  /** Seconds in forward + backward, in the gradient all-reduce (incl. waiting), in the optimizer step. */
  compute: number;
  allReduce: number;
  update: number;
  /** Seconds from the replica's thread receiving the step to its end. */
  total: number;
}

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

/** A replica's error as a DataParallelError; other errors as they are. */
function named(e: unknown): unknown {
  const f = replicaFailure(e);
  return f ? new DataParallelError(f.replica, f.message, f.stack) : e;
}

export class DataParallel {
  private constructor(readonly replicas: number, readonly backend: BackendName, private readonly ex: ThreadsExecutor,
    private readonly paramOrder: readonly string[]) {}

  /** Per replica: OpenMP threads of the native addon in that thread (null on the reference backend). */
  get nativeThreads(): (number | null)[] { return this.ex.nativeThreads; }

  /** Replica threads still running. */
  get liveReplicas(): number { return this.ex.liveWorkers; }

  /** Starts R replica threads and waits until each has built its model. */
  static async create(o: DataParallelOptions): Promise<DataParallel> {
    const R = o.replicas;
    if (!Number.isInteger(R) || R < 1) throw new Error(`replicas must be a positive integer, got ${R}`);
    const backend = o.backend ?? getBackend().name;
    const probe = createModel(o.spec, o.seed);
    const faults = (o.faults ?? []).map((f) => ({
      unit: 0, microbatch: 0, replica: f.replica, occurrence: f.step, message: f.message ?? `injected fault in replica ${f.replica} at step ${f.step}`,
    }));
    const ex = await ThreadsExecutor.create({
      model: o.spec, seed: o.seed, schedule: generateSchedule("gpipe", { stages: 1, microbatches: 1 }), balance: [probe.units.length],
      recompute: "never", optimizer: o.optimizer, optimizerState: o.optimizerState ? toPlain(o.optimizerState) : undefined,
      instrumentation: faults.length ? { faults } : undefined,
    }, o.initialState ?? probe.stateDict(), R, { backend, reduceTimeoutMs: o.timeoutMs ?? 60_000 }).catch((e: unknown) => { throw named(e); });
    return new DataParallel(R, backend, ex, probe.namedParameters().map(([n]) => n));
  }

  /**
   * One optimizer step on a mini-batch: x [n, ...] with labels y (one per example, or a whole number
   * per example for next-token targets); n >= replicas. `lrFactor` multiplies the base learning rate
   * (an LR schedule's value for this step).
   */
  async step(x: Tensor, y: Int32Array, lrFactor = 1): Promise<DataParallelStepResult> {
    const t0 = performance.now();
    const n = x.rank < 1 ? 0 : x.shape[0];
    if (n < this.replicas) throw new Error(`cannot shard a batch of ${n} examples over ${this.replicas} replicas: every replica needs at least one example (use --batch >= ${this.replicas})`);
    try {
      const r = await this.ex.step(splitMiniBatch(x, y, 1, "data-parallel step"), lrFactor);
      const replicas = r.replicas!.map((p) => ({ loss: p.loss, correct: p.correct, count: p.count, compute: p.compute, allReduce: p.reduce, update: p.update, total: p.seconds }));
      return { loss: r.loss, correct: r.correct, count: r.count, replicas, seconds: (performance.now() - t0) / 1000 };
    } catch (e) {
      throw named(e);
    }
  }

  /** Parameters and buffers of replica `replica` (all replicas hold the same values). */
  async stateDict(replica = 0): Promise<Map<string, Tensor>> {
    return this.ex.stateDict(replica).catch((e: unknown) => { throw named(e); });
  }

  /** Replica 0's optimizer state (single-device shape: it can resume a one-device run). */
  async optimizerState(): Promise<OptimizerState> {
    return this.ex.optimizerState(this.paramOrder).catch((e: unknown) => { throw named(e); });
  }

  /**
   * Asks every replica to leave and waits for the threads to end; kills the ones still running after
   * a grace period. A replica busy in a step finishes it (or stops at the aborted all-reduce).
   */
  close(): Promise<void> { return this.ex.close(); }
}
