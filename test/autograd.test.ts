// The tape: accumulation across backward calls, noGrad, backward({leaves}), needs-skipping, and
// that the gradient checker itself detects wrong gradients.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  add, backward, checkAccumulation, enableGrad, gradcheck, isGradEnabled, linear, mul, noGrad, record, relu, sum,
  crossEntropy, matmul, conv2d, embedding,
} from "../src/autograd/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { randn } from "./ops-helpers.js";

/** A two-layer MLP loss, the shape of real training. */
function mlpLoss(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor): Tensor {
  return crossEntropy(linear(relu(linear(x, w1, b1)), w2, b2), new Int32Array([0, 2, 1, 2]));
}

test("gradients accumulate across two backward() calls (they double)", () => {
  const params = [randn([5, 3]), randn([5]), randn([3, 5]), randn([3])];
  const x = randn([4, 3], false);
  const dev = checkAccumulation((w1, b1, w2, b2) => mlpLoss(x, w1, b1, w2, b2), params);
  assert.ok(dev < 1e-6, `second backward should exactly double the gradients, deviation ${dev}`);
  // Scalar-root form too.
  const w = randn([2, 2]);
  backward(sum(mul(w, 3)));
  backward(sum(mul(w, 3)));
  assert.deepEqual(Array.from(w.grad!.data), [6, 6, 6, 6]);
});

test("noGrad records nothing; enableGrad re-enables inside it", () => {
  const w = randn([3, 3]);
  const y = noGrad(() => {
    assert.equal(isGradEnabled(), false);
    const inner = enableGrad(() => mul(w, w));
    assert.ok(inner.gradFn !== null && inner.requiresGrad, "enableGrad records");
    return relu(matmul(w, w));
  });
  assert.equal(isGradEnabled(), true);
  assert.equal(y.gradFn, null);
  assert.equal(y.requiresGrad, false);
  assert.throws(() => backward(sum(y)), /does not require grad/);
  // An exception inside noGrad still restores recording.
  assert.throws(() => noGrad(() => { throw new Error("boom"); }), /boom/);
  assert.equal(isGradEnabled(), true);
});

test("backward({leaves}) fills only those leaves and skips unneeded gradient work", () => {
  const a = randn([2, 3]);
  const b = randn([3, 2]);
  const c = randn([2]);
  const seen: boolean[][] = [];
  // A spy op recording which inputs the engine says are needed.
  const spy = (x: Tensor, y: Tensor): Tensor => {
    const out = matmul(x, y);
    const wrapped = new Tensor(out.data, out.shape);
    return record(wrapped, "spy", [out, y], (g, needs) => { seen.push([...needs]); return [needs[0] ? g.slice() : null, null]; });
  };
  const loss = sum(add(spy(a, b), c));
  backward(loss, undefined, { leaves: [c] });
  assert.ok(c.grad !== null);
  assert.equal(a.grad, null);
  assert.equal(b.grad, null);
  assert.deepEqual(seen, [], "the spy's subtree leads to no wanted leaf, so it never runs");

  const loss2 = sum(add(spy(a, b), c));
  backward(loss2, undefined, { leaves: [a] });
  assert.ok(a.grad !== null);
  assert.equal(b.grad, null);
  assert.deepEqual(seen, [[true, false]]);
  assert.deepEqual(Array.from(c.grad!.data), [2, 2], "c was not touched by the second call");
});

test("a tensor used twice receives the sum of both gradients; leaves never share arrays", () => {
  const x = randn([3]);
  backward(sum(add(mul(x, x), x)));
  const expected = Array.from(x.data, (v) => Math.fround(2 * v + 1));
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(x.grad!.data[i] - expected[i]) < 1e-6);
  const p = randn([2, 2]);
  const q = randn([2, 2]);
  backward(sum(add(p, q)));
  assert.notEqual(p.grad!.data, q.grad!.data);
  p.grad!.data[0] = 42;
  assert.equal(q.grad!.data[0], 1);
});

test("non-scalar roots need an explicit gradient", () => {
  const x = randn([2, 2]);
  assert.throws(() => backward(mul(x, 2)), /a gradient is needed for non-scalar roots/);
  backward(mul(x, 2), [Tensor.ones([2, 2])]);
  assert.deepEqual(Array.from(x.grad!.data), [2, 2, 2, 2]);
});

test("gradcheck detects a wrong backward rule", () => {
  // y = x^2 with a deliberately wrong derivative (x instead of 2x).
  const badSquare = (x: Tensor): Tensor => {
    const out = new Tensor(x.data.map((v) => v * v), x.shape);
    return record(out, "badSquare", [x], (g) => [g.map((gi, i) => gi * x.data[i])]);
  };
  const res = gradcheck(badSquare, [randn([4])]);
  assert.equal(res.ok, false);
  assert.match(res.worst, /analytic .* numeric/);
  // And accepts the right one.
  const goodSquare = (x: Tensor): Tensor => {
    const out = new Tensor(x.data.map((v) => v * v), x.shape);
    return record(out, "square", [x], (g) => [g.map((gi, i) => 2 * gi * x.data[i])]);
  };
  assert.equal(gradcheck(goodSquare, [randn([4])]).ok, true);
});

test("gradcheck of a whole MLP loss", () => {
  const res = gradcheck((x, w1, b1, w2, b2) => mlpLoss(x, w1, b1, w2, b2),
    [randn([4, 3]), randn([5, 3]), randn([5]), randn([3, 5]), randn([3])]);
  assert.ok(res.ok, res.worst);
});

test("conv2d and embedding accumulate into an existing .grad exactly like a fresh gradient added to it", () => {
  const x = randn([2, 3, 5, 5], false);
  const convDev = checkAccumulation((w, b) => conv2d(x, w, b, { stride: 2, padding: 1 }), [randn([4, 3, 3, 3]), randn([4])]);
  assert.ok(convDev < 1e-6, `conv2d second backward should double dw and db, deviation ${convDev}`);
  const ids = Tensor.from([[0, 3, 3], [1, 0, 2]]);
  const embDev = checkAccumulation((w) => embedding(w, ids), [randn([4, 5])]);
  assert.ok(embDev < 1e-6, `embedding second backward should double, deviation ${embDev}`);
});

test("recycled gradient buffers: repeated passes give identical gradients, leaf .grad and deferred gradients stay intact", () => {
  // Large enough (>= 4096 elements) that backward() recycles intermediate gradients through gradBuffer().
  const x = randn([64, 96]);
  const w = randn([80, 96]);
  const loss = (): Tensor => {
    const h = linear(x, w); // [64, 80]
    const r = relu(add(h, h)); // a tensor used twice, a pass-through add
    return sum(mul(matmul(r, r, { transB: true }), 0.5));
  };
  backward(loss());
  const gx1 = x.grad!.data.slice();
  const gw1 = w.grad!.data.slice();
  const xg = x.grad!;
  // A second graph over other leaves recycles the first pass's buffers; x's .grad must not change.
  const y = randn([64, 96]);
  backward(sum(mul(relu(linear(y, randn([80, 96]))), 2)));
  assert.equal(x.grad, xg);
  assert.deepEqual(x.grad!.data, gx1, "a leaf .grad changed after another backward pass");
  // The same graph again, now on recycled (non-zero) buffers: bit for bit the same gradients.
  x.grad = null;
  w.grad = null;
  backward(loss());
  assert.deepEqual(x.grad!.data, gx1);
  assert.deepEqual(w.grad!.data, gw1);
  // Deferred leaf gradients read their saved output gradients after backward() returned.
  x.grad = null;
  w.grad = null;
  const later = backward(loss(), undefined, { defer: [w] });
  backward(sum(mul(relu(linear(y, randn([80, 96]))), 2)));
  later();
  assert.deepEqual(x.grad!.data, gx1);
  assert.deepEqual(w.grad!.data, gw1);
});
