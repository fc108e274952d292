// Training checkpoints as one safetensors file, independent of the nn/optim classes (plain maps + JSON):
//   tensors   model state under its own names ("layers.0.weight"), so PyTorch can load it directly;
//             optimizer buffers as "optim.<key>" (the optimizer's own keys, e.g.
//             "optim.layers.0.weight.exp_avg"); other trainer state as "extra.<key>" (e.g. an asynchronous
//             pipeline's weight-version buffers, "extra.async.pipemare_u.layers.0.weight")
//   metadata  (all values JSON strings)
//     format        "pipewright"          format_version "1"
//     step, epoch   integers (global optimizer steps done; epoch to resume at)
//     model_spec    the model's JSON spec (rebuilds the model here or in scripts/torch_models.py)
//     optimizer     the optimizer state without its tensors (kind, hyper-parameters, per-param steps)
//     extra         anything else the trainer needs to resume exactly (RNG positions, batch index, ...)
// Or in parts, one file per rank of a processes run, made a checkpoint by a manifest at the path that
// carries the same metadata (parts.ts); loadCheckpoint reads both the same way.
import { readSafetensors, readSafetensorsMetadata, writeSafetensors, SafetensorsError, type SafetensorsMetadata } from "./safetensors.js";
import { checkPartName, manifestFields, MANIFEST_FORMAT, readManifestTensors, removeStaleParts, type PartInfo } from "./parts.js";
import { Tensor } from "../tensor/tensor.js";
import { CheckpointError } from "./errors.js";

export { CheckpointError };

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * A snapshot of `value` exactly as the checkpoint's JSON metadata will hold it (undefined fields
 * dropped, non-finite numbers null), typed as Json. A JSON round trip on purpose, not structuredClone:
 * what a later load returns is then what the trainer saw when it saved.
 */
export function toJson(value: unknown): Json {
  return JSON.parse(JSON.stringify(value)) as Json;
}

export const CHECKPOINT_FORMAT = "pipewright";
export const CHECKPOINT_FORMAT_VERSION = "1";
export const OPTIM_PREFIX = "optim.";
/** Prefix of the trainer's own tensors (the tensor side of metadata "extra"). */
export const EXTRA_PREFIX = "extra.";

/**
 * Optimizer state: its tensors plus any other JSON-serialisable fields (an optim `OptimizerState`
 * fits as is: {kind, groups, steps, tensors}).
 */
export interface OptimizerSnapshot {
  tensors: ReadonlyMap<string, Tensor>;
}

export interface CheckpointInput {
  model: ReadonlyMap<string, Tensor>;
  optimizer?: OptimizerSnapshot;
  step: number;
  epoch: number;
  /** The model's plain-JSON spec (stored as metadata "model_spec"). */
  modelSpec?: object;
  extra?: Json;
  /** Tensors of the trainer's own state, stored as "extra.<key>". */
  extraTensors?: ReadonlyMap<string, Tensor>;
}

export interface Checkpoint {
  model: Map<string, Tensor>;
  /** `{...json fields, tensors}`: pass to the optimizer's loadStateDict (cast to its state type). */
  optimizer?: { tensors: Map<string, Tensor>; [key: string]: unknown };
  step: number;
  epoch: number;
  modelSpec?: { [key: string]: Json };
  extra?: Json;
  /** The "extra.*" tensors without the prefix (empty for checkpoints that have none). */
  extraTensors: Map<string, Tensor>;
  /** The raw safetensors metadata. */
  metadata: SafetensorsMetadata;
}

function checkCount(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new CheckpointError(`checkpoint ${what} must be a non-negative integer, got ${v}`);
}

/** The tensors and metadata a checkpoint is stored as (exposed for tests and tools). */
export function checkpointEntries(ck: CheckpointInput): { tensors: [string, Tensor][]; metadata: SafetensorsMetadata } {
  const tensors: [string, Tensor][] = [];
  for (const [name, t] of ck.model) {
    if (name.startsWith(OPTIM_PREFIX)) throw new CheckpointError(`model tensor name "${name}" may not start with "${OPTIM_PREFIX}" (reserved for optimizer state)`);
    if (name.startsWith(EXTRA_PREFIX)) throw new CheckpointError(`model tensor name "${name}" may not start with "${EXTRA_PREFIX}" (reserved for trainer state)`);
    tensors.push([name, t]);
  }
  for (const [key, t] of ck.extraTensors ?? []) tensors.push([EXTRA_PREFIX + key, t]);
  let optimizerJson: Record<string, unknown> | undefined;
  if (ck.optimizer) {
    const { tensors: optTensors, ...json } = ck.optimizer as OptimizerSnapshot & Record<string, unknown>;
    for (const [key, t] of optTensors) tensors.push([OPTIM_PREFIX + key, t]);
    optimizerJson = json;
  }
  return { tensors, metadata: commonMetadata({ ...ck, optimizer: optimizerJson }) };
}

/** The metadata a single file and a manifest share (step, epoch, optimizer JSON, spec, extra). */
function commonMetadata(ck: Omit<ManifestInput, "parts" | "order">): SafetensorsMetadata {
  checkCount("step", ck.step);
  checkCount("epoch", ck.epoch);
  const metadata: SafetensorsMetadata = {
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_FORMAT_VERSION,
    step: JSON.stringify(ck.step),
    epoch: JSON.stringify(ck.epoch),
  };
  if (ck.optimizer) metadata.optimizer = JSON.stringify(ck.optimizer);
  if (ck.modelSpec !== undefined) metadata.model_spec = JSON.stringify(ck.modelSpec);
  if (ck.extra !== undefined) metadata.extra = JSON.stringify(ck.extra);
  return metadata;
}

/**
 * Writes the checkpoint atomically: the previous file at `path` survives any failure. Parts of an
 * earlier checkpoint in parts at `path` are removed afterwards (this file replaced their manifest).
 */
export function saveCheckpoint(path: string, ck: CheckpointInput): void {
  const { tensors, metadata } = checkpointEntries(ck);
  writeSafetensors(path, tensors, metadata);
  removeStaleParts(path, new Set());
}

/** A checkpoint in parts (parts.ts): what its manifest holds besides the part list. */
export interface ManifestInput {
  parts: readonly PartInfo[];
  /** Model tensor names in state-dict order. */
  order: readonly string[];
  step: number;
  epoch: number;
  /** The optimizer state without its tensors (they are "optim.*" tensors of the parts). */
  optimizer?: Record<string, unknown>;
  modelSpec?: object;
  extra?: Json;
}

/**
 * Writes the manifest of a checkpoint in parts at `path`, atomically; call once every part is
 * written (it makes them the checkpoint). Then removes the parts no longer named.
 */
export function saveManifest(path: string, m: ManifestInput): void {
  const model = new Set(m.order);
  for (const p of m.parts) {
    checkPartName(path, p.file);
    for (const n of p.tensors) {
      if (!model.has(n) && !n.startsWith(OPTIM_PREFIX) && !n.startsWith(EXTRA_PREFIX)) {
        throw new CheckpointError(`checkpoint ${path}: part ${p.file} holds "${n}", which is neither in the model order nor "${OPTIM_PREFIX}*"/"${EXTRA_PREFIX}*"`);
      }
    }
  }
  writeSafetensors(path, [], { ...commonMetadata(m), ...manifestFields(m.parts, m.order) });
  removeStaleParts(path, new Set(m.parts.map((p) => p.file)));
}

function parseJsonField(path: string, meta: SafetensorsMetadata, key: string): Json | undefined {
  const raw = meta[key];
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as Json;
  } catch (e) {
    throw new CheckpointError(`checkpoint ${path}: metadata "${key}" is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Reads a single-file checkpoint or a manifest with its parts (merged; every part checked). With
 * `want`, only the stored tensors (names as stored: "layers.0.weight", "optim.layers.0.weight.exp_avg",
 * "extra.…") it accepts, reading only the parts that hold some (an MPI rank resuming its own stages).
 */
export function loadCheckpoint(path: string, want?: (storedName: string) => boolean): Checkpoint {
  const file = readSafetensors(path, want);
  const { metadata } = file;
  if (metadata.format === MANIFEST_FORMAT) {
    const tensors = readManifestTensors(path, metadata, file.tensors.size, want);
    return interpret(path, tensors, { ...metadata, format: CHECKPOINT_FORMAT, format_version: CHECKPOINT_FORMAT_VERSION }, metadata);
  }
  return interpret(path, file.tensors, metadata, metadata);
}

/** A checkpoint's trainer state (metadata "extra"), reading only the file's header. */
export function checkpointExtra(path: string): Json | undefined {
  const metadata = readSafetensorsMetadata(path);
  if (metadata.format !== CHECKPOINT_FORMAT && metadata.format !== MANIFEST_FORMAT) {
    throw new CheckpointError(`checkpoint ${path}: not a pipewright checkpoint (metadata "format" is ${JSON.stringify(metadata.format)}, expected "${CHECKPOINT_FORMAT}")`);
  }
  return parseJsonField(path, metadata, "extra");
}

/** A checkpoint from its tensors and metadata; `raw` is the file's own metadata (kept in `metadata`). */
function interpret(path: string, tensors: Map<string, Tensor>, metadata: SafetensorsMetadata, raw: SafetensorsMetadata): Checkpoint {
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`checkpoint ${path}: not a pipewright checkpoint (metadata "format" is ${JSON.stringify(metadata.format)}, expected "${CHECKPOINT_FORMAT}"); ` +
      `read plain safetensors files with readSafetensors()`);
  }
  if (metadata.format_version !== CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(`checkpoint ${path}: format_version ${JSON.stringify(metadata.format_version)} is not supported (this build reads "${CHECKPOINT_FORMAT_VERSION}")`);
  }
  const count = (key: "step" | "epoch"): number => {
    const v = parseJsonField(path, metadata, key);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new CheckpointError(`checkpoint ${path}: metadata "${key}" must be a non-negative integer, found ${JSON.stringify(metadata[key])}`);
    }
    return v;
  };
  const step = count("step");
  const epoch = count("epoch");
  const model = new Map<string, Tensor>();
  const optTensors = new Map<string, Tensor>();
  const extraTensors = new Map<string, Tensor>();
  for (const [name, t] of tensors) {
    if (name.startsWith(OPTIM_PREFIX)) optTensors.set(name.slice(OPTIM_PREFIX.length), t);
    else if (name.startsWith(EXTRA_PREFIX)) extraTensors.set(name.slice(EXTRA_PREFIX.length), t);
    else model.set(name, t);
  }
  const out: Checkpoint = { model, step, epoch, metadata: raw, extraTensors };
  const optJson = parseJsonField(path, metadata, "optimizer");
  if (optJson !== undefined) {
    if (typeof optJson !== "object" || optJson === null || Array.isArray(optJson)) {
      throw new CheckpointError(`checkpoint ${path}: metadata "optimizer" must be a JSON object`);
    }
    out.optimizer = { ...optJson, tensors: optTensors };
  } else if (optTensors.size > 0) {
    throw new CheckpointError(`checkpoint ${path}: has ${optTensors.size} "${OPTIM_PREFIX}*" tensors but no "optimizer" metadata`);
  }
  const spec = parseJsonField(path, metadata, "model_spec");
  if (spec !== undefined) {
    if (typeof spec !== "object" || spec === null || Array.isArray(spec)) throw new CheckpointError(`checkpoint ${path}: metadata "model_spec" must be a JSON object`);
    out.modelSpec = spec;
  }
  const extra = parseJsonField(path, metadata, "extra");
  if (extra !== undefined) out.extra = extra;
  return out;
}

export { SafetensorsError };
