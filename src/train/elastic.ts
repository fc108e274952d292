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
import { DataLoader, gather, type TensorDataset } from "../data/loader.js";
import { resolveSpec, type ModelName, type ModelSpec } from "../nn/models/spec.js";
import type { OptimizerState } from "../optim/index.js";
import type { Tensor } from "../tensor/tensor.js";
import { makeLrSchedule, parseExtra, resumeNotes, type ResumeExtra } from "./loop.js";
import { evalChunks, loadImageDatasets } from "./task.js";
import { type LrScheduleName, type TrainConfig } from "./options.js";
import { EpochReport } from "./epoch-report.js";
import { MetricsWriter, type MetricsRecord } from "./metrics.js";
import type { ProgressBar } from "./progress.js";
import {
  addEpoch, createTrace, epochRecord, resolveFreezeConfig, type FreezeConfig, type FreezeOptions, type FreezeTrace, type TraceEpoch,
} from "../pipeline/freeze/index.js";
import type { OptimizerConfig } from "../pipeline/runtime/setup.js";
import type { EpochLayout } from "../pipeline/freeze/trace.js";
import { formatLayout, type ElasticFreezeState, type ElasticTrainer } from "../pipeline/elastic/trainer.js";
import { startElasticTrainer } from "../api/freeze-pipe.js";
import { readRunCheckpoint, writeRunCheckpoint } from "../api/checkpoint-start.js";

export interface ElasticTrainOptions {
  spec: ModelSpec;
  seed: number;
  epochs: number;
  batch: number;
  optimizer: OptimizerConfig;
  scheduleLr: LrScheduleName;
  warmup: number;
  workers: number;
  stages?: number;
  freeze: FreezeOptions | null;
  elastic: boolean;
  cache: boolean;
  cacheBytes?: number;
  data?: string;
  limit?: number;
  /** Start from these weights / optimizer state (fine-tuning); default: createModel(spec, seed). */
  initialState?: ReadonlyMap<string, Tensor>;
  initialOptimizer?: OptimizerState | null;
  log?: (m: string) => void;
  /** Data sets already loaded (the repro reuses them across runs). */
  datasets?: { train: TensorDataset; test: TensorDataset };
  /** Checkpoint written after every epoch (before its freeze check). */
  save?: string;
  /** Continue from a checkpoint written with `save` (overrides initialState / initialOptimizer). */
  resume?: string;
  /** JSON-lines step and epoch records (a resumed run continues the file). */
  metrics?: string;
  /** A step record every N steps (default 1). */
  logEvery?: number;
  progress?: ProgressBar;
  /**
   * threads (default): one worker thread per worker; processes: one MPI rank per worker, every rank
   * running this same call (SPMD). Pass save / metrics / log on the writer rank only.
   */
  executor?: "threads" | "processes";
}

export interface ElasticEpoch extends EpochLayout {
  loss: number;
  testAcc: number;
  testLoss: number;
  seconds: number;
  cached: boolean;
}

export interface ElasticTrainResult {
  /** Every epoch, earlier runs' of a resumed run included. */
  epochs: ElasticEpoch[];
  /** Training wall-clock seconds (steps and transitions, not evaluation), earlier runs included. */
  trainSeconds: number;
  testAcc: number;
  testLoss: number;
  trace: FreezeTrace;
  state: Map<string, Tensor>;
  /** Optimizer steps done (global). */
  steps: number;
  /** Records written this invocation, and the epoch records of the whole run. */
  records: MetricsRecord[];
  history: MetricsRecord[];
  resumedFrom: { path: string; epoch: number; step: number } | null;
  elapsedSeconds: number;
}

/** The run's settings that decide freezing and layouts (stored with a checkpoint; resumed runs default to them). */
export interface ElasticSettings {
  freeze: FreezeConfig | null;
  elastic: boolean;
  cache: boolean;
  cacheBytes: number;
  workers: number;
  stages: number;
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

const DEFAULT_CACHE_BYTES = 1024 ** 3;

function settingsOf(o: ElasticTrainOptions): ElasticSettings {
  return {
    freeze: o.freeze ? resolveFreezeConfig(o.freeze) : null, elastic: o.elastic, cache: o.cache,
    cacheBytes: o.cacheBytes ?? DEFAULT_CACHE_BYTES, workers: o.workers, stages: o.stages ?? o.workers,
  };
}

/** The TrainConfig of these options (a checkpoint's extra.config, so `train --resume` and `eval` know the run). */
function trainConfigOf(o: ElasticTrainOptions): TrainConfig {
  return {
    model: o.spec.name as ModelName, spec: o.spec, epochs: o.epochs, batch: o.batch, optimizer: o.optimizer,
    scheduleLr: o.scheduleLr, warmup: o.warmup, seed: o.seed, data: o.data, limit: o.limit, logEvery: o.logEvery ?? 1,
  };
}

/** The elastic part of a freeze checkpoint's extra; errors when the checkpoint was not written by an elastic run. */
export function elasticResumeExtra(path: string, extra: Json | undefined): ElasticResumeExtra {
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

export async function trainElastic(o: ElasticTrainOptions): Promise<ElasticTrainResult> {
  const log = o.log ?? ((): void => {});
  const ds = o.datasets ?? loadImageDatasets(o.data, o.limit);
  const loader = new DataLoader(ds.train, { batchSize: o.batch, shuffle: true, seed: o.seed });
  const settings = settingsOf(o);

  let state = o.initialState, optimizer = o.initialOptimizer;
  let startEpoch = 0, step = 0, trainSeconds = 0, elapsedBefore = 0;
  let history: MetricsRecord[] = [];
  const epochs: ElasticEpoch[] = [];
  let savedTrace: TraceEpoch[] = [];
  let resumeState: ElasticFreezeState | undefined;
  let resumedFrom: ElasticTrainResult["resumedFrom"] = null;
  if (o.resume) {
    const ck = readRunCheckpoint(o.resume);
    const extra = elasticResumeExtra(o.resume, ck.extra);
    state = ck.model; optimizer = ck.optimizer;
    startEpoch = ck.epoch; step = ck.step;
    elapsedBefore = extra.elapsed_s; history = extra.history;
    epochs.push(...extra.elastic.epochs);
    savedTrace = extra.elastic.trace;
    trainSeconds = Number(extra.elastic.train_seconds ?? 0);
    resumeState = extra.elastic.state;
    resumedFrom = { path: o.resume, epoch: ck.epoch, step: ck.step };
    const was = extra.elastic.settings;
    if (JSON.stringify({ ...was, cacheBytes: 0 }) !== JSON.stringify({ ...settings, cacheBytes: 0 })) {
      log(`note: the saved run used ${JSON.stringify({ ...was, cacheBytes: undefined })}, this one ${JSON.stringify({ ...settings, cacheBytes: undefined })}; ` +
        `training continues, but not as the saved run would have`);
    }
    resumeNotes(extra.config, o, { step, epoch: startEpoch, stepsPerEpoch: loader.length, changed: "--batch or --limit" }, log);
  }

  if (resumedFrom) log(`resumed from ${resumedFrom.path}: ${startEpoch} epochs, ${step} steps done`);
  // Opened before the workers exist: a bad path fails without threads to clean up.
  const metrics = !o.metrics ? null
    : o.resume ? MetricsWriter.resume(o.metrics, { epoch: startEpoch, step }) : new MetricsWriter(o.metrics, false);
  let trainer: ElasticTrainer;
  try {
    trainer = await startElasticTrainer({
      spec: o.spec, seed: o.seed, optimizer: o.optimizer, workers: o.workers, stages: o.stages, batch: o.batch,
      freeze: o.freeze, elastic: o.elastic, cache: o.cache, cacheBytes: o.cacheBytes, samples: ds.train.n, log,
    }, o.executor ?? "threads", state, optimizer, resumeState && {
      freeze: resumeState, ...(startEpoch > 0 && startEpoch < o.epochs ? { pendingCheck: startEpoch } : {}),
    });
  } catch (e) {
    metrics?.close();
    throw e;
  }
  const trace = createTrace({
    model: o.spec.name, workers: o.workers, samples: ds.train.n, batch: o.batch, frozenCostRatio: trainer.autopipe.frozenCostRatio,
    microbatchesPerStage: trainer.autopipe.microbatchesPerStage, units: trainer.units,
  });
  for (const r of savedTrace) addEpoch(trace, r);
  log(formatLayout(0, trainer.currentTransition, trainer.layout, trainer.units).replace("transition after epoch 0", resumedFrom ? "layout" : "start"));
  const lr = makeLrSchedule({ scheduleLr: o.scheduleLr, warmup: o.warmup }, o.epochs * loader.length);
  const report = new EpochReport({
    epochs: o.epochs, logEvery: o.logEvery ?? 1, samplesPerEpoch: ds.train.n, text: false, save: o.save, metrics,
    progress: o.progress, log, elapsedBefore, history,
  });
  const config = trainConfigOf(o);
  const testChunks = evalChunks(ds.test);
  const filling = trainer.cacheFillingSince;
  if (resumedFrom && filling !== null && filling < startEpoch) {
    trainer.refillCache(replayBatches(loader, ds.train, filling, startEpoch, (n) => trainer.fits(n)));
    log(`AutoCache: refilled from the batches of epochs ${filling + 1}..${startEpoch}`);
  }
  let skipped = 0;
  try {
    for (let e = startEpoch; e < o.epochs; e++) {
      const t0 = performance.now();
      report.beginEpoch(e);
      const order = loader.order(e);
      const stageSeconds = new Array<number>(trainer.layout.stages).fill(0);
      let lossSum = 0, batches = 0, hits = 0, fills = 0;
      const layoutAtStart = { ...trainer.layout }, transition = trainer.currentTransition;
      for (let b = 0; b < loader.length; b++) {
        const idx = loader.batchIndices(e, b, order);
        const factor = lr(step);
        if (!trainer.fits(idx.length)) { skipped++; step++; continue; }
        const { x, y } = gather(ds.train, idx);
        const r = await trainer.step(x, y, idx, factor);
        step++;
        if (!Number.isFinite(r.loss)) throw new Error(`training diverged: loss ${r.loss} at step ${step}; try a smaller learning rate`);
        lossSum += r.loss; batches++;
        if (r.cached) hits++; else if (trainer.layout.prefix > 0) fills++;
        r.stageBusy.forEach((v, s) => { stageSeconds[s] += v; });
        report.step(step, r.loss, idx.length, o.optimizer.lr * factor);
      }
      await trainer.sync();
      const epochSeconds = (performance.now() - t0) / 1000;
      const cached = hits > 0 && hits >= fills;
      addEpoch(trace, epochRecord(e + 1, { ...transition, stages: layoutAtStart.stages }, cached, { stageSeconds, wallSeconds: epochSeconds }));
      trainSeconds += epochSeconds;
      await report.endEpoch(step, o.optimizer.lr * lr(Math.max(0, step - 1)), async () => {
        const s = await trainer.evaluateBatches(testChunks);
        const ev = { loss: s.loss / s.count, acc: s.correct / s.count, ppl: null };
        epochs.push({ epoch: e + 1, loss: lossSum / Math.max(1, batches), testAcc: ev.acc, testLoss: ev.loss, seconds: epochSeconds,
          frozen: layoutAtStart.frozenLayers, stages: layoutAtStart.stages, replicas: layoutAtStart.replicas, microbatches: layoutAtStart.microbatches, cached });
        return ev;
      }, async (path) => {
        const extra: ElasticResumeExtra = {
          config, elapsed_s: report.elapsed(), history: report.history,
          elastic: { settings, state: trainer.freezeState(), epochs, trace: trace.epochs, train_seconds: trainSeconds },
        };
        writeRunCheckpoint(path, {
          optimizer: await trainer.optimizerState(), model: trainer.model.stateDict(), step, epoch: e + 1, modelSpec: resolveSpec(o.spec), extra,
        });
      });
      log(`epoch ${e + 1} layout: frozen ${layoutAtStart.frozenLayers}, ${layoutAtStart.stages} stage(s) x ${layoutAtStart.replicas} replica(s)` +
        `${layoutAtStart.prefix ? `, cache ${hits} hit / ${fills} fill batches` : ""}, ${epochSeconds.toFixed(1)} s`);
      const t1 = performance.now();
      if (e + 1 < o.epochs) await trainer.endEpoch(e + 1);
      trainSeconds += (performance.now() - t1) / 1000;
    }
  } finally {
    o.progress?.done();
    metrics?.close();
    await trainer.close();
  }
  if (skipped) log(`note: ${skipped} batch(es) too small for the replicas x micro-batches were skipped`);
  const last = epochs[epochs.length - 1];
  return {
    epochs, trainSeconds, testAcc: last?.testAcc ?? NaN, testLoss: last?.testLoss ?? NaN, trace, state: trainer.model.stateDict(),
    steps: step, records: report.records, history: report.history, resumedFrom, elapsedSeconds: report.elapsed(),
  };
}

/** The training batches of epochs [from, to) that the trainer would have run, in order. */
function* replayBatches(loader: DataLoader, train: TensorDataset, from: number, to: number, fits: (n: number) => boolean):
  Generator<{ x: Tensor; idx: readonly number[] }> {
  for (let e = from; e < to; e++) {
    const order = loader.order(e);
    for (let b = 0; b < loader.length; b++) {
      const idx = loader.batchIndices(e, b, order);
      if (fits(idx.length)) yield { x: gather(train, idx).x, idx: Array.from(idx) };
    }
  }
}
