// The pipeline runtime: executors that run a schedule's action lists (src/pipeline/schedule) on the
// stages of a partitioned model. This module lists the runtime's building blocks in one place (the
// trainers, tests and benchmarks import from the files themselves). It exports:
//   - executors: InlineExecutor (every worker in this thread, training the caller's model in place)
//     and ThreadsExecutor (one worker_thread per schedule worker); both implement Executor
//     (executor.ts: step, run, evaluate, predict, stateDict, optimizerState, asyncState, close).
//     The processes executor (one MPI rank per worker) lives in processes.ts, not re-exported here.
//   - WorkerInterpreter (interpreter.ts): runs one worker's action list; WeightHooks are where the
//     asynchronous weight policies plug in around forward, backward and STEP.
//   - the setup every executor builds its stages from (setup.ts: PipelineSetup, partition ranges,
//     recomputation modes, each stage's optimizer), where the model comes from (model-source.ts: a
//     built-in spec and seed, or a user's module every worker imports) and the loss (loss-source.ts).
//   - asynchronous pipelines (async-weights.ts): AsyncSetup, plain JSON a worker rebuilds, with the
//     per-stage delays measured from the schedule; AsyncRuntime builds each stage's weight policy,
//     learning-rate factor and, for Pipelined Backpropagation, spike-compensated SGD.
//   - test and benchmark hooks (instrumentation.ts: injected faults, synthetic costs), splitting a
//     mini-batch into micro-batches (split.ts) and measured costs (profile.ts: per-unit times for the
//     `time` partition, per-worker action costs for the simulator).
//
// Loss scaling: micro-batch j's loss is the sum of its per-target losses over the number of targets
// in the whole mini-batch, so the accumulated gradient equals the single-device gradient of the
// mini-batch mean.
export {
  AsyncRuntime, asyncSetupFor, createAsyncRuntime, describeStages, plainMemory, type AsyncSetup, type StageMemory,
} from "./async-weights.js";
export { InlineExecutor } from "./inline.js";
export { ThreadsExecutor } from "./threads.js";
export { EXECUTORS, type Executor, type ExecutorName, type SplitBatch, type StepResult } from "./executor.js";
export {
  WorkerInterpreter, PipelineActionError, messageKey,
  type Payload, type Outbox, type PhysicalStage, type WeightHooks, type PipelineShape, type StageOptimizer,
} from "./interpreter.js";
export {
  buildWorkerStages, checkBalance, createStageOptimizer, recomputes, shapeOf, sourceOf, unitRanges,
  RECOMPUTE_MODES, type OptimizerConfig, type PipelineSetup, type RecomputeMode,
} from "./setup.js";
export { loadModelSource, toPipelineModel, UnitList, type JsonValue, type ModelSource, type PipelineModel } from "./model-source.js";
export { builtinLoss, functionLoss, loadLoss, LOSS_NAMES, type LossFunction, type LossName, type LossSpec } from "./loss-source.js";
export { faultHook, syntheticDelay, type FaultSpec, type Instrumentation } from "./instrumentation.js";
export { splitMiniBatch } from "./split.js";
export { measureStageCosts, profileUnitTimes, type StageCosts } from "./profile.js";
