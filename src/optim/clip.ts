// Gradient clipping by global L2 norm, like torch.nn.utils.clip_grad_norm_. A pipeline computes the
// same norm from parts: each worker's sum of squares (sumOfSquares), summed over the workers, then
// the same scale (clipScale) applied to every part (scaleGradients).
import type { Tensor } from "../tensor/tensor.js";

/** Checks a maximum gradient norm: finite and > 0, else an error naming the value. */
export function checkMaxNorm(maxNorm: number, what = "clipGradNorm: maxNorm"): number {
  if (!(maxNorm > 0)) throw new Error(`${what} must be > 0, got ${maxNorm}`);
  if (!Number.isFinite(maxNorm)) throw new Error(`${what} must be finite, got ${maxNorm}`);
  return maxNorm;
}

/** Sum of the squares of every gradient's values (float64, in order). */
export function sumOfSquares(grads: Iterable<Float32Array>): number {
  let sq = 0;
  for (const d of grads) for (let i = 0; i < d.length; i++) sq += d[i] * d[i];
  return sq;
}

/** The factor min(1, maxNorm / (norm + 1e-6)) for a total norm `norm`. */
export function clipScale(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/** Multiplies every gradient by `scale` in place (nothing when it is 1). */
export function scaleGradients(grads: Iterable<Float32Array>, scale: number): void {
  if (scale < 1) for (const d of grads) for (let i = 0; i < d.length; i++) d[i] *= scale;
}

function gradsOf(params: readonly Tensor[]): Float32Array[] {
  return params.flatMap((p) => (p.grad ? [p.grad.data] : []));
}

/**
 * Scales all gradients by min(1, maxNorm / (norm + 1e-6)) where norm is the L2 norm over every
 * parameter's gradient together; returns that total norm (before clipping).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  checkMaxNorm(maxNorm);
  const grads = gradsOf(params);
  const norm = Math.sqrt(sumOfSquares(grads));
  scaleGradients(grads, clipScale(norm, maxNorm));
  return norm;
}
