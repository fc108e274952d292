// Sharding a mini-batch across data-parallel replicas: replica r gets the r-th CONTIGUOUS block of the
// batch, sizes as torch.tensor_split (the first n mod R replicas get one extra example), so the
// shards concatenated in replica order are the batch. Labels follow their examples (one per example,
// or T per example for next-token targets of a [B, T] batch).
import { microbatchSizes } from "../data/microbatch.js";
import { Tensor } from "../tensor/tensor.js";
import { fmt, numel } from "../tensor/shape.js";

export interface Shard {
  /** Index of the shard's first example in the mini-batch. */
  start: number;
  x: Tensor;
  y: Int32Array;
}

export function shardBatch(x: Tensor, y: Int32Array, replicas: number): Shard[] {
  if (x.rank < 1 || x.shape[0] === 0) throw new Error(`cannot shard a batch of shape ${fmt(x.shape)}: need [n, ...] with n >= 1`);
  const n = x.shape[0];
  if (y.length === 0 || y.length % n !== 0) throw new Error(`batch inputs ${fmt(x.shape)} and ${y.length} labels disagree on the batch size`);
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`replicas must be a positive integer, got ${replicas}`);
  if (replicas > n) throw new Error(`cannot shard a batch of ${n} examples over ${replicas} replicas: every replica needs at least one example (use --batch >= ${replicas})`);
  const row = numel(x.shape.slice(1));
  const perExample = y.length / n;
  let start = 0;
  return microbatchSizes(n, replicas).map((size) => {
    const s: Shard = {
      start,
      x: new Tensor(x.data.slice(start * row, (start + size) * row), [size, ...x.shape.slice(1)]),
      y: y.slice(start * perExample, (start + size) * perExample),
    };
    start += size;
    return s;
  });
}
