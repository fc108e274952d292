// The webgpu backend (on Mesa's llvmpipe where there is no GPU) against the reference backend: every
// kernel with a WGSL version, on small random inputs, plus the missing-package and missing-adapter
// messages. Skips, saying why, where no WebGPU adapter opens.
//
// Bounds (the same as the native backend's agreement test):
// - Element-wise work, softmax, cross-entropy, layer norm, optimizers: max|gpu - ref| / max|ref| <= 1e-5.
// - matmul and the sum reduction: the float32 forward-error bound of a k-term sum,
//   |gpu - ref| <= gamma(k + 2) (|A||B| + |out_old|) element-wise, gamma(j) = j u / (1 - j u), u = 2^-24.
// - Selections (max, gather, scatter-add, permute, causal mask, relu, neg): exact.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Backend, BinaryOp, UnaryOp } from "../src/backend/backend.js";
import { referenceBackend as ref } from "../src/backend/reference.js";
import { createWebGpuBackend, FALLBACK, type WebGpuBackend } from "../src/backend/webgpu/backend.js";
import { NO_ADAPTER, NO_PACKAGE } from "../src/backend/webgpu/messages.js";
import { setBackend } from "../src/backend/index.js";
import { webgpuSeam } from "../src/backend/webgpu/seam.js";
import { Rng } from "../src/tensor/random.js";

let gpu: WebGpuBackend | null = null;
let skip: string | false = false;
try {
  gpu = createWebGpuBackend();
} catch (e) {
  skip = `no WebGPU adapter, skipping the webgpu kernel tests: ${(e as Error).message}`;
}
after(() => gpu?.close());
function G(): Backend {
  if (!gpu) throw new Error("webgpu backend not opened");
  return gpu;
}

const rng = new Rng(4242);
const U = 2 ** -24;
const randn = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => scale * rng.normal());
const abs = (a: Float32Array): Float32Array => a.map(Math.abs);

function close(label: string, got: Float32Array, want: Float32Array, tol = 1e-5): void {
  assert.equal(got.length, want.length, `${label}: length`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(want[i]) || !Number.isFinite(got[i])) {
      assert.ok(Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i])),
        `${label}: element ${i} is ${got[i]}, reference ${want[i]}`);
      continue;
    }
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  const e = diff / Math.max(scale, 1e-30);
  assert.ok(e <= tol, `${label}: relative error ${e.toExponential(3)} > ${tol}`);
}

function bounded(label: string, got: Float32Array, want: Float32Array, absBound: Float32Array, k: number): void {
  const gamma = ((k + 2) * U) / (1 - (k + 2) * U);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const lim = gamma * absBound[i] + 1e-38;
    if (!(err <= lim)) assert.fail(`${label}: element ${i} differs by ${err.toExponential(3)} (gpu ${got[i]}, reference ${want[i]}), bound ${lim.toExponential(3)}`);
  }
}

function exact(label: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${label}: element ${i} is ${got[i]}, reference ${want[i]}`);
  }
}

/** Runs a kernel on both backends with private copies of `outs` (which start equal). */
function both<T extends Float32Array | Int32Array>(outs: T[], run: (b: Backend, o: T[]) => void): [T[], T[]] {
  const a = outs.map((o) => o.slice() as T);
  const b = outs.map((o) => o.slice() as T);
  run(G(), a);
  run(ref, b);
  return [a, b];
}

describe("webgpu kernels agree with the reference backend", { skip }, () => {
  test("matmul: batches, transposes, accumulate, shared b, bias, partial tiles (float32 dot-product bound)", () => {
    const cases: [number, number, number, number, boolean, boolean, boolean, boolean, boolean][] = [
      // batch, m, k, n, transA, transB, accumulate, bBroadcast, bias
      [1, 3, 5, 4, false, false, false, false, false],
      [1, 1, 1, 1, false, false, false, false, false],
      [3, 17, 33, 9, true, false, false, false, false],
      [2, 16, 64, 31, false, true, false, false, true],
      [2, 5, 19, 23, true, true, true, false, false],
      [4, 6, 11, 13, false, false, true, true, true],
      [2, 4, 0, 3, false, false, false, false, false],
    ];
    for (const [batch, m, k, n, ta, tb, acc, bb, withBias] of cases) {
      const label = `matmul batch=${batch} m=${m} k=${k} n=${n} transA=${ta} transB=${tb} acc=${acc} bBroadcast=${bb} bias=${withBias}`;
      const a = randn(batch * m * k);
      const b = randn((bb ? 1 : batch) * k * n);
      const bias = withBias ? randn(n) : null;
      const out0 = randn(batch * m * n);
      const [[o1], [o2]] = both([out0], (be, [o]) => be.matmul(a, b, o, batch, m, k, n, ta, tb, acc, bb, bias));
      const bound = new Float32Array(batch * m * n);
      ref.matmul(abs(a), abs(b), bound, batch, m, k, n, ta, tb, false, bb, bias ? abs(bias) : null);
      if (acc) for (let i = 0; i < bound.length; i++) bound[i] += Math.abs(out0[i]);
      bounded(label, o1, o2, bound, k + (withBias ? 1 : 0));
    }
  });

  test("matmul gives the same bits with 64 and 128 invocations per workgroup (8x8 tiles either way differ only in launch shape)", () => {
    const other = createWebGpuBackend({}, { invocations: 64 });
    try {
      const a = randn(2 * 21 * 37);
      const b = randn(2 * 37 * 19);
      const o1 = new Float32Array(2 * 21 * 19);
      const o2 = new Float32Array(2 * 21 * 19);
      G().matmul(a, b, o1, 2, 21, 37, 19, false, false, false);
      other.matmul(a, b, o2, 2, 21, 37, 19, false, false, false);
      exact("matmul 64 vs default invocations", o1, o2);
    } finally {
      other.close();
    }
  });

  test("unary ops and their derivatives, with and without accumulate", () => {
    const x = randn(301, 2);
    const pos = x.map((v) => Math.abs(v) + 0.1);
    for (const op of ["relu", "gelu", "tanh", "exp", "log", "neg", "sigmoid", "sqrt"] as UnaryOp[]) {
      const input = op === "log" || op === "sqrt" ? pos : x;
      const [[y1], [y2]] = both([new Float32Array(input.length)], (be, [o]) => be.unary(op, input, o));
      if (op === "relu" || op === "neg") exact(`unary ${op}`, y1, y2);
      else close(`unary ${op}`, y1, y2);
      const dy = randn(input.length);
      for (const acc of [false, true]) {
        const [[d1], [d2]] = both([randn(input.length)], (be, [o]) => be.unaryBackward(op, input, y2, dy, o, acc));
        close(`unaryBackward ${op} acc=${acc}`, d1, d2);
      }
    }
    // Large arguments must saturate, not overflow to NaN.
    const big = Float32Array.from([-90, -30, 30, 90]);
    for (const op of ["tanh", "sigmoid", "gelu"] as UnaryOp[]) {
      const [[y1], [y2]] = both([new Float32Array(4)], (be, [o]) => be.unary(op, big, o));
      close(`unary ${op} at large |x|`, y1, y2);
    }
  });

  test("binary ops with broadcasting", () => {
    const shapes: [number[], number[], number[]][] = [
      [[3, 4], [3, 4], [3, 4]],
      [[2, 3, 4], [1, 3, 1], [2, 3, 4]],
      [[2, 1, 4], [1, 3, 1], [2, 3, 4]],
      [[1, 1, 4], [2, 3, 4], [2, 3, 4]],
      [[2, 3], [1, 1], [2, 3]],
    ];
    for (const [as, bs, os] of shapes) {
      const size = (s: number[]): number => s.reduce((p, d) => p * d, 1);
      const a = randn(size(as));
      const b = randn(size(bs)).map((v) => v + Math.sign(v || 1)); // away from 0 for div
      for (const op of ["add", "sub", "mul", "div"] as BinaryOp[]) {
        const [[o1], [o2]] = both([new Float32Array(size(os))], (be, [o]) => be.binary(op, a, as, b, bs, o, os));
        close(`binary ${op} ${JSON.stringify(as)} ${JSON.stringify(bs)}`, o1, o2);
      }
    }
  });

  test("axpby (beta 0 ignores NaN in out) and affine", () => {
    const x = randn(77);
    const [[o1], [o2]] = both([randn(77)], (be, [o]) => be.axpby(0.7, x, -1.3, o));
    close("axpby", o1, o2);
    const [[n1], [n2]] = both([new Float32Array(77).fill(NaN)], (be, [o]) => be.axpby(2, x, 0, o));
    close("axpby beta=0", n1, n2);
    const [[f1], [f2]] = both([new Float32Array(77)], (be, [o]) => be.affine(x, -0.5, 0.25, o));
    close("affine", f1, f2);
  });

  test("sum (dot-product bound) and max with argmax over the middle axis", () => {
    for (const [outer, mid, inner] of [[1, 10, 1], [3, 7, 5], [2, 50, 3], [4, 1, 6]]) {
      const x = randn(outer * mid * inner);
      for (const acc of [false, true]) {
        const old = randn(outer * inner);
        const [[s1], [s2]] = both([old], (be, [o]) => be.sum(x, outer, mid, inner, o, acc));
        const bound = new Float32Array(outer * inner);
        ref.sum(abs(x), outer, mid, inner, bound, false);
        if (acc) for (let i = 0; i < bound.length; i++) bound[i] += Math.abs(old[i]);
        bounded(`sum ${outer}x${mid}x${inner} acc=${acc}`, s1, s2, bound, mid);
      }
      const g = new Float32Array(outer * inner);
      const r = new Float32Array(outer * inner);
      const ga = new Int32Array(outer * inner);
      const ra = new Int32Array(outer * inner);
      G().max(x, outer, mid, inner, g, ga);
      ref.max(x, outer, mid, inner, r, ra);
      exact(`max ${outer}x${mid}x${inner}`, g, r);
      exact(`argmax ${outer}x${mid}x${inner}`, ga, ra);
    }
  });

  test("softmax, log-softmax and their backward; a fully masked row gives NaN like the reference", () => {
    const rows = 6, cols = 13;
    const x = randn(rows * cols, 3);
    for (let j = 0; j < cols; j += 2) x[cols + j] = -Infinity; // a partly masked row
    for (const log of [false, true]) {
      const [[y1], [y2]] = both([new Float32Array(rows * cols)], (be, [o]) => be.softmax(x, rows, cols, o, log));
      close(`softmax log=${log}`, y1, y2);
      const dy = randn(rows * cols);
      const fin = randn(rows * cols);
      const [[yf]] = both([new Float32Array(rows * cols)], (be, [o]) => be.softmax(fin, rows, cols, o, log));
      for (const acc of [false, true]) {
        const [[d1], [d2]] = both([randn(rows * cols)], (be, [o]) => be.softmaxBackward(yf, dy, rows, cols, o, log, acc));
        close(`softmaxBackward log=${log} acc=${acc}`, d1, d2);
      }
    }
    const masked = new Float32Array(4).fill(-Infinity);
    const [[m1], [m2]] = both([new Float32Array(4)], (be, [o]) => be.softmax(masked, 1, 4, o, false));
    close("softmax of an all -inf row", m1, m2);
  });

  test("cross-entropy: log-probabilities, loss, backward; a bad target names itself", () => {
    const rows = 9, cols = 7;
    const logits = randn(rows * cols, 2);
    const targets = Int32Array.from({ length: rows }, () => rng.int(cols));
    const lp1 = new Float32Array(rows * cols);
    const lp2 = new Float32Array(rows * cols);
    const l1 = G().crossEntropy(logits, targets, rows, cols, lp1);
    const l2 = ref.crossEntropy(logits, targets, rows, cols, lp2);
    close("crossEntropy logProbs", lp1, lp2);
    assert.ok(Math.abs(l1 - l2) <= 1e-5 * Math.abs(l2), `crossEntropy loss ${l1} vs ${l2}`);
    for (const acc of [false, true]) {
      const [[d1], [d2]] = both([randn(rows * cols)], (be, [o]) => be.crossEntropyBackward(lp2, targets, rows, cols, 0.25, o, acc));
      close(`crossEntropyBackward acc=${acc}`, d1, d2);
    }
    assert.throws(() => G().crossEntropy(logits, Int32Array.from(targets, (t, i) => (i === 3 ? cols : t)), rows, cols, lp1),
      /target 7 in row 3|target 7 at position 3/);
  });

  test("layer norm forward and backward (parameter gradients accumulate)", () => {
    const rows = 5, cols = 11;
    const x = randn(rows * cols, 2);
    const gamma = randn(cols), beta = randn(cols);
    const [[o1, m1, r1], [o2, m2, r2]] = both([new Float32Array(rows * cols), new Float32Array(rows), new Float32Array(rows)],
      (be, [o, m, r]) => be.layerNorm(x, gamma, beta, rows, cols, 1e-5, o, m, r));
    close("layerNorm out", o1, o2);
    close("layerNorm mean", m1, m2);
    close("layerNorm rstd", r1, r2);
    const dy = randn(rows * cols);
    for (const acc of [false, true]) {
      const [[dx1, dg1, db1], [dx2, dg2, db2]] = both([randn(rows * cols), randn(cols), randn(cols)],
        (be, [dx, dg, db]) => be.layerNormBackward(x, gamma, dy, m2, r2, rows, cols, dx, dg, db, acc));
      close(`layerNormBackward dx acc=${acc}`, dx1, dx2);
      close(`layerNormBackward dgamma acc=${acc}`, dg1, dg2);
      close(`layerNormBackward dbeta acc=${acc}`, db1, db2);
    }
  });

  test("gather, scatter-add (repeated ids, fixed order), permute, causal mask: exact", () => {
    const table = randn(10 * 4);
    const ids = Int32Array.from([3, 0, 9, 3, 3, 7]);
    const [[g1], [g2]] = both([new Float32Array(6 * 4)], (be, [o]) => be.gather(table, ids, 4, o));
    exact("gather", g1, g2);
    const dy = randn(6 * 4);
    const [[s1], [s2]] = both([randn(10 * 4)], (be, [o]) => be.scatterAdd(dy, ids, 4, o));
    exact("scatterAdd", s1, s2);
    assert.throws(() => G().gather(table, Int32Array.from([10]), 4, new Float32Array(4)), /id 10 at position 0 is outside 0..9/);
    const x = randn(2 * 3 * 4 * 5);
    for (const perm of [[0, 2, 1, 3], [3, 2, 1, 0], [1, 0, 3, 2]]) {
      for (const acc of [false, true]) {
        const [[p1], [p2]] = both([randn(x.length)], (be, [o]) => be.permute(x, [2, 3, 4, 5], perm, o, acc));
        exact(`permute ${perm.join(",")} acc=${acc}`, p1, p2);
      }
    }
    const sc = randn(3 * 5 * 5);
    const [[c1], [c2]] = both([new Float32Array(sc.length)], (be, [o]) => be.causalMask(sc, 3, 5, -Infinity, o));
    exact("causalMask", c1, c2);
  });

  test("SGD (momentum, dampening, Nesterov, first step, none) and AdamW steps", () => {
    const n = 53;
    const g = randn(n);
    for (const [momentum, dampening, nesterov, first] of [[0, 0, false, false], [0.9, 0, false, true], [0.9, 0.1, false, false],
      [0.9, 0, true, false]] as [number, number, boolean, boolean][]) {
      const [[w1, v1], [w2, v2]] = both([randn(n), randn(n)],
        (be, [w, v]) => be.sgdStep(w, g, momentum === 0 ? null : v, 0.05, momentum, dampening, 1e-2, nesterov, first));
      close(`sgd w momentum=${momentum} nesterov=${nesterov} first=${first}`, w1, w2);
      close(`sgd v momentum=${momentum} nesterov=${nesterov} first=${first}`, v1, v2);
    }
    for (const step of [1, 7]) {
      const [[w1, m1, v1], [w2, m2, v2]] = both([randn(n), randn(n, 0.1), abs(randn(n, 0.01))],
        (be, [w, m, v]) => be.adamwStep(w, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, step));
      close(`adamw w step=${step}`, w1, w2);
      close(`adamw m step=${step}`, m1, m2);
      close(`adamw v step=${step}`, v1, v2);
    }
  });

  test("kernels without WGSL yet are the reference backend's", () => {
    for (const k of FALLBACK) assert.equal(G()[k], ref[k], k);
  });
});

describe("webgpu backend unavailable", () => {
  test("a machine without the webgpu package gets one line naming it", () => {
    webgpuSeam.simulate = "no-package";
    try {
      assert.throws(() => setBackend("webgpu"), (e: Error) => e.message === `webgpu backend unavailable: ${NO_PACKAGE}`);
    } finally {
      delete webgpuSeam.simulate;
    }
    assert.match(NO_PACKAGE, /npm install webgpu@0\.6\.2/);
  });

  test("a machine without an adapter gets one line naming the Mesa packages", () => {
    webgpuSeam.simulate = "no-adapter";
    try {
      assert.throws(() => setBackend("webgpu"), (e: Error) => e.message === `webgpu backend unavailable: ${NO_ADAPTER}` && !e.message.includes("\n"));
    } finally {
      delete webgpuSeam.simulate;
    }
    assert.match(NO_ADAPTER, /libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri/);
  });
});
