// The pipeline runtime: executors of the schedule IR.
//
// Entry point for the CLI: `trainPipeline(opts: PipelineTrainOptions)` (src/train/options.ts), i.e.
// the single-device TrainConfig plus `pipeline: {schedule, stages, microbatches, chunks, partition,
// balance?, executor, recompute}` and `quiet`, mapped from `pipewright train` flags:
//   --schedule gpipe|1f1b|interleaved|zb-h1|async  --stages S  --microbatches M  --chunks v (interleaved)
//   --partition uniform|parameters|time | --balance 3,2,3  --executor inline|threads (default threads)
//   --recompute never|always|except-last (default never)
// It partitions (printing the partition), generates the schedule, and trains with the same
// mini-batches, LR schedule, evaluation, metrics and checkpoints as single-device training.
//
// Loss-scaling rule: micro-batch j's loss = sum of its per-target losses / targets in the whole
// mini-batch, so the accumulated gradient equals the single-device gradient of the mini-batch mean.
//
// Lower-level API (tests, benchmarks, future asynchronous methods):
//   new InlineExecutor(model, setup, hooks?)           all workers in this thread, trains `model` in place
//   await ThreadsExecutor.create(setup, initialState)  one worker_thread per worker
//   executor.step({inputs, labels, scale}, lrFactor) -> {loss, correct, count, perMicrobatch, busy}
//   executor.run(batches, lrFactors)   lists spanning several steps (asynchronous schedules)
//   executor.stateDict(), executor.optimizerState(order), executor.close()
//   WorkerInterpreter: runs one worker's action list; WeightHooks: where weight policies plug in
//   (beforeForward/afterForward/beforeBackward/afterBackward/beforeStep/afterStep with the physical
//   stage and micro-batch, e.g. to swap in a stashed weight version and restore it).
//   StepResult.peakActivations: activations held per stage at runtime (equals validateSchedule's).
//   PipelineSetup.instrumentation (test/bench hooks, instrumentation.ts): `faults` (a unit that
//   throws on a micro-batch; also PIPEWRIGHT_INJECT_FAULT=<unit>:<microbatch> for `pipewright
//   train`) and `syntheticCosts`.
//   PipelineSetup.source (model-source.ts): a built-in spec + seed or a user's module export that
//   every worker imports; PipelineSetup.loss (loss-source.ts): "cross-entropy", "mse" or a module
//   export. Targets are Int32Array class ids or Float32 tensors (SplitBatch.labels).
//
// Asynchronous pipelines (issue 4): `--schedule async --method naive|stash|2bw|pipemare|pb` and the
// toggles of src/pipeline/weights' ASYNC_FLAGS. PipelineSetup.async (AsyncSetup, plain JSON: the
// AsyncConfig, the per-stage delays measured from the IR by asyncSetupFor(schedule, cfg, K), T1's
// horizon K) makes every executor build, per stage, the weight policy bound through WeightHooks, the
// T1 factor (WeightHooks.stageLrFactor, multiplied into the list's factor at each STEP) and for pb a
// SpikeCompensatedSGD with D = tau_s; a threads worker rebuilds them from the JSON. Epochs run in
// windows of up to ASYNC_WINDOW steps without flush; an optional synchronous 1F1B warm-up
// (--warmup-epochs K) hands its weights and optimizer state to the asynchronous executor.
// InlineExecutor.asyncRuntime.policies / .stageMemory() expose the policies and per-stage memory.
//
// Threads executor: one worker_thread per schedule worker, pairwise MessageChannels; activations are
// copied once into a fresh buffer and transferred (moved without copy when the stage keeps no graph,
// i.e. with recomputation), gradients are transferred. The first error anywhere terminates all
// workers and rejects with "stage S, action 1F3 (worker W): cause". Lists are validated before any
// thread starts, so a list that could deadlock is rejected instead of hanging.
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
export { measureWorkerCosts, profileUnitTimes, type WorkerCosts } from "./profile.js";
