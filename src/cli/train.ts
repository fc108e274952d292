// `pipewright train`: flags -> TrainConfig, then the single-device loop (src/train/loop.ts) or, with
// --schedule, the pipeline runtime's trainPipeline (src/train/pipeline.ts).
import { existsSync, readFileSync } from "node:fs";
import { asUsage, command, type CommandSpec, type FlagValues, givenFlags, UsageError } from "./args.js";
import { emit } from "./output.js";
import { MODEL_NAMES, resolveSpec, type ModelName } from "../nn/models/spec.js";
import { lossCurveSvg } from "../report/loss-curve-svg.js";
import { ASYNC_FLAGS } from "../pipeline/weights/config.js";
import { checkpointExtra, type Json } from "../checkpoint/index.js";
import { ProgressBar } from "../train/progress.js";
import { FREEZE_FLAGS, FREEZE_FLAG_NAMES, runFreezeTraining } from "./train-freeze.js";
import { checkpointConfig, trainSingleDevice, type TrainSummary } from "../train/loop.js";
import { parseMetrics, type MetricsRecord } from "../train/metrics.js";
import { rate, type WorkerMemorySummary } from "../train/epoch-report.js";
import {
  EXECUTORS, LR_SCHEDULE_NAMES, MODEL_DEFAULTS, OPTIMIZER_NAMES, PARTITION_METHODS, PIPELINE_SCHEDULES, RECOMPUTE_MODES, SAVE_LAYOUTS, WEIGHT_GRAD_MODES,
  type PipelineConfig, type TrainConfig,
} from "../train/options.js";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import { MODEL_SIZE_FLAGS, modelSpecFromFlags } from "./model-flags.js";
import { GPU_FLAGS, selectBackend } from "./gpu-flags.js";
import {
  checkTensorParallelModel, ConfigError, mergePipelineConfig, mergeTrainConfig, NO_PIPELINE, resumeNotice, savedPipelineConfig,
} from "../train/resume.js";
import { isWriterRank } from "../transport/mpi/env.js";

const SCHEDULE_CHOICES = [...PIPELINE_SCHEDULES, NO_PIPELINE] as const;

const perModel = (pick: (d: (typeof MODEL_DEFAULTS)[ModelName]) => string | number): string =>
  MODEL_NAMES.map((m) => `${m} ${pick(MODEL_DEFAULTS[m])}`).join(", ");

export const trainCommand = {
  name: "train",
  summary: "Train a model on Fashion-MNIST (mlp, cnn, vit) or a text corpus (gpt), on one device or, with " +
    "--schedule, as a pipeline. Shows a progress bar on stderr, evaluates on the test set after every epoch, " +
    "and prints a summary (JSON with --json).",
  flags: {
    model: { type: "string", choices: MODEL_NAMES, help: "model to train (required unless --resume or --model-config names it)" },
    epochs: { type: "int", min: 1, default: 5, help: "epochs to train (total, counting resumed ones)", meta: "N" },
    batch: { type: "int", min: 1, help: `mini-batch size (default per model: ${perModel((d) => d.batch)})`, meta: "B" },
    lr: { type: "number", min: 0, help: `learning rate (default per model: ${perModel((d) => d.lr)})`, meta: "X" },
    optimizer: { type: "string", choices: OPTIMIZER_NAMES, help: `optimizer (default per model: ${perModel((d) => d.optimizer)})` },
    momentum: { type: "number", min: 0, help: "SGD momentum (default 0.9)", meta: "M" },
    "weight-decay": { type: "number", min: 0, help: `weight decay (default per model: ${perModel((d) => d.weightDecay)})`, meta: "W" },
    "clip-grad-norm": { type: "number", min: 0, meta: "X",
      help: "clip the gradients to global L2 norm X before every optimizer step (torch.nn.utils.clip_grad_norm_): the whole model's norm, " +
        "a pipeline's over every stage, tensor-parallel shard and replica sum as on one device; synchronous schedules, not with --freeze. Default: no clipping" },
    "schedule-lr": { type: "string", choices: LR_SCHEDULE_NAMES,
      help: "LR schedule after warm-up: none, step (x0.1 after each third of the run) or cosine (to 0) (default cosine)" },
    warmup: { type: "int", min: 0, help: `linear LR warm-up steps (default per model: ${perModel((d) => d.warmup)})`, meta: "K" },
    seed: { type: "int", default: 0, help: "seed for initialisation and shuffling", meta: "S" },
    save: { type: "string", help: "write a checkpoint (safetensors, atomically) after every epoch", meta: "FILE" },
    "save-layout": { type: "string", choices: SAVE_LAYOUTS, meta: "L",
      help: "--save with --executor processes: one part per MPI rank plus a manifest written last (parts, the default there: no rank gathers the whole model), " +
        "or one file gathered to rank 0 (file, the only layout elsewhere); both load the same way" },
    resume: { type: "string", help: "continue exactly from a checkpoint written by --save; unset flags take the saved run's values", meta: "FILE" },
    metrics: { type: "string", help: "write JSON-lines metrics (step and epoch records) to FILE", meta: "FILE" },
    "log-every": { type: "int", min: 1, default: 1, help: "write a step record every N optimizer steps", meta: "N" },
    data: { type: "string", help: "Fashion-MNIST directory with the four IDX .gz files, or 'slice' for the committed test slice (default /usr/share/datasets/fashion-mnist)", meta: "DIR" },
    limit: { type: "int", min: 1, help: "use only the first N training and N test examples (gpt: N context windows per epoch)", meta: "N" },
    text: { type: "string", help: "gpt: text corpus to train on (default: the committed fixtures/text/corpus.txt)", meta: "FILE" },
    "steps-per-epoch": { type: "int", min: 1, help: "gpt: optimizer steps per epoch (default: one pass over the text, at least 50)", meta: "N" },
    // Model size: the standard sizes unless given; a checkpoint records the sized spec.
    ...MODEL_SIZE_FLAGS,
    ...GPU_FLAGS,
    json: { type: "bool", help: "print the final summary as one JSON object on stdout" },
    svg: { type: "string", help: "draw loss/accuracy curves from the run's metrics into an SVG file", meta: "FILE" },
    quiet: { type: "bool", help: "no progress bar or per-epoch lines on stderr" },
    // Pipeline parallelism: present only with --schedule.
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
    // Asynchronous pipelines: only with --schedule async.
    ...ASYNC_FLAGS,
    trace: { type: "string", meta: "FILE", help: "pipeline: write a Chrome trace (Perfetto, chrome://tracing) of every training step: one process per worker or MPI rank, compute and communication tracks; read it with `pipewright trace report FILE`" },
    workers: { type: "int", min: 1, help: "pipeline: worker threads the stages share, in contiguous blocks (default one per stage)", meta: "W" },
    replicas: { type: "int", min: 1, help: "pipeline, synchronous schedules: data-parallel copies of the pipeline (threads: workers x R threads; processes: MPI ranks = workers x R; inline: R copies in one thread); each takes 1/R of every micro-batch's rows, gradients summed over replicas", meta: "R" },
    tp: { type: "int", min: 1, meta: "T",
      help: "pipeline, gpt/vit, synchronous schedules: tensor-parallel ranks per worker (Megatron column/row linears, T must divide --heads); " +
        "threads: workers x T x R threads; processes: MPI ranks = workers x T x R, tensor ranks neighbours. Default 1" },
    "sequence-parallel": { type: "bool", help: "with --tp 2 or more: split the blocks' LayerNorm and residual regions along the sequence (activations between stages travel split)" },
    // PipeTransformer: adaptive freezing with elastic pipelines (src/pipeline/elastic).
    ...FREEZE_FLAGS,
  },
  examples: [
    "pipewright train --model cnn --epochs 5",
    "pipewright train --model mlp --epochs 5 --save mlp.safetensors --metrics mlp.jsonl --svg mlp.svg",
    "pipewright train --resume mlp.safetensors --epochs 8",
    "pipewright train --model gpt --epochs 3 --text my.txt",
    "pipewright train --model gpt --layers 12 --width 768 --heads 12 --context 256 --schedule 1f1b --stages 4 --microbatches 8",
    "pipewright train --model-config my-vit.json --epochs 2",
    "pipewright train --model cnn --schedule 1f1b --stages 2 --microbatches 4 --executor threads",
    "pipewright train --model gpt --schedule interleaved --chunks 2 --stages 2 --microbatches 4 --tp 2 --sequence-parallel",
    "pipewright train --model mlp --schedule async --stages 4 --method pipemare --warmup-epochs 1",
    "pipewright train --model vit --epochs 4 --freeze --freeze-alpha 1/3 --elastic on --cache on",
  ],
} as const satisfies CommandSpec;
type TrainFlags = FlagValues<typeof trainCommand.flags>;

/** Runs a merge of src/train/resume.ts, reporting its ConfigError as a usage error (exit 2). */
const configUsage = <T>(merge: () => T): T => asUsage(merge, "", (e) => e instanceof ConfigError);

/** Resolves flags into a TrainConfig: explicit flags (sizing flags too), else the resumed run's values, else per-model defaults. */
export function resolveTrainConfig(f: TrainFlags, given: Set<string>, saved?: TrainConfig): TrainConfig {
  const sized = modelSpecFromFlags(f.model ?? saved?.model, f, given,
    f.model === undefined && saved ? "the checkpoint holds" : "--model is");
  return configUsage(() => mergeTrainConfig(f, given, saved, sized));
}

/**
 * The pipeline part of the flags, or null for one device; `saved`: a resumed checkpoint's pipeline
 * (src/train/resume.ts mergePipelineConfig has the rules).
 */
export function resolvePipelineConfig(f: TrainFlags, given: Set<string>, saved?: PipelineConfig): PipelineConfig | null {
  return configUsage(() => mergePipelineConfig(f, given, saved));
}

function formatSummary(s: TrainSummary): string {
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
  lines.push(`throughput   ${s.samples_per_s > 0 ? `${rate(s.samples_per_s)} samples/s` : "- (nothing trained in this run)"}`,
    `elapsed      ${s.elapsed_s.toFixed(1)} s`,
    `memory       peak RSS ${s.peak_rss_mb.toFixed(0)} MB (the whole process)` +
      (s.worker_peak_mb ? `; ${threadPeaks(s.worker_peak_mb, s.worker_memory)}` : ""));
  for (const m of s.worker_memory ?? []) lines.push(workerMemoryLine(m, s.worker_memory!));
  if (s.checkpoint) lines.push(`checkpoint   ${s.checkpoint}`);
  if (s.metrics) lines.push(`metrics      ${s.metrics}`);
  return lines.join("\n");
}

/**
 * The threads' own peaks: one per worker thread, or, where the executor reports fewer entries than
 * there are threads (tensor ranks, replicas), one per pipeline worker, which the label says.
 */
function threadPeaks(peaks: readonly number[], workers: readonly WorkerMemorySummary[] | null): string {
  const each = !workers || peaks.length >= workers.length;
  return `${each ? "per worker thread (its JS heap + tensors)" : "per pipeline worker (the thread of replica 0, tensor rank 0; its JS heap + tensors)"}: ` +
    `${peaks.map((m) => m.toFixed(0)).join(", ")} MB`;
}

/** One worker's tensor-counted memory; tensor rank and replica named only when the run has them. */
function workerMemoryLine(m: WorkerMemorySummary, all: readonly WorkerMemorySummary[]): string {
  const mb = (b: number): string => `${(b / 2 ** 20).toFixed(2)} MB`;
  const where = [`stage${m.stages.length > 1 ? "s" : ""} ${m.stages.join(",")}`,
    ...(all.some((x) => x.tensor > 0) ? [`tensor rank ${m.tensor}`] : []), ...(all.some((x) => x.replica > 0) ? [`replica ${m.replica}`] : [])];
  return `  worker ${m.worker} (${where.join(", ")}): parameters ${mb(m.parameter_bytes)}, gradients ${mb(m.gradient_bytes)}, ` +
    `optimizer ${mb(m.optimizer_bytes)}, peak activations ${mb(m.peak_activation_bytes)}`;
}

export const runTrain = command(trainCommand, async (f, argv) => {
  const given = givenFlags(argv);
  if (f.resume !== undefined && !existsSync(f.resume)) {
    throw new UsageError(`--resume ${f.resume}: no such checkpoint file`);
  }
  const saved = f.resume !== undefined ? checkpointConfig(f.resume) : undefined;
  const savedExtra = f.resume !== undefined ? checkpointExtra(f.resume) : undefined;
  const cfg = resolveTrainConfig(f, given, saved);
  // A PipeTransformer checkpoint continues as a freeze run (its state is in extra.elastic).
  if (f.freeze === true || (savedExtra as { elastic?: unknown } | undefined)?.elastic !== undefined) {
    if (f.trace !== undefined) throw new UsageError(`--trace ${f.trace} does not trace freeze runs yet; --freeze-trace FILE writes their freeze trace`);
    if (cfg.clipGradNorm !== undefined) throw new UsageError(`--clip-grad-norm ${cfg.clipGradNorm} does not apply to freeze runs yet`);
    return runFreezeTraining(f, given, cfg);
  }
  const { pipeline, resumed } = checkedPipeline(f, given, cfg, savedExtra);
  const gpus = selectBackend(f);

  // Under MPI (--executor processes) every rank trains; rank 0 alone prints and writes files.
  const silent = pipeline?.executor === "processes" && !isWriterRank();
  if (silent) cfg.metrics = undefined;
  const quiet = f.quiet === true || silent;
  if (resumed && pipeline && !quiet) process.stderr.write(resumeNotice(pipeline, f.schedule === undefined) + "\n");
  const bar = quiet ? undefined : new ProgressBar(process.stderr);
  const result = pipeline // the pipeline trainer is loaded only for pipeline runs
    ? await (await import("../train/pipeline.js")).trainPipeline({ ...cfg, pipeline, quiet, saveLayout: f["save-layout"], trace: f.trace })
    : await trainSingleDevice(cfg, { progress: bar, log: quiet ? undefined : (m: string): void => (bar ? bar.log(m) : undefined) });
  if (silent) return 0;
  if (f.svg !== undefined) {
    // The metrics file holds earlier segments of a resumed run too; without one, this run's records.
    const records: MetricsRecord[] = cfg.metrics && existsSync(cfg.metrics)
      ? parseMetrics(readFileSync(cfg.metrics, "utf8"), cfg.metrics) : result.records;
    writeFileAtomic(f.svg, lossCurveSvg(records, `pipewright train --model ${cfg.model}`));
  }
  const gpuLine = gpus ? `\ngpus         ${gpus.rule}, map ${gpus.map.join(",")} (worker 0: ${gpus.adapter})` : "";
  emit(f.json, gpus ? { ...result.summary, gpu_map: gpus } : result.summary,
    formatSummary(result.summary) + gpuLine + (f.svg !== undefined ? `\ncurves       ${f.svg}` : ""));
  return 0;
});

/**
 * The pipeline of a run that is not a freeze run (null: one device), checked against the rest of
 * the flags; `resumed` when it continues a pipeline checkpoint's.
 */
function checkedPipeline(f: TrainFlags, given: Set<string>, cfg: TrainConfig, savedExtra: Json | undefined): { pipeline: PipelineConfig | null; resumed: boolean } {
  const strayFreeze = FREEZE_FLAG_NAMES.filter((n) => n !== "freeze" && given.has(n));
  if (strayFreeze.length) throw new UsageError(`${strayFreeze.map((n) => `--${n}`).join(", ")} only apply with --freeze`);
  // A pipeline checkpoint continues as that pipeline unless --schedule says otherwise.
  const saved = f.resume !== undefined && f.schedule !== NO_PIPELINE ? configUsage(() => savedPipelineConfig(f.resume!, savedExtra)) : undefined;
  const pipeline = resolvePipelineConfig(f, given, saved);
  configUsage(() => checkTensorParallelModel(resolveSpec(cfg.spec ?? { name: cfg.model }), pipeline));
  if (cfg.clipGradNorm !== undefined && pipeline?.schedule === "async") {
    throw new UsageError(`--clip-grad-norm needs a synchronous schedule; --schedule async steps each stage on its own`);
  }
  if (f["save-layout"] === "parts" && pipeline?.executor !== "processes") {
    throw new UsageError(`--save-layout parts needs --executor processes (one part per MPI rank); ${pipeline ? `--executor ${pipeline.executor}` : "one device"} saves one file`);
  }
  if (f.trace !== undefined && !pipeline) throw new UsageError(`--trace ${f.trace} traces a pipeline: it needs --schedule (a single-device run has no workers to trace)`);
  return { pipeline, resumed: saved !== undefined };
}
