// Sequence parallelism (Megatron-3, Korthikanti et al. 2022): outside the tensor-parallel regions
// (LayerNorm, dropout, residual adds) every rank holds only its chunk of the tokens, so those
// activations are not replicated R times. At the boundaries Megatron's f / g pair becomes:
//   entering a TP region: all-gather along the sequence (forward), reduce-scatter (backward)
//   leaving a TP region:  reduce-scatter along the sequence (forward), all-gather (backward)
// plus the two edge operators of a sequence-parallel model:
//   scatterToSequenceParallel: a replicated tensor -> this rank's chunk; backward all-gathers
//   gatherFromSequenceParallel(..., {backward: "split"}): chunks -> the replicated whole whose
//     gradient is replicated too (a loss computed identically on every rank); backward keeps the chunk
//
// The sequence axis defaults to -2, the token axis of [B, T, D] and [T, D] activations. Chunks are
// equal and contiguous, rank r owning tokens [r T/R, (r+1) T/R); T must be a multiple of R.
//
// Parameters used inside a sequence-parallel region (LayerNorm weight and bias, the row-parallel
// bias added after the reduce-scatter) see only this rank's tokens: their gradients are partial and
// must be summed over the group after backward (TensorParallelModule.allReduceSequenceParallelGrads).
import { record } from "../autograd/engine.js";
import { Tensor } from "../tensor/tensor.js";
import { fmt, type Shape } from "../tensor/shape.js";
import type { SyncCollectives } from "../transport/types.js";
import { allGatherAlongAxis, axisLayout, chunkAlongAxis, reduceScatterAlongAxis, withAxis } from "./tp-collectives.js";

/** The default sequence axis: tokens of [B, T, D] / [T, D]. */
export const SEQUENCE_AXIS = -2;

function checkSeq(x: Tensor, axis: number, what: string): void {
  if (x.rank < 2) throw new Error(`${what}: input ${fmt(x.shape)} must have a sequence axis and a feature axis ([..., T, D])`);
  axisLayout(x.shape, axis); // validates the axis
}

function gathered(shape: Shape, axis: number, size: number): number[] {
  return withAxis(shape, axis, axisLayout(shape, axis).len * size);
}

export interface GatherOptions {
  /**
   * Gradient rule: "reduce-scatter" (default) when the gathered tensor feeds a tensor-parallel
   * region (each rank's gradient is partial); "split" when every rank computes the same function of
   * it (the gradient is replicated: keep this rank's chunk).
   */
  backward?: "reduce-scatter" | "split";
}

/** All-gather of the ranks' sequence chunks (rank order) along `axis`. */
export function gatherFromSequenceParallel(x: Tensor, comm: SyncCollectives, options: GatherOptions & { axis?: number } = {}): Tensor {
  const axis = options.axis ?? SEQUENCE_AXIS;
  const mode = options.backward ?? "reduce-scatter";
  if (mode !== "reduce-scatter" && mode !== "split") throw new Error(`gatherFromSequenceParallel: backward '${String(mode)}' is not one of reduce-scatter, split`);
  checkSeq(x, axis, "gatherFromSequenceParallel");
  if (comm.size === 1) return x;
  const outShape = gathered(x.shape, axis, comm.size);
  const out = new Tensor(allGatherAlongAxis(comm, x.data, x.shape, axis), outShape);
  return record(out, "sp_all_gather", [x], (g, needs) => {
    if (!needs[0]) return [null];
    return [mode === "split" ? chunkAlongAxis(g, outShape, axis, comm.rank, comm.size) : reduceScatterAlongAxis(comm, g, outShape, axis)];
  });
}

/** Reduce-scatter along `axis`: this rank's chunk of the rank-ordered sum of all ranks' x. */
export function reduceScatterToSequenceParallel(x: Tensor, comm: SyncCollectives, axis = SEQUENCE_AXIS): Tensor {
  checkSeq(x, axis, "reduceScatterToSequenceParallel");
  if (comm.size === 1) return x;
  const outShape = withAxis(x.shape, axis, axisLayout(x.shape, axis).len / comm.size);
  const out = new Tensor(reduceScatterAlongAxis(comm, x.data, x.shape, axis), outShape);
  return record(out, "sp_reduce_scatter", [x], (g, needs) => [needs[0] ? allGatherAlongAxis(comm, g, outShape, axis) : null]);
}

/** This rank's chunk of a tensor every rank holds in full; backward all-gathers the chunk gradients. */
export function scatterToSequenceParallel(x: Tensor, comm: SyncCollectives, axis = SEQUENCE_AXIS): Tensor {
  checkSeq(x, axis, "scatterToSequenceParallel");
  if (comm.size === 1) return x;
  const outShape = withAxis(x.shape, axis, axisLayout(x.shape, axis).len / comm.size);
  const out = new Tensor(chunkAlongAxis(x.data, x.shape, axis, comm.rank, comm.size), outShape);
  return record(out, "sp_scatter", [x], (g, needs) => [needs[0] ? allGatherAlongAxis(comm, g, outShape, axis) : null]);
}
