// The inline executor: every worker's interpreter in one thread, the deterministic reference. Workers
// are visited round-robin in index order; each runs until its next action waits for a message. A
// full round without progress is a deadlock, reported with every worker's stuck action. Messages are
// handed over by reference (no copies at all).
import type { Schedule } from "../schedule/action.js";
import type { PipelineModel } from "./model-source.js";
import { Tensor } from "../../tensor/tensor.js";
import { formatAction } from "../schedule/action.js";
import type { MicrobatchMetrics, StageLoss } from "../stage.js";
import { checkBatches, sumEvalMetrics, sumMetrics, type EvalBatches, type Executor, type SplitBatch, type StepResult } from "./executor.js";
import { loadStageState } from "./worker-state.js";
import { workerMemory } from "./memory.js";
import { messageKey, targetsPayload, WorkerInterpreter, type ForwardMode, type WeightHooks } from "./interpreter.js";
import { forwardOnlyLists } from "../schedule/forward-only.js";
import { mergeStates, type OptimizerState } from "../../optim/index.js";
import { buildWorkerStages, shapeOf, syntheticDelay, type PipelineSetup } from "./setup.js";
import type { AsyncState } from "./async-state.js";
import { createAsyncRuntime, plainMemory, type AsyncRuntime, type StageMemory } from "./async-weights.js";
import { epochNow, MessageLog, onEpoch, payloadBytes, type RankTimings, type TimingSource } from "./action-records.js";

export class InlineExecutor implements Executor, TimingSource {
  readonly name = "inline" as const;
  readonly traceProcess = "worker" as const;
  /** Per worker: its messages of the running step (recordActions only; a hand-over is a send and a receive at once). */
  private readonly logs: MessageLog[] | null;
  private last: RankTimings[] | null = null;
  private readonly workers: WorkerInterpreter[];
  private metrics = new Map<number, MicrobatchMetrics>();
  private outputs = new Map<number, Tensor>();
  /** The asynchronous method's per-stage policies (setup.async in its async phase), else null. */
  readonly asyncRuntime: AsyncRuntime | null;

  /**
   * Trains `model` in place (its units become the stages). `hooks` replaces the weight hooks that
   * setup.async would install; `loss` is setup.loss resolved (needed when it names a module, or for
   * a loss function, which only the inline executor can run).
   */
  constructor(private readonly model: PipelineModel, private readonly setup: PipelineSetup, hooks?: WeightHooks, loss?: StageLoss) {
    const { schedule } = setup;
    const shape = shapeOf(schedule);
    model.train();
    const record = setup.instrumentation?.recordActions === true;
    this.logs = record ? schedule.workers.map(() => new MessageLog()) : null;
    const deliver = (to: number, key: string, payload: Parameters<WorkerInterpreter["deliver"]>[1]): void => this.workers[to].deliver(key, payload);
    // A message between two workers: the sender's send and the receiver's receive, at the same time.
    const recorded = (from: number) => (to: number, key: string, payload: Parameters<WorkerInterpreter["deliver"]>[1]): void => {
      const t0 = epochNow();
      deliver(to, key, payload);
      if (to === from) return;
      this.logs![from].send(key, payloadBytes(payload), t0);
      this.logs![to].receive(key, payloadBytes(payload), t0);
    };
    const stagesOf = schedule.workers.map((_, w) => buildWorkerStages(model, setup, w, loss));
    this.asyncRuntime = createAsyncRuntime(new Map(stagesOf.flatMap((m) => [...m])), setup.async);
    const h = hooks ?? this.asyncRuntime?.hooks;
    this.workers = schedule.workers.map((actions, w) => new WorkerInterpreter({
      worker: w, actions, stages: stagesOf[w], shape, outbox: record ? { send: recorded(w) } : { send: deliver }, hooks: h,
      actionDelay: syntheticDelay(setup.instrumentation, schedule.chunks), recordActions: record,
      onMetrics: (mb, m) => { this.metrics.set(mb, m); },
      onOutput: (mb, t) => { this.outputs.set(mb, t); },
    }));
  }

  step(batch: SplitBatch, lrFactor = 1): Promise<StepResult> { return this.run([batch], [lrFactor]); }

  async run(batches: readonly SplitBatch[], lrFactors: readonly number[] = [1]): Promise<StepResult> {
    const { schedule } = this.setup;
    const M = schedule.microbatches;
    checkBatches(batches, M, schedule.steps);
    const S = schedule.stages;
    const V = S * schedule.chunks;
    const first = this.workers[schedule.stageToWorker[0]];
    const last = this.workers[schedule.stageToWorker[(V - 1) % S]];
    batches.forEach((batch, k) => {
      for (let j = 0; j < M; j++) {
        const x = batch.inputs[j];
        first.deliver(messageKey.activation(0, k * M + j), { kind: "tensor", data: x.data, shape: [...x.shape] });
        last.deliver(messageKey.targets(k * M + j), targetsPayload(batch.labels[j], batch.scale));
      }
    });
    for (const w of this.workers) w.reset(lrFactors);
    this.metrics.clear();
    const begin = epochNow();
    try {
      this.pumpAll();
    } catch (e) {
      for (const w of this.workers) w.abandon();
      throw e;
    }
    if (this.logs) {
      const end = epochNow();
      this.last = this.workers.map((w, i) => ({ rank: i, worker: i, actions: onEpoch(w.records), ...this.logs![i].take(), begin, listDone: end, end }));
    }
    const per = Array.from({ length: M * batches.length }, (_, j) => {
      const m = this.metrics.get(j);
      if (!m) throw new Error(`micro-batch ${j} produced no loss`);
      return m;
    });
    return {
      ...sumMetrics(per, this.workers.map((w) => w.busy.F + w.busy.B + w.busy.W + w.busy.STEP),
        this.workers.flatMap((w) => [...w.peakLive]), schedule.stages),
      memory: this.workers.map((w, worker) => workerMemory(w, { worker, replica: 0, tensor: 0 })),
    };
  }

  async evaluate(batches: EvalBatches, scale = 1): Promise<MicrobatchMetrics> {
    this.metrics.clear();
    const last = this.workers[this.lastWorker];
    batches.labels.forEach((t, j) => last.deliver(messageKey.targets(j), targetsPayload(t, scale)));
    this.forwardOnly(batches.inputs, "eval");
    return sumEvalMetrics(batches.inputs.map((_, j) => this.metrics.get(j)));
  }

  async predict(inputs: readonly Tensor[]): Promise<Tensor[]> {
    this.outputs.clear();
    this.forwardOnly(inputs, "predict");
    return inputs.map((_, j) => this.outputs.get(j)!);
  }

  private get lastWorker(): number {
    const { stages: S, chunks: v, stageToWorker } = this.setup.schedule;
    return stageToWorker[(S * v - 1) % S];
  }

  /** Runs the forward-only lists over `inputs` (targets, if any, already delivered). */
  private forwardOnly(inputs: readonly Tensor[], mode: ForwardMode): void {
    const { schedule } = this.setup;
    const lists = forwardOnlyLists(schedule, inputs.length);
    const first = this.workers[schedule.stageToWorker[0]];
    inputs.forEach((x, j) => first.deliver(messageKey.activation(0, j), { kind: "tensor", data: x.data, shape: [...x.shape] }));
    this.workers.forEach((w, i) => w.reset([1], lists[i], mode));
    for (const l of this.logs ?? []) l.paused = true; // evaluation is no step
    try {
      this.pumpAll();
    } finally {
      for (const w of this.workers) w.abandon();
      for (const l of this.logs ?? []) l.paused = false;
    }
  }

  /** Runs every worker's list to its end, round robin (one thread: the deterministic reference). */
  private pumpAll(): void {
    let pending = this.workers.length;
    const finished = new Array<boolean>(this.workers.length).fill(false);
    while (pending > 0) {
      let progress = false;
      for (const w of this.workers) {
        if (finished[w.worker]) continue;
        const before = w.next;
        if (w.pump()) { finished[w.worker] = true; pending--; progress = true; } else if (w.next !== before) progress = true;
      }
      if (!progress) {
        const stuck = this.workers.filter((w) => !finished[w.worker])
          .map((w) => `worker ${w.worker} at ${formatAction(w.next!)} waiting for ${w.waits().map((x) => x.key).join(", ")}`);
        throw new Error(`pipeline deadlock: ${stuck.join("; ")}`);
      }
    }
  }

  /** TimingSource: every worker's records of the last step (null unless the setup records actions). */
  stepTimings(): RankTimings[] | null { return this.last; }

  /** TimingSource: the schedule the records follow. */
  timingSchedule(): Schedule { return this.setup.schedule; }

  /** Peak bytes per physical stage of weights, optimizer state and extra weight versions. */
  stageMemory(): StageMemory[] {
    return this.asyncRuntime ? this.asyncRuntime.memory() : plainMemory(new Map(this.workers.flatMap((w) => [...w.stages])));
  }

  async stateDict(): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const [k, t] of this.model.stateDict()) out.set(k, t.clone());
    return out;
  }

  async optimizerState(order: readonly string[]): Promise<OptimizerState> {
    const parts = this.workers.flatMap((w) => [...w.stages.values()].flatMap((s) => (s.optimizer ? [s.optimizer.stateDict()] : [])));
    return mergeStates(parts, order);
  }

  async asyncState(): Promise<AsyncState | null> {
    return this.asyncRuntime?.snapshot() ?? null;
  }

  async loadStateDict(state: ReadonlyMap<string, Tensor>): Promise<void> {
    if (this.asyncRuntime) throw new Error("loadStateDict: not with an asynchronous method (its weight versions would mix the old weights and the new)");
    for (const w of this.workers) w.abandon();
    loadStageState(this.workers.flatMap((w) => [...w.stages.values()]), state);
  }

  /** Drops what the stages still hold (the model's layers were never changed). */
  async close(): Promise<void> {
    for (const w of this.workers) w.abandon();
    for (const w of this.workers) for (const ps of w.stages.values()) for (const c of ps.chunks) c.clear();
  }
}

