import { test } from "node:test";
import assert from "node:assert/strict";
import { addEpoch, createTrace, epochRecord, type FreezeTrace, parseTrace, predictSpeedup, formatPrediction } from "../src/pipeline/freeze/trace.js";
import { AutoPipe } from "../src/pipeline/freeze/autopipe.js";

function trace(frozen: number[], opts: { cached?: boolean[]; seconds?: number[][] } = {}): FreezeTrace {
  const t = createTrace({
    model: "test", workers: 2, samples: 640, batch: 64, frozenCostRatio: 1 / 6, microbatchesPerStage: 4,
    units: Array.from({ length: 8 }, (_, i) => ({ name: `${i}`, params: 600, layer: i })),
  });
  frozen.forEach((f, i) => addEpoch(t, {
    epoch: i + 1, frozen: f, stages: 2, replicas: 1, microbatches: 8, cached: opts.cached?.[i] ?? false,
    ...(opts.seconds ? { stageSeconds: opts.seconds[i] } : {}),
  }));
  return t;
}

test("predictSpeedup on hand-computed costs (8 units of 600, 4 workers, no measurements)", () => {
  const p = predictSpeedup(trace([0, 5, 7]), 4);
  // Baseline: 4 stages of 1200, M = 16, R = 1: per sample (4800 + 15 * 1200) / 16 = 1425; x 640 samples.
  // Epoch 2 (5 frozen): 2 stages [1100, 1200], R = 2, M = 8: (2300 + 7 * 1200) / 8 = 1337.5; x 320.
  // Epoch 3 (7 frozen): 2 stages, max 700 of 1300: (1300 + 7 * 700) / 8 = 775; x 320.
  assert.equal(p.stages, 4);
  assert.deepEqual(p.epochs.map((e) => [e.stages, e.replicas, e.microbatches]), [[4, 1, 16], [2, 2, 8], [2, 2, 8]]);
  assert.deepEqual(p.epochs.map((e) => e.seconds), [912000, 428000, 248000]);
  assert.equal(p.baselineSeconds, 3 * 912000);
  assert.ok(Math.abs(p.speedup - 2736000 / 1588000) < 1e-12);
  assert.match(formatPrediction(p), /speed-up 1\.72x/);
});

test("cached epochs cost nothing for the frozen prefix", () => {
  // Epoch 3 served from the cache: stage costs 0 and 600 whichever way the tie splits: 600 per sample.
  const p = predictSpeedup(trace([0, 5, 7], { cached: [false, false, true] }), 4);
  assert.equal(p.epochs[2].seconds, 320 * 600);
});

test("measured stage times calibrate seconds per cost unit, and scale out of the speed-up", () => {
  // Work per epoch in cost units x samples: 4800 (nothing frozen), 2300 (5 frozen), 1300 (7 frozen).
  const secs = [[4.8, 4.8], [2.3, 2.3], [1.3, 1.3]]; // k = 9.6 / (640 * 4800) = 4.6 / (640 * 2300) = ...
  const base = predictSpeedup(trace([0, 5, 7]), 4);
  const p = predictSpeedup(trace([0, 5, 7], { seconds: secs }), 4);
  const k = 9.6 / (640 * 4800);
  p.epochs.forEach((e, i) => assert.ok(Math.abs(e.seconds - k * base.epochs[i].seconds) < 1e-9));
  assert.ok(Math.abs(p.speedup - base.speedup) < 1e-9);
  // Frozen epochs measured twice as slow as the cost model says: their predictions double.
  const slow = predictSpeedup(trace([0, 5, 7], { seconds: [secs[0], [4.6, 4.6], [2.6, 2.6]] }), 4);
  assert.ok(Math.abs(slow.epochs[1].seconds - 2 * p.epochs[1].seconds) < 1e-9);
  assert.ok(Math.abs(slow.baselineSeconds - p.baselineSeconds) < 1e-9);
  assert.ok(slow.speedup < p.speedup);
});

test("trace JSON round trip and validation errors", () => {
  const t = trace([0, 3, 5], { seconds: [[1, 1], [1, 1], [1, 1]] });
  assert.deepEqual(parseTrace(JSON.stringify(t)), t);
  assert.throws(() => parseTrace("{"), /freeze trace trace: not valid JSON/);
  assert.throws(() => parseTrace(JSON.stringify({ ...t, format: "x" })), /format is "x", expected "pipewright-freeze-trace"/);
  assert.throws(() => addEpoch(t, { epoch: 4, frozen: 2, stages: 1, replicas: 2, microbatches: 4, cached: false }),
    /epochs\[3\]\.frozen is 2; it must be an integer in \[5, 7\] \(never unfreezes/);
  assert.equal(t.epochs.length, 3); // the bad epoch was not kept
  assert.throws(() => addEpoch(t, { epoch: 4, frozen: 5, stages: 2, replicas: 1, microbatches: 4, cached: true, stageSeconds: [1] }),
    /epochs\[3\]\.stageSeconds must list 2 finite numbers/);
  assert.throws(() => addEpoch(t, { epoch: 5, frozen: 5, stages: 2, replicas: 1, microbatches: 4, cached: true }), /epochs\[3\]\.epoch is 5, expected 4/);
  assert.throws(() => predictSpeedup(t, 0), /workers must be a positive integer, got 0/);
  assert.throws(() => predictSpeedup(trace([]), 4), /no epochs to replay/);
});

test("epochRecord copies the layout of a transition", () => {
  const units = Array.from({ length: 8 }, (_, i) => ({ name: `${i}`, params: 600, layer: i }));
  const t = new AutoPipe(units, { workers: 4, stages: 4, batch: 64 }).onFreeze(2, 5);
  assert.deepEqual(epochRecord(3, t, true, { stageSeconds: [1, 2] }),
    { epoch: 3, frozen: 5, stages: 2, replicas: 2, microbatches: 8, cached: true, stageSeconds: [1, 2] });
});
