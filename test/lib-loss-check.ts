// A user's module for test/loss-check.test.ts and test/idle-pipe.test.ts: a small regression model
// whose output is [b, 1], losses that do and do not broadcast it against a [b] target, and the data.
import { Linear, Module, Rng, Tanh, Tensor, ops } from "../src/index.js";

/** Linear(3, 4) -> Tanh -> Linear(4, 1): output [b, 1]. */
export function buildModel(): Module[] {
  const rng = new Rng(11);
  return [new Linear(3, 4, rng), new Tanh(), new Linear(4, 1, rng)];
}

/** The user-study loss: mean((out - y)^2), with no shape handling of its own. */
export function naiveMse(out: Tensor, y: Tensor | Int32Array): Tensor {
  const d = ops.sub(out, y as Tensor);
  return ops.mean(ops.mul(d, d));
}

/** The same loss with the output reshaped to the target's shape first: correct for y [b]. */
export function reshapingMse(out: Tensor, y: Tensor | Int32Array): Tensor {
  const d = ops.sub(ops.reshape(out, [-1]), y as Tensor);
  return ops.mean(ops.mul(d, d));
}

/** x [n, 3] and y = x0 - x1 + 0.5 x2, as [n] or (column) [n, 1]. */
export function lossCheckData(n: number, column: boolean): { x: Tensor; y: Tensor } {
  const rng = new Rng(4);
  const x = Float32Array.from({ length: n * 3 }, () => rng.normal());
  const y = Float32Array.from({ length: n }, (_, i) => x[3 * i] - x[3 * i + 1] + 0.5 * x[3 * i + 2]);
  return { x: new Tensor(x, [n, 3]), y: new Tensor(y, column ? [n, 1] : [n]) };
}
