// Splitting a mini-batch into M micro-batches along dim 0 and merging results back. Sizes follow
// torch.tensor_split: the first (n mod M) micro-batches get one extra example, so sizes differ by at
// most 1 and concatenating the parts in order restores the batch.
import { Tensor } from "../tensor/tensor.js";
import { fmt, numel } from "../tensor/shape.js";

/** Sizes of M micro-batches of an n-example batch. */
export function microbatchSizes(n: number, m: number): number[] {
  if (!Number.isInteger(m) || m < 1) throw new Error(`number of micro-batches must be a positive integer, got ${m}`);
  if (!Number.isInteger(n) || n < 0) throw new Error(`batch size must be a non-negative integer, got ${n}`);
  if (m > n) throw new Error(`cannot split a batch of ${n} into ${m} micro-batches: need at most ${n} (each must hold at least one example)`);
  const base = Math.floor(n / m);
  const extra = n % m;
  return Array.from({ length: m }, (_, i) => base + (i < extra ? 1 : 0));
}

/** Splits x [n, ...] into M tensors [n_i, ...]; each is a copy (micro-batches may travel to other workers). */
export function splitTensor(x: Tensor, m: number): Tensor[] {
  if (x.rank < 1) throw new Error(`cannot split a scalar tensor into micro-batches; need shape [n, ...], got ${fmt(x.shape)}`);
  const rowSize = numel(x.shape.slice(1));
  let start = 0;
  return microbatchSizes(x.shape[0], m).map((size) => {
    const part = new Tensor(x.data.slice(start * rowSize, (start + size) * rowSize), [size, ...x.shape.slice(1)]);
    start += size;
    return part;
  });
}

/**
 * Splits labels like the inputs: `perExample` labels belong to each example (1 for classification,
 * T for next-token targets of a [B, T] batch).
 */
export function splitLabels(y: Int32Array, m: number, perExample = 1): Int32Array[] {
  if (!Number.isInteger(perExample) || perExample < 1 || y.length % perExample !== 0) {
    throw new Error(`${y.length} labels cannot be grouped ${perExample} per example`);
  }
  let start = 0;
  return microbatchSizes(y.length / perExample, m).map((size) => {
    const part = y.slice(start, start + size * perExample);
    start += size * perExample;
    return part;
  });
}

/** Concatenates micro-batches [n_i, ...] back into [sum n_i, ...]; trailing dims must agree. */
export function mergeTensors(parts: readonly Tensor[]): Tensor {
  if (parts.length === 0) throw new Error("cannot merge zero micro-batches");
  const tail = parts[0].shape.slice(1);
  let rows = 0;
  for (const [i, p] of parts.entries()) {
    if (p.rank < 1 || p.rank !== parts[0].rank || p.shape.slice(1).some((d, k) => d !== tail[k])) {
      throw new Error(`cannot merge micro-batch ${i} of shape ${fmt(p.shape)} with micro-batch 0 of shape ${fmt(parts[0].shape)}: all must be [n_i, ${tail.join(", ")}]`);
    }
    rows += p.shape[0];
  }
  const out = new Float32Array(rows * numel(tail));
  let offset = 0;
  for (const p of parts) { out.set(p.data, offset); offset += p.data.length; }
  return new Tensor(out, [rows, ...tail]);
}

export function mergeLabels(parts: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
  let offset = 0;
  for (const p of parts) { out.set(p, offset); offset += p.length; }
  return out;
}

export interface Microbatch { x: Tensor; y: Int32Array; }

/**
 * Splits an {x, y} batch into M aligned micro-batches. y holds one label per example, or a whole
 * number of labels per example (next-token targets [B*T] for inputs [B, T]).
 */
export function splitBatch(batch: { x: Tensor; y: Int32Array }, m: number): Microbatch[] {
  const n = batch.x.rank < 1 ? 0 : batch.x.shape[0];
  if (n === 0 || batch.y.length % n !== 0 || batch.y.length === 0) {
    throw new Error(`batch inputs ${fmt(batch.x.shape)} and ${batch.y.length} labels disagree on the batch size`);
  }
  const xs = splitTensor(batch.x, m);
  const ys = splitLabels(batch.y, m, batch.y.length / n);
  return xs.map((x, i) => ({ x, y: ys[i] }));
}
