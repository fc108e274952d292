// One mini-batch -> the executor's SplitBatch: M micro-batches (torch.tensor_split sizes) of inputs
// and targets, and the loss scale of the one rule (src/pipeline/stage.ts): 1 / target rows.
import { splitLabels, splitTensor } from "../../data/microbatch.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt } from "../../tensor/shape.js";
import { describeValue } from "../../util/describe.js";
import { targetRows, type Target } from "../stage.js";
import type { SplitBatch } from "./executor.js";

/**
 * Splits (x [n, ...], y) into M micro-batches. y: class ids (n, or n*k for k per example, e.g. next
 * tokens) or a float tensor [n, ...]. Errors name the shapes.
 */
export function splitMiniBatch(x: Tensor, y: Target, M: number, what = "mini-batch"): SplitBatch {
  if (!(x instanceof Tensor) || x.rank < 1) throw new Error(`${what}: x must be a Tensor [n, ...], got ${x instanceof Tensor ? fmt(x.shape) : describeValue(x)}`);
  const n = x.shape[0];
  if (n < M) throw new Error(`${what}: a mini-batch of ${n} cannot be split into ${M} micro-batches; each needs at least one example`);
  let labels: Target[];
  if (y instanceof Int32Array) {
    if (y.length === 0 || y.length % n !== 0) throw new Error(`${what}: ${y.length} class ids do not divide evenly among ${n} examples`);
    labels = splitLabels(y, M, y.length / n);
  } else if (y instanceof Tensor) {
    if (y.rank < 1 || y.shape[0] !== n) throw new Error(`${what}: targets ${fmt(y.shape)} must have ${n} rows like x ${fmt(x.shape)}`);
    labels = splitTensor(y, M);
  } else {
    throw new Error(`${what}: y must be an Int32Array of class ids or a Tensor, got ${describeValue(y)}`);
  }
  return { inputs: splitTensor(x, M), labels, scale: 1 / targetRows(y) };
}
