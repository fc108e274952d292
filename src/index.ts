/**
 * pipewright: pipeline-parallel training in TypeScript. The public surface is what this module
 * exports (listed in docs/library.md); the subpaths `pipewright/nn`, `pipewright/optim`,
 * `pipewright/data` and `pipewright/schedule` hold the rest a user may reach for.
 *
 * @packageDocumentation
 */
// Tensors and autograd
export { Tensor, Rng, type Shape } from "./tensor/index.js";
export { noGrad, backward } from "./autograd/engine.js";
/** Differentiable ops (matmul, add, relu, softmax, reshape, ...) for users' own Modules. */
export * as ops from "./autograd/index.js";
export { getBackend, setBackend, type BackendName } from "./backend/index.js";

// Model-building blocks
export {
  Module, Sequential, Linear, Conv1d, Conv2d, MaxPool2d, AvgPool2d, ReLU, GELU, Tanh, Flatten, LayerNorm, GroupNorm, BatchNorm2d,
  Embedding, Dropout, MultiHeadAttention, TransformerBlock, createModel, Model, type ModelSpec,
  type Conv1dOptions, type Conv2dOptions, type Size2d, type AttentionOptions, type TransformerBlockOptions,
} from "./nn/index.js";
// Megatron's tensor-parallel layers, for a model factory's own blocks (ModelContext.tensor)
export { ColumnParallelLinear, RowParallelLinear, type ParallelLinearOptions, type ShardSpecSource } from "./parallel/tensor-parallel.js";
export type { ShardPlan, ShardSpec } from "./parallel/tp-shard.js";
export { REDUCE_OPS, type SyncCollectives, type Collectives, type ReduceOp } from "./transport/types.js";

// Losses
export { crossEntropyLoss } from "./nn/loss.js";
export { mseLoss } from "./autograd/ops/loss.js";
export { LOSS_NAMES, type LossName, type LossFunction, type LossSpec } from "./pipeline/runtime/loss-source.js";

// Optimizers and learning-rate schedules
export {
  SGD, AdamW, createOptimizer, clipGradNorm, constantLr, stepLr, cosineLr, linearWarmup, productLr, OPTIMIZER_NAMES,
  type OptimizerConfig, type OptimizerName, type LrSchedule, type SgdOptions, type AdamWOptions, type OptimizerState,
  type ParamGroup, type ParamGroupInput, type ParamsInput, type NamedParams,
} from "./optim/index.js";

// Data: the user's own arrays, the bundled data sets
export {
  DataLoader, arrayDataset, arrayBatches, loadFashionMnist, loadTextCorpus, TextBatcher, encodeText, decodeBytes,
  type TensorDataset, type DataLoaderOptions, type Batch, type ArrayDataset, type ArrayBatch, type ArrayBatchOptions,
} from "./data/index.js";

// Pipelines
export {
  createPipeline, type Pipe, FreezingPipe, type FreezeOption, type FreezingPipeOptions, type MiniBatch, type PipelineOptions,
  type ModelOption, type ModuleModel, type ModelFactory, type ModelContext, type FactoryExport, type BuiltinModel, type LossOption, type AsyncOptions,
} from "./api/index.js";
export { SCHEDULE_NAMES, type ScheduleName, WEIGHT_GRAD_MODES, type WeightGradMode } from "./pipeline/schedule/index.js";
export { EXECUTORS, type ExecutorName, type StepResult, type ReplicaStep } from "./pipeline/runtime/executor.js";
export type { WorkerMemory } from "./pipeline/runtime/memory.js";
export { RECOMPUTE_MODES, type RecomputeMode } from "./pipeline/runtime/setup.js";
export type { JsonValue } from "./pipeline/runtime/model-source.js";
export type { AsyncMethod } from "./pipeline/weights/config.js";
/** Under MPI (executor "processes"): rank 0, or any process outside MPI, is the one that prints and writes. */
export { isWriterRank } from "./transport/mpi/env.js";

// Checkpoints
export { saveCheckpoint, loadCheckpoint, type Checkpoint } from "./checkpoint/index.js";

// Types the exported signatures mention (for typings and the API reference)
export type { GradFn, RowwiseGrad } from "./tensor/index.js";
export type { MlpSpec, CnnSpec, VitSpec, GptSpec, ResolvedSpec, ModelName } from "./nn/models/spec.js";
export type { Backend } from "./backend/index.js";
export type { Target, MicrobatchMetrics } from "./pipeline/stage.js";
export type { Schedule, Action } from "./pipeline/schedule/action.js";
export type { TextCorpus, TextCorpusOptions, TextBatch, FashionMnist, FashionMnistOptions } from "./data/index.js";
export type { CheckpointInput, Json, SafetensorsMetadata } from "./checkpoint/index.js";
