// Element-wise ops: forward values against direct computation, gradients against finite differences.
import { test } from "node:test";
import assert from "node:assert/strict";
import { add, sub, mul, div, neg, relu, gelu, tanh, exp, log, sigmoid, sqrt, sum } from "../src/autograd/index.js";
import { backward } from "../src/autograd/engine.js";
import { Tensor } from "../src/tensor/tensor.js";
import { assertClose, awayFromZero, checkGrad, randn, uniform, SHAPE_PAIRS } from "./ops-helpers.js";


test("binary ops broadcast like NumPy (forward)", () => {
  const a = randn([2, 3, 4], false);
  const b = randn([3, 1], false);
  const expect = (f: (x: number, y: number) => number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) {
      out.push(Math.fround(f(a.data[(i * 3 + j) * 4 + k], b.data[j])));
    }
    return out;
  };
  assert.deepEqual(add(a, b).shape, [2, 3, 4]);
  assertClose(add(a, b).data, expect((x, y) => x + y), 0, "add");
  assertClose(sub(a, b).data, expect((x, y) => x - y), 0, "sub");
  assertClose(mul(a, b).data, expect((x, y) => x * y), 0, "mul");
  assertClose(div(a, b).data, expect((x, y) => x / y), 0, "div");
  assertClose(sub(2, a).data, Array.from(a.data, (x) => Math.fround(2 - x)), 0, "number - tensor");
  assertClose(div(a, 4).data, Array.from(a.data, (x) => x / 4), 0, "tensor / number");
  assertClose(div(1, a).data, Array.from(a.data, (x) => Math.fround(1 / x)), 0, "number / tensor");
});

for (const op of [add, sub, mul, div]) {
  test(`${op.name}: gradients for broadcast shapes`, () => {
    for (const [sa, sb] of SHAPE_PAIRS) {
      const a = randn(sa);
      // Divisors kept away from 0 so that 1/b stays smooth at the finite-difference scale.
      const b = op === div ? uniform(sb, 0.5, 1.5) : randn(sb);
      checkGrad(`${op.name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, (x, y) => op(x, y), [a, b]);
    }
  });
}

test("binary ops with numbers and repeated inputs", () => {
  const x = uniform([3, 2], 0.5, 2);
  checkGrad("x + 3", (t) => add(t, 3), [x]);
  checkGrad("3 - x", (t) => sub(3, t), [x]);
  checkGrad("x * -2", (t) => mul(t, -2), [x]);
  checkGrad("2 * x", (t) => mul(2, t), [x]);
  checkGrad("x / 3", (t) => div(t, 3), [x]);
  checkGrad("3 / x", (t) => div(3, t), [x]);
  checkGrad("x * x", (t) => mul(t, t), [x]);
  checkGrad("x / x + x - x", (t) => sub(add(div(t, t), t), t), [x]);
});

test("binary ops reject shapes that do not broadcast, naming both", () => {
  assert.throws(() => add(randn([2, 3]), randn([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  assert.throws(() => mul(randn([2, 3, 5]), randn([3, 4])), /mul: shapes \[2, 3, 5\] and \[3, 4\]/);
  assert.throws(() => add(1 as unknown as Tensor, 2), /at least one operand must be a Tensor/);
});

test("unary ops: forward values", () => {
  const xs = [-3, -1, -0.5, 0, 0.5, 1, 3];
  const x = Tensor.from(xs, [xs.length]);
  // GELU reference values x·Φ(x) (exact erf, as torch's default), Φ from standard tables.
  const phi = [0.0013498980316301, 0.15865525393145707, 0.3085375387259869, 0.5, 0.6914624612740131,
    0.8413447460685429, 0.9986501019683699];
  assertClose(gelu(x).data, xs.map((v, i) => v * phi[i]), 1e-6, "gelu");
  assertClose(relu(x).data, xs.map((v) => Math.max(v, 0)), 0, "relu");
  assertClose(tanh(x).data, xs.map(Math.tanh), 1e-7, "tanh");
  assertClose(exp(x).data, xs.map(Math.exp), 1e-7, "exp");
  assertClose(sigmoid(x).data, xs.map((v) => 1 / (1 + Math.exp(-v))), 1e-7, "sigmoid");
  assertClose(neg(x).data, xs.map((v) => -v), 0, "neg");
  const p = Tensor.from([0.25, 1, 4, 9], [4]);
  assertClose(log(p).data, [Math.log(0.25), 0, Math.log(4), Math.log(9)], 1e-7, "log");
  assertClose(sqrt(p).data, [0.5, 1, 2, 3], 0, "sqrt");
  // Extreme inputs stay finite and saturate.
  const big = Tensor.from([-100, 100], [2]);
  assertClose(sigmoid(big).data, [0, 1], 1e-7, "sigmoid saturation");
  assertClose(gelu(big).data, [0, 100], 1e-7, "gelu saturation");
  // Exact in the tail (no 1 + erf cancellation: Φ(-5) = 2.866515718791939e-7) and torch's inf/NaN behaviour.
  const tail = gelu(Tensor.from([-5, Infinity, -Infinity], [3])).data;
  assertClose([tail[0]], [-5 * 2.866515718791939e-7], 1e-6, "gelu(-5)");
  assert.equal(tail[1], Infinity);
  assert.ok(Number.isNaN(tail[2]), "gelu(-inf) is NaN like torch");
});

test("unary ops: gradients", () => {
  const x = awayFromZero([3, 4], 0.1); // relu's kink stays beyond the step
  checkGrad("relu", relu, [x]);
  checkGrad("neg", neg, [x]);
  checkGrad("gelu", gelu, [randn([3, 4], true, 2)]);
  checkGrad("tanh", tanh, [randn([3, 4])]);
  checkGrad("exp", exp, [randn([3, 4])]);
  checkGrad("sigmoid", sigmoid, [randn([3, 4], true, 3)]);
  checkGrad("log", log, [uniform([3, 4], 0.5, 3)]);
  checkGrad("sqrt", sqrt, [uniform([3, 4], 0.5, 3)]);
  checkGrad("composition", (t) => sum(mul(tanh(t), exp(neg(t)))), [randn([5])]);
});

test("relu's derivative at exactly 0 is 0, like torch", () => {
  const x = Tensor.from([0, 0, 1], [3], true);
  backward(sum(relu(x)));
  assert.deepEqual(Array.from(x.grad!.data), [0, 0, 1]);
});
