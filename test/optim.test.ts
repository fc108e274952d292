// Optimizers on tiny problems worked out by hand (or by an independent float64 formula), parameter
// groups, state save/restore, and LR schedules.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Tensor } from "../src/tensor/tensor.js";
import {
  AdamW, SGD, clipGradNorm, createOptimizer, constantLr, cosineLr, linearWarmup, parseSchedule, productLr, stepLr,
} from "../src/optim/index.js";

function param(values: number[]): Tensor { return Tensor.from(values, [values.length], true); }
function setGrad(p: Tensor, g: number[]): void { p.grad = Tensor.from(g, [g.length]); }
function close(actual: ArrayLike<number>, expected: number[], tol = 1e-6, what = ""): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i])),
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

test("SGD without momentum: w -= lr * g", () => {
  const w = param([1, -2]);
  const opt = new SGD([w], { lr: 0.5 });
  setGrad(w, [0.2, -0.4]);
  opt.step();
  close(w.data, [0.9, -1.8]);
});

test("SGD momentum: v1 = g, v2 = 0.9 v1 + g (constant g = 1, lr 0.1)", () => {
  const w = param([0]);
  const opt = new SGD([w], { lr: 0.1, momentum: 0.9 });
  const expected = [-0.1, -0.29, -0.561]; // steps of 0.1*(1), 0.1*(1.9), 0.1*(2.71)
  for (const e of expected) { setGrad(w, [1]); opt.step(); close(w.data, [e], 1e-6, "w"); }
});

test("SGD dampening: the first step uses v = g undamped, later v = m v + (1 - d) g", () => {
  const w = param([0]);
  const opt = new SGD([w], { lr: 1, momentum: 0.5, dampening: 0.5 });
  setGrad(w, [2]); opt.step(); close(w.data, [-2]);          // v = 2
  setGrad(w, [2]); opt.step(); close(w.data, [-2 - 2]);      // v = 1 + 1 = 2
  setGrad(w, [4]); opt.step(); close(w.data, [-4 - 3]);      // v = 1 + 2 = 3
});

test("SGD Nesterov: step = g + m v", () => {
  const w = param([0]);
  const opt = new SGD([w], { lr: 0.1, momentum: 0.9, nesterov: true });
  setGrad(w, [1]); opt.step(); close(w.data, [-0.19]);             // v = 1, step 1 + 0.9
  setGrad(w, [1]); opt.step(); close(w.data, [-0.19 - 0.271]);     // v = 1.9, step 1 + 1.71
  assert.throws(() => new SGD([w], { lr: 0.1, nesterov: true }), /nesterov needs momentum > 0 and dampening 0/);
});

test("SGD weight decay adds wd * w to the gradient before momentum", () => {
  const w = param([2]);
  const opt = new SGD([w], { lr: 0.1, momentum: 0.9, weightDecay: 0.5 });
  setGrad(w, [0]); opt.step();                 // g' = 1, v = 1, w = 1.9
  close(w.data, [1.9]);
  setGrad(w, [0]); opt.step();                 // g' = 0.95, v = 0.9 + 0.95 = 1.85, w = 1.9 - 0.185
  close(w.data, [1.715]);
});

test("AdamW follows torch's formula (independent float64 implementation, 4 steps)", () => {
  const lr = 0.01, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
  const w0 = [0.5, -1, 2], grads = [[0.1, -0.2, 0.3], [0.4, 0.1, -0.1], [-0.3, 0.2, 0.0], [0.05, -0.5, 1]];
  const w = param(w0);
  const opt = new AdamW([w], { lr, betas: [b1, b2], eps, weightDecay: wd });
  const ref = [...w0], m = [0, 0, 0], v = [0, 0, 0];
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < 3; i++) {
      ref[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mh = m[i] / (1 - b1 ** t), vh = v[i] / (1 - b2 ** t);
      ref[i] -= lr * mh / (Math.sqrt(vh) + eps);
    }
    setGrad(w, g); opt.step();
    close(w.data, ref, 1e-6, `step ${t}`);
  });
  // First step moves each weight by lr * sign(g) after decay.
});

test("parameters without a gradient are skipped; zeroGrad clears gradients", () => {
  const a = param([1]), b = param([1]);
  const opt = new SGD([a, b], { lr: 1, weightDecay: 1 });
  setGrad(a, [1]);
  opt.step();
  close(a.data, [-1]);
  close(b.data, [1]);
  opt.zeroGrad();
  assert.equal(a.grad, null);
});

test("parameter groups have their own lr and weight decay; schedules scale each group's base lr", () => {
  const a = param([1]), b = param([1]);
  const opt = new SGD([{ params: [["a", a]] }, { params: [["b", b]], lr: 0.01, weightDecay: 0 }], { lr: 0.1, weightDecay: 1 });
  setGrad(a, [1]); setGrad(b, [1]);
  opt.step();
  close(a.data, [1 - 0.1 * 2]);
  close(b.data, [1 - 0.01]);
  opt.applySchedule(stepLr(1, 0.5), 2);
  assert.deepEqual(opt.groups.map((g) => g.hyper.lr), [0.025, 0.0025]);
  assert.throws(() => new SGD([{ params: [a], lr: 1, betas: [0.9, 0.9] } as never], { lr: 0.1 }), /unknown option 'betas'/);
  assert.throws(() => new SGD([a, a], { lr: 0.1 }), /appears in more than one place/);
  assert.throws(() => new SGD([a], { lr: -1 }), /SGD lr must be >= 0, got -1/);
});

test("stateDict/loadStateDict resume exactly, keyed by parameter name", () => {
  for (const make of [
    (ps: [string, Tensor][]) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true }),
    (ps: [string, Tensor][]) => new AdamW(ps, { lr: 0.01 }),
  ]) {
    const w = param([1, 2, 3]), u = param([-1]);
    const opt = make([["layers.0.weight", w], ["layers.0.bias", u]]);
    for (let s = 0; s < 3; s++) { setGrad(w, [0.1 * s, -0.2, 0.3]); setGrad(u, [s]); opt.step(); }
    const saved = opt.stateDict();
    assert.ok([...saved.tensors.keys()].every((k) => k.startsWith("layers.0.weight.") || k.startsWith("layers.0.bias.")));
    assert.deepEqual(saved.steps, { "layers.0.weight": 3, "layers.0.bias": 3 });
    // A fresh optimizer over copies of the weights, restored, must continue identically.
    const w2 = param([...w.data]), u2 = param([...u.data]);
    const opt2 = make([["layers.0.weight", w2], ["layers.0.bias", u2]]);
    opt2.loadStateDict(saved);
    for (const [x, y] of [[w, w2], [u, u2]] as const) { setGrad(x, Array(x.size).fill(0.7)); setGrad(y, Array(y.size).fill(0.7)); }
    opt.step(); opt2.step();
    assert.deepEqual(w2.data, w.data, opt.kind);
    assert.deepEqual(u2.data, u.data, opt.kind);
    // Mismatched parameters are named.
    const other = make([["layers.1.weight", param([0, 0, 0])], ["layers.0.bias", param([0])]]);
    assert.throws(() => other.loadStateDict(saved), /missing layers\.1\.weight; unexpected layers\.0\.weight/);
  }
  const sgd = new SGD([param([1])], { lr: 0.1 });
  assert.throws(() => sgd.loadStateDict(new AdamW([param([1])]).stateDict()), /optimizer state is for 'adamw', this optimizer is 'sgd'/);
});

test("schedules: step, cosine, linear warm-up, composition", () => {
  const s = stepLr(10, 0.5);
  assert.deepEqual([0, 9, 10, 25].map(s), [1, 1, 0.5, 0.25]);
  const c = cosineLr(100, 0.1);
  close([c(0), c(50), c(100), c(150)], [1, 0.55, 0.1, 0.1], 1e-12);
  const w = linearWarmup(4, cosineLr(10));
  close([0, 1, 2, 3, 4, 9, 14].map(w), [0.25, 0.5, 0.75, 1, 1, (1 + Math.cos(Math.PI / 2)) / 2, 0], 1e-12);
  assert.equal(productLr(stepLr(1, 0.5), constantLr())(3), 0.125);
  assert.throws(() => s(-1), /step must be a non-negative integer, got -1/);
  assert.throws(() => cosineLr(0), /totalSteps must be a positive integer, got 0/);
});

test("parseSchedule reads CLI schedules and rejects bad ones listing the valid forms", () => {
  close([0, 5, 10].map(parseSchedule("step:5:0.1", 100)), [1, 0.1, 0.01], 1e-12);
  const wc = parseSchedule("warmup:10+cosine", 110);
  close([0, 9, 10, 60, 110].map(wc), [0.1, 1, 1, 0.5, 0], 1e-12);
  assert.equal(parseSchedule("constant", 5)(3), 1);
  assert.throws(() => parseSchedule("linear", 5), /bad lr schedule 'linear': unknown kind 'linear'; valid: constant, step:N\[:GAMMA\], cosine\[:MIN\]/);
  assert.throws(() => parseSchedule("step:x", 5), /arguments must be numbers/);
});

test("createOptimizer builds by name and rejects unknown names and options", () => {
  const w = param([1]);
  const opt = createOptimizer({ name: "sgd", lr: 0.5, momentum: 0.9 }, [w]);
  setGrad(w, [1]); opt.step();
  close(w.data, [0.5]);
  assert.equal(createOptimizer({ name: "adamw", lr: 1e-3 }, [w]).kind, "adamw");
  assert.throws(() => createOptimizer({ name: "adam" } as never, [w]), /unknown optimizer 'adam'; valid: sgd, adamw/);
  assert.throws(() => createOptimizer({ name: "adamw", momentum: 0.9 } as never, [w]), /optimizer 'adamw' has no option 'momentum'; valid: lr, betas, eps, weightDecay/);
});

test("clipGradNorm scales gradients to the global norm bound (3-4-5 triangle)", () => {
  const a = param([0]), b = param([0]);
  setGrad(a, [3]); setGrad(b, [4]);
  assert.equal(clipGradNorm([a, b], 10), 5);
  close(a.grad!.data, [3]);
  assert.equal(clipGradNorm([a, b], 1), 5);
  close([a.grad!.data[0], b.grad!.data[0]], [0.6, 0.8], 1e-5);
  assert.throws(() => clipGradNorm([a], 0), /maxNorm must be > 0, got 0/);
});
