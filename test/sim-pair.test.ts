// DualPipeV's FB pair as an action with its own cost: the simulator takes a given pair time instead
// of the sum of its halves, and bench pipeline's measurement reads each pair's time from the records
// of its halves (synthetic records here: no timing is measured).
import { test } from "node:test";
import assert from "node:assert/strict";
import { executionCosts, simulate, type CostModel } from "../src/sim/index.js";
import { actionParts, formatAction, generateSchedule } from "../src/pipeline/schedule/index.js";
import { measureStageCosts, pairsByStage } from "../src/pipeline/runtime/profile.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import type { ActionRecord, RankTimings } from "../src/pipeline/runtime/action-records.js";

const S = generateSchedule("dualpipev", { stages: 4, microbatches: 6 });
const BASE: CostModel = { forward: [1, 1.5, 2, 1], backward: [2, 3, 4, 2], weight: [1, 1, 2, 1] };
const pairs = S.workers.flat().filter((a) => a.kind === "FB");

test("the simulator costs an FB pair at the given pair time of its forward half's stage, else at the sum of its halves", () => {
  assert.ok(pairs.length > 0);
  const halves = executionCosts(S, BASE);
  const pair = [0.5, null, 7, 0.25];
  const given = executionCosts(S, { ...BASE, pair });
  for (const a of pairs) {
    const sum = actionParts(a).reduce((t, p) => t + halves.duration(p), 0);
    assert.equal(halves.duration(a), sum, formatAction(a));
    assert.equal(given.duration(a), pair[a.stage] ?? sum, formatAction(a));
  }
  // Other actions keep their costs.
  for (const a of S.workers.flat().filter((x) => x.kind !== "FB")) assert.equal(given.duration(a), halves.duration(a), formatAction(a));
  // The pair time moves the makespan: sums as pair times change nothing, cheaper pairs shorten the step.
  const sums = [0, 1, 2, 3].map((s) => { const a = pairs.find((p) => p.stage === s); return a ? halves.duration(a) : null; });
  assert.equal(simulate(S, { ...BASE, pair: sums }).makespan, simulate(S, BASE).makespan);
  assert.ok(simulate(S, { ...BASE, pair: sums.map((x) => (x === null ? null : x / 2)) }).makespan < simulate(S, BASE).makespan);
  assert.throws(() => simulate(S, { ...BASE, pair: [1, 2] }), /cost model: pair has 2 per-stage values for 4 stages/);
  assert.throws(() => simulate(S, { ...BASE, pair: [1, -1, 1, 1] }), /pair time of stage 1 -1 must be a finite number >= 0/);
});

test("pairsByStage: each FB pair from its F half's start to its B half's end, summed by the forward half's stage", () => {
  // Each worker's list as back-to-back records of 1 ms per simple action, 0.5 ms apart.
  const expected = new Array<number>(S.stages).fill(0);
  const timings: RankTimings[] = S.workers.map((list, w) => {
    let t = 0;
    const actions: ActionRecord[] = [];
    for (const a of list) {
      const parts = actionParts(a);
      const start = t;
      for (const p of parts) { actions.push({ kind: p.kind, stage: p.stage, chunk: p.chunk, microbatch: p.microbatch, run: 1, start: t, end: t + 1, cpu: 0 }); t += 1.5; }
      if (a.kind === "FB") expected[a.stage] += (t - 0.5 - start) / 1000;
    }
    return { rank: w, worker: w, actions, sends: [], receives: [], begin: 0, listDone: t, end: t };
  });
  const got = pairsByStage(timings, S);
  got.forEach((x, s) => assert.ok(Math.abs(x - expected[s]) < 1e-12, `stage ${s}: ${x} vs ${expected[s]}`));
  assert.ok(expected.some((x) => x > 0));
  // A pair whose backward half left no record is an error naming the pair.
  const half = formatAction(actionParts(S.workers[0].find((a) => a.kind === "FB")!)[1]);
  timings[0].actions.splice(timings[0].actions.findIndex((r) => formatAction(r) === half), 1);
  assert.throws(() => pairsByStage(timings, S), /worker 0 has no record of both halves of/);
});

test("measureStageCosts gives DualPipeV's stages a pair time where they start FB pairs, and none to a schedule without pairs", async () => {
  const spec: ModelSpec = { name: "mlp", input: 6, hidden: [8, 8, 8, 8, 8, 8], classes: 3 };
  const units = createModel(spec, 1).units.length;
  const rng = new Rng(1);
  const batch = { inputs: Array.from({ length: 4 }, () => Tensor.randn([2, 6], rng)), labels: Array.from({ length: 4 }, () => Int32Array.of(0, 2)), scale: 1 / 8 };
  for (const name of ["dualpipev", "1f1b"]) {
    const schedule = generateSchedule(name, { stages: 4, microbatches: 4 });
    const costs = await measureStageCosts({ model: spec, seed: 1, schedule, balance: uniformBalance(units, 4), recompute: "never", optimizer: { name: "sgd", lr: 0.1 } }, batch, 1);
    const starts = [0, 1, 2, 3].map((s) => schedule.workers.flat().some((a) => a.kind === "FB" && a.stage === s));
    if (!starts.some(Boolean)) { assert.equal(costs.pair, undefined, name); continue; }
    assert.equal(costs.pair?.length, 4, name);
    costs.pair!.forEach((x, s) => assert.equal(x !== null && x > 0, starts[s], `${name} stage ${s}: ${x}`));
  }
});
