// PyTorch's default initialisations, drawn from the seeded Rng so a model is a function of its seed.
import { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../tensor/random.js";
import type { Shape } from "../tensor/shape.js";

let skipping = 0;

/**
 * Runs `build` with the initialisers below returning zeros and drawing nothing from their Rng: for
 * a model whose every parameter is overwritten right after (a pipeline worker loading the main
 * thread's state), where drawing ~10^8 random numbers would be wasted. Synchronous builds only.
 */
export function withoutInit<T>(build: () => T): T {
  skipping++;
  try { return build(); } finally { skipping--; }
}

/** fan_in of a weight laid out as PyTorch does: [out, in] or [out, in, kh, kw]. */
export function fanIn(shape: Shape): number {
  if (shape.length < 2) throw new Error(`fan_in needs a weight of rank >= 2, got rank ${shape.length}`);
  let f = shape[1];
  for (let i = 2; i < shape.length; i++) f *= shape[i];
  return f;
}

/**
 * kaiming_uniform_(w, a=sqrt(5)), torch's default for Linear and Conv weights: gain = sqrt(2/(1+a^2)),
 * bound = gain * sqrt(3 / fan_in), which works out to 1/sqrt(fan_in).
 */
export function kaimingUniformDefault(shape: Shape, rng: Rng): Tensor {
  const a = Math.sqrt(5);
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = gain * Math.sqrt(3 / fanIn(shape));
  if (skipping) return Tensor.zeros(shape);
  return Tensor.uniform(shape, rng, -bound, bound);
}

/** torch's default bias for Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function biasUniform(size: number, fanInOfWeight: number, rng: Rng): Tensor {
  const bound = fanInOfWeight > 0 ? 1 / Math.sqrt(fanInOfWeight) : 0;
  if (skipping) return Tensor.zeros([size]);
  return Tensor.uniform([size], rng, -bound, bound);
}

/** N(0, std^2): nn.Embedding's default with std = 1. */
export function normal(shape: Shape, rng: Rng, std = 1): Tensor {
  return skipping ? Tensor.zeros(shape) : Tensor.randn(shape, rng, std);
}
