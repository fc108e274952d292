export * from "./atomic-write.js";
export * from "./safetensors.js";
export {
  saveCheckpoint, loadCheckpoint, checkpointEntries, CheckpointError,
  CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, OPTIM_PREFIX, EXTRA_PREFIX,
  type Checkpoint, type CheckpointInput, type OptimizerSnapshot, type Json,
} from "./checkpoint.js";
