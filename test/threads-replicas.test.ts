// Replicas of a pipeline on threads: the REDUCE action sums each stage's gradients over the copies in
// shared memory. The oracle is single-device training on the whole mini-batches (1e-5 relative: the
// gradients are summed in another order), and the processes executor's replicas, which run the same
// IR over MPI, must give the same bits (weights, optimizer state, losses, evaluation).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { backward } from "../src/autograd/engine.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { createModel } from "../src/nn/models/index.js";
import { SGD } from "../src/optim/index.js";
import { splitBatch } from "../src/data/microbatch.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { MPI_ENV, mpiSkipReason, mpirunArgs } from "./mpi-helpers.js";
import { batches, OPT, SEED, SPEC, STEPS } from "./lib-replicas-script.js";

const SCRIPT = fileURLToPath(new URL("./lib-replicas-script.js", import.meta.url));

interface Result { losses: number[]; eval: number[]; weights: [string, number[]][]; optimizer: string }

function runThreads(dir: string, schedule: string, replicas: number): Result {
  const out = join(dir, `threads-${schedule}-${replicas}.json`);
  const r = spawnSync(process.execPath, [SCRIPT, "threads", schedule, out, String(replicas)], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(readFileSync(out, "utf8")) as Result;
}

const fromBits = (b: number[]): Float32Array => new Float32Array(Uint32Array.from(b).buffer);

for (const schedule of ["1f1b", "zb-h1"]) {
  test(`threads with 2 replicas (${schedule}) match single-device training within 1e-5`, () => {
    const dir = mkdtempSync(join(tmpdir(), "pw-thr-rep-"));
    try {
      const got = runThreads(dir, schedule, 2);
      const ref = createModel(SPEC, SEED);
      const opt = new SGD(ref.namedParameters(), { lr: OPT.lr, momentum: OPT.momentum, weightDecay: OPT.weightDecay });
      for (const b of batches().slice(0, STEPS)) { backward(crossEntropyLoss(ref.forward(b.x), b.y)); opt.step(); opt.zeroGrad(); }
      const want = ref.stateDict();
      assert.deepEqual(got.weights.map(([k]) => k), [...want.keys()]);
      for (const [k, b] of got.weights) {
        const w = want.get(k)!.data, g = fromBits(b);
        g.forEach((v, i) => assert.ok(Math.abs(v - w[i]) <= 1e-5 * Math.max(1, Math.abs(w[i])), `${k}[${i}]: ${v} vs ${w[i]}`));
      }
      // The replicas did split the rows: one copy (R = 1) gives other bits.
      const one = runThreads(dir, schedule, 1);
      assert.notDeepEqual(one.weights, got.weights);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

const skip = mpiSkipReason();

test("threads with 2 replicas == processes with 2 replicas (4 ranks) bit for bit: weights, optimizer state, losses, evaluation", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-thr-rep-"));
  try {
    for (const schedule of ["1f1b", "zb-h1"]) {
      const threads = runThreads(dir, schedule, 2);
      const out = join(dir, `processes-${schedule}.json`);
      const p = spawnSync("mpirun", [...mpirunArgs(4, "vader"), process.execPath, SCRIPT, "processes", schedule, out, "2"],
        { encoding: "utf8", env: { ...process.env, ...MPI_ENV }, timeout: 120_000 });
      assert.equal(p.status, 0, p.stderr);
      const processes = JSON.parse(readFileSync(out, "utf8")) as Result;
      assert.deepEqual(threads.weights, processes.weights, `${schedule}: weights`);
      assert.equal(threads.optimizer, processes.optimizer, `${schedule}: optimizer state`);
      assert.deepEqual(threads.losses, processes.losses, `${schedule}: losses`);
      assert.deepEqual(threads.eval, processes.eval, `${schedule}: evaluation`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("threads with 2 replicas: a layer failing on micro-batch 3 ends the step naming the replica, stage 1, action 1F3 and the cause; every thread ends", async () => {
  const model = createModel(SPEC, SEED);
  // Units: 0 Flatten, 1 Linear, 2 ReLU, 3 Linear | 4 ReLU, 5 Linear, 6 ReLU, 7 Linear: unit 5 is on stage 1.
  const setup: PipelineSetup = { model: SPEC, seed: SEED, schedule: generateSchedule("1f1b", { stages: 2, microbatches: 4 }), balance: [4, 4],
    recompute: "never", optimizer: OPT, instrumentation: { faults: [{ unit: 5, microbatch: 3, message: "boom in layer 5" }] } };
  const ex = await ThreadsExecutor.create(setup, model.stateDict(), 2);
  const parts = splitBatch(batches()[0], 4);
  await assert.rejects(ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / 8 }), (e: Error) => {
    assert.match(e.message, /^stage 1, action 1F3 \(worker 1\): replica [01]: boom in layer 5$/);
    return true;
  });
  await ex.close();
  assert.equal(ex.liveWorkers, 0);
});
