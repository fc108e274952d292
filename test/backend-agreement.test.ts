// Native vs reference backend: every Backend method on random inputs of several shapes (broadcasts,
// odd sizes that leave vector tails, transposes, accumulate, strides/padding), plus the native
// addon's own contracts: size checks that throw, one thread per caller, worker-thread loading.
//
// Tolerances:
// - Element-wise work, reductions, norms, softmax, pooling, optimizers: max|native - ref| /
//   max(max|ref|, 1e-30) <= 1e-5 (the reference computes in float64 and rounds once).
// - matmul and convolution: the rigorous forward-error bound for a sum of k products in float32,
//   |native - exact| <= gamma(k + 2) * (|A| |B| + |out_old|) element-wise, gamma(j) = j u / (1 - j u),
//   u = 2^-24 (Higham, "Accuracy and Stability of Numerical Algorithms", 3.5; +2 covers the rounding
//   of the result and of the accumulate add). k is the length of each dot product: k for matmul,
//   c*kh*kw (+1 with bias) for convolution forward, o*kh*kw for backward-data, n*oh*ow for
//   backward-weights. |A||B| is computed by running the reference kernel on absolute values. This
//   holds for any summation order, so it cannot flake, yet a wrong index or a lost term breaks it by
//   orders of magnitude.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { Backend, BinaryOp, ConvParams, PoolParams, UnaryOp } from "../src/backend/backend.js";
import { referenceBackend as ref } from "../src/backend/reference.js";
import { createNativeBackend, loadNativeAddon } from "../src/backend/native.js";
import { Rng } from "../src/tensor/random.js";

let nat: Backend | null = null;
let skip: string | false = false;
try {
  nat = createNativeBackend();
} catch (e) {
  skip = `native addon unavailable, skipping native/reference agreement: ${(e as Error).message}`;
}
/** The native backend (only called inside tests, which are skipped when it failed to load). */
function N(): Backend {
  if (!nat) throw new Error("native backend not loaded");
  return nat;
}

const rng = new Rng(12345);
const U = 2 ** -24;
const TOL = 1e-5;

function randn(n: number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + scale * rng.normal();
  return a;
}
function uniform(n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.uniform();
  return a;
}
function ints(n: number, limit: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(limit);
  return a;
}
function abs(a: Float32Array): Float32Array { return a.map(Math.abs); }
const prod = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);

/** max|got - want| / max(max|want|, tiny); non-finite entries must match exactly (NaN with NaN). */
function relErr(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length, "length");
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!(Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)) || (g === w))) return Infinity;
      continue;
    }
    diff = Math.max(diff, Math.abs(g - w));
    scale = Math.max(scale, Math.abs(w));
  }
  return diff / Math.max(scale, 1e-30);
}
function close(label: string, got: Float32Array, want: Float32Array, tol = TOL): void {
  const e = relErr(got, want);
  assert.ok(e <= tol, `${label}: relative error ${e.toExponential(3)} > ${tol}`);
}
/** Element-wise |got - want| <= gamma(k+2) * bound (see the header). */
function bounded(label: string, got: Float32Array, want: Float32Array, absBound: Float32Array, k: number): void {
  const gamma = ((k + 2) * U) / (1 - (k + 2) * U);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const lim = gamma * absBound[i] + 1e-38;
    if (!(err <= lim)) {
      assert.fail(`${label}: element ${i} differs by ${err.toExponential(3)} (native ${got[i]}, reference ${want[i]}), bound ${lim.toExponential(3)}`);
    }
  }
}
/** Runs the same kernel on both backends with private copies of `outs` (which start equal). */
function both(outs: Float32Array[], run: (b: Backend, o: Float32Array[]) => void): [Float32Array[], Float32Array[]] {
  const a = outs.map((o) => o.slice());
  const b = outs.map((o) => o.slice());
  run(N(), a);
  run(ref, b);
  return [a, b];
}

describe("native backend agrees with the reference backend", { skip }, () => {
  test("matmul: batches, transposes, accumulate, shared b (error within the float32 dot-product bound)", () => {
    const cases: [number, number, number, number, boolean, boolean, boolean, boolean][] = [
      // batch, m, k, n, transA, transB, accumulate, bBroadcast
      [1, 3, 5, 4, false, false, false, false],
      [1, 1, 1, 1, false, false, false, false],
      [2, 7, 1, 3, false, false, false, false],
      [3, 17, 33, 9, true, false, false, false],
      [2, 16, 64, 31, false, true, false, false],
      [2, 5, 19, 23, true, true, false, false],
      [1, 37, 300, 70, false, true, true, false],
      [4, 6, 11, 13, false, false, false, true],
      [4, 6, 11, 13, true, false, true, true],
      [3, 8, 9, 10, false, true, true, true],
      [2, 129, 65, 33, false, false, true, false],
      [2, 4, 0, 3, false, false, false, false],
    ];
    for (const [batch, m, k, n, ta, tb, acc, bb] of cases) {
      const label = `matmul batch=${batch} m=${m} k=${k} n=${n} transA=${ta} transB=${tb} acc=${acc} bBroadcast=${bb}`;
      const a = randn(batch * m * k);
      const b = randn((bb ? 1 : batch) * k * n);
      const out0 = randn(batch * m * n);
      const [[o1], [o2]] = both([out0], (be, [o]) => be.matmul(a, b, o, batch, m, k, n, ta, tb, acc, bb));
      const absAB = new Float32Array(batch * m * n);
      ref.matmul(abs(a), abs(b), absAB, batch, m, k, n, ta, tb, false, bb);
      if (acc) for (let i = 0; i < absAB.length; i++) absAB[i] += Math.abs(out0[i]);
      bounded(label, o1, o2, absAB, k);
    }
  });

  test("matmul with a bias row (fused linear), with and without accumulate (dot-product bound, k + 1 terms)", () => {
    const cases: [number, number, number, number, boolean, boolean, boolean, boolean][] = [
      // batch, m, k, n, transA, transB, accumulate, bBroadcast
      [1, 37, 300, 70, false, true, false, false],
      [1, 5, 7, 3, false, true, true, false],
      [3, 8, 9, 10, false, false, false, true],
      [2, 6, 11, 13, true, false, true, false],
      [2, 4, 0, 3, false, true, false, false],
    ];
    for (const [batch, m, k, n, ta, tb, acc, bb] of cases) {
      const label = `matmul+bias batch=${batch} m=${m} k=${k} n=${n} transA=${ta} transB=${tb} acc=${acc} bBroadcast=${bb}`;
      const a = randn(batch * m * k);
      const b = randn((bb ? 1 : batch) * k * n);
      const bias = randn(n);
      const out0 = randn(batch * m * n);
      const [[o1], [o2]] = both([out0], (be, [o]) => be.matmul(a, b, o, batch, m, k, n, ta, tb, acc, bb, bias));
      const absAB = new Float32Array(batch * m * n);
      ref.matmul(abs(a), abs(b), absAB, batch, m, k, n, ta, tb, false, bb, abs(bias));
      if (acc) for (let i = 0; i < absAB.length; i++) absAB[i] += Math.abs(out0[i]);
      bounded(label, o1, o2, absAB, k + 1);
      // The bias really is there: the same product without it differs by exactly the bias (up to rounding).
      const plain = out0.slice();
      ref.matmul(a, b, plain, batch, m, k, n, ta, tb, acc, bb);
      for (let r = 0; r < batch * m; r++) {
        for (let j = 0; j < n; j++) {
          const d = o2[r * n + j] - plain[r * n + j] - bias[j];
          assert.ok(Math.abs(d) <= 1e-4 * (1 + absAB[r * n + j]), `${label}: reference bias missing at row ${r} col ${j}`);
        }
      }
    }
  });

  const convCases: ConvParams[] = [
    conv(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1),
    conv(1, 1, 5, 5, 2, 2, 2, 2, 2, 0, 0),
    conv(3, 5, 9, 8, 6, 3, 3, 2, 2, 1, 1),
    conv(2, 16, 6, 6, 16, 3, 3, 1, 1, 1, 1),
    conv(4, 1, 12, 12, 8, 3, 3, 1, 1, 1, 1),
    conv(2, 4, 7, 5, 3, 3, 1, 1, 2, 1, 0),
    conv(1, 32, 5, 5, 17, 1, 1, 1, 1, 0, 0),
    conv(2, 3, 9, 9, 4, 1, 1, 2, 2, 0, 0),
    conv(2, 2, 11, 10, 3, 5, 5, 1, 1, 2, 2),
  ];
  function conv(n: number, c: number, h: number, w: number, o: number, kh: number, kw: number, sh: number, sw: number,
    ph: number, pw: number): ConvParams {
    return { n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh: Math.floor((h + 2 * ph - kh) / sh) + 1,
      ow: Math.floor((w + 2 * pw - kw) / sw) + 1 };
  }
  const cstr = (p: ConvParams): string =>
    `x[${p.n},${p.c},${p.h},${p.w}] w[${p.o},${p.c},${p.kh},${p.kw}] stride ${p.sh},${p.sw} pad ${p.ph},${p.pw}`;

  // Each layout runs a different oneDNN code path (plain NCHW, blocked + reorders, and the auto rule).
  for (const layout of ["auto", "plain", "blocked"] as const) {
    test(`conv2d forward / backward-data / backward-weights (${layout} layout)`, () => {
      const addon = loadNativeAddon();
      addon.setConvLayouts(layout, layout, layout);
      try {
        for (const p of convCases) {
          const xs = p.n * p.c * p.h * p.w;
          const ws = p.o * p.c * p.kh * p.kw;
          const ys = p.n * p.o * p.oh * p.ow;
          const x = randn(xs), w = randn(ws), bias = randn(p.o), dy = randn(ys);
          for (const withBias of [true, false]) {
            const bb = withBias ? bias : null;
            const [[y1], [y2]] = both([new Float32Array(ys)], (be, [y]) => be.conv2d(x, w, bb, y, p));
            const bound = new Float32Array(ys);
            ref.conv2d(abs(x), abs(w), bb ? abs(bb) : null, bound, p);
            bounded(`conv2d ${cstr(p)} bias=${withBias}`, y1, y2, bound, p.c * p.kh * p.kw + 1);
          }
          for (const acc of [false, true]) {
            const dx0 = randn(xs);
            const [[d1], [d2]] = both([dx0], (be, [dx]) => be.conv2dBackwardData(dy, w, dx, p, acc));
            const bound = new Float32Array(xs);
            ref.conv2dBackwardData(abs(dy), abs(w), bound, p, false);
            if (acc) for (let i = 0; i < xs; i++) bound[i] += Math.abs(dx0[i]);
            bounded(`conv2dBackwardData ${cstr(p)} acc=${acc}`, d1, d2, bound, p.o * p.kh * p.kw);

            for (const withBias of [true, false]) {
              const dw0 = randn(ws), db0 = randn(p.o);
              const [r1, r2] = both([dw0, db0], (be, [dw, db]) =>
                be.conv2dBackwardWeights(x, dy, dw, withBias ? db : null, p, acc));
              const bw = new Float32Array(ws), bb = new Float32Array(p.o);
              ref.conv2dBackwardWeights(abs(x), abs(dy), bw, bb, p, false);
              if (acc) {
                for (let i = 0; i < ws; i++) bw[i] += Math.abs(dw0[i]);
                for (let i = 0; i < p.o; i++) bb[i] += Math.abs(db0[i]);
              }
              const k = p.n * p.oh * p.ow;
              bounded(`conv2dBackwardWeights dw ${cstr(p)} acc=${acc}`, r1[0], r2[0], bw, k);
              if (withBias) bounded(`conv2dBackwardWeights db ${cstr(p)} acc=${acc}`, r1[1], r2[1], bb, k);
              else assert.deepEqual(r1[1], db0, "db untouched when null");
            }
          }
        }
      } finally {
        addon.setConvLayouts("auto", "auto", "auto");
      }
    });
  }

  test("conv2d primitives are cached: repeated calls create none", () => {
    const addon = loadNativeAddon();
    const p = conv(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1);
    const x = randn(2 * 3 * 7 * 6), w = randn(4 * 3 * 9), y = new Float32Array(2 * 4 * 7 * 6);
    N().conv2d(x, w, null, y, p);
    const before = addon.cachedPrimitives();
    for (let i = 0; i < 5; i++) N().conv2d(x, w, null, y, p);
    assert.equal(addon.cachedPrimitives(), before);
  });

  test("binary ops with broadcasting (same shape, scalars, rows, columns, middle axes)", () => {
    const cases: [number[], number[]][] = [
      [[3, 4, 5], [3, 4, 5]],
      [[1037], [1037]],
      [[3, 4, 5], [1, 1, 1]],
      [[1, 1], [6, 7]],
      [[4, 33], [1, 33]],
      [[1, 33], [4, 33]],
      [[4, 33], [4, 1]],
      [[4, 1], [4, 33]],
      [[2, 1, 5], [1, 3, 1]],
      [[2, 3, 1, 4], [1, 1, 5, 1]],
      [[8, 3, 17, 17], [1, 3, 1, 1]],
      [[2, 16, 9], [2, 16, 1]],
    ];
    const ops: BinaryOp[] = ["add", "sub", "mul", "div"];
    for (const [as, bs] of cases) {
      const os = as.map((d, i) => Math.max(d, bs[i]));
      const a = randn(prod(as));
      for (const op of ops) {
        const b = op === "div" ? uniform(prod(bs), 0.5, 2).map((v, i) => (i % 2 ? -v : v)) : randn(prod(bs));
        const [[o1], [o2]] = both([new Float32Array(prod(os))], (be, [o]) => be.binary(op, a, as, b, bs, o, os));
        close(`binary ${op} [${as}] with [${bs}]`, o1, o2);
      }
    }
  });

  const unaryOps: UnaryOp[] = ["relu", "gelu", "tanh", "exp", "log", "neg", "sigmoid", "sqrt"];
  function unaryInput(op: UnaryOp, n: number): Float32Array {
    if (op === "log" || op === "sqrt") return uniform(n, 0.05, 20);
    if (op === "exp") return randn(n, 3);
    return randn(n, 3);
  }

  test("unary ops, forward (sizes that leave vector tails)", () => {
    for (const op of unaryOps) {
      for (const n of [1, 15, 17, 1000, 4099]) {
        const x = unaryInput(op, n);
        const [[o1], [o2]] = both([new Float32Array(n)], (be, [o]) => be.unary(op, x, o));
        close(`unary ${op} n=${n}`, o1, o2);
      }
    }
  });

  test("unary ops on special values (0, -0, large magnitudes vs reference; ±inf, NaN as torch 1.13)", () => {
    const x = new Float32Array([0, -0, 88, -88, 1e-30, 20, -20, 5, -5, 0.5, -0.5, 1e5, -1e5]);
    for (const op of unaryOps) {
      const [[o1], [o2]] = both([new Float32Array(x.length)], (be, [o]) => be.unary(op, x, o));
      close(`unary ${op} on special values [${Array.from(o1)}] vs [${Array.from(o2)}]`, o1, o2);
    }
    // Outputs for [inf, -inf, NaN], as printed by torch 1.13 (e.g. F.gelu(torch.tensor([inf, -inf, nan]))).
    const torchSays: Record<UnaryOp, number[]> = {
      relu: [Infinity, 0, NaN], gelu: [Infinity, NaN, NaN], tanh: [1, -1, NaN], exp: [Infinity, 0, NaN],
      log: [Infinity, NaN, NaN], neg: [-Infinity, Infinity, NaN], sigmoid: [1, 0, NaN], sqrt: [Infinity, NaN, NaN],
    };
    const nonFinite = new Float32Array([Infinity, -Infinity, NaN]);
    for (const op of unaryOps) {
      const o = new Float32Array(3);
      N().unary(op, nonFinite, o);
      assert.deepEqual(Array.from(o), torchSays[op], `unary ${op} of [inf, -inf, NaN]`);
    }
  });

  test("unary backward, with and without accumulate", () => {
    for (const op of unaryOps) {
      for (const n of [7, 1000, 1031]) {
        const x = unaryInput(op, n);
        const y = new Float32Array(n);
        ref.unary(op, x, y);
        const dy = randn(n);
        for (const acc of [false, true]) {
          const [[d1], [d2]] = both([randn(n)], (be, [dx]) => be.unaryBackward(op, x, y, dy, dx, acc));
          close(`unaryBackward ${op} n=${n} acc=${acc}`, d1, d2);
        }
      }
    }
  });

  test("axpby and affine", () => {
    const x = randn(1001);
    const withNaN = randn(1001);
    withNaN[3] = NaN;
    for (const [alpha, beta] of [[2, 0], [0.5, -1.5], [1, 1]]) {
      const [[o1], [o2]] = both([withNaN], (be, [o]) => be.axpby(alpha, x, beta, o));
      if (beta === 0) assert.ok(!Number.isNaN(o1[3]), "beta=0 must ignore NaN in out");
      close(`axpby alpha=${alpha} beta=${beta}`, o1, o2);
    }
    const [[a1], [a2]] = both([new Float32Array(1001)], (be, [o]) => be.affine(x, -0.3, 2.5, o));
    close("affine", a1, a2);
  });

  test("sum over the middle axis, with and without accumulate", () => {
    for (const [outer, mid, inner] of [[1, 1000, 1], [3, 7, 5], [4, 1, 6], [2, 300, 33], [5, 17, 1], [1, 1, 1]]) {
      const x = randn(outer * mid * inner, 1, 0.5);
      for (const acc of [false, true]) {
        const [[o1], [o2]] = both([randn(outer * inner)], (be, [o]) => be.sum(x, outer, mid, inner, o, acc));
        close(`sum [${outer},${mid},${inner}] acc=${acc}`, o1, o2);
      }
    }
  });

  test("max with argmax (ties resolve to the first maximum)", () => {
    for (const [outer, mid, inner] of [[1, 10, 1], [3, 7, 5], [4, 1, 6], [2, 50, 33]]) {
      const x = Float32Array.from(ints(outer * mid * inner, 5), (v) => v - 2); // many ties
      const o1 = new Float32Array(outer * inner), o2 = new Float32Array(outer * inner);
      const a1 = new Int32Array(outer * inner), a2 = new Int32Array(outer * inner);
      N().max(x, outer, mid, inner, o1, a1);
      ref.max(x, outer, mid, inner, o2, a2);
      assert.deepEqual(o1, o2, `max values [${outer},${mid},${inner}]`);
      assert.deepEqual(a1, a2, `argmax [${outer},${mid},${inner}]`);
    }
  });

  test("softmax and log-softmax, forward and backward", () => {
    for (const [rows, cols] of [[1, 1], [3, 10], [5, 1000], [7, 33]]) {
      const x = randn(rows * cols, 3, 50);
      if (cols > 3) for (let r = 0; r < rows; r++) x[r * cols + 1] = -Infinity; // masked entries
      for (const log of [false, true]) {
        const [[y1], [y2]] = both([new Float32Array(rows * cols)], (be, [y]) => be.softmax(x, rows, cols, y, log));
        close(`softmax log=${log} [${rows},${cols}]`, y1, y2);
        const dy = randn(rows * cols);
        for (const acc of [false, true]) {
          const yy = y2.map((v) => (Number.isFinite(v) ? v : -1e30)); // finite y for the backward
          const [[d1], [d2]] = both([randn(rows * cols)], (be, [dx]) =>
            be.softmaxBackward(log ? yy : y2, dy, rows, cols, dx, log, acc));
          close(`softmaxBackward log=${log} [${rows},${cols}] acc=${acc}`, d1, d2);
        }
      }
    }
    // A fully masked row gives NaN on both (like torch).
    const masked = new Float32Array([-Infinity, -Infinity, -Infinity]);
    const [[m1], [m2]] = both([new Float32Array(3)], (be, [y]) => be.softmax(masked, 1, 3, y, false));
    close("softmax of a fully masked row", m1, m2);
    assert.ok(Number.isNaN(m1[0]));
  });

  test("cross-entropy forward (loss and log-probs) and backward", () => {
    for (const [rows, cols] of [[1, 2], [8, 10], [33, 257]]) {
      const logits = randn(rows * cols, 4);
      const t = ints(rows, cols);
      const lp1 = new Float32Array(rows * cols), lp2 = new Float32Array(rows * cols);
      const l1 = N().crossEntropy(logits, t, rows, cols, lp1);
      const l2 = ref.crossEntropy(logits, t, rows, cols, lp2);
      close(`crossEntropy logProbs [${rows},${cols}]`, lp1, lp2);
      assert.ok(Math.abs(l1 - l2) <= TOL * Math.abs(l2), `crossEntropy loss ${l1} vs ${l2}`);
      for (const acc of [false, true]) {
        const [[d1], [d2]] = both([randn(rows * cols)], (be, [dx]) =>
          be.crossEntropyBackward(lp2, t, rows, cols, 1 / rows, dx, acc));
        close(`crossEntropyBackward [${rows},${cols}] acc=${acc}`, d1, d2);
      }
    }
  });

  test("layer norm forward and backward", () => {
    for (const [rows, cols] of [[1, 1], [4, 7], [16, 256], [3, 1000]]) {
      const x = randn(rows * cols, 2, 10), g = randn(cols), b = randn(cols), dy = randn(rows * cols);
      const [f1, f2] = both([new Float32Array(rows * cols), new Float32Array(rows), new Float32Array(rows)],
        (be, [o, mu, rs]) => be.layerNorm(x, g, b, rows, cols, 1e-5, o, mu, rs));
      for (let i = 0; i < 3; i++) close(`layerNorm [${rows},${cols}] output ${i}`, f1[i], f2[i]);
      for (const acc of [false, true]) {
        const [r1, r2] = both([randn(rows * cols), randn(cols), randn(cols)], (be, [dx, dg, db]) =>
          be.layerNormBackward(x, g, dy, f2[1], f2[2], rows, cols, dx, dg, db, acc));
        for (let i = 0; i < 3; i++) close(`layerNormBackward [${rows},${cols}] acc=${acc} output ${i}`, r1[i], r2[i]);
      }
    }
  });

  test("group norm forward and backward", () => {
    for (const [n, c, hw, groups] of [[2, 6, 5, 3], [3, 4, 1, 1], [2, 8, 9, 8], [1, 32, 49, 4]]) {
      const x = randn(n * c * hw, 2, -3), g = randn(c), b = randn(c), dy = randn(n * c * hw);
      const [f1, f2] = both([new Float32Array(n * c * hw), new Float32Array(n * groups), new Float32Array(n * groups)],
        (be, [o, mu, rs]) => be.groupNorm(x, g, b, n, c, hw, groups, 1e-5, o, mu, rs));
      for (let i = 0; i < 3; i++) close(`groupNorm [${n},${c},${hw}] g=${groups} output ${i}`, f1[i], f2[i]);
      for (const acc of [false, true]) {
        const [r1, r2] = both([randn(n * c * hw), randn(c), randn(c)], (be, [dx, dg, db]) =>
          be.groupNormBackward(x, g, dy, f2[1], f2[2], n, c, hw, groups, dx, dg, db, acc));
        for (let i = 0; i < 3; i++) close(`groupNormBackward [${n},${c},${hw}] acc=${acc} output ${i}`, r1[i], r2[i]);
      }
    }
  });

  test("batch norm train / inference / backward", () => {
    // (Not n*hw = 2: there x̂ = ±1 and dx vanishes up to rounding, so a relative error is meaningless.)
    for (const [n, c, hw] of [[4, 3, 5], [8, 16, 49], [3, 2, 1], [64, 32, 1]]) {
      const x = randn(n * c * hw, 3, 1), g = randn(c), b = randn(c), dy = randn(n * c * hw);
      const [f1, f2] = both([new Float32Array(n * c * hw), new Float32Array(c), new Float32Array(c), new Float32Array(c)],
        (be, [o, mu, v, rs]) => be.batchNormTrain(x, g, b, n, c, hw, 1e-5, o, mu, v, rs));
      for (let i = 0; i < 4; i++) close(`batchNormTrain [${n},${c},${hw}] output ${i}`, f1[i], f2[i]);
      const mean = randn(c), variance = uniform(c, 0.1, 3);
      const [[i1], [i2]] = both([new Float32Array(n * c * hw)], (be, [o]) =>
        be.batchNormInference(x, g, b, mean, variance, n, c, hw, 1e-5, o));
      close(`batchNormInference [${n},${c},${hw}]`, i1, i2);
      for (const acc of [false, true]) {
        const [r1, r2] = both([randn(n * c * hw), randn(c), randn(c)], (be, [dx, dg, db]) =>
          be.batchNormBackward(x, g, dy, f2[1], f2[3], n, c, hw, dx, dg, db, acc));
        for (let i = 0; i < 3; i++) close(`batchNormBackward [${n},${c},${hw}] acc=${acc} output ${i}`, r1[i], r2[i]);
      }
    }
  });

  function pool(n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number,
    pw: number): PoolParams {
    return { n, c, h, w, kh, kw, sh, sw, ph, pw, oh: Math.floor((h + 2 * ph - kh) / sh) + 1,
      ow: Math.floor((w + 2 * pw - kw) / sw) + 1 };
  }
  const poolCases = [pool(2, 3, 28, 28, 2, 2, 2, 2, 0, 0), pool(1, 2, 7, 7, 3, 3, 2, 2, 1, 1),
    pool(2, 2, 6, 9, 3, 3, 1, 1, 1, 1), pool(3, 1, 5, 8, 2, 3, 2, 1, 1, 1), pool(1, 1, 1, 1, 1, 1, 1, 1, 0, 0)];
  const pstr = (p: PoolParams): string => `[${p.n},${p.c},${p.h},${p.w}] k${p.kh}x${p.kw} s${p.sh},${p.sw} p${p.ph},${p.pw}`;

  test("max pooling forward (values and argmax) and backward", () => {
    for (const p of poolCases) {
      const x = randn(p.n * p.c * p.h * p.w);
      const os = p.n * p.c * p.oh * p.ow;
      const o1 = new Float32Array(os), o2 = new Float32Array(os), a1 = new Int32Array(os), a2 = new Int32Array(os);
      N().maxPool2d(x, p, o1, a1);
      ref.maxPool2d(x, p, o2, a2);
      assert.deepEqual(o1, o2, `maxPool2d ${pstr(p)}`);
      assert.deepEqual(a1, a2, `maxPool2d argmax ${pstr(p)}`);
      const dy = randn(os);
      for (const acc of [false, true]) {
        const [[d1], [d2]] = both([randn(x.length)], (be, [dx]) => be.maxPool2dBackward(dy, a2, p, dx, acc));
        close(`maxPool2dBackward ${pstr(p)} acc=${acc}`, d1, d2);
      }
    }
  });

  test("average pooling forward and backward (padding counts in the divisor)", () => {
    for (const p of poolCases) {
      const x = randn(p.n * p.c * p.h * p.w);
      const os = p.n * p.c * p.oh * p.ow;
      const [[o1], [o2]] = both([new Float32Array(os)], (be, [o]) => be.avgPool2d(x, p, o));
      close(`avgPool2d ${pstr(p)}`, o1, o2);
      const dy = randn(os);
      for (const acc of [false, true]) {
        const [[d1], [d2]] = both([randn(x.length)], (be, [dx]) => be.avgPool2dBackward(dy, p, dx, acc));
        close(`avgPool2dBackward ${pstr(p)} acc=${acc}`, d1, d2);
      }
    }
  });

  test("gather and scatterAdd (repeated ids)", () => {
    for (const [rows, dim, count] of [[10, 7, 25], [256, 64, 300], [1, 1, 3]]) {
      const table = randn(rows * dim);
      const ids = ints(count, rows);
      const [[g1], [g2]] = both([new Float32Array(count * dim)], (be, [o]) => be.gather(table, ids, dim, o));
      close(`gather [${rows},${dim}] x${count}`, g1, g2);
      const dy = randn(count * dim);
      const [[s1], [s2]] = both([randn(rows * dim)], (be, [dt]) => be.scatterAdd(dy, ids, dim, dt));
      close(`scatterAdd [${rows},${dim}] x${count}`, s1, s2);
    }
  });

  test("permute (all rank-3 permutations, rank 4, large transposes), with and without accumulate", () => {
    const cases: [number[], number[]][] = [
      [[2, 3, 4], [0, 1, 2]], [[2, 3, 4], [0, 2, 1]], [[2, 3, 4], [1, 0, 2]], [[2, 3, 4], [1, 2, 0]],
      [[2, 3, 4], [2, 0, 1]], [[2, 3, 4], [2, 1, 0]], [[2, 3, 4, 5], [0, 2, 1, 3]], [[2, 3, 4, 5], [0, 2, 3, 1]],
      [[2, 3, 4, 5], [3, 2, 1, 0]], [[33, 65], [1, 0]], [[2, 40, 50], [0, 2, 1]], [[3, 1, 7, 1], [3, 2, 1, 0]],
      [[5], [0]], [[4, 16, 8, 32], [0, 2, 1, 3]],
    ];
    for (const [shape, perm] of cases) {
      const x = randn(prod(shape));
      for (const acc of [false, true]) {
        const [[o1], [o2]] = both([randn(x.length)], (be, [o]) => be.permute(x, shape, perm, o, acc));
        close(`permute [${shape}] by [${perm}] acc=${acc}`, o1, o2);
      }
    }
  });

  test("causal mask (also in place)", () => {
    for (const [batch, t] of [[3, 1], [2, 5], [4, 17]]) {
      const x = randn(batch * t * t);
      const [[o1], [o2]] = both([new Float32Array(x.length)], (be, [o]) => be.causalMask(x, batch, t, -Infinity, o));
      close(`causalMask [${batch},${t},${t}]`, o1, o2);
      const inPlace = x.slice();
      N().causalMask(inPlace, batch, t, -Infinity, inPlace);
      close(`causalMask in place [${batch},${t},${t}]`, inPlace, o2);
    }
  });

  test("SGD steps (plain, momentum, dampening, Nesterov, weight decay)", () => {
    const configs = [
      { momentum: 0, dampening: 0, wd: 0, nesterov: false },
      { momentum: 0.9, dampening: 0, wd: 0, nesterov: false },
      { momentum: 0.9, dampening: 0.1, wd: 1e-4, nesterov: false },
      { momentum: 0.8, dampening: 0, wd: 5e-3, nesterov: true },
    ];
    for (const cfg of configs) {
      const n = 1001;
      const w1 = randn(n), v1 = new Float32Array(n);
      const w2 = w1.slice(), v2 = v1.slice();
      for (let step = 0; step < 4; step++) {
        const g = randn(n);
        N().sgdStep(w1, g, cfg.momentum ? v1 : null, 0.05, cfg.momentum, cfg.dampening, cfg.wd, cfg.nesterov, step === 0);
        ref.sgdStep(w2, g, cfg.momentum ? v2 : null, 0.05, cfg.momentum, cfg.dampening, cfg.wd, cfg.nesterov, step === 0);
      }
      close(`sgdStep w ${JSON.stringify(cfg)}`, w1, w2);
      close(`sgdStep v ${JSON.stringify(cfg)}`, v1, v2);
    }
  });

  test("AdamW steps", () => {
    for (const [lr, wd] of [[1e-3, 0.01], [0.1, 0]]) {
      const n = 777;
      const w1 = randn(n), m1 = new Float32Array(n), v1 = new Float32Array(n);
      const w2 = w1.slice(), m2 = m1.slice(), v2 = v1.slice();
      for (let step = 1; step <= 5; step++) {
        const g = randn(n);
        N().adamwStep(w1, g, m1, v1, lr, 0.9, 0.999, 1e-8, wd, step);
        ref.adamwStep(w2, g, m2, v2, lr, 0.9, 0.999, 1e-8, wd, step);
      }
      close(`adamwStep w lr=${lr}`, w1, w2);
      close(`adamwStep m lr=${lr}`, m1, m2);
      close(`adamwStep v lr=${lr}`, v1, v2);
    }
  });
});

describe("native addon contracts", { skip }, () => {
  test("wrong buffer sizes and bad arguments throw JS errors naming the kernel", () => {
    const f = (n: number): Float32Array => new Float32Array(n);
    assert.throws(() => N().matmul(f(6), f(6), f(3), 1, 2, 3, 2, false, false, false), /native matmul: out has 3 elements/);
    assert.throws(() => N().matmul(f(5), f(6), f(4), 1, 2, 3, 2, false, false, false), /native matmul: a has 5/);
    assert.throws(() => N().unary("relu", f(3), f(4)), /native unary: out has 4 elements/);
    assert.throws(() => N().unary("cosh" as UnaryOp, f(3), f(3)), /unknown unary op 'cosh'/);
    assert.throws(() => N().binary("add", f(6), [2, 3], f(2), [1, 2], f(6), [2, 3]), /do not broadcast/);
    const p = { n: 1, c: 1, h: 4, w: 4, o: 1, kh: 3, kw: 3, sh: 1, sw: 1, ph: 0, pw: 0, oh: 4, ow: 4 };
    assert.throws(() => N().conv2d(f(16), f(9), null, f(16), p), /native conv2d: output size \[4, 4\] does not match/);
    assert.throws(() => N().conv2d(f(15), f(9), null, f(4), { ...p, oh: 2, ow: 2 }), /native conv2d: x has 15/);
    assert.throws(() => N().gather(f(6), new Int32Array([0, 3]), 2, f(4)), /native gather: ids\[1\] = 3 is out of range/);
    assert.throws(() => N().crossEntropy(f(4), new Int32Array([0, 2]), 2, 2, f(4)), /targets\[1\] = 2 is out of range/);
    assert.throws(() => N().sgdStep(f(3), f(3), null, 0.1, 0.9, 0, 0, false, true), /needs a momentum buffer/);
    assert.throws(() => N().sum(new Float64Array(3) as unknown as Float32Array, 1, 3, 1, f(1), false),
      /x must be a Float32Array/);
  });

  test("subarray views and SharedArrayBuffer memory are read and written in place", () => {
    const all = new Float32Array(new SharedArrayBuffer(4 * 100));
    all.set(randn(100));
    const before = all.slice();
    const a = all.subarray(10, 16), b = all.subarray(21, 27), out = all.subarray(40, 44);
    const want = new Float32Array(4);
    ref.matmul(a.slice(), b.slice(), want, 1, 2, 3, 2, false, false, false);
    N().matmul(a, b, out, 1, 2, 3, 2, false, false, false);
    const bound = new Float32Array(4);
    ref.matmul(abs(a), abs(b), bound, 1, 2, 3, 2, false, false, false);
    bounded("matmul on views", out, want, bound, 3);
    for (let i = 0; i < 100; i++) if (i < 40 || i >= 44) assert.equal(all[i], before[i], `element ${i} outside out changed`);
    const x = all.subarray(50, 83);
    const y = new Float32Array(33);
    ref.unary("tanh", x, y);
    N().unary("tanh", x, x); // in place
    close("unary in place on a view", x, y);
  });

  test("kernels run on the calling thread only (OpenMP budget 1, no new OS threads)", () => {
    const addon = loadNativeAddon();
    assert.equal(addon.ompMaxThreads(), 1);
    const a = randn(256 * 256), b = randn(256 * 256), out = new Float32Array(256 * 256);
    const p = { n: 8, c: 16, h: 14, w: 14, o: 32, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, oh: 14, ow: 14 };
    const x = randn(8 * 16 * 196), w = randn(32 * 16 * 9), y = new Float32Array(8 * 32 * 196);
    N().matmul(a, b, out, 1, 256, 256, 256, false, false, false); // warm up: first calls may create pools
    const tasks = (): number => readdirSync("/proc/self/task").length;
    const before = tasks();
    for (let i = 0; i < 3; i++) {
      N().matmul(a, b, out, 1, 256, 256, 256, false, true, true);
      N().conv2d(x, w, null, y, p);
      N().conv2dBackwardData(y, w, x, p, false);
      N().conv2dBackwardWeights(x, y, w, null, p, false);
    }
    assert.equal(tasks(), before, "native kernels started OS threads");
  });

  test("loads in worker threads; two workers run kernels concurrently with correct results", async () => {
    const nativeUrl = new URL("../src/backend/native.js", import.meta.url).href;
    const size = 192;
    const a = randn(size * size), b = randn(size * size);
    const want = new Float32Array(size * size);
    N().matmul(a, b, want, 1, size, size, size, false, false, false);
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const code = `
      const { parentPort, workerData } = require("node:worker_threads");
      (async () => {
        const { createNativeBackend, loadNativeAddon } = await import(workerData.nativeUrl);
        const be = createNativeBackend();
        const { a, b, size, gate } = workerData;
        // Start together so the kernels overlap in time.
        Atomics.add(gate, 0, 1);
        while (Atomics.load(gate, 0) < 2) Atomics.wait(gate, 0, Atomics.load(gate, 0), 10);
        const out = new Float32Array(size * size);
        for (let i = 0; i < 20; i++) be.matmul(a, b, out, 1, size, size, size, false, false, false);
        parentPort.postMessage({ out, threads: loadNativeAddon().ompMaxThreads() });
      })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
    `;
    const run = (): Promise<{ out: Float32Array; threads: number }> => new Promise((resolve, reject) => {
      const worker = new Worker(code, { eval: true, workerData: { nativeUrl, a, b, size, gate } });
      worker.once("message", (m: { out: Float32Array; threads: number; error?: string }) => {
        void worker.terminate();
        if (m.error) reject(new Error(m.error));
        else resolve(m);
      });
      worker.once("error", reject);
    });
    const results = await Promise.all([run(), run()]);
    for (const r of results) {
      assert.equal(r.threads, 1, "worker OpenMP budget");
      assert.deepEqual(r.out, want, "a worker's matmul differs from the main thread's");
    }
  });
});

// Thin x W^T products (batch 1, no transA, transB, no accumulate, m <= 64, n >= 4m) run natively as
// (W x^T)^T with the bias added in the final transpose; 2-D transposes use 8x8 vector blocks with
// scalar edges. Shapes straddle both conditions and leave partial blocks. Products keep the
// dot-product bound above (k + 1 terms with a bias); a transpose only moves values, so it must be
// exact. Outputs start as NaN: every element must be written.
describe("native thin-product swap and blocked 2-D transposes agree with the reference backend", { skip }, () => {
  test("matmul x W^T for thin x (m in 1..64, n >= 4m, and m = 65 just outside), with and without bias", () => {
    const cases: [number, number, number][] = [];
    for (const m of [1, 5, 32, 64]) for (const n of [64, 200, 1024]) if (n >= 4 * m) for (const k of [7, 300]) cases.push([m, k, n]);
    cases.push([65, 300, 1024], [65, 7, 260], [5, 300, 19]); // m just outside, and n < 4m
    for (const [m, k, n] of cases) {
      for (const withBias of [false, true]) {
        const label = `thin matmul m=${m} k=${k} n=${n} bias=${withBias}`;
        const a = randn(m * k);
        const b = randn(n * k);
        const bias = withBias ? randn(n) : null;
        const [[o1], [o2]] = both([new Float32Array(m * n).fill(NaN)], (be, [o]) => be.matmul(a, b, o, 1, m, k, n, false, true, false, false, bias));
        const absAB = new Float32Array(m * n);
        ref.matmul(abs(a), abs(b), absAB, 1, m, k, n, false, true, false, false, bias ? abs(bias) : null);
        bounded(label, o1, o2, absAB, withBias ? k + 1 : k);
        // Independent of the reference kernel: spot-check entries against a float64 dot product.
        for (const [i, j] of [[0, 0], [m - 1, n - 1], [m >> 1, (n * 3) >> 2]]) {
          let s = bias ? bias[j] : 0;
          for (let p = 0; p < k; p++) s += a[i * k + p] * b[j * k + p];
          const gamma = ((k + 2) * U) / (1 - (k + 2) * U);
          assert.ok(Math.abs(o1[i * n + j] - s) <= gamma * absAB[i * n + j] + 1e-38, `${label}: (${i}, ${j}) is ${o1[i * n + j]}, expected ${s}`);
        }
      }
    }
  });

  test("2-D permute (8x8 blocks and scalar edges) equals the reference exactly, with and without accumulate", () => {
    for (const shape of [[8, 8], [37, 53], [1024, 784], [3, 9], [1, 17], [17, 1], [16, 24], [9, 8]]) {
      const x = randn(prod(shape));
      for (const acc of [false, true]) {
        const start = acc ? randn(x.length) : new Float32Array(x.length).fill(NaN);
        const [[o1], [o2]] = both([start], (be, [o]) => be.permute(x, shape, [1, 0], o, acc));
        assert.deepEqual(o1, o2, `permute [${shape}] acc=${acc}`);
        // And the reference is the transpose, written out.
        const [r, c] = shape;
        for (const [i, j] of [[0, 0], [r - 1, c - 1], [r >> 1, c >> 1]]) {
          const want = Math.fround((acc ? start[j * r + i] : 0) + x[i * c + j]);
          assert.equal(o1[j * r + i], want, `permute [${shape}] acc=${acc} element (${i}, ${j})`);
        }
      }
    }
  });
});
