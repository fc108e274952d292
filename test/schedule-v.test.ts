// The V schedules (zb-v, dualpipev): placement, validity, the FB composite, the simulator against
// the closed form, and a checkpoint saved and resumed under zb-v.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  action, type Action, expandComposites, formatAction, forwardBackward, generateSchedule, lowerCommunication, parseAction,
  type Schedule, stagePlacement, validateSchedule, vPlacement,
} from "../src/pipeline/schedule/index.js";
import { bubbleFormula, resolveCosts, simulate } from "../src/sim/index.js";
import { MAIN, assertSameCheckpoint } from "./mpi-helpers.js";

const V_NAMES = ["zb-v", "dualpipev"] as const;

test("V placement: worker r holds stages r and S-1-r; odd stage counts and other maps are refused", () => {
  assert.deepEqual(vPlacement(2), [0, 0]);
  assert.deepEqual(vPlacement(8), [0, 1, 2, 3, 3, 2, 1, 0]);
  assert.throws(() => vPlacement(3), /even stage count >= 2.*stages=3/);
  assert.deepEqual(stagePlacement("zb-v", 6, 3), [0, 1, 2, 2, 1, 0]);
  assert.throws(() => stagePlacement("zb-v", 6, 2), /zb-v runs 6 stages on 3 workers.*workers=2/);
  assert.deepEqual(stagePlacement("1f1b", 4, 2), [0, 0, 1, 1]);
  assert.throws(() => generateSchedule("zb-v", { stages: 4, microbatches: 4, stageToWorker: [0, 0, 1, 1] }), /zb-v places stage s on worker min\(s, S-1-s\): \[0,1,1,0\]; got stageToWorker \[0,0,1,1\]/);
  assert.throws(() => generateSchedule("dualpipev", { stages: 6, microbatches: 4 }), /microbatches=4, stages=6; use --microbatches 6/);
  assert.throws(() => generateSchedule("zb-v", { stages: 4, microbatches: 4, chunks: 2 }), /chunks=2 is only valid for the interleaved schedule/);
});

test("zb-v and dualpipev are valid for many (S, M, steps); the turn at the bottom sends no message", () => {
  for (const name of V_NAMES) {
    for (const S of [2, 4, 6, 8]) {
      for (const M of [1, 2, 3, S - 1, S, S + 3, 2 * S]) {
        if (M < 1 || (name === "dualpipev" && M < S)) continue;
        for (const steps of [1, 3]) {
          const s = generateSchedule(name, { stages: S, microbatches: M, steps });
          const r = validateSchedule(s);
          assert.ok(r.ok, `${name} S=${S} M=${M} steps=${steps}: ${r.errors.join("\n")}`);
          assert.equal(s.workers.length, S / 2);
          assert.deepEqual(s.stageToWorker, vPlacement(S));
          // Like 1F1B at most S micro-batches live per worker (sum of its two stages): the papers' memory claim.
          for (let w = 0; w < S / 2; w++) assert.ok(r.peakActivations[w] + r.peakActivations[S - 1 - w] <= Math.max(S, 2 * Math.min(M, S)), `${name} S=${S} M=${M} worker ${w} peaks ${r.peakActivations}`);
        }
        const ops = lowerCommunication(generateSchedule(name, { stages: S, microbatches: M })).flat();
        const crosses = (a: number, b: number): boolean => ops.some((o) => o.op === "send" && [o.producer.stage, o.consumer.stage].sort().join() === [a, b].sort().join());
        assert.ok(!crosses(S / 2 - 1, S / 2), `${name} S=${S}: the turn at the bottom stays on one worker`);
        if (S > 2) assert.ok(crosses(0, 1), `${name} S=${S}: stage 0 sends to stage 1`);
      }
    }
  }
});

test("dualpipev's steady state is FB pairs of the worker's two stages; the runtime runs each as its F then its B", () => {
  const s = generateSchedule("dualpipev", { stages: 4, microbatches: 8 });
  const pairs = s.workers.flat().filter((a) => a.kind === "FB");
  assert.ok(pairs.length >= 8, `${pairs.length} pairs`);
  for (const p of pairs) {
    assert.equal(s.stageToWorker[p.stage], s.stageToWorker[p.backward!.stage], formatAction(p));
    assert.notEqual(p.stage, p.backward!.stage, `${formatAction(p)} pairs the worker's two stages`);
  }
  const first = pairs[0];
  assert.deepEqual(expandComposites([first]), [action(first.stage, "F", first.microbatch), first.backward]);
  assert.deepEqual(parseAction(formatAction(first)), first);
  assert.equal(formatAction(forwardBackward(action(0, "F", 5), action(3, "B", 2))), "0F5&3B2");
  assert.throws(() => forwardBackward(action(0, "F", 5), action(3, "W", 2)), /joins an F and a B/);
  assert.throws(() => parseAction("0F5&3X2"), /cannot parse action '3X2'/);
});

/** The schedule with worker w's list replaced. */
const withList = (s: Schedule, w: number, list: Action[]): Schedule => ({ ...s, workers: s.workers.map((l, i) => (i === w ? list : l)) });

test("corrupted V lists are rejected: a stage on the wrong worker, a lost W, a lost FB half, a swap that deadlocks", () => {
  const zbv = generateSchedule("zb-v", { stages: 4, microbatches: 4 });
  // Stage 3 is worker 0's (the V's up leg); putting its forward on worker 1 breaks the placement.
  const moved = zbv.workers[0].find((a) => a.stage === 3 && a.kind === "F")!;
  const bad1 = withList(withList(zbv, 0, zbv.workers[0].filter((a) => a !== moved)), 1, [moved, ...zbv.workers[1]]);
  assert.match(validateSchedule(bad1).errors.join("\n"), /'3F0': stage 3 belongs to worker 0/);
  const w = zbv.workers[1].findIndex((a) => a.kind === "W");
  const bad2 = withList(zbv, 1, zbv.workers[1].filter((_, i) => i !== w));
  assert.match(validateSchedule(bad2).errors.join("\n"), /appears 0 times; expected exactly once/);
  // Worker 0 running its up stage's first backward before the forward that feeds it.
  const l0 = [...zbv.workers[0]];
  const f = l0.findIndex((a) => a.stage === 3 && a.kind === "F" && a.microbatch === 0);
  const b = l0.findIndex((a) => a.stage === 3 && a.kind === "B" && a.microbatch === 0);
  [l0[f], l0[b]] = [l0[b], l0[f]];
  const r3 = validateSchedule(withList(zbv, 0, l0));
  assert.ok(!r3.ok);
  assert.match(r3.errors.join("\n"), /deadlock in schedule 'zb-v'/);
  // An FB whose backward half is a W, and a pair split onto the wrong worker.
  const dpv = generateSchedule("dualpipev", { stages: 4, microbatches: 4 });
  const i = dpv.workers[0].findIndex((a) => a.kind === "FB");
  const pair = dpv.workers[0][i];
  const broken = { ...pair, backward: { ...pair.backward!, kind: "W" as const } };
  assert.match(validateSchedule(withList(dpv, 0, dpv.workers[0].map((a, j) => (j === i ? broken : a)))).errors.join("\n"), /an FB pair needs a B as its backward half/);
  const wrong = { ...pair, backward: action(1, "B", pair.backward!.microbatch) };
  assert.match(validateSchedule(withList(dpv, 0, dpv.workers[0].map((a, j) => (j === i ? wrong : a)))).errors.join("\n"), /stage 1 belongs to worker 1/);
});

test("sim: with F = B = W the bubble fraction is (p-1)/(6M+p-1), p = S/2 workers, as the closed form says", () => {
  const costs = { forward: 1, backward: 2, weight: 1 };
  for (const name of V_NAMES) {
    for (const [S, M] of [[2, 4], [4, 4], [4, 8], [6, 6], [6, 12], [8, 8], [8, 16]]) {
      const s = generateSchedule(name, { stages: S, microbatches: M });
      const r = simulate(s, costs);
      const p = S / 2;
      const closed = (p - 1) / (6 * M + p - 1);
      assert.ok(Math.abs(r.bubbleFraction - closed) < 1e-12, `${name} S=${S} M=${M}: ${r.bubbleFraction} vs ${closed}`);
      const f = bubbleFormula(name, S, M, 1, resolveCosts(costs, S));
      assert.ok(f && Math.abs(f.value - r.bubbleFraction) < 1e-12, `${name} S=${S} M=${M}: formula ${f?.value}`);
      // Against 1F1B on the same p workers (p stages, F and B of two V stages each): a smaller bubble.
      const oneF = simulate(generateSchedule("1f1b", { stages: p, microbatches: M }), { forward: 2, backward: 4, weight: 2 });
      if (p > 1) assert.ok(r.bubbleFraction < oneF.bubbleFraction, `${name} S=${S} M=${M}: ${r.bubbleFraction} vs 1f1b ${oneF.bubbleFraction}`);
    }
  }
  // Outside its range the formula declines rather than guess.
  assert.equal(bubbleFormula("zb-v", 8, 3, 1, resolveCosts(costs, 8)), null);
  assert.equal(bubbleFormula("dualpipev", 4, 8, 1, resolveCosts({ forward: 1, backward: 3, weight: 1 }, 4)), null);
});

test("an FB pair costs what its measured halves cost in the simulator", () => {
  const s = generateSchedule("dualpipev", { stages: 4, microbatches: 4 });
  const r = simulate(s, { forward: [1, 2, 3, 4], backward: [5, 6, 7, 8], weight: [1, 1, 2, 2] });
  for (const row of r.timeline) {
    for (const x of row) {
      if (x.action.kind !== "FB") continue;
      const b = x.action.backward!;
      const expected = [1, 2, 3, 4][x.action.stage] + [5, 6, 7, 8][b.stage] - [1, 1, 2, 2][b.stage];
      assert.equal(x.end - x.start, expected, formatAction(x.action));
    }
  }
});

test("zb-v checkpoints: two epochs in one run equal one epoch, saved, then resumed for the second (threads); a plain pipeline resumes them", () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-zbv-"));
  try {
    const base = ["train", "--model", "mlp", "--data", "slice", "--limit", "96", "--batch", "24", "--microbatches", "4", "--schedule", "zb-v", "--stages", "4", "--executor", "threads", "--schedule-lr", "none", "--quiet", "--json"];
    const run = (...args: string[]): void => {
      const r = spawnSync(process.execPath, [MAIN, ...base, ...args], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    };
    const whole = join(dir, "whole.safetensors"), half = join(dir, "half.safetensors"), resumed = join(dir, "resumed.safetensors");
    run("--epochs", "2", "--save", whole);
    run("--epochs", "1", "--save", half);
    run("--epochs", "2", "--resume", half, "--save", resumed);
    assertSameCheckpoint(whole, resumed);
    // The V checkpoint resumes as a plain 1F1B pipeline of 2 stages too (names are the model's own).
    const other = join(dir, "other.safetensors");
    const r = spawnSync(process.execPath, [MAIN, "train", "--epochs", "2", "--resume", half, "--schedule", "1f1b", "--stages", "2", "--quiet", "--json", "--save", other], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sim on shared cores runs FB pairs too: on one core the makespan is the sum of every action's time", () => {
  const s = generateSchedule("dualpipev", { stages: 4, microbatches: 4 });
  const costs = { forward: [1, 2, 3, 4], backward: [5, 6, 7, 8], weight: [1, 1, 2, 2] };
  const total = s.workers.flat().reduce((t, a) => t + expandComposites([a]).reduce((u, p) =>
    u + (p.kind === "F" ? costs.forward[p.stage] : p.kind === "B" ? costs.backward[p.stage] - costs.weight[p.stage] : p.kind === "W" ? costs.weight[p.stage] : 0), 0), 0);
  const r = simulate(s, { ...costs, cores: 1 });
  assert.ok(Math.abs(r.makespan - total) < 1e-9, `${r.makespan} vs ${total}`);
  // A message into an FB's backward half is charged at that half's boundary (stage 3 -> 2 here, not the F half's).
  const perBoundary = simulate(s, { ...costs, message: 0, messagePerByte: 1, messageBytes: [0, 0, 5, 0] });
  const plain = simulate(s, costs);
  assert.ok(perBoundary.makespan > plain.makespan, `${perBoundary.makespan} vs ${plain.makespan}`);
});
