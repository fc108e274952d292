export * from "./atomic-write.js";
export * from "./safetensors.js";
export {
  saveCheckpoint, loadCheckpoint, checkpointExtra, toJson, checkpointEntries, saveManifest, CheckpointError,
  CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, OPTIM_PREFIX, EXTRA_PREFIX,
  type Checkpoint, type CheckpointInput, type OptimizerSnapshot, type Json, type ManifestInput,
} from "./checkpoint.js";
export {
  writePart, newPartName, removeStaleParts, PART_FORMAT, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION,
  type PartInfo, type PartWriteHooks,
} from "./parts.js";
