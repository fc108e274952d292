// Splitting a single-device state dict into tensor-parallel shards by name, and joining shards back,
// so a tensor-parallel run starts from exactly the weights of a single-device model and its
// parameters (or gradients) can be compared with / saved as the single-device ones.
//
// A ShardPlan maps a state-dict name to how that tensor is distributed over R ranks:
// - {kind: "split", axis, blocks}: the tensor is `blocks` equal blocks along `axis`, each block cut
//   into R equal contiguous parts; rank r holds part r of every block, blocks kept in order. A
//   column-parallel weight [out, in] is {axis: 0, blocks: 1}, a row-parallel one {axis: 1}; the
//   fused attention projection [3D, D] (rows q | k | v) is {axis: 0, blocks: 3}, so rank r holds the
//   q, k and v rows of its heads.
// - {kind: "replicate", gradSync}: every rank holds the whole tensor. gradSync = true marks a
//   parameter used on sequence-parallel chunks, whose gradient each rank only holds in part.
// Names the plan does not list are replicated (gradSync false). Plans are plain JSON.
import { Tensor } from "../tensor/tensor.js";
import { fmt } from "../tensor/shape.js";
import { axisLayout, withAxis } from "./tp-collectives.js";

export type ShardSpec =
  | { kind: "split"; axis: number; blocks: number }
  | { kind: "replicate"; gradSync: boolean };

export type ShardPlan = Record<string, ShardSpec>;

export const REPLICATE: ShardSpec = Object.freeze({ kind: "replicate", gradSync: false });

export function specOf(plan: ShardPlan, name: string): ShardSpec {
  return Object.prototype.hasOwnProperty.call(plan, name) ? plan[name] : REPLICATE;
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1) throw new Error(`tensor-parallel size must be a positive integer, got ${size}`);
}

/** Rank `rank`'s shard of `t` under `spec` (a copy). */
export function splitTensor(t: Tensor, spec: ShardSpec, rank: number, size: number, name = "tensor"): Tensor {
  checkSize(size);
  if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw new Error(`rank ${rank} is not in a tensor-parallel group of ${size}; valid: 0..${size - 1}`);
  if (spec.kind === "replicate") return t.clone();
  const { outer, len, inner } = axisLayout(t.shape, spec.axis);
  if (!Number.isInteger(spec.blocks) || spec.blocks < 1 || len % (spec.blocks * size) !== 0) {
    throw new Error(`cannot shard ${name} ${fmt(t.shape)} over ${size} ranks: axis ${spec.axis} (${len}) must be a multiple of ${spec.blocks} block(s) x ${size} ranks`);
  }
  const block = len / spec.blocks, part = block / size;
  const localLen = part * spec.blocks;
  const out = new Float32Array(outer * localLen * inner);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < spec.blocks; k++) {
      const src = (o * len + k * block + rank * part) * inner;
      out.set(t.data.subarray(src, src + part * inner), (o * localLen + k * part) * inner);
    }
  }
  return new Tensor(out, withAxis(t.shape, spec.axis, localLen));
}

/** The whole tensor from the shards of every rank (rank order): the inverse of splitTensor. */
export function joinShards(parts: readonly Tensor[], spec: ShardSpec, name = "tensor"): Tensor {
  if (parts.length === 0) throw new Error(`joinShards(${name}): no shards`);
  const size = parts.length;
  for (const p of parts) {
    if (p.shape.length !== parts[0].shape.length || p.shape.some((d, i) => d !== parts[0].shape[i])) {
      throw new Error(`joinShards(${name}): shards disagree on shape: ${fmt(parts[0].shape)} vs ${fmt(p.shape)}`);
    }
  }
  if (spec.kind === "replicate") return parts[0].clone();
  const { outer, len: localLen, inner } = axisLayout(parts[0].shape, spec.axis);
  if (localLen % spec.blocks !== 0) throw new Error(`joinShards(${name}): shard axis ${spec.axis} (${localLen}) is not a multiple of ${spec.blocks} block(s)`);
  const part = localLen / spec.blocks, block = part * size, len = block * spec.blocks;
  const out = new Float32Array(outer * len * inner);
  parts.forEach((p, r) => {
    for (let o = 0; o < outer; o++) {
      for (let k = 0; k < spec.blocks; k++) {
        const src = (o * localLen + k * part) * inner;
        out.set(p.data.subarray(src, src + part * inner), (o * len + k * block + r * part) * inner);
      }
    }
  });
  return new Tensor(out, withAxis(parts[0].shape, spec.axis, len));
}

/** Rank `rank`'s state dict: every entry of `full` split (or copied) by its spec in `plan`. */
export function shardStateDict(full: ReadonlyMap<string, Tensor>, plan: ShardPlan, rank: number, size: number): Map<string, Tensor> {
  const unknown = Object.keys(plan).filter((k) => !full.has(k));
  if (unknown.length) throw new Error(`shardStateDict: the plan names tensors the state dict lacks: ${unknown.join(", ")}`);
  const out = new Map<string, Tensor>();
  for (const [k, t] of full) out.set(k, splitTensor(t, specOf(plan, k), rank, size, k));
  return out;
}

/**
 * The single-device state dict from every rank's (rank order): split entries are joined, replicated
 * ones taken from rank 0. Works for gradients too (a map of name -> grad).
 */
export function gatherStateDict(shards: readonly ReadonlyMap<string, Tensor>[], plan: ShardPlan): Map<string, Tensor> {
  if (shards.length === 0) throw new Error("gatherStateDict: no shards");
  const names = [...shards[0].keys()];
  shards.forEach((s, r) => {
    const missing = names.filter((k) => !s.has(k));
    const extra = [...s.keys()].filter((k) => !shards[0].has(k));
    if (missing.length || extra.length) {
      throw new Error(`gatherStateDict: rank ${r} disagrees with rank 0 on names (missing: ${missing.join(", ") || "none"}; extra: ${extra.join(", ") || "none"})`);
    }
  });
  const out = new Map<string, Tensor>();
  for (const k of names) out.set(k, joinShards(shards.map((s) => s.get(k)!), specOf(plan, k), k));
  return out;
}
