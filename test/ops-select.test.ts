// Selection ops (abs, clamp, minimum, maximum, where): forward values against direct computation,
// gradients against finite differences (inputs kept away from the kinks: 0 for abs, the bounds for
// clamp, ties for minimum/maximum), PyTorch's rules at the kinks, and errors naming what they got.
import { test } from "node:test";
import assert from "node:assert/strict";
import { abs, add, clamp, maximum, minimum, mul, where } from "../src/autograd/index.js";
import { backward } from "../src/autograd/engine.js";
import { ops } from "../src/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { describeValue } from "../src/util/describe.js";
import { assertClose, awayFromZero, checkGrad, distinct, randn, SHAPE_PAIRS } from "./ops-helpers.js";


/** a[i] broadcast against b, element by element, row-major over the broadcast shape. */
function pairs(a: Tensor, b: Tensor): { shape: number[]; xs: number[]; ys: number[] } {
  const rank = Math.max(a.rank, b.rank);
  const pa = [...new Array<number>(rank - a.rank).fill(1), ...a.shape];
  const pb = [...new Array<number>(rank - b.rank).fill(1), ...b.shape];
  const shape = pa.map((d, i) => Math.max(d, pb[i]));
  const xs: number[] = [], ys: number[] = [];
  const n = shape.reduce((p, d) => p * d, 1);
  for (let i = 0; i < n; i++) {
    let rest = i, ia = 0, ib = 0, sa = 1, sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const k = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
      ia += (pa[d] === 1 ? 0 : k) * sa; sa *= pa[d];
      ib += (pb[d] === 1 ? 0 : k) * sb; sb *= pb[d];
    }
    xs.push(a.data[ia]); ys.push(b.data[ib]);
  }
  return { shape, xs, ys };
}

test("abs and clamp: forward values, including infinities and NaN", () => {
  const vals = [-Infinity, -3, -0.5, 0, 0.25, 2, Infinity, NaN];
  const x = Tensor.from(vals, [vals.length]);
  assert.deepEqual(Array.from(abs(x).data), vals.map(Math.abs));
  assert.deepEqual(Array.from(clamp(x, -1, 1).data), [-1, -1, -0.5, 0, 0.25, 1, 1, NaN]);
  assert.deepEqual(Array.from(clamp(x, 0).data), [0, 0, 0, 0, 0.25, 2, Infinity, NaN]);
  assert.deepEqual(Array.from(clamp(x, null, 0).data), [-Infinity, -3, -0.5, 0, 0, 0, 0, NaN]);
  // min > max: every element becomes max (torch.clamp).
  assert.deepEqual(Array.from(clamp(Tensor.from([-5, 0, 5], [3]), 2, 1).data), [1, 1, 1]);
});

test("abs and clamp: gradients against finite differences, PyTorch's values at the kinks", () => {
  checkGrad("abs", (t) => abs(t), [awayFromZero([3, 5])]);
  checkGrad("abs of a product", (t, u) => abs(mul(t, u)), [awayFromZero([2, 4]), awayFromZero([2, 4])]);
  // Entries at least 0.1 from the bounds -1 and 1 (inside and outside).
  const x = Tensor.from([-2, -1.3, -0.8, -0.2, 0.3, 0.9, 1.2, 3], [2, 4], true);
  checkGrad("clamp(-1, 1)", (t) => clamp(t, -1, 1), [x]);
  checkGrad("clamp(min)", (t) => clamp(t, 0.5), [x]);
  checkGrad("clamp(max)", (t) => clamp(t, undefined, -0.5), [x]);
  // At the kinks: abs'(0) = 0; clamp passes the gradient at the bounds themselves.
  const k = Tensor.from([0, -1, 1, 2], [4], true);
  backward(abs(k), [new Float32Array([1, 1, 1, 1])]);
  assert.deepEqual(Array.from(k.grad!.data), [0, -1, 1, 1]);
  k.grad = null;
  backward(clamp(k, -1, 1), [new Float32Array([1, 1, 1, 1])]);
  assert.deepEqual(Array.from(k.grad!.data), [1, 1, 1, 0]);
});

for (const [op, pick] of [[maximum, Math.max], [minimum, Math.min]] as const) {
  test(`${op.name}: forward with broadcasting, gradients for broadcast shapes`, () => {
    for (const [sa, sb] of SHAPE_PAIRS) {
      // Distinct values (spacing 0.1, shifted by a third of it between a and b): no ties within the FD step.
      const a = distinct(sa, 0.1);
      const b = distinct(sb, 0.1);
      for (let i = 0; i < b.size; i++) b.data[i] += 0.033;
      const { shape, xs, ys } = pairs(a, b);
      const y = op(a, b);
      assert.deepEqual(y.shape, shape, `${op.name} ${JSON.stringify(sa)} ${JSON.stringify(sb)} shape`);
      assertClose(y.data, xs.map((v, i) => pick(v, ys[i])), 0, `${op.name} forward`);
      checkGrad(`${op.name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, (p, q) => op(p, q), [a, b]);
    }
    checkGrad(`${op.name} with a number`, (p) => op(p, 0.05), [distinct([3, 4], 0.1)]);
    checkGrad(`number ${op.name}`, (p) => op(-0.05, p), [distinct([3, 4], 0.1)]);
  });
}

test("minimum/maximum: NaN propagates, ties split the gradient like PyTorch", () => {
  const a = Tensor.from([1, NaN, 2, 3], [4], true);
  const b = Tensor.from([NaN, 1, 2, 5], [4], true);
  const hi = maximum(a, b);
  assert.deepEqual(Array.from(hi.data), [NaN, NaN, 2, 5]);
  assert.deepEqual(Array.from(minimum(a, b).data), [NaN, NaN, 2, 3]);
  backward(hi, [new Float32Array([1, 1, 1, 1])]);
  assert.deepEqual(Array.from(a.grad!.data), [0, 1, 0.5, 0]);
  assert.deepEqual(Array.from(b.grad!.data), [1, 0, 0.5, 1]);
  // The same tensor on both sides: the halves add up to the whole gradient.
  const x = randn([5]);
  backward(minimum(x, x), [new Float32Array([1, 2, 3, 4, 5])]);
  assert.deepEqual(Array.from(x.grad!.data), [1, 2, 3, 4, 5]);
});

test("where: selects with broadcasting, routes gradients to the chosen side, passes -Infinity exactly", () => {
  const cond = Tensor.from([1, 0, 0, 2, 0, 1], [2, 3]);
  const a = randn([2, 3]);
  const b = randn([3]);
  const y = where(cond, a, b);
  assert.deepEqual(y.shape, [2, 3]);
  const c = [1, 0, 0, 2, 0, 1];
  assertClose(y.data, c.map((v, i) => (v !== 0 ? a.data[i] : b.data[i % 3])), 0, "where forward");
  checkGrad("where(cond [2,3], a [2,3], b [3])", (p, q) => where(cond, p, q), [a, b]);
  const row = Tensor.from([1, 0, 1], [3]);
  checkGrad("where(cond [3], a [2,1], b [2,3])", (p, q) => where(row, p, q), [randn([2, 1]), randn([2, 3])]);
  // A mask with numbers: masked entries are exactly -Infinity and get no gradient.
  const s = randn([2, 3]);
  const m = where(cond, s, -Infinity);
  assert.deepEqual(Array.from(m.data), c.map((v, i) => (v !== 0 ? s.data[i] : -Infinity)));
  backward(m, [new Float32Array([1, 1, 1, 1, 1, 1])]);
  assert.deepEqual(Array.from(s.grad!.data), c.map((v) => (v !== 0 ? 1 : 0)));
  // In a composition, both sides of the same input.
  checkGrad("where(cond, x, 2x) + x", (p) => add(where(cond, p, mul(p, 2)), p), [randn([2, 3])]);
});

test("the new ops are exported for users as ops.abs, ops.clamp, ops.minimum, ops.maximum, ops.where", () => {
  for (const name of ["abs", "clamp", "minimum", "maximum", "where", "conv1d"] as const) {
    assert.equal(typeof ops[name], "function", `ops.${name}`);
  }
});

test("errors name what they got: shapes that do not broadcast, wrong operand types", () => {
  assert.throws(() => maximum(randn([2, 3]), randn([4])), /maximum: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  assert.throws(() => where(Tensor.zeros([2]), randn([3]), 0), /where: cond \[2\], a \[3\] and b \[\] cannot be broadcast together/);
  assert.throws(() => minimum(1, 2), /minimum: at least one operand must be a Tensor, got two numbers/);
  assert.throws(() => clamp(randn([2])), /clamp: give min, max or both/);
  assert.throws(() => clamp(randn([2]), NaN, 1), /clamp: min must be a number, got NaN/);
  // A typed array where a Tensor belongs: the message names the typed array, not "object".
  assert.throws(() => abs(new Float32Array(3) as unknown as Tensor), /abs: input must be a Tensor, got Float32Array$/);
  assert.throws(() => maximum(new Float32Array(3) as unknown as Tensor, 1), /maximum: a must be a Tensor or a number, got Float32Array$/);
  assert.throws(() => add([1, 2] as unknown as Tensor, randn([2])), /add: operands must be Tensors or numbers, got array$/);
  assert.throws(() => mul(randn([2]), new Int32Array(2) as unknown as Tensor), /mul: operands must be Tensors or numbers, got Int32Array$/);
});

test("describeValue names null, undefined, arrays, constructors and primitives", () => {
  assert.equal(describeValue(null), "null");
  assert.equal(describeValue(undefined), "undefined");
  assert.equal(describeValue([1]), "array");
  assert.equal(describeValue(new Float32Array(1)), "Float32Array");
  assert.equal(describeValue(new Map()), "Map");
  assert.equal(describeValue({}), "Object");
  assert.equal(describeValue(Object.create(null)), "object");
  assert.equal(describeValue(Tensor.zeros([1])), "Tensor");
  assert.equal(describeValue(3), "number");
  assert.equal(describeValue("s"), "string");
  assert.equal(describeValue(() => 0), "function");
});
