// Measured costs per physical stage (bench pipeline's cost model): each action's time goes to the
// stage its record names, so a worker holding two stages of a V has each costed apart. The
// aggregation is checked on hand-made records; the measurement and `bench pipeline --schedules
// zb-v,dualpipev` on a tiny model (one untimed-quality round: only the shape of the output is checked).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import type { ActionRecord, RankTimings } from "../src/pipeline/runtime/action-records.js";
import { busyByStage, measureStageCosts } from "../src/pipeline/runtime/profile.js";
import { splitMiniBatch } from "../src/pipeline/runtime/split.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import { MAIN } from "./mpi-helpers.js";
import type { ModelSpec } from "../src/nn/models/index.js";

const rec = (kind: ActionRecord["kind"], stage: number, ms: number): ActionRecord => ({ kind, stage, chunk: 0, microbatch: 0, run: 1, start: 10, end: 10 + ms, cpu: 0 });
const rank = (worker: number, actions: ActionRecord[]): RankTimings =>
  ({ rank: worker, worker, actions, sends: [], receives: [], begin: 0, listDone: 0, end: 0 });

test("busyByStage sums each action into the stage its record names (a V: worker 0 holds stages 0 and 3)", () => {
  const got = busyByStage([
    rank(0, [rec("F", 0, 1), rec("F", 3, 4), rec("B", 3, 8), rec("B", 0, 2), rec("W", 3, 16), rec("STEP", 0, 32), rec("STEP", 3, 64)]),
    rank(1, [rec("F", 1, 1), rec("F", 2, 2), rec("REDUCE", 1, 100), rec("B", 2, 4), rec("B", 1, 8), rec("F", 1, 16)]),
  ], 4);
  assert.deepEqual(got, [
    { F: 0.001, B: 0.002, W: 0, STEP: 0.032 },
    { F: 0.017, B: 0.008, W: 0, STEP: 0 },
    { F: 0.002, B: 0.004, W: 0, STEP: 0 },
    { F: 0.004, B: 0.008, W: 0.016, STEP: 0.064 },
  ]);
});

test("measureStageCosts of zb-v and dualpipev: one cost per stage (4 stages on 2 workers), every stage's F and B measured", async () => {
  const spec: ModelSpec = { name: "mlp", input: 6, hidden: [8, 8, 8], classes: 3 };
  const rng = new Rng(3);
  const batch = splitMiniBatch(Tensor.randn([8, 6], rng), Int32Array.from({ length: 8 }, () => rng.int(3)), 4, "test");
  for (const name of ["zb-v", "dualpipev"]) {
    const schedule = generateSchedule(name, { stages: 4, microbatches: 4 });
    assert.equal(schedule.workers.length, 2);
    const c = await measureStageCosts({ model: spec, seed: 1, schedule, balance: uniformBalance(8, 4), recompute: "never", optimizer: { name: "sgd", lr: 0.1 } }, batch, 1);
    for (const k of ["forward", "backward", "weight", "step"] as const) assert.equal(c[k].length, 4, `${name} ${k}`);
    c.forward.forEach((f, s) => assert.ok(f > 0 && c.backward[s] > 0, `${name} stage ${s}: ${JSON.stringify(c)}`));
  }
});

test("bench pipeline --schedules zb-v,dualpipev runs 4 stages on its 2 workers", () => {
  const r = spawnSync(process.execPath, [MAIN, "bench", "pipeline", "--schedules", "zb-v,dualpipev", "--layers", "3", "--width", "16", "--batch", "8",
    "--microbatches", "4", "--steps", "1", "--rounds", "1", "--warmup", "0", "--synthetic=off", "--json"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { schedule?: string; workers?: number; balance?: number[]; ideal?: number });
  for (const name of ["zb-v", "dualpipev"]) {
    const l = lines.find((x) => x.schedule === name);
    assert.ok(l, `no ${name} line in ${r.stdout}`);
    assert.equal(l.workers, 2);
    assert.equal(l.balance!.length, 4);
    assert.ok(Number.isFinite(l.ideal) && l.ideal! > 0, `${name} ideal ${l.ideal}`);
  }
});
