// 2-D max and average pooling over NCHW (padding: -inf for max, zeros counted in the average like
// torch's count_include_pad=True).
import { getBackend } from "../../backend/index.js";
import type { PoolParams } from "../../backend/backend.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt } from "../../tensor/shape.js";
import { record } from "../engine.js";
import { checkTensor, pair } from "./util.js";
import { allocFloat32, allocInt32 } from "../../tensor/host-arrays.js";

type Size2 = number | readonly [number, number];

function poolParams(op: string, x: Tensor, kernel: Size2, stride: Size2 | undefined, padding: Size2): PoolParams {
  checkTensor(x, op, "input");
  if (x.rank !== 4) throw new Error(`${op}: input ${fmt(x.shape)} must be [N, C, H, W]`);
  const [kh, kw] = pair(kernel, op, "kernel", 1);
  const [sh, sw] = pair(stride ?? kernel, op, "stride", 1);
  const [ph, pw] = pair(padding, op, "padding", 0);
  if (2 * ph > kh || 2 * pw > kw) {
    throw new Error(`${op}: padding ${ph}x${pw} must be at most half the kernel ${kh}x${kw} (as in torch)`);
  }
  const [n, c, h, w] = x.shape;
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  if (oh < 1 || ow < 1) throw new Error(`${op}: kernel ${kh}x${kw} is larger than the padded input ${fmt(x.shape)} (padding ${ph}x${pw})`);
  return { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow };
}

/** Max pooling; ties go to the first maximum in row-major window order. */
export function maxPool2d(x: Tensor, kernel: Size2, stride?: Size2, padding: Size2 = 0): Tensor {
  const p = poolParams("maxPool2d", x, kernel, stride, padding);
  const be = getBackend();
  const out = Tensor.zeros([p.n, p.c, p.oh, p.ow]);
  const argmax = allocInt32(out.size); // stays on a device between the forward and backward kernels
  be.maxPool2d(x.data, p, out.data, argmax);
  return record(out, "maxPool2d", [x], (dy) => {
    const dx = allocFloat32(x.size);
    be.maxPool2dBackward(dy, argmax, p, dx, false);
    return [dx];
  });
}

export function avgPool2d(x: Tensor, kernel: Size2, stride?: Size2, padding: Size2 = 0): Tensor {
  const p = poolParams("avgPool2d", x, kernel, stride, padding);
  const be = getBackend();
  const out = Tensor.zeros([p.n, p.c, p.oh, p.ow]);
  be.avgPool2d(x.data, p, out.data);
  return record(out, "avgPool2d", [x], (dy) => {
    const dx = allocFloat32(x.size);
    be.avgPool2dBackward(dy, p, dx, false);
    return [dx];
  });
}
