// Shared helpers for the op tests: seeded inputs and a gradcheck assertion on the reference backend.
import assert from "node:assert/strict";
import { setBackend } from "../src/backend/index.js";
import { gradcheck, type GradcheckOptions } from "../src/autograd/gradcheck.js";
import { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/tensor/random.js";

setBackend("reference");

export const rng = new Rng(20240601);

/** Operand shapes of the broadcasting ops' tests: equal, one or both broadcast, fewer axes, 0-d. */
export const SHAPE_PAIRS: [number[], number[]][] = [
  [[3, 4], [3, 4]],
  [[2, 3, 4], [3, 1]], // b broadcast over the batch and last axis
  [[2, 1, 4], [3, 1]], // both broadcast
  [[4], [2, 3, 4]], // a has fewer axes
  [[], [2, 3]], // 0-d tensor operand
  [[2, 3], [1, 1]],
];

/** A leaf with standard-normal entries. */
export function randn(shape: readonly number[], requiresGrad = true, std = 1): Tensor {
  return Tensor.randn(shape, rng, std, requiresGrad);
}

/** Uniform entries in [lo, hi). */
export function uniform(shape: readonly number[], lo: number, hi: number, requiresGrad = true): Tensor {
  return Tensor.uniform(shape, rng, lo, hi, requiresGrad);
}

/** Normal entries pushed at least `gap` away from 0 (keeps relu-like kinks beyond the FD step). */
export function awayFromZero(shape: readonly number[], gap = 0.1, requiresGrad = true): Tensor {
  const t = randn(shape, requiresGrad);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.sign(t.data[i] || 1) * (Math.abs(t.data[i]) + gap);
  return t;
}

/** Distinct values (a shuffled arithmetic sequence with spacing `gap`): no ties for max/maxPool. */
export function distinct(shape: readonly number[], gap = 0.1, requiresGrad = true): Tensor {
  const t = Tensor.zeros(shape, requiresGrad);
  const perm = rng.permutation(t.size);
  for (let i = 0; i < t.size; i++) t.data[i] = (perm[i] - t.size / 2) * gap;
  return t;
}

export function checkGrad(label: string, f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[],
  options: GradcheckOptions = {}): void {
  const res = gradcheck(f, inputs, options);
  assert.ok(res.checked > 0, `${label}: nothing checked`);
  assert.ok(res.ok, `${label}: ${res.worst}`);
}

/** Element-wise closeness with a message naming the first bad element. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5, label = ""): void {
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === e) continue; // also covers matching infinities
    const err = Math.abs(a - e);
    assert.ok(err <= tol * Math.max(1, Math.abs(e)), `${label}: element ${i} is ${a}, expected ${e} (|diff| ${err})`);
  }
}
