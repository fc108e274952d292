// A user's module for the library tests: a regression MLP built from its arguments, a hand-written
// MSE loss, and the bad exports the error tests name. Worker threads import this file by URL.
import { Linear, Module, Rng, Sequential, Tanh, arrayBatches, arrayDataset, ops, type Tensor } from "../src/index.js";

export interface MlpArgs { sizes: number[]; seed: number }

/** Linear -> Tanh -> ... -> Linear, as a Module[] (one unit per layer). */
export function buildMlp(args: MlpArgs): Module[] {
  const rng = new Rng(args.seed);
  const units: Module[] = [];
  for (let i = 0; i + 1 < args.sizes.length; i++) {
    units.push(new Linear(args.sizes[i], args.sizes[i + 1], rng));
    if (i + 2 < args.sizes.length) units.push(new Tanh());
  }
  return units;
}

/** The same model as a Sequential (async: a build may return a promise). */
export async function buildSequential(args: MlpArgs): Promise<Sequential> {
  return new Sequential(buildMlp(args));
}

/** Mean squared error written with the ops (independent of the built-in mseLoss). */
export function userMse(out: Tensor, target: Tensor | Int32Array): Tensor {
  if (target instanceof Int32Array) throw new Error("userMse needs float targets");
  const d = ops.sub(out, target);
  return ops.mean(ops.mul(d, d));
}

/** A loss that forgets to reduce: returns the per-element squared error. */
export function unreducedLoss(out: Tensor, target: Tensor | Int32Array): Tensor {
  const d = ops.sub(out, target as Tensor);
  return ops.mul(d, d);
}

export const notAFunction = 42;

export function buildNothing(): unknown { return { layers: 3 }; }

/** The user's own arrays for the tests: y = [sum(x), x0 - x1] over n rows of 6, as mini-batches. */
export function regressionBatches(n: number, batchSize: number): { x: Tensor; y: Tensor }[] {
  const rng = new Rng(3);
  const x = Float32Array.from({ length: n * 6 }, () => rng.normal());
  const y = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < 6; k++) s += x[i * 6 + k];
    y[2 * i] = s; y[2 * i + 1] = x[i * 6] - x[i * 6 + 1];
  }
  return [...arrayBatches(arrayDataset(x, y, n, [6], [2]), { batchSize, seed: 1 })] as { x: Tensor; y: Tensor }[];
}
