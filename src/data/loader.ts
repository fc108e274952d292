// A DataLoader over an in-memory dataset. Each epoch's order comes from its own seed, derived from
// (seed, epoch), so a run resumed at epoch e (and batch b within it) sees exactly the batches an
// uninterrupted run would, with no RNG state to save.
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { numel } from "../tensor/shape.js";

/** Examples stored row-major: example i is inputs[i*sampleSize .. (i+1)*sampleSize). */
export interface TensorDataset {
  inputs: Float32Array;
  labels: Int32Array;
  n: number;
  sampleShape: readonly number[];
}

export interface DataLoaderOptions {
  batchSize: number;
  /** Shuffle every epoch (default true); false = examples in stored order. */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
}

export interface Batch {
  /** [b, ...sampleShape], a fresh copy. */
  x: Tensor;
  y: Int32Array;
  /** Batch index within the epoch. */
  index: number;
  epoch: number;
  /** The examples' dataset indices, in batch order (a view of the epoch's order: do not write). */
  indices: Int32Array;
}

/** A 32-bit seed mixing (seed, epoch): a murmur3-style finaliser over both words. */
export function epochSeed(seed: number, epoch: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x5bd1e995, 0x9e3779b1);
  h ^= Math.imul((epoch >>> 0) + 0x7f4a7c15, 0x85ebca6b);
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function checkDataset(ds: TensorDataset): void {
  if (!Number.isInteger(ds.n) || ds.n < 0) throw new Error(`dataset size must be a non-negative integer, got ${ds.n}`);
  const size = numel(ds.sampleShape);
  if (ds.inputs.length !== ds.n * size) {
    throw new Error(`dataset inputs have ${ds.inputs.length} values but ${ds.n} examples of shape [${ds.sampleShape.join(", ")}] need ${ds.n * size}`);
  }
  if (ds.labels.length !== ds.n) throw new Error(`dataset has ${ds.labels.length} labels for ${ds.n} examples`);
}

/** Copies the examples at `indices` into one batch tensor [indices.length, ...sampleShape]. */
export function gather(ds: TensorDataset, indices: ArrayLike<number>): { x: Tensor; y: Int32Array } {
  const size = numel(ds.sampleShape);
  const x = new Float32Array(indices.length * size);
  const y = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!Number.isInteger(j) || j < 0 || j >= ds.n) throw new Error(`example index ${j} is outside 0..${ds.n - 1}`);
    x.set(ds.inputs.subarray(j * size, (j + 1) * size), i * size);
    y[i] = ds.labels[j];
  }
  return { x: new Tensor(x, [indices.length, ...ds.sampleShape]), y };
}

export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;

  constructor(readonly dataset: TensorDataset, opts: DataLoaderOptions) {
    checkDataset(dataset);
    const { batchSize, shuffle = true, seed = 0, dropLast = false } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
    this.batchSize = batchSize; this.shuffle = shuffle; this.seed = seed; this.dropLast = dropLast;
  }

  /** Number of batches in one epoch. */
  get length(): number {
    const n = this.dataset.n;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The order in which epoch `epoch` visits the examples. */
  order(epoch: number): Int32Array {
    if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`epoch must be a non-negative integer, got ${epoch}`);
    if (!this.shuffle) return Int32Array.from({ length: this.dataset.n }, (_, i) => i);
    return new Rng(epochSeed(this.seed, epoch)).permutation(this.dataset.n);
  }

  /** Indices of batch `index` of epoch `epoch`. */
  batchIndices(epoch: number, index: number, order = this.order(epoch)): Int32Array {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new Error(`batch index ${index} is outside 0..${this.length - 1} (${this.length} batches per epoch)`);
    }
    return order.subarray(index * this.batchSize, Math.min((index + 1) * this.batchSize, this.dataset.n));
  }

  /** Batches of epoch `epoch`, starting at batch `startBatch` (for exact resume mid-epoch). */
  *epoch(epoch: number, startBatch = 0): Generator<Batch> {
    if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > this.length) {
      throw new Error(`startBatch ${startBatch} is outside 0..${this.length} (${this.length} batches per epoch)`);
    }
    const order = this.order(epoch);
    for (let index = startBatch; index < this.length; index++) {
      const indices = this.batchIndices(epoch, index, order);
      yield { ...gather(this.dataset, indices), index, epoch, indices };
    }
  }
}
