// Asynchronous 1F1B without flush: delays measured from the lists equal expectedDelay's closed form.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  contiguousWorkers, expectedDelay, formatAction, generateSchedule, measureDelays, validateSchedule,
} from "../src/pipeline/schedule/index.js";
import { simulate } from "../src/sim/index.js";

test("expectedDelay follows ceil((2(S-1-s)+1)/M) on hand-computed values", () => {
  assert.equal(expectedDelay(4, 0, 1), 7);
  assert.equal(expectedDelay(4, 3, 1), 1);
  assert.equal(expectedDelay(4, 0, 2), 4);
  assert.equal(expectedDelay(4, 1, 2), 3);
  assert.equal(expectedDelay(1, 0, 1), 1);
  assert.equal(expectedDelay(8, 0, 16), 1);
  assert.equal(expectedDelay(8, 0, 5), 3);
  assert.throws(() => expectedDelay(4, 4, 1), /stage 4 is outside 0..3/);
  assert.throws(() => expectedDelay(4, 0, 0), /microbatches must be a positive integer, got 0/);
});

test("measured delays equal the formula for S 1..8, M 1..8 (M = 1 is batch size 1)", () => {
  for (let S = 1; S <= 8; S++) {
    for (let M = 1; M <= 8; M++) {
      const s = generateSchedule("async", { stages: S, microbatches: M });
      const r = validateSchedule(s);
      assert.ok(r.ok, `S=${S} M=${M}: ${r.errors.join("\n")}`);
      const d = measureDelays(s);
      for (let st = 0; st < S; st++) {
        assert.equal(d.perStage[st], expectedDelay(S, st, M), `S=${S} M=${M} stage ${st}`);
        // Per micro-batch, in steady state (j >= round trip): STEPs completed at B minus at F,
        // counted independently: groups of M finished among B's 0..j-1 versus among 0..j-d-1.
        const trip = 2 * (S - 1 - st) + 1;
        for (let j = trip; j < s.steps * M; j++) {
          const oracle = Math.floor(j / M) - Math.floor((j - trip) / M);
          assert.equal(d.perMicrobatch[st][j], oracle, `S=${S} M=${M} s=${st} j=${j}`);
          // The first micro-batch of every step carries the full delay tau_s.
          if (j % M === 0) assert.equal(oracle, expectedDelay(S, st, M));
        }
      }
      // Peak live activations: the round trip plus the one just forwarded.
      r.peakActivations.forEach((p, st) => assert.equal(p, Math.min(2 * (S - 1 - st) + 2, s.steps * M)));
    }
  }
});

test("each stage STEPs right after the B that completes M gradients, and never flushes", () => {
  const s = generateSchedule("async", { stages: 3, microbatches: 2, steps: 5 });
  for (const list of s.workers) {
    list.forEach((a, i) => {
      if (a.kind !== "STEP") return;
      const prev = list[i - 1];
      assert.equal(formatAction(prev), `${a.stage}B${2 * a.microbatch + 1}`);
    });
  }
  // No flush: stage 0 runs forwards of step 1 before finishing the backwards of step 0.
  const w0 = s.workers[0].map(formatAction);
  assert.ok(w0.indexOf("0F2") < w0.indexOf("0B1"));
});

test("no bubble in steady state: idle time does not grow with the number of steps", () => {
  const costs = { forward: 1, backward: 1, weight: 0 };
  for (const [S, M] of [[4, 1], [4, 3], [6, 2]]) {
    const short = simulate(generateSchedule("async", { stages: S, microbatches: M, steps: 8 }), costs);
    const long = simulate(generateSchedule("async", { stages: S, microbatches: M, steps: 16 }), costs);
    assert.deepEqual(long.idle, short.idle, `S=${S} M=${M}`);
    assert.ok(long.bubbleFraction < short.bubbleFraction);
  }
});

test("several stages share a worker: lists merge, delays and validity are kept", () => {
  for (const [S, W, M] of [[8, 2, 1], [12, 3, 2], [5, 2, 1]]) {
    const map = contiguousWorkers(S, W);
    const s = generateSchedule("async", { stages: S, microbatches: M, stageToWorker: map });
    assert.equal(s.workers.length, W);
    const r = validateSchedule(s);
    assert.ok(r.ok, r.errors.join("\n"));
    s.workers.forEach((list, w) => list.forEach((a) => assert.equal(map[a.stage], w)));
    const alone = generateSchedule("async", { stages: S, microbatches: M });
    assert.deepEqual(measureDelays(s), measureDelays(alone));
    assert.deepEqual(r.peakActivations, validateSchedule(alone).peakActivations);
  }
  // Synchronous schedules can share workers too.
  const g = generateSchedule("1f1b", { stages: 6, microbatches: 4, stageToWorker: [0, 0, 0, 1, 1, 1] });
  assert.ok(validateSchedule(g).ok);
  assert.throws(() => generateSchedule("1f1b", { stages: 3, microbatches: 2, stageToWorker: [0, 2, 2] }), /worker 1 gets no stage/);
  assert.throws(() => contiguousWorkers(3, 4), /workers must be an integer in 1..3/);
});
