// Training configuration: what `pipewright train` resolves its flags into, the per-model defaults,
// and the pipeline options the pipeline runtime receives. Plain JSON so it can be stored in a
// checkpoint and handed to worker threads.
import type { ModelName, ModelSpec } from "../nn/models/spec.js";
import type { OptimizerConfig, OptimizerName } from "../optim/factory.js";
import type { AsyncConfig } from "../pipeline/weights/config.js";

export { OPTIMIZER_NAMES, type OptimizerName } from "../optim/factory.js";

export const LR_SCHEDULE_NAMES = ["none", "step", "cosine"] as const;
export type LrScheduleName = (typeof LR_SCHEDULE_NAMES)[number];

/** Per-model defaults for the flags whose best value depends on the model. */
export interface ModelDefaults {
  batch: number;
  lr: number;
  optimizer: OptimizerName;
  /** SGD momentum (ignored by AdamW). */
  momentum: number;
  weightDecay: number;
  scheduleLr: LrScheduleName;
  /** Linear warm-up steps (0 = none), applied before the schedule. */
  warmup: number;
}

/** What `pipewright train` resolves its flags into: the model-dependent defaults plus the rest. */
export interface TrainConfig extends Omit<ModelDefaults, "lr" | "optimizer" | "momentum" | "weightDecay"> {
  /** The optimizer and its hyper-parameters (the one OptimizerConfig of single device, pipelines and workers). */
  optimizer: OptimizerConfig;
  model: ModelName;
  /** Sizes of the model; default: the model's standard spec. */
  spec?: ModelSpec;
  epochs: number;
  seed: number;
  /** Fashion-MNIST directory, or "slice" for the committed slice (image models). */
  data?: string;
  /** Use only the first N training (and test) examples; for gpt, N windows per epoch. */
  limit?: number;
  /** Text corpus for gpt (default: the committed fixtures/text/corpus.txt). */
  text?: string;
  /** gpt only: optimizer steps per epoch (default: one pass over the training text, at least 50). */
  stepsPerEpoch?: number;
  /** Checkpoint to write at the end of every epoch (atomically). */
  save?: string;
  /** Checkpoint to continue from. */
  resume?: string;
  /** JSON-lines metrics file. */
  metrics?: string;
  /** Write a step record to the metrics file every N optimizer steps. */
  logEvery: number;
  /** Clip the gradients to this global L2 norm before every optimizer step (the whole model's, pipelines too). */
  clipGradNorm?: number;
}

// Chosen so that 5 epochs reach the accuracies the documentation reports for the main jobs.
export const MODEL_DEFAULTS: Record<ModelName, ModelDefaults> = {
  mlp: { batch: 128, lr: 0.1, optimizer: "sgd", momentum: 0.9, weightDecay: 0, scheduleLr: "cosine", warmup: 0 },
  cnn: { batch: 64, lr: 0.05, optimizer: "sgd", momentum: 0.9, weightDecay: 0, scheduleLr: "cosine", warmup: 0 },
  vit: { batch: 64, lr: 1e-3, optimizer: "adamw", momentum: 0.9, weightDecay: 0.01, scheduleLr: "cosine", warmup: 100 },
  gpt: { batch: 16, lr: 3e-3, optimizer: "adamw", momentum: 0.9, weightDecay: 0.01, scheduleLr: "cosine", warmup: 20 },
};

// One home each: the pipeline schedules, executors, recomputation modes and partition methods are the runtime's lists.
export { SCHEDULE_NAMES as PIPELINE_SCHEDULES, type ScheduleName as PipelineScheduleName } from "../pipeline/schedule/index.js";
export { EXECUTORS, type ExecutorName } from "../pipeline/runtime/executor.js";
export { RECOMPUTE_MODES, type RecomputeMode } from "../pipeline/runtime/setup.js";
import type { ScheduleName as PipelineScheduleName } from "../pipeline/schedule/index.js";
export { PARTITION_METHODS, type PartitionMethod } from "../pipeline/partition.js";
import type { PartitionMethod } from "../pipeline/partition.js";
import type { ExecutorName } from "../pipeline/runtime/executor.js";
import type { RecomputeMode } from "../pipeline/runtime/setup.js";
import type { WeightGradMode } from "../pipeline/schedule/weight-grads.js";
export { WEIGHT_GRAD_MODES, type WeightGradMode } from "../pipeline/schedule/weight-grads.js";

/** How a run is cut into a pipeline; present only when --schedule is given. */
export interface PipelineConfig {
  schedule: PipelineScheduleName;
  stages: number;
  microbatches: number;
  /** Model chunks per worker (interleaved); 1 otherwise. */
  chunks: number;
  partition: PartitionMethod;
  /** Explicit units per stage (overrides partition), e.g. [3, 2, 3]. */
  balance?: number[];
  executor: ExecutorName;
  recompute: RecomputeMode;
  /** Weight gradients with each micro-batch's backward (default), or once per step (synchronous schedules). */
  weightGrads?: WeightGradMode;
  /** --schedule async: method, corrections, warm-up (from parseAsyncConfig). */
  async?: AsyncConfig;
  /** Worker threads the stages share (contiguous blocks of stages); default one per stage. */
  workers?: number;
  /** Data-parallel copies of the pipeline (threads or processes; workers x replicas of them). */
  replicas?: number;
  /** Tensor-parallel ranks per worker (Megatron layers, T > 1; absent: 1); world = workers x T x replicas. */
  tensorParallel?: number;
  /** With tensorParallel: split the blocks' LayerNorm and residual regions along the sequence. */
  sequenceParallel?: boolean;
}

/**
 * Where a pipeline run's checkpoints go: one file (weights and optimizer state gathered, rank 0
 * writes) or, on processes, one part per rank plus a manifest (src/pipeline/runtime/parted-save.ts).
 */
export const SAVE_LAYOUTS = ["file", "parts"] as const;
export type SaveLayout = (typeof SAVE_LAYOUTS)[number];

/** Everything `trainPipeline` (src/train/pipeline.ts) receives. */
export interface PipelineTrainOptions extends TrainConfig {
  pipeline: PipelineConfig;
  /** Checkpoint layout (default: parts on processes, else one file). Not saved in the checkpoint: each run picks its own. */
  saveLayout?: SaveLayout;
  /** Write a Chrome trace of every training step to this file (src/trace/); not saved in the checkpoint. */
  trace?: string;
  /** Suppress the progress bar. */
  quiet: boolean;
}

/** The OptimizerConfig of flat optimizer settings (the CLI's flags, a model's defaults, an older checkpoint's config). */
export function optimizerConfigOf(cfg: Pick<ModelDefaults, "optimizer" | "lr" | "momentum" | "weightDecay">): OptimizerConfig {
  switch (cfg.optimizer) {
    case "sgd": return { name: "sgd", lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay };
    case "adamw": return { name: "adamw", lr: cfg.lr, weightDecay: cfg.weightDecay };
    default: throw new Error(`unknown optimizer '${String(cfg.optimizer)}'; valid: sgd, adamw`);
  }
}

/**
 * A checkpoint's saved TrainConfig. Checkpoints written before the config held an OptimizerConfig
 * kept its fields flat (optimizer name, lr, momentum, weightDecay): they read as the same config.
 */
export function savedTrainConfig(raw: TrainConfig | (Omit<TrainConfig, "optimizer"> & ModelDefaults)): TrainConfig {
  if (typeof raw.optimizer !== "string") return raw as TrainConfig;
  const { lr: _lr, momentum: _m, weightDecay: _w, ...rest } = raw as Omit<TrainConfig, "optimizer"> & ModelDefaults;
  return { ...rest, optimizer: optimizerConfigOf(raw as ModelDefaults) };
}
