// The kernel interface every backend implements. Kernels work on flat Float32Arrays in row-major
// (C-contiguous) layout and write into caller-allocated outputs, so memory stays owned by JS and the
// garbage collector. Shapes are passed as plain numbers; callers have already validated them.
//
// Conventions:
// - `accumulate` means `out += result` instead of `out = result` (used for gradient accumulation).
// - Index arrays (targets, embedding ids, argmax) are Int32Array.
// - NCHW layout for images; conv weights are [O, C, KH, KW] as in PyTorch.

import type { HostArrays } from "../tensor/host-arrays.js";

export type UnaryOp = "relu" | "gelu" | "tanh" | "exp" | "log" | "neg" | "sigmoid" | "sqrt";
export type BinaryOp = "add" | "sub" | "mul" | "div";

export interface ConvParams {
  n: number; c: number; h: number; w: number; // input [n, c, h, w]
  o: number; kh: number; kw: number; // weight [o, c, kh, kw]
  sh: number; sw: number; ph: number; pw: number; // stride, zero padding
  oh: number; ow: number; // output [n, o, oh, ow]
}

export interface PoolParams {
  n: number; c: number; h: number; w: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number;
  oh: number; ow: number;
}

/**
 * A copy along one axis: x viewed as [outer, srcSize, inner], out as [outer, dstSize, inner];
 * out[o, dstStart + j, i] = x[o, srcStart + j, i] for j < len. The rest of out is zeroed when
 * `zero`, else kept.
 */
export interface AxisCopy {
  outer: number; inner: number; len: number;
  srcSize: number; srcStart: number; dstSize: number; dstStart: number;
  zero: boolean;
}

export interface Backend {
  readonly name: "native" | "reference" | "webgpu";
  /**
   * Where new tensors' memory comes from while this backend is current (a device backend's arrays
   * that read device values back on host access); absent: plain Float32Arrays.
   * @internal
   */
  readonly hostArrays?: HostArrays;

  // out[b] (+)= op(a[b]) @ op(b[b]) for b < batch. op(a) is [m, k], op(b) is [k, n], out[b] is [m, n].
  // Stored layouts: a is [batch, m, k] or, if transA, [batch, k, m]; b is [batch, k, n] or, if
  // transB, [batch, n, k]. With bBroadcast the single matrix b is shared by every batch entry.
  // An optional bias [n] is added to every row of the product (a fused linear layer's bias).
  matmul(a: Float32Array, b: Float32Array, out: Float32Array, batch: number, m: number, k: number, n: number,
    transA: boolean, transB: boolean, accumulate: boolean, bBroadcast?: boolean, bias?: Float32Array | null): void;

  // Convolution (cross-correlation, like PyTorch). bias may be null.
  conv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, out: Float32Array, p: ConvParams): void;
  conv2dBackwardData(dy: Float32Array, w: Float32Array, dx: Float32Array, p: ConvParams, accumulate: boolean): void;
  // dw (+)= ..., db (+)= sum of dy over n, oh, ow (db may be null).
  conv2dBackwardWeights(x: Float32Array, dy: Float32Array, dw: Float32Array, db: Float32Array | null, p: ConvParams,
    accumulate: boolean): void;

  // Element-wise binary op with NumPy broadcasting. Shapes are right-aligned against outShape;
  // aShape and bShape have the same rank as outShape (callers pad with leading 1s).
  binary(op: BinaryOp, a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[],
    out: Float32Array, outShape: readonly number[]): void;
  // out = op(x), same length.
  unary(op: UnaryOp, x: Float32Array, out: Float32Array): void;
  // dx (+)= dy * op'(x); y = op(x) is passed as well since some derivatives are cheaper from it.
  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array,
    accumulate: boolean): void;
  // out = alpha * x + beta * out (beta = 0 ignores the old contents of out, even NaN).
  axpby(alpha: number, x: Float32Array, beta: number, out: Float32Array): void;
  // out = x * alpha + beta (element-wise scalar affine).
  affine(x: Float32Array, alpha: number, beta: number, out: Float32Array): void;

  // x viewed as [outer, mid, inner]; reduce over mid into out [outer, inner].
  sum(x: Float32Array, outer: number, mid: number, inner: number, out: Float32Array, accumulate: boolean): void;
  // Max over mid; argmax receives the index in 0..mid-1 of the first maximum.
  max(x: Float32Array, outer: number, mid: number, inner: number, out: Float32Array, argmax: Int32Array): void;

  // Row-wise (last axis) softmax or log-softmax of x [rows, cols].
  softmax(x: Float32Array, rows: number, cols: number, out: Float32Array, log: boolean): void;
  // Given y = (log)softmax(x) and dy, dx (+)= the gradient.
  softmaxBackward(y: Float32Array, dy: Float32Array, rows: number, cols: number, dx: Float32Array, log: boolean,
    accumulate: boolean): void;
  // Writes log-softmax of logits into logProbs and returns sum over rows of -logProbs[r, targets[r]].
  crossEntropy(logits: Float32Array, targets: Int32Array, rows: number, cols: number, logProbs: Float32Array): number;
  /**
   * Rows of logits [rows, cols] whose first maximum (by >) is at the target class. Optional: without
   * it the caller counts on the host; a device backend has it so that the logits need not come back.
   * It returns a getter: the count is started now and read when asked, so a device backend can bring
   * it back with the next read-back (the loss's) instead of waiting once more.
   * @internal
   */
  countCorrect?(logits: Float32Array, targets: Int32Array, rows: number, cols: number): () => number;
  // dx (+)= scale * (softmax - onehot(targets)).
  crossEntropyBackward(logProbs: Float32Array, targets: Int32Array, rows: number, cols: number, scale: number,
    dx: Float32Array, accumulate: boolean): void;

  // Layer norm over the last axis of x [rows, cols]; gamma/beta [cols]. Saves mean and rstd [rows].
  layerNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array, rows: number, cols: number, eps: number,
    out: Float32Array, mean: Float32Array, rstd: Float32Array): void;
  // dx (+)= ..., dgamma += ..., dbeta += ... (parameter gradients always accumulate).
  layerNormBackward(x: Float32Array, gamma: Float32Array, dy: Float32Array, mean: Float32Array, rstd: Float32Array,
    rows: number, cols: number, dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, accumulate: boolean): void;

  // Normalisation of x [n, c, hw] with statistics over groups of channels (group norm: per sample and
  // group; mean/rstd are [n, groups]). Affine per channel with gamma/beta [c].
  groupNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array, n: number, c: number, hw: number,
    groups: number, eps: number, out: Float32Array, mean: Float32Array, rstd: Float32Array): void;
  groupNormBackward(x: Float32Array, gamma: Float32Array, dy: Float32Array, mean: Float32Array, rstd: Float32Array,
    n: number, c: number, hw: number, groups: number, dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array,
    accumulate: boolean): void;

  // Batch norm of x [n, c, hw]. Training: statistics over (n, hw) per channel written to mean and
  // var (biased variance) and rstd = 1/sqrt(var + eps) [c]. Inference: uses the given mean/var.
  batchNormTrain(x: Float32Array, gamma: Float32Array, beta: Float32Array, n: number, c: number, hw: number,
    eps: number, out: Float32Array, mean: Float32Array, variance: Float32Array, rstd: Float32Array): void;
  batchNormInference(x: Float32Array, gamma: Float32Array, beta: Float32Array, mean: Float32Array,
    variance: Float32Array, n: number, c: number, hw: number, eps: number, out: Float32Array): void;
  batchNormBackward(x: Float32Array, gamma: Float32Array, dy: Float32Array, mean: Float32Array, rstd: Float32Array,
    n: number, c: number, hw: number, dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array,
    accumulate: boolean): void;

  // Pooling over [n, c, h, w]. Max pooling records the flat input offset (within its h*w plane) of
  // each output's maximum; padding counts as -inf for max and as 0 (included in the divisor, like
  // PyTorch's count_include_pad=true) for average.
  maxPool2d(x: Float32Array, p: PoolParams, out: Float32Array, argmax: Int32Array): void;
  maxPool2dBackward(dy: Float32Array, argmax: Int32Array, p: PoolParams, dx: Float32Array, accumulate: boolean): void;
  avgPool2d(x: Float32Array, p: PoolParams, out: Float32Array): void;
  avgPool2dBackward(dy: Float32Array, p: PoolParams, dx: Float32Array, accumulate: boolean): void;

  // out[i, :] = table[ids[i], :] for table [rows, dim]; backward scatter-adds into dtable.
  gather(table: Float32Array, ids: Int32Array, dim: number, out: Float32Array): void;
  scatterAdd(dy: Float32Array, ids: Int32Array, dim: number, dtable: Float32Array): void;

  // out = x permuted: x has `shape`, out has shape[perm[i]] along axis i.
  permute(x: Float32Array, shape: readonly number[], perm: readonly number[], out: Float32Array,
    accumulate: boolean): void;

  /**
   * Dropout's mask for p < 1: mask[i] = counterUint32(k0, k1, i) / 2^32 < p ? 0 : 1 / (1 - p)
   * (src/tensor/random.ts). Optional: without it the op draws the same mask on the host.
   * @internal
   */
  dropoutMask?(mask: Float32Array, k0: number, k1: number, p: number): void;
  /**
   * Slice and concat copies (AxisCopy). Optional: without it the ops copy on the host; a device
   * backend has it so that the copies stay on the device.
   * @internal
   */
  copyAxis?(x: Float32Array, out: Float32Array, p: AxisCopy): void;

  // For x [batch, t, t] (attention scores), out = x with entries j > i set to `value` (a causal mask).
  causalMask(x: Float32Array, batch: number, t: number, value: number, out: Float32Array): void;

  // Optimizer updates, in place on w and the state buffers. Follow torch.optim exactly:
  // SGD: g' = g + wd*w; v = momentum*v + (1-dampening)*g' (v = g' on the first step, signalled by
  // firstStep); step = nesterov ? g' + momentum*v : v; w -= lr*step.
  sgdStep(w: Float32Array, g: Float32Array, v: Float32Array | null, lr: number, momentum: number, dampening: number,
    weightDecay: number, nesterov: boolean, firstStep: boolean): void;
  // AdamW (decoupled weight decay): w *= 1 - lr*wd; m, v moments; bias corrections from step (1-based).
  adamwStep(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number,
    beta2: number, eps: number, weightDecay: number, step: number): void;
}
