import { test } from "node:test";
import assert from "node:assert/strict";
import {
  criterionBound, FreezePolicy, gradNorm, parseAlpha, parseFreezeCriterion, resolveFreezeConfig, scheduledFrozen,
} from "../src/pipeline/freeze/policy.js";
import { Tensor } from "../src/tensor/tensor.js";
import { median } from "../src/util/stats.js";

/** Exact ceil(L * (1 - (1 - p/q)^T)) in integers: ceil(L * (q^T - (q-p)^T) / q^T). */
function closedForm(L: number, p: number, q: number, T: number): number {
  const qT = BigInt(q) ** BigInt(T), rT = BigInt(q - p) ** BigInt(T);
  const num = BigInt(L) * (qT - rT);
  return Number((num + qT - 1n) / qT);
}

test("criterion off: frozen_T = min(ceil(L(1-(1-alpha)^T)), L-1) exactly, for several L and alpha", () => {
  const alphas: [string, number, number][] = [["1/3", 1, 3], ["1/2", 1, 2], ["0.25", 1, 4], ["2/3", 2, 3], ["0.3", 3, 10], ["1/10", 1, 10]];
  for (const [text, p, q] of alphas) {
    for (let L = 1; L <= 48; L++) {
      const policy = new FreezePolicy(L, { alpha: text, criterion: "schedule" });
      for (let T = 1; T <= 30; T++) {
        const want = Math.min(closedForm(L, p, q, T), L - 1);
        const d = policy.nextFrozen(T);
        assert.equal(d.frozen, want, `alpha ${text}, L=${L}, T=${T}`);
        assert.equal(d.bound, null);
        assert.equal(scheduledFrozen(L, p / q, T), want, `scheduledFrozen alpha ${text}, L=${L}, T=${T}`);
      }
    }
  }
  // A case where carrying ceilings (ceil(f + alpha(L - f))) would give 5, the closed form 4.
  const p7 = new FreezePolicy(7, { alpha: "1/3", criterion: "schedule" });
  assert.deepEqual([1, 2, 3].map((T) => p7.nextFrozen(T).frozen), [3, 4, 5]);
});

/** Records an interval whose per-layer mean norm is `means`, as two steps (m - d, m + d). */
function recordInterval(p: FreezePolicy, means: number[]): void {
  p.recordGradNorms(means.map((m) => m * 0.5));
  p.recordGradNorms(means.map((m) => m * 1.5));
}

test("criterion: freezes up to the first active layer whose relative change reaches the median", () => {
  const p = new FreezePolicy(8, { alpha: 0.5 });
  // T=1: no previous interval, so the schedule alone decides: ceil(8 * 1/2) = 4.
  recordInterval(p, [1, 1, 1, 1, 10, 10, 10, 10]);
  const d1 = p.nextFrozen(1);
  assert.equal(d1.bound, null);
  assert.equal(d1.frozen, 4);
  // T=2: active layers 4..7, previous means 10, current 11, 19, 9.5, 15:
  // changes 0.1, 0.9, 0.05, 0.5; median (0.1 + 0.5) / 2 = 0.3; first >= 0.3 is layer 5 -> bound 5.
  // The schedule would freeze 4 + 0.5 * 4 = 6, so the criterion binds.
  recordInterval(p, [0, 0, 0, 0, 11, 19, 9.5, 15]);
  const d2 = p.nextFrozen(2);
  assert.equal(d2.scheduled, 6);
  assert.equal(d2.bound, 5);
  assert.equal(d2.frozen, 5);
  assert.ok(Math.abs(d2.changes![4] - 0.1) < 1e-12 && Math.abs(d2.changes![5] - 0.9) < 1e-12);
  assert.ok(Number.isNaN(d2.changes![0]));
  // T=3: the schedule restarts from 5: 5 + 0.5 * 3 = 6.5 -> 7, capped at L-1 = 7. Active 5..7, previous
  // 19, 9.5, 15; current 19, 9.5, 30: changes 0, 0, 1; median 0 -> the first active layer (5) reaches
  // it, so the bound is 5: nothing new is frozen.
  recordInterval(p, [0, 0, 0, 0, 0, 19, 9.5, 30]);
  const d3 = p.nextFrozen(3);
  assert.equal(d3.scheduled, 7);
  assert.equal(d3.bound, 5);
  assert.equal(d3.frozen, 5);
  // T=4: previous 19, 9.5, 30; current 19, 19, 30: changes 0, 1, 0; median 0, which layer 5 reaches.
  recordInterval(p, [0, 0, 0, 0, 0, 19, 19, 30]);
  assert.equal(p.nextFrozen(4).frozen, 5);
});

test("criterion allows more than the schedule: the schedule binds", () => {
  const p = new FreezePolicy(12, { alpha: "1/3" });
  recordInterval(p, new Array<number>(12).fill(100));
  assert.equal(p.nextFrozen(1).frozen, 4); // ceil(12/3)
  // Active 4..11: changes 0.01, 0.02, 0.03, 0.04, 0.05, 1, 1, 1; median (0.04 + 0.05) / 2 = 0.045;
  // first layer reaching it is 8 -> bound 8. Schedule: 4 + 8/3 = 6.67 -> 7, which binds.
  recordInterval(p, [0, 0, 0, 0, 101, 102, 103, 104, 105, 200, 200, 200]);
  const d = p.nextFrozen(2);
  assert.equal(d.bound, 8);
  assert.equal(d.scheduled, 7);
  assert.equal(d.frozen, 7);
  assert.equal(p.isFrozen(6), true);
  assert.equal(p.isFrozen(7), false);
});

test("criterionBound and median on hand-made numbers", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  // changes: 1 (2->4), 0.5 (2->1), 0 (5->5), 0.2 (5->6); median of all four (0, 0.2, 0.5, 1) = 0.35.
  const r = criterionBound([2, 2, 5, 5], [4, 1, 5, 6], 0);
  assert.equal(r.median, 0.35);
  assert.equal(r.bound, 0);
  // From frozen = 1: changes of 1..3 are 0.5, 0, 0.2; median 0.2; layer 1 (0.5) reaches it -> 1.
  assert.equal(criterionBound([2, 2, 5, 5], [4, 1, 5, 6], 1).bound, 1);
  // From frozen = 2: changes 0, 0.2; median 0.1; layer 2 (0) below, layer 3 reaches -> 3.
  assert.equal(criterionBound([2, 2, 5, 5], [4, 1, 5, 6], 2).bound, 3);
  // A norm that was 0 and became positive changed infinitely: changes 0, 0, Inf, 2; median 1 -> 2.
  const inf = criterionBound([1, 1, 0, 1], [1, 1, 1, 3], 0);
  assert.equal(inf.changes[2], Infinity);
  assert.equal(inf.bound, 2);
});

test("never unfreezes and never freezes the last layer, on random gradient histories", () => {
  let seed = 12345;
  const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  for (let trial = 0; trial < 200; trial++) {
    const L = 1 + Math.floor(rand() * 12);
    const alpha = [1 / 3, 1 / 2, 0.9, 1, 0.1][trial % 5];
    const p = new FreezePolicy(L, { alpha, criterion: trial % 3 === 0 ? "schedule" : "grad-norm" });
    let prev = 0;
    for (let T = 1; T <= 15; T++) {
      const steps = 1 + Math.floor(rand() * 3);
      for (let s = 0; s < steps; s++) {
        // Frozen layers report NaN: their entries must be ignored.
        p.recordGradNorms(Array.from({ length: L }, (_, l) => (l < p.frozen ? NaN : rand() < 0.1 ? 0 : rand() * 5)));
      }
      const d = p.nextFrozen(T);
      assert.equal(d.before, prev);
      assert.ok(d.frozen >= prev, `unfroze: ${prev} -> ${d.frozen} (L=${L}, T=${T})`);
      assert.ok(d.frozen <= L - 1, `froze the last layer: ${d.frozen} of ${L}`);
      assert.ok(d.frozen <= d.scheduled, "never more than the schedule");
      assert.ok(d.frozen <= scheduledFrozen(L, alpha, T), "never ahead of the closed form");
      prev = d.frozen;
    }
  }
  const one = new FreezePolicy(1, { alpha: 1, criterion: "schedule" });
  assert.equal(one.nextFrozen(1).frozen, 0);
  const full = new FreezePolicy(5, { alpha: 1, criterion: "schedule" });
  assert.equal(full.nextFrozen(1).frozen, 4);
});

test("interval: checks only every `interval` epochs, and norms accumulate over the whole interval", () => {
  const p = new FreezePolicy(4, { alpha: "1/2", interval: 2 });
  p.recordGradNorms([1, 1, 1, 1]);
  assert.equal(p.endEpoch(1), null);
  p.recordGradNorms([3, 3, 3, 3]);
  const d = p.endEpoch(2)!;
  assert.equal(d.T, 1);
  assert.equal(d.frozen, 2);
  // Interval 2's mean over its 4 steps: layers 2, 3 = 2 (no change) and 4 (change 1): median 0.5.
  for (const n of [[0, 0, 1, 4], [0, 0, 3, 4]]) p.recordGradNorms(n);
  assert.equal(p.endEpoch(3), null);
  for (const n of [[0, 0, 1, 4], [0, 0, 3, 4]]) p.recordGradNorms(n);
  const d2 = p.endEpoch(4)!;
  assert.equal(d2.T, 2);
  assert.deepEqual(d2.changes!.slice(2), [0, 1]);
  assert.equal(d2.bound, 3);
  assert.equal(d2.frozen, 3);
});

test("config parsing and bad input", () => {
  assert.equal(parseAlpha("1/3"), 1 / 3);
  assert.equal(parseAlpha(" 1 / 2 "), 0.5);
  assert.equal(parseAlpha(".25"), 0.25);
  assert.equal(parseAlpha("1"), 1);
  for (const bad of ["0", "3/2", "abc", "1/0", "-1/3", "", "1/3/4"]) {
    assert.throws(() => parseAlpha(bad), /--freeze-alpha '.*' is not valid; give a fraction in \(0, 1\]/, bad);
  }
  assert.equal(parseFreezeCriterion("schedule"), "schedule");
  assert.throws(() => parseFreezeCriterion("loss"), /--freeze-criterion 'loss' is not valid; choose one of: grad-norm, schedule/);
  assert.deepEqual(resolveFreezeConfig(), { alpha: 1 / 3, interval: 1, criterion: "grad-norm" });
  assert.throws(() => resolveFreezeConfig({ interval: 0 }), /--freeze-interval 0 is not valid/);
  assert.throws(() => resolveFreezeConfig({ alpha: 1.5 }), /freeze alpha 1.5 is not valid/);
  assert.throws(() => new FreezePolicy(0), /layer count must be a positive integer, got 0/);
  const p = new FreezePolicy(3);
  assert.throws(() => p.recordGradNorms([1, 2]), /got 2 norms for 3 layers/);
  assert.throws(() => p.recordGradNorms([1, NaN, 2]), /gradient norm of layer 1 is NaN/);
  assert.throws(() => p.nextFrozen(1), /no gradient norms were recorded.*--freeze-criterion schedule/);
  assert.throws(() => p.nextFrozen(2), /next is T=1, got T=2/);
  assert.throws(() => p.endEpoch(0), /epoch must be a positive integer/);
});

test("gradNorm is the L2 norm over all of a layer's gradients", () => {
  const a = new Tensor(new Float32Array([3, 0]), [2]);
  const b = new Tensor(new Float32Array([4]), [1]);
  assert.equal(gradNorm([a, null, b]), 5);
  assert.equal(gradNorm([]), 0);
});
