// The one reduction rule every transport uses, so results are the same bits everywhere: element i of
// the result is the float32 sum in rank order, fl(fl(fl(src[0][i] + src[1][i]) + src[2][i]) + ...),
// and for "mean" that sum divided by R in float32. No thread timing or chunking can change it: each
// element's order is fixed. Two implementations give these bits: the native addon's element-wise
// add/div (IEEE float32 per element, no reassociation: built without fast-math) when the calling
// thread's backend is native, and a TypeScript loop (Math.fround after every add) otherwise.
import { getBackend } from "../backend/index.js";
import type { ReduceOp } from "./types.js";

/** Below this many elements the native call costs more than the loop. */
const NATIVE_MIN = 2048;

/** out[i] = reduce over sources of src[i], for i in [start, end). `out` may alias none of `sources`. */
export function reduceInOrder(sources: readonly Float32Array[], out: Float32Array, start: number, end: number, op: ReduceOp): void {
  const R = sources.length;
  if (R === 0) throw new Error("reduceInOrder needs at least one source");
  if (end <= start) return;
  const b = getBackend();
  if (b.name === "native" && end - start >= NATIVE_MIN) {
    const n = end - start;
    const o = out.subarray(start, end);
    const part = (s: Float32Array): Float32Array => s.subarray(start, end);
    if (R === 1) o.set(part(sources[0]));
    else {
      b.binary("add", part(sources[0]), [n], part(sources[1]), [n], o, [n]);
      for (let r = 2; r < R; r++) b.binary("add", o, [n], part(sources[r]), [n], o, [n]);
    }
    if (op === "mean" && R > 1) b.binary("div", o, [n], Float32Array.of(R), [1], o, [n]);
    return;
  }
  const div = op === "mean" ? R : 1;
  if (R === 1) {
    out.set(sources[0].subarray(start, end), start);
  } else if (R === 2) {
    // The float64 sum of two float32s is exact, so one rounding at the store is the float32 add.
    const a = sources[0], c = sources[1];
    if (div === 1) for (let i = start; i < end; i++) out[i] = a[i] + c[i];
    else for (let i = start; i < end; i++) out[i] = Math.fround(a[i] + c[i]) / div;
  } else {
    for (let i = start; i < end; i++) {
      let s = sources[0][i];
      for (let r = 1; r < R; r++) s = Math.fround(s + sources[r][i]);
      out[i] = s / div;
    }
  }
}

/** The [start, end) part of n elements that rank r of R reduces (contiguous, sizes differ by <= 1). */
export function partOf(n: number, r: number, R: number): [number, number] {
  return [Math.floor((r * n) / R), Math.floor(((r + 1) * n) / R)];
}
