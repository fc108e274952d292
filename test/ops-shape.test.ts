// Shape ops: reshape, flatten, transpose, permute, slice, concat, causalMask.
import { test } from "node:test";
import assert from "node:assert/strict";
import { causalMask, concat, flatten, permute, reshape, slice, transpose } from "../src/autograd/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { assertClose, checkGrad, randn } from "./ops-helpers.js";

/** Values equal to their flat index, so moved elements are easy to predict. */
function iota(shape: number[], requiresGrad = false): Tensor {
  const t = Tensor.zeros(shape, requiresGrad);
  for (let i = 0; i < t.size; i++) t.data[i] = i;
  return t;
}

test("reshape and flatten keep the data order", () => {
  const x = iota([2, 3, 4]);
  assert.deepEqual(reshape(x, [4, -1]).shape, [4, 6]);
  assert.deepEqual(Array.from(reshape(x, [24]).data), Array.from(x.data));
  assert.deepEqual(flatten(x).shape, [2, 12]);
  assert.deepEqual(flatten(x, 0).shape, [24]);
  assert.deepEqual(flatten(x, 0, 1).shape, [6, 4]);
  assert.throws(() => reshape(x, [5, -1]), /reshape \[2, 3, 4\] -> \[5, -1\]/);
  checkGrad("reshape", (t) => reshape(t, [3, 8]), [randn([2, 3, 4])]);
  checkGrad("flatten", (t) => flatten(t), [randn([2, 3, 2])]);
});

test("permute and transpose move elements like torch", () => {
  const x = iota([2, 3, 4]);
  const p = permute(x, [2, 0, 1]);
  assert.deepEqual(p.shape, [4, 2, 3]);
  for (let a = 0; a < 4; a++) for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) {
    assert.equal(p.data[(a * 2 + b) * 3 + c], (b * 3 + c) * 4 + a);
  }
  const t = transpose(x, 0, -1);
  assert.deepEqual(t.shape, [4, 3, 2]);
  assert.equal(t.data[(1 * 3 + 2) * 2 + 1], (1 * 3 + 2) * 4 + 1);
  checkGrad("permute 3-D", (u) => permute(u, [2, 0, 1]), [randn([2, 3, 4])]);
  checkGrad("permute 4-D", (u) => permute(u, [0, 2, 1, 3]), [randn([2, 3, 2, 2])]);
  checkGrad("transpose", (u) => transpose(u, 1, 2), [randn([2, 3, 4])]);
  assert.throws(() => permute(x, [0, 0, 1]), /permute: \[0,0,1\] is not a permutation of the 3 axes of \[2, 3, 4\]/);
  assert.throws(() => permute(x, [0, 1]), /not a permutation/);
  assert.throws(() => transpose(x, 0, 3), /transpose: axis for input \[2, 3, 4\]: 3 is out of range/);
});

test("slice and concat", () => {
  const x = iota([2, 5, 3]);
  const s = slice(x, 1, 1, -1);
  assert.deepEqual(s.shape, [2, 3, 3]);
  assert.deepEqual(Array.from(s.data.subarray(0, 3)), [3, 4, 5]);
  assert.deepEqual(Array.from(s.data.subarray(9, 12)), [18, 19, 20]);
  assert.throws(() => slice(x, 1, 3, 7), /slice: range 3..7 is not within 0..5 of axis 1 of \[2, 5, 3\]/);
  checkGrad("slice axis 1", (t) => slice(t, 1, 1, 4), [randn([2, 5, 3])]);
  checkGrad("slice axis 0", (t) => slice(t, 0, 1, 2), [randn([2, 5, 3])]);
  checkGrad("slice last", (t) => slice(t, -1, 0, 2), [randn([2, 5, 3])]);

  const a = iota([2, 1, 3]);
  const b = iota([2, 2, 3]);
  const c = concat([a, b], 1);
  assert.deepEqual(c.shape, [2, 3, 3]);
  assert.deepEqual(Array.from(c.data.subarray(0, 9)), [0, 1, 2, 0, 1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from(concat([a, a], 0).data), [...a.data, ...a.data]);
  checkGrad("concat axis 1", (p, q, r) => concat([p, q, r], 1), [randn([2, 1, 3]), randn([2, 2, 3]), randn([2, 3, 3])]);
  checkGrad("concat axis -1", (p, q) => concat([p, q], -1), [randn([2, 2]), randn([2, 3])]);
  const frozen = randn([2, 2], false);
  checkGrad("concat with a constant", (p) => concat([frozen, p], 0), [randn([1, 2])]);
  assert.throws(() => concat([randn([2, 3]), randn([3, 3])], 1), /concat: shapes \[2, 3\] and \[3, 3\] differ outside axis 1/);
  assert.throws(() => concat([], 0), /non-empty/);
});

test("causalMask sets entries above the diagonal to -Infinity and blocks their gradient", () => {
  const x = randn([2, 3, 3], false);
  const y = causalMask(x);
  for (let b = 0; b < 2; b++) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
    const k = (b * 3 + i) * 3 + j;
    assert.equal(y.data[k], j > i ? -Infinity : x.data[k]);
  }
  checkGrad("causalMask", causalMask, [randn([2, 2, 4, 4])]);
  assert.throws(() => causalMask(randn([2, 3, 4])), /causalMask: input \[2, 3, 4\] must end in two equal dimensions/);
  assertClose(causalMask(Tensor.from([[1, 2], [3, 4]])).data, [1, -Infinity, 3, 4], 0, "2-D");
});
