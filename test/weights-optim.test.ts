// Optimizer transforms of the asynchronous methods: Spike Compensation, PipeMare's lr factor (T1),
// and the batch-size scaling rules, each against an independent oracle or numbers worked by hand.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/tensor/random.js";
import { SGD } from "../src/optim/sgd.js";
import { AdamW } from "../src/optim/adamw.js";
import {
  SpikeCompensatedSGD, spikeCoefficients, pipemareLrFactor, scaleForBatch, decayPerStep, scheduleInSamples,
} from "../src/pipeline/weights/index.js";

const EPS32 = 2 ** -24; // unit roundoff of float32

function randomArray(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** Runs `steps` updates of two optimizers on identical copies of w with the same gradient stream. */
function runPair(
  makeA: (p: Tensor) => { step(): void }, makeB: (p: Tensor) => { step(): void }, steps: number, seed: number,
): { a: Float32Array; b: Float32Array; maxAbs: number } {
  const rng = new Rng(seed);
  const w0 = randomArray(rng, 37);
  const pa = new Tensor(w0.slice(), [37], true), pb = new Tensor(w0.slice(), [37], true);
  const oa = makeA(pa), ob = makeB(pb);
  let maxAbs = 0;
  for (let k = 0; k < steps; k++) {
    const g = randomArray(rng, 37);
    pa.grad = new Tensor(g.slice(), [37]);
    pb.grad = new Tensor(g.slice(), [37]);
    oa.step();
    ob.step();
  }
  for (const x of pa.data) maxAbs = Math.max(maxAbs, Math.abs(x));
  return { a: pa.data, b: pb.data, maxAbs };
}

function assertClose(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst <= tol, `${what}: max |diff| ${worst} > tolerance ${tol}`);
}

// Tolerance: both sides round each stored value once per operation; over 30 steps with |w| and |v|
// of order 10 the float32 rounding is below 30 steps * 4 roundings * 2^-24 * 10 ~ 1e-4 relative to 1.
const STEPS = 30;
const TOL = STEPS * 4 * EPS32 * 10;

test("spike compensation with D = 0 is momentum SGD (src/optim SGD), with and without weight decay", () => {
  for (const wd of [0, 0.01]) {
    const r = runPair(
      (p) => new SpikeCompensatedSGD([p], { lr: 0.05, momentum: 0.9, delay: 0, weightDecay: wd }),
      (p) => new SGD([p], { lr: 0.05, momentum: 0.9, weightDecay: wd }),
      STEPS, 1);
    assertClose(r.a, r.b, TOL, `D=0 vs momentum SGD (wd ${wd})`);
  }
});

test("spike compensation with D = 1 is Nesterov SGD (src/optim SGD nesterov)", () => {
  for (const wd of [0, 0.01]) {
    const r = runPair(
      (p) => new SpikeCompensatedSGD([p], { lr: 0.05, momentum: 0.9, delay: 1, weightDecay: wd }),
      (p) => new SGD([p], { lr: 0.05, momentum: 0.9, weightDecay: wd, nesterov: true }),
      STEPS, 2);
    assertClose(r.a, r.b, TOL, `D=1 vs Nesterov (wd ${wd})`);
  }
});

test("spike compensation with D = 2 differs from both momentum and Nesterov (the comparisons above can fail)", () => {
  const mom = runPair(
    (p) => new SpikeCompensatedSGD([p], { lr: 0.05, momentum: 0.9, delay: 2 }),
    (p) => new SGD([p], { lr: 0.05, momentum: 0.9 }), STEPS, 3);
  const nes = runPair(
    (p) => new SpikeCompensatedSGD([p], { lr: 0.05, momentum: 0.9, delay: 2 }),
    (p) => new SGD([p], { lr: 0.05, momentum: 0.9, nesterov: true }), STEPS, 3);
  const gap = (a: Float32Array, b: Float32Array) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  assert.ok(gap(mom.a, mom.b) > 100 * TOL, "D=2 should not equal momentum SGD");
  assert.ok(gap(nes.a, nes.b) > 100 * TOL, "D=2 should not equal Nesterov SGD");
});

test("one gradient's total effect is -lr/(1-m) * g for every D", () => {
  const lr = 0.1, m = 0.9;
  const g = new Float32Array([1, -2, 0.5, 3]);
  for (const D of [0, 1, 2, 3.5, 7, 20]) {
    const p = new Tensor(new Float32Array(4), [4], true);
    const opt = new SpikeCompensatedSGD([p], { lr, momentum: m, delay: D });
    p.grad = new Tensor(g.slice(), [4]);
    opt.step();
    const afterFirst = Float32Array.from(p.data);
    const N = 500;
    for (let k = 0; k < N; k++) {
      p.grad = new Tensor(new Float32Array(4), [4]);
      opt.step();
    }
    // What is left of the effect after N more steps: lr m^D g m^(N+1)/(1-m) (geometric tail), here
    // < 1e-20. Rounding: N+1 additions to |w| <= lr/(1-m)|g|, each off by at most one float32
    // rounding, plus the v recursion's relative error (N * 2^-24): bound 2 (N+1) 2^-24 |expected|.
    for (let i = 0; i < 4; i++) {
      const expected = -lr / (1 - m) * g[i];
      const tol = 2 * (N + 1) * EPS32 * Math.abs(expected);
      assert.ok(Math.abs(p.data[i] - expected) <= tol, `D=${D}, element ${i}: ${p.data[i]} vs ${expected} (tol ${tol})`);
    }
    // The first step itself is lr (m^D + (1-m^D)/(1-m)) g: larger for larger D (the spike).
    const c = spikeCoefficients(m, D);
    for (let i = 0; i < 4; i++) {
      const first = -lr * (c.onVelocity + c.onGradient) * g[i];
      assert.ok(Math.abs(afterFirst[i] - first) <= 4 * EPS32 * Math.abs(first) + 1e-12, `D=${D} first step ${afterFirst[i]} vs ${first}`);
    }
  }
});

test("spike-compensated SGD validates its hyperparameters and exposes its momentum for LWP", () => {
  const p = new Tensor(new Float32Array([1, 2]), [2], true);
  assert.throws(() => new SpikeCompensatedSGD([p], { lr: 0.1, momentum: 1 }), /momentum must be in \[0, 1\), got 1/);
  assert.throws(() => new SpikeCompensatedSGD([p], { lr: 0.1, delay: -1 }), /delay D must be a finite number >= 0, got -1/);
  assert.throws(() => new SpikeCompensatedSGD([p], { lr: -1 }), /lr must be a finite number >= 0, got -1/);
  const opt = new SpikeCompensatedSGD([p], { lr: 0.5, momentum: 0.5, delay: 1 });
  const src = opt.momentumSource([p]);
  assert.equal(src.velocity(0), null);
  assert.equal(opt.stateBytes(), 0);
  p.grad = new Tensor(new Float32Array([2, 4]), [2]);
  opt.step();
  assert.deepEqual(Array.from(src.velocity(0)!), [2, 4]);
  assert.equal(src.lr(0), 0.5);
  opt.setLrFactor(0.5);
  assert.equal(src.lr(0), 0.25);
  assert.equal(opt.stateBytes(), 8);
  const other = new Tensor(new Float32Array(2), [2], true);
  assert.throws(() => opt.momentumSource([other]), /not optimized by this optimizer/);
  // stateDict round trip keeps the momentum
  const sd = opt.stateDict();
  const q = new Tensor(new Float32Array([1, 2]), [2], true);
  const opt2 = new SpikeCompensatedSGD([q], { lr: 0.5, momentum: 0.5, delay: 1 });
  opt2.loadStateDict(sd);
  assert.deepEqual(Array.from(opt2.momentumSource([q]).velocity(0)!), [2, 4]);
});

test("PipeMare lr factor: tau^-1 at k = 0, 1 for k >= K, tau^-1/2 halfway", () => {
  for (const tau of [1, 2, 3, 7]) {
    assert.equal(pipemareLrFactor(0, tau, 100), 1 / tau);
    assert.equal(pipemareLrFactor(100, tau, 100), 1);
    assert.equal(pipemareLrFactor(250, tau, 100), 1);
    assert.ok(Math.abs(pipemareLrFactor(50, tau, 100) - 1 / Math.sqrt(tau)) < 1e-15);
  }
  // so lr_{0,s} = lr_0 / tau: with lr 0.1 and tau 4, stage lr 0.025
  assert.equal(0.1 * pipemareLrFactor(0, 4, 10), 0.025);
  assert.equal(pipemareLrFactor(0, 5, 0), 1, "K = 0 disables the rescaling");
  assert.throws(() => pipemareLrFactor(0, 0.5, 10), /tau must be a finite number >= 1, got 0.5/);
  assert.throws(() => pipemareLrFactor(-1, 2, 10), /step k must be a non-negative integer, got -1/);
  assert.throws(() => pipemareLrFactor(0, 2, 1.5), /horizon K must be a non-negative integer \(steps\), got 1.5/);
});

test("batch-size scaling rules on numbers worked out by hand", () => {
  // B = 4 -> b = 2: m_b = 0.81^(1/2) = 0.9; lr_b = 0.19 * 1/2 * (1-0.9)/(1-0.81) = 0.05.
  const s = scaleForBatch({ lr: 0.19, momentum: 0.81, weightDecay: 1e-4 }, 4, 2);
  assert.ok(Math.abs(s.momentum - 0.9) < 1e-15, `m_b ${s.momentum}`);
  assert.ok(Math.abs(s.lr - 0.05) < 1e-15, `lr_b ${s.lr}`);
  assert.equal(s.ratio, 0.5);
  // Coupled decay coefficient unchanged; decay per step lr wd/(1-m): 0.19e-4/0.19 = 1e-4 at B,
  // 0.05e-4/0.1 = 5e-5 at b: scaled by b/B = 1/2.
  assert.equal(s.weightDecay, 1e-4);
  assert.ok(Math.abs(decayPerStep({ lr: 0.19, momentum: 0.81, weightDecay: 1e-4 }) - 1e-4) < 1e-18);
  assert.ok(Math.abs(decayPerStep(s) - 5e-5) < 1e-18);
  // No momentum: m stays 0, lr scales linearly: B = 8 -> b = 1, lr 0.8 -> 0.1.
  const p = scaleForBatch({ lr: 0.8, momentum: 0, weightDecay: 0 }, 8, 1);
  assert.equal(p.momentum, 0);
  assert.equal(p.lr, 0.1);
  // B = 32 -> b = 1, m 0.9: ln 0.9 / 32 = -0.0032925161, exp of it (series to x^3) = 0.9967128983;
  // lr_b = 0.1/32 * (1-m_b)/0.1 = 0.0032871017/32 = 1.027219e-4.
  const q = scaleForBatch({ lr: 0.1, momentum: 0.9, weightDecay: 5e-4 }, 32, 1);
  assert.ok(Math.abs(q.momentum - 0.9967128983) < 1e-9, `m_b ${q.momentum}`);
  assert.ok(Math.abs(q.lr - 1.027219e-4) < 1e-9, `lr_b ${q.lr}`);
  // Same batch: unchanged.
  const same = scaleForBatch({ lr: 0.1, momentum: 0.9, weightDecay: 5e-4 }, 32, 32);
  assert.equal(same.lr, 0.1);
  assert.equal(same.momentum, 0.9);
  assert.throws(() => scaleForBatch({ lr: 0.1, momentum: 0.9, weightDecay: 0 }, 0, 1), /fromBatch \(B\) must be a positive integer, got 0/);
  assert.throws(() => scaleForBatch({ lr: 0.1, momentum: 1, weightDecay: 0 }, 4, 1), /momentum must be in \[0, 1\), got 1/);
});

test("scaling rules keep one gradient's total effect per sample: B/b steps at b move like one step at B", () => {
  // Constant gradient g for many samples: steady-state per-sample movement must be equal.
  const g = 1, B = 8, b = 1;
  const big = { lr: 0.4, momentum: 0.9, weightDecay: 0 };
  const small = scaleForBatch(big, B, b);
  const run = (h: { lr: number; momentum: number }, steps: number) => {
    let w = 0, v = 0;
    for (let k = 0; k < steps; k++) { v = h.momentum * v + g; w -= h.lr * v; }
    return w;
  };
  const stepsB = 400;
  const wB = run(big, stepsB), wb = run(small, stepsB * B / b);
  // Both tend to -lr/(1-m) per step * steps; the transients differ by O(lr/(1-m)^2) terms.
  const perSampleB = wB / (stepsB * B), perSampleb = wb / (stepsB * B);
  assert.ok(Math.abs(perSampleB - perSampleb) / Math.abs(perSampleB) < 0.01, `${perSampleB} vs ${perSampleb}`);
});

test("schedules counted in samples: step k at batch b reads the batch-B schedule at sample k*b", () => {
  const seen: number[] = [];
  const sched = scheduleInSamples((stepB) => { seen.push(stepB); return stepB < 2 ? 1 : 0.1; }, 4, 1);
  assert.deepEqual([0, 3, 4, 7, 8, 9].map((k) => sched(k)), [1, 1, 1, 1, 0.1, 0.1]);
  assert.deepEqual(seen, [0, 0, 1, 1, 2, 2]);
  assert.throws(() => sched(1.5), /non-negative integer, got 1.5/);
});

test("stateBytes counts the optimizers' buffers without copying them: SGD, AdamW and spike-compensated SGD, as their stateDicts hold", () => {
  const p = new Tensor(new Float32Array(10), [10], true);
  const q = new Tensor(new Float32Array(10), [10], true);
  const r = new Tensor(new Float32Array(10), [10], true);
  const sgd = new SGD([p], { lr: 0.1, momentum: 0.9 });
  const sc = new SpikeCompensatedSGD([q], { lr: 0.1, momentum: 0.9, delay: 2 });
  const adam = new AdamW([r], { lr: 0.1 });
  assert.equal(sgd.stateBytes(), 0);
  for (const t of [p, q, r]) t.grad = new Tensor(new Float32Array(10).fill(1), [10]);
  for (const o of [sgd, sc, adam]) o.step();
  const copied = (o: { stateDict(): { tensors: ReadonlyMap<string, Tensor> } }): number =>
    [...o.stateDict().tensors.values()].reduce((n, t) => n + t.data.byteLength, 0);
  assert.equal(sgd.stateBytes(), 40);
  assert.equal(sc.stateBytes(), 40);
  assert.equal(adam.stateBytes(), 80);
  for (const o of [sgd, sc, adam]) assert.equal(o.stateBytes(), copied(o));
});

test("spike-compensated SGD keeps its own D when it loads a state saved under another D (a warm-up's D = 0), and the saved velocity", () => {
  const g = new Float32Array([1, -2, 0.5]);
  const run = (delay: number, from?: SpikeCompensatedSGD): { p: Tensor; opt: SpikeCompensatedSGD } => {
    const p = new Tensor(new Float32Array(3), [3], true);
    const opt = new SpikeCompensatedSGD([p], { lr: 0.1, momentum: 0.9, delay });
    if (from) opt.loadStateDict(from.stateDict());
    p.grad = new Tensor(g.slice(), [3]);
    opt.step();
    return { p, opt };
  };
  const warm = run(0).opt;
  const resumed = run(2, warm);
  assert.equal(resumed.opt.groups[0].hyper.delay, 2);
  // The oracle: the same velocity, stepped with D = 2 from the start of the second step.
  const v = Float32Array.from(g, (x) => 0.9 * x + x);
  const { onVelocity, onGradient } = spikeCoefficients(0.9, 2);
  resumed.p.data.forEach((w, i) => assert.ok(Math.abs(w - (-0.1 * onGradient * g[i] - 0.1 * onVelocity * v[i])) <= 1e-6, `w[${i}] = ${w}`));
});
