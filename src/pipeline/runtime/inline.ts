// The inline executor: every worker's interpreter in one thread, the deterministic reference. Workers
// are visited round-robin in index order; each runs until its next action waits for a message. A
// full round without progress is a deadlock, reported with every worker's stuck action. Messages are
// handed over by reference (no copies at all).
// With R replicas it runs R copies of the pipeline (replica 0 on the caller's model, the others on
// copies built from the setup's source), each on its rows of every training micro-batch as on
// threads; a REDUCE waits until every replica has reached it and then sums their buffers in replica
// order (inline-reduce.ts), so the bits are those of the threads and processes executors. The
// replicas hold the same weights, so evaluation and prediction run on replica 0.
import { Tensor } from "../../tensor/tensor.js";
import { formatAction } from "../schedule/action.js";
import type { StageLoss, Target } from "../stage.js";
import { checkBatches, type Executor, type SplitBatch, type StepResult } from "./executor.js";
import { loadStageState, refuseLoadWithAsync, stageOptimizerStates } from "./worker-state.js";
import { memoryBytes, memoryRecord } from "./memory.js";
import { PipelineActionError, WorkerInterpreter, type Outbox, type PhysicalStage } from "./interpreter.js";
import { forwardOnlyLists } from "../schedule/forward-only.js";
import { mergeStates, type OptimizerState } from "../../optim/index.js";
import { buildWorkerStages, replicatedSetup, sourceOf, type PipelineSetup } from "./setup.js";
import { loadModelSource, type PipelineModel } from "./model-source.js";
import { forwardDeliveries, stepDeliveries } from "./replica-share.js";
import { ListExecutor, ListResults, sumMetrics, type ForwardShare } from "./list-results.js";
import { inlineNorms, inlineReduce } from "./inline-reduce.js";
import { clipOption } from "./grad-clip.js";
import { forReplica, syntheticDelay } from "./instrumentation.js";
import type { AsyncState } from "./async-state.js";
import { createAsyncRuntime, stageMemory, type AsyncRuntime, type StageMemory } from "./async-weights.js";
import { epochNow, MessageLog, onEpoch, payloadBytes, type TimingSource } from "./action-records.js";

export class InlineExecutor extends ListExecutor implements Executor, TimingSource {
  readonly name = "inline" as const;
  readonly traceProcess = "worker" as const;
  /** Per thread id (replica * workers + worker): its messages of the running step (recordActions only; a hand-over is a send and a receive at once). */
  private readonly logs: MessageLog[] | null;
  /** copies[r][w] = worker w of replica r. */
  private readonly copies: WorkerInterpreter[][];
  /** Per replica: what the running list reports. */
  private readonly results: ListResults[];
  private readonly reducer: ReturnType<typeof inlineReduce> | null;
  /** setup.clipGradNorm: each copy's gradient-norm sums (else null). */
  private readonly norms: ReturnType<typeof inlineNorms> | null;
  protected readonly setup: PipelineSetup;
  /** The asynchronous method's per-stage policies (setup.async in its async phase), else null. */
  readonly asyncRuntime: AsyncRuntime | null;

  /**
   * Trains `model` in place (its units become the stages). `loss` is setup.loss resolved (needed
   * when it names a module, or for a loss function, which only the inline executor can run).
   * `replicaModels`: one model per further replica, holding the same weights as `model` (see create()).
   */
  constructor(private readonly model: PipelineModel, setup: PipelineSetup, loss?: StageLoss,
    replicaModels: readonly PipelineModel[] = []) {
    super();
    const R = 1 + replicaModels.length;
    this.setup = setup = R > 1 ? replicatedSetup(setup, R) : setup;
    const { schedule } = setup;
    const W = schedule.workers.length;
    const record = setup.instrumentation?.recordActions === true;
    this.logs = record ? Array.from({ length: R * W }, () => new MessageLog()) : null;
    this.reducer = R > 1 ? inlineReduce(R) : null;
    const norms = this.norms = setup.clipGradNorm === undefined ? null : inlineNorms(W);
    this.results = Array.from({ length: R }, () => new ListResults());
    const stagesOf = [model, ...replicaModels].map((m, r) => {
      m.train();
      const own = { ...setup, instrumentation: forReplica(setup.instrumentation, r) };
      return schedule.workers.map((_, w) => buildWorkerStages(m, own, w, loss));
    });
    this.asyncRuntime = createAsyncRuntime(new Map(stagesOf[0].flatMap((m) => [...m])), setup.async);
    this.copies = stagesOf.map((stages, r) => schedule.workers.map((_, w) => new WorkerInterpreter({
      worker: w, schedule, stages: stages[w], outbox: this.outbox(r, w), hooks: this.asyncRuntime?.hooks,
      actionDelay: syntheticDelay(setup.instrumentation, schedule.chunks), recordActions: record,
      onMetrics: this.results[r].onMetrics, onOutput: this.results[r].onOutput,
      ...(this.reducer ? { reduce: (ps: PhysicalStage, step: number) => this.reducer!.reduce(r, ps, step) } : {}),
      ...(norms ? clipOption(setup, norms.group(r, w)) : {}),
    })));
  }

  /** Replica 0's workers (evaluation, prediction, state). */
  private get workers(): WorkerInterpreter[] { return this.copies[0]; }

  /** Worker `from` of replica `r`'s outbox: a hand-over by reference (recorded as the sender's send and the receiver's receive at once). */
  private outbox(r: number, from: number): Outbox {
    const W = this.setup.schedule.workers.length, logs = this.logs;
    return {
      send: (to, key, payload) => {
        const t0 = logs ? epochNow() : 0;
        this.copies[r][to].deliver(key, payload);
        if (!logs || to === from) return;
        logs[r * W + from].send(key, payloadBytes(payload), t0);
        logs[r * W + to].receive(key, payloadBytes(payload), t0);
      },
    };
  }

  /** With `replicas` pipelines: replica 0 trains `model` in place, the others copies built from the setup's source with `model`'s weights. */
  static async create(model: PipelineModel, setup: PipelineSetup, replicas = 1, loss?: StageLoss): Promise<InlineExecutor> {
    if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`replicas must be a positive integer, got ${replicas}`);
    const copies: PipelineModel[] = [];
    if (replicas > 1) {
      let source;
      try {
        source = sourceOf(setup);
      } catch (e) {
        throw new Error(`inline executor with ${replicas} replicas: each replica builds its own copy of the model from a module export or a built-in spec; ${(e as Error).message}`);
      }
      const state = model.stateDict();
      for (let r = 1; r < replicas; r++) {
        const copy = await loadModelSource(source, { initialise: false });
        copy.loadStateDict(state);
        copies.push(copy);
      }
    }
    return new InlineExecutor(model, setup, loss, copies);
  }

  async run(batches: readonly SplitBatch[], lrFactors: readonly number[] = [1]): Promise<StepResult> {
    const { schedule } = this.setup;
    const M = schedule.microbatches, R = this.copies.length, W = this.workers.length;
    checkBatches(batches, M, schedule.steps);
    if (batches.some((b) => b.prepare)) throw new Error("inline executor: stage 0's input hook (SplitBatch.prepare) runs on the threads and processes executors only");
    this.copies.forEach((workers, replica) => workers.forEach((w) => {
      for (const [key, payload] of stepDeliveries(schedule, batches, { worker: w.worker, replica, replicas: R })) w.deliver(key, payload);
    }));
    const all = this.copies.flat();
    for (const w of all) w.reset(lrFactors);
    for (const r of this.results) r.take(); // what a failed list left
    this.reducer?.clear();
    this.norms?.clear();
    const begin = epochNow();
    try {
      await this.pumpAll(all);
    } catch (e) {
      for (const w of all) w.abandon();
      throw e;
    }
    if (this.logs) {
      const end = epochNow();
      this.last = all.map((w, i) => ({ rank: i, worker: w.worker, ...(R > 1 ? { replica: Math.floor(i / W) } : {}), actions: onEpoch(w.records),
        ...this.logs![i].take(), begin, listDone: end, end }));
    }
    // Busy seconds and peaks of replica 0's workers (the other replicas mirror them).
    return {
      ...sumMetrics(M * batches.length, this.results.map((r) => r.take().metrics), R, this.workers.map((w) => w.busy.F + w.busy.B + w.busy.W + w.busy.STEP),
        this.workers.flatMap((w) => [...w.peakLive]), schedule.stages),
      memory: all.map((w, i) => memoryRecord(schedule, { worker: i % W, replica: Math.floor(i / W), tensor: 0 }, memoryBytes(w))),
    };
  }

  /** Replica 0's forward-only lists over all of `inputs` (one share). */
  protected async forwardOnly(inputs: readonly Tensor[], labels: readonly Target[] | null, scale: number, mode: "eval" | "predict"): Promise<ForwardShare[]> {
    const { schedule } = this.setup;
    const lists = forwardOnlyLists(schedule, inputs.length);
    this.workers.forEach((w, i) => {
      for (const [key, payload] of forwardDeliveries(schedule, inputs, labels, scale, { worker: w.worker, replica: 0, replicas: 1 }).deliveries) w.deliver(key, payload);
      w.reset([1], lists[i], mode);
    });
    this.results[0].take(); // what a failed list left
    for (const l of this.logs ?? []) l.paused = true; // evaluation is no step
    try {
      await this.pumpAll(this.workers);
    } finally {
      for (const w of this.workers) w.abandon();
      for (const l of this.logs ?? []) l.paused = false;
    }
    return [{ ids: inputs.map((_, j) => j), ...this.results[0].take() }];
  }

  /**
   * Runs every worker's list to its end, round robin (one thread: the deterministic reference). A
   * round without progress waits for finished REDUCEs to wake their workers; without one it is a deadlock.
   */
  private async pumpAll(workers: readonly WorkerInterpreter[]): Promise<void> {
    const finished = new Set<WorkerInterpreter>();
    const W = this.workers.length, replicas = this.copies.length > 1;
    while (finished.size < workers.length) {
      let progress = false;
      for (const [i, w] of workers.entries()) {
        if (finished.has(w)) continue;
        const before = w.next;
        let done: boolean;
        try {
          done = w.pump();
        } catch (e) {
          // Named as the threads executor names a replica's failing action.
          if (!replicas || !(e instanceof PipelineActionError)) throw e;
          throw new PipelineActionError(e.worker, e.stage, e.action, `replica ${Math.floor(i / W)}: ${e.causeMessage}`, e.causeStack, e);
        }
        if (done) { finished.add(w); progress = true; } else if (w.next !== before) progress = true;
      }
      if (progress) continue;
      const reduced = this.reducer?.takeCompleted() ?? false, normed = this.norms?.takeCompleted() ?? false;
      if (reduced || normed) {
        // A REDUCE's (or a norm sum's) waiters settle on the microtask queue: let them run, then pump again.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      const stuck = workers.map((w, i) => [w, i] as const).filter(([w]) => !finished.has(w))
        .map(([w, i]) => `${replicas ? `replica ${Math.floor(i / W)} ` : ""}worker ${w.worker} at ${formatAction(w.next!)} waiting for ${w.waits().map((x) => x.key).join(", ")}`);
      throw new Error(`pipeline deadlock: ${stuck.join("; ")}`);
    }
  }

  /** Peak bytes per physical stage of weights, optimizer state and extra weight versions. */
  stageMemory(): StageMemory[] {
    return stageMemory(new Map(this.workers.flatMap((w) => [...w.stages])), this.asyncRuntime);
  }

  async stateDict(): Promise<Map<string, Tensor>> { return new Map([...this.model.stateDict()].map(([k, t]) => [k, t.clone()])); }

  async optimizerState(order: readonly string[]): Promise<OptimizerState> {
    return mergeStates(this.workers.flatMap((w) => stageOptimizerStates(w.stages.values())), order);
  }

  async asyncState(): Promise<AsyncState | null> { return this.asyncRuntime?.snapshot() ?? null; }

  async loadStateDict(state: ReadonlyMap<string, Tensor>): Promise<void> {
    refuseLoadWithAsync(this.asyncRuntime);
    for (const workers of this.copies) {
      for (const w of workers) w.abandon();
      loadStageState(workers.flatMap((w) => [...w.stages.values()]), state);
    }
  }

  /** Drops what the stages still hold (the model's layers were never changed). */
  async close(): Promise<void> {
    for (const w of this.copies.flat()) w.abandon();
    for (const w of this.copies.flat()) for (const ps of w.stages.values()) for (const c of ps.chunks) c.clear();
  }
}
