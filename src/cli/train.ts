// `pipewright train`: flags -> TrainConfig, then the single-device loop (src/train/loop.ts) or, with
// --schedule, the pipeline runtime's trainPipeline (src/train/pipeline.ts).
import { existsSync, readFileSync } from "node:fs";
import { helpText, parseFlags, UsageError, type CommandSpec, type FlagValues } from "./args.js";
import { BACKEND_NAMES, setBackend, type BackendName } from "../backend/index.js";
import { MODEL_NAMES, type ModelName } from "../nn/models/spec.js";
import { lossCurveSvg } from "../report/loss-curve-svg.js";
import { ASYNC_FLAGS, parseAsyncConfig, type AsyncConfig } from "../pipeline/weights/config.js";
import { loadCheckpoint, type Json } from "../checkpoint/index.js";
import { ProgressBar } from "../train/progress.js";
import { FREEZE_FLAGS, FREEZE_FLAG_NAMES, runFreezeTraining } from "./train-freeze.js";
import { checkpointConfig, trainSingleDevice, type TrainSummary } from "../train/loop.js";
import { parseMetrics, type MetricsRecord } from "../train/metrics.js";
import {
  EXECUTORS, LR_SCHEDULE_NAMES, MODEL_DEFAULTS, OPTIMIZER_NAMES, PARTITION_METHODS, PIPELINE_SCHEDULES,
  RECOMPUTE_MODES, WEIGHT_GRAD_MODES, type ExecutorName, type LrScheduleName, type OptimizerName, type PartitionMethod, type WeightGradMode,
  type PipelineConfig, type PipelineScheduleName, type RecomputeMode, type TrainConfig,
} from "../train/options.js";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import { isWriterRank } from "../transport/mpi/env.js";

/** `--schedule none`: explicitly one device (also for a checkpoint saved by a pipeline run). */
const NO_PIPELINE = "none";
const SCHEDULE_CHOICES = [...PIPELINE_SCHEDULES, NO_PIPELINE] as const;

const perModel = (pick: (d: (typeof MODEL_DEFAULTS)[ModelName]) => string | number): string =>
  MODEL_NAMES.map((m) => `${m} ${pick(MODEL_DEFAULTS[m])}`).join(", ");

export const trainCommand: CommandSpec = {
  name: "train",
  summary: "Train a model on Fashion-MNIST (mlp, cnn, vit) or a text corpus (gpt), on one device or, with " +
    "--schedule, as a pipeline. Shows a progress bar on stderr, evaluates on the test set after every epoch, " +
    "and prints a summary (JSON with --json).",
  flags: {
    model: { type: "string", choices: MODEL_NAMES, help: "model to train (required unless --resume)" },
    epochs: { type: "int", min: 1, default: 5, help: "epochs to train (total, counting resumed ones)", meta: "N" },
    batch: { type: "int", min: 1, help: `mini-batch size (default per model: ${perModel((d) => d.batch)})`, meta: "B" },
    lr: { type: "number", min: 0, help: `learning rate (default per model: ${perModel((d) => d.lr)})`, meta: "X" },
    optimizer: { type: "string", choices: OPTIMIZER_NAMES, help: `optimizer (default per model: ${perModel((d) => d.optimizer)})` },
    momentum: { type: "number", min: 0, help: "SGD momentum (default 0.9)", meta: "M" },
    "weight-decay": { type: "number", min: 0, help: `weight decay (default per model: ${perModel((d) => d.weightDecay)})`, meta: "W" },
    "schedule-lr": { type: "string", choices: LR_SCHEDULE_NAMES,
      help: "LR schedule after warm-up: none, step (x0.1 after each third of the run) or cosine (to 0) (default cosine)" },
    warmup: { type: "int", min: 0, help: `linear LR warm-up steps (default per model: ${perModel((d) => d.warmup)})`, meta: "K" },
    seed: { type: "int", default: 0, help: "seed for initialisation and shuffling", meta: "S" },
    save: { type: "string", help: "write a checkpoint (safetensors, atomically) after every epoch", meta: "FILE" },
    resume: { type: "string", help: "continue exactly from a checkpoint written by --save; unset flags take the saved run's values", meta: "FILE" },
    metrics: { type: "string", help: "write JSON-lines metrics (step and epoch records) to FILE", meta: "FILE" },
    "log-every": { type: "int", min: 1, default: 1, help: "write a step record every N optimizer steps", meta: "N" },
    data: { type: "string", help: "Fashion-MNIST directory with the four IDX .gz files, or 'slice' for the committed test slice (default /usr/share/datasets/fashion-mnist)", meta: "DIR" },
    limit: { type: "int", min: 1, help: "use only the first N training and N test examples (gpt: N context windows per epoch)", meta: "N" },
    text: { type: "string", help: "gpt: text corpus to train on (default: the committed fixtures/text/corpus.txt)", meta: "FILE" },
    "steps-per-epoch": { type: "int", min: 1, help: "gpt: optimizer steps per epoch (default: one pass over the text, at least 50)", meta: "N" },
    backend: { type: "string", choices: BACKEND_NAMES, help: "kernel backend (default: native, or $PIPEWRIGHT_BACKEND)" },
    json: { type: "bool", help: "print the final summary as one JSON object on stdout" },
    svg: { type: "string", help: "draw loss/accuracy curves from the run's metrics into an SVG file", meta: "FILE" },
    quiet: { type: "bool", help: "no progress bar or per-epoch lines on stderr" },
    // Pipeline parallelism (issue 3): present only with --schedule.
    schedule: { type: "string", choices: SCHEDULE_CHOICES, meta: "NAME",
      help: `train as a pipeline with this schedule: ${PIPELINE_SCHEDULES.join(", ")}; or ${NO_PIPELINE}: one device. ` +
        `Default: one device, or with --resume the checkpoint's saved pipeline (pipeline flags given override its values; ` +
        `--schedule ${NO_PIPELINE} resumes a pipeline checkpoint on one device)` },
    stages: { type: "int", min: 1, help: "pipeline: number of stages (workers)", meta: "S" },
    microbatches: { type: "int", min: 1, help: "pipeline: micro-batches per mini-batch", meta: "M" },
    chunks: { type: "int", min: 1, help: "pipeline: model chunks per worker (interleaved only; default 1)", meta: "V" },
    partition: { type: "string", choices: PARTITION_METHODS, help: "pipeline: how to cut the model into stages (default uniform)" },
    balance: { type: "list", help: "pipeline: explicit units per stage, e.g. 3,2,3 (instead of --partition)", meta: "N,N,..." },
    executor: { type: "string", choices: EXECUTORS, help: "pipeline: run stages in one thread (inline), one worker thread each (default threads), or one MPI rank each (processes: start with `pipewright launch` or mpirun)" },
    recompute: { type: "string", choices: RECOMPUTE_MODES, help: "pipeline: recompute activations in the backward pass (default never)" },
    "weight-grads": { type: "string", choices: WEIGHT_GRAD_MODES,
      help: "pipeline: compute weight gradients with each micro-batch's backward (default microbatch), or once per step " +
        "over the whole mini-batch (step: one product per layer instead of M thin ones, faster for small micro-batches; " +
        "each stage keeps its layers' inputs and output gradients until the step, so 1F1B needs GPipe's activation memory)" },
    // Asynchronous pipelines (issue 4): only with --schedule async.
    ...ASYNC_FLAGS,
    workers: { type: "int", min: 1, help: "pipeline: worker threads the stages share, in contiguous blocks (default one per stage)", meta: "W" },
    replicas: { type: "int", min: 1, help: "pipeline, --executor processes: data-parallel copies of the pipeline (MPI ranks = workers x R); each takes 1/R of every micro-batch's rows, gradients summed over replicas", meta: "R" },
    // PipeTransformer (issue 5): adaptive freezing with elastic pipelines (src/pipeline/elastic).
    ...FREEZE_FLAGS,
  },
  examples: [
    "pipewright train --model cnn --epochs 5",
    "pipewright train --model mlp --epochs 5 --save mlp.safetensors --metrics mlp.jsonl --svg mlp.svg",
    "pipewright train --resume mlp.safetensors --epochs 8",
    "pipewright train --model gpt --epochs 3 --text my.txt",
    "pipewright train --model cnn --schedule 1f1b --stages 2 --microbatches 4 --executor threads",
    "pipewright train --model mlp --schedule async --stages 4 --method pipemare --warmup-epochs 1",
    "pipewright train --model vit --epochs 4 --freeze --freeze-alpha 1/3 --elastic on --cache on",
  ],
};

const PIPELINE_FLAGS = ["stages", "microbatches", "chunks", "partition", "balance", "executor", "recompute", "weight-grads", "workers", "replicas", ...Object.keys(ASYNC_FLAGS)] as const;

/** Names of the flags that appear on the command line (so a resumed run keeps the saved values of the others). */
export function givenFlags(argv: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const a of argv) if (a.startsWith("--")) out.add(a.slice(2).split("=")[0]);
  return out;
}

/** Resolves flags into a TrainConfig: explicit flags, else the resumed run's values, else per-model defaults. */
export function resolveTrainConfig(f: FlagValues, given: Set<string>, saved?: TrainConfig): TrainConfig {
  const model = (f.model as ModelName | undefined) ?? saved?.model;
  if (!model) throw new UsageError(`pipewright train: --model is required; choose one of: ${MODEL_NAMES.join(", ")}`);
  if (saved && f.model !== undefined && saved.model !== model) {
    throw new UsageError(`--model ${model} does not match the checkpoint, which holds a ${saved.model} model`);
  }
  const d = MODEL_DEFAULTS[model];
  const base: TrainConfig = saved ?? { model, epochs: 5, ...d, seed: 0, logEvery: 1 };
  const pick = <K extends keyof TrainConfig>(key: K, flag: string): TrainConfig[K] =>
    (given.has(flag) && f[flag] !== undefined ? f[flag] : base[key]) as TrainConfig[K];
  const optimizer = pick("optimizer", "optimizer") as OptimizerName;
  // Switching optimizer without naming lr/weight decay takes that optimizer's customary values.
  const optDefaults = !saved && optimizer !== d.optimizer
    ? (MODEL_NAMES.map((m) => MODEL_DEFAULTS[m]).find((x) => x.optimizer === optimizer) ?? d) : d;
  const cfg: TrainConfig = {
    model,
    spec: saved?.spec,
    epochs: given.has("epochs") || !saved ? (f.epochs as number) : saved.epochs,
    batch: pick("batch", "batch"),
    lr: given.has("lr") ? (f.lr as number) : saved ? saved.lr : optDefaults.lr,
    optimizer,
    momentum: pick("momentum", "momentum"),
    weightDecay: given.has("weight-decay") ? (f["weight-decay"] as number) : saved ? saved.weightDecay : optDefaults.weightDecay,
    scheduleLr: pick("scheduleLr", "schedule-lr") as LrScheduleName,
    warmup: pick("warmup", "warmup"),
    seed: pick("seed", "seed"),
    data: pick("data", "data"),
    limit: pick("limit", "limit"),
    text: pick("text", "text"),
    stepsPerEpoch: pick("stepsPerEpoch", "steps-per-epoch"),
    save: f.save as string | undefined,
    resume: f.resume as string | undefined,
    metrics: f.metrics as string | undefined,
    logEvery: pick("logEvery", "log-every"),
  };
  if (cfg.model !== "gpt") {
    if (cfg.text !== undefined) throw new UsageError(`--text is for the gpt model; --model ${cfg.model} trains on Fashion-MNIST (see --data)`);
    if (cfg.stepsPerEpoch !== undefined) throw new UsageError(`--steps-per-epoch is for the gpt model; --model ${cfg.model} runs one pass over the data per epoch`);
  } else if (cfg.data !== undefined) {
    throw new UsageError("--data is for the image models; --model gpt trains on a text corpus (see --text)");
  }
  return cfg;
}

/**
 * The pipeline part of the flags, or null for one device; inconsistent combinations are usage errors.
 * `saved` is the pipeline a resumed checkpoint was trained with: pipeline flags not given take its
 * values (without --schedule the run continues as that pipeline); `--schedule none` means one device.
 */
export function resolvePipelineConfig(f: FlagValues, given: Set<string>, saved?: PipelineConfig): PipelineConfig | null {
  const stray = PIPELINE_FLAGS.filter((n) => given.has(n));
  if (f.schedule === NO_PIPELINE) {
    if (stray.length) throw new UsageError(`--schedule ${NO_PIPELINE} trains on one device; ${flagList(stray)} only apply to pipeline training`);
    return null;
  }
  if (f.schedule === undefined && !saved) {
    if (stray.length) {
      throw new UsageError(`${flagList(stray)} only apply to pipeline training; add --schedule ${PIPELINE_SCHEDULES.join("|")}`);
    }
    return null;
  }
  const v = saved ? withSavedPipeline(f, given, saved) : f;
  const schedule = v.schedule as PipelineScheduleName;
  if (v.stages === undefined) throw new UsageError(`--schedule ${schedule} needs --stages S (the number of pipeline stages)`);
  const asyncGiven = Object.keys(ASYNC_FLAGS).filter((n) => given.has(n));
  if (schedule !== "async" && asyncGiven.length) {
    throw new UsageError(`${flagList(asyncGiven)} only apply to --schedule async, not ${schedule}${f.schedule === undefined ? " (the checkpoint's pipeline)" : ""}`);
  }
  // Asynchronous: one micro-batch per optimizer step unless told otherwise (batch size 1: --batch 1).
  if (v.microbatches === undefined && schedule !== "async") throw new UsageError(`--schedule ${schedule} needs --microbatches M (micro-batches per mini-batch)`);
  const chunks = (v.chunks as number | undefined) ?? 1;
  if (chunks > 1 && schedule !== "interleaved") {
    throw new UsageError(`--chunks ${chunks} needs --schedule interleaved; ${schedule}${f.schedule === undefined ? " (the checkpoint's pipeline)" : ""} runs one chunk per stage`);
  }
  let balance: number[] | undefined;
  if (v.balance !== undefined) {
    if (given.has("partition") && given.has("balance")) throw new UsageError("give either --partition or --balance, not both");
    const list = (v.balance as string[]).join(",");
    balance = (v.balance as string[]).map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--balance '${list}': '${s}' is not a positive integer; e.g. --balance 3,2,3`);
      return n;
    });
    if (balance.length !== (v.stages as number) * chunks) {
      throw new UsageError(`--balance ${given.has("balance") ? "" : `${list} (the checkpoint's) `}has ${balance.length} entries but --stages ${String(v.stages)}` +
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
    ...replicasOf(v),
  };
}

/** --replicas R: data parallelism across pipelines, which only the processes executor runs. */
function replicasOf(v: FlagValues): { replicas?: number } {
  const r = v.replicas as number | undefined;
  if (r === undefined || r === 1) return {};
  const executor = (v.executor as string | undefined) ?? "threads";
  if (executor !== "processes") throw new UsageError(`--replicas ${r} needs --executor processes (one MPI rank per worker and replica), not ${executor}`);
  return { replicas: r };
}

const flagList = (names: readonly string[]): string => names.map((n) => `--${n}`).join(", ");

/**
 * The flags with the saved pipeline's values filled in where none was given. Values that belong to
 * one schedule (chunks: interleaved; the asynchronous method) carry over only to that schedule.
 */
function withSavedPipeline(f: FlagValues, given: Set<string>, saved: PipelineConfig): FlagValues {
  const schedule = (f.schedule as PipelineScheduleName | undefined) ?? saved.schedule;
  const fromSaved: FlagValues = {
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
    ...(schedule === "async" && saved.async ? savedAsyncFlags(saved.async, f, given) : {}),
  };
  const out: FlagValues = { ...f };
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
function savedAsyncFlags(c: AsyncConfig, f: FlagValues, given: Set<string>): FlagValues {
  const onOff = (b: boolean): string => (b ? "on" : "off");
  const all: FlagValues = {
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
  const out: FlagValues = {};
  for (const [k, val] of Object.entries(all)) {
    const replaced = otherMethod ? k !== "warmup-epochs" : ASYNC_GROUPS.some((g) => g.includes(k) && g.some((n) => given.has(n)));
    if (!replaced) out[k] = val;
  }
  return out;
}

/** The pipeline a checkpoint was trained with (`extra.pipeline`), or undefined for a single-device checkpoint. */
export function checkpointPipelineConfig(path: string, extra: Json | undefined): PipelineConfig | undefined {
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
    (p.async === undefined || (typeof p.async === "object" && p.async !== null && !Array.isArray(p.async)));
  if (!ok) {
    throw new UsageError(`checkpoint ${path}: its saved pipeline configuration ${JSON.stringify(raw)} is not valid; ` +
      `resume it on one device with --schedule ${NO_PIPELINE}`);
  }
  return raw as PipelineConfig;
}

function asyncConfigOf(f: FlagValues): PipelineConfig["async"] {
  try {
    return parseAsyncConfig(f as Parameters<typeof parseAsyncConfig>[0]);
  } catch (e) {
    throw new UsageError((e as Error).message);
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

export function formatSummary(s: TrainSummary): string {
  const lines = [
    `model        ${s.model} (${s.parameters.toLocaleString("en-US")} parameters, ${s.backend} backend)`,
    `trained      ${s.epochs} epochs, ${s.steps} steps${s.resumed_from ? ` (resumed at epoch ${s.resumed_from.epoch})` : ""}`,
    `train loss   ${s.train_loss === null ? "-" : s.train_loss.toFixed(4)}`,
    `test loss    ${s.test_loss === null ? "-" : s.test_loss.toFixed(4)}`,
  ];
  if (s.test_acc !== null) {
    lines.push(`test acc     ${(s.test_acc * 100).toFixed(2)}%` +
      (s.best_test_acc !== null ? ` (best ${(s.best_test_acc * 100).toFixed(2)}%)` : ""));
  }
  if (s.test_ppl !== null) lines.push(`perplexity   ${s.test_ppl.toFixed(3)}`);
  lines.push(`throughput   ${s.samples_per_s > 0 ? `${s.samples_per_s.toFixed(0)} samples/s` : "- (nothing trained in this run)"}`,
    `elapsed      ${s.elapsed_s.toFixed(1)} s`);
  if (s.checkpoint) lines.push(`checkpoint   ${s.checkpoint}`);
  if (s.metrics) lines.push(`metrics      ${s.metrics}`);
  return lines.join("\n");
}

export async function runTrain(argv: string[]): Promise<number> {
  const f = parseFlags(trainCommand, argv);
  if (f.help) { process.stdout.write(helpText(trainCommand) + "\n"); return 0; }
  const given = givenFlags(argv);
  if (f.resume !== undefined && !existsSync(f.resume as string)) {
    throw new UsageError(`--resume ${String(f.resume)}: no such checkpoint file`);
  }
  const saved = f.resume !== undefined ? checkpointConfig(f.resume as string) : undefined;
  const savedExtra = f.resume !== undefined ? loadCheckpoint(f.resume as string).extra : undefined;
  const cfg = resolveTrainConfig(f, given, saved);
  // A PipeTransformer checkpoint continues as a freeze run (its state is in extra.elastic).
  const freezeCheckpoint = (savedExtra as { elastic?: unknown } | undefined)?.elastic !== undefined;
  if (f.freeze === true || freezeCheckpoint) return runFreezeTraining(f, given, cfg);
  const strayFreeze = FREEZE_FLAG_NAMES.filter((n) => n !== "freeze" && given.has(n));
  if (strayFreeze.length) throw new UsageError(`${strayFreeze.map((n) => `--${n}`).join(", ")} only apply with --freeze`);
  // A pipeline checkpoint continues as that pipeline unless --schedule says otherwise.
  const savedPipeline = f.resume !== undefined && f.schedule !== NO_PIPELINE ? checkpointPipelineConfig(f.resume as string, savedExtra) : undefined;
  const pipeline = resolvePipelineConfig(f, given, savedPipeline);
  if (f.backend !== undefined) setBackend(f.backend as BackendName);

  // Under MPI (--executor processes) every rank trains; rank 0 alone prints and writes files.
  const silent = pipeline?.executor === "processes" && !isWriterRank();
  if (silent) cfg.metrics = undefined;
  const quiet = f.quiet === true || silent;
  if (savedPipeline && pipeline && !quiet) process.stderr.write(resumeNotice(pipeline, f.schedule === undefined) + "\n");
  const bar = quiet ? undefined : new ProgressBar(process.stderr);
  const hooks = { progress: bar, log: quiet ? undefined : (m: string): void => (bar ? bar.log(m) : undefined) };
  const result = pipeline
    ? await (await import("../train/pipeline.js")).trainPipeline({ ...cfg, pipeline, quiet }) // loaded only for pipeline runs
    : await trainSingleDevice(cfg, hooks);

  if (silent) return 0;
  if (f.svg !== undefined) {
    // The metrics file holds earlier segments of a resumed run too; without one, this run's records.
    const records: MetricsRecord[] = cfg.metrics && existsSync(cfg.metrics)
      ? parseMetrics(readFileSync(cfg.metrics, "utf8"), cfg.metrics) : result.records;
    writeFileAtomic(f.svg as string, lossCurveSvg(records, `pipewright train --model ${cfg.model}`));
  }
  if (f.json) process.stdout.write(JSON.stringify(result.summary) + "\n");
  else process.stdout.write(formatSummary(result.summary) + (f.svg !== undefined ? `\ncurves       ${String(f.svg)}` : "") + "\n");
  return 0;
}
