// Planning a pipeline run: the schedules it executes (synchronous, or asynchronous windows after an
// optional synchronous 1F1B warm-up), the partition of the model's units into stages, and the
// lines that describe the plan. Nothing here runs a step.
import type { Model } from "../nn/models/model.js";
import type { ResolvedSpec } from "../nn/models/spec.js";
import { formatPartition, partitionLayers, type Partition } from "../pipeline/partition.js";
import { expectedDelay, formatSchedule, generateSchedule, stagePlacement, type Schedule } from "../pipeline/schedule/index.js";
import { describeConfig, parseAsyncConfig, type AsyncConfig } from "../pipeline/weights/index.js";
import { describeStages } from "../pipeline/runtime/async-weights.js";
import { describeAsyncResume } from "../pipeline/runtime/async-state.js";
import { profileUnitTimes } from "../pipeline/runtime/profile.js";
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import type { PipelineTrainOptions } from "./options.js";
import type { Task } from "./task.js";
import { isWriterRank } from "../transport/mpi/env.js";

/** Longest list an asynchronous run executes at once (in optimizer steps); an epoch runs in windows. */
const ASYNC_WINDOW = 2000;

export interface AsyncWindows { window: number; count: number; dropped: number }

/**
 * How an asynchronous epoch of `steps` usable mini-batches is cut into windows of equal length: the
 * lists drain at the end of each window (the first micro-batches of a window see shorter delays),
 * and the few steps left over by the division are skipped.
 */
export function asyncWindows(steps: number, maxWindow = ASYNC_WINDOW): AsyncWindows {
  if (steps < 1) throw new Error(`an asynchronous epoch needs at least one full mini-batch, got ${steps}`);
  const count = Math.ceil(steps / maxWindow);
  const window = Math.floor(steps / count);
  return { window, count, dropped: steps - window * count };
}

export interface PipelinePlan {
  /** What the run executes: the asynchronous window's lists, or the synchronous schedule. */
  schedule: Schedule;
  /** The synchronous 1F1B lists of an asynchronous run's warm-up epochs (null: no warm-up). */
  warmupSchedule: Schedule | null;
  /** The asynchronous method (null: a synchronous schedule). */
  asyncCfg: AsyncConfig | null;
  /** How an asynchronous epoch is cut into windows (null: synchronous). */
  win: AsyncWindows | null;
  stageToWorker: number[] | undefined;
  partition: Partition;
}

/** Schedules and partition for `opts.pipeline` on `model` (the task's first batch profiles --partition time). */
export async function planPipeline(opts: PipelineTrainOptions, spec: ResolvedSpec, model: Model, task: Task): Promise<PipelinePlan> {
  const p = opts.pipeline;
  if (opts.batch < p.microbatches) {
    throw new Error(`--batch ${opts.batch} cannot be split into --microbatches ${p.microbatches}; each micro-batch needs at least one example`);
  }
  const stageToWorker = stagePlacement(p.schedule, p.stages, p.workers);
  const asyncCfg: AsyncConfig | null = p.schedule === "async" ? (p.async ?? parseAsyncConfig({})) : null;
  // A last partial batch smaller than M is skipped, so it does not count towards the windows.
  const fullBatches = task.stepsPerEpoch - (task.samplesPerEpoch % opts.batch !== 0 && task.samplesPerEpoch % opts.batch < p.microbatches ? 1 : 0);
  const win = asyncCfg ? asyncWindows(fullBatches) : null;
  const common = { stages: p.stages, microbatches: p.microbatches, stageToWorker, weightGrads: p.weightGrads };
  const asyncSchedule = win ? generateSchedule("async", { ...common, steps: win.window }) : null;
  const warmupSchedule = asyncCfg && asyncCfg.warmupEpochs > 0 ? generateSchedule("1f1b", common) : null;
  const schedule = asyncSchedule ?? generateSchedule(p.schedule, { ...common, chunks: p.chunks });

  let times: number[] | undefined;
  if (!p.balance && p.partition === "time") {
    const profile = (): number[] => {
      const first = task.batches(0, 0)[Symbol.iterator]().next();
      if (first.done) throw new Error("no training data to profile the layers on");
      return profileUnitTimes(spec, opts.seed, splitMiniBatch(first.value.x, first.value.y, p.microbatches).inputs[0]);
    };
    // Measured times differ per process: under MPI rank 0 (which feeds stage 0: it has the
    // inputs) measures and every rank takes its times, so all cut alike.
    times = p.executor !== "processes" ? profile()
      : await (await import("../pipeline/runtime/processes.js")).agreeOnRank0(isWriterRank() ? profile() : [], schedule.workers.length, p.replicas ?? 1);
  }
  const partition = partitionLayers({
    layers: model.units.length, stages: p.stages, chunks: p.chunks, method: p.partition, balance: p.balance,
    parameters: model.units.map((u) => u.numParameters()), times,
  });
  return { schedule, warmupSchedule, asyncCfg, win, stageToWorker, partition };
}

/** The lines that describe a planned run (model, pipeline, partition, asynchronous method). */
export function describePlan(opts: PipelineTrainOptions, plan: PipelinePlan, setup: PipelineSetup, head: string): string[] {
  const p = opts.pipeline;
  const lines = [head,
    `pipeline: ${p.schedule}, ${p.stages} stages x ${p.chunks} chunk(s), ${p.microbatches} micro-batches of ~${Math.round(opts.batch / p.microbatches)}, ` +
    `executor ${p.executor}, recompute ${p.recompute}, ${p.weightGrads === "step" ? "weight gradients once per step, " : ""}` +
    `partition ${p.balance ? `balance ${p.balance.join(",")}` : p.partition}`,
    formatPartition(plan.partition, p.stages, p.chunks)];
  if (p.replicas && p.replicas > 1) {
    lines.push(`data parallel: ${p.replicas} replicas of the pipeline, each on 1/${p.replicas} of every micro-batch; gradients summed over replicas before STEP`);
  }
  if (p.tensorParallel) {
    // PTD-P: the P x T x D layout, what is split and what every tensor rank holds whole.
    const [W, T, D] = [plan.schedule.workers.length, p.tensorParallel, p.replicas ?? 1];
    lines.push(`layout: ${W} pipeline worker(s) x ${T} tensor rank(s) x ${D} replica(s) = ${W * T * D} rank(s); ` +
      `transformer blocks split over each worker's ${T} tensor ranks (heads and MLP columns), embeddings, final LayerNorm and head replicated; ` +
      `sequence parallel ${p.sequenceParallel ? "on (LayerNorm and residual regions split along the sequence)" : "off"}`);
  }
  if (plan.stageToWorker) lines.push(`stages on ${plan.schedule.workers.length} worker(s): ${plan.stageToWorker.map((w, s) => `${s}->w${w}`).join(" ")}`);
  const { win, asyncCfg } = plan;
  if (setup.async && win && asyncCfg) {
    const formula = setup.async.taus.map((_, s) => expectedDelay(p.stages, s, p.microbatches));
    lines.push(`asynchronous ${describeConfig(asyncCfg)}`,
      `delays tau_s measured from the schedule: [${setup.async.taus.join(", ")}] (closed form: [${formula.join(", ")}])`,
      ...describeStages(setup.async));
    if (opts.resume) lines.push(describeAsyncResume(setup.async.resume, setup.async.config.policy));
    lines.push(`each epoch runs as ${win.count} window(s) of ${win.window} steps without flush${win.dropped ? `; ${win.dropped} step(s) per epoch left over are skipped` : ""}`);
  }
  if (process.env.PIPEWRIGHT_DEBUG) lines.push(formatSchedule(plan.schedule));
  return lines;
}
