// Public surface of src/parallel.
//
// (DataParallel runs on the pipeline runtime, so it lives above it: src/api/data-parallel.ts.)
// - GradientAllReducer: a flat all-reduce of a set of parameters' gradients (sequence parallelism's
//   replicated LayerNorm gradients).
export { GradientAllReducer } from "./grad-sync.js";
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
