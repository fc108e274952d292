// The epoch loop of elastic (PipeTransformer) training on Fashion-MNIST: the same data order, LR
// schedule and evaluation as `pipewright train`, with ElasticTrainer doing the steps and the
// transitions, and a freeze trace (per epoch: frozen layers, layout, cache use, measured seconds)
// that `pipewright sim --freeze-trace` replays on more workers. Step and epoch records, progress and
// the per-epoch checkpoint go through the same EpochReport / MetricsWriter / checkpoint format as the
// other loops. A checkpoint is taken after an epoch's evaluation and BEFORE its freeze check (the
// freeze policy's state then still holds the interval's gradient norms); a resumed run runs that
// check first, so it takes the same freeze decisions, layouts and per-step losses as an
// uninterrupted run (the activation cache is not saved: refilling it gives the same bits).
import { checkpointExtra, type Json } from "../checkpoint/index.js";
import type { TensorDataset } from "../data/loader.js";
import { resolveSpec, type ModelName, type ModelSpec } from "../nn/models/spec.js";
import type { LrSchedule, OptimizerState } from "../optim/index.js";
import type { Tensor } from "../tensor/tensor.js";
import { divergedError, makeLrSchedule, parseExtra, resumedRun, runCounters, type ResumeExtra, type RunCounters } from "./loop.js";
import { buildTask, imageTaskOf, type Task } from "./task.js";
import type { TrainConfig } from "./options.js";
import { EpochReport } from "./epoch-report.js";
import type { ProgressBar } from "./progress.js";
import {
  addEpoch, createTrace, epochRecord, resolveFreezeConfig, type FreezeTrace, type TraceEpoch,
} from "../pipeline/freeze/index.js";
import type { EpochLayout } from "../pipeline/freeze/trace.js";
import { DEFAULT_CACHE_BYTES, ElasticTrainer, formatLayout, type ElasticConfig, type ElasticFreezeState } from "../pipeline/elastic/trainer.js";
import { saveElastic } from "../api/freeze-pipe.js";
import { readRunCheckpoint } from "../api/checkpoint-start.js";

/**
 * The run's settings as `train`'s (epochs, data, LR schedule, files: the checkpoint is written after
 * every epoch, before its freeze check) and the trainer's (ElasticConfig's). Executor processes:
 * every MPI rank runs this same call (SPMD); pass save / metrics / log on the writer rank only.
 */
export interface ElasticTrainOptions extends Omit<TrainConfig, "model" | "spec" | "logEvery" | "clipGradNorm">,
  Pick<ElasticConfig, "workers" | "stages" | "freeze" | "elastic" | "cache" | "cacheBytes" | "executor"> {
  spec: ModelSpec;
  /** A step record every N steps (default 1). */
  logEvery?: number;
  /** Start from these weights / optimizer state (fine-tuning); default: createModel(spec, seed). resume overrides them. */
  initialState?: ReadonlyMap<string, Tensor>;
  initialOptimizer?: OptimizerState | null;
  log?: (m: string) => void;
  /** Data sets already loaded (the repro reuses them across runs). */
  datasets?: { train: TensorDataset; test: TensorDataset };
  progress?: ProgressBar;
}

export interface ElasticEpoch extends EpochLayout {
  loss: number;
  testAcc: number;
  testLoss: number;
  seconds: number;
  cached: boolean;
}

/** What a freeze checkpoint's "extra" holds: the common resume fields plus the elastic state. */
export interface ElasticResumeExtra extends ResumeExtra {
  elastic: {
    settings: ElasticSettings;
    state: ElasticFreezeState;
    /** Per-epoch layout history and trace records so far, and the training seconds so far. */
    epochs: ElasticEpoch[];
    trace: TraceEpoch[];
    train_seconds: number;
  };
}

/** The run's settings that decide freezing and layouts (stored with a checkpoint; resumed runs default to them). */
export type ElasticSettings = ReturnType<typeof settingsOf>;

function settingsOf(o: ElasticTrainOptions) {
  return {
    freeze: o.freeze ? resolveFreezeConfig(o.freeze) : null, elastic: o.elastic, cache: o.cache,
    cacheBytes: o.cacheBytes ?? DEFAULT_CACHE_BYTES, workers: o.workers, stages: o.stages ?? o.workers,
  };
}

/** The TrainConfig of these options (a checkpoint's extra.config, so `train --resume` and `eval` know the run). */
function trainConfigOf(o: ElasticTrainOptions): TrainConfig {
  return {
    model: o.spec.name as ModelName, spec: o.spec, epochs: o.epochs, batch: o.batch, optimizer: o.optimizer,
    scheduleLr: o.scheduleLr, warmup: o.warmup, seed: o.seed, data: o.data, limit: o.limit, text: o.text, stepsPerEpoch: o.stepsPerEpoch,
    logEvery: o.logEvery ?? 1,
  };
}

/** The elastic part of a freeze checkpoint's extra; errors when the checkpoint was not written by an elastic run. */
function elasticResumeExtra(path: string, extra: Json | undefined): ElasticResumeExtra {
  const e = extra as Partial<ElasticResumeExtra> | undefined;
  if (!e || typeof e !== "object" || !e.config || !e.elastic || typeof e.elastic !== "object" || !e.elastic.state || !e.elastic.settings) {
    throw new Error(`checkpoint ${path} holds no freeze state (written by a run without --freeze?); resume it without --freeze, ` +
      `or start the --freeze run from scratch`);
  }
  return { ...parseExtra(path, extra), elastic: e.elastic };
}

/** The settings saved in a freeze checkpoint (the CLI's defaults for flags not given on --resume). */
export function elasticCheckpointSettings(path: string): ElasticSettings {
  return elasticResumeExtra(path, checkpointExtra(path)).elastic.settings;
}

/** A resumed run's checkpoint: where it continues, its weights and optimizer state, and the elastic state. */
function readResume(o: ElasticTrainOptions, task: Task, settings: ElasticSettings, log: (m: string) => void):
  { counters: RunCounters; state?: ReadonlyMap<string, Tensor>; optimizer?: OptimizerState | null; extra?: ElasticResumeExtra } {
  if (!o.resume) return { counters: runCounters(undefined), state: o.initialState, optimizer: o.initialOptimizer };
  const ck = readRunCheckpoint(o.resume);
  const extra = elasticResumeExtra(o.resume, ck.extra);
  const was = extra.elastic.settings;
  if (JSON.stringify({ ...was, cacheBytes: 0 }) !== JSON.stringify({ ...settings, cacheBytes: 0 })) {
    log(`note: the saved run used ${JSON.stringify({ ...was, cacheBytes: undefined })}, this one ${JSON.stringify({ ...settings, cacheBytes: undefined })}; ` +
      `training continues, but not as the saved run would have`);
  }
  const counters = resumedRun(o.resume, ck, extra.config, o, task.stepsPerEpoch, "--batch or --limit", log);
  return { counters, state: ck.model, optimizer: ck.optimizer, extra };
}

/**
 * Trains; resolves to every epoch and the training seconds (steps and transitions, not evaluation),
 * earlier runs' of a resumed run included, the final test results, trace, weights and records.
 */
export async function trainElastic(o: ElasticTrainOptions) {
  const log = o.log ?? ((): void => {});
  // The given data sets, else the model's task (Fashion-MNIST, or the byte corpus for gpt).
  const task = o.datasets ? imageTaskOf(o.datasets, o.batch, o.seed) : buildTask(o);
  const settings = settingsOf(o);
  if (o.cache && o.freeze && task.kind === "text") {
    throw new Error(`AutoCache keys the frozen prefix's outputs by example, but ${o.spec.name}'s text windows are drawn afresh every step; train it with the cache off`);
  }
  const { counters, state, optimizer, extra: saved } = readResume(o, task, settings, log);
  const { startEpoch, resumedFrom } = counters;
  const epochs: ElasticEpoch[] = [...(saved?.elastic.epochs ?? [])];
  const report = new EpochReport({ ...o, logEvery: o.logEvery ?? 1, task, log, counters });
  const trainer = await ElasticTrainer.create({ ...o, samples: task.samplesPerEpoch, log }, state, optimizer, saved && {
    freeze: saved.elastic.state, ...(startEpoch > 0 && startEpoch < o.epochs ? { pendingCheck: startEpoch } : {}),
  }).catch((e: unknown) => { report.close(); throw e; });
  // From here on the workers run: every way out closes them.
  try {
    const trace = createTrace({
      model: o.spec.name, workers: o.workers, samples: task.samplesPerEpoch, batch: o.batch, frozenCostRatio: trainer.autopipe.frozenCostRatio,
      microbatchesPerStage: trainer.autopipe.microbatchesPerStage, units: trainer.units,
    });
    for (const r of saved?.elastic.trace ?? []) addEpoch(trace, r);
    log(formatLayout(0, trainer.transition, trainer.layout, trainer.units).replace("transition after epoch 0", resumedFrom ? "layout" : "start"));
    const lr = makeLrSchedule(o, o.epochs * task.stepsPerEpoch);
    const filling = trainer.cacheFillingSince;
    if (resumedFrom && filling !== null && filling < startEpoch) {
      trainer.refillCache(replayBatches(task, filling, startEpoch, (n) => trainer.fits(n)));
      log(`AutoCache: refilled from the batches of epochs ${filling + 1}..${startEpoch}`);
    }
    const run: ElasticRun = {
      o, trainer, task, report, lr, trace, epochs, log, step: counters.step, skipped: 0,
      trainSeconds: Number(saved?.elastic.train_seconds ?? 0),
    };
    for (let e = startEpoch; e < o.epochs; e++) await elasticEpoch(run, e);
    if (run.skipped) log(`note: ${run.skipped} batch(es) too small for the replicas x micro-batches were skipped`);
    const last = epochs[epochs.length - 1];
    return {
      epochs, trainSeconds: run.trainSeconds, testAcc: last?.testAcc ?? NaN, testLoss: last?.testLoss ?? NaN, trace, state: trainer.model.stateDict(),
      steps: run.step, records: report.records, history: report.history, resumedFrom, elapsedSeconds: report.elapsed(),
    };
  } finally {
    report.close();
    await trainer.close();
  }
}

/** What the epochs of an elastic run share; `step` (optimizer steps so far), `skipped` and `trainSeconds` count on. */
interface ElasticRun {
  readonly o: ElasticTrainOptions;
  readonly trainer: ElasticTrainer;
  readonly task: Task;
  readonly report: EpochReport;
  readonly lr: LrSchedule;
  readonly trace: FreezeTrace;
  /** Every epoch's layout and results, earlier runs' of a resumed run included. */
  readonly epochs: ElasticEpoch[];
  log(m: string): void;
  step: number;
  skipped: number;
  trainSeconds: number;
}

/** Epoch `e`: its steps, trace record, evaluation, checkpoint (before the freeze check) and freeze check. */
async function elasticEpoch(run: ElasticRun, e: number): Promise<void> {
  const { o, trainer, task, report, trace, epochs } = run;
  const t0 = performance.now();
  report.beginEpoch(e);
  const layoutAtStart = { ...trainer.layout }, transition = trainer.transition;
  // Per-stage busy seconds, and the batches the cache served and filled.
  const stageSeconds = new Array<number>(trainer.layout.stages).fill(0);
  let hits = 0, fills = 0;
  for (const b of task.batches(e, 0)) {
    const factor = run.lr(run.step);
    // A batch too small to split still counts as a step (the LR schedule's place), as it always has.
    if (!trainer.fits(b.x.shape[0])) { run.skipped++; run.step++; continue; }
    const r = await trainer.step(b.x, b.y, b.indices ?? null, factor);
    run.step++;
    if (!Number.isFinite(r.loss)) throw divergedError(r.loss, run.step, e, o.optimizer.lr);
    if (r.cached) hits++; else if (trainer.layout.prefix > 0) fills++;
    r.stageBusy.forEach((v, i) => { stageSeconds[i] += v; });
    report.step(run.step, r.loss, b.x.shape[0], o.optimizer.lr * factor);
  }
  const step = run.step;
  await trainer.sync();
  const epochSeconds = (performance.now() - t0) / 1000;
  const cached = hits > 0 && hits >= fills;
  addEpoch(trace, epochRecord(e + 1, { ...transition, stages: layoutAtStart.stages }, cached, { stageSeconds, wallSeconds: epochSeconds }));
  run.trainSeconds += epochSeconds;
  await report.endEpoch(step, o.optimizer.lr * run.lr(Math.max(0, step - 1)), async () => {
    const ev = task.evalResult(await trainer.evaluateBatches(task.evalBatches()));
    epochs.push({ epoch: e + 1, loss: report.epochTrainLoss, testAcc: ev.acc ?? NaN, testLoss: ev.loss, seconds: epochSeconds,
      frozen: layoutAtStart.frozenLayers, stages: layoutAtStart.stages, replicas: layoutAtStart.replicas, microbatches: layoutAtStart.microbatches, cached });
    return ev;
  }, (path) => saveElastic(trainer, path, { step, epoch: e + 1, modelSpec: resolveSpec(o.spec), extra: {
    config: trainConfigOf(o), elapsed_s: report.elapsed(), history: report.history,
    elastic: { settings: settingsOf(o), state: trainer.freezeState(), epochs, trace: trace.epochs, train_seconds: run.trainSeconds },
  } satisfies ElasticResumeExtra }));
  run.log(`epoch ${e + 1} layout: frozen ${layoutAtStart.frozenLayers}, ${layoutAtStart.stages} stage(s) x ${layoutAtStart.replicas} replica(s)` +
    `${layoutAtStart.prefix ? `, cache ${hits} hit / ${fills} fill batches` : ""}, ${epochSeconds.toFixed(1)} s`);
  const t1 = performance.now();
  if (e + 1 < o.epochs) await trainer.endEpoch(e + 1);
  run.trainSeconds += (performance.now() - t1) / 1000;
}

/** The training batches of epochs [from, to) that the trainer would have run, in order. */
function* replayBatches(task: Task, from: number, to: number, fits: (n: number) => boolean): Generator<{ x: Tensor; idx: readonly number[] }> {
  for (let e = from; e < to; e++) {
    for (const b of task.batches(e, 0)) if (b.indices && fits(b.x.shape[0])) yield { x: b.x, idx: Array.from(b.indices) };
  }
}
