import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AutoPipe, autoDP, formatTransition, frozenUnitCount, pickMicrobatches, type PipeUnit, replicaShards, shrinkStages, unitCosts, unitsFromLayers,
} from "../src/pipeline/freeze/autopipe.js";
import { createModel } from "../src/nn/models/index.js";
import { bruteMinMax } from "./brute-force.js";

/** One unit per layer with the given parameter counts. */
const perLayer = (params: number[]): PipeUnit[] => params.map((p, i) => ({ name: `${i}`, params: p, layer: i }));

test("ViT units: attention and MLP sub-blocks, parameter counts by hand", () => {
  const D = 8, classes = 10, patch = 7, image = 28, depth = 2;
  const model = createModel({ name: "vit", dim: D, depth, heads: 2, patch, image, classes }, 1);
  const units = unitsFromLayers(model.units);
  assert.deepEqual(units.map((u) => u.name), ["0", "1.attn", "1.mlp", "2.attn", "2.mlp", "3", "4", "5"]);
  assert.deepEqual(units.map((u) => u.layer), [0, 1, 1, 2, 2, 3, 4, 5]);
  const N = (image / patch) ** 2;
  const attn = 2 * D + (3 * D * D + 3 * D) + (D * D + D); // ln1, qkv, proj
  const mlp = 2 * D + (4 * D * D + 4 * D) + (4 * D * D + D); // ln2, fc in, fc out
  assert.deepEqual(units.map((u) => u.params), [N * D + patch * patch * D + D, attn, mlp, attn, mlp, 2 * D, 0, D * classes + classes]);
  assert.equal(frozenUnitCount(units, 2), 3); // "0", "1.attn", "1.mlp"
  assert.equal(frozenUnitCount(units, 0), 0);
  const total = model.parameters().reduce((t, p) => t + p.data.length, 0);
  assert.equal(units.reduce((t, u) => t + u.params, 0), total);
  const whole = unitsFromLayers(model.units, { splitBlocks: false });
  assert.deepEqual(whole.map((u) => u.params), [units[0].params, attn + mlp, attn + mlp, 2 * D, 0, D * classes + classes]);
});

test("frozen units are costed at 1/6 (configurable)", () => {
  const u = perLayer([600, 60, 6]);
  assert.deepEqual(unitCosts(u, 0), [600, 60, 6]);
  assert.deepEqual(unitCosts(u, 2), [100, 10, 6]);
  assert.deepEqual(unitCosts(u, 2, 0.5), [300, 30, 6]);
  assert.throws(() => unitCosts(u, 1, 2), /frozen cost ratio 2 must lie in \[0, 1\]/);
});

test("AutoPipe on hand-computed costs: 8 units of 600 on 4 workers", () => {
  const pipe = new AutoPipe(perLayer(new Array<number>(8).fill(600)), { workers: 4, stages: 4, batch: 64 });
  // Start: 4 stages of 2 units, 1200 each: the reference maximum. M = 4S = 16 divides 64.
  const t0 = pipe.initial();
  assert.equal(pipe.startMax, 1200);
  assert.deepEqual([t0.stages, t0.replicas, t0.microbatches], [4, 1, 16]);
  assert.deepEqual(t0.partition.balance, [2, 2, 2, 2]);
  // 2 frozen: costs 100, 100, 600 x 6 = 3800; two stages need >= 1900 > 1200, stay at 4. Six 600s in 4
  // parts force a part of 1200, so the re-balanced maximum is 1200.
  const t1 = pipe.onFreeze(1, 2);
  assert.deepEqual([t1.stages, t1.replicas, t1.microbatches], [4, 1, 16]);
  assert.equal(Math.max(...t1.partition.costs), 1200);
  // 5 frozen: costs 100 x 5, 600 x 3 = 2300; split after 6 units: 1100 | 1200 <= 1200 -> S = 2; one
  // stage would hold 2300 > 1200 -> stop. 2 replicas, shard 32, M = 8.
  const t2 = pipe.onFreeze(2, 5);
  assert.deepEqual([t2.stages, t2.replicas, t2.microbatches], [2, 2, 8]);
  assert.deepEqual(t2.partition.balance, [6, 2]);
  assert.deepEqual(t2.partition.costs, [1100, 1200]);
  // 7 frozen: 700 + 600 = 1300 > 1200 still needs 2 stages; best split has maximum 700.
  const t3 = pipe.onFreeze(3, 7);
  assert.deepEqual([t3.stages, t3.replicas], [2, 2]);
  assert.equal(Math.max(...t3.partition.costs), 700);
  assert.throws(() => pipe.onFreeze(4, 6), /frozen layer count 6 must be an integer in \[7, 7\]/);
  assert.throws(() => pipe.onFreeze(4, 8), /must be an integer in \[7, 7\].*keeps the last layer/);
});

test("AutoPipe halves more than once in one step, and never shrinks an odd pipeline", () => {
  // Frozen units free (ratio 0): 7 frozen leaves 600 <= 1200 for two stages and for one -> S = 1,
  // 4 replicas, shard 16, M = min(4, 16) = 4.
  const pipe = new AutoPipe(perLayer(new Array<number>(8).fill(600)), { workers: 4, stages: 4, batch: 64, frozenCostRatio: 0 });
  const t = pipe.onFreeze(1, 7);
  assert.deepEqual([t.stages, t.replicas, t.microbatches], [1, 4, 4]);
  const odd = new AutoPipe(perLayer(new Array<number>(6).fill(600)), { workers: 3, stages: 3, batch: 30, frozenCostRatio: 0 });
  assert.equal(odd.onFreeze(1, 5).stages, 3);
  // Elastic off: the layout stays as it was, only the frozen count changes.
  const fixed = new AutoPipe(perLayer(new Array<number>(8).fill(600)), { workers: 4, stages: 4, batch: 64, elastic: false });
  const f = fixed.onFreeze(1, 7);
  assert.deepEqual([f.stages, f.replicas, f.microbatches, f.frozenLayers], [4, 1, 16, 7]);
  assert.deepEqual(f.partition.balance, [2, 2, 2, 2]);
});

test("shrink decisions agree with a brute-force min-max on random costs", () => {
  let seed = 99;
  const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  for (let trial = 0; trial < 80; trial++) {
    const n = 4 + Math.floor(rand() * 6);
    const costs = Array.from({ length: n }, () => 1 + Math.floor(rand() * 20));
    const S0 = [2, 4][trial % 2];
    const startMax = bruteMinMax(costs, S0);
    const frozen = Math.floor(rand() * n);
    const now = costs.map((c, i) => (i < frozen ? c / 6 : c));
    let want = S0;
    while (want % 2 === 0 && bruteMinMax(now, want / 2) <= startMax + 1e-9) want /= 2;
    assert.equal(shrinkStages(now, S0, startMax), want, `costs ${costs} frozen ${frozen} S0 ${S0}`);
  }
});

test("AutoDP, shards and the micro-batch rule", () => {
  assert.equal(autoDP(8, 2), 4);
  assert.equal(autoDP(8, 3), 2);
  assert.equal(autoDP(2, 1), 2);
  assert.throws(() => autoDP(2, 4), /pipeline length 4 must be an integer in \[1, 2\]/);
  assert.deepEqual(replicaShards(10, 3), [4, 3, 3]);
  assert.throws(() => replicaShards(2, 3), /cannot shard a mini-batch of 2 over 3 replicas/);
  assert.equal(pickMicrobatches(2, 32), 8); // 4S divides the shard
  assert.equal(pickMicrobatches(4, 12), 12); // capped by the shard
  assert.equal(pickMicrobatches(4, 30), 15); // largest divisor of 30 <= 16
  assert.equal(pickMicrobatches(4, 17), 16); // 17 is prime: divisor 1 < S, so 16 unequal micro-batches
  assert.equal(pickMicrobatches(1, 64), 4);
  assert.equal(pickMicrobatches(2, 32, 2), 4);
  assert.throws(() => pickMicrobatches(2, 0), /per-replica batch must be a positive integer, got 0/);
});

test("transition prints as one line naming frozen layers, length, replicas, micro-batches, partition", () => {
  const units: PipeUnit[] = [
    { name: "0", params: 60, layer: 0 }, { name: "1.attn", params: 600, layer: 1 }, { name: "1.mlp", params: 1200, layer: 1 },
    { name: "2.attn", params: 600, layer: 2 }, { name: "2.mlp", params: 1200, layer: 2 }, { name: "3", params: 60, layer: 3 },
  ];
  const pipe = new AutoPipe(units, { workers: 2, stages: 2, batch: 16 });
  const line = formatTransition(pipe.onFreeze(2, 2));
  assert.ok(!line.includes("\n"));
  assert.match(line, /^epoch 2: frozen 2\/4 layers, \d stages? x \d replicas?, \d+ micro-batch(es)?, partition \[.+\]$/);
  // Costs with 2 layers frozen: 10, 100, 200 | 600, 1200, 60; best cut is inside block 2, between its
  // attention (600) and MLP (1200) sub-blocks: 910 | 1260 (other cuts: 310 | 1860, 2110 | 60).
  assert.equal(line, "epoch 2: frozen 2/4 layers, 2 stages x 1 replica, 8 micro-batches, partition [0..2.attn 910 | 2.mlp..3 1.26e+3]");
  // Bad units: a layer index that skips, or a negative parameter count.
  assert.throws(() => new AutoPipe([{ name: "a", params: 1, layer: 0 }, { name: "b", params: 1, layer: 2 }], { workers: 1, stages: 1, batch: 1 }),
    /unit 1 \('b'\) has layer 2/);
  assert.throws(() => new AutoPipe(perLayer([1, -1]), { workers: 1, stages: 1, batch: 1 }), /unit 1 \('1'\) has parameter count -1/);
  assert.throws(() => new AutoPipe(perLayer([1, 1]), { workers: 4, stages: 4, batch: 8 }), /4 stages but only 2 partition units/);
  assert.throws(() => new AutoPipe(perLayer([1, 1]), { workers: 2, stages: 2, batch: 1 }), /mini-batch 1 must be an integer >= the worker count 2/);
});
