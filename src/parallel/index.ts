// Public surface of src/parallel.
export {
  DataParallel, DataParallelError, trainDataParallel,
  type DataParallelOptions, type DataParallelStepResult, type TrainDataParallelOptions, type TrainDataParallelResult,
  type ReplicaFault, type ReplicaMetrics,
} from "./data-parallel.js";
export { GradientAllReducer, broadcastBuffersSync } from "./grad-sync.js";
export { shardBatch, type Shard } from "./shard.js";
export { benchDataParallel, DP_BENCH_SPEC, type DataParallelBenchRecord } from "./bench.js";
