// createPipeline: the library's pipeline object. The user gives a model (a module export every
// worker imports, a built-in spec, or inline layers), a loss, a schedule and the stage layout;
// `pipe.step(x, y)` splits the mini-batch into micro-batches, applies the loss-scaling rule
// (src/pipeline/stage.ts: the summed micro-batch losses are the mini-batch mean) and runs one
// optimizer step on the run engine (engine.ts, shared with `pipewright train`), which also evaluates
// through the stages, saves and resumes.
import { toPlain } from "../optim/index.js";
import { partitionLayers } from "../pipeline/partition.js";
import { generateSchedule, type Schedule } from "../pipeline/schedule/index.js";
import { annealSteps } from "../pipeline/weights/index.js";
import { asyncConfigOf } from "./async-options.js";
import { asyncSetupFor } from "../pipeline/runtime/async-weights.js";
import type { StepResult } from "../pipeline/runtime/executor.js";
import type { WorkerMemory } from "../pipeline/runtime/memory.js";
import { loadModelSource, toPipelineModel, type ModelSource } from "../pipeline/runtime/model-source.js";
import { functionLoss, loadLoss } from "../pipeline/runtime/loss-source.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import type { MicrobatchMetrics, Target } from "../pipeline/stage.js";
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import type { Pipe } from "./pipe-interface.js";
import type { Tensor } from "../tensor/tensor.js";
import { checkLaunched, endJobOnError, finalizeMpi } from "./spmd.js";
import { createFreezingPipeline, FreezingPipe, type FreezingPipeOptions } from "./freeze-pipe.js";
import { TraceWriter } from "../trace/trace-writer.js";
import { lossSpecOf, modelSourceOf, resolveOptions, type PipelineOptions, type ResolvedOptions } from "./options.js";
import { RunEngine, type MiniBatch } from "./engine.js";
import { checkpointStart } from "./checkpoint-start.js";
import { checkTensorParallel } from "../parallel/ptdp-units.js";
import { TransformerBlock } from "../nn/transformer.js";

/** The pipe of a schedule (synchronous or asynchronous); see {@link createPipeline}. */
class SchedulePipe implements Pipe {
  /** @internal */
  constructor(
    private readonly engine: RunEngine,
    private readonly opts: PipelineOptions,
    private readonly resolved: ResolvedOptions,
  ) {}

  /** The last step's (or window's) full result: per-micro-batch losses, busy time per worker... */
  get lastResult(): StepResult | null { return this.engine.lastResult; }

  get steps(): number { return this.engine.steps; }

  get memory(): readonly WorkerMemory[] | null { return this.engine.memory; }

  /** Units per virtual stage, as partitioned. */
  get balance(): readonly number[] { return this.engine.setup.balance; }

  /** The schedule's per-worker action lists. */
  get schedule(): Schedule { return this.engine.setup.schedule; }

  private lrFactor(step: number): number {
    const f = this.opts.lrSchedule ? this.opts.lrSchedule(step) : 1;
    if (!Number.isFinite(f) || f < 0) throw new Error(`lrSchedule(${step}) returned ${f}; it must be a finite factor >= 0`);
    return f;
  }

  /** processes: an error on one rank ends the job (see src/api/spmd.ts); else thrown as usual. */
  private spmd<T>(body: () => Promise<T>): Promise<T> { return endJobOnError(this.resolved.executor, body); }

  /** One optimizer step on mini-batch (x, y); resolves to its mean loss. Synchronous schedules only. */
  async step(x: Tensor, y: Target): Promise<number> { return this.spmd(() => this.stepOnce(x, y)); }

  private async stepOnce(x: Tensor, y: Target): Promise<number> {
    if (this.resolved.schedule === "async") throw new Error(`pipe.step: schedule "async" runs windows of ${this.resolved.window} steps without flush; use pipe.run(batches) with ${this.resolved.window} mini-batches`);
    const r = await this.engine.step(x, y, this.lrFactor(this.engine.steps), "pipe.step");
    if (!Number.isFinite(r.loss)) throw new Error(`training diverged: loss is ${r.loss} at step ${this.engine.steps}; try a smaller lr`);
    return r.loss;
  }

  /**
   * Asynchronous schedules: one window of `window` optimizer steps without flush, mini-batch k
   * feeding step k; resolves to each step's mean loss.
   */
  async run(batches: readonly MiniBatch[]): Promise<number[]> { return this.spmd(() => this.runWindow(batches)); }

  private async runWindow(batches: readonly MiniBatch[]): Promise<number[]> {
    // A synchronous schedule's lists span one step: the mini-batches run one after the other.
    if (this.resolved.schedule !== "async") {
      const losses: number[] = [];
      for (const b of batches) losses.push(await this.stepOnce(b.x, b.y));
      return losses;
    }
    const K = this.engine.setup.schedule.steps;
    if (batches.length !== K) throw new Error(`pipe.run: the schedule's lists span ${K} optimizer step(s) (option window); got ${batches.length} mini-batches`);
    const first = this.engine.steps;
    const { losses } = await this.engine.window(batches, batches.map((_, k) => this.lrFactor(first + k)), "pipe.step");
    const bad = losses.findIndex((l) => !Number.isFinite(l));
    if (bad >= 0) throw new Error(`training diverged: loss is ${losses[bad]} at step ${first + bad + 1}; try a smaller lr`);
    return losses;
  }

  /**
   * The model's output for x with the current weights (eval mode, no gradient), computed through the
   * stages as one micro-batch. processes: collective; every rank gets the output.
   */
  async eval(x: Tensor): Promise<Tensor> {
    const [out] = await this.spmd(() => this.engine.executor.predict([x]));
    return out;
  }

  /** Mean loss, correct predictions and target count of (x, y), through the stages in the schedule's micro-batches. */
  async evaluate(x: Tensor, y: Target): Promise<MicrobatchMetrics> {
    const { inputs, labels, scale } = splitMiniBatch(x, y, this.opts.microbatches, "pipe.evaluate");
    return this.spmd(() => this.engine.executor.evaluate({ inputs, labels }, scale));
  }

  async stateDict(): Promise<Map<string, Tensor>> { return this.spmd(() => this.engine.stateDict()); }

  /**
   * Replaces the weights (names and shapes must match); the optimizer state is kept. processes:
   * collective, every rank passes the same state.
   */
  async loadStateDict(state: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void> {
    return this.spmd(() => this.engine.loadStateDict(state));
  }

  /**
   * Writes a checkpoint (safetensors: weights, optimizer state, step); resume with {resume: path}.
   * processes: collective; every rank writes its own part and rank 0 the manifest (one file per rank,
   * read back by loadCheckpoint like a single file).
   */
  async save(path: string): Promise<void> {
    const src = this.engine.setup.source;
    const pipeline = { schedule: this.resolved.schedule, stages: this.opts.stages, microbatches: this.opts.microbatches, balance: [...this.balance] };
    return this.spmd(() => this.engine.save(path, { epoch: 0, modelSpec: src?.kind === "builtin" ? src.spec : undefined, extra: { library: { pipeline } } }));
  }

  /**
   * Stops the workers (threads) or hands the layers back (inline). processes: collective; it also
   * finalizes MPI, so it is the process's last pipeline (and the process can exit).
   */
  async close(): Promise<void> {
    // Collective on processes (rank 0 gathers every rank's records), so before the executor closes.
    await this.spmd(() => this.engine.finishTrace());
    await this.spmd(() => this.engine.close());
    if (this.resolved.executor === "processes") await finalizeMpi();
  }
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
export async function createPipeline(o: PipelineOptions | FreezingPipeOptions): Promise<Pipe> {
  if ((o as { freeze?: unknown }).freeze !== undefined) {
    // A freezing pipe runs on its own worker threads or MPI ranks (createFreezingPipeline checks the executor).
    return createFreezingPipeline(o as FreezingPipeOptions);
  }
  const r = resolveOptions(o as PipelineOptions);
  return endJobOnError(r.executor, () => buildPipe(o as PipelineOptions, r));
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
    if (r.tensorParallel > 1) checkTensorParallel(model.units, r.tensorParallel, "tensorParallel");
    if (r.sequenceParallel && !model.units.some((u) => u instanceof TransformerBlock)) {
      throw new Error("sequenceParallel splits the built-in transformer blocks (gpt, vit); a model of your own tensor-parallel layers runs with sequenceParallel false");
    }
  } catch (e) {
    throw asOptionError(e);
  }
  const start = o.resume ? checkpointStart(o.resume, model, { asyncStages: r.schedule === "async" ? o.stages : null, prefix: "createPipeline: " }) : null;
  const asyncCfg = r.schedule === "async" ? asyncConfigOf(o.async ?? {}) : null;
  const setup: PipelineSetup = {
    source: source ?? undefined, loss: lossSpec, schedule, balance, recompute: r.recompute, optimizer: o.optimizer,
    optimizerState: start ? toPlain(start.optimizerState) : undefined,
    // The trace option records every action and message (off otherwise).
    instrumentation: o.trace ? { recordActions: true } : undefined,
    // T1's default horizon: two windows (the CLI's is two epochs).
    async: asyncCfg ? asyncSetupFor(schedule, asyncCfg, annealSteps(asyncCfg, r.window)) : undefined,
    ...(r.clipGradNorm !== null ? { clipGradNorm: r.clipGradNorm } : {}),
    ...(r.tensorParallel > 1 ? { tensorParallel: { size: r.tensorParallel, sequenceParallel: r.sequenceParallel } } : {}),
  };
  if (setup.async && start) setup.async.resume = start.asyncResume;
  if (r.executor === "processes") checkLaunched(schedule.workers.length * r.tensorParallel, r.replicas);
  const engine = await RunEngine.start({ model, setup, executor: r.executor, replicas: r.replicas, loss, step: start?.step ?? 0,
    trace: o.trace ? new TraceWriter(o.trace) : null });
  return new SchedulePipe(engine, o, r);
}
