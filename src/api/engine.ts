// The run engine under both createPipeline's Pipe and `pipewright train`: it starts the executor for
// a model and a set-up, runs steps and windows (counting optimizer steps, keeping trace records and
// per-worker memory peaks), evaluates through the stages, saves checkpoints (one file, or one part
// per MPI rank) and restarts the executor from its own state (the end of an asynchronous warm-up).
// It is the one place that knows how each executor holds the model.
import type { Json } from "../checkpoint/index.js";
import { mergeStates, toPlain } from "../optim/index.js";
import { isTimingSource } from "../pipeline/runtime/action-records.js";
import { asyncCheckpointParts } from "../pipeline/runtime/async-state.js";
import type { Executor, ExecutorName, StepResult } from "../pipeline/runtime/executor.js";
import { InlineExecutor } from "../pipeline/runtime/inline.js";
import { hasLocalState } from "../pipeline/runtime/local-state.js";
import type { PipelineModel } from "../pipeline/runtime/model-source.js";
import { savePartedCheckpoint } from "../pipeline/runtime/parted-save.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import type { WorkerMemory } from "../pipeline/runtime/memory.js";
import { ThreadsExecutor } from "../pipeline/runtime/threads.js";
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import type { StageLoss, Target } from "../pipeline/stage.js";
import type { Tensor } from "../tensor/tensor.js";
import type { TraceWriter } from "../trace/trace-writer.js";
import { writeRunCheckpoint } from "./checkpoint-start.js";

export interface EngineOptions {
  /**
   * The main thread's model: trained in place inline and on processes (an MPI rank's model may hold
   * only its own stages' units), the initial weights of the worker threads otherwise.
   */
  model: PipelineModel;
  setup: PipelineSetup;
  executor: ExecutorName;
  /** Data-parallel copies of the pipeline. */
  replicas?: number;
  /** setup.loss resolved (a loss function or module loss; the inline executor needs it). */
  loss?: StageLoss;
  /** Optimizer steps already taken (a resumed run's). */
  step?: number;
  /**
   * The whole model's parameter names in order (the optimizer state's order); default: the model's
   * own. An MPI rank's part of a model must pass the whole list: checkpoints name every parameter.
   */
  paramOrder?: readonly string[];
  /** Records every step's actions and messages (the trace option). */
  trace?: TraceWriter | null;
}

export interface SaveMeta {
  epoch: number;
  modelSpec?: object;
  /** The caller's own JSON (run config, history, ...); the asynchronous state's is added here. */
  extra: { [key: string]: Json };
  /** One file (gathered, rank 0 writes) or one part per MPI rank; default: parts on processes (ranks hold their own state). */
  layout?: "file" | "parts";
}

/** A mini-batch: inputs [n, ...] and targets (n class ids, n*k ids, or a float tensor [n, ...]). */
export interface MiniBatch { x: Tensor; y: Target }

/** Starts the executor `name` for the model and set-up. */
async function startExecutor(o: EngineOptions, setup: PipelineSetup): Promise<Executor> {
  const name: string = o.executor;
  if (name === "inline") return InlineExecutor.create(o.model, setup, o.replicas ?? 1, o.loss);
  if (name === "threads") return ThreadsExecutor.create(setup, o.model.stateDict(), o.replicas ?? 1);
  // One MPI rank per worker (loaded only here: the MPI addon is optional); its stages train this
  // process's model in place (no second copy).
  if (name === "processes") return (await import("../pipeline/runtime/processes.js")).ProcessesExecutor.create(setup, { model: o.model }, o.replicas ?? 1);
  // An executor added to EXECUTORS must be wired here, never fall back silently.
  throw new Error(`executor "${name}" is not available to pipelines yet; use inline, threads or processes`);
}

export class RunEngine {
  /** The last step's (or window's) full result. */
  lastResult: StepResult | null = null;
  /** Per worker thread: the largest memory it held (threads only; null elsewhere). */
  workerPeakBytes: number[] | null = null;
  /** Per worker: its tensor-counted memory, activations at their peak over the steps so far (null before a step). */
  memory: WorkerMemory[] | null = null;

  /** `steps`: optimizer steps taken (counting a resumed run's). */
  private constructor(private readonly o: EngineOptions, private setupNow: PipelineSetup, private ex: Executor, public steps: number) {}

  static async start(o: EngineOptions): Promise<RunEngine> {
    return new RunEngine(o, o.setup, await startExecutor(o, o.setup), o.step ?? 0);
  }

  /** The running executor (evaluation and prediction; observers such as per-stage memory probes). */
  get executor(): Executor { return this.ex; }
  get setup(): PipelineSetup { return this.setupNow; }
  get microbatches(): number { return this.setupNow.schedule.microbatches; }

  /** One optimizer step on a mini-batch (split into the schedule's micro-batches). */
  async step(x: Tensor, y: Target, lrFactor: number, what?: string): Promise<StepResult> {
    const r = await this.ex.step(splitMiniBatch(x, y, this.microbatches, what), lrFactor);
    this.noteResult(r);
    this.steps++;
    return r;
  }

  /**
   * One window of the no-flush lists: mini-batch k feeds optimizer step k (factor lrFactors[k]);
   * resolves to the result and each step's mean loss.
   */
  async window(batches: readonly MiniBatch[], lrFactors: readonly number[], what?: string): Promise<{ result: StepResult; losses: number[] }> {
    const M = this.microbatches;
    const r = await this.ex.run(batches.map((b) => splitMiniBatch(b.x, b.y, M, what)), lrFactors);
    this.noteResult(r);
    this.steps += batches.length;
    const losses = batches.map((_, k) => r.perMicrobatch.slice(k * M, (k + 1) * M).reduce((a, m) => a + m.loss, 0));
    return { result: r, losses };
  }

  private noteResult(r: StepResult): void {
    this.lastResult = r;
    if (this.o.trace && isTimingSource(this.ex)) this.o.trace.add(this.ex);
    if (r.memory) {
      const prev = this.memory;
      this.memory = r.memory.map((m, i) => ({ ...m, peakActivationBytes: Math.max(m.peakActivationBytes, prev?.[i]?.peakActivationBytes ?? 0) }));
    }
    if (!r.workerPeakBytes) return;
    const prev = this.workerPeakBytes ?? [];
    this.workerPeakBytes = r.workerPeakBytes.map((b, w) => Math.max(b, prev[w] ?? 0));
  }

  /** The whole model's parameter names in order (the optimizer state's order). */
  private paramOrder(): readonly string[] { return this.o.paramOrder ?? this.o.model.namedParameters().map(([n]) => n); }

  /** Copies of every parameter and buffer, in the model's state-dict order (PyTorch's). */
  async stateDict(): Promise<Map<string, Tensor>> {
    const got = await this.ex.stateDict();
    const keys = [...this.o.model.stateDict().keys()];
    // An MPI rank's model holds its own units only: it cannot order the whole; the executor's order stands.
    if (keys.length !== got.size) return got;
    return new Map(keys.map((k) => [k, got.get(k)!]));
  }

  /**
   * Writes a checkpoint of the run at this step (collective on processes: in parts every rank writes
   * its own, in one file every rank gathers and rank 0 writes).
   */
  async save(path: string, meta: SaveMeta): Promise<void> {
    const ex = this.ex;
    const layout = meta.layout ?? (hasLocalState(ex) ? "parts" : "file");
    const paramOrder = this.paramOrder();
    if (layout === "parts") {
      if (!hasLocalState(ex)) throw new Error(`a checkpoint in parts needs executor processes (one part per MPI rank), not ${ex.name}`);
      return savePartedCheckpoint(path, ex, { step: this.steps, epoch: meta.epoch, modelSpec: meta.modelSpec, extra: meta.extra, paramOrder });
    }
    const asyncPart = asyncCheckpointParts(await ex.asyncState()); // between runs: nothing in flight
    const optimizer = await ex.optimizerState(paramOrder);
    writeRunCheckpoint(path, {
      model: await this.stateDict(), optimizer, step: this.steps, epoch: meta.epoch, modelSpec: meta.modelSpec,
      extra: asyncPart.meta ? { ...meta.extra, async: asyncPart.meta } : meta.extra, extraTensors: asyncPart.tensors,
    });
  }

  /**
   * Closes the executor and starts another from its weights and optimizer state, with the set-up
   * `change` makes (the asynchronous lists after a synchronous warm-up), or with new `weights`.
   */
  async restart(change: (s: PipelineSetup) => PipelineSetup = (s) => s, weights?: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void> {
    const ex = this.ex;
    const order = this.paramOrder();
    // An MPI rank keeps its own stages' state (the next executor has the same stages): no gather.
    const opt = hasLocalState(ex) ? mergeStates(ex.localState().optimizer, order) : await ex.optimizerState(order);
    // Worker threads trained copies: the next executor starts from their weights.
    if (this.o.executor === "threads" && !weights) this.o.model.loadStateDict(await ex.stateDict());
    await ex.close(); // first: inline and on processes the stages trained this model in place
    if (weights) this.o.model.loadStateDict(weights);
    this.setupNow = { ...change(this.setupNow), optimizerState: toPlain(opt) };
    this.ex = await startExecutor(this.o, this.setupNow);
  }

  /**
   * Replaces the weights (names and shapes must match) in the running workers; the optimizer state
   * is kept. An asynchronous method's stashed weight versions would mix the old weights and the new,
   * so its executor starts afresh from the new ones instead.
   */
  async loadStateDict(state: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void> {
    if (this.setupNow.async) return this.restart(undefined, state);
    this.o.model.loadStateDict(state); // checks every name and shape before anything changes
    await this.ex.loadStateDict(this.o.model.stateDict());
  }

  /** Steps (or windows) the trace holds. */
  get tracedSteps(): number { return this.o.trace?.steps ?? 0; }

  /** Writes the trace (collective on processes: rank 0 gathers every rank's records); its file, or null. */
  async finishTrace(): Promise<string | null> {
    return this.o.trace?.steps ? this.o.trace.finish(this.ex) : null;
  }

  close(): Promise<void> { return this.ex.close(); }
}
