// A pipeline stage built tensor-parallel (PTD-P): the stage's transformer blocks become
// TensorParallelTransformerBlocks over the stage's tensor group; every other unit (embeddings, the
// final LayerNorm, the head, a ViT's patch embedding and token mean) stays replicated: each tensor
// rank runs it whole on the same input and gets the same bits. Parameter names stay the
// single-device ones, so state dicts are gathered on save and sharded on load (tp-shard.ts).
//
// With sequence parallelism a run of consecutive blocks inside one virtual stage works on sequence
// chunks: the first block of the run scatters its (replicated) input, the last all-gathers its output
// with the "split" gradient rule (what follows is replicated, so its gradient is too).
import { gatherFromSequenceParallel, scatterToSequenceParallel } from "./sequence-parallel.js";
import { allReduceSequenceParallelGrads, ColumnParallelLinear, loadDenseState, RowParallelLinear, tensorParallelPlan, TensorParallelTransformerBlock } from "./tensor-parallel.js";
import { specOf, splitTensor, joinShards, type ShardPlan } from "./tp-shard.js";
import type { Linear } from "../nn/linear.js";
import { AbsentUnit } from "../nn/models/absent-unit.js";
import type { Module } from "../nn/module.js";
import { TransformerBlock } from "../nn/transformer.js";
import type { PlainOptimizerState, StateEntry } from "../optim/index.js";
import { Tensor } from "../tensor/tensor.js";
import type { SyncCollectives } from "../transport/types.js";

/** Tensor parallelism of a pipeline run (plain JSON: it travels in the setup). */
export interface TensorParallelSetup {
  /** Ranks per stage, T >= 1. */
  size: number;
  /** Split the LayerNorm and residual regions of the blocks along the sequence. */
  sequenceParallel: boolean;
}

/** A tensor-parallel block that may enter and leave a sequence-parallel run of blocks. */
class StageBlock extends TensorParallelTransformerBlock {
  constructor(dim: number, heads: number, comm: SyncCollectives, opts: { causal: boolean; mlpRatio: number; sequenceParallel: boolean },
    private readonly scatterIn: boolean, private readonly gatherOut: boolean) {
    super(dim, heads, comm, opts);
  }

  override forward(x: Tensor): Tensor {
    const y = super.forward(this.scatterIn ? scatterToSequenceParallel(x, this.comm) : x);
    return this.gatherOut ? gatherFromSequenceParallel(y, this.comm, { backward: "split" }) : y;
  }
}

/**
 * Checks that the model has something to split (built-in transformer blocks, or a user's
 * ColumnParallelLinear / RowParallelLinear layers; a rank's part of it may have none) and that T
 * divides what is split; `flag` names T in the messages.
 */
export function checkTensorParallel(units: readonly Module[], size: number, flag = "--tp"): void {
  if (!Number.isInteger(size) || size < 1) throw new Error(`${flag} ${size} must be a positive integer`);
  if (size === 1) return;
  const blocks = units.filter((u): u is TransformerBlock => u instanceof TransformerBlock);
  const layers = units.flatMap((u) => u.namedModules().map(([, m]) => m))
    .filter((m): m is ColumnParallelLinear | RowParallelLinear => m instanceof ColumnParallelLinear || m instanceof RowParallelLinear);
  // An MPI rank's part of the model (the other ranks' units absent) may hold no block; the whole
  // model was checked where the run was planned, so only what this rank holds is checked here.
  if (blocks.length === 0 && layers.length === 0 && !units.some((u) => u instanceof AbsentUnit)) {
    throw new Error(`${flag} ${size} needs a transformer model (gpt, vit): this model has no transformer blocks to split`);
  }
  for (const b of blocks) {
    if (b.heads % size !== 0) throw new Error(`${flag} ${size} must divide the attention heads ${b.heads}`);
    if (b.dim % size !== 0) throw new Error(`${flag} ${size} must divide the width ${b.dim}`);
  }
  for (const m of layers) {
    const [what, n] = m instanceof ColumnParallelLinear ? ["output", m.outFeatures / m.blocks] : ["input", m.inFeatures];
    if (n % size !== 0) throw new Error(`${flag} ${size} must divide the ${what} features ${n} of a ${m.constructor.name}`);
  }
}

/** Whether `units` hold a user's tensor-parallel layers (a model built from them, not from TransformerBlocks). */
export function hasParallelLayers(units: readonly Module[]): boolean {
  return units.some((u) => u.namedModules().some(([, m]) => m instanceof ColumnParallelLinear || m instanceof RowParallelLinear));
}

/**
 * `units` with the transformer blocks of the virtual stages this rank holds made tensor-parallel
 * over `comm`, each started from the dense block's weights. stageOf[u] is unit u's virtual stage,
 * or -1 where another worker holds it (left as it is, never run here).
 */
export function tensorParallelUnits(units: readonly Module[], stageOf: readonly number[], comm: SyncCollectives,
  sequenceParallel: boolean): Module[] {
  const isBlock = (u: number): boolean => u >= 0 && u < units.length && stageOf[u] >= 0 && units[u] instanceof TransformerBlock;
  const sameRun = (a: number, b: number): boolean => isBlock(b) && stageOf[b] === stageOf[a];
  return units.map((u, i) => {
    if (!isBlock(i)) return u;
    const b = u as TransformerBlock;
    const mlpRatio = (b.mlp.at(0) as Linear).outFeatures / b.dim;
    const tp = new StageBlock(b.dim, b.heads, comm, { causal: b.attn.causal, mlpRatio, sequenceParallel },
      sequenceParallel && !sameRun(i, i - 1), sequenceParallel && !sameRun(i, i + 1));
    loadDenseState(tp, b.stateDict(), comm);
    return tp;
  });
}

/** How the parameters of `units` (unit index, module), named `${name(i)}.*`, are distributed. */
export function unitsPlan(units: readonly (readonly [number, Module])[], name: (i: number) => string): ShardPlan {
  const plan: ShardPlan = {};
  for (const [i, m] of units) for (const [k, s] of Object.entries(tensorParallelPlan(m))) plan[`${name(i)}.${k}`] = s;
  return plan;
}

/** Sums over the tensor group the gradients sequence parallelism leaves partial (a fixed order). */
export function syncSequenceParallelGrads(units: readonly Module[], comm: SyncCollectives): void {
  for (const u of units) if (u instanceof TensorParallelTransformerBlock && u.sequenceParallel) allReduceSequenceParallelGrads(u, comm);
}

/** The parameter an optimizer-state key ("layers.3.weight.m") belongs to. */
const paramOf = (key: string): string => key.slice(0, key.lastIndexOf("."));

/** Rank `rank`'s part of a single-device optimizer state: each slot split like its parameter. */
export function shardOptimizerState(s: PlainOptimizerState, plan: ShardPlan, rank: number, size: number): PlainOptimizerState {
  const tensors = s.tensors.map(([k, d, shape]): StateEntry => {
    const t = splitTensor(new Tensor(d, shape), specOf(plan, paramOf(k)), rank, size, k);
    return [k, t.data, [...t.shape]];
  });
  return { ...s, tensors };
}

/** The single-device optimizer state from every tensor rank's (rank order): the inverse of shardOptimizerState. */
export function gatherOptimizerState(parts: readonly PlainOptimizerState[], plan: ShardPlan): PlainOptimizerState {
  const tensors = parts[0].tensors.map(([k], j): StateEntry => {
    const t = joinShards(parts.map((p) => new Tensor(p.tensors[j][1], p.tensors[j][2])), specOf(plan, paramOf(k)), k);
    return [k, t.data, [...t.shape]];
  });
  return { ...parts[0], tensors };
}
