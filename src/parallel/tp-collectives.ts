// All-gather and reduce-scatter of a tensor along one axis, built on a SyncCollectives' all-reduce
// (the transport has no native all-gather / reduce-scatter yet; see the notes below).
//
// Chunks: a tensor with `len` entries along `axis` is split into `size` equal contiguous chunks, rank
// r owning entries [r * len / size, (r + 1) * len / size). Megatron requires equal chunks too.
//
// - all-gather: each rank writes its chunk into a zero buffer of the full shape and the buffers are
//   all-reduced with "sum". Every element is one rank's value plus zeros, which float32 adds exactly,
//   so the result is the exact concatenation (only -0 becomes +0). It moves R times the bytes a
//   dedicated all-gather would: acceptable for R = 2 on shared memory; a native ShmCollectives
//   allGatherSync (each rank copies the others' slots) would remove the factor.
// - reduce-scatter: an all-reduce of the full buffer (rank-ordered float32 sum, the transport's fixed
//   order) from which each rank keeps its chunk: the same bits a tensor-parallel all-reduce gives for
//   those elements, so sequence parallelism and plain tensor parallelism agree bit for bit.
import { fmt, normAxis, numel, type Shape } from "../tensor/shape.js";
import type { SyncCollectives } from "../transport/types.js";

export interface AxisLayout { outer: number; len: number; inner: number }

/** Sizes before, along and after `axis` of a row-major tensor. */
export function axisLayout(shape: Shape, axis: number): AxisLayout {
  const a = normAxis(axis, shape.length, `axis for shape ${fmt(shape)}:`);
  return { outer: numel(shape.slice(0, a)), len: shape[a], inner: numel(shape.slice(a + 1)) };
}

/** `shape` with the entry at `axis` replaced by `len`. */
export function withAxis(shape: Shape, axis: number, len: number): number[] {
  const a = normAxis(axis, shape.length, `axis for shape ${fmt(shape)}:`);
  const s = [...shape];
  s[a] = len;
  return s;
}

/** Chunk `index` of `parts` equal chunks along `axis` (a copy). */
export function chunkAlongAxis(data: Float32Array, shape: Shape, axis: number, index: number, parts: number): Float32Array {
  const { outer, len, inner } = axisLayout(shape, axis);
  if (len % parts !== 0) {
    throw new Error(`cannot split ${len} entries of axis ${axis} of ${fmt(shape)} into ${parts} equal chunks (one per rank): ${len} must be a multiple of ${parts}`);
  }
  const part = len / parts;
  const out = new Float32Array(outer * part * inner);
  const row = part * inner;
  for (let o = 0; o < outer; o++) {
    const src = (o * len + index * part) * inner;
    out.set(data.subarray(src, src + row), o * row);
  }
  return out;
}

/** Writes a chunk (shape `chunkShape`) into `full` at chunk position `index` along `axis`. */
export function placeChunk(full: Float32Array, chunk: Float32Array, chunkShape: Shape, axis: number, index: number, parts: number): void {
  const { outer, len: part, inner } = axisLayout(chunkShape, axis);
  const len = part * parts;
  const row = part * inner;
  for (let o = 0; o < outer; o++) full.set(chunk.subarray(o * row, (o + 1) * row), (o * len + index * part) * inner);
}

/** Every rank's chunk (shape `chunkShape`) concatenated along `axis` in rank order. Blocking. */
export function allGatherAlongAxis(comm: SyncCollectives, chunk: Float32Array, chunkShape: Shape, axis: number): Float32Array {
  if (comm.size === 1) return chunk.slice();
  const full = new Float32Array(chunk.length * comm.size);
  placeChunk(full, chunk, chunkShape, axis, comm.rank, comm.size);
  comm.allReduceSync(full, "sum");
  return full;
}

/** This rank's chunk along `axis` of the rank-ordered sum of every rank's `full`. Blocking. */
export function reduceScatterAlongAxis(comm: SyncCollectives, full: Float32Array, shape: Shape, axis: number): Float32Array {
  const { len } = axisLayout(shape, axis);
  if (len % comm.size !== 0) {
    throw new Error(`reduce-scatter: axis ${axis} of ${fmt(shape)} has ${len} entries, not a multiple of the ${comm.size} ranks`);
  }
  if (comm.size === 1) return full.slice();
  const buf = full.slice();
  comm.allReduceSync(buf, "sum");
  return chunkAlongAxis(buf, shape, axis, comm.rank, comm.size);
}
