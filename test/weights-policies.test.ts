// Weight policies of the asynchronous methods, driven through action sequences shaped like the
// steady-state asynchronous 1F1B (F of micro-batch t at tick t, its B d ticks later, a
// STEP after every M backwards), on tiny weight sets whose motion is known in closed form.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import {
  NaivePolicy, StashPolicy, CorrectionPolicy, PredictPolicy, PolicyBinder, weightHooks, withWeights,
  SpikeCompensatedSGD, correctionGamma, type WeightPolicy, type WeightSet, type MomentumSource,
} from "../src/pipeline/weights/index.js";

const EPS32 = 2 ** -24;

type Act = { kind: "F" | "B" | "STEP"; mb: number };

/** One stage's actions in async 1F1B: tick t runs F(t), then B(t-d), then STEP after every M-th B. */
function asyncStage(d: number, M: number, N: number): Act[] {
  const out: Act[] = [];
  for (let t = 0; t < N + d; t++) {
    if (t < N) out.push({ kind: "F", mb: t });
    const b = t - d;
    if (b >= 0) {
      out.push({ kind: "B", mb: b });
      if ((b + 1) % M === 0) out.push({ kind: "STEP", mb: (b + 1) / M - 1 });
    }
  }
  return out;
}

/** Two parameters of different sizes, small integers (every update below stays exact in float32). */
function makeLive(): Float32Array[] {
  return [new Float32Array([1, -2, 3]), new Float32Array([4, 5])];
}

const snapshot = (ws: WeightSet): number[][] => ws.map((a) => Array.from(a));
const SET_BYTES = 5 * 4;

/** Drives a policy through the actions; `update(step)` changes the live weights in place. */
function drive(policy: WeightPolicy, acts: readonly Act[], update: (step: number) => void,
  onF?: (mb: number, ws: WeightSet) => void, onB?: (mb: number, ws: WeightSet) => void): void {
  for (const a of acts) {
    // (no `onF?.(..., policy.forwardWeights())`: optional calls skip evaluating their arguments)
    if (a.kind === "F") { const ws = policy.forwardWeights(a.mb); onF?.(a.mb, ws); }
    else if (a.kind === "B") { const ws = policy.backwardWeights(a.mb); onB?.(a.mb, ws); }
    else { policy.beforeStep(); update(a.mb); policy.afterStep(); }
  }
}

/** A nonlinear update in time, exact in float32: w += (step+1) * (i+1) / 4. */
function bumpUpdate(live: Float32Array[]) {
  return (step: number) => {
    for (const a of live) for (let i = 0; i < a.length; i++) a[i] += (step + 1) * (i + 1) / 4;
  };
}

test("stash gives the backward of every micro-batch the exact version its forward used", () => {
  for (const [d, M] of [[1, 1], [3, 1], [5, 1], [5, 2], [7, 3]] as const) {
    const live = makeLive();
    const policy = new StashPolicy({ params: live });
    const seen = new Map<number, number[][]>();
    let checked = 0;
    drive(policy, asyncStage(d, M, 12 * M), bumpUpdate(live),
      (mb, ws) => seen.set(mb, snapshot(ws)),
      (mb, ws) => { assert.deepEqual(snapshot(ws), seen.get(mb), `d=${d} M=${M} mb=${mb}`); checked++; });
    assert.equal(checked, 12 * M);
    assert.equal(policy.inFlightCount(), 0);
  }
});

test("naive gives the backward the current weights instead (so the stash test above can fail)", () => {
  const live = makeLive();
  const policy = new NaivePolicy({ params: live });
  const seen = new Map<number, number[][]>();
  let differing = 0;
  drive(policy, asyncStage(3, 1, 10), bumpUpdate(live),
    (mb, ws) => seen.set(mb, snapshot(ws)),
    (mb, ws) => { if (JSON.stringify(snapshot(ws)) !== JSON.stringify(seen.get(mb))) differing++; });
  assert.ok(differing >= 6, `only ${differing} backwards saw other weights than their forward`);
  assert.equal(policy.bytes().extra, 0);
});

test("stash memory grows with tau (tau+1 versions) and is freed after the backwards; pipemare-correction stays at one buffer", () => {
  for (const tau of [1, 3, 5, 9]) {
    const live = makeLive();
    const stash = new StashPolicy({ params: live, optimizerStateBytes: () => 7 });
    drive(stash, asyncStage(tau, 1, 3 * tau + 4), bumpUpdate(live));
    const m = stash.bytes();
    assert.equal(m.peakVersions, tau + 1, `stash tau=${tau}: versions`);
    assert.equal(m.peakExtra, tau * SET_BYTES, `stash tau=${tau}: peak extra bytes`);
    assert.equal(m.extra, 0, "every stashed version is released once its backwards ran");
    assert.equal(m.versions, 1);
    assert.equal(m.weights, SET_BYTES);
    assert.equal(m.optimizerState, 7);
    assert.equal(m.peakTotal, SET_BYTES + 7 + tau * SET_BYTES);

    const live2 = makeLive();
    const corr = new CorrectionPolicy({ params: live2 }, { tau, decay: 0.1 });
    drive(corr, asyncStage(tau, 1, 3 * tau + 4), bumpUpdate(live2));
    const c = corr.bytes();
    assert.equal(c.extra, SET_BYTES, `correction tau=${tau}`);
    assert.equal(c.peakExtra, SET_BYTES, `correction tau=${tau}`);
  }
});

test("stash shares one copy per version among the micro-batches of a step", () => {
  // d = 5, M = 2: delay ceil(5/2) = 3, so at most 3 + 1 versions although 5 micro-batches are in flight.
  const live = makeLive();
  const stash = new StashPolicy({ params: live });
  drive(stash, asyncStage(5, 2, 30), bumpUpdate(live));
  assert.equal(stash.bytes().peakVersions, 4);
});

test("stash rejects a backward without forward and a repeated forward", () => {
  const stash = new StashPolicy({ params: makeLive() });
  assert.throws(() => stash.backwardWeights(3), /backward of micro-batch 3 has no stashed weights/);
  stash.forwardWeights(0);
  assert.throws(() => stash.forwardWeights(0), /forward of micro-batch 0 ran twice/);
  assert.throws(() => stash.forwardWeights(-1), /non-negative integer, got -1/);
  assert.throws(() => new StashPolicy({ params: [] }), /needs at least one parameter buffer/);
});

test("2bw never holds more than two versions, and errors clearly when a schedule would need a third", () => {
  // M >= d: every delay is 1.
  for (const [d, M] of [[1, 1], [3, 3], [3, 4], [5, 8]] as const) {
    const live = makeLive();
    const p = new StashPolicy({ params: live }, { name: "2bw", maxVersions: 2 });
    const seen = new Map<number, number[][]>();
    drive(p, asyncStage(d, M, 10 * M), bumpUpdate(live),
      (mb, ws) => seen.set(mb, snapshot(ws)),
      (mb, ws) => assert.deepEqual(snapshot(ws), seen.get(mb)));
    assert.ok(p.bytes().peakVersions <= 2, `d=${d} M=${M}: ${p.bytes().peakVersions} versions`);
  }
  const live = makeLive();
  const p = new StashPolicy({ params: live }, { name: "2bw", maxVersions: 2 });
  assert.throws(() => drive(p, asyncStage(3, 1, 10), bumpUpdate(live)),
    /2bw: holds at most 2 weight versions, but update \d+ would need 3: micro-batch\(es\) .* still in flight/);
});

test("2bw with forwards one batch ahead reproduces W(t+1) = W(t) - lr * grad f(W(t-1))", () => {
  // f(w) = a/2 |w|^2 per sample, grad = a * w. Batch t+1's forwards run before batch t's backwards
  // and the update, so the gradient applied at update t+1 was computed at W(t-1).
  const a = 0.5, lr = 0.5, M = 3, T = 12;
  const live = makeLive();
  const w0 = live.map((x) => Float64Array.from(x));
  const p = new StashPolicy({ params: live }, { name: "2bw", maxVersions: 2 });
  const grads = live.map((x) => new Float64Array(x.length));
  const fwd = (batch: number) => { for (let j = 0; j < M; j++) p.forwardWeights(batch * M + j); };
  fwd(0);
  for (let t = 0; t < T; t++) {
    fwd(t + 1);
    grads.forEach((g) => g.fill(0));
    for (let j = 0; j < M; j++) {
      const ws = p.backwardWeights(t * M + j);
      ws.forEach((w, i) => { for (let k = 0; k < w.length; k++) grads[i][k] += a * w[k] / M; });
    }
    p.beforeStep();
    live.forEach((w, i) => { for (let k = 0; k < w.length; k++) w[k] -= lr * grads[i][k]; });
    p.afterStep();
    assert.ok(p.bytes().versions <= 2);
  }
  // Oracle in float64: W(1) = W(0) - lr a W(0); W(t+1) = W(t) - lr a W(t-1).
  let prev = w0, cur = w0.map((x) => x.map((v) => v - lr * a * v));
  for (let t = 1; t < T; t++) {
    const next = cur.map((x, i) => x.map((v, k) => v - lr * a * prev[i][k]));
    prev = cur; cur = next;
  }
  live.forEach((w, i) => w.forEach((v, k) => {
    assert.ok(Math.abs(v - cur[i][k]) <= 8 * T * EPS32 * (1 + Math.abs(cur[i][k])), `param ${i}[${k}]: ${v} vs ${cur[i][k]}`);
  }));
});

test("discrepancy correction recovers the forward weights exactly when the weights change linearly", () => {
  // gamma = 0 makes delta the last per-step change c, so w - tau*delta = the weights tau updates ago.
  const c = [0.25, -0.5, 0.75, 1.25, -1];
  for (const tau of [1, 2, 3, 5]) {
    const live = makeLive();
    const policy = new CorrectionPolicy({ params: live }, { tau, gamma: 0 });
    const seen = new Map<number, number[][]>();
    let checked = 0;
    const linear = () => { let n = 0; for (const a of live) for (let i = 0; i < a.length; i++) a[i] += c[n++]; };
    drive(policy, asyncStage(tau, 1, 20), linear,
      (mb, ws) => seen.set(mb, snapshot(ws)),
      (mb, ws) => {
        if (mb < tau) return; // warm-up micro-batches saw fewer than tau updates
        assert.deepEqual(snapshot(ws), seen.get(mb), `tau=${tau} mb=${mb}`);
        checked++;
      });
    assert.equal(checked, 20 - tau);
  }
});

test("discrepancy correction with gamma > 0 on linear motion follows w - tau (1 - gamma^k) c", () => {
  const tau = 4, gamma = correctionGamma(0.1, tau); // 0.1^(1/4)
  assert.ok(Math.abs(gamma - Math.pow(0.1, 0.25)) < 1e-15);
  const live = [new Float32Array([1, -2, 3])];
  const c = [0.01, -0.03, 0.002];
  const policy = new CorrectionPolicy({ params: live }, { tau, decay: 0.1 });
  assert.equal(policy.gamma, gamma);
  const w64 = Float64Array.from(live[0]);
  for (let k = 1; k <= 60; k++) {
    policy.beforeStep();
    for (let i = 0; i < 3; i++) { live[0][i] += c[i]; w64[i] += c[i]; }
    policy.afterStep();
    const u = policy.backwardWeights(k);
    for (let i = 0; i < 3; i++) {
      const expected = live[0][i] - tau * (1 - Math.pow(gamma, k)) * c[i];
      // A few float32 roundings of |w| per update, damped by gamma: bound 16 ulp(|w| ~ 4) / (1 - gamma).
      const tol = 16 * EPS32 * 4 / (1 - gamma);
      assert.ok(Math.abs(u[0][i] - expected) <= tol, `k=${k} i=${i}: ${u[0][i]} vs ${expected} (tol ${tol})`);
    }
  }
});

test("discrepancy correction on arbitrary updates matches the explicit delta recursion (float64 oracle)", () => {
  const rng = new Rng(7);
  for (const [tau, gamma] of [[1, 0.1], [3, correctionGamma(0.1, 3)], [9, correctionGamma(0.1, 9)], [31, correctionGamma(0.1, 31)]] as const) {
    const n = 50;
    const live = [Float32Array.from({ length: n }, () => rng.normal())];
    const policy = new CorrectionPolicy({ params: live }, { tau, gamma });
    const delta = new Float64Array(n);
    let maxW = 0;
    for (let k = 0; k < 200; k++) {
      const old = Float64Array.from(live[0]);
      policy.beforeStep();
      for (let i = 0; i < n; i++) live[0][i] += 0.01 * rng.normal() + 0.001;
      policy.afterStep();
      for (let i = 0; i < n; i++) { delta[i] = gamma * delta[i] + (1 - gamma) * (live[0][i] - old[i]); maxW = Math.max(maxW, Math.abs(live[0][i])); }
    }
    const u = policy.backwardWeights(0)[0];
    // Per update: the two axpby's round terms of size <= (gamma + |tau(1-gamma) - gamma| + |1 - tau(1-gamma)|) |w|,
    // and errors decay by gamma per update: bound 4 (1 + 2 tau (1-gamma)) ulp(|w|max) / (1 - gamma).
    const tol = 4 * (1 + 2 * tau * (1 - gamma)) * EPS32 * maxW / (1 - gamma);
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(u[i] - (live[0][i] - tau * delta[i])));
    assert.ok(worst <= tol, `tau=${tau}: max error ${worst} > ${tol}`);
    // the correction is not trivially zero
    assert.ok(Math.abs(tau * delta[0]) > 100 * tol);
    const vel = [new Float32Array(n)];
    policy.velocity(vel);
    assert.ok(Math.abs(vel[0][0] - delta[0]) <= tol / tau + 1e-9);
  }
});

test("discrepancy correction validates its inputs and call order", () => {
  assert.throws(() => new CorrectionPolicy({ params: makeLive() }, { tau: 0 }), /tau must be a finite number >= 1, got 0/);
  assert.throws(() => new CorrectionPolicy({ params: makeLive() }, { tau: 2, gamma: 1 }), /gamma must be in \[0, 1\), got 1/);
  assert.throws(() => new CorrectionPolicy({ params: makeLive() }, { tau: 2, decay: 1.5 }), /decay D must be in \(0, 1\), got 1.5/);
  const p = new CorrectionPolicy({ params: makeLive() }, { tau: 2 });
  assert.throws(() => p.afterStep(), /afterStep\(\) without beforeStep\(\)/);
  p.beforeStep();
  assert.throws(() => p.backwardWeights(0), /between beforeStep\(\) and afterStep\(\)/);
});

test("LWP (velocity form) predicts exactly on weights moving at constant velocity", () => {
  const v = [new Float32Array([1, -2, 0.5]), new Float32Array([4, -0.25])];
  const lr = 0.25;
  const src: MomentumSource = { velocity: (i) => v[i], lr: () => lr };
  for (const D of [0, 1, 3, 6]) {
    const w = makeLive();
    const p = new PredictPolicy({ params: w }, { horizon: D, momentum: src });
    const history: number[][][] = [snapshot(w)];
    const predictions: number[][][] = [];
    for (let k = 0; k < 15; k++) {
      predictions.push(snapshot(p.forwardWeights(k)));
      p.beforeStep();
      w.forEach((a, i) => { for (let j = 0; j < a.length; j++) a[j] -= lr * v[i][j]; });
      p.afterStep();
      history.push(snapshot(w));
    }
    for (let k = 0; k + D < history.length && k < predictions.length; k++) {
      assert.deepEqual(predictions[k], history[k + D], `D=${D} k=${k}`);
    }
    assert.deepEqual(snapshot(p.backwardWeights(0)), snapshot(w), "backward uses the live weights");
  }
});

test("LWP with the spike-compensated optimizer's momentum predicts its constant-velocity trajectory", () => {
  // momentum 0: v = g every step, so the weights move by -lr g per step exactly.
  const D = 4, lr = 0.25;
  const p0 = new Tensor(new Float32Array([3, -1, 2]), [3], true);
  const opt = new SpikeCompensatedSGD([p0], { lr, momentum: 0, delay: 0 });
  const policy = new PredictPolicy({ params: [p0.data], optimizerStateBytes: () => opt.stateBytes() }, { horizon: D, momentum: opt.momentumSource([p0]) });
  assert.deepEqual(Array.from(policy.forwardWeights(0)[0]), [3, -1, 2], "no momentum yet: prediction = w");
  const preds: number[][] = [], hist: number[][] = [];
  for (let k = 0; k < 12; k++) {
    policy.beforeStep();
    p0.grad = new Tensor(new Float32Array([0.5, -1, 2]), [3]);
    opt.step();
    policy.afterStep();
    hist.push(Array.from(p0.data));
    preds.push(Array.from(policy.forwardWeights(k + 1)[0]));
  }
  for (let k = 0; k + D < hist.length; k++) assert.deepEqual(preds[k], hist[k + D], `k=${k}`);
  assert.equal(policy.bytes().optimizerState, 12);
  assert.equal(policy.bytes().extra, 12);
});

test("LWP (difference form) w + D (w - w_prev) predicts exactly on linear motion and costs two buffers", () => {
  const w = makeLive();
  const D = 3;
  const p = new PredictPolicy({ params: w }, { horizon: D, mode: "difference" });
  assert.deepEqual(snapshot(p.forwardWeights(0)), snapshot(w), "before any update the prediction is w");
  const hist: number[][][] = [], preds: number[][][] = [];
  for (let k = 0; k < 10; k++) {
    p.beforeStep();
    w.forEach((a) => { for (let j = 0; j < a.length; j++) a[j] += (j + 1) * 0.5; });
    p.afterStep();
    hist.push(snapshot(w));
    preds.push(snapshot(p.forwardWeights(k + 1)));
  }
  for (let k = 0; k + D < hist.length; k++) assert.deepEqual(preds[k], hist[k + D], `k=${k}`);
  assert.equal(p.bytes().extra, 2 * SET_BYTES);
  assert.throws(() => new PredictPolicy({ params: w }, { horizon: 2 }), /velocity form .* needs the optimizer's momentum/);
  assert.throws(() => new PredictPolicy({ params: w }, { horizon: -1, mode: "difference" }), /horizon D must be a finite number >= 0, got -1/);
});

test("PolicyBinder swaps the chosen version into the live arrays and restores them exactly", () => {
  const live = makeLive();
  const policy = new StashPolicy({ params: live });
  const binder = new PolicyBinder(policy, live);
  const hooks = weightHooks(new Map([[2, binder]]));
  const st = { index: 2 };
  hooks.beforeForward(st, 0, 0);
  const atForward = snapshot(live);
  hooks.afterForward(st, 0, 0);
  hooks.beforeStep(st);
  bumpUpdate(live)(0);
  hooks.afterStep(st);
  const current = snapshot(live);
  assert.notDeepEqual(current, atForward);
  hooks.beforeBackward(st, 0, 0);
  assert.deepEqual(snapshot(live), atForward, "during the backward the live arrays hold the forward's version");
  assert.throws(() => binder.beforeStep(), /optimizer step while the weights of the backward of micro-batch 0 are swapped in/);
  hooks.afterBackward(st, 0, 0);
  assert.deepEqual(snapshot(live), current, "after the backward the live weights are back, bit for bit");
  hooks.beforeForward({ index: 5 }, 0, 1); // a stage without binder: no-op
  // withWeights restores even when the action throws
  const other = [new Float32Array(3), new Float32Array(2)];
  assert.throws(() => withWeights(live, other, () => { throw new Error("boom"); }), /boom/);
  assert.deepEqual(snapshot(live), current);
  assert.throws(() => withWeights(live, [new Float32Array(3)], () => 0), /1 weight buffers for 2 parameters/);
});

test("PipeMare policy through the binder: the backward computes with w - tau*delta, live weights untouched", () => {
  const live = makeLive();
  const policy = new CorrectionPolicy({ params: live }, { tau: 2, gamma: 0 });
  const binder = new PolicyBinder(policy, live);
  binder.beforeStep();
  live.forEach((a) => { for (let j = 0; j < a.length; j++) a[j] += 1; });
  binder.afterStep();
  const current = snapshot(live);
  binder.beginBackward(0);
  assert.deepEqual(snapshot(live), current.map((a) => a.map((x) => x - 2)));
  binder.endBackward(0);
  assert.deepEqual(snapshot(live), current);
});
