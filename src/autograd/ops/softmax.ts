// Softmax and log-softmax along an axis (max-subtracted inside the kernel, like torch).
import { getBackend } from "../../backend/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt, normAxis } from "../../tensor/shape.js";
import { gradBuffer, record } from "../engine.js";
import { transpose } from "./shape.js";
import { checkTensor } from "./util.js";

function softmaxLast(x: Tensor, log: boolean): Tensor {
  const name = log ? "logSoftmax" : "softmax";
  const be = getBackend();
  const cols = x.shape[x.rank - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = Tensor.empty(x.shape); // overwritten by the kernel
  be.softmax(x.data, rows, cols, out.data, log);
  return record(out, name, [x], (g) => {
    const dx = gradBuffer(x.size);
    be.softmaxBackward(out.data, g, rows, cols, dx, log, false);
    return [dx];
  });
}

function softmaxAxis(x: Tensor, axis: number, log: boolean): Tensor {
  const name = log ? "logSoftmax" : "softmax";
  checkTensor(x, name, "input");
  if (x.rank === 0) throw new Error(`${name}: input ${fmt(x.shape)} needs at least one axis`);
  const ax = normAxis(axis, x.rank, `${name}: axis for input ${fmt(x.shape)}:`);
  if (ax === x.rank - 1) return softmaxLast(x, log);
  // Other axes: move the axis last, normalise, move it back (the kernels are row-wise).
  return transpose(softmaxLast(transpose(x, ax, -1), log), ax, -1);
}

export function softmax(x: Tensor, axis = -1): Tensor { return softmaxAxis(x, axis, false); }
export function logSoftmax(x: Tensor, axis = -1): Tensor { return softmaxAxis(x, axis, true); }
