// Megatron-style tensor parallelism (Shoeybi et al. 2019) on a group of R ranks, plus its
// sequence-parallel variant (Korthikanti et al. 2022), as nn Modules over blocking collectives.
//
// - ColumnParallelLinear: W [out, in] split by output rows, rank r holds W[r out/R : (r+1) out/R, :]
//   and the matching bias; its input enters through f (identity forward, all-reduce backward) and
//   its output stays split over the last axis.
// - RowParallelLinear: W split by input columns, rank r holds W[:, r in/R : (r+1) in/R]; it takes the
//   split activations and leaves through g (all-reduce forward, identity backward); the bias is whole
//   on every rank and added once, after the reduction.
// - TensorParallelMLP: column -> GELU -> row: one all-reduce in forward (g), one in backward (f).
// - TensorParallelAttention: the fused qkv projection column-parallel by heads (rank r computes q, k
//   and v of heads r H/R .. (r+1) H/R), attention of those heads locally, the output projection
//   row-parallel over the same heads.
// - TensorParallelTransformerBlock: the pre-norm block of src/nn/transformer.ts with both.
// With `sequenceParallel`, f becomes an all-gather along the sequence and g a reduce-scatter
// (sequence-parallel.ts): LayerNorms and residual adds then run on this rank's tokens only, and the
// parameters used there must have their gradients summed over the group after backward
// (allReduceSequenceParallelGrads).
//
// Every module registers its parameters under the single-device module's names ("0.weight",
// "attn.qkv.weight", ...) with shard shapes, and tensorParallelPlan(module) says how each name is
// distributed: shardStateDict / gatherStateDict (tp-shard.ts) move between single-device and
// per-rank state dicts, and loadDenseState starts a TP module from a single-device module's weights.
// Parameters are created as zeros: load them (loadDenseState / loadStateDict) before use.
//
// A size-1 group runs exactly the single-device ops (no collectives), bit for bit.
import { add, causalMask, gelu, linear, matmul, mul, permute, reshape, slice, softmax } from "../autograd/index.js";
import { Module } from "../nn/module.js";
import { LayerNorm } from "../nn/norm.js";
import { Tensor } from "../tensor/tensor.js";
import { fmt } from "../tensor/shape.js";
import type { SyncCollectives } from "../transport/types.js";
import { GradientAllReducer } from "./grad-sync.js";
import { gatherFromSequenceParallel, reduceScatterToSequenceParallel } from "./sequence-parallel.js";
import { copyToTensorParallel, reduceFromTensorParallel } from "./tp-ops.js";
import { shardStateDict, specOf, type ShardPlan } from "./tp-shard.js";

/** A module that knows how its own (local-name) parameters are distributed. */
export interface ShardSpecSource { localShardSpecs(): ShardPlan }

function hasShardSpecs(m: Module): m is Module & ShardSpecSource {
  return typeof (m as Partial<ShardSpecSource>).localShardSpecs === "function";
}

function checkDivisible(what: string, n: number, size: number): void {
  if (!Number.isInteger(n) || n < 1 || n % size !== 0) {
    throw new Error(`${what} ${n} must be a positive multiple of the tensor-parallel size ${size}`);
  }
}

export interface ParallelLinearOptions {
  bias?: boolean;
  /** Input [.., T/R, in] sequence chunks, all-gathered on entry (instead of f). */
  sequenceParallel?: boolean;
}

export class ColumnParallelLinear extends Module implements ShardSpecSource {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly localOut: number;
  readonly sequenceParallel: boolean;
  /** The weight's rows are `blocks` equal blocks (fused q|k|v: 3), each split over the ranks. */
  readonly blocks: number;

  constructor(readonly inFeatures: number, readonly outFeatures: number, readonly comm: SyncCollectives,
    options: ParallelLinearOptions & { blocks?: number } = {}) {
    super();
    this.blocks = options.blocks ?? 1;
    checkDivisible(`ColumnParallelLinear: outFeatures / ${this.blocks} block(s) =`, outFeatures / this.blocks, comm.size);
    checkDivisible("ColumnParallelLinear: inFeatures", inFeatures, 1);
    this.localOut = outFeatures / comm.size;
    this.sequenceParallel = options.sequenceParallel ?? false;
    this.weight = this.registerParameter("weight", Tensor.zeros([this.localOut, inFeatures]));
    this.bias = options.bias ?? true ? this.registerParameter("bias", Tensor.zeros([this.localOut])) : null;
  }

  forward(x: Tensor): Tensor {
    const xin = this.sequenceParallel ? gatherFromSequenceParallel(x, this.comm) : copyToTensorParallel(x, this.comm);
    return linear(xin, this.weight, this.bias);
  }

  localShardSpecs(): ShardPlan {
    const s = { kind: "split", axis: 0, blocks: this.blocks } as const;
    return this.bias ? { weight: s, bias: s } : { weight: s };
  }
}

export class RowParallelLinear extends Module implements ShardSpecSource {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly localIn: number;
  readonly sequenceParallel: boolean;

  constructor(readonly inFeatures: number, readonly outFeatures: number, readonly comm: SyncCollectives, options: ParallelLinearOptions = {}) {
    super();
    checkDivisible("RowParallelLinear: inFeatures", inFeatures, comm.size);
    checkDivisible("RowParallelLinear: outFeatures", outFeatures, 1);
    this.localIn = inFeatures / comm.size;
    this.sequenceParallel = options.sequenceParallel ?? false;
    this.weight = this.registerParameter("weight", Tensor.zeros([outFeatures, this.localIn]));
    this.bias = options.bias ?? true ? this.registerParameter("bias", Tensor.zeros([outFeatures])) : null;
  }

  /** x: [..., in/R] (this rank's part of the features); output [..., out] (sequence chunk with SP). */
  forward(x: Tensor): Tensor {
    if (this.comm.size === 1) return linear(x, this.weight, this.bias);
    const partial = linear(x, this.weight);
    const y = this.sequenceParallel ? reduceScatterToSequenceParallel(partial, this.comm) : reduceFromTensorParallel(partial, this.comm);
    return this.bias ? add(y, this.bias) : y;
  }

  localShardSpecs(): ShardPlan {
    const w = { weight: { kind: "split", axis: 1, blocks: 1 } } as const;
    return this.bias ? { ...w, bias: { kind: "replicate", gradSync: this.sequenceParallel && this.comm.size > 1 } } : w;
  }
}

export interface TensorParallelMLPOptions { sequenceParallel?: boolean }

/** dim -> hidden -> GELU -> dim, named like nn.Sequential([Linear, GELU, Linear]): "0.*", "2.*". */
export class TensorParallelMLP extends Module {
  readonly fc1: ColumnParallelLinear;
  readonly fc2: RowParallelLinear;

  constructor(readonly dim: number, readonly hidden: number, readonly comm: SyncCollectives, options: TensorParallelMLPOptions = {}) {
    super();
    const sp = options.sequenceParallel ?? false;
    this.fc1 = this.registerModule("0", new ColumnParallelLinear(dim, hidden, comm, { sequenceParallel: sp }));
    this.fc2 = this.registerModule("2", new RowParallelLinear(hidden, dim, comm, { sequenceParallel: sp }));
  }

  forward(x: Tensor): Tensor { return this.fc2.forward(gelu(this.fc1.forward(x))); }
}

export interface TensorParallelAttentionOptions { causal?: boolean; sequenceParallel?: boolean }

/** MultiHeadAttention (src/nn/attention.ts) with heads split over the ranks; same parameter names. */
export class TensorParallelAttention extends Module {
  readonly qkv: ColumnParallelLinear;
  readonly proj: RowParallelLinear;
  readonly headDim: number;
  readonly localHeads: number;
  readonly causal: boolean;

  constructor(readonly dim: number, readonly heads: number, readonly comm: SyncCollectives, options: TensorParallelAttentionOptions = {}) {
    super();
    checkDivisible("TensorParallelAttention: heads", heads, comm.size);
    if (!Number.isInteger(dim) || dim < 1 || dim % heads !== 0) throw new Error(`TensorParallelAttention: dim ${dim} must be a positive multiple of heads ${heads}`);
    this.headDim = dim / heads;
    this.localHeads = heads / comm.size;
    this.causal = options.causal ?? false;
    const sp = options.sequenceParallel ?? false;
    this.qkv = this.registerModule("qkv", new ColumnParallelLinear(dim, 3 * dim, comm, { blocks: 3, sequenceParallel: sp }));
    this.proj = this.registerModule("proj", new RowParallelLinear(dim, dim, comm, { sequenceParallel: sp }));
  }

  /** x [B, T, D] ([B, T/R, D] chunks with sequence parallelism) -> same shape. */
  forward(x: Tensor): Tensor {
    if (x.rank !== 3 || x.shape[2] !== this.dim) {
      throw new Error(`TensorParallelAttention(dim ${this.dim}): input ${fmt(x.shape)} must be [B, T, ${this.dim}]`);
    }
    const h = this.qkv.forward(x); // [B, T, 3 D/R], all tokens
    const [b, t] = h.shape;
    const lh = this.localHeads, dh = this.headDim;
    const qkv = permute(reshape(h, [b, t, 3, lh, dh]), [2, 0, 3, 1, 4]);
    const part = (i: number): Tensor => reshape(slice(qkv, 0, i, i + 1), [b, lh, t, dh]);
    const q = part(0), k = part(1), v = part(2);
    let scores = mul(matmul(q, k, { transB: true }), 1 / Math.sqrt(dh));
    if (this.causal) scores = causalMask(scores);
    const ctx = matmul(softmax(scores, -1), v); // [B, H/R, T, dh]
    return this.proj.forward(reshape(permute(ctx, [0, 2, 1, 3]), [b, t, lh * dh]));
  }
}

export interface TensorParallelBlockOptions { causal?: boolean; mlpRatio?: number; sequenceParallel?: boolean }

/** TransformerBlock (pre-norm) with tensor-parallel attention and MLP; same parameter names. */
export class TensorParallelTransformerBlock extends Module implements ShardSpecSource {
  readonly ln1: LayerNorm;
  readonly attn: TensorParallelAttention;
  readonly ln2: LayerNorm;
  readonly mlp: TensorParallelMLP;
  readonly sequenceParallel: boolean;

  constructor(readonly dim: number, readonly heads: number, readonly comm: SyncCollectives, options: TensorParallelBlockOptions = {}) {
    super();
    const sp = options.sequenceParallel ?? false;
    this.sequenceParallel = sp;
    this.ln1 = this.registerModule("ln1", new LayerNorm(dim));
    this.attn = this.registerModule("attn", new TensorParallelAttention(dim, heads, comm, { causal: options.causal, sequenceParallel: sp }));
    this.ln2 = this.registerModule("ln2", new LayerNorm(dim));
    this.mlp = this.registerModule("mlp", new TensorParallelMLP(dim, dim * (options.mlpRatio ?? 4), comm, { sequenceParallel: sp }));
  }

  /** x [B, T, D] replicated on every rank, or with sequence parallelism this rank's [B, T/R, D] chunk. */
  forward(x: Tensor): Tensor {
    const h = add(x, this.attn.forward(this.ln1.forward(x)));
    return add(h, this.mlp.forward(this.ln2.forward(h)));
  }

  localShardSpecs(): ShardPlan {
    // LayerNorms run on sequence chunks under SP: their gradients are partial per rank.
    const gradSync = this.sequenceParallel && this.comm.size > 1;
    const r = { kind: "replicate", gradSync } as const;
    return { "ln1.weight": r, "ln1.bias": r, "ln2.weight": r, "ln2.bias": r };
  }
}

/** How every parameter of `root` (any module tree containing tensor-parallel modules) is distributed. */
export function tensorParallelPlan(root: Module): ShardPlan {
  const plan: ShardPlan = {};
  for (const [prefix, m] of root.namedModules()) {
    if (!hasShardSpecs(m)) continue;
    for (const [k, s] of Object.entries(m.localShardSpecs())) plan[prefix ? `${prefix}.${k}` : k] = s;
  }
  return plan;
}

/** Loads this rank's shards of a single-device state dict (same names) into a tensor-parallel module. */
export function loadDenseState(module: Module, dense: ReadonlyMap<string, Tensor>, comm: { rank: number; size: number }): void {
  module.loadStateDict(shardStateDict(dense, tensorParallelPlan(module), comm.rank, comm.size));
}

const reducers = new WeakMap<Module, GradientAllReducer>();

/**
 * Sums over the group the gradients of the parameters that sequence parallelism leaves partial
 * (gradSync in the plan: LayerNorms and row-parallel biases inside SP regions). Call on every rank
 * after backward, before the optimizer step (blocking collective; nothing to do without SP).
 */
export function allReduceSequenceParallelGrads(root: Module, comm: SyncCollectives): void {
  let r = reducers.get(root);
  if (!r) {
    const plan = tensorParallelPlan(root);
    const partial = root.namedParameters().filter(([k]) => { const s = specOf(plan, k); return s.kind === "replicate" && s.gradSync; });
    r = new GradientAllReducer(partial, comm);
    reducers.set(root, r);
  }
  if (r.size > 0) r.allReduceSync("sum");
}
