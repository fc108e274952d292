// The webgpu backend: each kernel below describes its operands and passes for this thread's GPU
// thread (gpu.ts). Arrays from the backend's factory (hostArrays) stay on the device; plain arrays
// are uploaded and, when written, read back before the kernel returns.
import type { Backend } from "../backend.js";
import { broadcastStrides } from "../strides.js";
import { buf, Gpu, out, params, scratch, type GpuCounts, type GpuOptions } from "./gpu.js";
import type { GpuInit } from "./protocol.js";
import * as ewKernels from "./kernels-elementwise.js";
import * as rowKernels from "./kernels-rows.js";
import * as matmulKernels from "./kernels-matmul.js";
import * as convKernels from "./kernels-conv.js";
import * as normKernels from "./kernels-norm.js";
import { builtOnce } from "./wgsl.js";

const ew = builtOnce(ewKernels), rows = builtOnce(rowKernels), conv = builtOnce(convKernels), norm = builtOnce(normKernels);
const { matmulBlock, matmulShader } = builtOnce(matmulKernels);

function u(flag: boolean): number {
  return flag ? 1 : 0;
}

function checkIds(ids: Int32Array, limit: number, what: string, noun: string): void {
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= limit) throw new Error(`${what}: ${noun} ${ids[i]} at position ${i} is outside 0..${limit - 1}`);
  }
}

export interface WebGpuBackend extends Backend {
  /** The adapter's name and the Dawn backend it came from. */
  readonly adapter: string;
  /** Host <-> device traffic so far. */
  readonly counts: Readonly<GpuCounts>;
  /** Ends the GPU thread; the backend cannot be used afterwards. */
  close(): void;
}

export function createWebGpuBackend(init: GpuInit = {}, opts: GpuOptions = {}): WebGpuBackend {
  const g = new Gpu(init, opts);
  const wg = g.wg;
  /** In-place-or-accumulate output: its old contents are needed only when accumulating. */
  const dest = (o: Float32Array, acc: boolean) => (acc ? buf(o) : out(o));
  // Stands in for an absent optional operand (bias, velocity): a constant, so the upload cache sends it once.
  const NONE = new Float32Array(1);

  const b: WebGpuBackend = {
    name: "webgpu",
    adapter: g.adapter,
    counts: g.counts,
    ...(g.resident ? { hostArrays: g.resident } : {}),
    close: () => g.close(),

    matmul(a, bm, o, batch, m, k, n, transA, transB, accumulate, bBroadcast = false, bias = null) {
      const t = g.tile;
      const edge = matmulBlock(t);
      const pass = {
        shader: g.shader(matmulShader(t)), bindings: [0, 1, 2, 3],
        params: params(m, [k, n, u(transA), u(transB), u(accumulate), u(bBroadcast), u(bias !== null)], []),
        groups: [Math.ceil(n / edge), Math.ceil(m / edge), batch] as [number, number, number],
      };
      if (batch === 0 || m === 0 || n === 0) return;
      g.run([buf(a), buf(bm), buf(bias ?? NONE), dest(o, accumulate)], [pass], [3], "matmul");
    },

    conv2d(x, w, bias, o, p) {
      const geo = [...conv.geometry(p), u(bias !== null)];
      const k = p.c * p.kh * p.kw, cols = p.n * p.oh * p.ow;
      if (o.length === 0) return;
      const edge = matmulBlock(g.tile);
      // Past the size limit, or more column blocks than a dispatch dimension is sure to allow.
      if (Math.max(k, p.o) * cols > g.im2colWords || Math.ceil(cols / edge) > 65535) {
        g.run([buf(x), buf(w), buf(bias ?? NONE), out(o)], [g.pass(conv.conv2dShader(wg), [0, 1, 2, 3], o.length, geo)], [3], "conv2d");
        return;
      }
      // im2col, one matmul (its register-blocked tiles), then the output's layout and the bias.
      g.run([buf(x), buf(w), buf(bias ?? NONE), out(o), scratch(k * cols), scratch(p.o * cols)], [
        g.pass(conv.im2colShader(wg), [0, 4], k * cols, conv.geometry(p)),
        { shader: g.shader(matmulShader(g.tile)), bindings: [1, 4, 2, 5], params: params(p.o, [k, cols, 0, 0, 0, 0, 0], []),
          groups: [Math.ceil(cols / edge), Math.ceil(p.o / edge), 1] },
        g.pass(conv.convOutputShader(wg), [5, 2, 3], o.length, geo),
      ], [3], "conv2d");
    },

    conv2dBackwardData(dy, w, dx, p, accumulate) {
      const geo = [...conv.geometry(p), u(accumulate)];
      const k = p.c * p.kh * p.kw, positions = p.oh * p.ow, edge = matmulBlock(g.tile);
      if (dx.length === 0) return;
      if (k * p.n * positions > g.im2colWords || Math.ceil(k / edge) > 65535 || p.n > 65535) {
        g.run([buf(dy), buf(w), dest(dx, accumulate)], [g.pass(conv.conv2dBackwardDataShader(wg), [0, 1, 2], dx.length, geo)], [2],
          "conv2dBackwardData");
        return;
      }
      // Per sample, dy^T [oh*ow, o] x W [o, c*kh*kw] by the matmul (W shared), then col2im.
      g.run([buf(dy), buf(w), dest(dx, accumulate), scratch(p.n * positions * k), buf(NONE)], [
        { shader: g.shader(matmulShader(g.tile)), bindings: [0, 1, 4, 3], params: params(positions, [p.o, k, 1, 0, 0, 1, 0], []),
          groups: [Math.ceil(k / edge), Math.ceil(positions / edge), p.n] },
        g.pass(conv.col2imShader(wg), [3, 2], dx.length, geo),
      ], [2], "conv2dBackwardData");
    },

    conv2dBackwardWeights(x, dy, dw, db, p, accumulate) {
      const geo = [...conv.geometry(p), u(accumulate)];
      const len = p.n * p.oh * p.ow;
      const passes = [g.reducePass((l) => conv.conv2dBackwardWeightsShader(wg, l), [0, 1, 2], dw.length, len, geo)];
      if (db) passes.push(g.reducePass((l) => conv.conv2dBackwardBiasShader(wg, l), [1, 3], db.length, len, geo));
      g.run([buf(x), buf(dy), dest(dw, accumulate), dest(db ?? NONE, accumulate)], passes,
        db ? [2, 3] : [2], "conv2dBackwardWeights");
    },

    maxPool2d(x, p, o, argmax) {
      g.run([buf(x), out(o), out(argmax)], [g.pass(conv.maxPoolShader(wg), [0, 1, 2], o.length,
        conv.geometry(p))], [1, 2], "maxPool2d");
    },

    maxPool2dBackward(dy, argmax, p, dx, accumulate) {
      g.run([buf(dy), buf(argmax), dest(dx, accumulate)], [g.pass(conv.maxPoolBackwardShader(wg), [0, 1, 2], dx.length,
        [...conv.geometry(p), u(accumulate)])], [2], "maxPool2dBackward");
    },

    avgPool2d(x, p, o) {
      g.run([buf(x), out(o)], [g.pass(conv.avgPoolShader(wg), [0, 1], o.length, conv.geometry(p))], [1],
        "avgPool2d");
    },

    avgPool2dBackward(dy, p, dx, accumulate) {
      g.run([buf(dy), dest(dx, accumulate)], [g.pass(conv.avgPoolBackwardShader(wg), [0, 1], dx.length,
        [...conv.geometry(p), u(accumulate)])], [1], "avgPool2dBackward");
    },

    groupNorm(x, gamma, beta, n, c, hw, groups, eps, o, mean, rstd) {
      g.run([buf(x), buf(gamma), buf(beta), out(o), out(mean), out(rstd)],
        [g.rowPass(norm.groupNormShader(wg), [0, 1, 2, 3, 4, 5], n * groups, [c, hw, groups], [eps])], [3, 4, 5], "groupNorm");
    },

    groupNormBackward(x, gamma, dy, mean, rstd, n, c, hw, groups, dx, dgamma, dbeta, accumulate) {
      const passes = [
        g.rowPass(norm.groupNormBackwardDxShader(wg), [0, 1, 2, 3, 4, 5], n * groups, [c, hw, groups, u(accumulate)]),
        g.reducePass((l) => norm.groupNormBackwardParamsShader(wg, l), [0, 2, 3, 4, 6, 7], c, n * hw, [n, hw, groups]),
      ];
      g.run([buf(x), buf(gamma), buf(dy), buf(mean), buf(rstd), dest(dx, accumulate), buf(dgamma), buf(dbeta)],
        passes, [5, 6, 7], "groupNormBackward");
    },

    batchNormTrain(x, gamma, beta, n, c, hw, eps, o, mean, variance, rstd) {
      g.run([buf(x), buf(gamma), buf(beta), out(o), out(mean), out(variance), out(rstd)],
        [g.rowPass(norm.batchNormTrainShader(wg), [0, 1, 2, 3, 4, 5, 6], c, [n, hw], [eps])], [3, 4, 5, 6], "batchNormTrain");
    },

    batchNormInference(x, gamma, beta, mean, variance, _n, c, hw, eps, o) {
      g.run([buf(x), buf(gamma), buf(beta), buf(mean), buf(variance), out(o)],
        [g.pass(norm.batchNormInferenceShader(wg), [0, 1, 2, 3, 4, 5], o.length, [c, hw], [eps])], [5], "batchNormInference");
    },

    batchNormBackward(x, gamma, dy, mean, rstd, n, c, hw, dx, dgamma, dbeta, accumulate) {
      g.run([buf(x), buf(gamma), buf(dy), buf(mean), buf(rstd), dest(dx, accumulate), buf(dgamma), buf(dbeta)],
        [g.rowPass(norm.batchNormBackwardShader(wg), [0, 1, 2, 3, 4, 5, 6, 7], c, [n, hw, u(accumulate)])], [5, 6, 7],
        "batchNormBackward");
    },

    binary(op, a, aShape, bb, bShape, o, outShape) {
      const rank = outShape.length;
      if (aShape.length !== rank || bShape.length !== rank) {
        throw new Error(`webgpu binary: ranks of ${aShape.length}, ${bShape.length} and ${rank} differ (pad with leading 1s)`);
      }
      const shapes = Uint32Array.from([...outShape, ...broadcastStrides(aShape, outShape), ...broadcastStrides(bShape, outShape)]);
      g.run([buf(a), buf(bb), buf(shapes), out(o)],
        [g.pass(ew.binaryShader(wg, op), [0, 1, 2, 3], o.length, [rank])], [3], `binary ${op}`);
    },

    unary(op, x, o) {
      g.run([buf(x), out(o)], [g.pass(ew.unaryShader(wg, op), [0, 1], x.length, [])], [1], `unary ${op}`);
    },

    unaryBackward(op, x, y, dy, dx, accumulate) {
      g.run([buf(x), buf(y), buf(dy), dest(dx, accumulate)],
        [g.pass(ew.unaryBackwardShader(wg, op), [0, 1, 2, 3], x.length, [u(accumulate)])], [3], `unaryBackward ${op}`);
    },

    axpby(alpha, x, beta, o) {
      const useOld = beta !== 0;
      g.run([buf(x), dest(o, useOld)], [g.pass(ew.axpbyShader(wg), [0, 1], o.length, [u(useOld)], [alpha, beta])],
        [1], "axpby");
    },

    affine(x, alpha, beta, o) {
      g.run([buf(x), out(o)], [g.pass(ew.affineShader(wg), [0, 1], o.length, [], [alpha, beta])], [1], "affine");
    },

    sum(x, outer, mid, inner, o, accumulate) {
      g.run([buf(x), dest(o, accumulate)],
        [g.reducePass((l) => rows.sumShader(wg, l), [0, 1], outer * inner, mid, [mid, inner, u(accumulate)])], [1], "sum");
    },

    max(x, outer, mid, inner, o, argmax) {
      g.run([buf(x), out(o), out(argmax)],
        [g.reducePass((l) => rows.maxShader(wg, l), [0, 1, 2], outer * inner, mid, [mid, inner])], [1, 2], "max");
    },

    softmax(x, r, cols, o, log) {
      g.run([buf(x), out(o)], [g.rowPass(rows.softmaxShader(wg), [0, 1], r, [cols, u(log)])], [1], "softmax");
    },

    softmaxBackward(y, dy, r, cols, dx, log, accumulate) {
      g.run([buf(y), buf(dy), dest(dx, accumulate)],
        [g.rowPass(rows.softmaxBackwardShader(wg), [0, 1, 2], r, [cols, u(log), u(accumulate)])], [2], "softmaxBackward");
    },

    crossEntropy(logits, targets, r, cols, logProbs) {
      checkIds(targets, cols, "crossEntropy", "target");
      // The loss is summed on the device (float32, a fixed tree): only it comes back, not logProbs.
      const loss = new Float32Array(1);
      g.run([buf(logits), out(logProbs), buf(targets), out(loss)], [
        g.rowPass(rows.softmaxShader(wg), [0, 1], r, [cols, 1]),
        g.rowPass(rows.pickedSumShader(wg), [1, 2, 3], 1, [r, cols]),
      ], [1, 3], "crossEntropy");
      return loss[0];
    },

    countCorrect(logits, targets, r, cols) {
      // On the device until read; the next wait (the loss's) brings it back with its own read-back.
      const count = g.resident ? g.resident.alloc(1) : new Float32Array(1);
      g.run([buf(logits), buf(targets), out(count)],
        [g.rowPass(rows.countCorrectShader(wg), [0, 1, 2], 1, [r, cols])], [2], "countCorrect");
      g.readAlong(count);
      return () => count[0];
    },

    crossEntropyBackward(logProbs, targets, r, cols, scale, dx, accumulate) {
      g.run([buf(logProbs), buf(targets), dest(dx, accumulate)],
        [g.pass(rows.crossEntropyBackwardShader(wg), [0, 1, 2], r * cols, [cols, u(accumulate)], [scale])], [2],
        "crossEntropyBackward");
    },

    layerNorm(x, gamma, beta, r, cols, eps, o, mean, rstd) {
      g.run([buf(x), buf(gamma), buf(beta), out(o), out(mean), out(rstd)],
        [g.rowPass(rows.layerNormShader(wg), [0, 1, 2, 3, 4, 5], r, [cols], [eps])], [3, 4, 5], "layerNorm");
    },

    layerNormBackward(x, gamma, dy, mean, rstd, r, cols, dx, dgamma, dbeta, accumulate) {
      const passes = [
        g.rowPass(rows.layerNormBackwardDxShader(wg), [0, 1, 2, 3, 4, 5], r, [cols, u(accumulate)]),
        g.reducePass((l) => rows.layerNormBackwardParamsShader(wg, l), [0, 2, 3, 4, 6, 7], cols, r, [r]),
      ];
      g.run([buf(x), buf(gamma), buf(dy), buf(mean), buf(rstd), dest(dx, accumulate), buf(dgamma), buf(dbeta)],
        passes, [5, 6, 7], "layerNormBackward");
    },

    gather(table, ids, dim, o) {
      checkIds(ids, table.length / dim, "gather", "id");
      g.run([buf(table), buf(ids), out(o)], [g.pass(ew.gatherShader(wg), [0, 1, 2], ids.length * dim, [dim])],
        [2], "gather");
    },

    scatterAdd(dy, ids, dim, dtable) {
      checkIds(ids, dtable.length / dim, "scatterAdd", "id");
      g.run([buf(dy), buf(ids), buf(dtable)],
        [g.pass(ew.scatterAddShader(wg), [0, 1, 2], dtable.length, [dim, ids.length])], [2], "scatterAdd");
    },

    permute(x, shape, perm, o, accumulate) {
      const xStrides = broadcastStrides(shape, shape);
      const s = Uint32Array.from([...perm.map((p) => shape[p]), ...perm.map((p) => xStrides[p])]);
      g.run([buf(x), buf(s), dest(o, accumulate)],
        [g.pass(ew.permuteShader(wg), [0, 1, 2], o.length, [shape.length, u(accumulate)])], [2], "permute");
    },

    dropoutMask(mask, k0, k1, p) {
      // u < p 2^32 holds for an integer u exactly when u < ceil(p 2^32).
      const below = Math.ceil(p * 4294967296);
      if (mask.length === 0) return;
      g.run([out(mask)], [g.pass(ew.dropoutMaskShader(wg), [0], mask.length,
        [k0, k1, below >= 4294967296 ? 0 : below, u(below >= 4294967296)], [1 / (1 - p)])], [0], "dropoutMask");
    },

    copyAxis(x, o, p) {
      const items = p.outer * p.dstSize * p.inner;
      if (items === 0) return;
      const whole = p.zero || (p.dstStart === 0 && p.len === p.dstSize);
      g.run([buf(x), whole ? out(o) : buf(o)], [g.pass(ew.copyAxisShader(wg), [0, 1], items,
        [p.inner, p.len, p.srcSize, p.srcStart, p.dstSize, p.dstStart, u(p.zero)])], [1], "copyAxis");
    },

    causalMask(x, batch, t, value, o) {
      g.run([buf(x), out(o)], [g.pass(ew.causalMaskShader(wg), [0, 1], batch * t * t, [t], [value])], [1],
        "causalMask");
    },

    sgdStep(w, gr, v, lr, momentum, dampening, weightDecay, nesterov, firstStep) {
      const useV = momentum !== 0;
      if (useV && !v) throw new Error("sgdStep: momentum needs a velocity buffer");
      const vb = useV && v ? v : NONE;
      g.run([buf(w), buf(gr), buf(vb)], [g.pass(rows.sgdShader(wg), [0, 1, 2], w.length,
        [u(useV), u(nesterov), u(firstStep)], [lr, momentum, dampening, weightDecay])], useV ? [0, 2] : [0], "sgdStep");
    },

    adamwStep(w, gr, m, v, lr, beta1, beta2, eps, weightDecay, step) {
      // The bias corrections and step size are computed once in float64, as the reference does.
      const bc1 = 1 - Math.pow(beta1, step);
      const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
      g.run([buf(w), buf(gr), buf(m), buf(v)], [g.pass(rows.adamwShader(wg), [0, 1, 2, 3], w.length, [],
        [beta1, beta2, eps, 1 - lr * weightDecay, lr / bc1, bc2Sqrt])], [0, 2, 3], "adamwStep");
    },
  };
  return b;
}
