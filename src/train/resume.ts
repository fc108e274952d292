// Resuming a run: the options given now merged with the checkpoint's saved run (training settings,
// model size, pipeline and asynchronous method). Options are named as `pipewright train`'s flags
// (the CLI hands its parsed flags over as they are); an inconsistent combination is a ConfigError
// naming the options involved, which the CLI reports as a usage error.
import type { Json } from "../checkpoint/index.js";
import { describeSpec, MODEL_NAMES, resolveSpec, type ModelName, type ResolvedSpec } from "../nn/models/spec.js";
import { ASYNC_FLAGS, parseAsyncConfig, type AsyncConfig } from "../pipeline/weights/config.js";
import {
  EXECUTORS, MODEL_DEFAULTS, optimizerConfigOf, PARTITION_METHODS, PIPELINE_SCHEDULES, RECOMPUTE_MODES, WEIGHT_GRAD_MODES,
  type ExecutorName, type OptimizerName, type PartitionMethod, type WeightGradMode,
  type PipelineConfig, type PipelineScheduleName, type RecomputeMode, type TrainConfig,
} from "./options.js";
import { taskMisfit } from "./task.js";
import { flagList } from "../util/describe.js";

/** An option value or combination that cannot be used (the CLI turns it into a usage error, exit 2). */
export class ConfigError extends Error {}

/** Option values by flag name (as the CLI parses them: strings, numbers, booleans, lists). */
export type OptionValues = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>;

/** `schedule: "none"`: explicitly one device (also for a checkpoint saved by a pipeline run). */
export const NO_PIPELINE = "none";

const PIPELINE_FLAGS = ["stages", "microbatches", "chunks", "partition", "balance", "executor", "recompute", "weight-grads", "workers", "replicas", "tp", "sequence-parallel", ...Object.keys(ASYNC_FLAGS)] as const;

/** The TrainConfig fields a flag of that name sets (else the resumed run's value, else the model's default). */
const PICKED = {
  batch: "batch", scheduleLr: "schedule-lr", warmup: "warmup", seed: "seed", data: "data", limit: "limit", text: "text",
  stepsPerEpoch: "steps-per-epoch", logEvery: "log-every",
} as const satisfies Partial<Record<keyof TrainConfig, string>>;

/**
 * Resolves options into a TrainConfig: explicit options, else the resumed run's values, else
 * per-model defaults. `sized`: the model size the options give (sizing flags or a config file), if any.
 */
export function mergeTrainConfig(f: OptionValues, given: ReadonlySet<string>, saved?: TrainConfig, sized?: ResolvedSpec): TrainConfig {
  if (saved && f.model !== undefined && saved.model !== f.model) {
    throw new ConfigError(`--model ${String(f.model)} does not match the checkpoint, which holds a ${saved.model} model`);
  }
  if (saved && sized && sized.name !== saved.model) {
    throw new ConfigError(`the sizing options describe a ${sized.name} model but the checkpoint holds a ${saved.model} model`);
  }
  const model = (f.model as ModelName | undefined) ?? sized?.name ?? saved?.model;
  if (!model) throw new ConfigError(`pipewright train: --model is required; choose one of: ${MODEL_NAMES.join(", ")}`);
  const spec = sizedSpec(sized, saved);
  const d = MODEL_DEFAULTS[model];
  const base: TrainConfig = saved ?? { model, epochs: 5, ...d, optimizer: optimizerConfigOf(d), seed: 0, logEvery: 1 };
  const given_ = (flag: string): boolean => given.has(flag) && f[flag] !== undefined;
  const was = saved?.optimizer;
  const optimizer = (given_("optimizer") ? f.optimizer : was?.name ?? d.optimizer) as OptimizerName;
  // Switching optimizer without naming lr/weight decay takes that optimizer's customary values.
  const optDefaults = !saved && optimizer !== d.optimizer
    ? (MODEL_NAMES.map((m) => MODEL_DEFAULTS[m]).find((x) => x.optimizer === optimizer) ?? d) : d;
  const picked = Object.fromEntries(Object.entries(PICKED).map(([key, flag]) => [key, given_(flag) ? f[flag] : base[key as keyof TrainConfig]]));
  const cfg: TrainConfig = {
    model,
    spec,
    epochs: given.has("epochs") || !saved ? (f.epochs as number) : saved.epochs,
    ...(picked as Pick<TrainConfig, keyof typeof PICKED>),
    optimizer: optimizerConfigOf({
      optimizer,
      lr: given.has("lr") ? (f.lr as number) : was ? was.lr : optDefaults.lr,
      momentum: given_("momentum") ? (f.momentum as number) : (was?.name === "sgd" ? was.momentum : undefined) ?? d.momentum,
      weightDecay: given.has("weight-decay") ? (f["weight-decay"] as number) : was ? was.weightDecay ?? 0 : optDefaults.weightDecay,
    }),
    save: f.save as string | undefined,
    resume: f.resume as string | undefined,
    metrics: f.metrics as string | undefined,
  };
  const clip = given_("clip-grad-norm") ? (f["clip-grad-norm"] as number) : base.clipGradNorm;
  if (clip !== undefined) {
    if (!(clip > 0)) throw new ConfigError(`--clip-grad-norm must be > 0, got ${clip}`);
    cfg.clipGradNorm = clip;
  }
  if (cfg.model !== "gpt") {
    if (cfg.text !== undefined) throw new ConfigError(`--text is for the gpt model; --model ${cfg.model} trains on Fashion-MNIST (see --data)`);
    if (cfg.stepsPerEpoch !== undefined) throw new ConfigError(`--steps-per-epoch is for the gpt model; --model ${cfg.model} runs one pass over the data per epoch`);
  } else if (cfg.data !== undefined) {
    throw new ConfigError("--data is for the image models; --model gpt trains on a text corpus (see --text)");
  }
  return cfg;
}

/**
 * The model to train: the sizing flags' spec (checked against the task's data), or the resumed run's.
 * Resuming keeps the checkpoint's model: sizing flags that describe another one are an error.
 */
function sizedSpec(sized: ResolvedSpec | undefined, saved?: TrainConfig): TrainConfig["spec"] {
  if (saved && sized) {
    const held = resolveSpec(saved.spec ?? { name: saved.model });
    if (JSON.stringify(held) !== JSON.stringify(sized)) {
      throw new ConfigError(`the checkpoint holds ${describeSpec(held)}; the sizing flags describe ${describeSpec(sized)}. ` +
        "A checkpoint resumes only the model it holds: drop the sizing flags");
    }
  }
  if (sized) {
    const misfit = taskMisfit(sized);
    if (misfit) throw new ConfigError(misfit);
  }
  return sized ?? saved?.spec;
}

/**
 * The pipeline part of the flags, or null for one device; inconsistent combinations are usage errors.
 * `saved` is the pipeline a resumed checkpoint was trained with: pipeline flags not given take its
 * values (without --schedule the run continues as that pipeline); `--schedule none` means one device.
 */
export function mergePipelineConfig(f: OptionValues, given: ReadonlySet<string>, saved?: PipelineConfig): PipelineConfig | null {
  const stray = PIPELINE_FLAGS.filter((n) => given.has(n));
  if (f.schedule === NO_PIPELINE) {
    if (stray.length) throw new ConfigError(`--schedule ${NO_PIPELINE} trains on one device; ${flagList(stray)} only apply to pipeline training`);
    return null;
  }
  if (f.schedule === undefined && !saved) {
    if (stray.length) {
      throw new ConfigError(`${flagList(stray)} only apply to pipeline training; add --schedule ${PIPELINE_SCHEDULES.join("|")}`);
    }
    return null;
  }
  const v = saved ? withSavedPipeline(f, given, saved) : f;
  const schedule = v.schedule as PipelineScheduleName;
  if (v.stages === undefined) throw new ConfigError(`--schedule ${schedule} needs --stages S (the number of pipeline stages)`);
  const asyncGiven = Object.keys(ASYNC_FLAGS).filter((n) => given.has(n));
  if (schedule !== "async" && asyncGiven.length) {
    throw new ConfigError(`${flagList(asyncGiven)} only apply to --schedule async, not ${schedule}${f.schedule === undefined ? " (the checkpoint's pipeline)" : ""}`);
  }
  // Asynchronous: one micro-batch per optimizer step unless told otherwise (batch size 1: --batch 1).
  if (v.microbatches === undefined && schedule !== "async") throw new ConfigError(`--schedule ${schedule} needs --microbatches M (micro-batches per mini-batch)`);
  const chunks = (v.chunks as number | undefined) ?? 1;
  if (chunks > 1 && schedule !== "interleaved") {
    throw new ConfigError(`--chunks ${chunks} needs --schedule interleaved; ${schedule}${f.schedule === undefined ? " (the checkpoint's pipeline)" : ""} runs one chunk per stage`);
  }
  let balance: number[] | undefined;
  if (v.balance !== undefined) {
    if (given.has("partition") && given.has("balance")) throw new ConfigError("give either --partition or --balance, not both");
    const list = (v.balance as string[]).join(",");
    balance = (v.balance as string[]).map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--balance '${list}': '${s}' is not a positive integer; e.g. --balance 3,2,3`);
      return n;
    });
    if (balance.length !== (v.stages as number) * chunks) {
      throw new ConfigError(`--balance ${given.has("balance") ? "" : `${list} (the checkpoint's) `}has ${balance.length} entries but --stages ${String(v.stages)}` +
        `${chunks > 1 ? ` x --chunks ${chunks}` : ""} needs ${(v.stages as number) * chunks}${given.has("balance") ? "" : "; give --balance or --partition too"}`);
    }
  }
  return {
    schedule,
    stages: v.stages as number,
    microbatches: (v.microbatches as number | undefined) ?? 1,
    chunks,
    partition: (v.partition as PartitionMethod | undefined) ?? "uniform",
    balance,
    executor: (v.executor as ExecutorName | undefined) ?? "threads",
    recompute: (v.recompute as RecomputeMode | undefined) ?? "never",
    weightGrads: (v["weight-grads"] as WeightGradMode | undefined) ?? "microbatch",
    ...(schedule === "async" ? { async: asyncConfigOf(v) } : {}),
    ...(v.workers !== undefined ? { workers: v.workers as number } : {}),
    // --replicas R: data parallelism across pipelines (worker threads, MPI ranks, or inline in one thread).
    ...(v.replicas !== undefined && v.replicas !== 1 ? { replicas: v.replicas as number } : {}),
    ...tensorParallelOf(v, schedule),
  };
}

/** --tp T [--sequence-parallel]: Megatron tensor parallelism inside each worker (synchronous schedules). */
function tensorParallelOf(v: OptionValues, schedule: PipelineScheduleName): Pick<PipelineConfig, "tensorParallel" | "sequenceParallel"> {
  const t = (v.tp as number | undefined) ?? 1;
  const sp = v["sequence-parallel"] === true;
  if (sp && t < 2) throw new ConfigError(`--sequence-parallel splits the tensor-parallel blocks along the sequence: it needs --tp 2 or more, not --tp ${t}`);
  if (t === 1) return {};
  const executor = (v.executor as string | undefined) ?? "threads";
  if (executor === "inline") throw new ConfigError(`--tp ${t} runs ${t} ranks per worker: use --executor threads or processes, not inline`);
  if (schedule === "async") throw new ConfigError(`--tp ${t} needs a synchronous schedule (${PIPELINE_SCHEDULES.filter((n) => n !== "async").join(", ")}), not async`);
  return { tensorParallel: t, ...(sp ? { sequenceParallel: true } : {}) };
}

/**
 * --tp T against the model: only the transformer models have blocks to split, and T must divide
 * their attention heads and width (each tensor rank holds heads / T whole heads).
 */
export function checkTensorParallelModel(spec: ResolvedSpec, p: PipelineConfig | null): void {
  const t = p?.tensorParallel ?? 1;
  if (t === 1) return;
  if (spec.name !== "gpt" && spec.name !== "vit") throw new ConfigError(`--tp ${t} needs a transformer model (gpt, vit); --model ${spec.name} has no transformer blocks to split`);
  if (spec.heads % t !== 0) throw new ConfigError(`--tp ${t} must divide the attention heads ${spec.heads} (--heads)`);
  if (spec.dim % t !== 0) throw new ConfigError(`--tp ${t} must divide the width ${spec.dim} (--width)`);
}

/**
 * The flags with the saved pipeline's values filled in where none was given. Values that belong to
 * one schedule (chunks: interleaved; the asynchronous method) carry over only to that schedule.
 */
function withSavedPipeline(f: OptionValues, given: ReadonlySet<string>, saved: PipelineConfig): OptionValues {
  const schedule = (f.schedule as PipelineScheduleName | undefined) ?? saved.schedule;
  const fromSaved: Record<string, OptionValues[string]> = {
    schedule: saved.schedule,
    stages: saved.stages,
    microbatches: saved.microbatches,
    chunks: schedule === "interleaved" && saved.schedule === "interleaved" ? saved.chunks : undefined,
    partition: saved.partition,
    balance: given.has("partition") ? undefined : saved.balance?.map(String), // --partition replaces a saved balance
    executor: saved.executor,
    recompute: saved.recompute,
    "weight-grads": saved.weightGrads,
    workers: saved.workers,
    replicas: saved.replicas,
    tp: saved.tensorParallel,
    // A --tp given anew starts without sequence parallelism unless --sequence-parallel is given too.
    "sequence-parallel": given.has("tp") ? undefined : saved.sequenceParallel,
    ...(schedule === "async" && saved.async ? savedAsyncFlags(saved.async, f, given) : {}),
  };
  const out: Record<string, OptionValues[string]> = { ...f };
  for (const [k, val] of Object.entries(fromSaved)) if (!given.has(k) && val !== undefined) out[k] = val;
  return out;
}

/**
 * Settings of the asynchronous method that go together (a toggle and its constants; gamma and its
 * decay): a flag given for one of them replaces the saved values of its whole group, so a saved
 * constant never contradicts a toggle or constant given on the command line.
 */
const ASYNC_GROUPS: readonly (readonly string[])[] = [
  ["pipemare-lr", "pipemare-anneal-steps"], ["pipemare-correction", "pipemare-decay", "pipemare-gamma"],
  ["weight-prediction", "weight-prediction-mode"],
];

/** The saved AsyncConfig as the flags that reproduce it, minus those a given flag replaces. */
function savedAsyncFlags(c: AsyncConfig, f: OptionValues, given: ReadonlySet<string>): OptionValues {
  const onOff = (b: boolean): string => (b ? "on" : "off");
  const all: Record<string, OptionValues[string]> = {
    method: c.method,
    "warmup-epochs": c.warmupEpochs,
    ...(c.method === "pipemare" ? {
      "pipemare-lr": onOff(c.pipemareLr),
      "pipemare-correction": onOff(c.pipemareCorrection),
      "pipemare-anneal-steps": c.pipemareLr && c.annealSteps !== null ? c.annealSteps : undefined,
      "pipemare-gamma": c.pipemareCorrection && c.gamma !== null ? c.gamma : undefined,
      "pipemare-decay": c.pipemareCorrection && c.gamma === null ? c.decay : undefined,
    } : {}),
    ...(c.method === "pb" ? {
      "spike-compensation": onOff(c.spikeCompensation),
      "weight-prediction": onOff(c.weightPrediction),
      "weight-prediction-mode": c.weightPrediction ? c.predictionMode : undefined,
    } : {}),
  };
  // Another --method starts from that method's defaults (the warm-up is not method-specific).
  const otherMethod = given.has("method") && f.method !== c.method;
  const out: Record<string, OptionValues[string]> = {};
  for (const [k, val] of Object.entries(all)) {
    const replaced = otherMethod ? k !== "warmup-epochs" : ASYNC_GROUPS.some((g) => g.includes(k) && g.some((n) => given.has(n)));
    if (!replaced) out[k] = val;
  }
  return out;
}

/** The pipeline a checkpoint was trained with (`extra.pipeline`), or undefined for a single-device checkpoint. */
export function savedPipelineConfig(path: string, extra: Json | undefined): PipelineConfig | undefined {
  const raw = (extra as { pipeline?: unknown } | undefined)?.pipeline;
  if (raw === undefined || raw === null) return undefined;
  const p = raw as Partial<Record<keyof PipelineConfig, unknown>>;
  const posInt = (x: unknown): boolean => Number.isInteger(x) && (x as number) >= 1;
  const oneOf = (x: unknown, choices: readonly string[]): boolean => typeof x === "string" && choices.includes(x);
  const ok = typeof raw === "object" && !Array.isArray(raw) && oneOf(p.schedule, PIPELINE_SCHEDULES) &&
    posInt(p.stages) && posInt(p.microbatches) && posInt(p.chunks) && oneOf(p.partition, PARTITION_METHODS) &&
    oneOf(p.executor, EXECUTORS) && oneOf(p.recompute, RECOMPUTE_MODES) &&
    (p.weightGrads === undefined || oneOf(p.weightGrads, WEIGHT_GRAD_MODES)) &&
    (p.balance === undefined || (Array.isArray(p.balance) && p.balance.every(posInt))) &&
    (p.workers === undefined || posInt(p.workers)) && (p.replicas === undefined || posInt(p.replicas)) &&
    (p.tensorParallel === undefined || posInt(p.tensorParallel)) && (p.sequenceParallel === undefined || typeof p.sequenceParallel === "boolean") &&
    (p.async === undefined || (typeof p.async === "object" && p.async !== null && !Array.isArray(p.async)));
  if (!ok) {
    throw new ConfigError(`checkpoint ${path}: its saved pipeline configuration ${JSON.stringify(raw)} is not valid; ` +
      `resume it on one device with --schedule ${NO_PIPELINE}`);
  }
  return raw as PipelineConfig;
}

function asyncConfigOf(f: OptionValues): PipelineConfig["async"] {
  try {
    return parseAsyncConfig(f as Parameters<typeof parseAsyncConfig>[0]);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

/** The one line saying that a resumed run takes its pipeline from the checkpoint. */
export function resumeNotice(p: PipelineConfig, scheduleFromCheckpoint: boolean): string {
  const what = `${p.schedule}, ${p.stages} stages${p.chunks > 1 ? ` x ${p.chunks} chunks` : ""}, ${p.microbatches} micro-batches, executor ${p.executor}` +
    `${p.async ? `, method ${p.async.method}` : ""}`;
  return scheduleFromCheckpoint
    ? `resuming as the saved pipeline (${what}); pipeline flags given override it, --schedule ${NO_PIPELINE} resumes on one device`
    : `resuming with --schedule ${p.schedule}; pipeline flags not given take the saved pipeline's values (${what})`;
}
