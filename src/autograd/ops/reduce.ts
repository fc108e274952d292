// Reductions over axes: sum, mean, max (with the first maximum receiving the gradient, like torch).
import { getBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt, normAxis, numel } from "../../tensor/shape.js";
import { copyOf, record } from "../engine.js";
import { broadcastTo, checkTensor, sumAxes } from "./util.js";
import { allocFloat32 } from "../../tensor/host-arrays.js";

/** Sorted unique non-negative axes; all axes when `axis` is undefined. */
function normAxes(op: string, x: Tensor, axis: number | readonly number[] | undefined): number[] {
  if (axis === undefined) return x.shape.map((_, i) => i);
  const list = typeof axis === "number" ? [axis] : [...axis];
  const axes = list.map((a) => normAxis(a, x.rank, `${op}: axis for input ${fmt(x.shape)}:`));
  if (new Set(axes).size !== axes.length) throw new Error(`${op}: axes ${JSON.stringify(list)} repeat an axis of ${fmt(x.shape)}`);
  return axes.sort((p, q) => p - q);
}

/** Shape with the reduced axes kept as 1 (keepdim) and the final output shape. */
function reducedShapes(x: Tensor, axes: readonly number[], keepdim: boolean): { keep: number[]; out: number[] } {
  const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = keepdim ? keep : x.shape.filter((_, i) => !axes.includes(i));
  return { keep, out };
}

export function sum(x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor {
  checkTensor(x, "sum", "input");
  const axes = normAxes("sum", x, axis);
  const { keep, out: outShape } = reducedShapes(x, axes, keepdim);
  const s = sumAxes(x.data, x.shape, axes);
  const out = new Tensor(s === x.data ? copyOf(s) : s, outShape);
  return record(out, "sum", [x], (g) => [broadcastTo(g, keep, x.shape)]);
}

export function mean(x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor {
  checkTensor(x, "mean", "input");
  const axes = normAxes("mean", x, axis);
  const count = axes.reduce((p, a) => p * x.shape[a], 1);
  const { keep, out: outShape } = reducedShapes(x, axes, keepdim);
  const be = getBackend();
  const s = sumAxes(x.data, x.shape, axes);
  const out = new Tensor(allocFloat32(s.length), outShape);
  be.affine(s, 1 / count, 0, out.data);
  return record(out, "mean", [x], (g) => {
    const scaled = allocFloat32(g.length);
    be.affine(g, 1 / count, 0, scaled);
    return [broadcastTo(scaled, keep, x.shape)];
  });
}

/** Maximum along one axis; the gradient flows to the first maximum of each slice. */
export function max(x: Tensor, axis: number, keepdim = false): Tensor {
  checkTensor(x, "max", "input");
  const ax = normAxis(axis, x.rank, `max: axis for input ${fmt(x.shape)}:`);
  const outer = numel(x.shape.slice(0, ax));
  const mid = x.shape[ax];
  const inner = numel(x.shape.slice(ax + 1));
  if (mid === 0) throw new Error(`max: axis ${axis} of ${fmt(x.shape)} is empty`);
  const { out: outShape } = reducedShapes(x, [ax], keepdim);
  const be = getBackend();
  const out = Tensor.zeros(outShape);
  const argmax = new Int32Array(outer * inner);
  be.max(x.data, outer, mid, inner, out.data, argmax);
  return record(out, "max", [x], (g) => {
    // Flat input offset of each maximum, then a scatter-add of rows of width 1.
    const ids = new Int32Array(argmax.length);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) ids[o * inner + j] = (o * mid + argmax[o * inner + j]) * inner + j;
    }
    const dx = allocFloat32(x.size);
    be.scatterAdd(g, ids, 1, dx);
    return [dx];
  });
}
