// Public surface of src/parallel.
//
// - DataParallel / trainDataParallel: R replicas of a whole model on R worker threads (step-level
//   API: create, step(x, y, lrFactor), stateDict, optimizerState, close), run by the pipeline
//   runtime as a one-stage pipeline with R replicas.
// - GradientAllReducer: a flat all-reduce of a set of parameters' gradients (sequence parallelism's
//   replicated LayerNorm gradients).
export {
  DataParallel, DataParallelError, trainDataParallel,
  type DataParallelOptions, type DataParallelStepResult, type TrainDataParallelOptions, type TrainDataParallelResult,
  type ReplicaFault, type ReplicaMetrics,
} from "./data-parallel.js";
export { GradientAllReducer } from "./grad-sync.js";
export { benchDataParallel, DP_BENCH_SPEC, type DataParallelBenchRecord } from "./bench.js";
// Tensor parallelism (Megatron column/row-parallel linears, head-split attention) and sequence
// parallelism, run by runTensorParallel on worker threads; see tensor-parallel.ts.
export {
  ColumnParallelLinear, RowParallelLinear, TensorParallelMLP, TensorParallelAttention, TensorParallelTransformerBlock,
  tensorParallelPlan, loadDenseState, allReduceSequenceParallelGrads,
  type ParallelLinearOptions, type TensorParallelMLPOptions, type TensorParallelAttentionOptions, type TensorParallelBlockOptions,
  type ShardSpecSource,
} from "./tensor-parallel.js";
export { copyToTensorParallel, reduceFromTensorParallel } from "./tp-ops.js";
export {
  gatherFromSequenceParallel, reduceScatterToSequenceParallel, scatterToSequenceParallel, SEQUENCE_AXIS, type GatherOptions,
} from "./sequence-parallel.js";
export { allGatherAlongAxis, reduceScatterAlongAxis, chunkAlongAxis } from "./tp-collectives.js";
export { shardStateDict, gatherStateDict, splitTensor, joinShards, REPLICATE, type ShardSpec, type ShardPlan } from "./tp-shard.js";
export { runTensorParallel, TensorParallelError, type TensorParallelRunOptions, type TpFault, type TpTaskContext } from "./tp-runner.js";
export { checkBlock, benchMlp, buildTensorParallel, type BlockCheckInput, type BlockCheckOutput, type TpBlockKind, type TensorData } from "./tp-tasks.js";
export { benchTensorParallelMlp, type TensorParallelBenchRecord } from "./tp-bench.js";
