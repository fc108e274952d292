// Layer ops: normalisations, conv2d, pooling, embedding, dropout. Gradients against finite
// differences; forward statistics against direct float64 computation (torch fixtures cover values).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  avgPool2d, batchNorm, conv2d, dropout, embedding, groupNorm, layerNorm, maxPool2d, mul, sum, backward,
} from "../src/autograd/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/tensor/random.js";
import { assertClose, checkGrad, distinct, randn, uniform } from "./ops-helpers.js";

test("layerNorm: normalised rows and gradients", () => {
  const x = randn([2, 3, 5], false, 2);
  const y = layerNorm(x, null, null);
  for (let r = 0; r < 6; r++) {
    const row = Array.from(y.data.subarray(r * 5, r * 5 + 5));
    const m = row.reduce((p, v) => p + v, 0) / 5;
    const v = row.reduce((p, q) => p + (q - m) ** 2, 0) / 5;
    assert.ok(Math.abs(m) < 1e-6 && Math.abs(v - 1) < 1e-3, `row ${r}: mean ${m} var ${v}`);
  }
  checkGrad("layerNorm", (t, g, b) => layerNorm(t, g, b), [randn([2, 3, 5]), uniform([5], 0.5, 1.5), randn([5])]);
  checkGrad("layerNorm 2-D", (t, g, b) => layerNorm(t, g, b, 1e-3), [randn([4, 6]), uniform([6], 0.5, 1.5), randn([6])]);
  assert.throws(() => layerNorm(randn([2, 5]), randn([4]), randn([5])), /layerNorm: input \[2, 5\] and gamma \[4\]/);
});

test("groupNorm: gradients, layout checks", () => {
  checkGrad("groupNorm 4-D", (t, g, b) => groupNorm(t, 2, g, b), [randn([2, 4, 3, 3]), uniform([4], 0.5, 1.5), randn([4])]);
  checkGrad("groupNorm 3-D, 1 group", (t, g, b) => groupNorm(t, 1, g, b), [randn([2, 3, 4]), uniform([3], 0.5, 1.5), randn([3])]);
  checkGrad("groupNorm groups = channels", (t, g, b) => groupNorm(t, 3, g, b), [randn([2, 3, 4]), uniform([3], 0.5, 1.5), randn([3])]);
  assert.throws(() => groupNorm(randn([2, 4, 3]), 3, null, null), /groupNorm: 3 groups must be a positive integer dividing the 4 channels of input \[2, 4, 3\]/);
});

test("batchNorm training: batch statistics, running-stat update like torch, gradients", () => {
  const x = randn([3, 2, 2, 2], false, 2);
  const rm = Tensor.from([0.5, -0.5], [2]);
  const rv = Tensor.from([2, 1], [2]);
  const y = batchNorm(x, null, null, rm, rv, true, 0.1);
  for (let c = 0; c < 2; c++) {
    const vals: number[] = [];
    const outs: number[] = [];
    for (let n = 0; n < 3; n++) for (let i = 0; i < 4; i++) { vals.push(x.data[(n * 2 + c) * 4 + i]); outs.push(y.data[(n * 2 + c) * 4 + i]); }
    const m = vals.reduce((p, v) => p + v, 0) / 12;
    const biased = vals.reduce((p, v) => p + (v - m) ** 2, 0) / 12;
    assertClose(outs, vals.map((v) => (v - m) / Math.sqrt(biased + 1e-5)), 1e-5, `channel ${c}`);
    assertClose([rm.data[c]], [0.9 * [0.5, -0.5][c] + 0.1 * m], 1e-6, `running mean ${c}`);
    assertClose([rv.data[c]], [0.9 * [2, 1][c] + 0.1 * biased * 12 / 11], 1e-6, `running var ${c} (unbiased)`);
  }
  checkGrad("batchNorm train 4-D", (t, g, b) => batchNorm(t, g, b, null, null, true),
    [randn([3, 2, 2, 2]), uniform([2], 0.5, 1.5), randn([2])]);
  checkGrad("batchNorm train 2-D", (t, g, b) => batchNorm(t, g, b, null, null, true),
    [randn([5, 3]), uniform([3], 0.5, 1.5), randn([3])]);
  assert.throws(() => batchNorm(randn([1, 2]), null, null, null, null, true), /training needs more than 1/);
});

test("batchNorm inference uses running statistics; gradients", () => {
  const x = randn([2, 3, 2], false);
  const rm = randn([3], false);
  const rv = uniform([3], 0.5, 2, false);
  const g = uniform([3], 0.5, 1.5, false);
  const b = randn([3], false);
  const y = batchNorm(x, g, b, rm, rv, false);
  const expected = Array.from(x.data, (v, i) => {
    const c = Math.floor(i / 2) % 3;
    return ((v - rm.data[c]) / Math.sqrt(rv.data[c] + 1e-5)) * g.data[c] + b.data[c];
  });
  assertClose(y.data, expected, 1e-5, "inference");
  checkGrad("batchNorm eval", (t, gg, bb) => batchNorm(t, gg, bb, rm, rv, false),
    [randn([2, 3, 2]), uniform([3], 0.5, 1.5), randn([3])]);
  assert.throws(() => batchNorm(x, null, null, randn([2], false), rv, false), /batchNorm: input \[2, 3, 2\] and runningMean \[2\]/);
});

test("conv2d: forward against a direct sum, gradients with stride and padding", () => {
  const x = randn([1, 2, 4, 5], false);
  const w = randn([3, 2, 3, 2], false);
  const b = randn([3], false);
  const y = conv2d(x, w, b, { stride: [2, 1], padding: [1, 0] });
  assert.deepEqual(y.shape, [1, 3, 2, 4]);
  // Spot-check one output element by its definition.
  const o = 2, oy = 1, ox = 3;
  let s = b.data[o];
  for (let c = 0; c < 2; c++) for (let ki = 0; ki < 3; ki++) for (let kj = 0; kj < 2; kj++) {
    const iy = oy * 2 - 1 + ki;
    const ix = ox + kj;
    if (iy >= 0 && iy < 4 && ix < 5) s += x.data[(c * 4 + iy) * 5 + ix] * w.data[((o * 2 + c) * 3 + ki) * 2 + kj];
  }
  assertClose([y.data[(o * 2 + oy) * 4 + ox]], [s], 1e-6, "conv element");
  const cases: [number[], number[], { stride?: number | [number, number]; padding?: number | [number, number] }][] = [
    [[2, 2, 5, 5], [3, 2, 3, 3], {}],
    [[2, 2, 5, 5], [3, 2, 3, 3], { stride: 2, padding: 1 }],
    [[1, 3, 6, 5], [2, 3, 2, 3], { stride: [2, 1], padding: [0, 2] }],
    [[2, 1, 4, 4], [2, 1, 1, 1], { stride: 3 }],
  ];
  for (const [xs, ws, opts] of cases) {
    checkGrad(`conv2d ${JSON.stringify(xs)} ${JSON.stringify(ws)} ${JSON.stringify(opts)}`,
      (t, k, bb) => conv2d(t, k, bb, opts), [randn(xs), randn(ws), randn([ws[0]])]);
  }
  checkGrad("conv2d no bias", (t, k) => conv2d(t, k, null, { padding: 1 }), [randn([1, 2, 3, 3]), randn([2, 2, 3, 3])]);
  const frozenW = randn([2, 2, 3, 3], false);
  const frozenX = randn([1, 2, 4, 4], false);
  checkGrad("conv2d bias only", (bb) => conv2d(frozenX, frozenW, bb), [randn([2])]);
});

test("conv2d shape errors name both shapes", () => {
  assert.throws(() => conv2d(randn([1, 3, 5, 5]), randn([2, 2, 3, 3])), /conv2d: input \[1, 3, 5, 5\] and weight \[2, 2, 3, 3\]: input has 3 channels but weight expects 2/);
  assert.throws(() => conv2d(randn([1, 2, 2, 2]), randn([2, 2, 3, 3])), /conv2d: input \[1, 2, 2, 2\] and weight \[2, 2, 3, 3\]: kernel 3x3 is larger/);
  assert.throws(() => conv2d(randn([2, 5, 5]), randn([2, 2, 3, 3])), /input must be \[N, C, H, W\]/);
  assert.throws(() => conv2d(randn([1, 2, 5, 5]), randn([2, 2, 3, 3]), null, { stride: 0 }), /conv2d: stride 0 must be an integer >= 1/);
});

test("maxPool2d: values, padding, overlapping windows, gradients", () => {
  const x = Tensor.from([[[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]]]);
  assertClose(maxPool2d(x, 2).data, [6, 8, 14, 16], 0, "2x2");
  assertClose(maxPool2d(x, 3, 2, 1).data, [6, 8, 14, 16], 0, "3x3 stride 2 pad 1");
  const neg = Tensor.from([[[[-5, -6], [-7, -8]]]]);
  assertClose(maxPool2d(neg, 2, 1, 1).data, [-5, -5, -6, -5, -5, -6, -7, -7, -8], 0, "padding is -inf, not 0");
  checkGrad("maxPool2d 2", (t) => maxPool2d(t, 2), [distinct([2, 2, 4, 4])]);
  checkGrad("maxPool2d overlap", (t) => maxPool2d(t, 3, 1), [distinct([1, 2, 5, 5])]);
  checkGrad("maxPool2d pad", (t) => maxPool2d(t, 3, 2, 1), [distinct([2, 1, 5, 4])]);
  checkGrad("maxPool2d rect", (t) => maxPool2d(t, [2, 3], [1, 2], [1, 1]), [distinct([1, 2, 4, 5])]);
  // Ties: the first maximum (row-major in the window) takes the whole gradient.
  const tie = Tensor.from([[[[3, 3], [3, 3]]]], undefined, true);
  backward(sum(maxPool2d(tie, 2)));
  assert.deepEqual(Array.from(tie.grad!.data), [1, 0, 0, 0]);
  assert.throws(() => maxPool2d(randn([1, 1, 4, 4]), 2, 2, 2), /maxPool2d: padding 2x2 must be at most half the kernel 2x2/);
  assert.throws(() => maxPool2d(randn([1, 4, 4]), 2), /maxPool2d: input \[1, 4, 4\] must be \[N, C, H, W\]/);
});

test("avgPool2d: padding counts as zeros in the divisor, gradients", () => {
  const x = Tensor.from([[[[1, 2], [3, 4]]]]);
  assertClose(avgPool2d(x, 2).data, [2.5], 0, "2x2");
  assertClose(avgPool2d(x, 2, 1, 1).data, [0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1], 1e-7, "padded");
  checkGrad("avgPool2d", (t) => avgPool2d(t, 2), [randn([2, 2, 4, 4])]);
  checkGrad("avgPool2d pad overlap", (t) => avgPool2d(t, 3, 2, 1), [randn([1, 2, 5, 5])]);
  checkGrad("avgPool2d rect", (t) => avgPool2d(t, [2, 3], [2, 1], [1, 0]), [randn([1, 1, 4, 5])]);
});

test("embedding: lookup, repeated ids accumulate, bad ids rejected", () => {
  const w = randn([5, 3]);
  const ids = Tensor.from([[1, 4, 1], [0, 1, 2]]);
  const y = embedding(w, ids);
  assert.deepEqual(y.shape, [2, 3, 3]);
  assertClose(y.data.subarray(3, 6), w.data.subarray(12, 15), 0, "row 4");
  checkGrad("embedding", (t) => embedding(t, ids), [w]);
  w.grad = null;
  backward(sum(embedding(w, ids)));
  assert.deepEqual(Array.from(w.grad!.data.subarray(3, 6)), [3, 3, 3]); // id 1 appears three times
  assert.throws(() => embedding(w, Tensor.from([0, 5], [2])), /embedding: id .* 5 at position 1 is not an integer in 0..4/);
  assert.throws(() => embedding(w, Tensor.from([0.5], [1])), /0.5 at position 0 is not an integer/);
});

test("dropout: inverted scaling, seeded mask, identity in eval, gradients", () => {
  const x = Tensor.ones([2000]);
  const y = dropout(x, 0.25, new Rng(7), true);
  const kept = Array.from(y.data).filter((v) => v !== 0);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6), "kept values are scaled by 1/(1-p)");
  const frac = 1 - kept.length / 2000;
  assert.ok(Math.abs(frac - 0.25) < 0.04, `dropped fraction ${frac} should be near 0.25`);
  assert.deepEqual(Array.from(dropout(x, 0.25, new Rng(7), true).data), Array.from(y.data), "same seed, same mask");
  assert.notDeepEqual(Array.from(dropout(x, 0.25, new Rng(8), true).data), Array.from(y.data));
  assert.equal(dropout(x, 0.5, new Rng(1), false), x);
  assert.ok(dropout(x, 1, new Rng(1), true).data.every((v) => v === 0));
  checkGrad("dropout", (t) => dropout(t, 0.3, new Rng(3), true), [randn([4, 5])]);
  checkGrad("dropout composed", (t) => mul(dropout(t, 0.5, new Rng(4), true), t), [randn([6])]);
  assert.throws(() => dropout(x, 1.5, new Rng(1), true), /dropout: probability 1.5 must be in \[0, 1\]/);
});
