// The single-device training loop behind `pipewright train`: epochs of shuffled mini-batches,
// forward + cross-entropy + backward + optimizer step under an LR schedule, evaluation on the test
// set after every epoch, JSON-lines metrics, and a checkpoint per epoch from which a resumed run
// continues exactly (same batches, same optimizer state, same per-step losses).
import { backward } from "../autograd/engine.js";
import { getBackend } from "../backend/index.js";
import { checkpointExtra, type Json } from "../checkpoint/index.js";
import { checkpointStart, writeRunCheckpoint } from "../api/checkpoint-start.js";
import { epochSeed } from "../data/loader.js";
import { Dropout } from "../nn/dropout.js";
import { crossEntropyLoss } from "../nn/loss.js";
import type { Module } from "../nn/module.js";
import { createModel, type Model } from "../nn/models/index.js";
import { resolveSpec, type ModelSpec } from "../nn/models/spec.js";
import {
  clipGradNorm, constantLr, cosineLr, createOptimizer, linearWarmup, stepLr, type LrSchedule, type Optimizer,
} from "../optim/index.js";
import type { ProgressBar } from "./progress.js";
import { Rng } from "../tensor/random.js";
import { EpochReport, type TrainSummary } from "./epoch-report.js";
import type { MetricsRecord } from "./metrics.js";
import { savedTrainConfig, type TrainConfig } from "./options.js";
import { buildTask, type Task } from "./task.js";

export interface TrainHooks {
  /** After every optimizer step: the global step count (1-based) and that step's loss. */
  onStep?(step: number, loss: number): void;
  /** Progress bar (stderr); none when omitted. */
  progress?: ProgressBar;
  /** Human-readable messages (epoch summaries, notes); none when omitted. */
  log?(message: string): void;
}

export type { TrainSummary };

export interface TrainResult {
  summary: TrainSummary;
  /** Every record written this invocation (step records every logEvery steps, epoch records). */
  records: MetricsRecord[];
}

/** What a checkpoint's "extra" metadata holds besides step and epoch (single-device and pipeline runs alike). */
export interface ResumeExtra {
  config: TrainConfig;
  elapsed_s: number;
  history: MetricsRecord[];
}

/** Where a run continues: its counters, and what the CLI's runs keep in a checkpoint's extra. */
export interface RunCounters {
  startEpoch: number;
  step: number;
  /** Seconds spent by the earlier runs. */
  elapsedBefore: number;
  history: MetricsRecord[];
  resumedFrom: TrainSummary["resumed_from"];
}

/** The counters of a run resumed from checkpoint `path` (`ck` its contents), or a fresh run's zeros. */
export function runCounters(path: string | undefined, ck?: { epoch: number; step: number; extra: object }): RunCounters {
  if (!path || !ck) return { startEpoch: 0, step: 0, elapsedBefore: 0, history: [], resumedFrom: null };
  const { elapsed_s, history } = savedCounters(ck.extra);
  return { startEpoch: ck.epoch, step: ck.step, elapsedBefore: elapsed_s, history, resumedFrom: { path, epoch: ck.epoch, step: ck.step } };
}

/** A saved run's elapsed seconds and metrics history (0 and none where a checkpoint lacks them). */
function savedCounters(extra: object): Pick<ResumeExtra, "elapsed_s" | "history"> {
  const e = extra as Partial<ResumeExtra>;
  return { elapsed_s: Number(e.elapsed_s ?? 0), history: Array.isArray(e.history) ? e.history : [] };
}

/** The error for a non-finite loss at 1-based optimizer step `step` of 0-based `epoch`, naming what to try. */
export function divergedError(loss: number, step: number, epoch: number, lr: number, hint = ""): Error {
  return new Error(`training diverged: loss is ${loss} at step ${step} (epoch ${epoch + 1}); try a smaller --lr than ${lr}${hint}`);
}

export function specOf(cfg: Pick<TrainConfig, "model" | "spec">): ModelSpec {
  const spec = cfg.spec ?? ({ name: cfg.model } as ModelSpec);
  if (spec.name !== cfg.model) throw new Error(`model spec is for '${spec.name}' but --model is '${cfg.model}'`);
  return spec;
}

/**
 * The LR factor per 0-based step: linear warm-up over `warmup` steps, then constant ("none"),
 * x0.1 after each third of the remaining steps ("step"), or cosine decay to 0 ("cosine").
 */
export function makeLrSchedule(cfg: Pick<TrainConfig, "scheduleLr" | "warmup">, totalSteps: number): LrSchedule {
  const after = Math.max(1, totalSteps - cfg.warmup);
  let inner: LrSchedule;
  switch (cfg.scheduleLr) {
    case "none": inner = constantLr(); break;
    case "step": inner = stepLr(Math.max(1, Math.ceil(after / 3)), 0.1); break;
    case "cosine": inner = cosineLr(after); break;
    default: throw new Error(`unknown lr schedule '${String(cfg.scheduleLr)}'; valid: none, step, cosine`);
  }
  return cfg.warmup > 0 ? linearWarmup(cfg.warmup, inner) : inner;
}

/** Dropout masks per epoch from (seed, module, epoch), so a resumed epoch draws the same masks. */
function reseedDropout(model: Module, seed: number, epoch: number): void {
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Dropout)) continue;
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (Math.imul(h, 31) + name.charCodeAt(i)) | 0;
    m.rng = new Rng(epochSeed(seed ^ h, epoch));
  }
}

/** The training configuration stored in a checkpoint (for resuming with the same settings). */
export function checkpointConfig(path: string): TrainConfig {
  return parseExtra(path, checkpointExtra(path)).config; // the header only
}

/** A checkpoint's extra as `train` saved it (config, elapsed seconds, history); errors when it holds none. */
export function parseExtra(path: string, extra: Json | undefined): ResumeExtra {
  const e = extra as Partial<ResumeExtra> | undefined;
  if (!e || typeof e !== "object" || !e.config || typeof e.config !== "object") {
    throw new Error(`checkpoint ${path} holds no training state (written by something other than \`pipewright train\`?); it cannot be resumed`);
  }
  return { config: savedTrainConfig(e.config), ...savedCounters(e) };
}

/** The counters of a run resumed from `path` (`ck`); logs how it differs from the saved run (`changed`: what alters the steps per epoch). */
export function resumedRun(path: string, ck: { epoch: number; step: number; extra: object }, saved: Pick<TrainConfig, "epochs">,
  now: Pick<TrainConfig, "epochs" | "scheduleLr">, stepsPerEpoch: number, changed: string, log: (m: string) => void): RunCounters {
  if (ck.step !== ck.epoch * stepsPerEpoch) {
    log(`note: the checkpoint is at step ${ck.step} after ${ck.epoch} epochs, but this run has ${stepsPerEpoch} steps per epoch ` +
      `(${changed} changed?); training continues, but not as the saved run would have`);
  }
  if (saved.epochs !== now.epochs && now.scheduleLr !== "none") {
    log(`note: the saved run planned ${saved.epochs} epochs, this one ${now.epochs}; the ${now.scheduleLr} LR schedule ` +
      `is laid out over the new total, so the losses differ from the saved run's plan from here on`);
  }
  log(`resumed from ${path}: ${ck.epoch} epochs, ${ck.step} steps done`);
  return runCounters(path, ck);
}

/** Continues `cfg.resume` (if given) in `model` and `opt`; the flags given now win over the saved hyper-parameters. */
function resumeSingleDevice(cfg: TrainConfig, model: Model, opt: Optimizer<{ lr: number }, { step: number }>, stepsPerEpoch: number,
  log: (m: string) => void): RunCounters {
  if (!cfg.resume) return runCounters(undefined);
  const ck = checkpointStart(cfg.resume, model, { asyncStages: null, fitHint: "; resume with the same --model as the saved run" });
  const extra = parseExtra(cfg.resume, ck.extra);
  try {
    opt.loadStateDict(ck.optimizerState);
  } catch (e) {
    throw new Error(`checkpoint ${cfg.resume}: ${(e as Error).message}; resume with the same --optimizer as the saved run`);
  }
  // Equal unless the user changed them.
  const o = cfg.optimizer;
  for (const g of opt.groups) {
    g.baseLr = o.lr;
    const h = g.hyper as { lr: number; momentum?: number; weightDecay?: number };
    h.weightDecay = o.weightDecay ?? 0;
    if (o.name === "sgd") h.momentum = o.momentum ?? 0;
  }
  return resumedRun(cfg.resume, ck, extra.config, cfg, stepsPerEpoch, "--batch, --limit or --steps-per-epoch", log);
}

export async function trainSingleDevice(cfg: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? ((): void => {});
  const spec = resolveSpec(specOf(cfg));
  const model = createModel(spec, cfg.seed);
  const task: Task = buildTask({ ...cfg, spec });
  const opt = createOptimizer(cfg.optimizer, model.namedParameters());
  const schedule = makeLrSchedule(cfg, cfg.epochs * task.stepsPerEpoch);
  log(`pipewright train: ${cfg.model} (${model.numParameters().toLocaleString("en-US")} parameters) on the ${getBackend().name} backend; ${task.describe}`);
  const counters = resumeSingleDevice(cfg, model, opt, task.stepsPerEpoch, log);
  const startEpoch = counters.startEpoch;
  let step = counters.step;
  const report = new EpochReport({ ...cfg, task, progress: hooks.progress, log, counters });
  try {
    for (let epoch = startEpoch; epoch < cfg.epochs; epoch++) {
      reseedDropout(model, cfg.seed, epoch);
      model.train();
      report.beginEpoch(epoch);
      for (const b of task.batches(epoch, 0)) {
        opt.applySchedule(schedule, step);
        const lr = opt.groups[0].hyper.lr;
        opt.zeroGrad();
        const loss = crossEntropyLoss(model.forward(b.x), b.y);
        backward(loss);
        if (cfg.clipGradNorm !== undefined) clipGradNorm(model.parameters(), cfg.clipGradNorm);
        opt.step();
        const value = loss.item();
        step++;
        if (!Number.isFinite(value)) throw divergedError(value, step, epoch, cfg.optimizer.lr);
        hooks.onStep?.(step, value);
        report.step(step, value, b.x.shape[0], lr);
      }
      await report.endEpoch(step, opt.groups[0].hyper.lr, () => task.evaluate(model),
        (path) => writeRunCheckpoint(path, { model: model.stateDict(), optimizer: opt.stateDict(), step, epoch: epoch + 1, modelSpec: model.spec,
          extra: { config: { ...cfg, resume: undefined }, elapsed_s: report.elapsed(), history: report.history } satisfies ResumeExtra }));
      await new Promise<void>((r) => setImmediate(r));
    }
  } finally {
    report.close();
  }

  let lastEval = report.lastEval;
  if (!lastEval) {
    log(`nothing to train: the checkpoint already has ${startEpoch} of ${cfg.epochs} epochs; evaluating it`);
    lastEval = task.evaluate(model);
  }
  const summary = report.summary({ model: cfg.model, parameters: model.numParameters(), steps: step }, lastEval);
  return { summary, records: report.records };
}
