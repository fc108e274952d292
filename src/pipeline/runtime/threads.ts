// The threads executor: one worker_thread per pipeline worker, connected pairwise by MessageChannels
// so activations and gradients go from neighbour to neighbour without the main thread; their
// buffers are transferred. The main thread only posts each step's micro-batches and collects losses.
// A WorkerGroup runs the calls and the failure protocol: the first error (a throwing action, an
// uncaught exception, a worker that exits) ends every worker and rejects the pending call with the
// stage, action and cause; between calls the threads never keep the process alive.
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { getBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import type { MicrobatchMetrics, Target } from "../stage.js";
import { checkBatches, sumEvalMetrics, sumMetrics, type EvalBatches, type Executor, type SplitBatch, type StepResult } from "./executor.js";
import { PipelineActionError, targetsPayload, type Payload } from "./interpreter.js";
import { assertValidSchedule } from "../schedule/validate.js";
import type { FromWorker, ToWorker, WorkerInit } from "./messages.js";
import type { PipelineSetup } from "./setup.js";
import { mergeAsyncStates, type AsyncState } from "./async-state.js";
import { fromPlain, mergeStates, type OptimizerState } from "../../optim/index.js";
import { expectedUnitPrefix } from "./model-source.js";
import { sourceOf } from "./setup.js";
import { shareState, unitsPerWorker } from "./worker-state.js";
import { WorkerGroup } from "../../transport/worker-group.js";
import type { RankTimings, TimingSource } from "./action-records.js";
import type { Schedule } from "../schedule/action.js";

type DataMessage = Extract<ToWorker, { type: "step" }>;

export class ThreadsExecutor implements Executor, TimingSource {
  readonly name = "threads" as const;
  readonly traceProcess = "worker" as const;
  /** Every worker's records of the last step (instrumentation.recordActions only). */
  private last: RankTimings[] | null = null;
  /** Calls, failure and shutdown of the worker threads (one call at a time). */
  private readonly group: WorkerGroup<FromWorker, ToWorker>;

  /** Worker threads still running (0 after close() or a failure has ended them). */
  get liveWorkers(): number { return this.group.live; }

  private get failure(): Error | null { return this.group.failure; }

  private constructor(private readonly setup: PipelineSetup, private readonly workers: Worker[]) {
    this.group = new WorkerGroup<FromWorker, ToWorker>(workers, {
      shmGroups: [],
      leave: { type: "close" },
      sender: (m) => m.worker,
      errors: {
        reported: (m) => (m.stage !== null && m.action !== null
          ? new PipelineActionError(m.worker, m.stage, m.action, m.message, m.stack)
          : new Error(`worker ${m.worker}: ${m.message}`)),
        crashed: (i, e) => new Error(`worker ${i} crashed: ${e.message}`),
        exited: (i, code) => new Error(`worker ${i} exited unexpectedly with code ${code}`),
        unexpected: (m) => new Error(`unexpected '${m.type}' message from worker ${m.worker}`),
        busy: "threads executor: one call at a time",
        closed: "threads executor: closed",
      },
    });
  }

  /**
   * Starts one thread per worker of the schedule, each loading its units' part of `initialState`
   * (the full model's) and of setup.optimizerState. `initialState` is only read: each share is
   * copied into its thread's workerData as the Worker is constructed, so callers need not clone it.
   */
  static async create(setup: PipelineSetup, initialState: ReadonlyMap<string, Tensor>): Promise<ThreadsExecutor> {
    // Workers block on messages, so a list that can deadlock would hang: reject it up front.
    assertValidSchedule(setup.schedule);
    const W = setup.schedule.workers.length;
    const peers: Record<number, MessagePort>[] = Array.from({ length: W }, () => ({}));
    for (let i = 0; i < W; i++) {
      for (let j = i + 1; j < W; j++) {
        const ch = new MessageChannel();
        peers[i][j] = ch.port1;
        peers[j][i] = ch.port2;
      }
    }
    const shares = shareState(initialState, expectedUnitPrefix(sourceOf(setup)), unitsPerWorker(setup.balance, setup.schedule), setup.optimizerState);
    const backend = getBackend().name;
    const url = new URL("./worker.js", import.meta.url);
    const workers = peers.map((p, w) => {
      const { units, entries, optimizerState } = shares[w];
      const init: WorkerInit = { worker: w, setup: { ...setup, optimizerState }, backend, state: entries, units, peers: p };
      return new Worker(url, { workerData: init, transferList: Object.values(p) });
    });
    const ex = new ThreadsExecutor(setup, workers);
    await ex.collect("ready");
    return ex;
  }

  private collect(want: FromWorker["type"]): Promise<Map<number, FromWorker>> {
    return this.group.collect(want);
  }

  private post(w: number, m: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.workers[w].postMessage(m, transfer);
  }

  step(batch: SplitBatch, lrFactor = 1): Promise<StepResult> { return this.run([batch], [lrFactor]); }

  async run(batches: readonly SplitBatch[], lrFactors: readonly number[] = [1]): Promise<StepResult> {
    if (this.failure) throw this.failure;
    const { schedule } = this.setup;
    const M = schedule.microbatches;
    checkBatches(batches, M, schedule.steps);
    const S = schedule.stages;
    const done = this.collect("done");
    this.postData(batches.flatMap((b) => b.inputs), batches.flatMap((b) => b.labels.map((t) => [t, b.scale] as const)),
      (inputs, targets) => ({ type: "step", lrFactors: [...lrFactors], inputs, targets }));
    const replies = await done;
    const metrics = new Map<number, MicrobatchMetrics>();
    const busy: number[] = [];
    const peaks: [number, number][] = [];
    const peakBytes: number[] = [];
    const timings: RankTimings[] = [];
    for (const [w, m] of replies) {
      if (m.type !== "done") continue;
      if (m.timings) timings[w] = m.timings;
      for (const [mb, x] of m.metrics) metrics.set(mb, x);
      busy[w] = m.busy;
      peaks.push(...m.peaks);
      peakBytes[w] = m.peakBytes;
    }
    const per = Array.from({ length: M * batches.length }, (_, j) => {
      const m = metrics.get(j);
      if (!m) throw new Error(`micro-batch ${j} produced no loss`);
      return m;
    });
    if (this.setup.instrumentation?.recordActions) this.last = timings;
    return { ...sumMetrics(per, busy, peaks, S), workerPeakBytes: peakBytes };
  }

  /** TimingSource: every worker's records of the last step (null unless the setup records actions). */
  stepTimings(): RankTimings[] | null { return this.last; }

  /** TimingSource: the schedule the records follow. */
  timingSchedule(): Schedule { return this.setup.schedule; }

  /**
   * Posts each worker its message, with the first stage's worker given the inputs and the last
   * stage's the targets (micro-batch ids in order). The caller keeps its arrays: they are copied once
   * into buffers that are then moved.
   */
  private postData(inputs: readonly Tensor[], targets: readonly (readonly [Target, number])[],
    message: (inputs: DataMessage["inputs"], targets: DataMessage["targets"]) => ToWorker): void {
    const { stages: S, chunks: v, stageToWorker } = this.setup.schedule;
    for (let w = 0; w < this.workers.length; w++) {
      const xs = w !== stageToWorker[0] ? [] : inputs.map((x, mb) => ({ mb, data: x.data.slice(), shape: [...x.shape] }));
      const ys = w !== stageToWorker[(S * v - 1) % S] ? [] : targets.map(([t, scale], mb) => {
        const { kind: _k, ...p } = targetsPayload(t, scale) as Extract<Payload, { kind: "targets" }>;
        return { mb, ...p, labels: p.labels.slice() };
      });
      this.post(w, message(xs, ys), [...xs.map((x) => x.data.buffer as ArrayBuffer), ...ys.map((t) => t.labels.buffer as ArrayBuffer)]);
    }
  }

  async evaluate(batches: EvalBatches, scale = 1): Promise<MicrobatchMetrics> {
    const metrics = new Map<number, MicrobatchMetrics>();
    for (const m of (await this.forwardOnly(batches.inputs, batches.labels.map((t) => [t, scale] as const), "eval")).values()) {
      if (m.type === "done") for (const [mb, x] of m.metrics) metrics.set(mb, x);
    }
    return sumEvalMetrics(batches.inputs.map((_, j) => metrics.get(j)));
  }

  async predict(inputs: readonly Tensor[]): Promise<Tensor[]> {
    const out: Tensor[] = [];
    for (const m of (await this.forwardOnly(inputs, [], "predict")).values()) {
      if (m.type === "done") for (const o of m.outputs ?? []) out[o.mb] = new Tensor(o.data, o.shape);
    }
    return inputs.map((_, j) => out[j]);
  }

  private forwardOnly(inputs: readonly Tensor[], targets: readonly (readonly [Target, number])[], mode: "eval" | "predict"): Promise<Map<number, FromWorker>> {
    if (this.failure) return Promise.reject(this.failure);
    const done = this.collect("done");
    this.postData(inputs, targets, (xs, ys) => ({ type: "forward", mode, count: inputs.length, inputs: xs, targets: ys }));
    return done;
  }

  async stateDict(): Promise<Map<string, Tensor>> {
    if (this.failure) throw this.failure;
    const replies = this.collect("state");
    for (let w = 0; w < this.workers.length; w++) this.post(w, { type: "state" });
    const out = new Map<string, Tensor>();
    for (const m of (await replies).values()) {
      if (m.type === "state") for (const [k, data, shape] of m.entries) out.set(k, new Tensor(data, shape));
    }
    return out;
  }

  async optimizerState(order: readonly string[]): Promise<OptimizerState> {
    if (this.failure) throw this.failure;
    const replies = this.collect("optimizer");
    for (let w = 0; w < this.workers.length; w++) this.post(w, { type: "optimizer" });
    const parts: OptimizerState[] = [];
    for (const m of (await replies).values()) if (m.type === "optimizer") parts.push(...m.states.map(fromPlain));
    return mergeStates(parts, order);
  }

  async asyncState(): Promise<AsyncState | null> {
    if (this.failure) throw this.failure;
    const replies = this.collect("async-state");
    for (let w = 0; w < this.workers.length; w++) this.post(w, { type: "async-state" });
    const parts: AsyncState[] = [];
    for (const m of (await replies).values()) if (m.type === "async-state" && m.state) parts.push(m.state);
    return parts.length ? mergeAsyncStates(parts) : null;
  }

  /** Asks every worker to leave (terminating the ones that do not within a grace period). */
  close(): Promise<void> { return this.group.close(); }
}
