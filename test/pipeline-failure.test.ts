// A stage that throws must end the run quickly with the stage, the action and the cause, never hang:
// on the threads executor (all workers terminated), on the inline executor, and through the CLI
// (non-zero exit). Every wait is bounded by a timeout so a regression fails instead of hanging.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { splitBatch } from "../src/data/microbatch.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import { SEAM_NODE_OPTIONS } from "./seam-preload.js";

const SPEC: ModelSpec = { name: "mlp", input: 12, hidden: [16, 16, 16], classes: 5 };
const M = 4;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms (hang)`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function setup(): PipelineSetup {
  // Units: 0 Flatten, 1 Linear, 2 ReLU, 3 Linear | 4 ReLU, 5 Linear, 6 ReLU, 7 Linear: unit 5 is on stage 1.
  return {
    model: SPEC, seed: 3, schedule: generateSchedule("1f1b", { stages: 2, microbatches: M }), balance: [4, 4],
    recompute: "never", optimizer: { name: "sgd", lr: 0.1 }, instrumentation: { faults: [{ unit: 5, microbatch: 3, message: "boom in layer 5" }] },
  };
}

function batch(): { inputs: Tensor[]; labels: Int32Array[]; scale: number } {
  const rng = new Rng(1);
  const parts = splitBatch({ x: Tensor.randn([8, 12], rng), y: Int32Array.from({ length: 8 }, () => rng.int(5)) }, M);
  return { inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / 8 };
}

test("threads: a layer failing on micro-batch 3 stops every worker within 5 s, naming stage 1, action 1F3 and the cause", async () => {
  const s = setup();
  const ex = await ThreadsExecutor.create(s, createModel(SPEC, 3).stateDict());
  const t0 = performance.now();
  await assert.rejects(withTimeout(ex.step(batch()), 5000, "threads step"), (e: Error) => {
    assert.match(e.message, /stage 1/);
    assert.match(e.message, /1F3/);
    assert.match(e.message, /boom in layer 5/);
    return true;
  });
  assert.ok(performance.now() - t0 < 5000);
  // Every worker thread is gone shortly after (terminate() is asynchronous).
  const deadline = performance.now() + 5000;
  while (ex.liveWorkers > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(ex.liveWorkers, 0, "worker threads still running after the failure");
  // Later calls fail fast with the same error instead of hanging.
  await assert.rejects(withTimeout(ex.step(batch()), 2000, "step after failure"), /1F3/);
  await ex.close();
});

test("inline: the same failure names stage, action and cause", async () => {
  const s = setup();
  const ex = new InlineExecutor(createModel(SPEC, 3), s);
  await assert.rejects(ex.step(batch()), /stage 1, action 1F3 .*boom in layer 5/);
});

test("a failure during a recomputed backward names the B action", async () => {
  const s = { ...setup(), recompute: "always" as const, instrumentation: { faults: [{ unit: 1, microbatch: 2, during: "recompute" as const }] } };
  // Unit 1 is on stage 0; its forward of micro-batch 2 succeeds, its recomputation in B fails.
  const ex = await ThreadsExecutor.create(s, createModel(SPEC, 3).stateDict());
  await assert.rejects(withTimeout(ex.step(batch()), 5000, "threads step"), /stage 0, action 0B2 .*injected fault in unit 1/);
  await ex.close();
});

test("CLI: pipewright train exits non-zero with the stage, action and cause", async () => {
  const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const child = spawn(process.execPath, [main, "train", "--model", "mlp", "--data", "slice", "--limit", "64", "--batch", "32",
    "--epochs", "1", "--schedule", "1f1b", "--stages", "2", "--microbatches", "4", "--executor", "threads", "--quiet"],
  { env: { ...process.env, NODE_OPTIONS: SEAM_NODE_OPTIONS, PIPEWRIGHT_INJECT_FAULT: "4:3" }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
  const code = await withTimeout(new Promise<number | null>((r) => child.on("exit", (c) => r(c))), 20000, "pipewright train")
    .catch((e: Error) => { child.kill("SIGKILL"); throw e; });
  assert.notEqual(code, 0, `exit code ${code}; stderr: ${stderr}`);
  // mlp units: 0 Flatten, 1 Linear, 2 ReLU, 3 Linear, 4 ReLU, 5 Linear: unit 4 is on stage 1 (uniform 3,3).
  assert.match(stderr, /stage 1, action 1F3/, stderr);
  assert.match(stderr, /injected fault in unit 4 on micro-batch 3/, stderr);
});

test("inline: an impossible order is reported as a deadlock naming each stuck action, not a hang", async () => {
  const good = generateSchedule("gpipe", { stages: 2, microbatches: 1 });
  // Worker 0 waits for the gradient of micro-batch 0 before it has sent the activation.
  const bad = { ...good, workers: [[good.workers[0][1], good.workers[0][0], good.workers[0][2]], good.workers[1]] };
  const s: PipelineSetup = { model: SPEC, seed: 3, schedule: bad, balance: [4, 4], recompute: "never", optimizer: { name: "sgd", lr: 0.1 } };
  const ex = new InlineExecutor(createModel(SPEC, 3), s);
  const rng = new Rng(2);
  const x = Tensor.randn([2, 12], rng);
  await assert.rejects(ex.step({ inputs: [x], labels: [new Int32Array([0, 1])], scale: 0.5 }),
    /deadlock: worker 0 at 0B0 waiting for g0:0; worker 1 at 1F0 waiting for a1:0/);
});

test("threads: a list that would deadlock is rejected before any worker starts", async () => {
  const good = generateSchedule("gpipe", { stages: 2, microbatches: 1 });
  const bad = { ...good, workers: [[good.workers[0][1], good.workers[0][0], good.workers[0][2]], good.workers[1]] };
  const s: PipelineSetup = { model: SPEC, seed: 3, schedule: bad, balance: [4, 4], recompute: "never", optimizer: { name: "sgd", lr: 0.1 } };
  await assert.rejects(withTimeout(ThreadsExecutor.create(s, createModel(SPEC, 3).stateDict()), 5000, "create"), /invalid schedule/);
});
