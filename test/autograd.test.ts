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

// ---- Deferred weight gradients computed together (computeDeferred) -------------------------------
// These run on the reference backend (ops-helpers selects it): every product accumulates in float64
// and rounds once, and row i of a linear's output and gradient depends on row i of its input only.
// So one stacked product over the rows of k calls is bit for bit the product of one backward over
// the concatenated batch, for a weight used once per call. Where the sums are split differently
// (each closure alone, accumulated into .grad; a weight used twice per call), the results differ
// only by float32 roundings of partial sums: at most 2k+1 roundings, each <= u = 2^-24 relative to a
// partial sum of magnitude <= the sum of |terms|, i.e. ~(2k+1)u ~ 4e-7 for k = 3 on these O(1)
// gradients. We allow 1e-5 of the largest entry (the backend-agreement tolerance); a missing or
// doubled micro-batch changes a gradient by O(1) of its size, orders of magnitude more.
import { computeDeferred, type DeferredGrads } from "../src/autograd/engine.js";
import { reshape } from "../src/autograd/index.js";

const DEFER_TOL = 1e-5;

function copyLeaf(t: Tensor): Tensor { return new Tensor(t.data.slice(), t.shape, true); }

function assertNear(label: string, got: Float32Array | undefined, want: Float32Array | undefined, tol = DEFER_TOL): void {
  assert.ok(got && want, `${label}: missing gradient`);
  assert.equal(got.length, want.length, `${label}: length`);
  let scale = 0, diff = 0;
  for (let i = 0; i < want.length; i++) { scale = Math.max(scale, Math.abs(want[i])); diff = Math.max(diff, Math.abs(got[i] - want[i])); }
  assert.ok(scale > 0, `${label}: zero gradient (the test needs a non-trivial one)`);
  assert.ok(diff <= tol * scale, `${label}: differs by ${diff.toExponential(3)} (max |want| ${scale.toExponential(3)})`);
}

/** x -> relu(x A^T + a) -> relu(. A^T + a) (A used twice) -> . B^T + b -> summed cross-entropy. */
function sharedMlp(x: Tensor, y: Int32Array, [A, a, B, b]: readonly Tensor[]): Tensor {
  const h = relu(linear(relu(linear(x, A, a)), A, a));
  return crossEntropy(linear(h, B, b), y, "sum");
}

function concatRows(ts: readonly Tensor[]): Tensor {
  const cols = ts[0].shape[1];
  const data = new Float32Array(ts.reduce((n, t) => n + t.size, 0));
  let at = 0;
  for (const t of ts) { data.set(t.data, at); at += t.size; }
  return new Tensor(data, [data.length / cols, cols]);
}

test("computeDeferred over k backward calls: stacked weight gradients equal each closure alone and one backward over the concatenated batch", () => {
  const params = [randn([6, 6]), randn([6]), randn([4, 6]), randn([4])];
  const rowsPer = [4, 3, 5];
  const xs = rowsPer.map((r) => randn([r, 6], false));
  const ys = rowsPer.map((r) => Int32Array.from({ length: r }, (_, i) => (i * 3 + r) % 4));

  // (1) All k deferred closures in one computeDeferred pass.
  const stacked = params.map(copyLeaf);
  const closures: DeferredGrads[] = xs.map((x, i) => backward(sharedMlp(x, ys[i], stacked), undefined, { defer: stacked }));
  assert.ok(stacked.every((p) => p.grad === null), "deferred leaves get nothing before the closures run");
  computeDeferred(closures);

  // (2) Each closure alone, accumulating into .grad.
  const alone = params.map(copyLeaf);
  const closures2 = xs.map((x, i) => backward(sharedMlp(x, ys[i], alone), undefined, { defer: alone }));
  for (const d of closures2) d();

  // (3) One plain backward over the concatenated batch.
  const whole = params.map(copyLeaf);
  backward(sharedMlp(concatRows(xs), Int32Array.from(ys.flatMap((y) => [...y])), whole));

  const names = ["A", "a", "B", "b"];
  params.forEach((_, i) => {
    assertNear(`${names[i]} stacked vs concatenated batch`, stacked[i].grad?.data, whole[i].grad?.data);
    assertNear(`${names[i]} stacked vs each closure alone`, stacked[i].grad?.data, alone[i].grad?.data);
  });
  // B and b are used once per call: the stacked product is exactly the concatenated batch's product.
  assert.deepEqual(stacked[2].grad!.data, whole[2].grad!.data, "B: stacked rows should equal the concatenated batch exactly");
  assert.deepEqual(stacked[3].grad!.data, whole[3].grad!.data, "b: stacked rows should equal the concatenated batch exactly");
  // The comparison can fail: dropping one call's contribution is far outside the tolerance.
  const partial = params.map(copyLeaf);
  computeDeferred(xs.slice(1).map((x, i) => backward(sharedMlp(x, ys[i + 1], partial), undefined, { defer: partial })));
  assert.throws(() => assertNear("B without call 0", partial[2].grad!.data, whole[2].grad!.data), /differs/);
});

test("computeDeferred stacks the row-wise ops of one weight into one call over all their rows, in list order", () => {
  // A spy row-wise op y = x w^T written out here, counting the calls of its stacked rule.
  const calls: { rows: number; saved: number[] }[] = [];
  const rule = (g: Float32Array, saved: Float32Array, rows: number, w: Tensor, needs: readonly boolean[]): (Float32Array | null)[] => {
    calls.push({ rows, saved: Array.from(saved) });
    const [o, n] = w.shape;
    const dw = new Float32Array(o * n);
    for (let r = 0; r < rows; r++) for (let i = 0; i < o; i++) for (let j = 0; j < n; j++) dw[i * n + j] += g[r * o + i] * saved[r * n + j];
    return [null, needs[1] ? dw : null];
  };
  const spy = (x: Tensor, w: Tensor): Tensor => {
    const [o, n] = w.shape;
    const rows = x.size / n;
    const out = new Float32Array(rows * o);
    for (let r = 0; r < rows; r++) for (let i = 0; i < o; i++) for (let j = 0; j < n; j++) out[r * o + i] += x.data[r * n + j] * w.data[i * n + j];
    return record(new Tensor(out, [rows, o]), "spyRowwise", [x, w], (g, needs) => rule(g, x.data, rows, w, needs),
      { key: w, rows, saved: x.data, backward: (g, saved, r, needs) => rule(g, saved, r, w, needs) });
  };
  const w = randn([3, 2]);
  const xs = [randn([2, 2], false), randn([1, 2], false), randn([3, 2], false)];
  const ds = xs.map((x) => backward(sum(mul(spy(x, w), 2)), undefined, { defer: [w] }));
  assert.equal(calls.length, 0, "B computed no weight gradient");
  computeDeferred(ds);
  assert.equal(calls.length, 1, "one stacked call");
  assert.equal(calls[0].rows, 6);
  assert.deepEqual(calls[0].saved, xs.flatMap((x) => Array.from(x.data)), "saved rows stacked in list order");
  // Explicit formula: dL/dw[i][j] = sum over all rows of 2 * x[r][j].
  for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) {
    const want = xs.reduce((s, x) => s + Array.from({ length: x.shape[0] }, (_, r) => 2 * x.data[r * 2 + j]).reduce((p, q) => p + q, 0), 0);
    assert.ok(Math.abs(w.grad!.data[i * 2 + j] - want) <= 1e-5 * (1 + Math.abs(want)), `dw[${i}][${j}] ${w.grad!.data[i * 2 + j]} vs ${want}`);
  }
});

test("a deferred closure runs at most once; computeDeferred rejects repeats and foreign functions", () => {
  const w = randn([3, 4]);
  const x = randn([2, 4], false);
  const d = backward(sum(linear(x, w)), undefined, { defer: [w] });
  d();
  const once = w.grad!.data.slice();
  assert.throws(() => d(), /already computed/);
  assert.throws(() => computeDeferred([d]), /already computed/);
  assert.deepEqual(w.grad!.data, once, "a refused repeat adds nothing");
  const e = backward(sum(linear(x, w)), undefined, { defer: [w] });
  assert.throws(() => computeDeferred([e, e]), /already computed/);
  assert.throws(() => computeDeferred([() => {}]), /not a closure returned by backward/);
});

test("deferred weights of a non-row-wise op (matmul) next to stacked ones (conv2d, linear): the same gradients as a plain backward", () => {
  const W = randn([5, 3]);
  const cw = randn([4, 2, 3, 3]);
  const cb = randn([4]);
  const lw = randn([2, 4 * 3 * 3]);
  const inputs = [0, 1].map(() => ({ a: randn([4, 5], false), img: randn([2, 2, 5, 5], false) }));
  // matmul (W as right operand, also through a transpose flag), conv2d with bias, then a linear.
  const loss = (p: readonly Tensor[], i: number): Tensor => {
    const [W_, cw_, cb_, lw_] = p;
    const m = sum(mul(relu(matmul(inputs[i].a, W_)), matmul(inputs[i].a, W_)));
    const c = relu(conv2d(inputs[i].img, cw_, cb_, { stride: 2, padding: 1 }));
    return add(m, sum(mul(linear(reshape(c, [2, 4 * 3 * 3]), lw_), 0.5)));
  };
  const plain = [W, cw, cb, lw].map(copyLeaf);
  for (const i of [0, 1]) backward(loss(plain, i));
  const deferred = [W, cw, cb, lw].map(copyLeaf);
  const ds = [0, 1].map((i) => backward(loss(deferred, i), undefined, { defer: deferred }));
  assert.ok(deferred.every((p) => p.grad === null));
  computeDeferred(ds);
  ["W", "conv w", "conv b", "linear w"].forEach((n, i) => assertNear(n, deferred[i].grad?.data, plain[i].grad?.data, 1e-6));
  // One call alone is the same computation as the plain backward: exact.
  const one = [W, cw, cb, lw].map(copyLeaf);
  const onePlain = [W, cw, cb, lw].map(copyLeaf);
  backward(loss(one, 1), undefined, { defer: one })();
  backward(loss(onePlain, 1));
  one.forEach((p, i) => assert.deepEqual(p.grad!.data, onePlain[i].grad!.data, `single call, parameter ${i}`));
});

test("leaves: [] with deferred weights (a first stage) still reaches every weight: same gradients as a plain backward", () => {
  // Input without grad; the weights' ops are deep in the graph (linear -> relu -> matmul -> relu -> linear).
  const params = [randn([7, 5]), randn([7]), randn([7, 3]), randn([4, 3]), randn([4])];
  const x = randn([6, 5], false);
  const y = new Int32Array([0, 3, 1, 2, 3, 0]);
  const loss = ([w1, b1, m, w2, b2]: readonly Tensor[]): Tensor =>
    crossEntropy(linear(relu(matmul(relu(linear(x, w1, b1)), m)), w2, b2), y);
  const plain = params.map(copyLeaf);
  backward(loss(plain));
  const first = params.map(copyLeaf);
  const d = backward(loss(first), undefined, { leaves: [], defer: first });
  assert.ok(first.every((p) => p.grad === null), "B with leaves: [] fills no leaf");
  assert.equal(x.grad, null);
  computeDeferred([d]);
  first.forEach((p, i) => {
    assert.ok(p.grad, `parameter ${i} got no gradient`);
    assert.deepEqual(p.grad.data, plain[i].grad!.data, `parameter ${i}`);
  });
});

test("conv2d deferred weight gradients: stacked for the same image size, separate for another, both equal a plain backward", () => {
  const w = randn([3, 2, 3, 3]);
  const b = randn([3]);
  // Two calls on 6x6 images (stackable: 1 + 2 images) and one on 7x7 (its rows differ in size).
  const imgs = [randn([1, 2, 6, 6], false), randn([2, 2, 6, 6], false), randn([2, 2, 7, 7], false)];
  const coef = imgs.map((x) => randn([x.shape[0], 3, 6, 6].map((d, i) => (i >= 2 ? Math.floor((x.shape[2] + 2 - 3) / 2) + 1 : d)), false));
  const loss = (p: readonly Tensor[], i: number): Tensor => sum(mul(conv2d(imgs[i], p[0], p[1], { stride: 2, padding: 1 }), coef[i]));
  const plain = [w, b].map(copyLeaf);
  for (const i of [0, 1, 2]) backward(loss(plain, i));
  const deferred = [w, b].map(copyLeaf);
  computeDeferred([0, 1, 2].map((i) => backward(loss(deferred, i), undefined, { defer: deferred })));
  assertNear("conv w", deferred[0].grad?.data, plain[0].grad?.data, 1e-6);
  assertNear("conv b", deferred[1].grad?.data, plain[1].grad?.data, 1e-6);
  // The first two calls stacked are one convolution over their 3 images: exact on the reference.
  const pair = [w, b].map(copyLeaf);
  computeDeferred([0, 1].map((i) => backward(loss(pair, i), undefined, { defer: pair })));
  const both = [w, b].map(copyLeaf);
  const cat = new Tensor(Float32Array.from([...imgs[0].data, ...imgs[1].data]), [3, 2, 6, 6]);
  const coefCat = new Tensor(Float32Array.from([...coef[0].data, ...coef[1].data]), [3, 3, 3, 3]);
  backward(sum(mul(conv2d(cat, both[0], both[1], { stride: 2, padding: 1 }), coefCat)));
  assertNear("conv w (two calls vs one batch)", pair[0].grad?.data, both[0].grad?.data, 1e-6);
  assertNear("conv b (two calls vs one batch)", pair[1].grad?.data, both[1].grad?.data, 1e-6);
});

test("computeDeferred: a deferred per-row operand (linear's x) is never stacked; its gradient equals a plain backward", () => {
  const P = randn([2, 3]), w = randn([4, 3]);
  const P2 = new Tensor(P.data.slice(), P.shape, true), w2 = new Tensor(w.data.slice(), w.shape, true);
  const ds = [1, 2].map((s) => backward(sum(mul(linear(P, w), s)), undefined, { defer: [P, w] }));
  computeDeferred(ds);
  for (const s of [1, 2]) backward(sum(mul(linear(P2, w2), s)));
  assert.deepEqual(P.grad!.shape, P.shape);
  for (const [a, b] of [[P, P2], [w, w2]]) {
    a.grad!.data.forEach((v, i) => assert.ok(Math.abs(v - b.grad!.data[i]) <= 1e-5 * (1 + Math.abs(b.grad!.data[i])), `${v} vs ${b.grad!.data[i]}`));
  }
});
