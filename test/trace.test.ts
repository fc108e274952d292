// --trace on `train` (inline and threads executors): a Chrome trace whose events have the format's
// required fields, one process per worker with compute and communication tracks, and per step
// exactly the schedule's actions in each worker's list order; recording leaves the results alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAIN } from "./mpi-helpers.js";
import { assertFollowsSchedule, assertWellFormed, loadTrace, processNames, xEvents } from "./trace-helpers.js";

// A small MLP, 2 steps of a 2-stage GPipe with M = 4.
const RUN = ["train", "--model", "mlp", "--layers", "2", "--width", "64", "--data", "slice", "--limit", "96", "--epochs", "1", "--batch", "48",
  "--quiet", "--json", "--schedule", "gpipe", "--stages", "2", "--microbatches", "4"];

function train(args: string[]): { train_loss: number; test_loss: number } {
  const r = spawnSync(process.execPath, [MAIN, ...RUN, ...args], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { train_loss: number; test_loss: number };
}

for (const executor of ["inline", "threads"]) {
  test(`train --trace on ${executor}: well-formed events, S x M F and B per step in each worker's schedule order`, () => {
    const dir = mkdtempSync(join(tmpdir(), "pw-trace-"));
    try {
      const file = join(dir, "run.json");
      const traced = train(["--executor", executor, "--trace", file]);
      const t = loadTrace(file);
      assertWellFormed(t);
      assert.deepEqual([...processNames(t)].sort(), [[0, "worker 0"], [1, "worker 1"]]);
      assert.equal(t.metadata.process, "worker");
      assert.equal(t.metadata.segments[0].executor, executor);
      assert.equal(t.metadata.steps.length, 2, "96 examples in batches of 48: 2 steps");
      assertFollowsSchedule(t, "gpipe", 2, 4, (w) => w);
      // Each step ends with one STEP per stage.
      assert.equal(xEvents(t, (e) => e.name === "STEP").length, 2 * 2);
      // Messages go on the communication track, actions on the compute track.
      const tids = (pred: (n: string) => boolean): Set<number> => new Set(xEvents(t, (e) => pred(e.name)).map((e) => e.tid));
      assert.deepEqual([...tids((n) => n === "send" || n === "receive")], [2]);
      assert.deepEqual([...tids((n) => ["F", "B", "W", "STEP"].includes(n))], [1]);
      // A receive of micro-batch m's activation on worker 1 comes after its send on worker 0 (one host clock).
      for (const r of xEvents(t, (e) => e.name === "receive" && e.pid === 1)) {
        const s = xEvents(t, (e) => e.name === "send" && e.pid === 0 && e.args?.key === r.args?.key && e.args?.step === r.args?.step)[0];
        assert.ok(s && r.ts >= s.ts, `receive ${String(r.args?.key)} before its send`);
      }
      // Recording changes no number.
      const plain = train(["--executor", executor]);
      assert.deepEqual([traced.train_loss, traced.test_loss], [plain.train_loss, plain.test_loss]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("--trace needs a pipeline (--schedule)", () => {
  const one = spawnSync(process.execPath, [MAIN, "train", "--model", "mlp", "--data", "slice", "--limit", "48", "--epochs", "1", "--trace", "x.json"], { encoding: "utf8" });
  assert.equal(one.status, 2);
  assert.match(one.stderr, /--trace x\.json .*--schedule/);
});

test("createPipeline({ trace }) writes the trace at close(), one step per pipe.step", async () => {
  const { createPipeline } = await import("../src/api/index.js");
  const { Tensor } = await import("../src/tensor/tensor.js");
  const { Rng } = await import("../src/tensor/random.js");
  const dir = mkdtempSync(join(tmpdir(), "pw-trace-lib-"));
  try {
    const file = join(dir, "lib.json");
    const pipe = await createPipeline({ model: { builtin: { name: "mlp", input: 16, hidden: [32, 32], classes: 4 }, seed: 1 }, schedule: "gpipe",
      stages: 2, microbatches: 4, executor: "inline", optimizer: { name: "sgd", lr: 0.1 }, trace: file });
    const rng = new Rng(3);
    const x = Tensor.randn([8, 16], rng), y = Int32Array.from({ length: 8 }, (_, i) => i % 4);
    for (let i = 0; i < 3; i++) await pipe.step(x, y);
    await pipe.close();
    const t = loadTrace(file);
    assertWellFormed(t);
    assert.equal(t.metadata.steps.length, 3);
    assertFollowsSchedule(t, "gpipe", 2, 4, (w) => w);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
