// Helpers shared by the ops: broadcasting bookkeeping and reduction of gradients back to an input's
// shape. Numeric work goes through the backend kernels.
import { getBackend } from "../../backend/index.js";
import type { AxisCopy } from "../../backend/backend.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt, numel, padShape, type Shape } from "../../tensor/shape.js";
import { describeValue } from "../../util/describe.js";
import { allocFloat32 } from "../../tensor/host-arrays.js";

/**
 * Sums `g` (shape `from`) over the axes that broadcasting expanded, giving an array of shape `to`.
 * Returns `g` itself when nothing was broadcast (callers must not hand one array to two inputs).
 */
export function reduceToShape(g: Float32Array, from: Shape, to: Shape): Float32Array {
  const rank = from.length;
  if (to.length > rank) throw new Error(`reduceToShape: ${fmt(to)} has more axes than ${fmt(from)}`);
  const target = padShape(to, rank);
  const axes: number[] = [];
  for (let d = 0; d < rank; d++) if (target[d] === 1 && from[d] !== 1) axes.push(d);
  return sumAxes(g, from, axes);
}

/**
 * Sums `x` (shape `shape`) over the sorted unique `axes` into a flat array of the keepdim shape,
 * one kernel call per run of consecutive axes. Returns `x` itself when `axes` is empty.
 */
export function sumAxes(x: Float32Array, shape: Shape, axes: readonly number[]): Float32Array {
  let cur = [...shape];
  let data = x;
  let i = 0;
  while (i < axes.length) {
    let j = i + 1;
    while (j < axes.length && axes[j] === axes[j - 1] + 1) j++;
    const d = axes[i];
    const e = axes[j - 1] + 1;
    const outer = numel(cur.slice(0, d));
    const mid = numel(cur.slice(d, e));
    const inner = numel(cur.slice(e));
    const out = allocFloat32(outer * inner);
    getBackend().sum(data, outer, mid, inner, out, false);
    data = out;
    cur = [...cur.slice(0, d), ...new Array<number>(e - d).fill(1), ...cur.slice(e)];
    i = j;
  }
  return data;
}

/** The backend's copyAxis, or the same copy on the host where the backend has none. */
export function copyAxis(x: Float32Array, out: Float32Array, p: AxisCopy): void {
  const be = getBackend();
  if (be.copyAxis) { be.copyAxis(x, out, p); return; }
  const { outer, inner, len, srcSize, srcStart, dstSize, dstStart } = p;
  for (let o = 0; o < outer; o++) {
    const d = o * dstSize * inner;
    if (p.zero) out.fill(0, d, d + dstStart * inner);
    out.set(x.subarray((o * srcSize + srcStart) * inner, (o * srcSize + srcStart + len) * inner), d + dstStart * inner);
    if (p.zero) out.fill(0, d + (dstStart + len) * inner, d + dstSize * inner);
  }
}

const ZERO = new Float32Array([0]);

/** Expands `g` of shape `from` (same rank, 1s where broadcast) to `to` with a broadcasting add of 0. */
export function broadcastTo(g: Float32Array, from: Shape, to: Shape): Float32Array {
  const out = allocFloat32(numel(to));
  getBackend().binary("add", g, padShape(from, to.length), ZERO, new Array<number>(to.length).fill(1), out, to);
  return out;
}

/** A constant scalar tensor for numeric operands. */
export function asTensor(x: Tensor | number): Tensor {
  return x instanceof Tensor ? x : Tensor.scalar(x);
}

export function checkTensor(x: unknown, op: string, what: string): asserts x is Tensor {
  if (!(x instanceof Tensor)) throw new Error(`${op}: ${what} must be a Tensor, got ${describeValue(x)}`);
}

export function checkRank(x: Tensor, rank: number, op: string, what: string, layout: string): void {
  if (x.rank !== rank) throw new Error(`${op}: ${what} ${fmt(x.shape)} must have rank ${rank} (${layout})`);
}

/**
 * Converts integer-valued floats (token ids, class labels) to Int32Array, checking 0 <= id < limit.
 * An Int32Array is checked and used as it is, not copied: a device backend then uploads it once for
 * every kernel that reads it.
 */
export function toIndices(values: ArrayLike<number>, limit: number, op: string, what: string): Int32Array {
  const ids = values instanceof Int32Array ? values : new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < 0 || v >= limit) {
      throw new Error(`${op}: ${what} ${v} at position ${i} is not an integer in 0..${limit - 1}`);
    }
    if (ids !== values) ids[i] = v;
  }
  return ids;
}

/** A pair (h, w) from a number or a two-element array. */
export function pair(v: number | readonly [number, number], op: string, what: string, min: number): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : [v[0], v[1]];
  if (p.length !== 2 || p.some((d) => !Number.isInteger(d) || d < min)) {
    throw new Error(`${op}: ${what} ${JSON.stringify(v)} must be an integer >= ${min} or a pair of them`);
  }
  return p;
}
