import { test } from "node:test";
import assert from "node:assert/strict";
import {
  balanceByCost, checkBalance, formatPartition, parseBalance, partitionLayers, stageLayerRanges, uniformBalance,
} from "../src/pipeline/partition.js";
import { bruteMinMax } from "./brute-force.js";

test("uniform balance: sizes differ by at most one, earlier stages take the extra", () => {
  assert.deepEqual(uniformBalance(8, 3), [3, 3, 2]);
  assert.deepEqual(uniformBalance(8, 4), [2, 2, 2, 2]);
  assert.deepEqual(uniformBalance(5, 5), [1, 1, 1, 1, 1]);
  assert.throws(() => uniformBalance(3, 4), /cannot cut 3 layers into 4 parts/);
});

test("balance by cost minimises the slowest stage (checked against brute force)", () => {
  let seed = 7;
  const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  for (let trial = 0; trial < 60; trial++) {
    const L = 2 + Math.floor(rand() * 9);
    const P = 1 + Math.floor(rand() * L);
    const costs = Array.from({ length: L }, () => Math.round(rand() * 100) / 10);
    const bal = balanceByCost(costs, P);
    assert.equal(bal.length, P);
    assert.ok(bal.every((n) => n >= 1));
    assert.equal(bal.reduce((a, b) => a + b, 0), L);
    let start = 0, worst = 0;
    for (const n of bal) { worst = Math.max(worst, costs.slice(start, start + n).reduce((a, b) => a + b, 0)); start += n; }
    assert.ok(Math.abs(worst - bruteMinMax(costs, P)) < 1e-9, `costs ${costs} P=${P}: ${bal}`);
  }
  // One heavy layer gets a stage of its own.
  assert.deepEqual(balanceByCost([1, 1, 1, 10, 1, 1], 3), [3, 1, 2]);
});

test("--balance parsing and checks suggest a valid balance", () => {
  assert.deepEqual(parseBalance("3,2,3", 8, 3), [3, 2, 3]);
  assert.deepEqual(parseBalance(" 3, 2 ,3 ", 8, 3), [3, 2, 3]);
  assert.throws(() => parseBalance("3,2,2", 8, 3), /--balance 3,2,2 sums to 7, but the model has 8 layers \(it would drop 1 layer\(s\)\); a valid balance is --balance 3,3,2/);
  assert.throws(() => parseBalance("3,3,3", 8, 3), /sums to 9.*1 layer\(s\) too many.*3,3,2/);
  assert.throws(() => parseBalance("4,0,4", 8, 3), /entry 1 is 0; every stage needs at least one layer; a valid balance is --balance 3,3,2/);
  assert.throws(() => parseBalance("4,4", 8, 3), /has 2 entries, but the pipeline has 3 parts/);
  assert.throws(() => parseBalance("3,x,3", 8, 3), /'x' is not a positive integer.*3,3,2/);
  assert.throws(() => parseBalance("3,-1,6", 8, 3), /'-1' is not a positive integer/);
  assert.throws(() => checkBalance([1.5, 6.5], 8, 2), /entry 0 is 1.5/);
});

test("partitionLayers by method, and interleaved chunks are non-consecutive", () => {
  assert.deepEqual(partitionLayers({ layers: 8, stages: 3 }).balance, [3, 3, 2]);
  const byParams = partitionLayers({ layers: 4, stages: 2, method: "parameters", parameters: [100, 10, 10, 100] });
  assert.deepEqual(byParams.balance, [2, 2]);
  assert.deepEqual(byParams.costs, [110, 110]);
  assert.deepEqual(partitionLayers({ layers: 4, stages: 2, method: "time", times: [5, 1, 1, 1] }).balance, [1, 3]);
  assert.throws(() => partitionLayers({ layers: 4, stages: 2, method: "time" }), /needs times per layer/);
  assert.throws(() => partitionLayers({ layers: 4, stages: 2, method: "time", times: [1, 2] }), /got 2 times for 4 layers/);
  assert.deepEqual(partitionLayers({ layers: 8, stages: 3, balance: [2, 3, 3] }).ranges, [[0, 2], [2, 5], [5, 8]]);
  // Interleaved placement: 16 layers, 4 stages, v=2 -> stage 0 holds layers 0-1 and 8-9.
  const p = partitionLayers({ layers: 16, stages: 4, chunks: 2 });
  const r = stageLayerRanges(p, 4, 2);
  assert.deepEqual(r[0], [[0, 2], [8, 10]]);
  assert.deepEqual(r[3], [[6, 8], [14, 16]]);
  assert.equal(formatPartition(p, 4, 2).split("\n")[0], "stage 0: layers 0-1, 8-9");
  assert.match(formatPartition(byParams, 2, 1), /stage 1: layers 2-3 \(cost 110.0\)/);
});
