// Broadcasting element-wise arithmetic: add, sub, mul, div (Tensor or number operands) and neg.
import { getBackend } from "../../backend/index.js";
import type { BinaryOp } from "../../backend/backend.js";
import { Tensor } from "../../tensor/tensor.js";
import { broadcastShapes, padShape } from "../../tensor/shape.js";
import { describeValue } from "../../util/describe.js";
import { copyOf, gradBuffer, record } from "../engine.js";
import { asTensor, reduceToShape } from "./util.js";
import { allocFloat32 } from "../../tensor/host-arrays.js";

/** out = x * alpha + beta for a tensor and a numeric constant (no broadcasting needed). */
function scalarAffine(name: string, x: Tensor, alpha: number, beta: number): Tensor {
  const be = getBackend();
  const out = Tensor.empty(x.shape);
  be.affine(x.data, alpha, beta, out.data);
  return record(out, name, [x], (g) => {
    if (alpha === 1) return [g];
    const dx = gradBuffer(g.length);
    be.affine(g, alpha, 0, dx);
    return [dx];
  });
}

function checkOperands(op: string, a: Tensor | number, b: Tensor | number): void {
  if (typeof a === "number" && typeof b === "number") throw new Error(`${op}: at least one operand must be a Tensor, got two numbers`);
  for (const v of [a, b]) {
    if (typeof v !== "number" && !(v instanceof Tensor)) throw new Error(`${op}: operands must be Tensors or numbers, got ${describeValue(v)}`);
  }
}

/** The broadcasting forward shared by the four ops; backward is op-specific. */
function broadcastBinary(op: BinaryOp, a: Tensor, b: Tensor): { out: Tensor; aPad: number[]; bPad: number[] } {
  const outShape = broadcastShapes(a.shape, b.shape, op);
  const rank = outShape.length;
  const aPad = padShape(a.shape, rank);
  const bPad = padShape(b.shape, rank);
  const out = Tensor.empty(outShape);
  getBackend().binary(op, a.data, aPad, b.data, bPad, out.data, outShape);
  return { out, aPad, bPad };
}

export function add(a: Tensor | number, b: Tensor | number): Tensor {
  checkOperands("add", a, b);
  if (typeof b === "number") return scalarAffine("add", a as Tensor, 1, b);
  if (typeof a === "number") return scalarAffine("add", b, 1, a);
  const { out } = broadcastBinary("add", a, b);
  return record(out, "add", [a, b], (g, needs) => {
    const ga = needs[0] ? reduceToShape(g, out.shape, a.shape) : null;
    let gb = needs[1] ? reduceToShape(g, out.shape, b.shape) : null;
    if (gb !== null && gb === ga) gb = copyOf(gb); // never hand one array to two inputs
    return [ga, gb];
  });
}

export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  checkOperands("sub", a, b);
  if (typeof b === "number") return scalarAffine("sub", a as Tensor, 1, -b);
  if (typeof a === "number") return scalarAffine("sub", b, -1, a);
  const be = getBackend();
  const { out } = broadcastBinary("sub", a, b);
  return record(out, "sub", [a, b], (g, needs) => {
    const ga = needs[0] ? reduceToShape(g, out.shape, a.shape) : null;
    let gb: Float32Array | null = null;
    if (needs[1]) {
      const r = reduceToShape(g, out.shape, b.shape);
      gb = allocFloat32(r.length);
      be.affine(r, -1, 0, gb);
    }
    return [ga, gb];
  });
}

export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  checkOperands("mul", a, b);
  if (typeof b === "number") return scalarAffine("mul", a as Tensor, b, 0);
  if (typeof a === "number") return scalarAffine("mul", b, a, 0);
  const be = getBackend();
  const { out, aPad, bPad } = broadcastBinary("mul", a, b);
  return record(out, "mul", [a, b], (g, needs) => {
    let ga: Float32Array | null = null;
    let gb: Float32Array | null = null;
    if (needs[0]) {
      const t = gradBuffer(out.size);
      be.binary("mul", g, out.shape, b.data, bPad, t, out.shape);
      ga = reduceToShape(t, out.shape, a.shape);
    }
    if (needs[1]) {
      const t = gradBuffer(out.size);
      be.binary("mul", g, out.shape, a.data, aPad, t, out.shape);
      gb = reduceToShape(t, out.shape, b.shape);
    }
    return [ga, gb];
  });
}

export function div(a: Tensor | number, b: Tensor | number): Tensor {
  checkOperands("div", a, b);
  const at = asTensor(a);
  const bt = asTensor(b);
  const be = getBackend();
  const { out, bPad } = broadcastBinary("div", at, bt);
  return record(out, "div", [at, bt], (g, needs) => {
    let ga: Float32Array | null = null;
    let gb: Float32Array | null = null;
    if (needs[0]) {
      const t = gradBuffer(out.size);
      be.binary("div", g, out.shape, bt.data, bPad, t, out.shape);
      ga = reduceToShape(t, out.shape, at.shape);
    }
    if (needs[1]) {
      // d(a/b)/db = -(a/b)/b = -out/b
      const t = gradBuffer(out.size);
      be.binary("mul", g, out.shape, out.data, out.shape, t, out.shape);
      const u = gradBuffer(out.size);
      be.binary("div", t, out.shape, bt.data, bPad, u, out.shape);
      const r = reduceToShape(u, out.shape, bt.shape);
      gb = allocFloat32(r.length);
      be.affine(r, -1, 0, gb);
    }
    return [ga, gb];
  });
}
