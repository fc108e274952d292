// `pipewright train --schedule ...`: the single-device loop's job (epochs, LR schedule, evaluation,
// metrics, checkpoints) with the step run by a pipeline executor. The partition is chosen, printed,
// and the same mini-batches as single-device training are split into M micro-batches; by the
// loss-scaling rule (src/pipeline/stage.ts) the gradients are those of single-device training.
//
// Evaluation and checkpoints use the main thread's copy of the model: after each epoch the weights
// (and, when saving, the optimizer state merged into the single-device shape) are gathered from
// the stages, so a pipeline checkpoint resumes on one device and the other way round.
import { getBackend } from "../backend/index.js";
import { loadCheckpoint, saveCheckpoint, type Json } from "../checkpoint/index.js";
import { splitBatch } from "../data/microbatch.js";
import { createModel } from "../nn/models/index.js";
import { resolveSpec } from "../nn/models/spec.js";
import { toPlain, type OptimizerState } from "../optim/index.js";
import { makeLrSchedule, specOf, type ResumeExtra, type TrainResult, type TrainSummary } from "./loop.js";
import { EpochReport } from "./epoch-report.js";
import { MetricsWriter, type MetricsRecord } from "./metrics.js";
import type { PipelineConfig, PipelineTrainOptions, TrainConfig } from "./options.js";
import { buildTask } from "./task.js";
import { ProgressBar } from "./progress.js";
import { formatPartition, partitionLayers } from "../pipeline/partition.js";
import { contiguousWorkers, expectedDelay, formatSchedule, generateSchedule, type Schedule } from "../pipeline/schedule/index.js";
import { annealSteps, describeConfig, parseAsyncConfig, type AsyncConfig } from "../pipeline/weights/index.js";
import { asyncSetupFor, describeStages } from "../pipeline/runtime/async-weights.js";
import { asyncCheckpointParts, asyncStateFromCheckpoint, describeAsyncResume, type AsyncState } from "../pipeline/runtime/async-state.js";
import type { Executor } from "../pipeline/runtime/executor.js";
import { InlineExecutor } from "../pipeline/runtime/inline.js";
import { profileUnitTimes } from "../pipeline/runtime/profile.js";
import type { OptimizerConfig, PipelineSetup } from "../pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../pipeline/runtime/threads.js";
import { isWriterRank } from "../transport/mpi/env.js";

export function optimizerConfigOf(cfg: TrainConfig): OptimizerConfig {
  switch (cfg.optimizer) {
    case "sgd": return { kind: "sgd", lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay };
    case "adamw": return { kind: "adamw", lr: cfg.lr, weightDecay: cfg.weightDecay };
    default: throw new Error(`unknown optimizer '${String(cfg.optimizer)}'; valid: sgd, adamw`);
  }
}

/** Longest list an asynchronous run executes at once (in optimizer steps); an epoch runs in windows. */
export const ASYNC_WINDOW = 2000;

/** Optional observers of a pipeline run (the reproductions read per-stage memory before closing). */
export interface PipelineRunHooks {
  /** Called with the executor that ran the last epoch, just before it is closed (also after a failure). */
  beforeClose?(executor: Executor): void | Promise<void>;
}

/**
 * How an asynchronous epoch of `steps` usable mini-batches is cut into windows of equal length: the
 * lists drain at the end of each window (the first micro-batches of a window see shorter delays),
 * and the few steps left over by the division are skipped.
 */
export function asyncWindows(steps: number, maxWindow = ASYNC_WINDOW): { window: number; count: number; dropped: number } {
  if (steps < 1) throw new Error(`an asynchronous epoch needs at least one full mini-batch, got ${steps}`);
  const count = Math.ceil(steps / maxWindow);
  const window = Math.floor(steps / count);
  return { window, count, dropped: steps - window * count };
}

export async function trainPipeline(opts: PipelineTrainOptions, hooks: PipelineRunHooks = {}): Promise<TrainResult> {
  const p = opts.pipeline;
  const log = opts.quiet ? (): void => {} : (m: string): void => { process.stderr.write(`${m}\n`); };
  const bar = opts.quiet || !process.stderr.isTTY ? undefined : new ProgressBar(process.stderr);
  const spec = resolveSpec(specOf(opts));
  const model = createModel(spec, opts.seed);
  const task = buildTask({ spec, batch: opts.batch, seed: opts.seed, data: opts.data, limit: opts.limit,
    text: opts.text, stepsPerEpoch: opts.stepsPerEpoch });
  if (opts.batch < p.microbatches) {
    throw new Error(`--batch ${opts.batch} cannot be split into --microbatches ${p.microbatches}; each micro-batch needs at least one example`);
  }
  const stageToWorker = p.workers !== undefined ? contiguousWorkers(p.stages, p.workers) : undefined;
  // Asynchronous: epochs (after any synchronous 1F1B warm-up) run in windows of `win.window` steps.
  const asyncCfg: AsyncConfig | null = p.schedule === "async" ? (p.async ?? parseAsyncConfig({})) : null;
  const fullBatches = task.stepsPerEpoch - (task.samplesPerEpoch % opts.batch !== 0 && task.samplesPerEpoch % opts.batch < p.microbatches ? 1 : 0);
  const win = asyncCfg ? asyncWindows(fullBatches) : null;
  const asyncSchedule: Schedule | null = win
    ? generateSchedule("async", { stages: p.stages, microbatches: p.microbatches, steps: win.window, stageToWorker, weightGrads: p.weightGrads }) : null;
  const warmupSchedule: Schedule | null = asyncCfg && asyncCfg.warmupEpochs > 0
    ? generateSchedule("1f1b", { stages: p.stages, microbatches: p.microbatches, stageToWorker, weightGrads: p.weightGrads }) : null;
  const schedule = asyncSchedule ?? generateSchedule(p.schedule, { stages: p.stages, microbatches: p.microbatches, chunks: p.chunks, stageToWorker, weightGrads: p.weightGrads });
  const units = model.units.length;

  let times: number[] | undefined;
  if (!p.balance && p.partition === "time") {
    const first = task.batches(0, 0)[Symbol.iterator]().next();
    if (first.done) throw new Error("no training data to profile the layers on");
    times = profileUnitTimes(spec, opts.seed, splitBatch(first.value, p.microbatches)[0].x);
    // Measured times differ per process: under MPI every rank takes rank 0's, so all cut alike.
    if (p.executor === "processes") times = await (await import("../pipeline/runtime/processes.js")).agreeOnRank0(times, stageToWorker ? p.workers! : p.stages, p.replicas ?? 1);
  }
  const partition = partitionLayers({
    layers: units, stages: p.stages, chunks: p.chunks, method: p.partition, balance: p.balance,
    parameters: model.units.map((u) => u.numParameters()), times,
  });

  // Resume: weights into the main model; optimizer state handed to the stages.
  let startEpoch = 0, step = 0, elapsedBefore = 0;
  let history: MetricsRecord[] = [];
  let resumedFrom: TrainSummary["resumed_from"] = null;
  let optimizerState: OptimizerState | undefined;
  let asyncResume: AsyncState | undefined; // T1 counters and policy buffers (absent: start from zero)
  if (opts.resume) {
    const ck = loadCheckpoint(opts.resume);
    try {
      model.loadStateDict(ck.model);
    } catch (e) {
      throw new Error(`checkpoint ${opts.resume} does not fit this model (${(e as Error).message}); resume with the same --model as the saved run`);
    }
    if (!ck.optimizer) throw new Error(`checkpoint ${opts.resume} has no optimizer state; it cannot be resumed exactly`);
    optimizerState = ck.optimizer as unknown as OptimizerState;
    const extra = (ck.extra ?? {}) as Partial<ResumeExtra>;
    startEpoch = ck.epoch; step = ck.step;
    elapsedBefore = Number(extra.elapsed_s ?? 0);
    history = Array.isArray(extra.history) ? extra.history : [];
    resumedFrom = { path: opts.resume, epoch: ck.epoch, step: ck.step };
    if (asyncCfg) asyncResume = asyncStateFromCheckpoint((extra as { async?: unknown }).async, ck.extraTensors, p.stages);
  }

  const setup: PipelineSetup = {
    model: spec, seed: opts.seed, schedule, balance: partition.balance, recompute: p.recompute,
    optimizer: optimizerConfigOf(opts), optimizerState: optimizerState ? toPlain(optimizerState) : undefined,
    faults: faultsFromEnv(),
    async: asyncCfg && win ? asyncSetupFor(schedule, asyncCfg, annealSteps(asyncCfg, win.window * win.count)) : undefined,
  };
  // Saved after the warm-up only; the asynchronous executor (the first one, or the one after the warm-up) continues it.
  if (setup.async && asyncResume && startEpoch >= asyncCfg!.warmupEpochs) setup.async.resume = asyncResume;
  const backendName = getBackend().name;
  log(`pipewright train: ${opts.model} (${model.numParameters().toLocaleString("en-US")} parameters) on the ${backendName} backend; ${task.describe}`);
  log(`pipeline: ${p.schedule}, ${p.stages} stages x ${p.chunks} chunk(s), ${p.microbatches} micro-batches of ~${Math.round(opts.batch / p.microbatches)}, ` +
    `executor ${p.executor}, recompute ${p.recompute}, ${p.weightGrads === "step" ? "weight gradients once per step, " : ""}` +
    `partition ${p.balance ? `balance ${p.balance.join(",")}` : p.partition}`);
  log(formatPartition(partition, p.stages, p.chunks));
  if (p.replicas && p.replicas > 1) log(`data parallel: ${p.replicas} replicas of the pipeline, each on 1/${p.replicas} of every micro-batch; gradients summed over replicas before STEP`);
  if (stageToWorker) log(`stages on ${p.workers} worker(s): ${stageToWorker.map((w, s) => `${s}->w${w}`).join(" ")}`);
  if (setup.async && win && asyncCfg) {
    const formula = setup.async.taus.map((_, s) => expectedDelay(p.stages, s, p.microbatches));
    log(`asynchronous ${describeConfig(asyncCfg)}`);
    log(`delays tau_s measured from the schedule: [${setup.async.taus.join(", ")}] (METHODS.md formula: [${formula.join(", ")}])`);
    for (const line of describeStages(setup.async)) log(line);
    if (opts.resume) log(describeAsyncResume(setup.async.resume, setup.async.config.policy));
    log(`each epoch runs as ${win.count} window(s) of ${win.window} steps without flush${win.dropped ? `; ${win.dropped} step(s) per epoch left over are skipped` : ""}`);
  }
  if (process.env.PIPEWRIGHT_DEBUG) log(formatSchedule(schedule));

  const stateCopy = (): Map<string, import("../tensor/tensor.js").Tensor> => new Map([...model.stateDict()].map(([k, t]) => [k, t.clone()]));
  const makeExecutor = async (su: PipelineSetup): Promise<Executor> => p.executor === "threads" ? ThreadsExecutor.create(su, stateCopy())
    // One MPI rank per worker (loaded only here: the MPI addon is optional).
    : p.executor === "processes" ? (await import("../pipeline/runtime/processes.js")).ProcessesExecutor.create(su, stateCopy(), p.replicas ?? 1)
      : new InlineExecutor(model, su);
  const warmupSetup: PipelineSetup | null = warmupSchedule && setup.async && startEpoch < asyncCfg!.warmupEpochs
    ? { ...setup, schedule: warmupSchedule, async: { ...setup.async, phase: "warmup" } } : null;
  // The metrics file opens first: a bad path must fail before worker threads exist (they would keep
  // the process alive); a failing executor start closes it again.
  const metrics = !opts.metrics ? null
    : opts.resume ? MetricsWriter.resume(opts.metrics, { epoch: startEpoch, step }) : new MetricsWriter(opts.metrics, false);
  let executor: Executor;
  try {
    executor = await makeExecutor(warmupSetup ?? setup);
  } catch (e) {
    metrics?.close();
    throw e;
  }
  let inWarmup = warmupSetup !== null;
  const paramOrder = model.namedParameters().map(([n]) => n);
  const lrSchedule = makeLrSchedule(opts, opts.epochs * task.stepsPerEpoch);
  const report = new EpochReport({
    epochs: opts.epochs, logEvery: opts.logEvery, samplesPerEpoch: task.samplesPerEpoch, text: task.kind === "text",
    save: opts.save, metrics, progress: bar, log, elapsedBefore, history,
  });
  let skipped = 0;

  // Under MPI only rank 0 reports, so only it evaluates (the gather before it is collective).
  const evaluate = (): ReturnType<typeof task.evaluate> => p.executor !== "processes" || isWriterRank()
    ? task.evaluate(model) : { loss: Number.NaN, acc: null, ppl: null };
  const syncModel = async (): Promise<void> => {
    if (executor.name !== "inline") model.loadStateDict(await executor.stateDict());
  };

  try {
    for (let epoch = startEpoch; epoch < opts.epochs; epoch++) {
      if (inWarmup && epoch >= asyncCfg!.warmupEpochs) {
        // Synchronous warm-up done: the asynchronous stages start from its weights and optimizer state.
        await syncModel();
        const state = await executor.optimizerState(paramOrder);
        await executor.close();
        executor = await makeExecutor({ ...setup, optimizerState: toPlain(state) });
        inWarmup = false;
        log(`epoch ${epoch + 1}: synchronous warm-up over, going asynchronous`);
      }
      report.beginEpoch(epoch);
      if (win && !inWarmup) {
        // Asynchronous: each window of the epoch is one run of the no-flush lists.
        for (const part of windowsOf(task.batches(epoch, 0), p.microbatches, win.window, win.count)) {
          const factors = part.map((_, i) => lrSchedule(step + i));
          const split = part.map((b) => {
            const q = splitBatch(b, p.microbatches);
            return { inputs: q.map((x) => x.x), labels: q.map((x) => x.y), scale: 1 / b.y.length };
          });
          const r = await executor.run(split, factors);
          for (let i = 0; i < part.length; i++) {
            const loss = r.perMicrobatch.slice(i * p.microbatches, (i + 1) * p.microbatches).reduce((a, m) => a + m.loss, 0);
            step++;
            if (!Number.isFinite(loss)) {
              throw new Error(`training diverged: loss is ${loss} at step ${step} (epoch ${epoch + 1}); try a smaller --lr than ${opts.lr} or a correction (--method)`);
            }
            report.windowStep(step, loss, part[i].x.shape[0], opts.lr * factors[i]);
          }
          report.endWindow();
        }
      }
      for (const b of win && !inWarmup ? [] : task.batches(epoch, 0)) {
        const n = b.x.shape[0];
        if (n < p.microbatches) { skipped++; continue; } // a last partial batch too small to split
        const factor = lrSchedule(step);
        const lr = opts.lr * factor;
        const parts = splitBatch(b, p.microbatches);
        const r = await executor.step({ inputs: parts.map((q) => q.x), labels: parts.map((q) => q.y), scale: 1 / b.y.length }, factor);
        step++;
        if (!Number.isFinite(r.loss)) {
          throw new Error(`training diverged: loss is ${r.loss} at step ${step} (epoch ${epoch + 1}); try a smaller --lr than ${opts.lr}`);
        }
        report.step(step, r.loss, n, lr);
      }
      await report.endEpoch(step, opts.lr * lrSchedule(Math.max(0, step - 1)), async () => { await syncModel(); return evaluate(); },
        async (path) => {
          // config stays single-device-shaped (any run resumes it); the pipeline is saved beside it so that
          // `train --resume` continues as this pipeline unless told otherwise (src/cli/train.ts).
          const extra: ResumeExtra & { pipeline: PipelineConfig } = {
            config: { ...opts, resume: undefined, pipeline: undefined, quiet: undefined } as TrainConfig, elapsed_s: report.elapsed(), history, pipeline: p,
          };
          const asyncPart = asyncCheckpointParts(await executor.asyncState()); // windows drained: nothing in flight
          const optimizer = await executor.optimizerState(paramOrder); // collective on processes
          if (!isWriterRank()) return; // under MPI, rank 0 alone writes
          saveCheckpoint(path, {
            model: model.stateDict(), optimizer, step, epoch: epoch + 1,
            modelSpec: spec, extra: JSON.parse(JSON.stringify(asyncPart.meta ? { ...extra, async: asyncPart.meta } : extra)) as Json,
            extraTensors: asyncPart.tensors,
          });
        });
    }
  } finally {
    bar?.done();
    metrics?.close();
    try {
      await hooks.beforeClose?.(executor);
    } finally {
      await executor.close();
    }
  }
  if (skipped) log(`note: ${skipped} batch(es) smaller than ${p.microbatches} examples were skipped (too small to split into micro-batches)`);
  const summary = report.summary({ model: opts.model, backend: backendName, parameters: model.numParameters(), steps: step,
    resumed_from: resumedFrom, metrics: opts.metrics ?? null }, startEpoch, report.lastEval ?? evaluate());
  return { summary, records: report.records };
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

/**
 * Testing hook: PIPEWRIGHT_INJECT_FAULT="<unit>:<microbatch>" makes that unit throw on that
 * micro-batch, to check end to end that a failing stage stops the run with a non-zero exit.
 */
function faultsFromEnv(): PipelineSetup["faults"] {
  const raw = process.env.PIPEWRIGHT_INJECT_FAULT;
  if (!raw) return undefined;
  const m = /^(\d+):(\d+)$/.exec(raw.trim());
  if (!m) throw new Error(`PIPEWRIGHT_INJECT_FAULT='${raw}' must look like <unit>:<microbatch>, e.g. 4:3`);
  return [{ unit: Number(m[1]), microbatch: Number(m[2]) }];
}
