// Gradient clipping by global L2 norm, like torch.nn.utils.clip_grad_norm_.
import type { Tensor } from "../tensor/tensor.js";

/**
 * Scales all gradients by min(1, maxNorm / (norm + 1e-6)) where norm is the L2 norm over every
 * parameter's gradient together; returns that total norm (before clipping).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  let sq = 0;
  for (const p of params) if (p.grad) for (const g of p.grad.data) sq += g * g;
  const norm = Math.sqrt(sq);
  const scale = maxNorm / (norm + 1e-6);
  if (scale < 1) for (const p of params) if (p.grad) { const d = p.grad.data; for (let i = 0; i < d.length; i++) d[i] *= scale; }
  return norm;
}
