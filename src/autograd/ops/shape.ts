// Shape ops: reshape/flatten (share memory), transpose/permute, slice and concat along an axis.
import { getBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt, normAxis, numel, resolveReshape, type Shape } from "../../tensor/shape.js";
import { gradBuffer, record } from "../engine.js";
import { checkTensor, copyAxis } from "./util.js";

/** Same data in a new shape (one -1 allowed). Shares memory with x, like a torch view. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  checkTensor(x, "reshape", "input");
  const out = new Tensor(x.data, resolveReshape(x.shape, shape));
  return record(out, "reshape", [x], (g) => [g]);
}

/** Merges axes startDim..endDim into one (torch.flatten). */
export function flatten(x: Tensor, startDim = 1, endDim = -1): Tensor {
  checkTensor(x, "flatten", "input");
  if (x.rank === 0) return reshape(x, [1]);
  const s = normAxis(startDim, x.rank, `flatten: startDim for input ${fmt(x.shape)}:`);
  const e = normAxis(endDim, x.rank, `flatten: endDim for input ${fmt(x.shape)}:`);
  if (s > e) throw new Error(`flatten: startDim ${startDim} comes after endDim ${endDim} for input ${fmt(x.shape)}`);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** Axis i of the result is axis perm[i] of x (a copy). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  checkTensor(x, "permute", "input");
  const p = perm.map((a) => normAxis(a, x.rank, `permute: axis in ${JSON.stringify(perm)} for input ${fmt(x.shape)}:`));
  if (p.length !== x.rank || new Set(p).size !== p.length) {
    throw new Error(`permute: ${JSON.stringify(perm)} is not a permutation of the ${x.rank} axes of ${fmt(x.shape)}`);
  }
  const be = getBackend();
  const out = Tensor.empty(p.map((a) => x.shape[a])); // every element written
  be.permute(x.data, x.shape, p, out.data, false);
  const inverse = new Array<number>(p.length);
  p.forEach((a, i) => { inverse[a] = i; });
  return record(out, "permute", [x], (g) => {
    const dx = gradBuffer(x.size);
    be.permute(g, out.shape, inverse, dx, false);
    return [dx];
  });
}

export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  checkTensor(x, "transpose", "input");
  const a = normAxis(d0, x.rank, `transpose: axis for input ${fmt(x.shape)}:`);
  const b = normAxis(d1, x.rank, `transpose: axis for input ${fmt(x.shape)}:`);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

/** Elements start..end-1 (end exclusive; negative values count from the end) along `axis`. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  checkTensor(x, "slice", "input");
  const ax = normAxis(axis, x.rank, `slice: axis for input ${fmt(x.shape)}:`);
  const size = x.shape[ax];
  const s = start < 0 ? start + size : start;
  const e = end < 0 ? end + size : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > size || s > e) {
    throw new Error(`slice: range ${start}..${end} is not within 0..${size} of axis ${axis} of ${fmt(x.shape)}`);
  }
  const outer = numel(x.shape.slice(0, ax));
  const inner = numel(x.shape.slice(ax + 1));
  const len = e - s;
  const outShape = [...x.shape];
  outShape[ax] = len;
  const out = Tensor.empty(outShape); // every block written
  copyAxis(x.data, out.data, { outer, inner, len, srcSize: size, srcStart: s, dstSize: len, dstStart: 0, zero: false });
  return record(out, "slice", [x], (g) => {
    // A recycled buffer: each block gets zeros before, the gradient in and zeros after the range.
    const dx = gradBuffer(x.size);
    copyAxis(g, dx, { outer, inner, len, srcSize: len, srcStart: 0, dstSize: size, dstStart: s, zero: true });
    return [dx];
  });
}

/** Joins tensors along `axis`; all other dimensions must agree. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new Error("concat: needs a non-empty array of tensors");
  tensors.forEach((t, i) => checkTensor(t, "concat", `tensors[${i}]`));
  const first = tensors[0];
  const ax = normAxis(axis, first.rank, `concat: axis for input ${fmt(first.shape)}:`);
  for (const t of tensors) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new Error(`concat: shapes ${fmt(first.shape)} and ${fmt(t.shape)} differ outside axis ${axis}`);
    }
  }
  const outer = numel(first.shape.slice(0, ax));
  const inner = numel(first.shape.slice(ax + 1));
  const sizes = tensors.map((t) => t.shape[ax]);
  const total = sizes.reduce((p, q) => p + q, 0);
  const outShape = [...first.shape];
  outShape[ax] = total;
  const out = Tensor.empty(outShape); // the parts tile it exactly
  let offset = 0;
  tensors.forEach((t, k) => {
    copyAxis(t.data, out.data, { outer, inner, len: sizes[k], srcSize: sizes[k], srcStart: 0, dstSize: total, dstStart: offset, zero: false });
    offset += sizes[k];
  });
  return record(out, "concat", tensors, (g, needs) => {
    let off = 0;
    return tensors.map((t, k) => {
      const len = sizes[k];
      const start = off;
      off += len;
      if (!needs[k]) return null;
      const dx = gradBuffer(t.size); // every block written
      copyAxis(g, dx, { outer, inner, len, srcSize: total, srcStart: start, dstSize: len, dstStart: 0, zero: false });
      return dx;
    });
  });
}
