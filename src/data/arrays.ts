// Datasets from a user's own typed arrays: inputs as Float32Array, targets as Float32Array
// (regression: any per-example shape) or Int32Array (class ids, one or several per example).
// Batches follow the DataLoader's order rule: epoch e's order comes from (seed, e) alone.
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { fmt, numel } from "../tensor/shape.js";
import { describeValue } from "../util/describe.js";
import { epochSeed } from "./loader.js";

export interface ArrayDataset {
  /** Examples row-major: example i is x[i*xSize .. (i+1)*xSize). */
  x: Float32Array;
  y: Float32Array | Int32Array;
  n: number;
  /** Shape of one example's input, e.g. [8]. */
  xShape: readonly number[];
  /** Shape of one example's target ([] for one class id or one value). */
  yShape: readonly number[];
}

/**
 * A dataset of n examples from typed arrays; `xShape`/`yShape` are per-example shapes (default:
 * x split evenly into n rows, y likewise). Sizes that do not divide are errors naming both.
 */
export function arrayDataset(x: Float32Array, y: Float32Array | Int32Array, n: number,
  xShape?: readonly number[], yShape?: readonly number[]): ArrayDataset {
  if (!(x instanceof Float32Array)) throw new Error(`arrayDataset: x must be a Float32Array, got ${describeValue(x)}`);
  if (!(y instanceof Float32Array) && !(y instanceof Int32Array)) throw new Error(`arrayDataset: y must be a Float32Array (values) or an Int32Array (class ids), got ${describeValue(y)}`);
  if (!Number.isInteger(n) || n < 1) throw new Error(`arrayDataset: n must be a positive integer, got ${n}`);
  const xs = xShape ?? [x.length / n];
  const ys = yShape ?? (y.length === n ? [] : [y.length / n]);
  if (x.length !== n * numel(xs)) throw new Error(`arrayDataset: x has ${x.length} values; ${n} examples of shape ${fmt(xs)} need ${n * numel(xs)}`);
  if (y.length !== n * numel(ys)) throw new Error(`arrayDataset: y has ${y.length} values; ${n} examples of shape ${fmt(ys)} need ${n * numel(ys)}`);
  return { x, y, n, xShape: [...xs], yShape: [...ys] };
}

export interface ArrayBatch {
  x: Tensor;
  /** Class ids (Int32Array, flattened) or a float tensor [b, ...yShape] ([b, 1] for scalar values). */
  y: Int32Array | Tensor;
  index: number;
}

export interface ArrayBatchOptions { batchSize: number; epoch?: number; shuffle?: boolean; seed?: number; dropLast?: boolean }

/** The mini-batches of one epoch of `ds`. */
export function* arrayBatches(ds: ArrayDataset, o: ArrayBatchOptions): Generator<ArrayBatch> {
  const { batchSize, epoch = 0, shuffle = true, seed = 0, dropLast = false } = o;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`arrayBatches: batchSize must be a positive integer, got ${batchSize}`);
  const order = shuffle ? new Rng(epochSeed(seed, epoch)).permutation(ds.n) : Int32Array.from({ length: ds.n }, (_, i) => i);
  const xSize = numel(ds.xShape), ySize = numel(ds.yShape);
  const count = dropLast ? Math.floor(ds.n / batchSize) : Math.ceil(ds.n / batchSize);
  for (let b = 0; b < count; b++) {
    const idx = order.subarray(b * batchSize, Math.min((b + 1) * batchSize, ds.n));
    const x = new Float32Array(idx.length * xSize);
    const y = ds.y instanceof Int32Array ? new Int32Array(idx.length * ySize) : new Float32Array(idx.length * ySize);
    idx.forEach((j, i) => {
      x.set(ds.x.subarray(j * xSize, (j + 1) * xSize), i * xSize);
      y.set(ds.y.subarray(j * ySize, (j + 1) * ySize), i * ySize);
    });
    const yt = y instanceof Int32Array ? y : new Tensor(y, [idx.length, ...(ds.yShape.length ? ds.yShape : [1])]);
    yield { x: new Tensor(x, [idx.length, ...ds.xShape]), y: yt, index: b };
  }
}
