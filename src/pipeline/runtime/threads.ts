// The threads executor: one worker_thread per pipeline worker, connected pairwise by MessageChannels
// so activations and gradients go from neighbour to neighbour without the main thread; their
// buffers are transferred. The main thread only posts each step's micro-batches and collects losses.
// With R replicas it runs R copies of the pipeline (thread id = replica * workers + worker), which
// share the work as the processes executor's replicas do: each copy takes its rows of every training
// micro-batch and its REDUCEs sum the gradients over the copies in shared memory (the same order,
// so the same bits); evaluation gives copy r the micro-batches r, r+R, ...
// With tensor parallelism T (PTD-P) each pipeline worker is T threads holding the same stages'
// tensor-parallel shards (thread id = (replica * workers + worker) * T + tensor rank, tensor innermost
// as in the MPI layout): a shared-memory tensor group per (replica, worker), a data group per
// (worker, tensor rank), and pipeline channels between the same tensor rank of neighbouring workers.
// A WorkerGroup runs the calls and the failure protocol: the first error (a throwing action, an
// uncaught exception, a worker that exits) ends every worker and rejects the pending call with the
// stage, action and cause; between calls the threads never keep the process alive.
import { Worker } from "node:worker_threads";
import { createPortMesh } from "../../transport/channel.js";
import type { Target } from "../stage.js";
import { getBackend, type BackendName } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { preparedInOrder } from "./input-hook.js";
import { checkBatches, type Executor, type ReplicaStep, type SplitBatch, type StepResult } from "./executor.js";
import { forReplica } from "./instrumentation.js";
import { PipelineActionError } from "./interpreter.js";
import { assertValidSchedule } from "../schedule/validate.js";
import type { Deliveries, FromWorker, ToWorker, WorkerInit } from "./messages.js";
import { mergeAsyncStates, type AsyncState } from "./async-state.js";
import { fromPlain, mergeStates, type OptimizerState } from "../../optim/index.js";
import { expectedUnitPrefix } from "./model-source.js";
import { replicatedSetup, sourceOf, type PipelineSetup } from "./setup.js";
import { forwardDeliveries, stepDeliveries, type ReplicaPosition } from "./replica-share.js";
import { createShmGroup, type ShmGroupHandle } from "../../transport/shm-collectives.js";
import { entryTensors, inUnitOrder, shareState, unitsPerWorker } from "./worker-state.js";
import { WorkerGroup, workerExecArgv } from "../../transport/worker-group.js";
import type { TimingSource } from "./action-records.js";
import { gatherStateDict } from "../../parallel/tp-shard.js";
import { gatherOptimizerState } from "../../parallel/ptdp-units.js";
import { tensorSize } from "./tensor-stages.js";
import { addMetrics, ListExecutor, sumMetrics, type ForwardShare } from "./list-results.js";
import { placeParts } from "./rank-failure.js";

export interface ThreadsOptions {
  /** Kernel backend of every worker thread (default: this thread's). */
  backend?: BackendName;
  /**
   * How long a REDUCE waits for the other replicas before it fails the run (default 600 s: they run
   * the same list, so only a stopped or hung replica keeps it waiting; any failure aborts the group).
   */
  reduceTimeoutMs?: number;
}

/** Which replica an error of the threads executor came from, and that thread's own message. */
export interface ReplicaFailure { replica: number; message: string; stack?: string }

const failures = new WeakMap<Error, ReplicaFailure>();

/** The replica behind an error of a ThreadsExecutor (null for other errors). */
export function replicaFailure(e: unknown): ReplicaFailure | null {
  return e instanceof Error ? failures.get(e) ?? null : null;
}

export class ThreadsExecutor extends ListExecutor implements Executor, TimingSource {
  readonly name = "threads" as const;
  readonly traceProcess = "worker" as const;
  /** Calls, failure and shutdown of the worker threads (one call at a time). */
  private readonly group: WorkerGroup<FromWorker, ToWorker>;
  /** Pipeline workers W of one copy; threads are replicas x W x T. */
  private readonly W: number;
  /** Tensor-parallel ranks per worker. */
  private readonly T: number;

  /** Per thread: the native addon's OpenMP threads there (null on another backend). */
  nativeThreads: (number | null)[] = [];

  /** Worker threads still running (0 after close() or a failure has ended them). */
  get liveWorkers(): number { return this.group.live; }

  private constructor(protected readonly setup: PipelineSetup, private readonly workers: Worker[], readonly replicas: number,
    shmGroups: ShmGroupHandle[]) {
    super();
    this.W = setup.schedule.workers.length;
    const T = this.T = tensorSize(setup);
    const layout = { replicas, tensor: T };
    const where = (id: number): string => placeParts(this.position(id), layout).join(", ");
    const prefix = (id: number): string => placeParts(this.position(id), layout, false).map((x) => `${x}: `).join("");
    const tag = (e: Error, id: number, message: string, stack?: string): Error => {
      failures.set(e, { replica: this.position(id).replica, message, stack });
      return e;
    };
    this.group = new WorkerGroup<FromWorker, ToWorker>(workers, {
      shmGroups,
      leave: { type: "close" },
      sender: (m) => m.worker,
      errors: {
        reported: (m) => tag(m.stage !== null && m.action !== null
          ? new PipelineActionError(this.position(m.worker).worker, m.stage, m.action, `${prefix(m.worker)}${m.message}`, m.stack)
          : new Error(`${where(m.worker)}: ${m.message}`), m.worker, m.message, m.stack),
        crashed: (i, e) => tag(new Error(`${where(i)} crashed: ${e.message}`), i, `uncaught: ${e.message}`, e.stack),
        exited: (i, code) => tag(new Error(`${where(i)} exited unexpectedly with code ${code}`), i, `thread exited unexpectedly with code ${code}`),
        unexpected: (m) => new Error(`unexpected '${m.type}' message from ${where(m.worker)}`),
        busy: "threads executor: one call at a time",
        closed: "threads executor: closed",
      },
    });
  }

  /**
   * Starts one thread per worker of the schedule (times `replicas`), each loading its units' part of
   * `initialState` (the full model's) and of setup.optimizerState. `initialState` is only read: each
   * share is copied into its thread's workerData as the Worker is constructed, so callers need not
   * clone it.
   */
  static async create(setup: PipelineSetup, initialState: ReadonlyMap<string, Tensor>, replicas = 1, o: ThreadsOptions = {}): Promise<ThreadsExecutor> {
    setup = replicatedSetup(setup, replicas);
    // Workers block on messages, so a list that can deadlock would hang: reject it up front.
    assertValidSchedule(setup.schedule);
    const { workers, shmGroups } = startThreads(setup, initialState, replicas, o);
    const ex = new ThreadsExecutor(setup, workers, replicas, shmGroups);
    const ready = await ex.group.collect("ready");
    ex.nativeThreads = workers.map((_, id) => (ready.get(id) as Extract<FromWorker, { type: "ready" }>).ompThreads);
    return ex;
  }

  private position(id: number): ReplicaPosition & { tensor: number } {
    const g = Math.floor(id / this.T);
    return { worker: g % this.W, replica: Math.floor(g / this.W), replicas: this.replicas, tensor: id % this.T };
  }

  async run(batches: readonly SplitBatch[], lrFactors: readonly number[] = [1]): Promise<StepResult> {
    const { schedule } = this.setup;
    const M = schedule.microbatches, S = schedule.stages;
    const replies = await this.call("done", () => {
      checkBatches(batches, M, schedule.steps);
      return this.workers.map((_, id) => withDeliveries(stepDeliveries(schedule, batches, this.position(id)),
        (deliveries) => ({ type: "step", lrFactors: [...lrFactors], deliveries })));
    });
    const done = this.workers.map((_, id) => replies.get(id)!);
    if (this.setup.instrumentation?.recordActions) this.last = done.map((m) => m.timings!);
    // A worker's tensor ranks compute the same loss: count tensor rank 0's, in thread order (each
    // micro-batch's replica shares in replica order, as the processes executor sums them).
    const lead = done.filter((_, id) => this.position(id).tensor === 0);
    // Busy seconds, peaks and peak bytes of replica 0's workers (the other replicas mirror them).
    const first = lead.slice(0, this.W);
    const prepared = lead.flatMap((m) => m.prepared ?? []);
    return {
      ...sumMetrics(M * batches.length, lead.map((m) => m.metrics), this.replicas, first.map((m) => m.busy.F + m.busy.B + m.busy.W + m.busy.STEP), first.flatMap((m) => m.peaks), S),
      workerPeakBytes: first.map((m) => m.peakBytes), memory: done.map((m) => m.memory),
      replicas: Array.from({ length: this.replicas }, (_, r) => replicaStep(lead.slice(r * this.W, (r + 1) * this.W))),
      ...(this.setup.gradientNorms ? { gradSquares: first.flatMap((m) => m.gradSquares ?? []) } : {}), ...(prepared.length ? { prepared: preparedInOrder(prepared) } : {}),
    };
  }

  /** Posts threads first, first + 1, ... what `build` makes (after throwing the run's failure, if any); their `want` replies by thread id. */
  private async call<K extends FromWorker["type"]>(want: K, build: () => Posted[], first = 0): Promise<Map<number, Extract<FromWorker, { type: K }>>> {
    if (this.group.failure) throw this.group.failure;
    const posts = build();
    const replies = this.group.collect(want, posts.length);
    posts.forEach(([m, transfer], i) => this.workers[first + i].postMessage(m, transfer));
    return (await replies) as Map<number, Extract<FromWorker, { type: K }>>;
  }

  /** Each replica's share of a forward-only list, from its threads of tensor rank 0. */
  protected async forwardOnly(inputs: readonly Tensor[], labels: readonly Target[] | null, scale: number, mode: "eval" | "predict"): Promise<ForwardShare[]> {
    const shares = this.workers.map((_, id) => forwardDeliveries(this.setup.schedule, inputs, labels, scale, this.position(id)));
    const done = await this.call("done", () => shares.map((share) =>
      withDeliveries(share.deliveries, (deliveries) => ({ type: "forward", mode, count: share.ids.length, deliveries }))));
    return [...done].filter(([id]) => this.position(id).tensor === 0).map(([id, m]) => ({ ids: shares[id].ids, metrics: m.metrics, outputs: m.outputs }));
  }

  /** Posts `m` to replica `replica`'s threads (default 0: the replicas hold the same weights); replies per worker, tensor ranks in order. */
  private async ask<K extends "state" | "optimizer" | "async-state">(m: ToWorker, want: K, replica = 0): Promise<Extract<FromWorker, { type: K }>[][]> {
    const n = this.W * this.T, first = replica * n;
    const r = await this.call(want, () => {
      if (!Number.isInteger(replica) || replica < 0 || replica >= this.replicas) throw new Error(`replica ${replica} does not exist; valid: 0..${this.replicas - 1}`);
      return Array.from({ length: n }, (): Posted => [m, []]);
    }, first);
    return Array.from({ length: this.W }, (_, w) => Array.from({ length: this.T }, (_, t) => r.get(first + w * this.T + t)!));
  }

  /** Every parameter and buffer, from replica `replica`'s threads (default 0; they hold the same values). */
  async stateDict(replica = 0): Promise<Map<string, Tensor>> {
    const all = (await this.ask({ type: "state" }, "state", replica))
      .flatMap((ranks) => [...gatherStateDict(ranks.map((m) => entryTensors(m.entries)), ranks[0].plan)]);
    return new Map(inUnitOrder(all, expectedUnitPrefix(sourceOf(this.setup))));
  }

  async loadStateDict(state: ReadonlyMap<string, Tensor>): Promise<void> {
    await this.call("loaded", () => {
      const shares = shareState(state, expectedUnitPrefix(sourceOf(this.setup)), unitsPerWorker(this.setup.balance, this.setup.schedule));
      return this.workers.map((_, id): Posted => [{ type: "load", entries: shares[this.position(id).worker].entries }, []]);
    });
  }

  async optimizerState(order: readonly string[]): Promise<OptimizerState> {
    const parts = (await this.ask({ type: "optimizer" }, "optimizer"))
      .flatMap((ranks) => ranks[0].states.map((_, j) => fromPlain(gatherOptimizerState(ranks.map((m) => m.states[j]), ranks[0].plan))));
    return mergeStates(parts, order);
  }

  async asyncState(): Promise<AsyncState | null> {
    return mergeAsyncStates((await this.ask({ type: "async-state" }, "async-state")).map(([m]) => m.state));
  }

  /** Asks every worker to leave (terminating the ones that do not within a grace period). */
  close(): Promise<void> { return this.group.close(); }
}

/** The threads of `setup` x `replicas` in thread-id order, and the shared-memory groups they collect in. */
function startThreads(setup: PipelineSetup, initialState: ReadonlyMap<string, Tensor>, replicas: number, o: ThreadsOptions): { workers: Worker[]; shmGroups: ShmGroupHandle[] } {
  const W = setup.schedule.workers.length, T = tensorSize(setup);
  const shares = shareState(initialState, expectedUnitPrefix(sourceOf(setup)), unitsPerWorker(setup.balance, setup.schedule), setup.optimizerState);
  const backend = o.backend ?? getBackend().name;
  const url = new URL("./worker.js", import.meta.url);
  // Shared-memory groups: data groups (a worker's tensor rank in every replica), tensor groups (a
  // replica's worker's tensor ranks).
  const groups = replicas > 1 ? Array.from({ length: W * T }, () => createShmGroup(replicas)) : [];
  const tensorGroups = T > 1 ? Array.from({ length: replicas * W }, () => createShmGroup(T)) : [];
  // Gradient clipping: per replica, every worker's tensor ranks (two slots each).
  const normGroups = setup.clipGradNorm !== undefined && W * T > 1 ? Array.from({ length: replicas }, () => createShmGroup(W * T, 2 * W * T)) : [];
  const workers: Worker[] = [];
  for (let r = 0; r < replicas; r++) {
    const channels = Array.from({ length: T }, () => createPortMesh(W));
    for (let w = 0; w < W; w++) {
      for (let t = 0; t < T; t++) {
        const peers = channels[t][w];
        const { units, entries, optimizerState } = shares[w];
        const init: WorkerInit = {
          worker: w, replica: r, tensor: t, group: groups[w * T + t] ?? null, tensorGroup: tensorGroups[r * W + w] ?? null,
          normGroup: normGroups[r] ?? null,
          setup: { ...setup, optimizerState, instrumentation: forReplica(setup.instrumentation, r) }, backend, state: entries, units, peers,
          reduceTimeoutMs: o.reduceTimeoutMs ?? 600_000,
        };
        workers.push(new Worker(url, { workerData: init, transferList: Object.values(peers), execArgv: workerExecArgv() }));
      }
    }
  }
  return { workers, shmGroups: [...groups, ...tensorGroups, ...normGroups] };
}

/** One replica's share of a step from its workers' replies (tensor rank 0's). */
function replicaStep(done: readonly Extract<FromWorker, { type: "done" }>[]): ReplicaStep {
  const rep: ReplicaStep = { loss: 0, correct: 0, count: 0, compute: 0, reduce: 0, update: 0, seconds: 0 };
  for (const { metrics, busy: b, seconds } of done) {
    for (const [, x] of metrics) addMetrics(rep, x);
    rep.compute += b.F + b.B + b.W; rep.reduce += b.REDUCE; rep.update += b.STEP;
    rep.seconds = Math.max(rep.seconds, seconds);
  }
  return rep;
}

/** A message to a thread and the buffers it moves there. */
type Posted = [ToWorker, ArrayBuffer[]];

/** `message` with the inputs and targets a thread delivers itself, copied once into buffers that then move (the caller keeps its arrays). */
function withDeliveries(deliveries: Deliveries, message: (d: Deliveries) => ToWorker): Posted {
  const own: Deliveries = deliveries.map(([k, p]) => [k, p.kind === "tensor" ? { ...p, data: p.data.slice() } : { ...p, labels: p.labels.slice() }]);
  return [message(own), own.map(([, p]) => (p.kind === "tensor" ? p.data.buffer : p.labels.buffer) as ArrayBuffer)];
}
