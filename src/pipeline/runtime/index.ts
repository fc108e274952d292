// The pipeline runtime: executors of the schedule IR.
//
// Entry point for the CLI: `trainPipeline(opts: PipelineTrainOptions)` (src/train/options.ts), i.e.
// the single-device TrainConfig plus `pipeline: {schedule, stages, microbatches, chunks, partition,
// balance?, executor, recompute}` and `quiet`, mapped from `pipewright train` flags:
//   --schedule gpipe|1f1b|interleaved|zb-h1  --stages S  --microbatches M  --chunks v (interleaved)
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
//   PipelineSetup test/bench hooks: `faults` (a unit that throws on a micro-batch; also
//   PIPEWRIGHT_INJECT_FAULT=<unit>:<microbatch> for `pipewright train`) and `syntheticCosts`.
//
// Threads executor: one worker_thread per schedule worker, pairwise MessageChannels; activations are
// copied once into a fresh buffer and transferred (moved without copy when the stage keeps no graph,
// i.e. with recomputation), gradients are transferred. The first error anywhere terminates all
// workers and rejects with "stage S, action 1F3 (worker W): cause". Lists are validated before any
// thread starts, so a list that could deadlock is rejected instead of hanging.
export { trainPipeline, optimizerConfigOf } from "./train-pipeline.js";
export { InlineExecutor } from "./inline.js";
export { ThreadsExecutor } from "./threads.js";
export type { Executor, SplitBatch, StepResult } from "./executor.js";
export {
  WorkerInterpreter, PipelineActionError, messageKey,
  type Payload, type Outbox, type PhysicalStage, type WeightHooks, type PipelineShape, type StageOptimizer,
} from "./interpreter.js";
export {
  buildWorkerStages, checkBalance, createOptimizer, recomputes, shapeOf, unitRanges,
  EXECUTORS, RECOMPUTE_MODES, type ExecutorName, type OptimizerConfig, type PipelineSetup, type RecomputeMode,
} from "./setup.js";
export { measureStageCosts, profileUnitTimes, type StageCosts } from "./profile.js";
export { mergeStates, sliceState, toPlain, fromPlain, type PlainOptimizerState } from "./optimizer-state.js";
