// Element-wise selection: abs, clamp, minimum, maximum (broadcasting) and where(cond, a, b).
//
// The backends have no select kernel, so the forward picks values in these loops (exact: every output
// element is one of the inputs' elements, never a sum, so infinities and -0 pass through and NaN
// propagates as in PyTorch) and keeps a byte mask of which side won; the backward multiplies the
// output gradient by that mask and sums it back to each input's shape with the backend's kernels.
//
// Gradients follow PyTorch: abs' is sign(x) (0 at 0); clamp passes the gradient where
// min <= x <= max (bounds included); minimum/maximum give a tie half the gradient on each side;
// where routes the gradient to a where cond is nonzero, to b elsewhere (cond gets none).
import { Tensor } from "../../tensor/tensor.js";
import { broadcastShapes, fmt, numel, padShape, sameShape, type Shape } from "../../tensor/shape.js";
import { describeValue } from "../../util/describe.js";
import { broadcastStrides } from "../../backend/strides.js";
import { gradBuffer, record } from "../engine.js";
import { asTensor, checkTensor, reduceToShape } from "./util.js";

/**
 * For each element of `outShape` (row-major), the flat offset of the element of an input of `shape`
 * that broadcasting pairs with it; null when `shape` is `outShape` (the offset is the index itself).
 */
function broadcastOffsets(shape: Shape, outShape: Shape): Int32Array | null {
  if (sameShape(shape, outShape)) return null;
  const rank = outShape.length;
  const strides = broadcastStrides(padShape(shape, rank), outShape);
  const n = numel(outShape);
  const off = new Int32Array(n);
  const idx = new Array<number>(rank).fill(0);
  let cur = 0;
  for (let i = 0; i < n; i++) {
    off[i] = cur;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      cur += strides[d];
      if (idx[d] < outShape[d]) break;
      cur -= strides[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return off;
}

/** g * factor[mask[i]] for each element, summed back to `to` (a fresh array, never g itself). */
function maskedGrad(g: Float32Array, mask: Uint8Array, factor: readonly number[], from: Shape, to: Shape): Float32Array {
  const t = gradBuffer(g.length);
  for (let i = 0; i < g.length; i++) t[i] = g[i] * factor[mask[i]];
  return reduceToShape(t, from, to);
}

function checkOperand(op: string, what: string, v: unknown): void {
  if (typeof v !== "number" && !(v instanceof Tensor)) throw new Error(`${op}: ${what} must be a Tensor or a number, got ${describeValue(v)}`);
}

/** |x| element-wise; the gradient is sign(x) (0 at x = 0, like PyTorch). */
export function abs(x: Tensor): Tensor {
  checkTensor(x, "abs", "input");
  const out = Tensor.empty(x.shape);
  const xd = x.data;
  const od = out.data;
  for (let i = 0; i < xd.length; i++) od[i] = Math.abs(xd[i]);
  return record(out, "abs", [x], (g) => {
    const dx = gradBuffer(g.length);
    for (let i = 0; i < g.length; i++) {
      const v = xd[i];
      dx[i] = v > 0 ? g[i] : v < 0 ? -g[i] : 0;
    }
    return [dx];
  });
}

/**
 * min(max(x, min), max) element-wise (torch.clamp with number bounds; either may be null or
 * undefined for no bound, not both; with min > max every element becomes max). The gradient passes
 * where min <= x <= max and is 0 elsewhere.
 */
export function clamp(x: Tensor, min?: number | null, max?: number | null): Tensor {
  checkTensor(x, "clamp", "input");
  const lo = min ?? -Infinity;
  const hi = max ?? Infinity;
  if ((min === undefined || min === null) && (max === undefined || max === null)) throw new Error("clamp: give min, max or both");
  for (const [what, v] of [["min", lo], ["max", hi]] as const) {
    if (typeof v !== "number" || Number.isNaN(v)) throw new Error(`clamp: ${what} must be a number, got ${typeof v === "number" ? "NaN" : describeValue(v)}`);
  }
  const out = Tensor.empty(x.shape);
  const xd = x.data;
  const od = out.data;
  for (let i = 0; i < xd.length; i++) od[i] = Math.min(Math.max(xd[i], lo), hi);
  return record(out, "clamp", [x], (g) => {
    const dx = gradBuffer(g.length);
    for (let i = 0; i < g.length; i++) {
      const v = xd[i];
      dx[i] = v >= lo && v <= hi ? g[i] : 0;
    }
    return [dx];
  });
}

// Mask codes of minimum/maximum: which operand the output element came from.
const FROM_B = 0;
const FROM_A = 1;
const TIE = 2;
const A_FACTOR = [0, 1, 0.5];
const B_FACTOR = [1, 0, 0.5];

function extremum(op: "minimum" | "maximum", a: Tensor | number, b: Tensor | number): Tensor {
  checkOperand(op, "a", a);
  checkOperand(op, "b", b);
  if (typeof a === "number" && typeof b === "number") throw new Error(`${op}: at least one operand must be a Tensor, got two numbers`);
  const at = asTensor(a);
  const bt = asTensor(b);
  const outShape = broadcastShapes(at.shape, bt.shape, op);
  const out = Tensor.empty(outShape);
  const n = out.size;
  const ao = broadcastOffsets(at.shape, outShape);
  const bo = broadcastOffsets(bt.shape, outShape);
  const ad = at.data;
  const bd = bt.data;
  const od = out.data;
  const mask = new Uint8Array(n);
  const isMax = op === "maximum";
  for (let i = 0; i < n; i++) {
    const x = ad[ao ? ao[i] : i];
    const y = bd[bo ? bo[i] : i];
    // NaN wins (propagates) on either side, as in torch.minimum/maximum.
    if (x === y) { od[i] = x; mask[i] = TIE; } else if (Number.isNaN(x) || (isMax ? x > y : x < y)) {
      od[i] = x; mask[i] = FROM_A;
    } else { od[i] = y; mask[i] = FROM_B; }
  }
  return record(out, op, [at, bt], (g, needs) => [
    needs[0] ? maskedGrad(g, mask, A_FACTOR, outShape, at.shape) : null,
    needs[1] ? maskedGrad(g, mask, B_FACTOR, outShape, bt.shape) : null,
  ]);
}

/**
 * Element-wise maximum of a and b with NumPy broadcasting (torch.maximum); either may be a number.
 * NaN propagates; at a tie each side gets half the gradient.
 */
export function maximum(a: Tensor | number, b: Tensor | number): Tensor { return extremum("maximum", a, b); }

/**
 * Element-wise minimum of a and b with NumPy broadcasting (torch.minimum); either may be a number.
 * NaN propagates; at a tie each side gets half the gradient.
 */
export function minimum(a: Tensor | number, b: Tensor | number): Tensor { return extremum("minimum", a, b); }

/**
 * a where cond is nonzero, b elsewhere (torch.where), cond, a and b broadcast together; a and b may
 * be numbers (e.g. `where(mask, scores, -Infinity)`). cond is a Tensor of 0/1 (any nonzero counts as
 * true, NaN as false) and gets no gradient.
 */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  checkTensor(cond, "where", "cond");
  checkOperand("where", "a", a);
  checkOperand("where", "b", b);
  const at = asTensor(a);
  const bt = asTensor(b);
  let outShape: number[];
  try {
    outShape = broadcastShapes(cond.shape, broadcastShapes(at.shape, bt.shape, "where"), "where");
  } catch {
    throw new Error(`where: cond ${fmt(cond.shape)}, a ${fmt(at.shape)} and b ${fmt(bt.shape)} cannot be broadcast together`);
  }
  const out = Tensor.empty(outShape);
  const n = out.size;
  const co = broadcastOffsets(cond.shape, outShape);
  const ao = broadcastOffsets(at.shape, outShape);
  const bo = broadcastOffsets(bt.shape, outShape);
  const cd = cond.data;
  const ad = at.data;
  const bd = bt.data;
  const od = out.data;
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = cd[co ? co[i] : i];
    if (c !== 0 && !Number.isNaN(c)) { od[i] = ad[ao ? ao[i] : i]; mask[i] = FROM_A; } else { od[i] = bd[bo ? bo[i] : i]; mask[i] = FROM_B; }
  }
  return record(out, "where", [at, bt], (g, needs) => [
    needs[0] ? maskedGrad(g, mask, A_FACTOR, outShape, at.shape) : null,
    needs[1] ? maskedGrad(g, mask, B_FACTOR, outShape, bt.shape) : null,
  ]);
}
