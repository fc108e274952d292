// 2-D convolution (cross-correlation, NCHW, weights [O, C, KH, KW]) with stride and zero padding.
import { getBackend } from "../../backend/index.js";
import type { ConvParams } from "../../backend/backend.js";
import { Tensor } from "../../tensor/tensor.js";
import { fmt } from "../../tensor/shape.js";
import { gradBuffer, record } from "../engine.js";
import { checkTensor, pair } from "./util.js";
import { allocFloat32 } from "../../tensor/host-arrays.js";

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
}

export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  checkTensor(x, "conv2d", "input");
  checkTensor(w, "conv2d", "weight");
  const [sh, sw] = pair(options.stride ?? 1, "conv2d", "stride", 1);
  const [ph, pw] = pair(options.padding ?? 0, "conv2d", "padding", 0);
  const what = `conv2d: input ${fmt(x.shape)} and weight ${fmt(w.shape)}`;
  if (x.rank !== 4) throw new Error(`${what}: input must be [N, C, H, W]`);
  if (w.rank !== 4) throw new Error(`${what}: weight must be [O, C, KH, KW]`);
  const [n, c, h, wd] = x.shape;
  const [o, wc, kh, kw] = w.shape;
  if (wc !== c) throw new Error(`${what}: input has ${c} channels but weight expects ${wc}`);
  if (b !== null && (b.rank !== 1 || b.shape[0] !== o)) {
    throw new Error(`conv2d: weight ${fmt(w.shape)} and bias ${fmt(b.shape)}: bias must be [${o}]`);
  }
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((wd + 2 * pw - kw) / sw) + 1;
  if (oh < 1 || ow < 1) throw new Error(`${what}: kernel ${kh}x${kw} is larger than the padded input ${h + 2 * ph}x${wd + 2 * pw}`);
  const p: ConvParams = { n, c, h, w: wd, o, kh, kw, sh, sw, ph, pw, oh, ow };
  return convolve("conv2d", x, w, b, p, [n, o, oh, ow]);
}

export interface Conv1dOptions {
  stride?: number;
  padding?: number;
}

/**
 * 1-D convolution (cross-correlation, torch.nn.functional.conv1d): x [N, C, L], weight [O, C, K],
 * optional bias [O] -> [N, O, floor((L + 2*padding - K) / stride) + 1]. Runs the conv2d kernels on
 * the same memory viewed as height 1 ([N, C, 1, L] and [O, C, 1, K]).
 */
export function conv1d(x: Tensor, w: Tensor, b: Tensor | null = null, options: Conv1dOptions = {}): Tensor {
  checkTensor(x, "conv1d", "input");
  checkTensor(w, "conv1d", "weight");
  const stride = options.stride ?? 1;
  const padding = options.padding ?? 0;
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`conv1d: stride ${JSON.stringify(stride)} must be an integer >= 1`);
  if (!Number.isInteger(padding) || padding < 0) throw new Error(`conv1d: padding ${JSON.stringify(padding)} must be an integer >= 0`);
  const what = `conv1d: input ${fmt(x.shape)} and weight ${fmt(w.shape)}`;
  if (x.rank !== 3) throw new Error(`${what}: input must be [N, C, L]`);
  if (w.rank !== 3) throw new Error(`${what}: weight must be [O, C, K]`);
  const [n, c, len] = x.shape;
  const [o, wc, k] = w.shape;
  if (wc !== c) throw new Error(`${what}: input has ${c} channels but weight expects ${wc}`);
  if (b !== null && (b.rank !== 1 || b.shape[0] !== o)) {
    throw new Error(`conv1d: weight ${fmt(w.shape)} and bias ${fmt(b.shape)}: bias must be [${o}]`);
  }
  const ol = Math.floor((len + 2 * padding - k) / stride) + 1;
  if (ol < 1) throw new Error(`${what}: kernel ${k} is longer than the padded input ${len + 2 * padding}`);
  const p: ConvParams = { n, c, h: 1, w: len, o, kh: 1, kw: k, sh: 1, sw: stride, ph: 0, pw: padding, oh: 1, ow: ol };
  return convolve("conv1d", x, w, b, p, [n, o, ol]);
}

/**
 * The convolution of x with w (+ b) by the conv2d kernels with parameters p (the layouts' memory is
 * that of [n, c, h, w] and [o, c, kh, kw] whatever ranks x and w have); the output has `outShape`.
 */
function convolve(name: string, x: Tensor, w: Tensor, b: Tensor | null, p: ConvParams, outShape: number[]): Tensor {
  const { n, o, oh, ow } = p;
  const be = getBackend();
  const out = Tensor.empty(outShape);
  be.conv2d(x.data, w.data, b ? b.data : null, out.data, p);
  const inputs = b ? [x, w, b] : [x, w];
  // Written over explicit batch rows (images) so that deferred weight gradients of many calls can be stacked.
  const grad = (dy: Float32Array, xData: Float32Array, rows: number, needs: readonly boolean[],
    into?: readonly (Float32Array | null)[]): (Float32Array | null)[] => {
    const q: ConvParams = { ...p, n: rows };
    let dx: Float32Array | null = null;
    let dw: Float32Array | null = null;
    let db: Float32Array | null = null;
    if (needs[0]) {
      dx = gradBuffer(xData.length);
      be.conv2dBackwardData(dy, w.data, dx, q, false);
    }
    const needDb = b !== null && needs[2];
    if (needs[1]) {
      // Accumulate into existing .grad buffers when both are there (one flag covers dw and db).
      const acc = !!into?.[1] && (!needDb || !!into?.[2]);
      dw = acc ? into![1] : gradBuffer(w.size);
      db = needDb ? (acc ? into![2] : allocFloat32(o)) : null;
      be.conv2dBackwardWeights(xData, dy, dw!, db, q, acc);
    } else if (needDb) {
      // Bias only: Σ over n, then over oh*ow.
      const perO = allocFloat32(o * oh * ow);
      be.sum(dy, 1, rows, o * oh * ow, perO, false);
      db = allocFloat32(o);
      be.sum(perO, o, oh * ow, 1, db, false);
    }
    return b ? [dx, dw, db] : [dx, dw];
  };
  return record(out, name, inputs, (dy, needs, into) => grad(dy, x.data, n, needs, into),
    { key: w, rows: n, saved: x.data, backward: grad });
}
