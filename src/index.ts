/**
 * pipewright: pipeline-parallel training in TypeScript. The public surface is what this module
 * exports (listed in the README's "Library" section); everything else is internal.
 *
 * @packageDocumentation
 */
// Tensors and autograd
export { Tensor, Rng, type Shape } from "./tensor/index.js";
export { noGrad, enableGrad, backward, isGradEnabled } from "./autograd/engine.js";
/** Differentiable ops (matmul, add, relu, softmax, reshape, ...) for users' own Modules. */
export * as ops from "./autograd/index.js";
export { getBackend, setBackend, type BackendName } from "./backend/index.js";

// Layers and models
export * as nn from "./nn/index.js";
export {
  Module, Sequential, Linear, Conv1d, Conv2d, MaxPool2d, AvgPool2d, ReLU, GELU, Tanh, Flatten, LayerNorm, GroupNorm, BatchNorm2d,
  Embedding, Dropout, MultiHeadAttention, TransformerBlock, createModel, Model, type ModelSpec,
} from "./nn/index.js";

// Losses
export { crossEntropyLoss } from "./nn/loss.js";
export { mseLoss } from "./autograd/ops/loss.js";
export { LOSS_NAMES, crossEntropyMean, type LossName, type LossFunction, type LossSpec } from "./pipeline/runtime/loss-source.js";

// Optimizers and learning-rate schedules
export * as optim from "./optim/index.js";
export {
  SGD, AdamW, createOptimizer, clipGradNorm, OPTIMIZER_NAMES, constantLr, stepLr, cosineLr, linearWarmup, productLr,
  type OptimizerConfig, type OptimizerName, type LrSchedule,
} from "./optim/index.js";

// Data: loaders, micro-batches, the user's own arrays
export {
  DataLoader, arrayDataset, arrayBatches, splitBatch, splitTensor, splitLabels, mergeTensors, mergeLabels, microbatchSizes,
  loadFashionMnist, loadTextCorpus, textCorpusFromBytes, encodeText, decodeBytes, sampleWindows, TextBatcher,
  type TensorDataset, type DataLoaderOptions, type Batch, type ArrayDataset, type ArrayBatch, type ArrayBatchOptions, type Microbatch,
} from "./data/index.js";

// Pipelines
export { createPipeline, type Pipe, FreezingPipe, type FreezeOption, type FreezingPipeOptions, type MiniBatch, type PipelineOptions, type ModelOption, type ModuleModel, type ModelFactory, type BuiltinModel, type LossOption, type AsyncOptions } from "./api/index.js";
export { SCHEDULE_NAMES, type ScheduleName, WEIGHT_GRAD_MODES, type WeightGradMode } from "./pipeline/schedule/index.js";
export { EXECUTORS, type ExecutorName, type StepResult } from "./pipeline/runtime/executor.js";
export { RECOMPUTE_MODES, type RecomputeMode } from "./pipeline/runtime/setup.js";
export { loadModelSource, type ModelSource, type PipelineModel, type JsonValue } from "./pipeline/runtime/model-source.js";
export { ASYNC_METHODS, type AsyncMethod } from "./pipeline/weights/config.js";
/** Under MPI (executor "processes"): rank 0, or any process outside MPI, is the one that prints and writes. */
export { isWriterRank } from "./transport/mpi/env.js";

// Checkpoints
export { saveCheckpoint, loadCheckpoint, readSafetensors, writeSafetensors, type Checkpoint } from "./checkpoint/index.js";

// Types the exported signatures mention (for typings and the API reference)
export type { GradFn, RowwiseGrad } from "./tensor/index.js";
export type { Backend } from "./backend/index.js";
export type { Target, MicrobatchMetrics } from "./pipeline/stage.js";
export type { Schedule, Action } from "./pipeline/schedule/action.js";
export type { TextCorpus, TextCorpusOptions, TextBatch, FashionMnist, FashionMnistOptions } from "./data/index.js";
export type { CheckpointInput, Json, SafetensorsMetadata, SafetensorsContents, NamedTensors } from "./checkpoint/index.js";
