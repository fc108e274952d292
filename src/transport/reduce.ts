// The one reduction kernel every transport uses, so results are the same bits everywhere: element i
// of the result is ((src[0][i] + src[1][i]) + ... + src[R-1][i]) accumulated in float64 in rank
// order, divided by R for "mean", and rounded to float32 once. For R = 2 that equals a float32 add
// exactly (the float64 sum of two float32s is exact); for R >= 3 it is at least as accurate as any
// float32 order. No thread timing or chunking can change it: each element's order is fixed.
import type { ReduceOp } from "./types.js";

/** out[i] = reduce over sources of src[i], for i in [start, end). `out` may alias none of `sources`. */
export function reduceInOrder(sources: readonly Float32Array[], out: Float32Array, start: number, end: number, op: ReduceOp): void {
  const R = sources.length;
  if (R === 0) throw new Error("reduceInOrder needs at least one source");
  const div = op === "mean" ? R : 1;
  // Specialised loops for the common group sizes (a generic inner loop is ~2x slower in V8).
  if (R === 1) {
    const a = sources[0];
    for (let i = start; i < end; i++) out[i] = a[i] / div;
  } else if (R === 2) {
    const a = sources[0], b = sources[1];
    if (div === 1) for (let i = start; i < end; i++) out[i] = a[i] + b[i];
    else for (let i = start; i < end; i++) out[i] = (a[i] + b[i]) / div;
  } else if (R === 3) {
    const a = sources[0], b = sources[1], c = sources[2];
    for (let i = start; i < end; i++) out[i] = (a[i] + b[i] + c[i]) / div;
  } else {
    for (let i = start; i < end; i++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += sources[r][i];
      out[i] = s / div;
    }
  }
}

/** The [start, end) part of n elements that rank r of R reduces (contiguous, sizes differ by <= 1). */
export function partOf(n: number, r: number, R: number): [number, number] {
  return [Math.floor((r * n) / R), Math.floor(((r + 1) * n) / R)];
}
