// Activation memory of a pipeline worker, counted from tensors rather than sampled from the process,
// so the figure is the same on every run and every executor: the bytes of what a stage keeps between
// a micro-batch's forward and its backward (the recorded graph's tensors, or only the stashed input
// when recomputing), summed over the worker's stages, with its high-water mark.
import type { Tensor } from "../tensor/tensor.js";

/** Activation bytes a worker holds now and the most it held since the last resetPeak(). */
export class ActivationMeter {
  current = 0;
  peak = 0;

  add(bytes: number): void {
    this.current += bytes;
    if (this.current > this.peak) this.peak = this.current;
  }

  remove(bytes: number): void { this.current -= bytes; }

  /** Starts a new high-water mark (a new step) from what is held now. */
  resetPeak(): void { this.peak = this.current; }
}

/**
 * Bytes of the distinct arrays of `roots` and every tensor their graph reaches (each op's inputs:
 * what the tape keeps alive until the backward), leaving out `skip` (the weights and buffers). Arrays
 * a backward rule captures besides its inputs (a norm's statistics, a dropout mask) are not seen.
 */
export function graphBytes(roots: readonly Tensor[], skip: ReadonlySet<Tensor>): number {
  const seen = new Set<Tensor>();
  const arrays = new Set<Float32Array>();
  const stack = [...roots];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t) || skip.has(t)) continue;
    seen.add(t);
    arrays.add(t.data);
    if (t.gradFn) stack.push(...t.gradFn.inputs);
  }
  let n = 0;
  for (const a of arrays) n += a.byteLength;
  return n;
}
