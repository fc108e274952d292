// createPipeline: the library's pipeline object. The user gives a model (a module export every
// worker imports, a built-in spec, or inline layers), a loss, a schedule and the stage layout;
// `pipe.step(x, y)` splits the mini-batch into micro-batches, applies the loss-scaling rule
// (src/pipeline/stage.ts: the summed micro-batch losses are the mini-batch mean) and runs one
// optimizer step on the executor. eval() runs through the stages; the main thread keeps a copy of
// the model for stateDict() and save().
import { loadCheckpoint, saveCheckpoint, toJson } from "../checkpoint/index.js";
import { toPlain, type OptimizerState } from "../optim/index.js";
import { partitionLayers } from "../pipeline/partition.js";
import { generateSchedule, type Schedule } from "../pipeline/schedule/index.js";
import { annealSteps } from "../pipeline/weights/index.js";
import { asyncConfigOf } from "./async-options.js";
import { asyncSetupFor } from "../pipeline/runtime/async-weights.js";
import { asyncCheckpointParts, asyncStateFromCheckpoint } from "../pipeline/runtime/async-state.js";
import type { Executor, SplitBatch, StepResult } from "../pipeline/runtime/executor.js";
import { InlineExecutor } from "../pipeline/runtime/inline.js";
import { hasLocalState } from "../pipeline/runtime/local-state.js";
import { savePartedCheckpoint } from "../pipeline/runtime/parted-save.js";
import { ThreadsExecutor } from "../pipeline/runtime/threads.js";
import { loadModelSource, toPipelineModel, type ModelSource, type PipelineModel } from "../pipeline/runtime/model-source.js";
import { functionLoss, loadLoss } from "../pipeline/runtime/loss-source.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import type { StageLoss, Target } from "../pipeline/stage.js";
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import { Tensor } from "../tensor/tensor.js";
import { isWriterRank } from "../transport/mpi/env.js";
import { endJobOnError, finalizeMpi, startProcessesExecutor } from "./spmd.js";
import { createFreezingPipeline, FreezingPipe, type FreezingPipeOptions } from "./freeze-pipe.js";
import { isTimingSource } from "../pipeline/runtime/action-records.js";
import { TraceWriter } from "../trace/trace-writer.js";
import { lossSpecOf, modelSourceOf, resolveOptions, type PipelineOptions, type ResolvedOptions } from "./options.js";

/** A mini-batch: inputs [n, ...] and targets (n class ids, n*k ids, or a float tensor [n, ...]). */
export interface MiniBatch { x: Tensor; y: Target }

/** A pipeline-parallel trainer; see {@link createPipeline}. */
export class Pipe {
  private stepCount: number;
  /** The last step's (or window's) full result: per-micro-batch losses, busy time per worker... */
  lastResult: StepResult | null = null;
  /** The trace option: every step's records, written at close(). */
  private readonly trace: TraceWriter | null;

  /** @internal */
  constructor(
    /**
     * The main thread's model: the one trained on inline, the initial weights elsewhere. Not public:
     * on threads it does not follow training; pipe.stateDict() gives the current weights.
     */
    private readonly model: PipelineModel,
    private readonly executor: Executor,
    private readonly setup: PipelineSetup,
    private readonly opts: PipelineOptions,
    private readonly resolved: ResolvedOptions,
    startStep: number,
  ) {
    this.stepCount = startStep;
    this.trace = opts.trace ? new TraceWriter(opts.trace) : null;
  }

  private traced(): void {
    if (this.trace && isTimingSource(this.executor)) this.trace.add(this.executor);
  }

  /** Optimizer steps taken (including those of a resumed checkpoint). */
  get steps(): number { return this.stepCount; }

  /** Units per virtual stage, as partitioned. */
  get balance(): readonly number[] { return this.setup.balance; }

  /** The schedule's per-worker action lists. */
  get schedule(): Schedule { return this.setup.schedule; }

  private lrFactor(step: number): number {
    const f = this.opts.lrSchedule ? this.opts.lrSchedule(step) : 1;
    if (!Number.isFinite(f) || f < 0) throw new Error(`lrSchedule(${step}) returned ${f}; it must be a finite factor >= 0`);
    return f;
  }

  /** processes: an error on one rank ends the job (see src/api/spmd.ts); else thrown as usual. */
  private spmd<T>(body: () => Promise<T>): Promise<T> { return endJobOnError(this.resolved.executor, body); }

  private split(x: Tensor, y: Target): SplitBatch { return splitMiniBatch(x, y, this.opts.microbatches, "pipe.step"); }

  /** One optimizer step on mini-batch (x, y); resolves to its mean loss. Synchronous schedules only. */
  async step(x: Tensor, y: Target): Promise<number> { return this.spmd(() => this.stepOnce(x, y)); }

  private async stepOnce(x: Tensor, y: Target): Promise<number> {
    if (this.resolved.schedule === "async") throw new Error(`pipe.step: schedule "async" runs windows of ${this.resolved.window} steps without flush; use pipe.run(batches) with ${this.resolved.window} mini-batches`);
    const r = await this.executor.step(this.split(x, y), this.lrFactor(this.stepCount));
    this.traced();
    this.lastResult = r;
    this.stepCount++;
    if (!Number.isFinite(r.loss)) throw new Error(`training diverged: loss is ${r.loss} at step ${this.stepCount}; try a smaller lr`);
    return r.loss;
  }

  /**
   * Asynchronous schedules: one window of `window` optimizer steps without flush, mini-batch k
   * feeding step k; resolves to each step's mean loss.
   */
  async run(batches: readonly MiniBatch[]): Promise<number[]> { return this.spmd(() => this.runWindow(batches)); }

  private async runWindow(batches: readonly MiniBatch[]): Promise<number[]> {
    const K = this.setup.schedule.steps;
    if (batches.length !== K) throw new Error(`pipe.run: the schedule's lists span ${K} optimizer step(s) (option window); got ${batches.length} mini-batches`);
    const factors = batches.map((_, k) => this.lrFactor(this.stepCount + k));
    const r = await this.executor.run(batches.map((b) => this.split(b.x, b.y)), factors);
    this.traced();
    this.lastResult = r;
    const M = this.opts.microbatches;
    const losses = batches.map((_, k) => r.perMicrobatch.slice(k * M, (k + 1) * M).reduce((a, m) => a + m.loss, 0));
    this.stepCount += K;
    const bad = losses.findIndex((l) => !Number.isFinite(l));
    if (bad >= 0) throw new Error(`training diverged: loss is ${losses[bad]} at step ${this.stepCount - K + bad + 1}; try a smaller lr`);
    return losses;
  }

  /**
   * The model's output for x with the current weights (eval mode, no gradient), computed through the
   * stages as one micro-batch. processes: collective; every rank gets the output.
   */
  async eval(x: Tensor): Promise<Tensor> {
    const [out] = await this.spmd(() => this.executor.predict([x]));
    return out;
  }

  /** Copies of every parameter and buffer, named as in the model's state dict (PyTorch names). */
  async stateDict(): Promise<Map<string, Tensor>> {
    // Workers answer in any order: give the entries in the model's own order (PyTorch's).
    const got = await this.spmd(() => this.executor.stateDict());
    return new Map([...this.model.stateDict().keys()].map((k) => [k, got.get(k)!]));
  }

  /**
   * Replaces the weights (names and shapes must match); the optimizer state is kept. processes:
   * collective, every rank passes the same state.
   */
  async loadStateDict(state: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void> {
    return this.spmd(() => this.replaceState(state));
  }

  private async replaceState(state: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void> {
    this.model.loadStateDict(state); // checks every name and shape first
    await this.executor.loadStateDict(this.model.stateDict());
  }

  /**
   * Writes a checkpoint (safetensors: weights, optimizer state, step); resume with {resume: path}.
   * processes: collective; every rank writes its own part and rank 0 the manifest (one file per rank,
   * read back by loadCheckpoint like a single file).
   */
  async save(path: string): Promise<void> { return this.spmd(() => this.saveTo(path)); }

  private async saveTo(path: string): Promise<void> {
    const order = this.model.namedParameters().map(([n]) => n);
    const src = this.setup.source;
    const pipeline = { schedule: this.resolved.schedule, stages: this.opts.stages, microbatches: this.opts.microbatches, balance: [...this.setup.balance] };
    const modelSpec = src?.kind === "builtin" ? src.spec : undefined;
    if (hasLocalState(this.executor)) {
      // processes: one part per rank and a manifest, as `train` saves (src/pipeline/runtime/parted-save.ts says why).
      return savePartedCheckpoint(path, this.executor, { step: this.stepCount, epoch: 0, modelSpec, extra: { library: { pipeline } }, paramOrder: order });
    }
    const state = await this.stateDict();
    const optimizer = await this.executor.optimizerState(order);
    const asyncPart = asyncCheckpointParts(await this.executor.asyncState());
    if (!isWriterRank()) return;
    saveCheckpoint(path, {
      model: state, optimizer, step: this.stepCount, epoch: 0,
      modelSpec,
      extra: toJson({ library: { pipeline }, ...(asyncPart.meta ? { async: asyncPart.meta } : {}) }),
      extraTensors: asyncPart.tensors,
    });
  }

  /**
   * Stops the workers (threads) or hands the layers back (inline). processes: collective; it also
   * finalizes MPI, so it is the process's last pipeline (and the process can exit).
   */
  async close(): Promise<void> {
    // Collective on processes (rank 0 gathers every rank's records), so before the executor closes.
    if (this.trace?.steps) await this.spmd(() => this.trace!.finish(this.executor));
    await this.spmd(() => this.executor.close());
    if (this.resolved.executor === "processes") await finalizeMpi();
  }
}

async function startExecutor(model: PipelineModel, setup: PipelineSetup, r: ResolvedOptions, loss: StageLoss): Promise<Executor> {
  const name: string = r.executor;
  if (name === "inline") return new InlineExecutor(model, setup, undefined, loss);
  if (name === "threads") return ThreadsExecutor.create(setup, model.stateDict());
  // SPMD: every rank built the same model (same source and arguments); its worker's stages train it
  // in place (no second copy).
  if (name === "processes") return startProcessesExecutor(setup, model, r.replicas);
  // An executor added to EXECUTORS must be wired here, never fall back silently.
  throw new Error(`createPipeline: executor "${name}" is not available through createPipeline yet; use inline, threads or processes`);
}

/** Library errors speak of options, not the CLI's flags. */
function asOptionError(e: unknown): Error {
  const msg = (e as Error).message ?? String(e);
  return new Error(`createPipeline: ${msg.replace(/--balance /g, "balance ")}`, { cause: e });
}

/**
 * Builds a pipeline: loads the model (every worker thread imports a module model itself), cuts it
 * into stages, generates the schedule and starts the executor. With a `freeze` option it is a
 * PipeTransformer pipeline (built-in vit; see {@link FreezingPipe}).
 *
 * @example
 * const pipe = await createPipeline({ model: { module: import.meta.url, export: "build" }, loss: "mse",
 *   schedule: "gpipe", stages: 2, microbatches: 4, optimizer: { name: "sgd", lr: 0.05 } });
 * const loss = await pipe.step(x, y);
 */
export async function createPipeline(o: FreezingPipeOptions): Promise<FreezingPipe>;
export async function createPipeline(o: PipelineOptions): Promise<Pipe>;
export async function createPipeline(o: PipelineOptions | FreezingPipeOptions): Promise<Pipe | FreezingPipe> {
  if ((o as { freeze?: unknown }).freeze !== undefined) {
    // A freezing pipe runs on its own worker threads or MPI ranks (createFreezingPipeline checks the executor).
    return createFreezingPipeline(o as FreezingPipeOptions);
  }
  return createSyncOrAsyncPipeline(o as PipelineOptions);
}

async function createSyncOrAsyncPipeline(o: PipelineOptions): Promise<Pipe> {
  const r = resolveOptions(o);
  return endJobOnError(r.executor, () => buildPipe(o, r));
}

async function buildPipe(o: PipelineOptions, r: ResolvedOptions): Promise<Pipe> {
  const { source, layers } = modelSourceOf(o.model, r.executor);
  const model = layers ? toPipelineModel(layers, "createPipeline: model") : await loadModelSource(source as ModelSource);
  const { spec: lossSpec, fn } = lossSpecOf(o.loss, r.executor);
  const loss = fn ? functionLoss(fn) : await loadLoss(lossSpec);
  let schedule: Schedule, balance: number[];
  try {
    schedule = r.custom ?? generateSchedule(r.schedule, { stages: o.stages, microbatches: o.microbatches, chunks: r.chunks,
      steps: r.schedule === "async" ? r.window : undefined, weightGrads: r.weightGrads });
    balance = partitionLayers({ layers: model.units.length, stages: o.stages, chunks: r.chunks, method: r.partition, balance: o.balance,
      parameters: model.units.map((u) => u.numParameters()) }).balance;
  } catch (e) {
    throw asOptionError(e);
  }
  let startStep = 0, optimizerState: OptimizerState | undefined, resumeExtra: Record<string, unknown> = {};
  let extraTensors = new Map<string, Tensor>();
  if (o.resume) {
    const ck = loadCheckpoint(o.resume);
    try { model.loadStateDict(ck.model); } catch (e) { throw new Error(`createPipeline: checkpoint ${o.resume} does not fit this model: ${(e as Error).message}`); }
    if (!ck.optimizer) throw new Error(`createPipeline: checkpoint ${o.resume} has no optimizer state; it cannot be resumed exactly`);
    optimizerState = ck.optimizer as unknown as OptimizerState;
    startStep = ck.step;
    resumeExtra = (ck.extra ?? {}) as Record<string, unknown>;
    extraTensors = ck.extraTensors;
  }
  const asyncCfg = r.schedule === "async" ? asyncConfigOf(o.async ?? {}) : null;
  const setup: PipelineSetup = {
    source: source ?? undefined, loss: lossSpec, schedule, balance, recompute: r.recompute, optimizer: o.optimizer,
    optimizerState: optimizerState ? toPlain(optimizerState) : undefined,
    // The trace option records every action and message (off otherwise).
    instrumentation: o.trace ? { recordActions: true } : undefined,
    // T1's default horizon: two windows (the CLI's is two epochs).
    async: asyncCfg ? asyncSetupFor(schedule, asyncCfg, annealSteps(asyncCfg, r.window)) : undefined,
  };
  if (setup.async && o.resume) setup.async.resume = asyncStateFromCheckpoint(resumeExtra.async, extraTensors, o.stages);
  const executor = await startExecutor(model, setup, r, loss);
  return new Pipe(model, executor, setup, o, r, startStep);
}
