// Reductions, softmax and losses: forward values against direct float64 computation, gradients
// against finite differences.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backward, crossEntropy, logSoftmax, max, mean, mseLoss, softmax, sum } from "../src/autograd/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { assertClose, checkGrad, distinct, randn } from "./ops-helpers.js";

test("sum and mean over axes (forward)", () => {
  const x = randn([2, 3, 4], false);
  const at = (i: number, j: number, k: number): number => x.data[(i * 3 + j) * 4 + k];
  const s1: number[] = [];
  for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) { let s = 0; for (let j = 0; j < 3; j++) s += at(i, j, k); s1.push(s); }
  const y = sum(x, 1);
  assert.deepEqual(y.shape, [2, 4]);
  assertClose(y.data, s1, 1e-6, "sum axis 1");
  assert.deepEqual(sum(x, 1, true).shape, [2, 1, 4]);
  assert.deepEqual(sum(x, -1).shape, [2, 3]);
  const s02: number[] = [];
  for (let j = 0; j < 3; j++) { let s = 0; for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) s += at(i, j, k); s02.push(s); }
  assertClose(sum(x, [2, 0]).data, s02, 1e-6, "sum axes 0,2");
  const total = Array.from(x.data).reduce((p, q) => p + q, 0);
  assert.deepEqual(sum(x).shape, []);
  assertClose(sum(x).data, [total], 1e-6, "sum all");
  assertClose(mean(x).data, [total / 24], 1e-6, "mean all");
  assertClose(mean(x, [0, 2], true).data, s02.map((v) => v / 8), 1e-6, "mean keepdim");
  assert.deepEqual(mean(x, [0, 2], true).shape, [1, 3, 1]);
});

test("sum and mean gradients", () => {
  for (const axis of [undefined, 0, 1, -1, [0, 2], [1, 2], [0, 1, 2]] as (number | number[] | undefined)[]) {
    for (const keep of [false, true]) {
      checkGrad(`sum ${JSON.stringify(axis)} keep=${keep}`, (t) => sum(t, axis, keep), [randn([2, 3, 4])]);
      checkGrad(`mean ${JSON.stringify(axis)} keep=${keep}`, (t) => mean(t, axis, keep), [randn([2, 3, 4])]);
    }
  }
});

test("max: values, first maximum on ties, gradients", () => {
  const x = Tensor.from([[1, 5, 5], [7, 2, 7]]);
  assertClose(max(x, 1).data, [5, 7], 0, "max axis 1");
  assertClose(max(x, 0).data, [7, 5, 7], 0, "max axis 0");
  assert.deepEqual(max(x, 0, true).shape, [1, 3]);
  // Ties: the gradient goes to the first maximum only.
  const t = Tensor.from([[1, 5, 5], [7, 2, 7]], undefined, true);
  backward(sum(max(t, 1)));
  assert.deepEqual(Array.from(t.grad!.data), [0, 1, 0, 1, 0, 0]);
  for (const axis of [0, 1, 2, -1]) checkGrad(`max axis ${axis}`, (u) => max(u, axis), [distinct([2, 3, 4])]);
});

test("softmax and logSoftmax: forward, large logits, gradients on every axis", () => {
  const x = randn([3, 5], false, 3);
  for (let r = 0; r < 3; r++) {
    const row = Array.from(x.data.subarray(r * 5, r * 5 + 5));
    const m = Math.max(...row);
    const z = row.reduce((p, v) => p + Math.exp(v - m), 0);
    assertClose(softmax(x).data.subarray(r * 5, r * 5 + 5), row.map((v) => Math.exp(v - m) / z), 1e-6, "softmax");
    assertClose(logSoftmax(x).data.subarray(r * 5, r * 5 + 5), row.map((v) => v - m - Math.log(z)), 1e-6, "logSoftmax");
  }
  // Max subtraction keeps huge logits finite.
  const big = Tensor.from([[1000, 1001, 1002]]);
  assertClose(logSoftmax(big).data, [-2.4076059644443806, -1.4076059644443806, -0.40760596444438063], 1e-6, "large logits");
  for (const axis of [0, 1, 2, -1]) {
    checkGrad(`softmax axis ${axis}`, (t) => softmax(t, axis), [randn([2, 3, 4])]);
    checkGrad(`logSoftmax axis ${axis}`, (t) => logSoftmax(t, axis), [randn([2, 3, 4])]);
  }
});

test("crossEntropy: mean/sum forward and gradients, 3-D logits, Tensor targets", () => {
  const logits = randn([4, 5], false, 2);
  const targets = new Int32Array([0, 4, 2, 2]);
  let expected = 0;
  for (let r = 0; r < 4; r++) {
    const row = Array.from(logits.data.subarray(r * 5, r * 5 + 5));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((p, v) => p + Math.exp(v - m), 0));
    expected += lse - row[targets[r]];
  }
  assertClose(crossEntropy(logits, targets).data, [expected / 4], 1e-6, "mean");
  assertClose(crossEntropy(logits, targets, "sum").data, [expected], 1e-6, "sum");
  assertClose(crossEntropy(logits, Tensor.from([0, 4, 2, 2], [4])).data, [expected / 4], 1e-6, "tensor targets");
  checkGrad("crossEntropy mean", (t) => crossEntropy(t, targets), [randn([4, 5])]);
  checkGrad("crossEntropy sum", (t) => crossEntropy(t, targets, "sum"), [randn([4, 5])]);
  checkGrad("crossEntropy 3-D", (t) => crossEntropy(t, new Int32Array([1, 0, 2, 2, 1, 0])), [randn([2, 3, 3])]);
});

test("crossEntropy rejects bad targets and shapes", () => {
  assert.throws(() => crossEntropy(randn([2, 3]), new Int32Array([0, 3])), /crossEntropy: target 3 at position 1 is not an integer in 0..2/);
  assert.throws(() => crossEntropy(randn([2, 3]), new Int32Array([0, 1, 2])), /crossEntropy: logits \[2, 3\] and targets \[3\]/);
  assert.throws(() => crossEntropy(randn([3]), new Int32Array([0])), /logits \[3\] must be \[N, C\]/);
  assert.throws(() => crossEntropy(randn([2, 3]), new Int32Array([0, 1]), "avg" as "mean"), /reduction 'avg' is not one of mean, sum/);
});

test("mseLoss: forward, gradients, shape check", () => {
  const a = randn([3, 4]);
  const b = randn([3, 4]);
  let s = 0;
  for (let i = 0; i < 12; i++) s += (a.data[i] - b.data[i]) ** 2;
  assertClose(mseLoss(a, b).data, [s / 12], 1e-6, "mse");
  checkGrad("mseLoss", (x, y) => mseLoss(x, y), [a, b]);
  assert.throws(() => mseLoss(randn([3, 4]), randn([4, 3])), /mseLoss: input \[3, 4\] and target \[4, 3\]/);
});

test("reductions reject bad axes", () => {
  assert.throws(() => sum(randn([2, 3]), 2), /sum: axis for input \[2, 3\]: 2 is out of range for rank 2/);
  assert.throws(() => mean(randn([2, 3]), [0, 0]), /mean: axes \[0,0\] repeat an axis of \[2, 3\]/);
  assert.throws(() => softmax(randn([2, 3]), 5), /softmax: axis for input \[2, 3\]: 5 is out of range/);
});
