// `pipewright train --schedule ...`: the single-device loop's job (epochs, LR schedule, evaluation,
// metrics, checkpoints) with the step run by a pipeline executor, after planning (pipeline-plan.ts),
// and resumes (weights into the main thread's model, the rest for the stages). Synchronous: each
// mini-batch (the same as single-device training's) is split into M micro-batches and run as one
// optimizer step; by the loss-scaling rule (src/pipeline/stage.ts) the gradients are single-device
// ones. Asynchronous: an epoch runs as windows of the no-flush lists (each one executor call
// spanning many optimizer steps), after an optional synchronous warm-up.
//
// Evaluation runs through the stages (forward-only lists, src/pipeline/schedule/forward-only.ts), in
// the same chunks as single-device evaluation. Checkpoints hold the single-device state (weights,
// the optimizer state merged into the single-device shape) under state-dict names, so a pipeline
// checkpoint resumes on one device and the other way round: one file (gathered from the stages), or
// on processes one part per rank (each rank holds only its own stages' units: createModelPart).
// Starting the executor, steps, evaluation, checkpoints and the warm-up's hand-over are the run
// engine's (src/api/engine.ts), which createPipeline's Pipe runs on too.
import { getBackend } from "../backend/index.js";
import { toJson, type Json } from "../checkpoint/index.js";
import { RunEngine } from "../api/engine.js";
import { createModel, createModelPart } from "../nn/models/index.js";
import { unitsPerWorker } from "../pipeline/runtime/worker-state.js";
import { resolveSpec } from "../nn/models/spec.js";
import { toPlain, type LrSchedule } from "../optim/index.js";
import { divergedError, makeLrSchedule, runCounters, specOf, type ResumeExtra, type RunCounters, type TrainResult, type TrainSummary } from "./loop.js";
import { EpochReport } from "./epoch-report.js";
import type { PipelineConfig, PipelineTrainOptions, TrainConfig } from "./options.js";
import { buildTask, type EvalResult, type Task } from "./task.js";
import { ProgressBar } from "./progress.js";
import { annealSteps } from "../pipeline/weights/index.js";
import { asyncSetupFor } from "../pipeline/runtime/async-weights.js";
import type { Executor } from "../pipeline/runtime/executor.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import { describePlan, planPipeline, type AsyncWindows, type PipelinePlan } from "./pipeline-plan.js";
import { checkpointStart, type CheckpointStart } from "../api/checkpoint-start.js";
import type { Model } from "../nn/models/model.js";
import { launchEnv } from "../transport/mpi/env.js";
import { TraceWriter } from "../trace/trace-writer.js";
import { testSeam } from "../testing/seam.js";

/**
 * Trains as a pipeline: plan (schedules, partition), resume state, then per epoch the synchronous
 * loop or the asynchronous windows (after any synchronous warm-up), evaluation and checkpoints.
 * `beforeClose` sees the executor of the last epoch just before it closes, also after a failure
 * (the reproductions read per-stage memory there).
 */
export async function trainPipeline(opts: PipelineTrainOptions, hooks: { beforeClose?(ex: Executor): void | Promise<void> } = {}): Promise<TrainResult> {
  const p = opts.pipeline;
  const log = opts.quiet ? (): void => {} : (m: string): void => { process.stderr.write(`${m}\n`); };
  const spec = resolveSpec(specOf(opts));
  // An MPI rank builds only its own stages' units, once the plan (which needs only the units'
  // sizes) has cut the model: no rank holds the whole model. It reads the inputs only if it feeds
  // stage 0, which every schedule puts on worker 0.
  const rank = p.executor === "processes" ? launchEnv()?.rank : undefined;
  // rank = (replica * W + worker) * T + tensor (undefined outside processes).
  const worker = rank === undefined ? undefined : Math.floor(rank / (p.tensorParallel ?? 1)) % (p.workers ?? p.stages);
  let model = worker === undefined ? createModel(spec, opts.seed) : createModelPart(spec, opts.seed, () => false);
  const task = buildTask({ ...opts, spec, inputs: worker === undefined || worker === 0 });
  const plan = await planPipeline(opts, spec, model, task);
  if (worker !== undefined) {
    const mine = new Set(unitsPerWorker(plan.partition.balance, plan.schedule)[worker]);
    model = createModelPart(spec, opts.seed, (u) => mine.has(u));
  }
  const start = pipelineStart(opts.resume, model, plan.asyncCfg ? p.stages : null);
  const setup = setupFor(opts, plan, start);
  const head = `pipewright train: ${opts.model} (${model.numParameters().toLocaleString("en-US")} parameters) on the ${getBackend().name} backend; ${task.describe}`;
  for (const line of describePlan(opts, plan, setup, head)) log(line);

  const warmupSetup: PipelineSetup | null = plan.warmupSchedule && setup.async && start.startEpoch < plan.asyncCfg!.warmupEpochs
    ? { ...setup, schedule: plan.warmupSchedule, async: { ...setup.async, phase: "warmup" } } : null;
  // The report opens the metrics file first: a bad path must fail before worker threads exist (they
  // would keep the process alive); a failing executor start closes it again.
  const bar = opts.quiet || !process.stderr.isTTY ? undefined : new ProgressBar(process.stderr);
  const report = new EpochReport({ ...opts, task, progress: bar, log, counters: start });
  let engine: RunEngine;
  try {
    engine = await RunEngine.start({ model, setup: warmupSetup ?? setup, executor: p.executor, replicas: p.replicas, step: start.step,
      paramOrder: model.parameterNames(), trace: opts.trace ? new TraceWriter(opts.trace) : null });
  } catch (e) {
    report.close();
    throw e;
  }
  const run: PipelineRun = { opts, task, report, lrSchedule: makeLrSchedule(opts, opts.epochs * task.stepsPerEpoch), engine, skipped: 0 };
  let finalEval: EvalResult;
  try {
    await runEpochs(run, plan, start.startEpoch, warmupSetup && setup, log);
    // Nothing left to train (a finished run resumed): the checkpoint's weights are evaluated.
    finalEval = report.lastEval ?? await evaluateThrough(engine, task);
    // Collective on processes (every rank's records go to rank 0), so before the close.
    const file = await engine.finishTrace();
    if (file) log(`trace: ${engine.tracedSteps} step(s) written to ${file}`);
  } finally {
    report.close();
    try {
      await hooks.beforeClose?.(engine.executor);
    } finally {
      await engine.close();
    }
  }
  if (run.skipped) log(`note: ${run.skipped} batch(es) smaller than ${p.microbatches} examples were skipped (too small to split into micro-batches)`);
  const summary = report.summary({ model: opts.model, parameters: model.numParameters(), steps: engine.steps }, finalEval);
  return { summary: { ...summary, ...memorySummary(engine) }, records: report.records };
}

/** Where a pipeline run continues: the counters, and the optimizer and asynchronous state for the stages. */
type PipelineStart = RunCounters & Partial<Pick<CheckpointStart, "optimizerState" | "asyncResume">>;

/**
 * Reads checkpoint `path` into `model` and returns where the run continues. `asyncStages`: the
 * stage count of an asynchronous run, whose saved state is checked against it (null: synchronous).
 */
function pipelineStart(path: string | undefined, model: Model, asyncStages: number | null): PipelineStart {
  if (!path) return runCounters(undefined);
  const ck = checkpointStart(path, model, { asyncStages, partial: model.partial, fitHint: "; resume with the same --model as the saved run" });
  return { ...runCounters(path, ck), optimizerState: ck.optimizerState, asyncResume: ck.asyncResume };
}

/** The executor's set-up for the plan, continuing a resumed run's optimizer and asynchronous state. */
function setupFor(opts: PipelineTrainOptions, plan: PipelinePlan, start: PipelineStart): PipelineSetup {
  const { asyncCfg, win } = plan;
  const setup: PipelineSetup = {
    model: resolveSpec(specOf(opts)), seed: opts.seed, schedule: plan.schedule, balance: plan.partition.balance, recompute: opts.pipeline.recompute,
    optimizer: opts.optimizer, optimizerState: start.optimizerState ? toPlain(start.optimizerState) : undefined,
    // --trace: every interpreter records its actions, every executor its messages (off otherwise: no cost).
    instrumentation: testSeam.faults || opts.trace !== undefined
      ? { ...(testSeam.faults ? { faults: testSeam.faults } : {}), ...(opts.trace !== undefined ? { recordActions: true } : {}) } : undefined,
    async: asyncCfg && win ? asyncSetupFor(plan.schedule, asyncCfg, annealSteps(asyncCfg, win.window * win.count)) : undefined,
    ...(opts.pipeline.tensorParallel ? { tensorParallel: { size: opts.pipeline.tensorParallel, sequenceParallel: opts.pipeline.sequenceParallel === true } } : {}),
    ...(opts.clipGradNorm !== undefined ? { clipGradNorm: opts.clipGradNorm } : {}),
  };
  // Saved after the warm-up only; the asynchronous executor (the first one, or the one after the warm-up) continues it.
  if (setup.async && start.asyncResume && start.startEpoch >= asyncCfg!.warmupEpochs) setup.async.resume = start.asyncResume;
  return setup;
}

/** What the epochs of a pipeline run share; the engine runs steps, windows, evaluation and checkpoints (its step count includes a resumed run's). */
interface PipelineRun {
  readonly opts: PipelineTrainOptions;
  readonly task: Task;
  readonly report: EpochReport;
  /** LR factor per 0-based optimizer step. */
  readonly lrSchedule: LrSchedule;
  readonly engine: RunEngine;
  /** Batches too small to split into the micro-batches (skipped). */
  skipped: number;
}

async function runSyncEpoch(run: PipelineRun, epoch: number): Promise<void> {
  const { engine } = run;
  for (const b of run.task.batches(epoch, 0)) {
    const n = b.x.shape[0];
    if (n < engine.microbatches) { run.skipped++; continue; } // a last partial batch too small to split
    const factor = run.lrSchedule(engine.steps);
    const r = await engine.step(b.x, b.y, factor);
    if (!Number.isFinite(r.loss)) throw divergedError(r.loss, engine.steps, epoch, run.opts.optimizer.lr);
    run.report.step(engine.steps, r.loss, n, run.opts.optimizer.lr * factor);
  }
}

/** Consecutive windows of `size` mini-batches that split into M micro-batches, at most `count` of them. */
function* windowsOf<T extends { x: { shape: readonly number[] } }>(batches: Iterable<T>, M: number, size: number, count: number): Generator<T[]> {
  let part: T[] = [];
  let done = 0;
  for (const b of batches) {
    if (b.x.shape[0] < M) continue;
    part.push(b);
    if (part.length === size) {
      yield part;
      part = [];
      if (++done === count) return;
    }
  }
}

/** One asynchronous epoch: each window of the epoch is one run of the no-flush lists. */
async function runAsyncEpoch(run: PipelineRun, epoch: number, win: AsyncWindows): Promise<void> {
  const { engine } = run;
  for (const part of windowsOf(run.task.batches(epoch, 0), engine.microbatches, win.window, win.count)) {
    const first = engine.steps;
    const factors = part.map((_, i) => run.lrSchedule(first + i));
    const { losses } = await engine.window(part, factors);
    losses.forEach((loss, i) => {
      if (!Number.isFinite(loss)) throw divergedError(loss, first + i + 1, epoch, run.opts.optimizer.lr, " or a correction (--method)");
      run.report.windowStep(first + i + 1, loss, part[i].x.shape[0], run.opts.optimizer.lr * factors[i]);
    });
    run.report.endWindow();
  }
}

/**
 * Every epoch still to run, from epoch `from`: its steps (synchronous or asynchronous), then evaluation
 * and checkpoint. `handOver`: in an asynchronous run's synchronous warm-up, the set-up it hands over to.
 */
async function runEpochs(run: PipelineRun, plan: PipelinePlan, from: number, handOver: PipelineSetup | null, log: (m: string) => void): Promise<void> {
  const { opts, engine } = run;
  for (let epoch = from; epoch < opts.epochs; epoch++) {
    if (handOver && epoch >= plan.asyncCfg!.warmupEpochs) {
      // Synchronous warm-up done: the asynchronous stages start from its weights and optimizer state.
      const next = handOver;
      await engine.restart(() => next);
      handOver = null;
      log(`epoch ${epoch + 1}: synchronous warm-up over, going asynchronous`);
    }
    run.report.beginEpoch(epoch);
    if (plan.win && !handOver) await runAsyncEpoch(run, epoch, plan.win);
    else await runSyncEpoch(run, epoch);
    await run.report.endEpoch(engine.steps, opts.optimizer.lr * run.lrSchedule(Math.max(0, engine.steps - 1)),
      () => evaluateThrough(engine, run.task),
      (path) => savePipelineCheckpoint(path, run, epoch + 1));
  }
}

/**
 * A checkpoint of the run after `epoch` epochs. Its config stays single-device-shaped (any run
 * resumes it); the pipeline is saved beside it so that `train --resume` continues as this pipeline
 * unless told otherwise (src/train/resume.ts). processes: by default one part per rank plus a
 * manifest (src/pipeline/runtime/parted-save.ts), from each rank's own stages.
 */
function savePipelineCheckpoint(path: string, run: PipelineRun, epoch: number): Promise<void> {
  const { opts, report, engine } = run;
  const extra: ResumeExtra & { pipeline: PipelineConfig } = {
    config: { ...opts, resume: undefined, pipeline: undefined, quiet: undefined, saveLayout: undefined, trace: undefined } as TrainConfig,
    elapsed_s: report.elapsed(), history: report.history, pipeline: opts.pipeline,
  };
  return engine.save(path, { epoch, modelSpec: engine.setup.model, extra: toJson(extra) as { [key: string]: Json },
    layout: opts.saveLayout ?? (opts.pipeline.tensorParallel ? "file" : undefined) });
}

/** The task's evaluation run through the pipeline's stages (collective on processes: every rank gets it). */
async function evaluateThrough(engine: RunEngine, task: Task): Promise<EvalResult> {
  return task.evalResult(await engine.executor.evaluate(task.evalBatches()));
}

/**
 * Each worker thread's own memory peak, and each worker's tensor-counted memory, for the summary
 * (the process's peak RSS is already there).
 */
function memorySummary(engine: RunEngine): Pick<TrainSummary, "worker_peak_mb" | "worker_memory"> {
  const mb = (bytes: number): number => Number((bytes / 2 ** 20).toFixed(1));
  return {
    worker_peak_mb: engine.workerPeakBytes ? engine.workerPeakBytes.map(mb) : null,
    worker_memory: engine.memory?.map((m) => ({
      worker: m.worker, replica: m.replica, tensor: m.tensor, stages: m.stages, parameter_bytes: m.parameterBytes,
      gradient_bytes: m.gradientBytes, optimizer_bytes: m.optimizerBytes, peak_activation_bytes: m.peakActivationBytes,
    })) ?? null,
  };
}
