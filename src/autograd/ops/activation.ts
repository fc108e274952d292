// Element-wise unary functions: neg, relu, gelu (exact erf), tanh, exp, log, sigmoid, sqrt (abs and
// clamp, which select rather than compute, are in select.ts).
import { getBackend } from "../../backend/index.js";
import type { UnaryOp } from "../../backend/backend.js";
import { Tensor } from "../../tensor/tensor.js";
import { gradBuffer, record } from "../engine.js";
import { checkTensor } from "./util.js";

function unaryOp(op: UnaryOp, x: Tensor): Tensor {
  checkTensor(x, op, "input");
  const be = getBackend();
  const out = Tensor.empty(x.shape);
  be.unary(op, x.data, out.data);
  return record(out, op, [x], (g) => {
    const dx = gradBuffer(g.length);
    be.unaryBackward(op, x.data, out.data, g, dx, false);
    return [dx];
  });
}

export function neg(x: Tensor): Tensor { return unaryOp("neg", x); }
export function relu(x: Tensor): Tensor { return unaryOp("relu", x); }
/** GELU with the exact erf (torch's default approximate="none"). */
export function gelu(x: Tensor): Tensor { return unaryOp("gelu", x); }
export function tanh(x: Tensor): Tensor { return unaryOp("tanh", x); }
export function exp(x: Tensor): Tensor { return unaryOp("exp", x); }
export function log(x: Tensor): Tensor { return unaryOp("log", x); }
export function sigmoid(x: Tensor): Tensor { return unaryOp("sigmoid", x); }
export function sqrt(x: Tensor): Tensor { return unaryOp("sqrt", x); }
