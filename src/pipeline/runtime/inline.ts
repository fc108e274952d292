// The inline executor: every worker's interpreter in one thread, the deterministic reference. Workers
// are visited round-robin in index order; each runs until its next action waits for a message. A
// full round without progress is a deadlock, reported with every worker's stuck action. Messages are
// handed over by reference (no copies at all).
import type { PipelineModel } from "./model-source.js";
import { Tensor } from "../../tensor/tensor.js";
import { formatAction } from "../schedule/action.js";
import type { MicrobatchMetrics, StageLoss } from "../stage.js";
import { checkBatches, sumEvalMetrics, sumMetrics, type EvalBatches, type Executor, type SplitBatch, type StepResult } from "./executor.js";
import { messageKey, targetsPayload, WorkerInterpreter, type ForwardMode, type WeightHooks } from "./interpreter.js";
import { forwardOnlyLists } from "../schedule/forward-only.js";
import { mergeStates, type OptimizerState } from "../../optim/index.js";
import { buildWorkerStages, shapeOf, syntheticDelay, type PipelineSetup } from "./setup.js";
import type { AsyncState } from "./async-state.js";
import { createAsyncRuntime, plainMemory, type AsyncRuntime, type StageMemory } from "./async-weights.js";

export class InlineExecutor implements Executor {
  readonly name = "inline" as const;
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
    const outbox = { send: (to: number, key: string, payload: Parameters<WorkerInterpreter["deliver"]>[1]) => this.workers[to].deliver(key, payload) };
    const stagesOf = schedule.workers.map((_, w) => buildWorkerStages(model, setup, w, loss));
    this.asyncRuntime = createAsyncRuntime(new Map(stagesOf.flatMap((m) => [...m])), setup.async);
    const h = hooks ?? this.asyncRuntime?.hooks;
    this.workers = schedule.workers.map((actions, w) => new WorkerInterpreter({
      worker: w, actions, stages: stagesOf[w], shape, outbox, hooks: h, actionDelay: syntheticDelay(setup.instrumentation, schedule.chunks),
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
    try {
      this.pumpAll();
    } catch (e) {
      for (const w of this.workers) w.abandon();
      throw e;
    }
    const per = Array.from({ length: M * batches.length }, (_, j) => {
      const m = this.metrics.get(j);
      if (!m) throw new Error(`micro-batch ${j} produced no loss`);
      return m;
    });
    return sumMetrics(per, this.workers.map((w) => w.busy.F + w.busy.B + w.busy.W + w.busy.STEP),
      this.workers.flatMap((w) => [...w.peakLive]), schedule.stages);
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
    try {
      this.pumpAll();
    } finally {
      for (const w of this.workers) w.abandon();
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
          .map((w) => `worker ${w.worker} at ${formatAction(w.next!)} waiting for ${w.waitingFor().join(", ")}`);
        throw new Error(`pipeline deadlock: ${stuck.join("; ")}`);
      }
    }
  }

  /** Seconds each worker spent in F, B, W and STEP actions during the last step. */
  busyByKind(): { F: number; B: number; W: number; STEP: number }[] {
    return this.workers.map((w) => ({ ...w.busy }));
  }

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

  /** Gives the model's layers back (the stages patched BatchNorm to own its statistics). */
  async close(): Promise<void> {
    for (const w of this.workers) w.abandon();
    for (const w of this.workers) for (const ps of w.stages.values()) for (const c of ps.chunks) c.release();
  }
}

