// Weight-set arithmetic for the policies. A "weight set" is one Float32Array per parameter of a
// stage, in the stage's parameter order. Scaled sums go through the backend's axpby kernel (native
// when available); copies and swaps are plain typed-array operations, which are exact.
import { getBackend } from "../../backend/index.js";

export type WeightSet = readonly Float32Array[];

/** Total bytes of one weight set. */
export function weightSetBytes(ws: WeightSet): number {
  let n = 0;
  for (const a of ws) n += a.byteLength;
  return n;
}

/** A zero-filled weight set shaped like `like`. Allocates: call outside the hot path. */
export function allocLike(like: WeightSet): Float32Array[] {
  return like.map((a) => new Float32Array(a.length));
}

/** dst[i] <- src[i] for every parameter. */
export function copyInto(dst: WeightSet, src: WeightSet): void {
  for (let i = 0; i < dst.length; i++) dst[i].set(src[i]);
}

/** out[i] <- alpha * x[i] + beta * out[i] for every parameter (beta = 0 ignores old contents). */
export function axpbySet(alpha: number, x: WeightSet, beta: number, out: WeightSet): void {
  const be = getBackend();
  for (let i = 0; i < out.length; i++) be.axpby(alpha, x[i], beta, out[i]);
}

/** out <- alpha * x + beta * out for one parameter's array. */
export function axpbyArray(alpha: number, x: Float32Array, beta: number, out: Float32Array): void {
  getBackend().axpby(alpha, x, beta, out);
}

/**
 * Exchanges the contents of a and b element by element (exact, no temporary weight set). Swapping
 * twice restores both; this is how a runtime makes its parameter tensors, whose `data` arrays are
 * fixed, compute with another weight version (see `withWeights` in index.ts).
 */
export function swapContents(a: WeightSet, b: WeightSet): void {
  if (a === b) return;
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    if (x === y) continue;
    for (let j = 0; j < x.length; j++) {
      const t = x[j];
      x[j] = y[j];
      y[j] = t;
    }
  }
}

/** Throws unless `ws` is a non-empty weight set (clear message for the policies' constructors). */
export function checkWeightSet(ws: WeightSet, what: string): void {
  if (!Array.isArray(ws) || ws.length === 0) throw new Error(`${what}: needs at least one parameter buffer, got ${ws.length ?? "none"}`);
  ws.forEach((a, i) => {
    if (!(a instanceof Float32Array)) throw new Error(`${what}: parameter ${i} is not a Float32Array`);
  });
}
