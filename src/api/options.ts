// createPipeline's options: what a user passes, checked once with errors that name the bad value and
// what is allowed, and resolved into the runtime's plain-JSON PipelineSetup pieces.
import { GPU_MAP_ENV, gpusMap } from "../backend/webgpu/gpu-map.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { Module, Sequential } from "../nn/module.js";
import type { OptimizerConfig } from "../optim/factory.js";
import { PARTITION_METHODS } from "../pipeline/partition.js";
import { assertValidSchedule, SCHEDULE_NAMES, WEIGHT_GRAD_MODES, type Schedule, type ScheduleName, type WeightGradMode } from "../pipeline/schedule/index.js";
import { EXECUTORS, type ExecutorName } from "../pipeline/runtime/executor.js";
import { RECOMPUTE_MODES, type RecomputeMode } from "../pipeline/runtime/setup.js";
import type { JsonValue, ModelSource } from "../pipeline/runtime/model-source.js";
import { LOSS_NAMES, type LossFunction, type LossSpec } from "../pipeline/runtime/loss-source.js";
import type { AsyncOptions } from "./async-options.js";
import type { SyncCollectives } from "../transport/types.js";

/**
 * What a model factory is given besides its args: `tensor`, the tensor-parallel group its
 * ColumnParallelLinear / RowParallelLinear layers split over (the worker's T ranks with
 * `tensorParallel: T`; a group of one elsewhere, so the layers are whole).
 */
export interface ModelContext { tensor: SyncCollectives }

/** What a model module exports for the pipeline: `(args, context) => Module[] | Sequential`, possibly async. */
export type ModelFactory = (args: never, context: ModelContext) => readonly Module[] | Sequential | Promise<readonly Module[] | Sequential>;

/** The names of module `M`'s exports that are model factories. */
export type FactoryExport<M> = { [K in keyof M]: M[K] extends ModelFactory ? K : never }[keyof M] & string;

/**
 * A user's ES module whose export builds the model; every worker imports it. Keep the model in a
 * file of its own (the workers import only it, so the training script needs no isMainThread guard):
 * `{ module: new URL("./model.js", import.meta.url), export: "build" }`. With the module's type,
 * `satisfies ModuleModel<typeof import("./model.js")>` makes the compiler check that the export
 * exists and is a factory; createPipeline checks it again when the pipeline is created.
 */
export interface ModuleModel<M = unknown> {
  module: string | URL;
  /** The factory's export name (default "default"). */
  export?: unknown extends M ? string : FactoryExport<M>;
  /** Passed to the factory (plain JSON: every worker gets a copy). */
  args?: JsonValue;
}

/** A built-in model (mlp, cnn, vit, gpt) by its JSON spec; weights from Rng(seed). */
export interface BuiltinModel { builtin: ModelSpec; seed?: number }

/**
 * The model: a module export every worker imports (any executor), a built-in spec, or, on the inline
 * executor only, the layers themselves (a Module[] or a Sequential).
 */
export type ModelOption = ModuleModel | BuiltinModel | readonly Module[] | Sequential;

/** The loss: a built-in name, a module export (any executor), or a function (inline executor only). */
export type LossOption = LossSpec | { module: URL; export?: string } | LossFunction;

const PIPE_PARTITIONS = PARTITION_METHODS.filter((m): m is "uniform" | "parameters" => m !== "time");

export interface PipelineOptions {
  model: ModelOption;
  /** Default "cross-entropy" (class-id targets). A user loss returns the micro-batch MEAN. */
  loss?: LossOption;
  /**
   * gpipe | 1f1b | interleaved | zb-h1 | async (default 1f1b), or a Schedule object: per-worker
   * action lists (from `pipewright/schedule`'s generateSchedule, changed, or written by hand) for
   * `stages` stages and `microbatches` micro-batches. It is validated before the pipeline starts.
   */
  schedule?: ScheduleName | Schedule;
  /** Physical stages S (one worker thread each on the threads executor). */
  stages: number;
  /** Micro-batches M each mini-batch is split into. */
  microbatches: number;
  /** Model chunks per stage (interleaved only; default 1). */
  chunks?: number;
  /** Explicit units per virtual stage, e.g. [3, 2, 3]; overrides `partition`. */
  balance?: readonly number[];
  /** uniform (default) or parameters (balance the parameter counts). */
  partition?: "uniform" | "parameters";
  /**
   * threads (default), inline (one thread, deterministic: bit-identical to threads) or processes
   * (one MPI rank per worker, SPMD: every rank runs the same script, e.g. `mpirun -n 2 node train.mjs`;
   * step, eval, stateDict, loadStateDict, save and close are then collective: every rank calls them).
   */
  executor?: ExecutorName;
  /**
   * Data-parallel copies of the pipeline (default 1), on threads (workers x replicas worker threads),
   * processes (workers x replicas ranks, rank = replica * workers + worker) or inline (the copies in
   * one thread, built from a module export or built-in spec; bit-identical to threads); each replica takes its
   * share of every micro-batch's rows and the gradients are summed over replicas before each
   * optimizer step. Synchronous schedules only.
   */
  replicas?: number;
  /**
   * Tensor-parallel ranks per worker (default 1): each worker's transformer blocks (built-in gpt
   * and vit) are split Megatron-style over T ranks (threads: T threads; processes: T neighbouring
   * MPI ranks). T must divide the heads and the width;
   * synchronous schedules on threads or processes only.
   */
  tensorParallel?: number;
  /** With tensorParallel >= 2: split the blocks' LayerNorm and residual regions along the sequence. */
  sequenceParallel?: boolean;
  optimizer: OptimizerConfig;
  /** Recompute activations in the backward pass: never (default), always, except-last. */
  recompute?: RecomputeMode;
  /** Weight gradients with each micro-batch's backward (default) or once per step. */
  weightGrads?: WeightGradMode;
  /**
   * Asynchronous methods (schedule "async"), e.g. {method: "pipemare"} or
   * {method: "pb", spikeCompensation: false}.
   */
  async?: AsyncOptions;
  /** Asynchronous schedules: optimizer steps per `pipe.run(batches)` window (default 8). */
  window?: number;
  /**
   * Clip the gradients to this global L2 norm before every optimizer step, as
   * torch.nn.utils.clip_grad_norm_ on one device: the norm is the whole model's (every stage, each
   * tensor-parallel shard and replicated parameter once, after the replicas' sum). Synchronous
   * schedules only. Default: no clipping.
   */
  clipGradNorm?: number;
  /** Learning-rate factor of optimizer step k (default 1: the optimizer's lr throughout). */
  lrSchedule?: (step: number) => number;
  /** Checkpoint (pipe.save) to continue from: weights, optimizer state, step counter. */
  resume?: string;
  /**
   * Write a Chrome trace (Perfetto, chrome://tracing) of every step and window to this file at
   * close(): one process per worker or MPI rank, compute and communication tracks. Off by default
   * (recording costs a little time per action). processes: rank 0 writes it.
   */
  trace?: string;
  /**
   * webgpu: the GPU each worker opens. N: worker w opens adapter w mod N (round-robin over N GPUs);
   * a list, e.g. [0, 1, 0, 1]: worker w opens list[w mod length] (docs/webgpu.md says how adapters are counted).
   */
  gpus?: number | readonly number[];
}

/** The options resolveOptions checked, with their defaults filled in (schedule "custom": a Schedule object, in `custom`). */
export type ResolvedOptions = ReturnType<typeof resolveOptions>;

function oneOf<T extends string>(what: string, v: unknown, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw new Error(`createPipeline: ${what} ${JSON.stringify(v)} is not valid; choose one of: ${allowed.join(", ")}`);
  }
  return v as T;
}

function posInt(what: string, v: unknown, fallback?: number): number {
  const n = v ?? fallback;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) throw new Error(`createPipeline: ${what} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Checks the options that need no model; fills defaults. */
export function resolveOptions(o: PipelineOptions) {
  if (typeof o !== "object" || o === null) throw new Error("createPipeline: options must be an object like {model, stages, microbatches, optimizer}");
  posInt("stages", o.stages);
  posInt("microbatches", o.microbatches);
  const custom = typeof o.schedule === "object" && o.schedule !== null ? customSchedule(o.schedule, o) : null;
  const schedule: ScheduleName | "custom" = custom ? "custom" : oneOf("schedule", o.schedule, SCHEDULE_NAMES, "1f1b");
  const chunks = custom ? custom.chunks : posInt("chunks", o.chunks, 1);
  const executor = oneOf("executor", o.executor, EXECUTORS, "threads");
  const recompute = oneOf("recompute", o.recompute, RECOMPUTE_MODES, "never");
  const weightGrads = oneOf("weightGrads", o.weightGrads, WEIGHT_GRAD_MODES, "microbatch");
  const partition = oneOf("partition", o.partition, PIPE_PARTITIONS, "uniform");
  const window = posInt("window", o.window, 8);
  const replicas = posInt("replicas", o.replicas, 1);
  // A schedule object is synchronous (customSchedule checks): only "async" steps each stage on its own.
  const asynchronous = schedule === "async";
  if (replicas > 1 && asynchronous) throw new Error(`createPipeline: replicas ${replicas} needs a synchronous schedule (gpipe, 1f1b, interleaved, zb-h1): gradients are summed once per optimizer step`);
  const { tensorParallel, sequenceParallel } = tensorParallelOf(o, executor, asynchronous);
  const clipGradNorm = clipOf(o.clipGradNorm, asynchronous);
  if (o.async !== undefined && schedule !== "async") throw new Error(`createPipeline: 'async' options need schedule "async", got schedule "${schedule}"`);
  if (typeof o.optimizer !== "object" || o.optimizer === null) throw new Error(`createPipeline: optimizer must be like {name: "sgd", lr: 0.1}, got ${JSON.stringify(o.optimizer)}`);
  if (o.lrSchedule !== undefined && typeof o.lrSchedule !== "function") throw new Error("createPipeline: lrSchedule must be a function (step) => factor");
  if (o.trace !== undefined && (typeof o.trace !== "string" || o.trace === "")) throw new Error(`createPipeline: trace must be a file path, got ${JSON.stringify(o.trace)}`);
  setGpuMap(o.gpus);
  return { schedule, custom, chunks, executor, recompute, weightGrads, partition, window, replicas, tensorParallel, sequenceParallel, clipGradNorm };
}

/** Checks `gpus` and hands the map to the workers, which read it when they open their device. */
function setGpuMap(g: PipelineOptions["gpus"]): void {
  if (g === undefined) return;
  const ok = typeof g === "number" ? Number.isInteger(g) && g >= 1 : Array.isArray(g) && g.length > 0 && g.every((x) => Number.isInteger(x) && x >= 0);
  if (!ok) throw new Error(`createPipeline: gpus must be a positive integer or a non-empty list of adapter indices (integers >= 0), got ${JSON.stringify(g)}`);
  process.env[GPU_MAP_ENV] = (typeof g === "number" ? gpusMap(g) : g).join(",");
}

/** clipGradNorm checked: a finite number > 0 and a synchronous schedule. */
function clipOf(v: unknown, asynchronous: boolean): number | null {
  if (v === undefined) return null;
  if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) throw new Error(`createPipeline: clipGradNorm must be a finite number > 0, got ${JSON.stringify(v) ?? String(v)}`);
  if (asynchronous) throw new Error("createPipeline: clipGradNorm needs a synchronous schedule: an asynchronous method steps each stage on its own");
  return v;
}

/** tensorParallel and sequenceParallel, checked against the executor and schedule. */
function tensorParallelOf(o: PipelineOptions, executor: ExecutorName, asynchronous: boolean): { tensorParallel: number; sequenceParallel: boolean } {
  const t = posInt("tensorParallel", o.tensorParallel, 1);
  if (o.sequenceParallel !== undefined && typeof o.sequenceParallel !== "boolean") throw new Error(`createPipeline: sequenceParallel must be true or false, got ${JSON.stringify(o.sequenceParallel)}`);
  const sp = o.sequenceParallel === true;
  if (sp && t < 2) throw new Error(`createPipeline: sequenceParallel splits the tensor-parallel blocks along the sequence: it needs tensorParallel 2 or more, not ${t}`);
  if (t > 1 && executor === "inline") throw new Error(`createPipeline: tensorParallel ${t} runs T ranks per worker: use executor "threads" or "processes", not "inline"`);
  if (t > 1 && asynchronous) throw new Error(`createPipeline: tensorParallel ${t} needs a synchronous schedule (gpipe, 1f1b, interleaved, zb-h1, zb-v, dualpipev)`);
  return { tensorParallel: t, sequenceParallel: sp };
}

/** A user's Schedule object: the pipeline's shape, then the validator (structure and deadlock). */
function customSchedule(s: Schedule, o: PipelineOptions): Schedule {
  if (!Array.isArray(s.workers) || typeof s.stages !== "number" || typeof s.microbatches !== "number") {
    throw new Error(`createPipeline: schedule must be a name (${SCHEDULE_NAMES.join(", ")}) or a Schedule object with stages, microbatches and workers' action lists`);
  }
  if (s.stages !== o.stages || s.microbatches !== o.microbatches) {
    throw new Error(`createPipeline: the schedule object is for ${s.stages} stage(s) and ${s.microbatches} micro-batch(es); the options say stages ${o.stages}, microbatches ${o.microbatches}`);
  }
  if (o.chunks !== undefined && o.chunks !== s.chunks) throw new Error(`createPipeline: chunks ${o.chunks} differs from the schedule object's ${s.chunks}`);
  if (!s.synchronous || s.steps !== 1) {
    throw new Error(`createPipeline: a schedule object must be synchronous and span one optimizer step (steps 1); '${s.name}' has steps ${s.steps}${s.synchronous ? "" : ", not synchronous"}`);
  }
  try { assertValidSchedule(s); } catch (e) { throw new Error(`createPipeline: ${(e as Error).message}`); }
  return s;
}

/** The model as a worker-importable source, or the inline layers themselves. */
export function modelSourceOf(m: ModelOption, executor: ExecutorName): { source: ModelSource | null; layers: readonly Module[] | Sequential | null } {
  if (m instanceof Sequential || Array.isArray(m)) {
    if (executor !== "inline") {
      throw new Error(`createPipeline: model given as ${m instanceof Sequential ? "a Sequential" : "a Module[]"} runs on the inline executor only; ` +
        `on "${executor}" every worker builds its own copy: export a function from a module of its own and pass model: {module: new URL("./model.js", import.meta.url), export: "build", args}`);
    }
    return { source: null, layers: m as readonly Module[] | Sequential };
  }
  if (m instanceof Module) throw new Error("createPipeline: model is a single Module; pass its layers as a Module[] or a Sequential (the units the pipeline cuts)");
  if (typeof m !== "object" || m === null) throw new Error(`createPipeline: model must be {module, export?, args?}, {builtin: spec}, or (inline) a Module[] / Sequential, got ${JSON.stringify(m)}`);
  const o = m as Partial<ModuleModel & BuiltinModel>;
  if (o.builtin) return { source: { kind: "builtin", spec: o.builtin, seed: o.seed ?? 0 }, layers: null };
  if (typeof o.module === "string" || o.module instanceof URL) {
    return { source: { kind: "module", module: String(o.module), export: o.export as string | undefined, args: o.args }, layers: null };
  }
  throw new Error(`createPipeline: model ${JSON.stringify(m)} names no module; expected {module: new URL("./model.js", import.meta.url), export: "build", args}`);
}

/** The loss as plain JSON for the workers, or a function (inline only). */
export function lossSpecOf(l: LossOption | undefined, executor: ExecutorName): { spec: LossSpec | undefined; fn: LossFunction | null } {
  if (typeof l === "function") {
    if (executor !== "inline") {
      throw new Error(`createPipeline: a loss function runs on the inline executor only; on "${executor}" every worker imports it: ` +
        `export it from a module of its own and pass loss: {module: new URL("./loss.js", import.meta.url), export: "${l.name || "myLoss"}"}`);
    }
    return { spec: undefined, fn: l };
  }
  if (l === undefined || (typeof l === "string" && (LOSS_NAMES as readonly string[]).includes(l))) return { spec: l, fn: null };
  if (typeof l === "object" && l !== null) {
    const mod = (l as { module?: unknown }).module;
    const name = (l as { export?: string }).export;
    if (typeof mod === "string" || mod instanceof URL) return { spec: { module: String(mod), ...(name !== undefined ? { export: name } : {}) }, fn: null };
  }
  throw new Error(`createPipeline: loss ${JSON.stringify(l)} is not valid; use ${LOSS_NAMES.join(", ")}, {module, export} or (inline) a function`);
}
