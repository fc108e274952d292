// The webgpu backend (on Mesa's llvmpipe where there is no GPU) against the reference backend: every
// kernel of the Backend interface, on small random inputs, plus the missing-package and missing-adapter
// messages. Skips, saying why, where no WebGPU adapter opens.
//
// Bounds (the same as the native backend's agreement test):
// - Element-wise work, softmax, cross-entropy, layer norm, optimizers: max|gpu - ref| / max|ref| <= 1e-5.
// - matmul, convolution (forward and both backward kernels) and the sum reduction: the float32 forward-error bound of a k-term sum,
//   |gpu - ref| <= gamma(k + 2) (|A||B| + |out_old|) element-wise, gamma(j) = j u / (1 - j u), u = 2^-24.
// - Group and batch norm, average pooling: 1e-5 relative, as element-wise work.
// - Selections (max, max pooling and its backward, gather, scatter-add, permute, causal mask, relu,
//   neg): exact.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { AxisCopy, Backend, BinaryOp, ConvParams, PoolParams, UnaryOp } from "../src/backend/backend.js";
import { copyAxis } from "../src/autograd/ops/util.js";
import { referenceBackend as ref } from "../src/backend/reference.js";
import { createWebGpuBackend, type WebGpuBackend } from "../src/backend/webgpu/backend.js";
import { NO_ADAPTER, NO_PACKAGE } from "../src/backend/webgpu/messages.js";
import { getBackend, setBackend } from "../src/backend/index.js";
import { countCorrect } from "../src/nn/loss.js";
import { Tensor } from "../src/tensor/tensor.js";
import { webgpuSeam } from "../src/backend/webgpu/seam.js";
import { counterUint32, Rng } from "../src/tensor/random.js";

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
      // Several register blocks per axis, partial at the edges, in each layout the engine uses.
      [2, 70, 45, 67, false, false, false, false, true],
      [2, 70, 45, 67, true, false, true, false, false],
      [2, 70, 45, 67, false, true, false, true, false],
      [1, 70, 45, 67, true, true, false, false, false],
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

  test("long reductions over few outputs (a workgroup per output, a fixed tree): sum, max/argmax, layer norm's backward; bounds, and the same bits twice", () => {
    // mid >= the workgroup size takes the tree; 64 invocations is a second configuration.
    const small = createWebGpuBackend({}, { invocations: 64 });
    try {
      for (const be of [G(), small]) {
        for (const [outer, mid, inner] of [[1, 1000, 1], [2, 300, 3], [3, 128, 2], [1, 64, 5]]) {
          const label = `${outer}x${mid}x${inner} on ${be === small ? 64 : "default"} invocations`;
          const x = randn(outer * mid * inner);
          const bound = new Float32Array(outer * inner);
          ref.sum(abs(x), outer, mid, inner, bound, false);
          for (const acc of [false, true]) {
            const old = randn(outer * inner);
            const s1 = old.slice(), s2 = old.slice();
            be.sum(x, outer, mid, inner, s1, acc);
            ref.sum(x, outer, mid, inner, s2, acc);
            const b = bound.map((v, i) => v + (acc ? Math.abs(old[i]) : 0));
            bounded(`sum ${label} acc=${acc}`, s1, s2, b, mid);
            const again = old.slice();
            be.sum(x, outer, mid, inner, again, acc);
            exact(`sum ${label} acc=${acc} twice`, again, s1);
          }
          // Ties (the first maximum wins), then NaN (the first NaN wins), as the reference scans.
          const peak = 10 + rng.normal();
          for (const j of [mid - 1, Math.floor(mid / 2), 3]) for (let o = 0; o < outer * inner; o++) {
            x[(Math.floor(o / inner) * mid + j) * inner + (o % inner)] = peak;
          }
          for (const withNaN of [false, true]) {
            if (withNaN) { x[(mid - 2) * inner] = NaN; x[(mid - 1) * inner] = NaN; }
            const g = new Float32Array(outer * inner), r = new Float32Array(outer * inner);
            const ga = new Int32Array(outer * inner), ra = new Int32Array(outer * inner);
            be.max(x, outer, mid, inner, g, ga);
            ref.max(x, outer, mid, inner, r, ra);
            exact(`max ${label} NaN=${withNaN}`, g, r);
            exact(`argmax ${label} NaN=${withNaN}`, ga, ra);
          }
        }
        // Layer norm's dx (a workgroup per row) and parameter gradients (a workgroup per column once
        // there are at least a workgroup's rows).
        const rows = 300, cols = 5;
        const x = randn(rows * cols, 2), gamma = randn(cols), dy = randn(rows * cols);
        const mean = new Float32Array(rows), rstd = new Float32Array(rows);
        ref.layerNorm(x, gamma, randn(cols), rows, cols, 1e-5, new Float32Array(rows * cols), mean, rstd);
        const run = (b: Backend): Float32Array[] => {
          const o = [new Float32Array(rows * cols), new Float32Array(cols), new Float32Array(cols)];
          b.layerNormBackward(x, gamma, dy, mean, rstd, rows, cols, o[0], o[1], o[2], false);
          return o;
        };
        const [mine, want] = [run(be), run(ref)];
        ["dx", "dgamma", "dbeta"].forEach((w, i) => close(`layerNormBackward ${w} ${rows}x${cols}`, mine[i], want[i]));
        run(be).forEach((a, i) => exact(`layerNormBackward ${i} twice`, a, mine[i]));
      }
    } finally {
      small.close();
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

  test("row kernels (one workgroup per row) on rows wider than a workgroup and of one column; the same bits twice", () => {
    for (const [rows, cols] of [[3, 300], [4, 1], [2, 129]] as const) {
      const x = randn(rows * cols, 2);
      const gamma = randn(cols), beta = randn(cols), dy = randn(rows * cols);
      for (const log of [false, true]) {
        const [[y1], [y2]] = both([new Float32Array(rows * cols)], (be, [o]) => be.softmax(x, rows, cols, o, log));
        close(`softmax ${rows}x${cols} log=${log}`, y1, y2);
        const [[d1], [d2]] = both([new Float32Array(rows * cols)], (be, [o]) => be.softmaxBackward(y2, dy, rows, cols, o, log, false));
        close(`softmaxBackward ${rows}x${cols} log=${log}`, d1, d2);
        const again = new Float32Array(rows * cols);
        G().softmax(x, rows, cols, again, log);
        exact(`softmax ${rows}x${cols} log=${log} twice`, again, y1);
      }
      const [[o1, m1, r1], [o2, m2, r2]] = both([new Float32Array(rows * cols), new Float32Array(rows), new Float32Array(rows)],
        (be, [o, m, r]) => be.layerNorm(x, gamma, beta, rows, cols, 1e-5, o, m, r));
      close(`layerNorm ${rows}x${cols} out`, o1, o2);
      close(`layerNorm ${rows}x${cols} mean`, m1, m2);
      close(`layerNorm ${rows}x${cols} rstd`, r1, r2);
      const again = new Float32Array(rows * cols);
      G().layerNorm(x, gamma, beta, rows, cols, 1e-5, again, new Float32Array(rows), new Float32Array(rows));
      exact(`layerNorm ${rows}x${cols} twice`, again, o1);
    }
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
    // More rows than a workgroup has invocations (the loss is one workgroup's tree); targets changed
    // in place between calls reach the device.
    const many = 300, big = randn(many * cols, 2), t300 = Int32Array.from({ length: many }, () => rng.int(cols));
    for (let round = 0; round < 2; round++) {
      const g300 = G().crossEntropy(big, t300, many, cols, new Float32Array(many * cols));
      const r300 = ref.crossEntropy(big, t300, many, cols, new Float32Array(many * cols));
      assert.ok(Math.abs(g300 - r300) <= 1e-5 * Math.abs(r300), `crossEntropy loss of ${many} rows ${g300} vs ${r300}`);
      t300.reverse();
    }
  });

  test("countCorrect on the device equals the host's count (first maximum by >, NaN, ties, -inf, many rows)", () => {
    assert.notEqual(getBackend().name, "webgpu", "the oracle is the host loop");
    for (const [rows, cols] of [[6, 4], [300, 7], [1, 1]] as const) {
      const x = randn(rows * cols);
      const t = Int32Array.from({ length: rows }, (_, r) => (r % 3 === 0 ? r % cols : rng.int(cols)));
      if (rows === 6) {
        x.set([1, 3, 3, 0], 0); // a tie: the first maximum counts
        x.set([NaN, 5, 1, 2], 4); // NaN in column 0: nothing beats it
        x.set([1, NaN, 7, 2], 8); // NaN elsewhere never wins
        x.fill(-Infinity, 12, 16);
        x.set([0, 1, 2, 3, 3, 2, 1, 0], 16);
        t.set([1, 0, 2, 0, 0, 0]);
      }
      const want = countCorrect(new Tensor(x, [rows, cols]), t);
      assert.equal(G().countCorrect!(x, t, rows, cols)(), want, `countCorrect ${rows}x${cols}`);
      if (rows === 6) assert.equal(want, 5);
    }
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

  test("dropout's mask on the device equals the host's counter-based mask for the same key: exact", () => {
    const n = 20000;
    for (const p of [0.25, 0.5, 0.1, 1e-12, 1 - 2 ** -40]) {
      const k0 = rng.nextUint32(), k1 = rng.nextUint32();
      const mask = new Float32Array(n).fill(NaN);
      G().dropoutMask!(mask, k0, k1, p);
      const keep = Math.fround(1 / (1 - p));
      const want = Float32Array.from({ length: n }, (_, i) => (counterUint32(k0, k1, i) / 2 ** 32 < p ? 0 : keep));
      exact(`dropoutMask p=${p}`, mask, want);
      // The stream is uniform enough: the dropped fraction within 5 standard deviations of p.
      const dropped = want.filter((v) => v === 0).length / n;
      assert.ok(Math.abs(dropped - p) <= 5 * Math.sqrt((p * (1 - p)) / n) + 1e-9, `p=${p}: dropped ${dropped}`);
    }
  });

  test("copies along an axis (slice, its backward, concat parts) equal the host's copies: exact", () => {
    assert.notEqual(getBackend().name, "webgpu", "the oracle is the host copy");
    const cases: AxisCopy[] = [
      { outer: 3, inner: 4, len: 2, srcSize: 5, srcStart: 1, dstSize: 2, dstStart: 0, zero: false }, // slice
      { outer: 3, inner: 4, len: 2, srcSize: 2, srcStart: 0, dstSize: 5, dstStart: 3, zero: true }, // its backward
      { outer: 2, inner: 1, len: 3, srcSize: 3, srcStart: 0, dstSize: 7, dstStart: 4, zero: false }, // a concat part
      { outer: 1, inner: 6, len: 0, srcSize: 4, srcStart: 4, dstSize: 3, dstStart: 1, zero: true }, // empty range
    ];
    for (const p of cases) {
      const x = randn(p.outer * p.srcSize * p.inner);
      const old = randn(p.outer * p.dstSize * p.inner);
      old[0] = NaN; // zeroed or kept, never read into the copy
      const mine = old.slice(), host = old.slice();
      G().copyAxis!(x, mine, p);
      copyAxis(x, host, p);
      exact(`copyAxis ${JSON.stringify(p)}`, mine, host);
    }
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

  const convCases: ConvParams[] = [
    conv(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1),
    conv(1, 1, 5, 5, 2, 2, 2, 2, 2, 0, 0),
    conv(3, 5, 9, 8, 6, 3, 3, 2, 2, 1, 1),
    conv(2, 4, 7, 5, 3, 3, 1, 1, 2, 1, 0),
    conv(2, 2, 11, 10, 3, 5, 5, 1, 1, 2, 2),
    conv(2, 3, 12, 12, 4, 3, 3, 1, 1, 1, 1), // 288 output positions: weight and bias gradients take a workgroup each
  ];
  function conv(n: number, c: number, h: number, w: number, o: number, kh: number, kw: number, sh: number, sw: number,
    ph: number, pw: number): ConvParams {
    return { n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh: Math.floor((h + 2 * ph - kh) / sh) + 1,
      ow: Math.floor((w + 2 * pw - kw) / sw) + 1 };
  }

  test("conv2d forward / backward-data / backward-weights / bias (float32 dot-product bound)", () => {
    for (const p of convCases) {
      const label = `x[${p.n},${p.c},${p.h},${p.w}] w[${p.o},${p.c},${p.kh},${p.kw}] stride ${p.sh},${p.sw} pad ${p.ph},${p.pw}`;
      const xs = p.n * p.c * p.h * p.w, ws = p.o * p.c * p.kh * p.kw, ys = p.n * p.o * p.oh * p.ow;
      const x = randn(xs), w = randn(ws), bias = randn(p.o), dy = randn(ys);
      for (const bb of [bias, null]) {
        const [[y1], [y2]] = both([new Float32Array(ys)], (be, [y]) => be.conv2d(x, w, bb, y, p));
        const bound = new Float32Array(ys);
        ref.conv2d(abs(x), abs(w), bb ? abs(bb) : null, bound, p);
        bounded(`conv2d ${label} bias=${bb !== null}`, y1, y2, bound, p.c * p.kh * p.kw + 1);
      }
      for (const acc of [false, true]) {
        const dx0 = randn(xs);
        const [[d1], [d2]] = both([dx0], (be, [dx]) => be.conv2dBackwardData(dy, w, dx, p, acc));
        const bound = new Float32Array(xs);
        ref.conv2dBackwardData(abs(dy), abs(w), bound, p, false);
        if (acc) for (let i = 0; i < xs; i++) bound[i] += Math.abs(dx0[i]);
        bounded(`conv2dBackwardData ${label} acc=${acc}`, d1, d2, bound, p.o * p.kh * p.kw);
        for (const withDb of [true, false]) {
          const dw0 = randn(ws), db0 = randn(p.o);
          const [[w1, b1], [w2, b2]] = both([dw0, db0], (be, [dw, db]) => be.conv2dBackwardWeights(x, dy, dw, withDb ? db : null, p, acc));
          const wb = new Float32Array(ws), bbd = new Float32Array(p.o);
          ref.conv2dBackwardWeights(abs(x), abs(dy), wb, bbd, p, false);
          if (acc) { for (let i = 0; i < ws; i++) wb[i] += Math.abs(dw0[i]); for (let i = 0; i < p.o; i++) bbd[i] += Math.abs(db0[i]); }
          bounded(`conv2dBackwardWeights ${label} acc=${acc}`, w1, w2, wb, p.n * p.oh * p.ow);
          if (withDb) bounded(`conv2d bias gradient ${label} acc=${acc}`, b1, b2, bbd, p.n * p.oh * p.ow);
          else exact(`untouched db ${label}`, b1, db0);
        }
      }
    }
  });

  test("conv2d forward and data gradient: the direct kernels (past the im2col limit) within the bound; the matmul path's bits the same for 64 and the default invocations", () => {
    const direct = createWebGpuBackend({}, { im2colWords: 0 });
    const small = createWebGpuBackend({}, { invocations: 64 });
    try {
      for (const p of convCases) {
        const label = `x[${p.n},${p.c},${p.h},${p.w}] w[${p.o},${p.c},${p.kh},${p.kw}]`;
        const x = randn(p.n * p.c * p.h * p.w), w = randn(p.o * p.c * p.kh * p.kw), bias = randn(p.o);
        const ys = p.n * p.o * p.oh * p.ow;
        const [viaDirect, viaDefault, viaSmall, want, bound] = Array.from({ length: 5 }, () => new Float32Array(ys));
        direct.conv2d(x, w, bias, viaDirect, p);
        G().conv2d(x, w, bias, viaDefault, p);
        small.conv2d(x, w, bias, viaSmall, p);
        ref.conv2d(x, w, bias, want, p);
        ref.conv2d(abs(x), abs(w), abs(bias), bound, p);
        bounded(`direct conv2d ${label}`, viaDirect, want, bound, p.c * p.kh * p.kw + 1);
        exact(`im2col conv2d ${label}: 64 vs default invocations`, viaSmall, viaDefault);
        const dy = randn(ys), xs = x.length;
        const [dDirect, dDefault, dSmall, dWant, dBound] = Array.from({ length: 5 }, () => new Float32Array(xs));
        direct.conv2dBackwardData(dy, w, dDirect, p, false);
        G().conv2dBackwardData(dy, w, dDefault, p, false);
        small.conv2dBackwardData(dy, w, dSmall, p, false);
        ref.conv2dBackwardData(dy, w, dWant, p, false);
        ref.conv2dBackwardData(abs(dy), abs(w), dBound, p, false);
        bounded(`direct conv2dBackwardData ${label}`, dDirect, dWant, dBound, p.o * p.kh * p.kw);
        exact(`matmul conv2dBackwardData ${label}: 64 vs default invocations`, dSmall, dDefault);
      }
    } finally {
      direct.close();
      small.close();
    }
  });

  test("max and average pooling, forward and backward (max: exact; average: 1e-5)", () => {
    const pools: PoolParams[] = [
      pool(2, 3, 6, 6, 2, 2, 2, 2, 0, 0),
      pool(1, 2, 7, 5, 3, 3, 2, 2, 1, 1),
      pool(2, 1, 5, 5, 3, 3, 1, 1, 1, 1),
    ];
    for (const p of pools) {
      const label = `pool x[${p.n},${p.c},${p.h},${p.w}] k ${p.kh},${p.kw} s ${p.sh},${p.sw} p ${p.ph},${p.pw}`;
      const xs = p.n * p.c * p.h * p.w, ys = p.n * p.c * p.oh * p.ow;
      const x = randn(xs), dy = randn(ys);
      const [[m1, a1], [m2, a2]] = both<Float32Array | Int32Array>([new Float32Array(ys), new Int32Array(ys)],
        (be, [o, am]) => be.maxPool2d(x, p, o as Float32Array, am as Int32Array));
      exact(`maxPool2d ${label}`, m1, m2);
      exact(`maxPool2d argmax ${label}`, a1, a2);
      const [[av1], [av2]] = both([new Float32Array(ys)], (be, [o]) => be.avgPool2d(x, p, o));
      close(`avgPool2d ${label}`, av1, av2);
      for (const acc of [false, true]) {
        const [[d1], [d2]] = both([randn(xs)], (be, [dx]) => be.maxPool2dBackward(dy, a2 as Int32Array, p, dx, acc));
        exact(`maxPool2dBackward ${label} acc=${acc}`, d1, d2);
        const [[e1], [e2]] = both([randn(xs)], (be, [dx]) => be.avgPool2dBackward(dy, p, dx, acc));
        close(`avgPool2dBackward ${label} acc=${acc}`, e1, e2);
      }
    }
  });
  function pool(n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number,
    pw: number): PoolParams {
    return { n, c, h, w, kh, kw, sh, sw, ph, pw, oh: Math.floor((h + 2 * ph - kh) / sh) + 1, ow: Math.floor((w + 2 * pw - kw) / sw) + 1 };
  }

  test("group norm and batch norm (train, inference, backward)", () => {
    // The last: n * hw = 200 terms per channel, so the parameter gradients take a workgroup each.
    for (const [n, c, hw, groups] of [[2, 4, 9, 2], [3, 6, 5, 3], [2, 3, 4, 1], [2, 4, 100, 2]]) {
      const label = `n=${n} c=${c} hw=${hw} groups=${groups}`;
      const x = randn(n * c * hw, 2), gamma = randn(c), beta = randn(c), dy = randn(n * c * hw);
      const [[o1, m1, r1], [o2, m2, r2]] = both([new Float32Array(n * c * hw), new Float32Array(n * groups), new Float32Array(n * groups)],
        (be, [o, m, r]) => be.groupNorm(x, gamma, beta, n, c, hw, groups, 1e-5, o, m, r));
      close(`groupNorm out ${label}`, o1, o2);
      close(`groupNorm mean ${label}`, m1, m2);
      close(`groupNorm rstd ${label}`, r1, r2);
      const [[b1, bm1, bv1, br1], [b2, bm2, bv2, br2]] = both(
        [new Float32Array(n * c * hw), new Float32Array(c), new Float32Array(c), new Float32Array(c)],
        (be, [o, m, v, r]) => be.batchNormTrain(x, gamma, beta, n, c, hw, 1e-5, o, m, v, r));
      close(`batchNormTrain out ${label}`, b1, b2);
      close(`batchNormTrain mean ${label}`, bm1, bm2);
      close(`batchNormTrain var ${label}`, bv1, bv2);
      close(`batchNormTrain rstd ${label}`, br1, br2);
      const [[i1], [i2]] = both([new Float32Array(n * c * hw)], (be, [o]) => be.batchNormInference(x, gamma, beta, bm2, bv2, n, c, hw, 1e-5, o));
      close(`batchNormInference ${label}`, i1, i2);
      for (const acc of [false, true]) {
        const [[dx1, dg1, db1], [dx2, dg2, db2]] = both([randn(n * c * hw), randn(c), randn(c)],
          (be, [dx, dg, db]) => be.groupNormBackward(x, gamma, dy, m2, r2, n, c, hw, groups, dx, dg, db, acc));
        close(`groupNormBackward dx ${label} acc=${acc}`, dx1, dx2);
        close(`groupNormBackward dgamma ${label} acc=${acc}`, dg1, dg2);
        close(`groupNormBackward dbeta ${label} acc=${acc}`, db1, db2);
        const [[ex1, eg1, eb1], [ex2, eg2, eb2]] = both([randn(n * c * hw), randn(c), randn(c)],
          (be, [dx, dg, db]) => be.batchNormBackward(x, gamma, dy, bm2, br2, n, c, hw, dx, dg, db, acc));
        close(`batchNormBackward dx ${label} acc=${acc}`, ex1, ex2);
        close(`batchNormBackward dgamma ${label} acc=${acc}`, eg1, eg2);
        close(`batchNormBackward dbeta ${label} acc=${acc}`, eb1, eb2);
      }
    }
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
