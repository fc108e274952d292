// matmul (transposes, batches, shared b) and linear: forward against naive products, gradients
// against finite differences, shape errors naming both shapes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backward, linear, matmul, sum } from "../src/autograd/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { assertClose, checkGrad, randn } from "./ops-helpers.js";

/** Naive product of the stored matrices with optional transposes, in float64. */
function naive(a: Tensor, b: Tensor, transA: boolean, transB: boolean): number[] {
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const n = transB ? br : bc;
  const batch = a.size / (ar * ac);
  const shared = b.rank === 2;
  const out: number[] = [];
  for (let t = 0; t < batch; t++) {
    const ao = t * ar * ac;
    const bo = shared ? 0 : t * br * bc;
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a.data[ao + p * ac + i] : a.data[ao + i * ac + p];
        const bv = transB ? b.data[bo + j * bc + p] : b.data[bo + p * bc + j];
        s += av * bv;
      }
      out.push(s);
    }
  }
  return out;
}

const TRANS: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];

/** Stored shapes for op(a) [m, k] and op(b) [k, n]. */
function stored(lead: number[], rows: number, cols: number, trans: boolean): number[] {
  return trans ? [...lead, cols, rows] : [...lead, rows, cols];
}

test("matmul forward matches a naive product for every transpose and batching", () => {
  for (const [ta, tb] of TRANS) {
    for (const [leadA, leadB] of [[[], []], [[2], [2]], [[2, 2], [2, 2]], [[3], []], [[2, 2], []]] as number[][][]) {
      const a = randn(stored(leadA, 3, 4, ta), false);
      const b = randn(stored(leadB, 4, 5, tb), false);
      const y = matmul(a, b, { transA: ta, transB: tb });
      assert.deepEqual(y.shape, [...leadA, 3, 5]);
      assertClose(y.data, naive(a, b, ta, tb), 1e-6, `transA=${ta} transB=${tb} lead ${JSON.stringify(leadA)}/${JSON.stringify(leadB)}`);
    }
  }
});

test("matmul gradients: 2-D, batched and shared b, all transposes", () => {
  for (const [ta, tb] of TRANS) {
    for (const [leadA, leadB] of [[[], []], [[2], [2]], [[3], []], [[2, 2], []]] as number[][][]) {
      const a = randn(stored(leadA, 3, 4, ta));
      const b = randn(stored(leadB, 4, 2, tb));
      checkGrad(`matmul transA=${ta} transB=${tb} lead ${JSON.stringify(leadA)}/${JSON.stringify(leadB)}`,
        (x, y) => matmul(x, y, { transA: ta, transB: tb }), [a, b]);
    }
  }
});

test("matmul computes only the needed gradient", () => {
  const a = randn([2, 3], false);
  const b = randn([3, 4]);
  backward(sum(matmul(a, b)));
  assert.equal(a.grad, null);
  assert.deepEqual(b.grad!.shape, [3, 4]);
});

test("matmul shape errors name both shapes", () => {
  assert.throws(() => matmul(randn([2, 3]), randn([4, 5])), {
    message: "matmul: a [2, 3] and b [4, 5]: inner dimensions 3 and 4 differ",
  });
  assert.throws(() => matmul(randn([2, 3, 4]), randn([3, 4, 5])), /matmul: a \[2, 3, 4\] and b \[3, 4, 5\]: leading \(batch\) dimensions \[2\] and \[3\] differ/);
  assert.throws(() => matmul(randn([3]), randn([3, 2])), /matmul: a \[3\] and b \[3, 2\]: both operands need at least 2 dimensions/);
  assert.throws(() => matmul(randn([2, 3]), randn([2, 3]), { transB: true, transA: true }), /inner dimensions 2 and 3 differ/);
});

test("linear forward equals x W^T + b", () => {
  const x = randn([2, 3, 4], false);
  const w = randn([5, 4], false);
  const b = randn([5], false);
  const y = linear(x, w, b);
  assert.deepEqual(y.shape, [2, 3, 5]);
  const expected = naive(x.viewAs([6, 4]), w, false, true).map((v, i) => v + b.data[i % 5]);
  assertClose(y.data, expected, 1e-6, "linear");
  assertClose(linear(x, w).data, naive(x.viewAs([6, 4]), w, false, true), 1e-6, "linear without bias");
});

test("linear gradients with and without bias, 2-D and 3-D inputs", () => {
  checkGrad("linear 2-D", (x, w, b) => linear(x, w, b), [randn([4, 3]), randn([2, 3]), randn([2])]);
  checkGrad("linear 3-D", (x, w, b) => linear(x, w, b), [randn([2, 3, 4]), randn([5, 4]), randn([5])]);
  checkGrad("linear no bias", (x, w) => linear(x, w), [randn([3, 4]), randn([2, 4])]);
  // First-layer case: data does not require grad, only the parameters get gradients.
  const x = randn([4, 3], false);
  checkGrad("linear params only", (w, b) => linear(x, w, b), [randn([2, 3]), randn([2])]);
});

test("linear shape errors name both shapes", () => {
  assert.throws(() => linear(randn([4, 3]), randn([2, 5])), /linear: x \[4, 3\] and w \[2, 5\]/);
  assert.throws(() => linear(randn([4, 3]), randn([2, 3]), randn([3])), /linear: w \[2, 3\] and b \[3\]/);
  assert.throws(() => linear(randn([4, 3]), randn([3])), /linear: x \[4, 3\] and w \[3\]: w must be 2-D/);
});
